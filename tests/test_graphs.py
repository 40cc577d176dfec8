"""The graph families (graphs.py): each graph checked against its definition by an independent
construction here, the rows built from it, the validator's one-line errors, and a tiny run of every
family through training, evaluation and analysis."""
import json
import os
from collections import deque

import numpy as np
import pytest
import torch

import analyze
import configurator
from pathstar.training import evaluate
from pathstar import graphs
from pathstar.graphs import irregular
import train
from conftest import checked, cli_result
from pathstar.data import inweights
from pathstar import tokens
from pathstar import validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(**overrides):
    return graphs.build(validate.build_config(overrides))


def edge_set(edges):
    return {tuple(sorted(map(int, e))) for e in edges}


def neighbours(n, edges):
    adj = [set() for _ in range(n)]
    for u, v in edges:
        adj[u].add(int(v))
        adj[v].add(int(u))
    return adj


def distances(n, edges, start=0):
    adj, dist, todo = neighbours(n, edges), {start: 0}, deque([start])
    while todo:
        u = todo.popleft()
        for v in adj[u] - dist.keys():
            dist[v] = dist[u] + 1
            todo.append(v)
    return dist


def check_common(g, vocab):
    assert g.edges.shape == (len(edge_set(g.edges)), 2)  # each edge once
    assert (g.edges[:, 0] != g.edges[:, 1]).all() and g.edges.min() >= 0 and g.edges.max() < g.n
    assert len(set(g.labels.tolist())) == g.n and g.labels.min() >= 0 and g.labels.max() < vocab
    assert g.layout.shape == (g.n, 2) and np.isfinite(g.layout).all()
    for path in g.paths:  # every path walks along edges
        assert all((min(u, v), max(u, v)) in edge_set(g.edges) for u, v in zip(path[:-1], path[1:]))


# -----------------------------------------------------------------------------
# each family against its definition

@pytest.mark.parametrize('d,l', [(3, 2), (5, 4)])
def test_star_is_d_arms_of_l_minus_1_nodes(d, l):
    g = build(graph_d=d, graph_l=l)
    check_common(g, 2 * g.n)
    assert g.n == d * (l - 1) + 1 and len(g.edges) == g.n - 1
    dist = distances(g.n, g.edges)
    assert len(dist) == g.n  # connected, so with n - 1 edges a tree
    degree = np.bincount(g.edges.ravel(), minlength=g.n)
    assert degree[0] == d and (degree[1:] <= 2).all()
    assert sorted(g.paths[:, -1].tolist()) == sorted(u for u in range(1, g.n) if degree[u] == 1)
    assert all(dist[leaf] == l - 1 for leaf in g.paths[:, -1])


def test_star_draws_what_it_always_drew():
    """Labels, then held-out arms, from one generator: the same graph as before the families existed."""
    cfg = validate.build_config(dict(graph_d=6, graph_l=4, data_seed=3))
    rng = np.random.default_rng(3)
    labels = rng.choice(2 * 19, 19, replace=False)
    held = np.sort(rng.choice(6, 2, replace=False))
    paths, held_out = inweights.draw_graph(inweights.data_config(checked(cfg)))[:2]
    assert np.array_equal(paths[:, 0] - tokens.NODE_OFFSET, np.full(6, labels[0]))
    assert np.array_equal(paths[:, 1:].ravel() - tokens.NODE_OFFSET, labels[1:])
    assert np.array_equal(held_out, held)


@pytest.mark.parametrize('d,l,k', [(2, 3, 2), (3, 4, 3)])
def test_star_tree_is_a_root_over_full_k_ary_subtrees(d, l, k):
    g = build(graph='star_tree', graph_d=d, graph_l=l, star_subtree_degree=k, graph_holdout_percentage=0.25)
    check_common(g, 2 * g.n)
    assert g.n == 1 + d * sum(k ** j for j in range(l - 1)) and len(g.edges) == g.n - 1
    dist = distances(g.n, g.edges)
    assert len(dist) == g.n
    children = {u: sum(1 for v in nb if dist[v] > dist[u]) for u, nb in enumerate(neighbours(g.n, g.edges))}
    assert children[0] == d
    assert all(children[u] == (k if dist[u] < l - 1 else 0) for u in range(1, g.n))
    leaves = [u for u in range(g.n) if dist[u] == l - 1]
    assert sorted(g.paths[:, -1].tolist()) == sorted(leaves) and len(leaves) == d * k ** (l - 2)
    assert (g.paths[:, 0] == 0).all() and all(dist[p[j]] == j for p in g.paths for j in range(l))
    assert len(g.held_out) == int(len(leaves) * 0.25 + 0.5)


def test_star_tree_subtree_holdout_holds_out_whole_subtrees():
    g = build(graph='star_tree', graph_d=4, graph_l=4, star_subtree_degree=2, subtree_holdout=True,
              graph_holdout_percentage=0.5)
    held_hops = set(g.paths[g.held_out, 1].tolist())
    trained = np.setdiff1d(np.arange(len(g.paths)), g.held_out)
    assert len(held_hops) == 2 and not held_hops & set(g.paths[trained, 1].tolist())
    assert len(g.held_out) == 2 * 4  # every leaf below the two held-out children of the root


def test_grid_joins_each_cell_to_its_right_and_lower_neighbour():
    g = build(graph='grid', grid_rows=3, grid_cols=5)
    check_common(g, 2 * g.n)
    want = {(r * 5 + c, r * 5 + c + 1) for r in range(3) for c in range(4)}
    want |= {(r * 5 + c, (r + 1) * 5 + c) for r in range(2) for c in range(5)}
    assert edge_set(g.edges) == want and len(g.paths) == 0


def test_cycle_is_a_ring():
    g = build(graph='cycle', cycle_n=7)
    check_common(g, 2 * g.n)
    assert edge_set(g.edges) == {tuple(sorted((i, (i + 1) % 7))) for i in range(7)}
    assert (np.bincount(g.edges.ravel()) == 2).all()


@pytest.mark.parametrize('n,m', [(16, 20), (6, 5), (5, 10)])
def test_irregular_is_connected_with_the_edges_asked_for_and_follows_data_seed(n, m):
    g = build(graph='irregular', irregular_n=n, irregular_edges=m)
    check_common(g, 2 * g.n)
    assert g.n == n and len(g.edges) == m and len(distances(n, g.edges)) == n
    again, other = (build(graph='irregular', irregular_n=n, irregular_edges=m, data_seed=s) for s in (1337, 7))
    assert edge_set(again.edges) == edge_set(g.edges)
    if 0 < m - (n - 1) < n * (n - 1) // 2 - (n - 1):  # something left to chance
        assert edge_set(other.edges) != edge_set(g.edges) or not np.array_equal(other.labels, g.labels)


def test_official_irregular_is_the_fixed_sixteen_node_graph():
    g = build(graph='irregular', graph_builder='official')
    assert g.n == 16 and len(g.edges) == 20
    assert sorted(len(distances(16, g.edges, s)) for s in (0, 12)) == [4, 12]  # a 12-node part and a K4
    assert edge_set(g.edges) >= {(12, 13), (12, 14), (12, 15), (13, 14), (13, 15), (14, 15), (0, 11)}


# -----------------------------------------------------------------------------
# rows

def decoded_edges(cfg):
    arrays, meta = inweights.build_arrays(checked(cfg))
    rows = arrays['train_rows'][:meta['num_edge_rows']]
    return [tokens.decode(r).split() for r in rows], arrays, meta


def test_edge_only_families_have_edge_rows_both_ways_and_no_paths():
    cfg = validate.build_config(dict(graph='cycle', cycle_n=5))
    words, arrays, meta = decoded_edges(cfg)
    g = graphs.build(inweights.data_config(checked(cfg)))
    name = {u: f'n{label}' for u, label in enumerate(g.labels)}
    want = {('[EDGE]', '>', name[u], name[v]) for u, v in g.edges} | {('[EDGE]', '<', name[v], name[u])
                                                                       for u, v in g.edges}
    assert set(map(tuple, words)) == want and len(words) == 10
    assert meta['num_train_rows'] == 10 and len(arrays['val_rows']) == 0 and meta['row_len'] == 4
    assert arrays['train_mask'].sum() == 10  # one target per row: the last node


def test_self_edges_add_one_row_per_node():
    cfg = validate.build_config(dict(graph='grid', grid_rows=2, grid_cols=2, add_self_edges=True,
                                         use_directional_tokens=False))
    words, _, meta = decoded_edges(cfg)
    selfs = [w for w in words if w[1] == w[2]]
    assert len(words) == 2 * 4 + 4 == meta['num_edge_rows'] and len(selfs) == 4
    assert inweights.row_counts(checked(cfg)).edge_rows == 12


def test_star_tree_rows_ask_for_every_trained_leaf():
    cfg = validate.build_config(dict(graph='star_tree', graph_d=2, graph_l=3, star_subtree_degree=2,
                                         graph_holdout_percentage=0.25, path_replication=1))
    arrays, meta = inweights.build_arrays(checked(cfg))
    assert meta['num_paths'] == 4 and meta['num_val_rows'] == 1 and meta['d'] == 2
    assert meta['num_edge_rows'] == 2 * 6 and meta['num_train_rows'] == 12 + 3
    assert len(arrays['val_rows']) == 1


# -----------------------------------------------------------------------------
# the validator

@pytest.mark.parametrize('overrides,words', [
    (dict(graph='tree'), "graph: "),
    (dict(graph='cycle', grid_rows=5), "grid_rows: applies to graph='grid'"),
    (dict(graph='grid', graph_d=7), "graph_d: applies to graph='star'"),
    (dict(graph='star_tree', star_subtree_degree=1), "star_subtree_degree: must be >= 2"),
    (dict(graph='cycle', cycle_n=2), "cycle_n: must be >= 3"),
    (dict(graph='irregular', irregular_n=5, irregular_edges=11), "irregular_edges: a connected graph on 5 nodes"),
    (dict(graph='irregular', irregular_n=5, irregular_edges=3), "irregular_edges: a connected graph on 5 nodes"),
    (dict(graph='grid', graph_builder='official'), "graph_builder: 'official' does not build graph='grid'"),
    (dict(graph='irregular', graph_builder='official', irregular_n=12), "official irregular graph has irregular_n=16"),
    (dict(graph='cycle', recipe='staged'), "recipe: 'staged' needs path rows"),
    (dict(graph='grid', task='in_context'), "graph: task='in_context' draws a plain star per row"),
    (dict(graph='star_tree', task='in_context'), "graph: task='in_context' draws a plain star per row"),
    (dict(graph='star', star_subtree_degree=3), "star_subtree_degree: applies to graph='star_tree'"),
    (dict(graph='star_tree', graph_d=2, graph_l=3, graph_holdout_percentage=0.05), "rounds to 0 held-out leaves"),
])
def test_bad_family_keys_are_one_line_errors(overrides, words):
    with pytest.raises(configurator.UserError) as e:
        validate.build_config(overrides)
    assert words in str(e.value) and '\n' not in str(e.value)


def test_a_bad_family_on_the_command_line_exits_2_with_one_line(tmp_path):
    out = cli_result(train.main, ['--graph=cycle', '--grid_cols=3', f'--out_dir={tmp_path}'], ROOT)
    assert out.returncode == 2 and out.stderr.strip().count('\n') == 0 and 'grid_cols' in out.stderr
    assert 'Traceback' not in out.stderr and not os.listdir(tmp_path)


# -----------------------------------------------------------------------------
# edge recall, on a hand-made model

class Fixed(torch.nn.Module):
    """Answers every prompt with the same logits."""
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)
        self.config = type('C', (), dict(vocab_size=len(logits), block_size=4))()

    def forward(self, x, positions=None):
        return self.logits.expand(len(x), 1, -1), None


def test_edge_recall_counts_a_target_in_the_top_m_of_its_prompt():
    # one prompt with two right answers (tokens 2 and 3) and logits ranking 3 > 2 > the rest
    model = Fixed([0.0, 0.0, 1.0, 2.0, 0.5])
    rows = np.array([[9, 2], [9, 3], [9, 4]])  # the third row's prompt has... the same answers count below
    got = evaluate.score_all_edges(model, rows, np.array([2, 2, 1]), 'cpu', torch.no_grad())
    assert got['train/accuracy/edge_all'] == pytest.approx(1 / 3)  # only token 3 is the argmax
    assert got['train/accuracy/edge_all_recall'] == pytest.approx(2 / 3)  # 2 and 3 are the top 2; 4 is not top 1


# -----------------------------------------------------------------------------
# whole runs

TINY = dict(n_layer=1, n_head=1, n_embd=16, epochs=30, eval_interval=15, log_interval=30, learning_rate=1e-2,
            geometry_interval=1, use_directional_tokens=False, device='cpu', compile=False)


@pytest.mark.parametrize('family', [dict(graph='grid', grid_rows=2, grid_cols=3), dict(graph='cycle', cycle_n=5),
                                    dict(graph='irregular', irregular_n=6, irregular_edges=7),
                                    dict(graph='star_tree', graph_d=2, graph_l=3, star_subtree_degree=2,
                                         graph_holdout_percentage=0.25)],
                         ids=['grid', 'cycle', 'irregular', 'star_tree'])
def test_each_family_trains_evaluates_and_is_analysed(tmp_path, family, capsys):
    cfg = validate.build_config({**TINY, **family, 'out_dir': str(tmp_path / 'out'),
                                     'data_dir': str(tmp_path / 'data')})
    summary = train.train(cfg)
    for key in ('train/accuracy/edge_all', 'train/accuracy/edge_all_recall', 'geometry/spectral_low_mass',
                'geometry/associative_topk_edge_recovery', 'geometry/topk_edge_recovery'):
        assert 0.0 <= summary[key] <= 1.0, key
    has_paths = family['graph'] == 'star_tree'
    assert ('val/accuracy/first_hop' in summary) == ('chance/first_hop' in summary) == has_paths
    geometry = tmp_path / 'out' / 'geometry'
    history = json.loads((geometry / 'history.json').read_text())
    assert [h['step'] for h in history] == [0, 15, 30]
    assert all(0 <= h['associative'] <= 1 and 0 <= h['geometric'] <= 1 and 0 <= h['spectral_low_mass'] <= 1
               for h in history)
    assert {'graph_similarity.png', 'graph_spectrum.png', 'graph_fiedler.png', 'graph_dynamics.png'} <= set(
        os.listdir(geometry))
    capsys.readouterr()
    analyze.main([str(tmp_path / 'out' / 'ckpt.pt'), '--out_dir', str(tmp_path / 'an')])
    out = capsys.readouterr().out
    report = json.loads((tmp_path / 'an' / 'geometry.json').read_text())
    assert report['geometry/spectral_low_mass'] == pytest.approx(summary['geometry/spectral_low_mass'], abs=1e-6)
    assert 'geometry/spectral_low_mass' in out and os.path.exists(tmp_path / 'an' / 'graph_spectrum.png')


def test_a_large_irregular_graph_is_drawn_without_listing_every_node_pair():
    """100,000 nodes (5e9 node pairs): the extra edges are drawn pair by pair, the layout is a circle."""
    cfg = dict(irregular_n=100_000, irregular_edges=100_050, graph_builder='pathstar', graph_l=5)
    edges, paths, held_out, layout = irregular.build(cfg, np.random.default_rng(0))
    assert len(edges) == 100_050 and len({tuple(e) for e in edges.tolist()}) == 100_050
    assert (edges[:, 0] < edges[:, 1]).all() and layout.shape == (100_000, 2) and len(paths) == 0
    parent = list(range(100_000))  # connected: union-find over the edges

    def find(u):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u
    for u, v in edges.tolist():
        parent[find(u)] = find(v)
    assert len({find(u) for u in range(100_000)}) == 1
