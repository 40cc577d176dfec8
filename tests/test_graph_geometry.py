"""pathstar/analysis/geometry.py and node2vec.py on hand-built graphs whose answers are known."""
import json
import math
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

import baseline_node2vec
from pathstar.analysis import node2vec
from pathstar.analysis import geometry as gg
from pathstar.analysis.plots import pyplot
from configurator import exit_on_user_error
from pathstar import tokens

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


class Graph(NamedTuple):  # the fields of graphs.Graph, so that no test needs graphs.py
    family: str
    n: int
    edges: np.ndarray
    labels: np.ndarray
    paths: np.ndarray
    held_out: np.ndarray
    layout: np.ndarray


def cycle(n):
    angle = 2 * np.pi * np.arange(n) / n
    return Graph('cycle', n, np.array([(i, (i + 1) % n) for i in range(n)]), np.arange(n),
                 np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.c_[np.cos(angle), np.sin(angle)])


def path_graph(n):
    return Graph('irregular', n, np.array([(i, i + 1) for i in range(n - 1)]), np.arange(n),
                 np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.c_[np.arange(n), np.zeros(n)])


def star(d, l):
    """Root 0, arm a = nodes 1 + a*(l-1) .. (a+1)*(l-1), laid out radially."""
    m = l - 1
    paths = np.zeros((d, l), np.int64)
    paths[:, 1:] = 1 + np.arange(d * m).reshape(d, m)
    edges = np.concatenate([np.c_[p[:-1], p[1:]] for p in paths])
    layout = np.zeros((d * m + 1, 2))
    for a in range(d):
        layout[paths[a, 1:]] = np.outer(np.arange(1, l), [np.cos(2 * np.pi * a / d), np.sin(2 * np.pi * a / d)])
    return Graph('star', d * m + 1, edges, np.arange(d * m + 1), paths, np.array([0]), layout)


# -----------------------------------------------------------------------------
# the Laplacian


def test_laplacian_of_a_4_cycle_and_a_3_path_by_hand():
    assert np.array_equal(gg.laplacian(3, [(0, 1), (1, 2)]), [[1, -1, 0], [-1, 2, -1], [0, -1, 1]])
    assert np.allclose(gg.laplacian_eigen(4, cycle(4).edges)[0], [0, 2, 2, 4])
    values, vectors = gg.laplacian_eigen(3, [(0, 1), (1, 2)])
    assert np.allclose(values, [0, 1, 3])
    assert np.allclose(np.abs(vectors[:, 1]), np.array([1, 0, 1]) / math.sqrt(2))  # the Fiedler vector (1, 0, -1)


def test_self_edges_and_repeated_edges_are_not_in_the_laplacian():
    plain = gg.laplacian(3, [(0, 1), (1, 2)])
    assert np.array_equal(gg.laplacian(3, [(0, 1), (1, 2), (1, 1), (2, 1)]), plain)


def test_fiedler_vector_of_a_path_is_monotone_with_a_fixed_sign():
    f = gg.fiedler_vector(6, path_graph(6).edges)
    assert np.all(np.diff(f) > 0) or np.all(np.diff(f) < 0)
    assert f[np.argmax(np.abs(f))] > 0 and math.isclose(np.linalg.norm(f), 1.0)


def test_spectral_order_walks_round_a_cycle():
    g = cycle(8)  # the Fiedler eigenvalue is double: ordering by one vector would fold the cycle
    order = gg.spectral_order(g.n, g.edges)
    steps = np.abs(np.diff(np.r_[order, order[0]])) % (g.n - 2)
    assert np.all(steps == 1)  # neighbours in the order are neighbours on the cycle


def test_path_order_keeps_arms_together():
    assert gg.path_order(star(3, 3)).tolist() == list(range(7))


# -----------------------------------------------------------------------------
# spectral energy and low-frequency mass


def test_spectral_energy_sums_to_one_and_ignores_the_mean():
    g = cycle(6)
    values, vectors = gg.laplacian_eigen(g.n, g.edges)
    x = np.random.default_rng(0).standard_normal((6, 3))
    energy = gg.spectral_energy(x, vectors)
    assert energy[0] == 0 and math.isclose(energy.sum(), 1.0)
    assert np.allclose(gg.spectral_energy(x + 5.0, vectors), energy)
    assert np.all(np.isnan(gg.spectral_energy(np.ones((6, 3)), vectors)))  # a constant embedding has none


def test_an_embedding_equal_to_the_fiedler_vector_has_mass_one():
    g = path_graph(8)
    low = gg.low_frequency_mass(gg.fiedler_vector(g.n, g.edges)[:, None], g.n, g.edges)
    assert low['k'] == 2 and math.isclose(low['mass'], 1.0)  # k = ceil(7 / 4)
    assert math.isclose(low['random'], 2 / 7) and math.isclose(low['ratio'], 3.5)
    top = gg.laplacian_eigen(g.n, g.edges)[1][:, -1:]  # the roughest vector has none there
    assert gg.low_frequency_mass(top, g.n, g.edges, k=1)['mass'] < 1e-20


def test_ties_widen_k_to_whole_eigenspaces():
    g = cycle(4)  # eigenvalues 0, 2, 2, 4
    assert gg.low_frequency_mass(np.eye(4), 4, g.edges)['k'] == 2  # default ceil(3/4) = 1, widened
    assert gg.low_frequency_mass(np.eye(4), 4, g.edges, k=3)['k'] == 3
    low = gg.low_frequency_mass(np.eye(4), 4, g.edges, k=1)
    assert math.isclose(low['mass'], 2 / 3) and math.isclose(low['ratio'], 1.0)  # eye is the random case exactly


def test_a_random_embedding_has_mass_near_k_over_n_minus_1_on_average():
    g = path_graph(12)
    rng = np.random.default_rng(0)
    masses = [gg.low_frequency_mass(rng.standard_normal((12, 4)), 12, g.edges)['mass'] for _ in range(400)]
    assert abs(np.mean(masses) - 3 / 11) < 0.02  # k = ceil(11 / 4) = 3


def test_a_disconnected_graph_treats_every_component_mean_as_trivial():
    edges = [(0, 1), (1, 2), (3, 4), (4, 5)]  # two 3-paths: eigenvalues 0, 0, 1, 1, 3, 3
    x = np.array([0, 0, 0, 10, 10, 10.0])[:, None] + np.array([1, 0, -1, 1, 0, -1.0])[:, None]
    low = gg.low_frequency_mass(x, 6, edges, k=1)
    assert low['k'] == 2 and math.isclose(low['mass'], 1.0) and math.isclose(low['random'], 0.5)


# -----------------------------------------------------------------------------
# similarities and edge recovery


def test_cosine_matrix_of_known_vectors():
    c = gg.cosine_matrix([[1, 0], [0, 2], [1, 1], [0, 0]])
    s = 1 / math.sqrt(2)
    assert np.allclose(c, [[1, 0, s, 0], [0, 1, s, 0], [s, s, 1, 0], [0, 0, 0, 0]])


def test_topk_edge_recovery_by_hand():
    scores = np.array([[9, 1, 5, 0],
                       [1, 9, 0, 5],
                       [5, 0, 9, 1],
                       [0, 5, 1, 9]], dtype=float)  # each node's best other node: 0-2 and 1-3
    edges = [(0, 2), (0, 1), (2, 0), (3, 1)]
    assert gg.topk_edge_recovery(scores, edges, k=1) == 0.75
    assert gg.topk_edge_recovery(scores, [(0, 1), (0, 2), (1, 2), (1, 3)], k=1) == 0.5
    assert gg.topk_edge_recovery(scores, [(0, 1), (0, 2), (1, 2), (1, 3)], k=2) == 0.75
    assert gg.topk_edge_recovery(scores, [(0, 0), (0, 2)], k=1, allow_self=True) == 0.5  # self first now
    assert math.isnan(gg.topk_edge_recovery(scores, np.zeros((0, 2)), k=1))


def test_directed_edges_are_both_ways_once():
    both = gg.directed_edges(3, [(0, 1), (1, 0), (1, 2), (2, 2)])
    assert both.tolist() == [[0, 1], [1, 0], [1, 2], [2, 1]]
    assert len(gg.directed_edges(3, [(0, 1)], self_edges=True)) == 5


def test_graph_metrics_names_and_values_of_a_perfect_embedding():
    g = cycle(6)
    angle = 2 * np.pi * np.arange(6) / 6
    m = gg.graph_metrics(np.c_[np.cos(angle), np.sin(angle)], g)  # the cycle drawn as a circle
    assert set(m) == {f'geometry/{k}' for k in (
        'spectral_low_mass', 'spectral_low_mass_random', 'spectral_low_mass_ratio', 'spectral_k',
        'topk_edge_recovery', 'topk_edge_recovery_random', 'topk_k',
        'nearest_neighbour_edge_accuracy', 'nearest_neighbour_edge_accuracy_random')}
    assert m['geometry/topk_k'] == 5 and m['geometry/topk_edge_recovery'] == 1.0
    assert m['geometry/spectral_k'] == 2 and math.isclose(m['geometry/spectral_low_mass'], 1.0)
    assert m['geometry/nearest_neighbour_edge_accuracy'] == 1.0
    assert math.isclose(m['geometry/nearest_neighbour_edge_accuracy_random'], 2 / 5)
    assert gg.graph_metrics(np.eye(6), g, prefix='x/', top_k=2)['x/topk_k'] == 2


def test_node_embeddings_reads_each_nodes_token_row():
    g = path_graph(3)._replace(labels=np.array([2, 0, 1]))
    wte = torch.arange(20.0).reshape(10, 2)
    rows = gg.node_embeddings(wte, g)
    assert rows.tolist() == wte[tokens.NODE_OFFSET + np.array([2, 0, 1])].tolist()


# -----------------------------------------------------------------------------
# node2vec


def test_node2vec_closed_form_gradient_is_autograd():
    g = star(3, 3)
    weights = node2vec.neighbour_weights(g.n, g.edges, self_edges=True)
    emb = torch.randn(g.n, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss, grad = node2vec.node2vec_grad(emb.detach(), weights)
    ref = node2vec.node2vec_loss(emb, weights)
    assert torch.allclose(loss, ref) and torch.allclose(grad, torch.autograd.grad(ref, emb)[0], atol=1e-5)


def test_node2vec_on_a_6_cycle_recovers_every_edge():
    g = cycle(6)
    start, _ = node2vec.train_node2vec(g, epochs=0)
    emb, history = node2vec.train_node2vec(g, epochs=300)
    assert emb.shape == (6, 100) and [h['step'] for h in history][-2:] == [275, 300]
    assert history[-1]['loss'] < history[0]['loss']
    scores = emb @ emb.T
    assert gg.topk_edge_recovery(scores, gg.directed_edges(6, g.edges), k=2) == 1.0
    assert history[-1]['geometric'] == 1.0  # k = 5 there
    after, before = (gg.low_frequency_mass(x, 6, g.edges)['mass'] for x in (emb, start))
    assert after > 0.99 > before


def test_node2vec_is_deterministic_and_the_seed_matters():
    g = cycle(5)
    a, ha = node2vec.train_node2vec(g, epochs=50, dim=8, seed=3)
    b, hb = node2vec.train_node2vec(g, epochs=50, dim=8, seed=3)
    c, _ = node2vec.train_node2vec(g, epochs=50, dim=8, seed=4)
    assert np.array_equal(a, b) and ha == hb and not np.array_equal(a, c)
    torch.manual_seed(3)  # the official init: nn.Embedding after the global seed
    assert np.allclose(node2vec.train_node2vec(g, epochs=0, dim=8, seed=3)[0],
                       torch.nn.Embedding(5, 8).weight.detach().double().numpy())


# -----------------------------------------------------------------------------
# plots and the report


def test_write_report_writes_json_and_readable_pngs(tmp_path):
    g = star(3, 3)
    emb = np.random.default_rng(0).standard_normal((g.n, 4))
    history = [dict(step=s, associative=s / 100, geometric=1 - s / 200) for s in range(0, 101, 25)]
    metrics, pngs = gg.write_report(emb, g, str(tmp_path / 'r'), 'a test', name='geo', history=history)
    assert set(pngs) == {'similarity', 'spectrum', 'fiedler', 'dynamics'}
    for path in pngs.values():
        with open(path, 'rb') as f:
            assert f.read(8) == PNG_MAGIC
    saved = json.loads((tmp_path / 'r' / 'geo.json').read_text())
    assert saved['geometry/topk_edge_recovery'] == metrics['geometry/topk_edge_recovery']
    assert saved['family'] == 'star' and saved['history'] == history and saved['pngs'] == pngs
    assert sorted(p.name for p in (tmp_path / 'r').iterdir()) == sorted(
        ['geo.json'] + [f'geo_{k}.png' for k in pngs])  # no temp files left behind


def test_plot_dynamics_draws_a_curve_measured_only_sometimes(tmp_path):
    history = [dict(step=0, geometric=0.2, loss=3.0), dict(step=10, associative=0.5, geometric=0.9)]
    path = gg.plot_dynamics(history, str(tmp_path / 'dyn.png'))
    assert (tmp_path / 'dyn.png').read_bytes()[:8] == PNG_MAGIC and path.endswith('dyn.png')


def grid(side):
    nodes = np.arange(side * side).reshape(side, side)
    edges = np.concatenate([np.c_[nodes[:, :-1].ravel(), nodes[:, 1:].ravel()],
                            np.c_[nodes[:-1].ravel(), nodes[1:].ravel()]])
    layout = np.c_[(nodes % side).ravel(), (nodes // side).ravel()].astype(float)
    return Graph('grid', side * side, edges, np.arange(side * side), np.zeros((0, 2), np.int64),
                 np.zeros(0, np.int64), layout)


def random_walks(n, dim=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim))  # noise: the hardest PNG to compress


MAX_PNG = 300_000  # bytes


@pytest.mark.parametrize('make', [lambda: star(200, 5), lambda: star(5, 4), lambda: grid(20)],
                         ids=['star 801 nodes', 'star 16 nodes', 'grid 400 nodes'])
def test_every_report_png_is_small(tmp_path, make):
    """The demo star (G(200,5), 801 nodes) once drew 801 x 801 cosine cells (2.2 MB) and 800 edges."""
    g = make()
    history = [dict(step=s, geometric=min(1.0, s / 300), loss=1.0) for s in range(0, 10001, 25)]
    _, pngs = gg.write_report(random_walks(g.n), g, str(tmp_path), 'a test', history=history)
    sizes = {name: os.path.getsize(path) for name, path in pngs.items()}
    assert set(sizes) == {'similarity', 'spectrum', 'fiedler', 'dynamics'}
    assert max(sizes.values()) < MAX_PNG, sizes


def test_report_is_named_graph_by_default(tmp_path):
    g = star(3, 3)
    _, pngs = gg.write_report(random_walks(g.n, 4), g, str(tmp_path), 'a test')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['graph.json', 'graph_fiedler.png', 'graph_similarity.png',
                                                          'graph_spectrum.png']


def test_a_small_graph_shows_every_node_in_path_order():
    g = star(5, 4)
    shown, caption = gg.shown_nodes(g)
    assert shown.tolist() == gg.path_order(g).tolist() and caption == ''


def test_a_big_star_shows_whole_arms_evenly_spaced():
    g = star(200, 5)
    shown, caption = gg.shown_nodes(g)
    assert len(shown) <= gg.MAX_SHOWN and shown[0] == 0  # the root first, then arm by arm
    arms = sorted({(int(v) - 1) // 4 for v in shown[1:]})
    assert len(arms) == 24 and len(shown) == 1 + 4 * len(arms)  # whole arms only
    assert set(np.diff(arms)) <= {8, 9} and arms[0] == 0 and arms[-1] >= 190  # spread over all 200
    assert caption == '97 of 801 nodes: 24 of 200 paths, evenly spaced'


def test_a_big_graph_without_paths_shows_a_connected_patch():
    g = grid(20)
    shown, caption = gg.shown_nodes(g)
    assert len(shown) == gg.MAX_SHOWN and 'of 400 nodes' in caption
    a = gg.adjacency(g.n, g.edges)[np.ix_(shown, shown)]
    reach = np.linalg.matrix_power(a + np.eye(len(shown)), len(shown)) > 0
    assert reach.all()  # every shown node reaches every other through shown nodes


def test_the_fiedler_colour_lights_every_arm_of_a_star():
    """The star's Fiedler eigenvalue has d - 1 eigenvectors; any one of them lit one arm of 200."""
    g = star(200, 5)
    c = gg.fiedler_colour(g.n, g.edges, g.layout)
    values = gg.laplacian_eigen(g.n, g.edges)[0]
    assert np.allclose(gg.laplacian(g.n, g.edges) @ c, values[1] * c)  # still in the Fiedler eigenspace
    leaves = np.abs(c[g.paths[:, -1]])
    assert (leaves > 0.1 * leaves.max()).mean() > 0.9 and math.isclose(np.linalg.norm(c), 1.0)
    assert np.corrcoef(c, g.layout[:, 0])[0, 1] > 0  # signed to grow with x


def test_the_fiedler_colour_of_a_path_is_its_fiedler_vector():
    g = path_graph(6)
    assert np.allclose(gg.fiedler_colour(g.n, g.edges, g.layout), gg.fiedler_vector(g.n, g.edges))


def test_spectrum_bars_are_eigenspaces_or_runs_that_never_straddle_k():
    g = star(200, 5)
    values = gg.laplacian_eigen(g.n, g.edges)[0][1:]
    starts, sizes = gg.spectrum_bins(values, 200)
    assert sizes.tolist() == [199, 1, 199, 1, 199, 1, 199, 1] and sizes.sum() == 800
    values = gg.laplacian_eigen(300, path_graph(300).edges)[0][1:]  # 299 distinct eigenvalues
    starts, sizes = gg.spectrum_bins(values, 75)
    assert len(starts) <= gg.MAX_BARS + 1 and 75 in starts.tolist() and sizes.sum() == 299


@pytest.mark.parametrize('d, l', [(200, 5), (5, 4)])
def test_the_spectrum_figure_draws_the_tables_k(d, l):
    """The demo star's figure said k = 200 beside the table's laplacian_k 199: its k is spectral_k."""
    g = star(d, l)
    emb = random_walks(g.n, 16)
    metrics = gg.graph_metrics(emb, g)
    k, mass = metrics['geometry/spectral_k'], metrics['geometry/spectral_low_mass']
    fig = gg.spectrum_figure(emb, g.n, g.edges, 'a test')
    try:
        left, right = fig.axes[:2]
        assert f'k = {k} lowest' in left.get_title() and 'geometry/spectral_k' in left.get_title()
        red = [p for p in left.patches if p.get_facecolor() == to_rgba('tab:red')]
        sizes = gg.spectrum_bins(gg.laplacian_eigen(g.n, g.edges)[0][1:], k)[1]
        assert 0 < len(red) < len(sizes) and sizes[:len(red)].sum() == k  # the red bars are the k lowest
        curve, _, vline, dot = right.lines[:4]
        assert vline.get_xdata()[0] == k and dot.get_ydata()[0] == pytest.approx(mass)
        assert right.get_xlim() == (0, g.n - 1)  # the cumulative spans k = 0 .. n - 1, not the eigenvalue
        assert curve.get_ydata()[k] == pytest.approx(mass)
    finally:
        pyplot().close(fig)


@pytest.mark.parametrize('steps, scale', [(range(0, 10001, 25), 'symlog'), (range(0, 31, 15), 'linear')])
def test_dynamics_over_two_decades_of_steps_get_a_log_axis(steps, scale):
    """Node2Vec's 10,000 epochs, measured every 25, rise in the first few hundred: a linear axis hid it."""
    fig = gg.dynamics_figure([dict(step=s, geometric=0.5) for s in steps])
    try:
        assert fig.axes[0].get_xscale() == scale
    finally:
        pyplot().close(fig)


# -----------------------------------------------------------------------------
# the command line


def test_cli_trains_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / 'n2v'
    baseline_node2vec.main(['--n2v_epochs=100', '--n2v_dim=16', f'--out_dir={out}', '--graph=cycle', '--cycle_n=6'])
    saved = json.loads((out / 'graph.json').read_text())
    assert saved['geometry/topk_edge_recovery'] == 1.0 and saved['history'][-1]['step'] == 100
    assert {p.name for p in out.iterdir()} == {'graph.json', 'graph_similarity.png', 'graph_spectrum.png',
                                               'graph_fiedler.png', 'graph_dynamics.png'}
    printed = capsys.readouterr().out
    assert 'geometry/spectral_low_mass ' in printed and 'Node2Vec baseline | cycle, 6 nodes' in printed
    assert f'wrote {out / "graph.json"}' in printed


def readme_graph_report_files():
    """The PNGs README's "Geometry of any graph" paragraph lists, and graph.json."""
    text = (Path(__file__).parent.parent / 'README.md').read_text()
    start = text.index('PNGs in `out_dir/geometry/`')
    return set(re.findall(r'`(graph_\w+\.png)`', text[start:text.index('\n\n', start)])) | {'graph.json'}


def test_node2vec_writes_the_files_readme_lists_under_the_names_analyze_uses(tmp_path):
    out = tmp_path / 'n2v'
    baseline_node2vec.main(['--n2v_epochs=30', '--n2v_dim=8', f'--out_dir={out}', '--graph=cycle', '--cycle_n=6'])
    assert {p.name for p in out.iterdir()} == readme_graph_report_files()
    assert len(readme_graph_report_files()) == 5  # similarity, spectrum, fiedler, dynamics and the json


@pytest.mark.parametrize('flag, message', [
    ('--n2v_epochs=ten', "argument --n2v_epochs: expected an integer >= 0, got 'ten' (see --help)"),
    ('--n2v_lr=0', "argument --n2v_lr: expected a number > 0, got '0' (see --help)"),
    ('--n2v_epoch=5', None),  # no abbreviations: an unknown config key
])
def test_cli_bad_flag_is_one_line_and_exit_2(flag, message, capsys):
    with pytest.raises(SystemExit) as stop:
        exit_on_user_error(lambda: baseline_node2vec.main([flag]))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count('\n') == 1 and err.startswith('error: ')
    if message:
        assert err == f'error: {message}\n'
    else:
        assert 'n2v_epoch' in err
