"""
The official code's files (official_files.py): importing one graph's three files with data_import,
and writing any of our graphs in that format with pathstar_data.py --export_official DIR.

The sample is tests/fixtures/official (a copy of ../shared/fixtures/official): the
official builder's files for d=5, l=4, random_seed 0, 16 nodes, 3 training and 2 held-out paths.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import configurator
from pathstar.graphs import official as official_files
import pathstar_data as ps
import train
from configurator import UserError
from conftest import ROOT, cli_result
from pathstar.tokens import NODE_OFFSET
from conftest import checked
from pathstar.data import inweights
from pathstar.data import cache as pc
from pathstar import validate

FIXTURE = Path(ROOT) / 'tests' / 'fixtures' / 'official'  # files the official code's builder wrote

STEM = 'star_deg_5_deg_tree_1_path_4_nodes_16_sd_00_fb_11_selfedge_0'
NAMES = dict(pretrain=f'{STEM}_pretrain.txt', train=f'{STEM}_train_3.txt', test=f'{STEM}_test_2.txt')
# the fixture's graph: root 10, arms sorted by their first hop; the test file holds the arms to leaves 3 and 7
ARMS = [[10, 6, 15, 12], [10, 8, 4, 0], [10, 9, 2, 3], [10, 11, 13, 7], [10, 14, 5, 1]]


def lines(path):
    return Path(path).read_text().splitlines()


def sample(tmp_path, name='official'):
    """A writable copy of the fixture's three files."""
    folder = tmp_path / name
    folder.mkdir()
    for file in NAMES.values():
        shutil.copy(FIXTURE / file, folder / file)
    return folder


def data_cfg(tmp_path, folder, **overrides):
    return dict(data_import=str(folder), data_dir=str(tmp_path / 'data'), **overrides)


def path_rows_as_lists(rows, meta):
    """The root..leaf token ids of path rows, as official-id lists."""
    start = meta['path_prompt_len']
    return [(np.asarray(row[start:start + meta['l']], np.int64) - NODE_OFFSET).tolist() for row in rows]


def path_line(path):
    return f"{path[-1]}=" + ','.join(map(str, path))


# -----------------------------------------------------------------------------
# importing

def test_the_imported_fixture_is_that_exact_graph(tmp_path):
    data = ps.load_or_build(data_cfg(tmp_path, FIXTURE), verbose=False)
    m = data.meta
    assert (m['d'], m['l'], m['num_nodes']) == (5, 4, 16)
    assert m['graph_vocab_size'] == 16 and m['vocab_size'] == 16 + NODE_OFFSET  # exactly N
    assert (m['paths'] - NODE_OFFSET).tolist() == ARMS  # node label k is the official id k
    assert m['holdout_arms'].tolist() == [2, 3]
    assert m['config']['path_replication'] == 1 and m['config']['use_undirected'] is True
    assert m['config']['graph_holdout_percentage'] == pytest.approx(0.4)

    # 2 (N - 1) edge rows: the pretrain file's lines, both ways
    n_edges = m['num_edge_rows']
    assert n_edges == 2 * (16 - 1) == len(lines(FIXTURE / NAMES['pretrain']))
    edge_len = m['edge_row_len']
    pairs = {(int(row[edge_len - 2]) - NODE_OFFSET, int(row[edge_len - 1]) - NODE_OFFSET)
             for row in data.train_rows[:n_edges]}
    assert pairs == {tuple(map(int, line.split('='))) for line in lines(FIXTURE / NAMES['pretrain'])}

    # each training path once, the held-out paths as validation
    trained = path_rows_as_lists(data.train_rows[n_edges:], m)
    assert len(trained) == 3 and sorted(map(path_line, trained)) == sorted(lines(FIXTURE / NAMES['train']))
    held_out = path_rows_as_lists(data.val_rows, m)
    assert len(held_out) == 2 and sorted(map(path_line, held_out)) == sorted(lines(FIXTURE / NAMES['test']))


def test_the_files_decide_the_graph_keys_and_an_equal_explicit_value_is_fine():
    cfg = validate.build_config(dict(data_import=str(FIXTURE)))
    assert (cfg['graph_d'], cfg['graph_l'], cfg['graph_vocab_size'], cfg['use_undirected']) == (5, 4, 16, True)
    assert cfg['graph_holdout_percentage'] == pytest.approx(0.4) and cfg['path_replication'] == 1
    same = validate.build_config(dict(data_import=str(FIXTURE), graph_d=5, graph_l='4', graph_vocab_size='1max',
                                          graph_holdout_percentage=0.25, graph_builder='official',
                                          use_undirected='true', path_replication=3))
    assert same['graph_vocab_size'] == 16 and same['graph_holdout_percentage'] == pytest.approx(0.4)
    assert same['path_replication'] == 3  # set explicitly, so kept


@pytest.mark.parametrize('key, value, file', [('graph_d', 6, 'pretrain'), ('graph_l', 5, 'pretrain'),
                                              ('graph_vocab_size', 32, 'pretrain'),
                                              ('use_undirected', False, 'pretrain'),
                                              ('graph_holdout_percentage', 0.2, 'test')])
def test_a_conflicting_explicit_override_is_one_line_naming_the_key_both_values_and_the_file(key, value, file):
    with pytest.raises(UserError) as e:
        validate.build_config({'data_import': str(FIXTURE), key: value})
    message = str(e.value)
    assert '\n' not in message and message.startswith(f'{key}: ')
    assert NAMES[file] in message and f'={value!r}' in message
    found = official_files.read(str(FIXTURE)).config_keys()[key][0]
    assert f'{key}={found!r}' in message


def test_the_vocabulary_is_nodes_n_of_the_names_else_the_largest_id_plus_one(tmp_path):
    plain = tmp_path / 'plain'
    plain.mkdir()
    for kind, name in NAMES.items():
        shutil.copy(FIXTURE / name, plain / name.replace(STEM, 'graph'))
    assert validate.build_config(dict(data_import=str(plain)))['graph_vocab_size'] == 16
    wide = tmp_path / 'wide'
    wide.mkdir()
    for kind, name in NAMES.items():
        shutil.copy(FIXTURE / name, wide / name.replace('nodes_16', 'nodes_40'))
    data = ps.load_or_build(data_cfg(tmp_path, wide), verbose=False)
    assert data.meta['graph_vocab_size'] == 40 and data.meta['vocab_size'] == 40 + NODE_OFFSET


def test_forward_only_files_import_with_use_undirected_false(tmp_path):
    folder = tmp_path / 'forward'
    folder.mkdir()
    for kind, name in NAMES.items():
        text = lines(FIXTURE / name)[:15] if kind == 'pretrain' else lines(FIXTURE / name)
        (folder / name.replace('fb_11', 'fb_10')).write_text(''.join(line + '\n' for line in text))
    data = ps.load_or_build(data_cfg(tmp_path, folder), verbose=False)
    assert data.meta['config']['use_undirected'] is False and data.meta['num_edge_rows'] == 15


def test_an_edited_file_is_another_cache_folder(tmp_path):
    from pathstar.data import cache as pathstar_cache
    folder = sample(tmp_path)
    before = pathstar_cache.cache_dir(checked(data_cfg(tmp_path, folder)))
    train_file = folder / NAMES['train']
    train_file.write_text(''.join(line + '\n' for line in reversed(lines(train_file))))  # the same graph, reordered
    after = pathstar_cache.cache_dir(checked(data_cfg(tmp_path, folder)))
    assert after != before
    assert ps.load_or_build(data_cfg(tmp_path, folder), verbose=False).path == after


# -----------------------------------------------------------------------------
# training on it, exporting it, importing it again

def test_the_sample_fixture_imports_trains_exports_and_reimports_to_identical_rows(tmp_path):
    cfg = dict(data_import=str(FIXTURE), data_dir=str(tmp_path / 'data'), out_dir=str(tmp_path / 'out'),
               device='cpu', n_layer=1, n_embd=32, n_head=2, epochs=5, eval_interval=5, log_interval=5,
               num_pause_tokens=1)
    summary = train.train(cfg)
    assert summary['iter'] == summary['max_iters'] > 0 and summary['train_rows'] == 30 + 3
    assert os.path.isfile(tmp_path / 'out' / 'summary.json')

    printed = ps.export_official(checked(cfg), str(tmp_path / 'exported'))
    assert printed == [f"wrote {tmp_path / 'exported' / name} ({n} line{'' if n == 1 else 's'})"
                       for name, n in zip(NAMES.values(), (30, 3, 2))]
    assert sorted(os.listdir(tmp_path / 'exported')) == sorted(NAMES.values())
    pretrain = NAMES['pretrain']
    assert (tmp_path / 'exported' / pretrain).read_bytes() == (FIXTURE / pretrain).read_bytes()
    for kind in ('train', 'test'):
        assert sorted(lines(tmp_path / 'exported' / NAMES[kind])) == sorted(lines(FIXTURE / NAMES[kind]))

    first = ps.load_or_build(cfg, verbose=False)
    again = ps.load_or_build(dict(cfg, data_import=str(tmp_path / 'exported')), verbose=False)
    assert again.path != first.path
    for name in pc.ARRAYS:
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert np.array_equal(first.meta['paths'], again.meta['paths'])


def run_data_cli(args, cwd):
    """python3 pathstar_data.py args in cwd, in this process (conftest.run_cli)."""
    return cli_result(ps.main, args, cwd)


def test_the_official_builder_config_exports_exactly_the_fixtures_files(tmp_path):
    args = ['--graph_builder=official', '--data_seed=0', '--graph_d=5', '--graph_l=4', '--graph_vocab_size=1max',
            '--data_dir=data', '--export_official', 'exported']
    result = run_data_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"wrote exported/{name} ({n} line{'' if n == 1 else 's'})"
                                          for name, n in zip(NAMES.values(), (30, 3, 2))]
    assert sorted(os.listdir(tmp_path)) == ['exported']  # no dataset cache was built
    assert sorted(os.listdir(tmp_path / 'exported')) == sorted(NAMES.values())
    assert (tmp_path / 'exported' / NAMES['pretrain']).read_bytes() == (FIXTURE / NAMES['pretrain']).read_bytes()
    for kind in ('train', 'test'):
        assert set(lines(tmp_path / 'exported' / NAMES[kind])) == set(lines(FIXTURE / NAMES[kind]))

    again = run_data_cli(args, tmp_path)  # the files are there now: refused, nothing changed
    assert again.returncode == 2 and again.stdout == ''
    assert again.stderr.startswith('error: export_official: ') and 'exists already' in again.stderr
    assert len(again.stderr.splitlines()) == 1
    assert (tmp_path / 'exported' / NAMES['pretrain']).read_bytes() == (FIXTURE / NAMES['pretrain']).read_bytes()
    assert sorted(os.listdir(tmp_path / 'exported')) == sorted(NAMES.values())  # no temp file left


@pytest.mark.parametrize('undirected', [True, False])
def test_any_graph_exports_relabelled_to_ranks_and_imports_back_to_the_same_rows(tmp_path, undirected):
    cfg = dict(graph_d=6, graph_l=4, graph_holdout_percentage=0.34, use_undirected=undirected, path_replication=1,
               data_dir=str(tmp_path / 'data'))
    original = ps.load_or_build(cfg, verbose=False)
    printed = ps.export_official(checked(cfg), str(tmp_path / 'exported'))
    assert printed[0].startswith('node labels relabelled to their ranks 0..18') and len(printed) == 4
    fb = '11' if undirected else '10'
    assert sorted(os.listdir(tmp_path / 'exported')) == sorted(
        f'star_deg_6_deg_tree_1_path_4_nodes_19_sd_00_fb_{fb}_selfedge_0_{split}.txt'
        for split in ('pretrain', 'train_4', 'test_2'))
    imported = ps.load_or_build(dict(data_import=str(tmp_path / 'exported'), data_dir=str(tmp_path / 'data')),
                                verbose=False)
    assert imported.meta['config']['use_undirected'] is undirected
    # the same rows up to the relabelling (ranks) and the order of the arms
    labels = np.unique(original.meta['paths'])
    rank = np.zeros(labels.max() + 1, np.int64)
    rank[labels] = np.arange(len(labels)) + NODE_OFFSET
    for name in ('train_rows', 'val_rows'):
        rows = getattr(original, name).astype(np.int64)
        relabelled = np.where(rows >= NODE_OFFSET, rank[np.maximum(rows, NODE_OFFSET)], rows)
        assert sorted(map(tuple, relabelled.tolist())) == sorted(map(tuple, getattr(imported, name).tolist()))


def test_a_graph_with_labels_in_range_n_exports_them_as_they_are(tmp_path):
    cfg = dict(graph_d=4, graph_l=3, graph_vocab_size='1max', graph_holdout_percentage=0.25)
    printed = ps.export_official(checked(cfg), str(tmp_path / 'exported'))
    assert len(printed) == 3 and all(line.startswith('wrote ') for line in printed)
    paths, held_out = inweights.draw_graph(inweights.data_config(checked(cfg)))[:2]
    imported = official_files.read(str(tmp_path / 'exported'))
    ours = sorted((paths - NODE_OFFSET).tolist())
    assert imported.paths.tolist() == ours
    assert {tuple(imported.paths[a]) for a in imported.held_out} == {tuple(paths[a] - NODE_OFFSET) for a in held_out}


@pytest.mark.parametrize('args, expect', [(['--export_official'], 'expected a folder'),
                                          (['--export_official', '--graph_d=5'], 'expected a folder'),
                                          (['--export_official=a', '--export_official=b'], 'given twice'),
                                          (['--export_official=x', '--graph_d=1'], 'graph_d: must be >= 2')])
def test_a_bad_export_command_line_exits_2_with_one_line_and_writes_nothing(tmp_path, args, expect):
    result = run_data_cli(['--data_dir=data', *args], tmp_path)
    assert result.returncode == 2 and result.stdout == '' and 'Traceback' not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith('error: ') and expect in result.stderr
    assert os.listdir(tmp_path) == []


# -----------------------------------------------------------------------------
# bad files: one line naming the file and the line, nothing written

def edit(kind, change):
    """A damage: change(lines) -> the new lines of that file."""
    def damage(folder):
        path = folder / NAMES[kind]
        path.write_text(''.join(line + '\n' for line in change(lines(path))))
        return path.name
    return damage


def rename(kind, new_name):
    def damage(folder):
        (folder / NAMES[kind]).rename(folder / new_name)
        return new_name
    return damage


def delete(kind):
    def damage(folder):
        (folder / NAMES[kind]).unlink()
        return folder.name
    return damage


def second(kind):
    def damage(folder):
        shutil.copy(folder / NAMES[kind], folder / NAMES[kind].replace(STEM, 'another'))
        return folder.name
    return damage


def rename_all(old, new):
    """Every file's name with old replaced by new."""
    def damage(folder):
        for path in folder.iterdir():
            path.rename(folder / path.name.replace(old, new))
        return NAMES['pretrain'].replace(old, new)
    return damage


def then(first, last):
    return lambda folder: (first(folder), last(folder))[1]


def set_line(number, text):
    return lambda old: [text if i == number else line for i, line in enumerate(old, 1)]


BAD = {  # name: (damage, the line it names or None, text the message holds)
    'missing-file': (delete('test'), None, 'no *_test_<m>.txt file'),
    'two-files-of-one-kind': (second('train'), None, '2 *_train_<n>.txt files'),
    'malformed-edge-line': (edit('pretrain', set_line(3, '5=x')), 3, "expected an edge u=v of two node ids, got '5=x'"),
    'malformed-path-line': (edit('train', set_line(2, '0=10;8;4;0')), 2, 'expected a path leaf=root,..,leaf'),
    'path-not-along-the-edges': (edit('train', set_line(2, '0=10,4,8,0')), 2, '10 to 4 is not a step'),
    'path-not-from-the-root': (edit('test', set_line(1, '3=9,2,3')), 1, 'starts at 9, not at the root 10'),
    'prompt-is-not-the-leaf': (edit('test', set_line(2, '3=10,11,13,7')), 2, 'the prompt 3 is not the path'),
    'id-out-of-range': (edit('pretrain', set_line(4, '5=16')), 4, 'node id 16 is out of range(16)'),
    'path-id-out-of-range': (edit('train', set_line(3, '99=10,14,5,99')), 3, 'node id 99 is out of range(16)'),
    'duplicate-leaves': (edit('test', set_line(2, '12=10,6,15,12')), 2, 'leaf 12 already has a path'),
    'more-paths-than-the-name-says': (edit('train', lambda old: old + ['3=10,9,2,3']), 4,
                                      'but the file name says train_3'),
    'fewer-paths-than-the-name-says': (rename('train', NAMES['train'].replace('train_3', 'train_4')), 3,
                                       'the file ends after 3 paths, but its name says train_4'),
    'an-arm-without-a-path': (then(edit('test', lambda old: old[:1]),
                                   rename('test', NAMES['test'].replace('test_2', 'test_1'))), None,
                              'the arm to leaf 7 has no path in the train or test file'),
    'self-edge-line': (edit('pretrain', lambda old: old + ['0=0']), 31, '0=0 is a self-edge'),
    'self-edge-files-without-self-edges': (rename_all('selfedge_0', 'selfedge_1'), None,
                                           'node 0 has no self-edge 0=0, though the name says selfedge_1'),
    'star-named-a-star-tree': (rename_all('deg_tree_1', 'deg_tree_2'), 7,
                               'node 6 has 1 children, but deg_tree_2 in the name says 2'),
    'root-in-the-prompt-files': (rename_all('sd_00', 'sd_10'), None, 'sd_10: paths prompted with the root'),
    'backward-only-files': (rename_all('fb_11', 'fb_01'), None, 'backward edges only'),
    'forward-only-name-for-two-way-edges': (rename_all('fb_11', 'fb_10'), None, 'the name says fb_10'),
    'name-says-another-degree': (rename_all('star_deg_5', 'star_deg_6'), None, 'the name says star_deg_6'),
    'names-of-two-graphs': (rename('test', NAMES['test'].replace('path_4', 'path_5')), None, 'differ before'),
    'root-in-the-prompt': (edit('train', set_line(1, '10,12=10,6,15,12')), 1, 'holds the root as well'),
    'one-way-edge-among-two-way-ones': (edit('pretrain', lambda old: old[:-1]), 15, '15=12 has no reverse 12=15'),
    'two-roots': (edit('pretrain', lambda old: old + ['14=15', '15=14']), 31,
                  'nodes 10 and 14 both have more than 2 neighbours'),
    'repeated-edge': (edit('pretrain', lambda old: old + ['2=3']), 31, '2=3 repeats line 1'),
    'empty-pretrain': (edit('pretrain', lambda old: []), None, 'no edges'),
}


@pytest.mark.parametrize('name', BAD)
def test_a_bad_file_is_one_line_naming_the_file_and_the_line(tmp_path, name):
    damage, line, expect = BAD[name]
    folder = sample(tmp_path)
    named = damage(folder)
    with pytest.raises(UserError) as e:
        validate.build_config(dict(data_import=str(folder)))
    message = str(e.value)
    assert '\n' not in message and message.startswith('data_import: ') and named in message, message
    assert expect in message, message
    if line is not None:
        assert f', line {line}: ' in message, message
    else:
        assert ', line ' not in message


def star_files(folder, edges, train_paths, test_paths, stem='g'):
    """Three hand-written files of a graph that may not be a path-star."""
    folder.mkdir()
    (folder / f'{stem}_pretrain.txt').write_text(''.join(f'{u}={v}\n' for u, v in edges))
    for kind, paths in (('train', train_paths), ('test', test_paths)):
        (folder / f'{stem}_{kind}_{len(paths)}.txt').write_text(''.join(path_line(p) + '\n' for p in paths))
    return folder


def both_ways(edges):
    return list(edges) + [(v, u) for u, v in edges]


@pytest.mark.parametrize('edges, expect, line', [
    (both_ways([(0, 1), (1, 2), (0, 3), (3, 4), (0, 5)]), 'the arm through 5 has 1 nodes below the root 0', 5),
    (both_ways([(0, 1), (1, 2), (0, 3), (3, 4), (0, 5), (5, 6), (1, 7), (7, 8)]), 'nodes 0 and 1 both have', 7),
    (both_ways([(0, 1), (1, 2), (0, 3), (3, 4), (0, 5), (5, 6), (7, 8), (8, 9), (9, 7)]), 'not connected', 7),
    (both_ways([(0, 1), (1, 2), (0, 3), (3, 4), (0, 5), (5, 6), (2, 4)]), 'closes a cycle', 3),
    ([(0, 1), (1, 2), (0, 3), (4, 3), (0, 5), (5, 6)], '4=3 points towards the root 0', 4),
    (both_ways([(0, 1), (1, 2), (2, 3)]), 'no middle node', None),
])
def test_edges_that_are_not_a_path_star_are_refused_naming_the_line(tmp_path, edges, expect, line):
    folder = star_files(tmp_path / 'g', edges, [[0, 1, 2]], [])
    with pytest.raises(UserError) as e:
        official_files.read(str(folder))
    message = str(e.value)
    assert message.startswith(f'data_import: {folder / "g_pretrain.txt"}') and expect in message, message
    assert (f', line {line}: ' in message) if line else (', line ' not in message), message


def test_a_star_with_two_arms_finds_its_root_in_the_middle(tmp_path):
    folder = star_files(tmp_path / 'g', both_ways([(5, 1), (1, 2), (5, 3), (3, 4)]), [[5, 1, 2]], [[5, 3, 4]])
    graph = official_files.read(str(folder))
    assert graph.paths.tolist() == [[5, 1, 2], [5, 3, 4]] and graph.held_out.tolist() == [1]
    assert graph.vocab_size == 6 and graph.undirected


def test_a_folder_that_is_missing_or_a_file_is_one_line(tmp_path):
    for path, expect in ((tmp_path / 'nowhere', 'no such folder'), (FIXTURE / NAMES['train'], 'is a file')):
        with pytest.raises(UserError, match=expect):
            validate.build_config(dict(data_import=str(path)))


@pytest.mark.parametrize('name', ['missing-file', 'path-not-along-the-edges', 'duplicate-leaves', 'self-edge-line',
                                  'fewer-paths-than-the-name-says'])
def test_train_py_exits_2_on_bad_files_with_one_line_and_writes_nothing(tmp_path, capsys, name):
    folder = sample(tmp_path)
    damage, line, expect = BAD[name]
    damage(folder)
    argv = [f'--data_import={folder}', f'--data_dir={tmp_path / "data"}', f'--out_dir={tmp_path / "out"}',
            '--device=cpu', '--n_layer=1', '--n_head=2', '--n_embd=32', '--max_iters=2']
    with pytest.raises(SystemExit) as e:
        configurator.exit_on_user_error(lambda: train.main(argv))
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert out == '' and err.startswith('error: data_import: ') and len(err.splitlines()) == 1 and expect in err
    assert sorted(os.listdir(tmp_path)) == ['official']


def test_train_py_as_a_command_exits_2_on_a_bad_file(tmp_path):
    folder = sample(tmp_path)
    BAD['id-out-of-range'][0](folder)
    result = subprocess.run([sys.executable, str(Path(ROOT) / 'train.py'), f'--data_import={folder}',
                             '--data_dir=data', '--out_dir=out', '--device=cpu'],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == '' and 'Traceback' not in result.stderr
    assert result.stderr == (f"error: data_import: {folder / NAMES['pretrain']}, line 4: node id 16 is out of "
                             f"range(16) (nodes_16 in the file names)\n")
    assert sorted(os.listdir(tmp_path)) == ['official']
