"""
The official code's files beyond the plain star (official.py, official_parse.py): star-trees
(deg_tree_k, graph='star_tree') and self-edges (selfedge_1) both ways, export then data_import; and
--export_official writing all three files or none.
"""
import os
from pathlib import Path

import numpy as np
import pytest

import pathstar_data as ps
from configurator import UserError
from conftest import ROOT, checked, cli_result
from pathstar import validate
from pathstar.data import inweights
from pathstar.graphs import official as official_files
from pathstar.tokens import NODE_OFFSET

FIXTURE = Path(ROOT) / 'tests' / 'fixtures' / 'official'
TREE = dict(graph='star_tree', graph_d=3, graph_l=4, star_subtree_degree=2, graph_holdout_percentage=0.25)
TREE_STEM = 'star_deg_3_deg_tree_2_path_4_nodes_22_sd_00_fb_11_selfedge_0'


def lines(path):
    return Path(path).read_text().splitlines()


def run_data_cli(args, cwd):
    """python3 pathstar_data.py args in cwd, in this process (conftest.run_cli)."""
    return cli_result(ps.main, args, cwd)


def relabelled_rows(data, labels):
    """data's train and val rows with every node token replaced by its label's rank (as the export numbers
    nodes), each split as a sorted list of row tuples."""
    rank = np.zeros(labels.max() + 1, np.int64)
    rank[labels] = np.arange(len(labels)) + NODE_OFFSET
    out = []
    for name in ('train_rows', 'val_rows'):
        rows = getattr(data, name).astype(np.int64)
        relabelled = np.where(rows >= NODE_OFFSET, rank[np.maximum(rows, NODE_OFFSET)], rows)
        out.append(sorted(map(tuple, relabelled.tolist())))
    return out


def same_graph_back(tmp_path, cfg):
    """Export cfg's graph, import the folder: the same rows up to the relabelling; returns (exported folder,
    the imported dataset)."""
    cfg = dict(cfg, path_replication=1, data_dir=str(tmp_path / 'data'))
    original = ps.load_or_build(cfg, verbose=False)
    ps.export_official(checked(cfg), str(tmp_path / 'exported'))
    imported = ps.load_or_build(dict(data_import=str(tmp_path / 'exported'), data_dir=str(tmp_path / 'data')),
                                verbose=False)
    labels = np.unique(original.meta['paths'])
    assert relabelled_rows(original, labels) == relabelled_rows(imported, np.arange(len(labels)) + NODE_OFFSET)
    return tmp_path / 'exported', imported


# -----------------------------------------------------------------------------
# star-trees

@pytest.mark.parametrize('subtree_holdout, held', [(False, 3), (True, 4)])
def test_a_star_tree_exports_in_the_official_layout_and_imports_back_to_the_same_graph(tmp_path, subtree_holdout,
                                                                                        held):
    folder, imported = same_graph_back(tmp_path, dict(TREE, subtree_holdout=subtree_holdout,
                                                      graph_holdout_percentage=0.34 if subtree_holdout else 0.25))
    assert sorted(os.listdir(folder)) == sorted(f'{TREE_STEM}_{kind}.txt' for kind in
                                                ('pretrain', f'train_{12 - held}', f'test_{held}'))
    pretrain = [tuple(map(int, line.split('='))) for line in lines(folder / f'{TREE_STEM}_pretrain.txt')]
    assert len(pretrain) == 2 * 21 and pretrain[:21] == sorted(pretrain[:21])  # sorted parent=child, then reversed
    assert pretrain[21:] == [(v, u) for u, v in pretrain[:21]]
    graph = official_files.read(str(folder))
    assert (graph.d, graph.l, graph.subtree_degree, len(graph.paths), len(graph.held_out)) == (3, 4, 2, 12, held)
    m = imported.meta
    assert (m['config']['graph'], m['config']['star_subtree_degree'], m['num_nodes']) == ('star_tree', 2, 22)
    assert m['config']['subtree_holdout'] is subtree_holdout and m['num_edge_rows'] == 42
    # the edges of the rows are the pretrain file's, the paths the train and test files' lines
    edge_len = m['edge_row_len']
    rows = imported.train_rows.astype(np.int64) - NODE_OFFSET
    assert {(row[edge_len - 2], row[edge_len - 1]) for row in rows[:42].tolist()} == set(pretrain)
    start = m['path_prompt_len']

    def as_lines(rows):
        return sorted(f"{row[start + 3]}=" + ','.join(map(str, row[start:start + 4])) for row in rows)
    assert as_lines(rows[42:].tolist()) == sorted(lines(folder / f'{TREE_STEM}_train_{12 - held}.txt'))
    val = (imported.val_rows.astype(np.int64) - NODE_OFFSET).tolist()
    assert as_lines(val) == sorted(lines(folder / f'{TREE_STEM}_test_{held}.txt'))


def test_the_pathstar_data_command_exports_a_star_tree_that_train_config_reads_back(tmp_path):
    result = run_data_cli(['--graph=star_tree', '--graph_d=3', '--graph_l=3', '--data_dir=data',
                           '--export_official', 'ex'], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ['ex'] and all('star_deg_3_deg_tree_2_path_3_nodes_10_' in name
                                                          for name in os.listdir(tmp_path / 'ex'))
    cfg = validate.parse_args([f'--data_import={tmp_path / "ex"}'])  # what train.py builds its config with
    assert (cfg['graph'], cfg['graph_d'], cfg['graph_l'], cfg['star_subtree_degree']) == ('star_tree', 3, 3, 2)


def tree_files(folder, edges, train, test, stem='star_deg_2_deg_tree_2_path_3_nodes_7_sd_00_fb_10_selfedge_0'):
    """Hand-written files in the official builder's star-tree layout."""
    folder.mkdir()
    (folder / f'{stem}_pretrain.txt').write_text(''.join(f'{u}={v}\n' for u, v in edges))
    for kind, paths in (('train', train), ('test', test)):
        (folder / f'{stem}_{kind}_{len(paths)}.txt').write_text(
            ''.join(f"{p[-1]}=" + ','.join(map(str, p)) + '\n' for p in paths))
    return folder


# root 6; its children 2 and 4, each with two leaves
EDGES = [(2, 0), (2, 5), (4, 1), (4, 3), (6, 2), (6, 4)]
PATHS = [[6, 2, 0], [6, 2, 5], [6, 4, 1], [6, 4, 3]]


def test_official_star_tree_files_set_the_star_tree_keys(tmp_path):
    folder = tree_files(tmp_path / 'g', EDGES, PATHS[:2] + PATHS[3:], PATHS[2:3])
    cfg = validate.build_config(dict(data_import=str(folder)))
    assert (cfg['graph'], cfg['graph_d'], cfg['graph_l'], cfg['star_subtree_degree']) == ('star_tree', 2, 3, 2)
    assert (cfg['graph_vocab_size'], cfg['use_undirected'], cfg['subtree_holdout']) == (7, False, False)
    assert cfg['graph_holdout_percentage'] == pytest.approx(0.25)
    paths, held_out, edges, nodes = inweights.draw_graph(inweights.data_config(cfg))
    assert (paths - NODE_OFFSET).tolist() == PATHS and held_out.tolist() == [2]
    assert (edges - NODE_OFFSET).tolist() == [[6, 2], [2, 0], [2, 5], [6, 4], [4, 1], [4, 3]]  # arm by arm
    assert (nodes - NODE_OFFSET).tolist() == [6, 2, 0, 5, 4, 1, 3]
    whole = tree_files(tmp_path / 'whole', EDGES, PATHS[:2], PATHS[2:])
    assert validate.build_config(dict(data_import=str(whole)))['subtree_holdout'] is True
    assert validate.build_config(dict(data_import=str(whole), subtree_holdout=False))['subtree_holdout'] is False
    with pytest.raises(UserError, match=r"^subtree_holdout: data_import's .*_test_1\.txt makes subtree_holdout=False"):
        validate.build_config(dict(data_import=str(folder), subtree_holdout=True))
    with pytest.raises(UserError, match=r"^graph: data_import's .* makes graph='star_tree', but graph='star'"):
        validate.build_config(dict(data_import=str(folder), graph='star'))


@pytest.mark.parametrize('edges, stem, expect, line', [
    (EDGES + [(6, 8)], None, 'leaf 8 is at depth 1 below the root 6, leaf 0 at depth 2', 7),
    (EDGES + [(5, 7)], None, 'the leaves are not all equally deep below one root: nodes 2 and 6', 5),
    (EDGES + [(2, 7)], None, 'node 2 has 3 children, but deg_tree_2 in the name says 2', 5),
    (EDGES + [(0, 5)], None, 'close a cycle', 1),
    (EDGES + [(7, 8), (8, 9), (9, 7)], None, 'close a cycle', 7),
    (EDGES, 'star_deg_3_deg_tree_2_path_3_nodes_7_sd_00_fb_10', 'the name says star_deg_3 but the edges make a '
                                                               'star-tree of 2 subtrees', None),
])
def test_edges_that_are_not_the_named_star_tree_are_one_line_naming_the_line(tmp_path, edges, stem, expect, line):
    folder = tree_files(tmp_path / 'g', edges, PATHS[:3], PATHS[3:], stem or 'g_deg_tree_2')
    with pytest.raises(UserError) as e:
        validate.build_config(dict(data_import=str(folder)))
    message = str(e.value)
    assert '\n' not in message and message.startswith('data_import: ') and '_pretrain.txt' in message, message
    assert expect in message and ((f', line {line}: ' in message) if line else (', line ' not in message)), message


def test_a_star_tree_path_line_is_checked_against_the_tree(tmp_path):
    folder = tree_files(tmp_path / 'g', EDGES, [PATHS[0], [6, 4, 0]], PATHS[2:])
    with pytest.raises(UserError, match=r'_train_2\.txt, line 2: 4 to 0 is not a step'):
        validate.build_config(dict(data_import=str(folder)))
    folder = tree_files(tmp_path / 'h', EDGES, PATHS[:2], PATHS[2:3])
    with pytest.raises(UserError, match='the branch to leaf 3 has no path in the train or test file; the 4 leaves'):
        validate.build_config(dict(data_import=str(folder)))


# -----------------------------------------------------------------------------
# self-edges

@pytest.mark.parametrize('graph', [dict(graph_d=4, graph_l=3), TREE])
def test_self_edges_export_as_selfedge_1_files_and_import_back(tmp_path, graph):
    folder, imported = same_graph_back(tmp_path, dict(graph, add_self_edges=True, graph_vocab_size='1max'))
    pretrain = next(name for name in os.listdir(folder) if name.endswith('_pretrain.txt'))
    assert '_selfedge_1_pretrain' in pretrain
    n = imported.meta['num_nodes']
    assert lines(folder / pretrain)[-n:] == [f'{v}={v}' for v in range(n)]  # after the edges, as the builder has it
    assert imported.meta['config']['add_self_edges'] is True
    assert imported.meta['num_edge_rows'] == 2 * (n - 1) + n


def self_edge_files(tmp_path, change):
    """The fixture as selfedge_1 files, the self-edge lines changed by change(lines)."""
    folder = tmp_path / 'self'
    folder.mkdir()
    for name in os.listdir(FIXTURE):
        if name.endswith('.txt'):
            text = lines(FIXTURE / name)
            if name.endswith('_pretrain.txt'):
                text = change(text + [f'{v}={v}' for v in range(16)])
            (folder / name.replace('selfedge_0', 'selfedge_1')).write_text(''.join(t + '\n' for t in text))
    return folder


@pytest.mark.parametrize('change, expect, line', [
    (lambda text: text[:-1], 'node 15 has no self-edge 15=15', None),
    (lambda text: text[:30], 'node 0 has no self-edge 0=0', None),
    (lambda text: text + ['3=3'], '3=3 repeats line 34; the official builder lists each self-edge once', 47),
    (lambda text: text, None, None),
])
def test_selfedge_1_files_list_each_node_s_self_edge_once(tmp_path, change, expect, line):
    folder = self_edge_files(tmp_path, change)
    if expect is None:
        assert validate.build_config(dict(data_import=str(folder)))['add_self_edges'] is True
        return
    with pytest.raises(UserError) as e:
        validate.build_config(dict(data_import=str(folder)))
    message = str(e.value)
    assert expect in message and ((f', line {line}: ' in message) if line else (', line ' not in message)), message


def test_a_self_edge_of_an_id_outside_the_graph_is_refused(tmp_path):
    folder = self_edge_files(tmp_path, lambda text: text)
    for name in os.listdir(folder):
        os.rename(folder / name, folder / name.replace('nodes_16', 'nodes_17'))
    pretrain = next(folder.glob('*_pretrain.txt'))
    pretrain.write_text(pretrain.read_text() + '16=16\n')
    with pytest.raises(UserError, match=r'line 47: 16=16 is the self-edge of 16, which is no node of the graph'):
        validate.build_config(dict(data_import=str(folder)))


def test_self_edges_are_decided_by_the_files_name(tmp_path):
    folder = self_edge_files(tmp_path, lambda text: text)
    with pytest.raises(UserError, match=r"^add_self_edges: data_import's .* makes add_self_edges=True, but "
                                        r"add_self_edges=False was set"):
        validate.build_config(dict(data_import=str(folder), add_self_edges=False))
    # selfedge_0 files with add_self_edges=True: self-edge rows on top, as before
    assert validate.build_config(dict(data_import=str(FIXTURE), add_self_edges=True))['add_self_edges'] is True


# -----------------------------------------------------------------------------
# all three files or none

def test_a_failure_on_the_third_file_leaves_no_file(tmp_path):
    cfg = checked(dict(graph_d=4, graph_l=3, graph_vocab_size='1max', data_dir=str(tmp_path / 'data')))
    folder = tmp_path / 'ex'
    names = list(official_files.file_texts(*graph_ids(cfg)))
    assert len(names) == 3
    blocker = folder / f'{names[2]}.tmp-{os.getpid()}'  # the third file cannot be written
    blocker.mkdir(parents=True)
    with pytest.raises(UserError) as e:
        ps.export_official(cfg, str(folder))
    assert '\n' not in str(e.value) and str(e.value).startswith('export_official: cannot write ')
    assert 'nothing was written' in str(e.value)
    assert os.listdir(folder) == [blocker.name] and blocker.is_dir()  # the blocker is not ours to remove
    blocker.rmdir()
    assert len(ps.export_official(cfg, str(folder))) == 3 and sorted(os.listdir(folder)) == sorted(names)


def graph_ids(cfg):
    paths, held_out = inweights.draw_graph(inweights.data_config(cfg))[:2]
    return paths - NODE_OFFSET, held_out, cfg['use_undirected']


def test_a_folder_with_another_graph_s_files_is_refused_and_nothing_written(tmp_path):
    folder = tmp_path / 'ex'
    folder.mkdir()
    for name in os.listdir(FIXTURE):
        (folder / name).write_bytes((FIXTURE / name).read_bytes())
    before = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    result = run_data_cli(['--graph_d=4', '--graph_l=3', '--data_dir=data', '--export_official', 'ex'], tmp_path)
    assert result.returncode == 2 and result.stdout == '' and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: export_official: ex holds another graph's official files (star_deg_5_")
    assert {name: (folder / name).read_bytes() for name in os.listdir(folder)} == before
    assert sorted(os.listdir(tmp_path)) == ['ex']


@pytest.mark.parametrize('args, named', [(['--graph=grid'], "graph='grid'"), (['--graph=cycle'], "graph='cycle'"),
                                         (['--graph=irregular'], "graph='irregular'"),
                                         (['--task=in_context', '--graph_d=3'], "task='in_context'")])
def test_what_the_files_cannot_hold_is_refused_naming_the_key_and_value(tmp_path, args, named):
    result = run_data_cli([*args, '--data_dir=data', '--export_official', 'ex'], tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and named in result.stderr
    assert os.listdir(tmp_path) == []
