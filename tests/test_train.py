"""train.py: the schedule, batching helpers, and seeded end-to-end runs on CPU."""
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from pathstar.data import slots as pathstar_rows
from pathstar.training import device
from pathstar.training import recipes
import train
from conftest import ROOT, tiny_config
from pathstar import validate

SCHEDULE = dict(learning_rate=1e-3, min_lr=1e-4, warmup_frac=0.1, warmup_iters=0, lr_decay_frac=0.9, decay_lr=True)


def test_lr_warms_up_linearly_then_follows_the_cosine_then_stays_flat():
    lr = [recipes.lr_at(it, recipes.schedule(SCHEDULE, 0, 100)) for it in range(100)]
    assert lr[0] == pytest.approx(1e-3 * 1 / 11)       # warmup: 10 iterations
    assert lr[9] == pytest.approx(1e-3 * 10 / 11)
    assert lr[10] == pytest.approx(1e-3)                # cosine starts at the peak
    assert lr[50] == pytest.approx(1e-4 + 0.5 * (1 + math.cos(math.pi * 0.5)) * 9e-4)  # halfway through decay
    assert lr[90] == pytest.approx(1e-4) and lr[99] == pytest.approx(1e-4)  # flat after lr_decay_frac
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))


def test_lr_is_constant_without_decay():
    assert {recipes.lr_at(it, recipes.schedule(dict(SCHEDULE, decay_lr=False), 0, 50)) for it in range(50)} == {1e-3}


def test_target_slots_list_each_rows_targets_in_order():
    rows = np.array([[3, 9, 1, 7, 8, 9], [2, 4, 7, 8, 0, 0]])
    mask = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 0, 0]], dtype=bool)
    pos, tgt = pathstar_rows.target_slots(rows, mask, 3)
    assert pos.tolist() == [[2, 3, 4], [2, 0, 0]]       # positions in x = rows[:, :-1]
    assert tgt.tolist() == [[7, 8, 9], [8, -1, -1]]


def test_epoch_orders_are_permutations_fixed_by_seed_and_epoch():
    a, b = recipes.epoch_orders([50, 7], 1, 3, 'cpu')
    assert sorted(a.tolist()) == list(range(50)) and sorted(b.tolist()) == list(range(7))
    assert all(torch.equal(x, y) for x, y in zip((a, b), recipes.epoch_orders([50, 7], 1, 3, 'cpu')))
    assert not torch.equal(a, recipes.epoch_orders([50, 7], 1, 4, 'cpu')[0])


def test_device_and_dtype_selection_on_a_machine_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: False)
    assert device.pick_device('auto') == 'cpu'
    assert device.pick_dtype('auto', 'cpu') == 'float32'
    assert device.use_compile('auto', 'cpu') is False and device.use_compile('auto', 'cuda') is True
    with pytest.raises(device.UserError, match='CUDA is not available'):
        device.pick_device('cuda')


def test_dtype_auto_on_cuda_follows_the_chosen_gpus_compute_capability(monkeypatch):
    """bf16 from compute capability 8.0 (Ampere) on; older GPUs (V100 7.0, T4 7.5) get fp16 with a
    grad scaler, whatever is_bf16_supported() says (it counts emulation), and the GPU asked about
    is the run's own."""
    capability, asked = {0: (8, 0), 1: (7, 5)}, []
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda d=None: asked.append(d) or capability[d.index])
    assert device.pick_dtype('auto', 'cuda:0') == 'bfloat16'
    assert device.pick_dtype('auto', 'cuda:1') == 'float16'
    assert [d.index for d in asked] == [0, 1]


def test_oom_and_divergence_messages_name_what_to_change():
    cfg = dict(n_layer=12, n_embd=384, learning_rate=1e-3, grad_clip=0.0)
    message = device.oom_message(cfg, 512, 'GPU')
    assert 'out of GPU memory' in message and 'batch_size=512' in message and 'n_embd=384' in message
    with pytest.raises(train.TrainingError, match='learning_rate'):
        train.check_finite(float('nan'), 10, cfg)


def test_seeded_cpu_run_learns_the_training_paths(tmp_path):
    summary = train.train(tiny_config(tmp_path, epochs=150, eval_interval=50, learning_rate=3e-3))
    assert summary['train/accuracy/path'] == 1.0
    assert summary['train/accuracy/edge'] == 1.0
    assert summary['chance/first_hop'] == 0.25
    for key in ('val/loss/overall', 'val/loss/token_1', 'val/accuracy/token_3', 'val/accuracy/path',
                'best/val/accuracy/path', 'train/loss/overall', 'lr', 'tokens_per_sec', 'train/loss/step'):
        assert key in summary
    saved = json.load(open(tmp_path / 'out' / 'summary.json'))
    assert saved['train/accuracy/path'] == 1.0 and saved['iter'] == summary['iter']


def test_iterations_count_epochs_times_batches(tmp_path):
    cfg = tiny_config(tmp_path, epochs=3, batch_size=5, gradient_accumulation_steps=2, eval_interval=100)
    summary = train.train(cfg)
    rows = summary['train_rows']
    assert summary['max_iters'] == 3 * math.ceil(rows / 10) and summary['epoch'] == 3.0


def test_the_same_seed_gives_the_same_metrics(tmp_path):
    a = train.train(tiny_config(tmp_path / 'a', epochs=10))
    b = train.train(tiny_config(tmp_path / 'b', epochs=10))
    assert a['val/loss/overall'] == b['val/loss/overall']


def test_resume_after_sigterm_ends_with_the_same_metrics_as_an_uninterrupted_run(tmp_path):
    cfg = tiny_config(tmp_path, epochs=40, dropout=0.1, eval_interval=10)
    full = train.train(dict(cfg, out_dir=str(tmp_path / 'full')))
    child = run_and_sigterm_at_third_eval(cfg, tmp_path)
    assert child.returncode == 128 + signal.SIGTERM, child.stderr
    assert 'resume with --init_from=resume' in child.stderr
    assert torch.load(tmp_path / 'out' / 'ckpt.pt', weights_only=True)['iter_num'] == 20
    resumed = train.train(dict(cfg, init_from='resume'))
    assert resumed['iter'] == full['iter'] == 40
    for key in ('val/loss/overall', 'train/loss/overall', 'val/accuracy/path', 'train/loss/edge'):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6), key


def run_and_sigterm_at_third_eval(cfg, tmp_path):
    """train.py in a child process that receives SIGTERM during its eval at iter 20."""
    script = tmp_path / 'interrupt.py'
    args = [f'--{k}={v}' for k, v in cfg.items()]
    script.write_text(
        'import os, signal, sys\n'
        f'sys.path.insert(0, {ROOT!r})\n'
        'import train\n'
        'calls = []\n'
        'def hook(event, run):\n'
        '    if event == "eval_start":\n'
        '        calls.append(1)\n'
        '        if len(calls) == 3:\n'
        '            os.kill(os.getpid(), signal.SIGTERM)\n'
        f'train.main({args!r}, hook)\n')
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)


def test_staged_plan_runs_the_edge_epochs_then_the_path_epochs():
    cfg = validate.build_config(dict(recipe='staged', staged_edge_frac=0.25, epochs=8, batch_size=4))
    stages = recipes.training_stages(cfg, n_rows=30, n_edges=10)
    assert [s[:4] for s in stages] == [(0, 10, 2, 4), (10, 30, 6, 4)]
    plan, max_iters = recipes.iteration_plan(cfg, stages)
    assert max_iters == 2 * 3 + 6 * 5           # ceil(10/4) = 3 and ceil(20/4) = 5 iterations per epoch
    assert recipes.locate(0, plan)[1:] == (0, 0)
    assert recipes.locate(5, plan)[0].first == 0 and recipes.locate(5, plan)[1:] == (1, 2)
    assert recipes.locate(6, plan)[0].first == 10 and recipes.locate(6, plan)[1:] == (2, 0)  # paths start at epoch 2
    assert recipes.epochs_done(max_iters, plan) == 8.0
    assert plan[0].schedule == plan[1].schedule and plan[0].schedule.start == 0  # one schedule for the run
    assert [s[:3] for s in recipes.training_stages(dict(cfg, recipe='interleaved'), 30, 10)] == [(0, 30, 8)]


def test_two_stage_plan_gives_each_stage_its_own_batch_schedule_and_optimizer():
    cfg = validate.build_config(dict(recipe='two_stage', epochs=6, batch_size=8, learning_rate=5e-4,
                                         min_lr=5e-5, warmup_iters=3, edge_epochs=2, edge_batch_size=4,
                                         edge_learning_rate=1e-2, edge_min_lr=1e-3, edge_warmup_iters=2))
    plan, max_iters = recipes.iteration_plan(cfg, recipes.training_stages(cfg, n_rows=30, n_edges=10))
    edges, paths = plan
    assert (edges.rows, edges.batch, edges.iters_per_epoch, edges.epochs) == (10, 4, 3, 2)
    assert (paths.rows, paths.batch, paths.iters_per_epoch, paths.epochs) == (20, 8, 3, 6)
    assert edges.new_optimizer and paths.new_optimizer and max_iters == 6 + 18
    e, p = edges.schedule, paths.schedule
    assert (e.start, e.warmup, e.decay_end, e.lr, e.min_lr) == (0, 2, 6, 1e-2, 1e-3)
    assert (p.start, p.warmup, p.decay_end, p.lr, p.min_lr) == (6, 3, 18, 5e-4, 5e-5)
    assert recipes.lr_at(0, e) == 0.0 and recipes.lr_at(1, e) == pytest.approx(5e-3)  # the official warmup, from 0
    assert recipes.lr_at(6, p) == 0.0 and recipes.lr_at(9, p) == pytest.approx(5e-4)  # the path stage starts again
    assert recipes.lr_at(23, p) < 6e-5


def test_first_hop_path_loss_keeps_only_the_first_hop_of_path_rows(tmp_path):
    import pathstar_data
    data = pathstar_data.load_or_build(tiny_config(tmp_path), verbose=False)
    n_edges, l = data.meta['num_edge_rows'], data.meta['l']
    full = pathstar_rows.training_targets(data, 'full', 'cpu').tgt
    first = pathstar_rows.training_targets(data, 'first_hop', 'cpu').tgt
    assert torch.equal(first[:n_edges], full[:n_edges])            # edge rows keep their target
    assert torch.equal(first[n_edges:, 1], full[n_edges:, 1])      # the first hop after the root
    assert (first[n_edges:, [0] + list(range(2, l))] == -1).all()  # the root and later hops are not scored
    assert (full[n_edges:] >= 0).all()


def test_staged_and_first_hop_runs_finish(tmp_path):
    staged = train.train(tiny_config(tmp_path / 's', recipe='staged', epochs=10))
    assert staged['epoch'] == 10.0 and staged['iter'] == staged['max_iters']
    first_hop = train.train(tiny_config(tmp_path / 'f', path_loss='first_hop', epochs=10))
    assert 'val/accuracy/first_hop_teacher_forced' in first_hop


def test_resuming_a_finished_run_reports_its_metrics_again(tmp_path):
    cfg = tiny_config(tmp_path, epochs=5)
    first = train.train(cfg)
    again = train.train(dict(cfg, init_from='resume'))
    assert again['iter'] == first['iter'] and again['val/loss/overall'] == first['val/loss/overall']


def test_max_iters_stops_the_run_early(tmp_path):
    summary = train.train(tiny_config(tmp_path, epochs=50, max_iters=7))
    assert summary['iter'] == summary['max_iters'] == 7


def test_geometry_interval_logs_geometry_metrics_and_plots(tmp_path):
    from pathstar.analysis import star
    import pathstar_data
    from model import GPT, GPTConfig
    cfg = tiny_config(tmp_path, epochs=20, eval_interval=10, geometry_interval=1)
    summary = train.train(cfg)
    ckpt = torch.load(tmp_path / 'out' / 'ckpt.pt', weights_only=True)  # the model of the last eval
    model = GPT(GPTConfig(**ckpt['model_args']))
    model.load_state_dict(ckpt['model'])
    expected = star.geometry_metrics(model, pathstar_data.load_or_build(cfg, verbose=False).meta)
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, abs=1e-6), key
    pngs = sorted(os.listdir(tmp_path / 'out' / 'geometry'))
    assert 'iter0000020_heatmap.png' in pngs and 'iter0000020_projection.png' in pngs


def test_full_batch_on_distinct_rows_gives_the_plain_loss_and_gradient(tmp_path):
    """Full-batch training scores each distinct row once, weighted by its copies, and edge rows at
    their own length: with dropout 0 the loss and gradient must equal the plain padded batch's."""
    import pathstar_data
    from model import GPT, GPTConfig
    data = pathstar_data.load_or_build(tiny_config(tmp_path), verbose=False)
    meta = data.meta
    rows = pathstar_rows.training_targets(data, 'full', 'cpu')
    x, pos, tgt = rows
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=meta['vocab_size'], block_size=meta['row_len'] - 1, n_layer=1, n_head=2,
                          n_embd=32))
    _, plain = model(x, tgt, 0.1, positions=pos)
    plain_grad = torch.autograd.grad(plain, model.lm_head.weight)[0]
    parts = pathstar_rows.distinct_parts(rows, 0, len(x), meta)
    assert sum(len(p.x) for p in parts) < len(x)  # the repeated path rows were merged
    loss = sum(p.share * model(p.x, p.tgt, 0.1, positions=p.pos, weights=p.weights)[1] for p in parts)
    grad = torch.autograd.grad(loss, model.lm_head.weight)[0]
    assert loss.item() == pytest.approx(plain.item(), rel=1e-5)
    assert torch.allclose(grad, plain_grad, atol=1e-6)
