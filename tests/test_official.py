"""config/official.py against the official code's in-weights star recipe, and the official staged
recipe (recipe='two_stage'): its own optimizer, batch and schedule per stage, a reusable edge stage."""
import os
import signal

import pytest
import torch

import configurator
import pathstar_data as ps
import train
from conftest import ROOT
from conftest import checked
from pathstar.data import inweights
from pathstar import tokens
from pathstar import validate

OFFICIAL = [f'{ROOT}/config/official.py']
TINY_MODEL = dict(n_layer=1, n_head=2, n_embd=32, device='cpu', eval_interval=1000, log_interval=1000)


def official(*files, **overrides):
    """The preset (then named configs, then overrides); the preset alone names no graph, so it gets
    G(5000,5), the smallest one its batch of 2048 fits."""
    files = files or ('official_g5000_l5',)
    cfg = configurator.parse_overrides(OFFICIAL + [f'{ROOT}/config/{name}.py' for name in files])
    return validate.build_config({**cfg, **overrides})


def test_the_preset_has_every_default_of_the_official_recipe():
    """The differences the issue lists, one by one, against the preset (in_weights/config.py defaults)."""
    cfg = official()
    assert cfg['use_directional_tokens'] is False and cfg['use_undirected'] is True  # [EDGE] u v, both ways
    assert cfg['graph_vocab_size'] == '1max' and cfg['graph_builder'] == 'official'  # exactly N labels
    assert cfg['path_replication'] == 1 and cfg['num_pause_tokens'] == 1
    assert cfg['graph_holdout_percentage'] == 0.25  # with the official builder: d - int(0.75 d)
    assert (cfg['learning_rate'], cfg['min_lr'], cfg['warmup_iters']) == (5e-4, 5e-5, 1000)
    assert (cfg['beta1'], cfg['beta2'], cfg['grad_clip'], cfg['weight_decay']) == (0.9, 0.999, 0.0, 0.01)
    assert cfg['decay_params'] == 'all' and cfg['lr_decay_frac'] == 1.0
    assert (cfg['bias'], cfg['n_layer'], cfg['n_embd'], cfg['n_head']) == (True, 12, 384, 8)
    assert (cfg['gelu'], cfg['init'], cfg['dropout']) == ('tanh', 'official', 0.0)
    assert (cfg['batch_size'], cfg['epochs'], cfg['recipe']) == (2048, 10000, 'interleaved')
    staged = official('official_g5000_l5', 'official_staged')
    assert staged['recipe'] == 'two_stage'
    assert (staged['edge_learning_rate'], staged['edge_min_lr'], staged['edge_batch_size'],
            staged['edge_epochs'], staged['edge_warmup_iters']) == (1e-2, 1e-3, 16384, 2500, 500)


@pytest.mark.parametrize('name, d, l, edges, train_paths, held_out', [
    ('official_g5000_l5', 5000, 5, 40000, 3750, 1250),
    ('official_g10000_l6', 10000, 6, 100000, 7500, 2500),
    ('official_g10000_l10', 10000, 10, 180000, 7500, 2500),
])
def test_the_three_checked_in_graphs_have_the_official_sizes(name, d, l, edges, train_paths, held_out):
    counts = inweights.row_counts(checked(inweights.data_config(checked(official(name)))))
    assert (counts.edge_rows, counts.train_rows - counts.edge_rows, counts.held_out) == (edges, train_paths, held_out)


def test_official_preset_builds_the_official_structure_on_a_small_graph(tmp_path):
    """python3 train.py config/official.py --graph_d=50 --graph_l=5 ... (a small batch: 400 edge rows + 37 paths)."""
    cfg = official(graph_d=50, graph_l=5, batch_size=64, epochs=2, data_dir=str(tmp_path / 'data'),
                   out_dir=str(tmp_path / 'out'), **TINY_MODEL)
    data = ps.load_or_build(cfg, verbose=False)
    m = data.meta
    n = 50 * 4 + 1
    assert m['graph_vocab_size'] == n
    labels = m['paths'] - tokens.NODE_OFFSET
    assert sorted(set(labels.ravel().tolist())) == list(range(n))  # a permutation of range(N)
    assert m['num_edge_rows'] == 2 * (n - 1)
    edges = [data.decode(row).split() for row in data.train_rows[:m['num_edge_rows']]]
    assert all(len(e) == 3 and e[0] == '[EDGE]' for e in edges)  # no direction marker
    paths = data.train_rows[m['num_edge_rows']:]
    assert len(paths) == 50 - (50 - int(0.75 * 50)) and len({tuple(p) for p in paths.tolist()}) == len(paths)
    assert len(data.val_rows) == 50 - int(0.75 * 50) == 13
    assert data.decode(paths[0]).split()[2] == '_'  # [PATH] leaf _ root ...: one pause
    summary = train.train(cfg)
    assert summary['iter'] == summary['max_iters'] == 2 * 7  # ceil(437 / 64) iterations an epoch


def test_weight_decay_covers_every_parameter_with_decay_params_all():
    from model import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16, bias=True))
    groups = model.configure_optimizers(0.01, 1e-3, (0.9, 0.999), 'cpu', decay_all=True).param_groups
    decayed = [p for g in groups if g['weight_decay'] == 0.01 for p in g['params']]
    assert len(decayed) == len(list(model.parameters())) and any(p.dim() == 1 for p in decayed)


def test_the_official_init_and_gelu():
    from model import GPT, GPTConfig
    torch.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=64))
    theirs = GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=64, init='official', gelu='tanh'))
    assert ours.transformer.wpe.weight.std() < 0.05 < 0.8 < theirs.transformer.wpe.weight.std()
    assert ours.transformer.h[0].mlp.c_proj.weight.std() < 0.015 < theirs.transformer.h[0].mlp.c_proj.weight.std()
    x = torch.linspace(-3, 3, 7)
    mlp = theirs.transformer.h[0].mlp
    assert mlp.approximate == 'tanh' and not torch.equal(torch.nn.functional.gelu(x, approximate='tanh'),
                                                         torch.nn.functional.gelu(x))


# -----------------------------------------------------------------------------
# the official staged recipe

def two_stage(tmp_path, **overrides):
    return dict(graph_d=6, graph_l=3, graph_holdout_percentage=0.34, recipe='two_stage', epochs=6, batch_size=2,
                path_replication=1,
                edge_epochs=3, edge_batch_size=8, edge_warmup_iters=2, warmup_iters=2,
                data_dir=str(tmp_path / 'data'), out_dir=str(tmp_path / 'out'), **{**TINY_MODEL, **overrides})


def test_two_stage_trains_edges_then_paths_with_a_fresh_optimizer_and_saves_the_edge_model(tmp_path):
    seen = []

    def hook(event, run):
        if event == 'step':
            seen.append((run.iter_num, run.lr, len(run.optimizer.state)))
    cfg = two_stage(tmp_path)
    summary = train.train(cfg, hook)
    # 24 edge rows / 8 = 3 iterations an epoch x 3; then 4 path rows / 2 = 2 an epoch x 6
    assert summary['max_iters'] == 9 + 12
    assert [lr for it, lr, _ in seen[:2]] == [0.0, pytest.approx(5e-3)]  # the edge stage's warmup from 0
    assert seen[9][1] == 0.0 and seen[9][2] == 0  # the path stage: its own warmup, an empty AdamW
    assert seen[8][2] > 0
    edges = torch.load(tmp_path / 'out' / 'edges.pt', weights_only=True)
    assert edges['iter_num'] == 9


def test_a_saved_edge_stage_starts_later_runs_at_the_path_stage(tmp_path):
    first = tmp_path / 'first'
    train.train(two_stage(first))
    edges = str(first / 'out' / 'edges.pt')
    start = []
    second = tmp_path / 'second'
    summary = train.train(two_stage(second, edge_checkpoint=edges),
                          lambda event, run: event == 'start' and start.append(
                              {k: v.clone() for k, v in run.model.state_dict().items()}))
    assert summary['max_iters'] == 12  # the path stage only
    saved = torch.load(edges, weights_only=True)['model']
    assert all(torch.equal(start[0][k], saved[k]) for k in saved)
    with pytest.raises(configurator.UserError, match='holds a different model'):
        train.train(two_stage(tmp_path / 'third', edge_checkpoint=edges, n_embd=64))
    with pytest.raises(configurator.UserError, match="only recipe='two_stage'"):
        validate.build_config(dict(edge_checkpoint=edges))


def test_two_stage_resumes_exactly_across_the_stage_boundary(tmp_path):
    full = train.train(two_stage(tmp_path / 'full'))

    def hook(event, run):
        if event == 'step' and run.iter_num == 10:  # the second step of the path stage
            os.kill(os.getpid(), signal.SIGTERM)
    cfg = two_stage(tmp_path / 'cut', checkpoint_interval=1)
    with pytest.raises(train.Interrupted):
        train.train(cfg, hook)
    resumed = train.train(dict(cfg, init_from='resume'))
    for key in ('val/loss/overall', 'train/loss/overall', 'train/loss/edge'):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6), key


@pytest.mark.parametrize('variant, changed', [
    ('official_hardest_token', dict(path_target='first_hop', out_dir='out-official-g5000-l5-hardest')),
    ('root_in_prompt', dict(root_in_prompt=True, out_dir='out-official-g5000-l5-root')),
    ('reversed_targets', dict(path_target='reversed', out_dir='out-official-g5000-l5-reversed')),
    ('teacherless', dict(teacherless=True, out_dir='out-official-g5000-l5-teacherless')),
    ('official_staged', dict(recipe='two_stage', out_dir='out-official-g5000-l5-staged')),
])
def test_each_official_variant_is_a_config_file_changing_only_its_keys(variant, changed):
    base = official('official_g5000_l5')
    cfg = official('official_g5000_l5', variant)
    assert {k: cfg[k] for k in cfg if cfg[k] != base[k]} == changed


def test_an_edge_checkpoint_older_than_a_model_key_still_starts_a_run(tmp_path):
    first = tmp_path / 'first'
    train.train(two_stage(first))
    edges = first / 'out' / 'edges.pt'
    saved = torch.load(edges, weights_only=True)
    for key in ('use_attention', 'weight_init', 'gelu'):  # written before these keys existed
        saved['model_args'].pop(key, None)
    torch.save(saved, edges)
    summary = train.train(two_stage(tmp_path / 'second', edge_checkpoint=str(edges)))
    assert summary['max_iters'] == 12
