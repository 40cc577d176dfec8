"""The in-context path-star task (incontext_data.py): each row's own star graph, query and path, and its cache."""
import os
import re
from pathlib import Path

import numpy as np
import pytest

import configurator
from pathstar.data import incontext as incontext_data
from pathstar.data import cache as pathstar_cache
import pathstar_data
import train
from conftest import tiny_config
from pathstar.tokens import EDGE, NODE_OFFSET, PATH, PAUSE
from pathstar.data import cache as pc
from pathstar import validate
from conftest import checked

D, L = 3, 4


def build(**overrides):
    cfg = dict(task='in_context', graph_d=D, graph_l=L, num_pause_tokens=2, num_train_graphs=200, num_val_graphs=50)
    return incontext_data.build_arrays(checked(dict(cfg, **overrides)))


def parse(row, meta):
    """(edges as (parent, child) list, queried leaf, targets) of one row, checking its fixed tokens."""
    n_edges = D * (L - 1)
    triples = row[:3 * n_edges].reshape(n_edges, 3).astype(np.int64)
    assert (triples[:, 0] == EDGE).all()
    start = meta['path_prompt_len']
    assert row[3 * n_edges] == PATH and (row[3 * n_edges + 2:start] == PAUSE).all()
    return [tuple(e) for e in triples[:, 1:]], int(row[3 * n_edges + 1]), row[start:].astype(np.int64).tolist()


def star_path(edges, leaf):
    """Check that edges form a star with D arms of L-1 nodes; the root..leaf path."""
    children = {}
    parent = {}
    for u, v in edges:
        assert v not in parent  # every node has one parent
        parent[v] = u
        children.setdefault(u, []).append(v)
    nodes = {n for e in edges for n in e}
    assert len(nodes) == D * (L - 1) + 1  # all labels distinct within the row
    assert all(NODE_OFFSET <= n for n in nodes)
    roots = [n for n in nodes if n not in parent]
    assert len(roots) == 1 and len(children[roots[0]]) == D
    for first in children[roots[0]]:  # each arm is a chain of L - 1 nodes
        node, depth = first, 1
        while node in children:
            assert len(children[node]) == 1
            node, depth = children[node][0], depth + 1
        assert depth == L - 1
    assert leaf in parent and leaf not in children
    path = [leaf]
    while path[-1] in parent:
        path.append(parent[path[-1]])
    return path[::-1]


@pytest.mark.parametrize('split', ['train', 'val'])
def test_every_row_is_its_own_star_with_the_queried_leafs_path_as_targets(split):
    arrays, meta = build()
    rows, mask = arrays[f'{split}_rows'], arrays[f'{split}_mask']
    assert rows.shape == (meta[f'num_{split}_rows'], meta['row_len'])
    for row in rows:
        edges, leaf, targets = parse(row, meta)
        assert targets == star_path(edges, leaf)
    start = meta['path_prompt_len']
    assert mask[:, start:start + L].all() and mask.sum() == L * len(rows)


def test_reversed_targets_and_the_root_in_the_prompt():
    arrays, meta = build(path_target='reversed', root_in_prompt=True, num_pause_tokens=0)
    row = arrays['train_rows'][0].astype(np.int64)
    n_edges = D * (L - 1)
    edges = [tuple(e) for e in row[:3 * n_edges].reshape(n_edges, 3)[:, 1:]]
    root, leaf = row[3 * n_edges + 1], row[3 * n_edges + 2]
    path = star_path(edges, int(leaf))
    assert path[0] == root and row[meta['path_prompt_len']:].tolist() == path[::-1]


def test_no_validation_graph_is_a_training_graph():
    arrays, meta = build()

    def graphs(rows):
        return {frozenset(parse(row, meta)[0]) for row in rows}
    assert not graphs(arrays['val_rows']) & graphs(arrays['train_rows'])
    # a tiny graph space: equal graphs are certain without the redraw, and none slip through
    arrays, meta = incontext_data.build_arrays(checked(dict(task='in_context', graph_d=2, graph_l=2, graph_vocab_size=4,
                                                    num_pause_tokens=0, num_train_graphs=5, num_val_graphs=20)))
    small = {frozenset(map(tuple, r[:6].reshape(2, 3)[:, 1:].tolist())) for r in arrays['train_rows']}
    assert not {frozenset(map(tuple, r[:6].reshape(2, 3)[:, 1:].tolist())) for r in arrays['val_rows']} & small


def test_rows_follow_the_data_seed():
    a, _ = build()
    b, _ = build()
    c, _ = build(data_seed=7)
    assert (a['train_rows'] == b['train_rows']).all() and not (a['train_rows'] == c['train_rows']).all()


IN_WEIGHTS_ONLY = dict(use_undirected=False, use_directional_tokens=False, use_task_tokens=False,
                       graph_holdout_percentage=0.1, path_replication=3, recipe='staged', geometry_interval=1,
                       graph_builder='official')


@pytest.mark.parametrize('key', list(IN_WEIGHTS_ONLY))
def test_in_context_rejects_in_weights_keys_in_one_line_naming_the_value_to_use(key):
    with pytest.raises(configurator.UserError) as e:
        validate.build_config(dict(task='in_context', **{key: IN_WEIGHTS_ONLY[key]}))
    message = str(e.value)
    assert message.startswith(f"{key}: ") and '\n' not in message and "task='in_context'" in message
    assert repr(configurator.DEFAULTS[key]) in message or key == 'recipe' and "'interleaved'" in message
    validate.build_config(dict(task='in_weights', **{key: IN_WEIGHTS_ONLY[key]}))  # in-weights takes it
    # and the in-weights keys an in-context config can use: path_loss keeps the first hop of each row
    validate.build_config(dict(task='in_context', path_loss='first_hop'))


def test_a_tiny_in_context_run_trains_evaluates_and_resumes(tmp_path):
    cfg = tiny_config(tmp_path, task='in_context', graph_d=3, graph_l=4, epochs=2, eval_interval=2,
                      num_train_graphs=200, num_val_graphs=50)
    data = pathstar_data.load_or_build(cfg, verbose=False)
    assert data.meta['num_edge_rows'] == 0 and len(data.train_rows) == 200
    summary = train.train(cfg)
    for key in ('val/accuracy/path', 'val/accuracy/first_hop', 'train/accuracy/path', 'val/loss/overall',
                *(f'val/accuracy/token_{i}' for i in range(1, L + 1))):
        assert key in summary, key
    assert summary['chance/first_hop'] == pytest.approx(1 / 3)
    resumed = train.train(dict(cfg, init_from='resume'))
    for key in ('val/accuracy/path', 'val/loss/overall', 'train/loss/overall'):
        assert resumed[key] == pytest.approx(summary[key], abs=1e-6), key


SMALL = dict(task='in_context', graph_d=D, graph_l=L, num_pause_tokens=1, num_train_graphs=300, num_val_graphs=40)


def load(tmp_path, **overrides):
    return pathstar_data.load_or_build(dict(SMALL, data_dir=str(tmp_path / 'data'), **overrides), verbose=False)


def same(a, b):
    return (all(np.array_equal(getattr(a, k), getattr(b, k)) for k in pc.ARRAYS) and
            all(np.array_equal(a.meta[k], b.meta[k]) for k in incontext_data.SAVED))


def test_the_cache_is_reused_and_keeps_the_graphs_the_rows_were_built_from(tmp_path):
    first = load(tmp_path)
    assert first.build_seconds is not None and os.path.basename(first.path).startswith('in_context_d3_l4_')
    assert sorted(os.listdir(first.path)) == sorted([*(f + '.npy' for f in (*pc.ARRAYS,
                                                                             *incontext_data.SAVED)), 'meta.json'])
    again = load(tmp_path)
    assert again.build_seconds is None and again.path == first.path and same(first, again)
    arrays, meta = incontext_data.build_arrays(checked(SMALL))  # the cache holds what a build in memory makes
    assert all(np.array_equal(arrays[k], getattr(again, k)) for k in arrays)
    for split in ('train', 'val'):  # each row's edges are its graph's, and its targets one of its arms
        graphs, rows = again.meta[f'{split}_graphs'], getattr(again, f'{split}_rows')
        assert graphs.shape == (len(rows), D, L) and graphs.dtype == rows.dtype
        for graph, row in zip(graphs[:20].astype(np.int64), rows[:20]):
            edges, _, targets = parse(row, again.meta)
            assert set(edges) == {(a[j], a[j + 1]) for a in graph.tolist() for j in range(L - 1)}
            assert targets in graph.tolist()
    other = load(tmp_path, path_target='reversed')  # another dataset key, another folder
    assert other.path != first.path and other.build_seconds is not None


@pytest.mark.parametrize('victim', ['train_rows.npy', 'val_graphs.npy'])
def test_a_damaged_array_is_never_used_but_rebuilt(tmp_path, capsys, victim):
    first = load(tmp_path)
    path = Path(first.path, victim)
    body = bytearray(path.read_bytes())
    body[-1] ^= 0xFF  # one flipped byte, as a bad disk would leave
    path.write_bytes(bytes(body))
    with pytest.raises(pathstar_cache.DamagedCache, match=re.escape(f"{victim} fails its checksum")):
        pathstar_cache.load(first.path)
    capsys.readouterr()
    rebuilt = load(tmp_path)
    assert f"{victim} fails its checksum" in capsys.readouterr().err
    assert rebuilt.build_seconds is not None and same(first, rebuilt)
    assert load(tmp_path).build_seconds is None


def test_the_hashed_check_for_seen_graphs_agrees_with_the_exact_one():
    cfg = incontext_data.data_config(checked(dict(task='in_context', graph_d=2, graph_l=3, graph_vocab_size=6,
                                                  num_train_graphs=300)))
    rng = np.random.default_rng(0)
    train, fresh = incontext_data.draw_graphs(rng, 300, cfg), incontext_data.draw_graphs(rng, 300, cfg)
    hashes = incontext_data.graph_hashes(train)
    got = incontext_data.unseen(fresh, train, hashes, np.sort(hashes))
    want = ~np.isin(incontext_data.graph_keys(fresh), incontext_data.graph_keys(train))
    assert np.array_equal(got, want) and 0 < got.sum() < len(got)  # a small space: some seen, some not
    arms_swapped = train[:, ::-1]  # the same graphs with the arms listed in another order
    assert not incontext_data.unseen(arms_swapped, train, hashes, np.sort(hashes)).any()


def test_the_summary_counts_the_rows_and_decodes_two(tmp_path):
    text = pathstar_data.summary(load(tmp_path, teacherless=True))
    assert 'in_context' in text and '300 rows' in text and '40 rows' in text and 'built in' in text
    assert text.count('[EDGE]') == 3 * D * (L - 1) and '$' in text  # two rows and the teacherless input
    assert 'reused the existing cache' in pathstar_data.summary(load(tmp_path, teacherless=True))


def test_an_in_context_local_sweep_runs_each_variant(tmp_path, monkeypatch, capsys):
    import yaml

    import run_sweep
    monkeypatch.chdir(tmp_path)
    fixed = dict(task='in_context', graph_d=2, graph_l=3, num_pause_tokens=1, num_train_graphs=64, num_val_graphs=16,
                 n_layer=1, n_head=2, n_embd=16, epochs=2, eval_interval=100, log_interval=100, device='cpu')
    params = {key: {'value': value} for key, value in fixed.items()}
    params.update(teacherless={'values': [False, True]}, path_target={'value': 'reversed'})
    doc = dict(method='grid', metric=dict(name='val/accuracy/first_hop', goal='maximize'), parameters=params)
    (tmp_path / 'sweep.yaml').write_text(yaml.safe_dump(doc))
    assert run_sweep.main(['--sweep_config', 'sweep.yaml', '--count', '2', '--backend', 'local']) == 0
    assert 'agent done: 2 of 2 trials finished' in capsys.readouterr().out
    (sweep_id,) = os.listdir('sweeps')
    assert len(list(Path('sweeps', sweep_id).glob('trial_*/summary.json'))) == 2  # each trial trained


@pytest.mark.parametrize('variant, changed', [
    ('in_context_g5_l5', {'graph_d': 5, 'out_dir': 'out-in-context-g5-l5'}),
    ('in_context_g20_l5', {'graph_d': 20, 'graph_vocab_size': 100, 'out_dir': 'out-in-context-g20-l5'}),
    ('teacherless', {'teacherless': True, 'out_dir': 'out-in-context-g2-l5-teacherless'}),
    ('reversed_targets', {'path_target': 'reversed', 'out_dir': 'out-in-context-g2-l5-reversed'}),
])
def test_the_in_context_configs_compose(variant, changed):
    from conftest import ROOT
    base = validate.parse_args([f'{ROOT}/config/in_context_g2_l5.py'])
    assert (base['task'], base['graph_d'], base['graph_vocab_size'], base['num_train_graphs']) == ('in_context', 2, 50,
                                                                                                  200000)
    cfg = validate.parse_args([f'{ROOT}/config/in_context_g2_l5.py', f'{ROOT}/config/{variant}.py'])
    assert {key: cfg[key] for key in cfg if cfg[key] != base[key]} == changed
    cpu = validate.parse_args([f'{ROOT}/config/in_context_cpu.py', f'{ROOT}/config/{variant}.py'])
    assert cpu['task'] == 'in_context'  # the CPU-sized config takes the same variants
