"""The CUDA path, checked on CPU: compiling once per run, no host work in full-batch steps, static
shapes, every row once an epoch, freed logits and models, eval memory, checkpoints, the chosen GPU."""
import functools
import gc
import weakref

import pytest
import torch

from pathstar.training import evaluate
import model
import pathstar_data
from pathstar.data import slots as pathstar_rows
from pathstar.training import device
import train
from conftest import tiny_config


@pytest.fixture
def eager_compile(monkeypatch):
    """torch.compile through dynamo with the 'eager' backend: dynamo's caches and limits as on a GPU,
    without inductor's compile time."""
    monkeypatch.setattr(torch, 'compile', functools.partial(torch.compile, backend='eager'))
    with torch._dynamo.config.patch(recompile_limit=2):  # reach the limit in 3 runs, not 9
        yield


def graphs_compiled():
    from torch._dynamo.utils import counters
    return counters['stats']['unique_graphs']


def test_each_run_in_one_process_compiles_its_own_model(tmp_path, eager_compile):
    """A sweep agent trains many models in one process; with dynamo's cache shared between them, the
    runs after the recompile limit silently ran eager. Each run must compile again."""
    for n_embd in (16, 32, 48, 64):  # a new shape per trial, as a sweep over n_embd makes
        before = graphs_compiled()
        train.train(tiny_config(tmp_path / str(n_embd), n_embd=n_embd, epochs=2, compile=True))
        assert graphs_compiled() > before, f'run with n_embd={n_embd} was not compiled'


@torch._dynamo.config.patch(recompile_limit=1)  # the edge and path parts need two graphs
def test_a_run_that_hits_the_recompile_limit_fails_instead_of_running_eager(tmp_path, eager_compile):
    with pytest.raises(Exception, match='(?i)recompil'):
        train.train(tiny_config(tmp_path, epochs=2, compile=True))


def test_full_batch_steps_never_shuffle(tmp_path, monkeypatch):
    """With one batch holding the whole stage, the epoch's shuffle is unused: it was built, on the
    host, and copied to the device at every step."""
    calls, real = [], torch.randperm
    monkeypatch.setattr(torch, 'randperm', lambda *a, **k: calls.append(1) or real(*a, **k))
    train.train(tiny_config(tmp_path, epochs=20))  # 31 rows, batch 'auto' = all of them
    assert calls == []


def test_mini_batches_have_one_shape_per_kind_of_row_and_see_every_row_once_an_epoch(tmp_path, forwards):
    cfg = tiny_config(tmp_path, batch_size=7, epochs=3, eval_interval=1000)  # 16 edge rows + 15 path rows
    data = pathstar_data.load_or_build(cfg, verbose=False)
    meta = data.meta
    calls = forwards
    steps = []
    summary = train.train(cfg, lambda event, run: event == 'step' and steps.append(len(calls)))
    edge_len, T, l = meta['edge_row_len'] - 1, meta['row_len'] - 1, meta['l']
    iters = summary['max_iters'] // cfg['epochs']
    assert iters == 5  # ceil(31 / 7)
    shapes = {(x, t) for x, t, _ in calls}
    assert shapes == {((4, edge_len), (4, 1)), ((3, T), (3, l))}  # ceil(16/5) edge rows, ceil(15/5) path rows
    targets = meta['num_edge_rows'] + (meta['num_train_rows'] - meta['num_edge_rows']) * l
    starts = steps[::iters] + [len(calls)]  # the first forward pass of each epoch
    for a, b in zip(starts, starts[1:]):
        assert sum(n for _, _, n in calls[a:b]) == targets
    useful = meta['num_edge_rows'] * edge_len + (meta['num_train_rows'] - meta['num_edge_rows']) * T
    computed = sum(x[0] * x[1] for x, _, _ in calls[:starts[1]])
    assert useful / computed > 0.9  # vs 0.66 when every row ran at the path length
    assert computed < meta['num_train_rows'] * T


def test_a_padded_micro_batch_has_the_loss_and_gradient_of_its_real_rows(tmp_path):
    import types
    data = pathstar_data.load_or_build(tiny_config(tmp_path), verbose=False)
    rows = pathstar_rows.training_targets(data, 'full', 'cpu')
    torch.manual_seed(0)
    net = model.GPT(model.GPTConfig(vocab_size=data.meta['vocab_size'], block_size=data.meta['row_len'] - 1,
                                    n_layer=1, n_head=2, n_embd=32))
    run = types.SimpleNamespace(step_model=net, cfg=dict(label_smoothing=0.0))
    edges, paths = pathstar_rows.row_kinds(0, len(rows.x), data.meta, rows.x.size(1), rows.tgt.size(1))
    real = [pathstar_rows.rows_of(rows, edges, torch.tensor([0, 3])),
            pathstar_rows.rows_of(rows, paths, torch.tensor([1, 2, 5]))]
    padded = pathstar_rows.rows_of(rows, paths, torch.tensor([1, 2, 5, 0]))
    padded.tgt[3:] = -1
    expected = train.micro_batch_loss(run, real)
    got = train.micro_batch_loss(run, [real[0], padded])
    targets = sum(int((p.tgt >= 0).sum()) for p in real)
    plain = sum(net(p.x, p.tgt, positions=p.pos)[1] * int((p.tgt >= 0).sum()) for p in real) / targets
    assert got.item() == pytest.approx(expected.item()) == pytest.approx(plain.item())
    grads = [torch.autograd.grad(loss, net.lm_head.weight)[0] for loss in (expected, got)]
    assert torch.allclose(*grads, atol=1e-7)


def test_full_batch_tokens_count_what_is_computed(tmp_path):
    """Full-batch steps score each distinct row once, edge rows at their own length: throughput and
    MFU count those tokens, not the copies and padding of the stored rows."""
    seen = []

    def hook(event, run):
        if event == 'step':
            seen.append((run.tokens_since_log, run.flops_since_log, run.parts.get(0)))
    cfg = tiny_config(tmp_path, epochs=4, log_interval=1000, eval_interval=1000)
    train.train(cfg, hook)
    (t1, f1, parts), (t2, f2, _) = seen[1], seen[2]
    assert t2 - t1 == sum(p.x.numel() for p in parts)
    meta = pathstar_data.load_or_build(cfg, verbose=False).meta
    assert t2 - t1 < meta['num_train_rows'] * (meta['row_len'] - 1)
    assert f2 - f1 > 0


def test_eval_chunks_stay_within_the_logits_budget(tmp_path):
    data = pathstar_data.load_or_build(tiny_config(tmp_path, graph_d=40), verbose=False)
    meta = data.meta
    torch.manual_seed(0)
    net = model.GPT(model.GPTConfig(vocab_size=meta['vocab_size'], block_size=meta['row_len'] - 1,
                                    n_layer=1, n_head=2, n_embd=32))
    sizes, real = [], net.forward
    net.forward = lambda idx, *a, **k: sizes.append(len(idx)) or real(idx, *a, **k)
    budget = 3 * meta['l'] * meta['vocab_size']  # logits of 3 rows
    rows = data.train_rows[meta['num_edge_rows']:][:10]
    whole = evaluate.score_paths(net, rows, meta['path_prompt_len'], meta['l'], 'cpu', torch.no_grad())
    chunked = evaluate.score_paths(net, rows, meta['path_prompt_len'], meta['l'], 'cpu', torch.no_grad(), budget)
    assert sizes[0] == 10 and set(sizes[1:]) == {3, 1}  # 3 + 3 + 3 + 1
    for a, b in zip(whole, chunked):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_edge_scores_are_chunked_within_the_logits_budget_and_unchanged(tmp_path):
    data = pathstar_data.load_or_build(tiny_config(tmp_path, graph_d=40), verbose=False)
    ev = pathstar_rows.eval_sets(data, 100, 0, 'cpu')
    torch.manual_seed(0)
    net = model.GPT(model.GPTConfig(vocab_size=data.meta['vocab_size'], block_size=data.meta['row_len'] - 1,
                                    n_layer=1, n_head=2, n_embd=32))
    sizes, real = [], net.forward
    net.forward = lambda idx, *a, **k: sizes.append(len(idx)) or real(idx, *a, **k)
    whole = evaluate.score_edges(net, *ev.edges, torch.no_grad())
    chunked = evaluate.score_edges(net, *ev.edges, torch.no_grad(), 7 * data.meta['vocab_size'])
    assert sizes[0] == len(ev.edges.x) > 7 and max(sizes[1:]) == 7
    assert chunked == pytest.approx(whole, abs=1e-6)


def test_the_logits_are_freed_before_the_backward_pass(tmp_path):
    refs, alive = [], []

    def forward(module, args, output):  # torch's global forward hook: every training forward's logits
        if isinstance(module, model.GPT) and len(args) > 1 and args[1] is not None:
            refs.append(weakref.ref(output[0]))
            if not getattr(module, 'watched', False):
                module.watched = True
                module.lm_head.weight.register_hook(lambda g: alive.append(any(r() is not None for r in refs)))
    handle = torch.nn.modules.module.register_module_forward_hook(forward)
    try:
        train.train(tiny_config(tmp_path / 'full', epochs=2))                  # full batch
        train.train(tiny_config(tmp_path / 'mini', epochs=2, batch_size=7))    # mini-batches
    finally:
        handle.remove()
    assert alive and not any(alive)


def test_a_finished_run_leaves_no_model_behind(tmp_path):
    """A sweep agent's next trial must not share memory with this one's model."""
    refs = []
    train.train(tiny_config(tmp_path, epochs=2), lambda event, run: event == 'start' and
                refs.append(weakref.ref(run.model)))
    gc.collect()
    assert refs and refs[0]() is None


def test_best_weights_are_saved_only_when_accuracy_strictly_improves(tmp_path):
    """A tie in accuracy with a lower loss is not a better model (it used to save a checkpoint)."""
    best, evals, saved = tmp_path / 'out' / 'best.pt', [], set()

    def hook(event, run):
        if event == 'eval_end':
            evals.append((run.iter_num, evaluate.best_key(run.metrics)))
        if event == 'step' and best.exists():
            saved.add(torch.load(best, weights_only=True)['iter_num'])
    cfg = tiny_config(tmp_path, epochs=80, eval_interval=5, learning_rate=3e-3, graph_holdout_percentage=0.0)
    summary = train.train(cfg, hook)  # nothing held out: the training paths' accuracy decides
    saved.add(torch.load(best, weights_only=True)['iter_num'])
    improved, top = set(), None
    for it, key in evals:
        if top is None or key > top:
            improved.add(it)
            top = key
    assert saved == improved and len(improved) > 1 and len(improved) < len(evals)
    ckpt = torch.load(best, weights_only=True)
    assert 'optimizer' not in ckpt  # weights only
    assert evaluate.best_key(ckpt['metrics']) == top == (summary['best/train/accuracy/path'],
                                                         summary['best/train/accuracy/first_hop'])


def test_resume_checkpoints_follow_checkpoint_interval(tmp_path):
    ckpt, seen = tmp_path / 'out' / 'ckpt.pt', []

    def hook(event, run):
        if event == 'step':
            seen.append(torch.load(ckpt, weights_only=True)['iter_num'] if ckpt.exists() else None)
    train.train(tiny_config(tmp_path, epochs=10, eval_interval=100, checkpoint_interval=4), hook)
    assert seen == [None] * 4 + [4] * 4 + [8] * 2  # before the steps at iterations 0..9
    assert torch.load(ckpt, weights_only=True)['iter_num'] == 10


def test_a_cuda_index_becomes_the_current_device(monkeypatch):
    """device='cuda:1' without CUDA_VISIBLE_DEVICES: RNG state and capability calls must mean GPU 1."""
    chosen = []
    monkeypatch.setattr(torch.cuda, 'set_device', lambda d: chosen.append(torch.device(d).index))
    device.use_device('cuda:1')
    device.use_device('cpu')
    assert chosen == [1]
