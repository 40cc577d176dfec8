"""
The path-star dataset: what its rows say, how it is split, and how its cache behaves.
Every graph here is tiny, and every data_dir is under pytest's tmp_path.
"""
import collections
import hashlib
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pathstar.graphs import official as official_files  # noqa: E402
from pathstar.data import cache as pc  # noqa: E402
import pathstar_data as ps  # noqa: E402
from configurator import UserError  # noqa: E402
from pathstar.tokens import BWD, EDGE, FWD, NODE_OFFSET, PAD, PATH, PAUSE  # noqa: E402
from pathstar import tokens as token_ids  # noqa: E402
from conftest import checked, cli_result  # noqa: E402
from pathstar.graphs import common  # noqa: E402
from pathstar.data import inweights  # noqa: E402

# 6 arms of 3 nodes below the root; 0.34 of 6 arms holds out 2
SMALL = dict(graph_d=6, graph_l=4, graph_holdout_percentage=0.34)
SCRIPT = str(ROOT / 'pathstar_data.py')


def build(**overrides):
    return inweights.build_arrays(checked({**SMALL, **overrides}))


def load(tmp_path, **overrides):
    return ps.load_or_build({**SMALL, 'data_dir': str(tmp_path / 'data'), **overrides}, verbose=False)


def tokens(row):
    """A row as a list of ints with the right padding cut off (no real token is PAD)."""
    row = [int(t) for t in row]
    while row and row[-1] == PAD:
        row.pop()
    return row


def graph_edges(paths):
    """The (parent, child) token pairs of the graph, read off its root->leaf paths."""
    return {(int(u), int(v)) for path in paths for u, v in zip(path[:-1], path[1:])}


def expected_edge_row(source, target, marker, cfg):
    return ([EDGE] if cfg['use_task_tokens'] else []) + \
        ([marker] if cfg['use_directional_tokens'] else []) + [source, target]


def expected_path_row(path, cfg):
    path = [int(t) for t in path]
    return ([PATH] if cfg['use_task_tokens'] else []) + [path[-1]] + [PAUSE] * cfg['num_pause_tokens'] + path


def split_train(arrays, meta):
    n = meta['num_edge_rows']
    return arrays['train_rows'][:n], arrays['train_rows'][n:]


def run_cli(args, cwd):
    """python3 pathstar_data.py args in cwd, in this process (conftest.run_cli)."""
    return cli_result(ps.main, args, cwd)


def run_process(args, cwd):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def digest(data):
    h = hashlib.sha256()
    for name in pc.ARRAYS:
        h.update(np.ascontiguousarray(getattr(data, name)).tobytes())
    return h.hexdigest()


# -----------------------------------------------------------------------------
# the graph and its rows

def test_the_graph_is_a_star_with_unique_node_ids_within_the_vocab():
    arrays, meta = build()
    d, l, paths = meta['d'], meta['l'], meta['paths']
    assert paths.shape == (d, l)
    assert (paths[:, 0] == meta['paths'][0, 0]).all()
    below_root = paths[:, 1:].ravel()
    assert len(set(below_root.tolist()) | {meta['paths'][0, 0]}) == meta['num_nodes'] == d * (l - 1) + 1
    labels = paths - NODE_OFFSET
    assert labels.min() >= 0 and labels.max() < meta['graph_vocab_size']


def test_node_labels_then_held_out_arms_come_from_the_seeded_rng_in_index_layout():
    _, meta = build(data_seed=7)
    d, l = meta['d'], meta['l']
    rng = np.random.default_rng(7)
    labels = rng.choice(meta['graph_vocab_size'], meta['num_nodes'], replace=False)
    assert meta['paths'][0, 0] == NODE_OFFSET + labels[0]
    for arm, depth in itertools.product(range(d), range(1, l)):
        assert meta['paths'][arm, depth] == NODE_OFFSET + labels[1 + arm * (l - 1) + depth - 1]
    assert meta['holdout_arms'].tolist() == sorted(rng.choice(d, 2, replace=False).tolist())


def test_every_edge_row_is_a_real_edge_with_its_direction_marker():
    arrays, meta = build()
    edges = graph_edges(meta['paths'])
    edge_rows, _ = split_train(arrays, meta)
    forward, backward = collections.Counter(), collections.Counter()
    for row in edge_rows:
        task, marker, source, target = tokens(row)
        assert task == EDGE
        if marker == FWD:
            forward[(source, target)] += 1
        else:
            assert marker == BWD
            backward[(target, source)] += 1  # '< v u' is the edge u -> v read backwards
    assert set(forward) == set(backward) == edges
    assert set(forward.values()) == set(backward.values()) == {1}


def test_path_rows_walk_root_to_leaf_and_end_at_the_prompt_leaf():
    arrays, meta = build()
    edges, l, start = graph_edges(meta['paths']), meta['l'], meta['path_prompt_len']
    _, train_paths = split_train(arrays, meta)
    for row in np.concatenate([train_paths, arrays['val_rows']]):
        row = tokens(row)
        assert row[0] == PATH and row[2:start] == [PAUSE] * 3 and len(row) == start + l
        path = row[start:]
        assert path[0] == meta['paths'][0, 0]
        assert all((u, v) in edges for u, v in zip(path[:-1], path[1:]))
        assert row[1] == path[-1] and path[-1] in meta['paths'][:, -1]


def test_masks_select_exactly_the_targets():
    arrays, meta = build()
    l = meta['l']
    for split in ('train', 'val'):
        rows, mask = arrays[f'{split}_rows'], arrays[f'{split}_mask']
        assert mask.dtype == np.bool_ and mask.shape == rows.shape
        assert (rows[mask] >= NODE_OFFSET).all()  # never PAD, PAUSE or a task/direction token
        for i, (row, row_mask) in enumerate(zip(rows, mask)):
            n = len(tokens(row))
            is_edge = split == 'train' and i < meta['num_edge_rows']
            wanted = [n - 1] if is_edge else list(range(n - l, n))  # the last node, or the whole path
            assert np.flatnonzero(row_mask).tolist() == wanted


@pytest.mark.parametrize('undirected, directional, task, pause',
                         list(itertools.product([True, False], [True, False], [True, False], [0, 2])))
def test_row_variants_have_the_right_lengths_and_contents(undirected, directional, task, pause):
    arrays, meta = build(use_undirected=undirected, use_directional_tokens=directional,
                         use_task_tokens=task, num_pause_tokens=pause)
    cfg, l, paths = meta['config'], meta['l'], meta['paths']
    assert meta['edge_row_len'] == task + directional + 2
    assert meta['path_prompt_len'] == task + 1 + pause
    assert meta['row_len'] == task + 1 + pause + l == arrays['train_rows'].shape[1]
    assert meta['num_edge_rows'] == (meta['num_nodes'] - 1) * (2 if undirected else 1)

    want_edges = collections.Counter()
    for u, v in graph_edges(paths):
        want_edges[tuple(expected_edge_row(u, v, FWD, cfg))] += 1
        if undirected:
            want_edges[tuple(expected_edge_row(v, u, BWD, cfg))] += 1
    edge_rows, train_paths = split_train(arrays, meta)
    assert collections.Counter(tuple(tokens(r)) for r in edge_rows) == want_edges
    rep = meta['path_replication']
    want_paths = collections.Counter({tuple(expected_path_row(paths[a], cfg)): rep for a in meta['train_arms']})
    assert collections.Counter(tuple(tokens(r)) for r in train_paths) == want_paths
    assert [tokens(r) for r in arrays['val_rows']] == [expected_path_row(paths[a], cfg)
                                                       for a in meta['holdout_arms']]
    assert arrays['train_mask'].sum() == meta['num_edge_rows'] + l * len(train_paths)


# -----------------------------------------------------------------------------
# holdout and splits

def test_holdout_arms_are_disjoint_from_training_path_arms():
    arrays, meta = build()
    train, held = set(meta['train_arms'].tolist()), set(meta['holdout_arms'].tolist())
    assert len(held) == 2 and not train & held and train | held == set(range(meta['d']))
    assert list(meta['holdout_arms']) == sorted(held)
    _, train_paths = split_train(arrays, meta)
    prompt_col = 1  # [PATH] leaf ...
    assert set(train_paths[:, prompt_col].tolist()) == set(meta['paths'][:, -1][meta['train_arms']].tolist())
    assert arrays['val_rows'][:, prompt_col].tolist() == meta['paths'][:, -1][meta['holdout_arms']].tolist()


def test_held_out_leaves_never_prompt_a_training_path_yet_all_their_edges_are_trained():
    arrays, meta = build()
    held_paths = meta['paths'][meta['holdout_arms']]
    edge_rows, train_paths = split_train(arrays, meta)
    assert not set(train_paths[:, 1].tolist()) & set(held_paths[:, -1].tolist())
    trained = {tuple(tokens(row)[1:]) for row in edge_rows}  # (marker, source, target)
    for u, v in graph_edges(held_paths):
        assert (FWD, u, v) in trained and (BWD, v, u) in trained


def test_zero_holdout_trains_every_path_and_has_no_validation_rows():
    arrays, meta = build(graph_holdout_percentage=0.0)
    assert arrays['val_rows'].shape == (0, meta['row_len']) and len(meta['holdout_arms']) == 0
    assert meta['train_arms'].tolist() == list(range(meta['d']))


def test_path_replication_auto_balances_path_rows_against_edge_rows():
    arrays, meta = build()  # 36 edge rows, 4 training paths
    assert meta['path_replication'] == 36 // 4 == 9
    _, train_paths = split_train(arrays, meta)
    assert len(train_paths) == 36 == len(arrays['train_rows']) - meta['num_edge_rows']
    assert set(collections.Counter(map(tuple, train_paths.tolist())).values()) == {9}


def test_path_replication_int_repeats_each_training_path_that_many_times():
    arrays, meta = build(path_replication=3)
    _, train_paths = split_train(arrays, meta)
    assert meta['path_replication'] == 3 and len(train_paths) == 3 * 4
    assert set(collections.Counter(map(tuple, train_paths.tolist())).values()) == {3}


def test_holdout_that_rounds_to_no_arm_raises_a_config_error_with_working_advice():
    with pytest.raises(UserError) as e:
        build(graph_d=10, graph_l=5, graph_holdout_percentage=0.01)
    assert str(e.value) == ("graph_holdout_percentage: 0.01 of graph_d=10 rounds to 0 held-out leaves; "
                            "use >= 0.05 or 0")
    for d in (3, 7, 10, 999):
        with pytest.raises(UserError) as e:
            build(graph_d=d, graph_holdout_percentage=0.1 / d)
        advice = float(re.search(r'use >= (\S+) or 0', str(e.value)).group(1))
        assert common.holdout_count(d, advice) == 1


def test_holdout_of_every_arm_raises_a_config_error_with_working_advice():
    with pytest.raises(UserError) as e:
        build(graph_d=2, graph_l=3, graph_holdout_percentage=0.8)
    message = str(e.value)
    assert message.startswith('graph_holdout_percentage: 0.8 of graph_d=2 rounds to 2') and '\n' not in message
    for d in (2, 3, 7):
        with pytest.raises(UserError) as e:
            build(graph_d=d, graph_holdout_percentage=1 - 0.1 / d)
        bound = float(re.search(r'use < (\S+)$', str(e.value)).group(1))
        assert common.holdout_count(d, bound - 1e-6) == d - 1


def test_bad_dataset_values_raise_config_error_before_touching_the_disk(tmp_path):
    for bad in (dict(graph_d=1), dict(graph_vocab_size=5), dict(graph_holdout_percentage=0.01, graph_d=10),
                dict(path_replication=0), dict(graph_l='abc')):
        with pytest.raises(UserError):
            load(tmp_path, **bad)
    assert not (tmp_path / 'data').exists()


# -----------------------------------------------------------------------------
# token dtypes and decoding

def test_token_dtype_is_uint16_up_to_vocab_size_65536_then_uint32():
    for vocab, dtype in ((2 ** 16 - NODE_OFFSET, 'uint16'), (2 ** 16 - NODE_OFFSET + 1, 'uint32')):
        arrays, meta = build(graph_d=2, graph_l=2, graph_vocab_size=vocab, graph_holdout_percentage=0.0)
        assert meta['vocab_size'] == NODE_OFFSET + vocab and meta['dtype'] == dtype
        assert arrays['train_rows'].dtype == arrays['val_rows'].dtype == np.dtype(dtype)


def test_ids_above_65535_survive_the_cache_round_trip_as_uint32(tmp_path):
    cfg = dict(graph_d=10, graph_l=3, graph_vocab_size=200000, graph_holdout_percentage=0.2)
    built = load(tmp_path, **cfg)
    reused = load(tmp_path, **cfg)
    assert built.build_seconds is not None and reused.build_seconds is None
    paths = reused.meta['paths']
    assert reused.meta['dtype'] == 'uint32' and paths.max() > 65535 + NODE_OFFSET
    fresh, _ = build(**cfg)
    for name in pc.ARRAYS:
        assert getattr(reused, name).dtype == fresh[name].dtype
        assert np.array_equal(getattr(reused, name), fresh[name])
        assert np.array_equal(getattr(built, name), fresh[name])
    nodes = reused.train_rows[reused.train_rows >= NODE_OFFSET]
    assert set(nodes.tolist()) == set(paths.ravel().tolist())


def test_decode_shows_tasks_directions_pauses_and_node_labels():
    n = lambda k: NODE_OFFSET + k  # noqa: E731
    assert token_ids.decode([PATH, n(17), PAUSE, PAUSE, PAUSE, n(3), n(40), n(12), n(9), n(17), PAD]) == \
        '[PATH] n17 _ _ _ n3 n40 n12 n9 n17'
    assert token_ids.decode(np.array([EDGE, FWD, n(0), n(1), PAD, PAD], np.uint16)) == '[EDGE] > n0 n1'
    assert token_ids.decode([EDGE, BWD, n(70000), n(2)]) == '[EDGE] < n70000 n2'


# -----------------------------------------------------------------------------
# the cache

def test_loaded_meta_describes_the_arrays_and_matches_the_build(tmp_path):
    data = load(tmp_path)
    again = load(tmp_path)
    _, built_meta = build()
    m = again.meta
    for key in ('d', 'l', 'num_nodes', 'graph_vocab_size', 'vocab_size', 'tokens', 'row_len',
                'path_prompt_len', 'edge_row_len', 'path_target_nodes', 'first_hop_slot', 'num_edge_rows',
                'path_replication', 'dtype', 'config'):
        assert m[key] == built_meta[key] == data.meta[key], key
    for key in ('paths', 'train_arms', 'holdout_arms'):
        assert isinstance(m[key], np.ndarray) and np.array_equal(m[key], built_meta[key]), key
    assert m['tokens'] == dict(pad=0, pause=1, edge=2, path=3, fwd=4, bwd=5, dummy=6)
    assert m['vocab_size'] == NODE_OFFSET + m['graph_vocab_size'] and again.train_rows.max() < m['vocab_size']
    assert m['row_len'] == again.train_rows.shape[1] == again.val_rows.shape[1]
    assert set(m['config']) == set(inweights.DATA_KEYS)
    with open(os.path.join(again.path, 'meta.json')) as f:
        assert json.load(f)['num_edge_rows'] == m['num_edge_rows']
    assert np.array_equal(np.load(os.path.join(again.path, 'paths.npy'), allow_pickle=False), m['paths'])


def test_cache_folder_name_and_hash_cover_every_dataset_key(tmp_path):
    base = {**SMALL, 'data_dir': str(tmp_path)}
    folder = pc.cache_dir(checked(base))
    assert re.fullmatch(r'pathstar_d6_l4_v38_h0\.34_p3_[0-9a-f]{8}', os.path.basename(folder))
    assert os.path.dirname(folder) == str(tmp_path)
    changes = dict(graph_d=7, graph_l=5, graph_vocab_size=100, graph_holdout_percentage=0.5, num_pause_tokens=1,
                   use_undirected=False, use_directional_tokens=False, use_task_tokens=False,
                   path_target='reversed', root_in_prompt=True, teacherless=True,
                   path_replication=2, data_seed=1, graph_builder='official', add_self_edges=True)
    # the other families' keys, each changed from a family's defaults (graph_d=6 belongs to the star)
    family_changes = [dict(graph='star_tree'), dict(graph='star_tree', star_subtree_degree=3),
                      dict(graph='star_tree', subtree_holdout=True), dict(graph='grid'),
                      dict(graph='grid', grid_rows=3), dict(graph='grid', grid_cols=3), dict(graph='cycle'),
                      dict(graph='cycle', cycle_n=9),
                      dict(graph='irregular'), dict(graph='irregular', irregular_n=12),
                      dict(graph='irregular', irregular_edges=25)]
    family_keys = {key for change in family_changes for key in change}
    # data_import's files decide the graph
    assert set(changes) | family_keys | {'data_import'} == set(inweights.DATA_KEYS)
    folders = {pc.cache_dir(checked({**base, key: value})) for key, value in changes.items()}
    folders |= {pc.cache_dir(checked({'data_dir': str(tmp_path), **change})) for change in family_changes}
    paths, held_out = inweights.draw_graph(inweights.data_config(checked(SMALL)))[:2]
    official_files.write(str(tmp_path / 'official'), paths - NODE_OFFSET, held_out, True)
    folders.add(pc.cache_dir(checked({'data_dir': str(tmp_path), 'data_import': str(tmp_path / 'official')})))
    assert len(folders) == len(changes) + len(family_changes) + 1 and folder not in folders
    assert pc.cache_dir(checked({**base, 'n_layer': 8, 'graph_vocab_size': 38})) == folder  # '2max' of 19 nodes
    _, meta = build()
    assert pc.cache_dir(checked({**meta['config'], 'data_dir': str(tmp_path)})) == folder


def test_same_seed_gives_identical_files_and_another_seed_other_labels(tmp_path):
    first = load(tmp_path / 'a')
    second = load(tmp_path / 'b')
    names = sorted(os.listdir(first.path))
    assert names == sorted(os.listdir(second.path)) == sorted(
        [f'{name}.npy' for name in pc.ARRAYS] + ['paths.npy', 'meta.json'])
    for name in names:
        assert Path(first.path, name).read_bytes() == Path(second.path, name).read_bytes(), name
    other = load(tmp_path / 'a', data_seed=1)
    assert other.path != first.path and not np.array_equal(other.meta['paths'], first.meta['paths'])


def test_second_load_reuses_the_cache_without_rebuilding(tmp_path):
    first = load(tmp_path)
    stamps = {name: os.stat(os.path.join(first.path, name)).st_mtime_ns for name in os.listdir(first.path)}
    time.sleep(0.01)
    second = load(tmp_path)
    mapped = ps.load_or_build({**SMALL, 'data_dir': str(tmp_path / 'data')}, verbose=False, mmap=True)
    assert first.build_seconds is not None and second.build_seconds is None and mapped.build_seconds is None
    assert stamps == {name: os.stat(os.path.join(first.path, name)).st_mtime_ns for name in os.listdir(first.path)}
    assert digest(first) == digest(second) == digest(mapped)
    assert isinstance(mapped.train_rows, np.memmap) and not mapped.train_rows.flags.writeable


def test_a_killed_build_leaves_nothing_that_breaks_the_next_build(tmp_path):
    data_dir = tmp_path / 'data'
    # a build that dies (no cleanup, like SIGKILL) after writing its arrays, before meta.json
    killed = subprocess.run([sys.executable, '-c', (
        "import json, os, sys; sys.path.insert(0, sys.argv[1])\n"
        "from pathstar.data import cache as pc\n"
        "pc.save_meta = lambda *args: os._exit(9)\n"
        "pc.load_or_build(json.loads(sys.argv[2]))"),
        str(ROOT), child_config(SMALL, data_dir)], capture_output=True, text=True, timeout=60)
    assert killed.returncode == 9
    folder = pc.cache_dir(checked({**SMALL, 'data_dir': str(data_dir)}))
    leftovers = list(data_dir.glob('*.tmp-*'))
    assert len(leftovers) == 1 and (leftovers[0] / 'train_rows.npy').exists() and not os.path.exists(folder)
    data = load(tmp_path)
    assert data.build_seconds is not None and data.path == folder
    assert not list(data_dir.glob('*.tmp-*'))
    assert digest(data) == digest(load(tmp_path))


def test_a_stale_temp_folder_with_our_pid_or_an_unfinished_cache_folder_is_rebuilt(tmp_path):
    folder = Path(pc.cache_dir(checked({**SMALL, 'data_dir': str(tmp_path / 'data')})))
    stale = Path(f"{folder}.tmp-{os.getpid()}")  # a dead process whose pid we now have
    stale.mkdir(parents=True)
    (stale / 'train_rows.npy').write_bytes(b'garbage')
    folder.mkdir()  # a folder without meta.json was never finished
    (folder / 'train_rows.npy').write_bytes(b'garbage')
    data = load(tmp_path)
    assert data.build_seconds is not None and not stale.exists()
    fresh, _ = build()
    assert np.array_equal(load(tmp_path).train_rows, fresh['train_rows'])


# The dataset children import the cache layer alone (no torch: a tenth of the start-up) and take the config
# the test checked, as JSON; each marks itself ready in a folder and waits for all n, so they start together.
READY = """
import hashlib, json, os, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from pathstar.data import cache as pc
cfg, ready, n = json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
open(os.path.join(ready, str(os.getpid())), 'w').close()
deadline = time.time() + 60
while len(os.listdir(ready)) < n and time.time() < deadline:
    time.sleep(0.002)
"""

CONCURRENT_BUILDER = READY + """
data = pc.load_or_build(cfg, verbose=False)
h = hashlib.sha256(b''.join(np.ascontiguousarray(getattr(data, n)).tobytes() for n in pc.ARRAYS))
print(json.dumps(dict(built=data.build_seconds is not None, digest=h.hexdigest())))
"""


def child_config(cfg, data_dir):
    """cfg checked here, for a child that imports only the cache layer."""
    return json.dumps(checked(dict(cfg, data_dir=str(data_dir))))


def started_together(script, cfg, tmp_path, n, *args):
    ready = tmp_path / 'ready'
    ready.mkdir()
    return [subprocess.Popen([sys.executable, '-c', script, str(ROOT), cfg, str(ready), str(n), *map(str, args[i])],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]


def test_concurrent_builders_build_once_and_all_get_identical_arrays(tmp_path):
    data_dir = tmp_path / 'data'
    procs = started_together(CONCURRENT_BUILDER, child_config(dict(graph_d=2000, graph_l=5), data_dir), tmp_path, 8,
                             *[()] * 8)
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outputs]
    assert all(err == '' for _, err in outputs)
    results = [json.loads(out) for out, _ in outputs]
    assert sum(r['built'] for r in results) == 1
    assert len({r['digest'] for r in results}) == 1
    data = ps.load_or_build(dict(graph_d=2000, graph_l=5, data_dir=str(data_dir)), verbose=False)
    assert data.build_seconds is None and digest(data) == results[0]['digest']
    assert sorted(p.name for p in data_dir.iterdir()) == sorted([Path(data.path).name, Path(data.path).name + '.lock'])


# -----------------------------------------------------------------------------
# damaged caches: found on every load (mmap or not), rebuilt under the lock with one line of notice

def data_offset(path):
    """Where a .npy file's data starts, after its header."""
    with open(path, 'rb') as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        return f.tell()


def zero_data(name):
    """What a power cut can leave: the header whole, the data blocks zeroed."""
    def damage(folder):
        path = folder / name
        start = data_offset(path)
        with open(path, 'r+b') as f:
            f.seek(start)
            f.write(bytes(path.stat().st_size - start))
    return damage


def zero_file(name):
    def damage(folder):
        (folder / name).write_bytes(bytes((folder / name).stat().st_size))
    return damage


def truncate(name, keep):
    def damage(folder):
        os.truncate(folder / name, int((folder / name).stat().st_size * keep))
    return damage


def flip_a_byte(name):
    def damage(folder):
        path = folder / name
        middle = (data_offset(path) + path.stat().st_size) // 2
        with open(path, 'r+b') as f:
            f.seek(middle)
            byte = f.read(1)
            f.seek(middle)
            f.write(bytes([byte[0] ^ 0x40]))
    return damage


def remove(name):
    return lambda folder: (folder / name).unlink()


def resave(name, change):
    def damage(folder):
        np.save(folder / name, change(np.load(folder / name)))
    return damage


def edit_meta(change):
    def damage(folder):
        meta = json.loads((folder / 'meta.json').read_text())
        change(meta)
        (folder / 'meta.json').write_text(json.dumps(meta))
    return damage


def other_holdout(meta):
    meta['holdout_arms'] = [a for a in range(meta['d']) if a not in meta['holdout_arms']][:len(meta['holdout_arms'])]


DAMAGES = {
    'zeroed-train-rows-data': (zero_data('train_rows.npy'), 'train_rows.npy fails its checksum'),
    'zeroed-train-mask-data': (zero_data('train_mask.npy'), 'train_mask.npy fails its checksum'),
    'zeroed-val-rows-data': (zero_data('val_rows.npy'), 'val_rows.npy fails its checksum'),
    'zeroed-val-mask-data': (zero_data('val_mask.npy'), 'val_mask.npy fails its checksum'),
    'zeroed-paths-data': (zero_data('paths.npy'), 'paths.npy fails its checksum'),
    'one-flipped-byte': (flip_a_byte('train_rows.npy'), 'train_rows.npy fails its checksum'),
    'zeroed-header-and-data': (zero_file('train_rows.npy'), 'train_rows.npy is not a .npy file'),
    'truncated-array': (truncate('train_mask.npy', 0.5), 'train_mask.npy is '),
    'truncated-header': (lambda folder: os.truncate(folder / 'val_rows.npy', 40), 'val_rows.npy is not a .npy file'),
    'empty-array-file': (truncate('paths.npy', 0), 'paths.npy is not a .npy file'),
    'missing-array': (remove('val_rows.npy'), 'val_rows.npy is missing'),
    'array-of-the-wrong-shape': (resave('train_rows.npy', lambda a: a[:-1]), 'train_rows.npy holds uint16['),
    'array-of-the-wrong-dtype': (resave('train_mask.npy', lambda a: a.astype(np.uint8)),
                                 'train_mask.npy holds uint8'),
    'zeroed-meta': (zero_file('meta.json'), 'meta.json is not valid JSON'),
    'truncated-meta': (truncate('meta.json', 0.5), 'meta.json is not valid JSON'),
    'missing-meta': (remove('meta.json'), 'meta.json is missing'),
    'folder-for-meta': (lambda folder: [(folder / 'meta.json').unlink(), (folder / 'meta.json').mkdir()],
                        'meta.json is a folder'),
    'folder-for-an-array': (lambda folder: [(folder / 'paths.npy').unlink(), (folder / 'paths.npy').mkdir()],
                            'paths.npy is a folder'),
    'meta-that-is-not-an-object': (lambda folder: (folder / 'meta.json').write_text('[1, 2]'),
                                   'meta.json has no config'),
    'meta-disagreeing-on-the-row-count': (edit_meta(lambda m: m.update(num_train_rows=m['num_train_rows'] + 1)),
                                          'meta.json has wrong num_train_rows'),
    'meta-disagreeing-on-the-dtype': (edit_meta(lambda m: m.update(dtype='uint32')), 'meta.json has wrong dtype'),
    'meta-with-other-held-out-arms': (edit_meta(other_holdout), 'holdout_arms fails its checksum'),
    'meta-with-held-out-arms-that-are-not-numbers': (edit_meta(lambda m: m.update(holdout_arms=['a', None])),
                                                     "meta.json's holdout_arms are not a list of arm numbers"),
    'meta-of-another-config': (edit_meta(lambda m: m['config'].update(data_seed=1)),
                               "meta.json's config is not the one the folder name stands for"),
    'meta-with-a-wrong-checksum': (edit_meta(lambda m: m['arrays']['val_mask'].update(crc32='00000000')),
                                   'val_mask.npy fails its checksum'),
    'meta-without-array-records': (edit_meta(lambda m: m.pop('arrays')),
                                   "meta.json's array records do not match its config"),
}


@pytest.mark.parametrize('mmap', [False, True], ids=['read', 'mmap'])
@pytest.mark.parametrize('damage', list(DAMAGES))
def test_a_damaged_cache_is_never_used_but_rebuilt_with_one_line_naming_it(tmp_path, capsys, damage, mmap):
    first = load(tmp_path)
    folder = Path(first.path)
    fresh = digest(first)
    hurt, reason = DAMAGES[damage]
    hurt(folder)
    if damage.startswith('missing'):
        assert not pc.is_built(str(folder))  # a folder missing a file never counts as built
    with pytest.raises(pc.DamagedCache, match=re.escape(reason)):
        pc.load(str(folder), mmap=mmap)
    capsys.readouterr()

    data = ps.load_or_build({**SMALL, 'data_dir': str(tmp_path / 'data')}, verbose=False, mmap=mmap)
    out, err = capsys.readouterr()
    assert out == '' and re.fullmatch(rf"pathstar: the dataset cache {re.escape(str(folder))} was damaged "
                                      rf"\({re.escape(reason)}[^)\n]*\); rebuilding it\n", err), err
    assert 'allow_pickle' not in err and 'Traceback' not in err
    assert data.build_seconds is not None and digest(data) == fresh
    assert sorted(os.listdir(tmp_path / 'data')) == [folder.name, folder.name + '.lock']  # nothing set aside is left
    again = ps.load_or_build({**SMALL, 'data_dir': str(tmp_path / 'data')}, verbose=False, mmap=mmap)
    assert again.build_seconds is None and digest(again) == fresh and capsys.readouterr() == ('', '')


def test_meta_json_records_the_shape_dtype_and_crc32_of_every_array(tmp_path):
    data = load(tmp_path)
    records = json.loads(Path(data.path, 'meta.json').read_text())['arrays']
    assert set(records) == {*pc.ARRAYS, 'paths', 'holdout_arms'}
    for name in (*pc.ARRAYS, 'paths'):
        path = Path(data.path, name + '.npy')
        array = np.load(path, allow_pickle=False)
        body = path.read_bytes()[data_offset(path):]
        assert records[name] == dict(shape=list(array.shape), dtype=array.dtype.name,
                                     crc32=f'{zlib.crc32(body):08x}'), name
    held = np.array(data.meta['holdout_arms'], np.int64)
    assert records['holdout_arms']['crc32'] == f'{zlib.crc32(held.tobytes()):08x}'
    assert 'arrays' not in data.meta and 'arrays' not in load(tmp_path).meta  # built and loaded meta agree


def test_a_damaged_cache_that_cannot_be_moved_aside_is_one_config_error_naming_it(tmp_path, monkeypatch):
    folder = Path(load(tmp_path).path)
    zero_data('train_rows.npy')(folder)

    def refuse(*args):
        raise PermissionError(13, 'Permission denied')
    monkeypatch.setattr(os, 'rename', refuse)
    with pytest.raises(UserError) as err:
        load(tmp_path)
    assert str(err.value) == (f"data_dir: the dataset cache {folder} is damaged (train_rows.npy fails its "
                              f"checksum) and cannot be rebuilt (Permission denied); delete it")
    assert folder.is_dir() and not list((tmp_path / 'data').glob('*.tmp-*'))


def test_an_unreadable_cache_file_is_one_config_error_naming_the_folder(tmp_path, monkeypatch):
    folder = load(tmp_path).path
    real_open = open

    def deny(path, *args, **kwargs):
        if str(path).endswith('val_rows.npy'):
            raise PermissionError(13, 'Permission denied')
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr('builtins.open', deny)
    with pytest.raises(UserError) as err:
        load(tmp_path)
    assert str(err.value) == (f"data_dir: cannot read the dataset cache {folder}: Permission denied; "
                              f"fix its permissions or delete it")


def test_a_cache_array_holding_pickled_objects_is_refused_with_one_line(tmp_path):
    folder = load(tmp_path).path
    np.save(os.path.join(folder, 'val_rows.npy'), np.array([{'a': 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError) as err:
        load(tmp_path)
    assert str(err.value) == (f"data_dir: {folder}/val_rows.npy holds pickled objects, which pathstar never "
                              f"writes and will not read; delete {folder} and it is rebuilt")


def test_rebuilding_leaves_the_arrays_a_process_has_mapped_readable(tmp_path):
    mapped = ps.load_or_build({**SMALL, 'data_dir': str(tmp_path / 'data')}, verbose=False, mmap=True)
    fresh = digest(mapped)
    (Path(mapped.path) / 'val_mask.npy').unlink()
    rebuilt = load(tmp_path)  # moves the damaged folder aside and deletes it, then builds
    assert rebuilt.build_seconds is not None and digest(rebuilt) == digest(mapped) == fresh


CONCURRENT_LOADER = READY + """
data = pc.load_or_build(cfg, verbose=False, mmap=sys.argv[5] == '1')
h = hashlib.sha256(b''.join(np.ascontiguousarray(getattr(data, n)).tobytes() for n in pc.ARRAYS))
print(json.dumps(dict(built=data.build_seconds is not None, digest=h.hexdigest())))
"""


@pytest.mark.parametrize('damage', ['zeroed-train-rows-data', 'truncated-meta'])
def test_concurrent_loaders_of_a_damaged_cache_rebuild_it_once_and_all_get_the_right_arrays(tmp_path, damage):
    data_dir = tmp_path / 'data'
    cfg = dict(graph_d=2000, graph_l=5, data_dir=str(data_dir))
    good = ps.load_or_build(cfg, verbose=False)
    folder, fresh = Path(good.path), digest(good)
    DAMAGES[damage][0](folder)
    procs = started_together(CONCURRENT_LOADER, child_config(cfg, data_dir), tmp_path, 6, *[(i % 2,) for i in range(6)])
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    assert sum(r['built'] for r in results) == 1 and {r['digest'] for r in results} == {fresh}
    notices = ''.join(err for _, err in outputs).splitlines()
    assert len(notices) == 1 and notices[0].startswith(f'pathstar: the dataset cache {folder} was damaged')
    assert sorted(os.listdir(data_dir)) == [folder.name, folder.name + '.lock']


# -----------------------------------------------------------------------------
# files in the way, and waiting for the lock

def test_a_file_where_the_cache_folder_belongs_is_one_config_error_and_nothing_is_written(tmp_path):
    folder = Path(pc.cache_dir(checked({**SMALL, 'data_dir': str(tmp_path / 'data')})))
    folder.parent.mkdir()
    folder.write_text('not a folder\n')
    with pytest.raises(UserError) as err:
        load(tmp_path)
    assert str(err.value) == (f"data_dir: {folder} is a file where the dataset cache folder belongs; "
                              f"move it away or delete it")
    with pytest.raises(UserError):
        pc.build_locked(inweights.data_config(checked(SMALL)), str(folder))
    assert os.listdir(folder.parent) == [folder.name] and folder.read_text() == 'not a folder\n'


RENAMER = """
import os, sys, time
folder, until = sys.argv[1], time.time() + float(sys.argv[2])
print('go', flush=True)
while time.time() < until:
    os.rename(folder, folder + '.tmp-damaged-1')
    os.rename(folder + '.tmp-damaged-1', folder)
"""


def test_a_cache_folder_set_aside_while_it_is_checked_is_never_taken_for_a_file(tmp_path):
    # another loader renames a damaged folder away (set_aside) while this one checks the place
    folder = tmp_path / 'data' / 'pathstar_x'
    folder.mkdir(parents=True)
    renamer = subprocess.Popen([sys.executable, '-c', RENAMER, str(folder), '1.5'], stdout=subprocess.PIPE, text=True)
    assert renamer.stdout.readline() == 'go\n'
    checks = 0
    while renamer.poll() is None:
        pc.check_place(str(folder))
        checks += 1
    assert renamer.returncode == 0 and checks > 100


def test_a_dangling_symlink_where_the_cache_folder_belongs_is_one_config_error(tmp_path):
    folder = tmp_path / 'data' / 'pathstar_x'
    folder.parent.mkdir()
    folder.symlink_to(tmp_path / 'gone')
    with pytest.raises(UserError, match='is a file where the dataset cache folder belongs'):
        pc.check_place(str(folder))
    (tmp_path / 'gone').mkdir()
    pc.check_place(str(folder))  # a symlink to a folder is a folder


def test_a_data_dir_that_is_a_file_or_a_lock_that_is_a_folder_is_one_config_error(tmp_path):
    (tmp_path / 'data').write_text('x\n')
    with pytest.raises(UserError, match=r"^data_dir: '.*/data' is a file, not a folder; move it away"):
        load(tmp_path)
    (tmp_path / 'data').unlink()
    folder = Path(pc.cache_dir(checked({**SMALL, 'data_dir': str(tmp_path / 'data')})))
    Path(f'{folder}.lock').mkdir(parents=True)
    with pytest.raises(UserError, match=rf"^data_dir: {re.escape(str(folder))}\.lock is a folder where"):
        load(tmp_path)
    assert os.listdir(tmp_path / 'data') == [folder.name + '.lock']


# holds the lock of a dataset as a builder would, then stops itself: python3 -c HOLDER ROOT FOLDER MARKER
HOLDER = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from pathstar.data import cache as pc
with pc.build_lock(sys.argv[2]):
    open(sys.argv[3], 'w').close()
    os.kill(os.getpid(), signal.SIGSTOP)  # a stopped holder: the lock stays held until it is killed
"""

WAITER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from pathstar.data import cache as pc
pc.WAIT_NOTICE_SECONDS = 0.3
data = pc.load_or_build(json.loads(sys.argv[2]), verbose=False)
print(json.dumps(dict(built=data.build_seconds is not None)))
"""


def test_a_builder_waiting_behind_a_stopped_lock_holder_says_whom_it_waits_for(tmp_path):
    data_dir = tmp_path / 'data'
    folder = pc.cache_dir(checked({**SMALL, 'data_dir': str(data_dir)}))
    marker = tmp_path / 'holding'
    holder = subprocess.Popen([sys.executable, '-c', HOLDER, str(ROOT), folder, str(marker)])
    waiter = None
    try:
        deadline = time.time() + 30
        while not marker.exists():
            assert holder.poll() is None and time.time() < deadline
            time.sleep(0.02)
        assert Path(folder + '.lock').read_text() == f'{holder.pid} {socket.gethostname()}\n'
        notices = tmp_path / 'waiter.err'
        with open(notices, 'w') as err_file:
            waiter = subprocess.Popen([sys.executable, '-c', WAITER, str(ROOT), child_config(SMALL, data_dir)],
                                      stdout=subprocess.PIPE, stderr=err_file, text=True)
        while len(notices.read_text().splitlines()) < 2:  # waiting, and saying so every 0.3 s
            assert waiter.poll() is None and time.time() < deadline + 30, notices.read_text()
            time.sleep(0.05)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    out, _ = waiter.communicate(timeout=60)
    err = notices.read_text()
    assert waiter.returncode == 0 and json.loads(out) == dict(built=True), err
    lines = err.splitlines()
    assert len(lines) >= 2, err
    for line in lines:
        assert re.fullmatch(rf"pathstar: waiting for pid {holder.pid} on {re.escape(socket.gethostname())} to finish "
                            rf"building {re.escape(folder)} \(\d+ s so far\)", line), line
    assert Path(folder + '.lock').read_text() == ''  # a released lock names nobody


# -----------------------------------------------------------------------------
# the command line

def test_cli_builds_then_reuses_and_prints_a_few_decoded_rows(tmp_path):
    args = ['--graph_d=5', '--graph_l=4', f'--data_dir={tmp_path / "data"}']
    first = run_process(args, tmp_path)  # once as its own process; the other cases run in this one
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) < 20 and 'built in' in first.stdout
    assert any(re.search(r'\[EDGE\] > n\d+ n\d+$', line) for line in lines)
    assert any(re.search(r'\[EDGE\] < n\d+ n\d+$', line) for line in lines)
    assert sum(line.startswith('train path') and '[PATH] ' in line for line in lines) == 2
    assert sum(line.startswith('val path') and '[PATH] ' in line for line in lines) == 1  # 1 of 5 arms held out
    second = run_cli(args, tmp_path)
    assert second.returncode == 0 and 'reused' in second.stdout


@pytest.mark.parametrize('bad', ['--graph_d=1', '--graph_holdout_percentage=0.001', '--graph_l=four',
                                 '--graph_dd=5', 'graph_d=5'])
def test_cli_with_a_bad_value_exits_2_with_one_error_line_and_writes_nothing(tmp_path, bad):
    result = run_cli([f'--data_dir={tmp_path / "data"}', bad], tmp_path)
    assert result.returncode == 2
    assert result.stdout == '' and 'Traceback' not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith('error: ')
    assert sorted(os.listdir(tmp_path)) == []


def test_cli_rebuilds_a_zeroed_cache_saying_so_in_one_line(tmp_path):
    args = ['--graph_d=5', '--graph_l=4', f'--data_dir={tmp_path / "data"}']
    assert run_cli(args, tmp_path).returncode == 0
    folder = Path(pc.cache_dir(checked(dict(graph_d=5, graph_l=4, data_dir=str(tmp_path / 'data')))))
    zero_file('train_rows.npy')(folder)  # header and data: np.load alone would suggest allow_pickle
    result = run_cli(args, tmp_path)
    assert result.returncode == 0 and 'built in' in result.stdout
    assert result.stderr == (f"pathstar: the dataset cache {folder} was damaged (train_rows.npy is not a .npy "
                             f"file); rebuilding it\n")


def test_the_official_builder_makes_the_official_fixtures_graph():
    """../shared/fixtures/official holds the official builder's files for d=5, l=4, seed 0."""
    cfg = inweights.data_config(checked(dict(graph_d=5, graph_l=4, graph_vocab_size='1max', graph_builder='official',
                                             data_seed=0)))
    paths, held_out = inweights.draw_graph(cfg)[:2]
    assert (paths - token_ids.NODE_OFFSET).tolist() == [[10, 14, 5, 1], [10, 9, 2, 3], [10, 11, 13, 7], [10, 8, 4, 0],
                                                 [10, 6, 15, 12]]
    assert held_out.tolist() == [1, 2]  # the test file's leaves, 3 and 7
    for d in (4, 5, 10, 5000):
        assert common.holdout_count(d, 0.25, 'official') == d - int(0.75 * d)
