"""
Geometry of node embeddings on any small graph (star, star_tree, grid, cycle, irregular): is an
embedding *geometric*, i.e. smooth over the graph, with neighbours nearest each other?

The input is node_emb, an (n, C) array whose row i is node i's vector (node_embeddings() takes
them out of a token embedding), and a graphs.Graph. We measure
1. spectral energy: project the centred embedding on the eigenvectors of the graph Laplacian
   L = D - A; a geometric embedding puts its energy on the low (smooth) frequencies. The share
   on the k lowest is compared with a random embedding's, k / (n - 1);
2. top-k edge recovery: for each node the k others with the largest dot product; the fraction
   of graph edges (both directions) found that way, as the official notebooks do;
and draw the cosine matrix beside the adjacency, the spectrum, the Fiedler vector on the graph
beside a PCA of the embedding, and associative vs geometric recovery over training.
Everything is dense (n x n): meant for graphs of up to a few thousand nodes. analyze.py keeps
the path-star's closed-form spectrum for the big stars.
"""
import math
import os

import numpy as np
import torch

from pathstar.tokens import NODE_OFFSET
from pathstar.analysis.plots import EIGEN_TOL, EPS, MIN_COLOUR_SCALE, pca_2d, pyplot, save_figure, write_json

TOP_K = 5          # top_k of the official notebooks (cut to n - 1 on smaller graphs)
LOW_SHARE = 0.25   # default k: the lowest quarter of the non-trivial eigenvectors
MAX_TICKS = 32     # tick labels per heatmap axis before they are thinned
MAX_LABELLED = 40  # nodes drawn with their index as a label in the graph plots
MAX_SHOWN = 100    # nodes drawn one by one in the similarity and Fiedler plots; a bigger graph shows a subset
MAX_BARS = 64      # bars of the spectrum plot: one per eigenspace, runs of eigenvectors past this

# -----------------------------------------------------------------------------
# the graph and its Laplacian


def node_embeddings(token_emb, graph):
    """(n, C) float64 rows of a token embedding (vocab, C) for nodes 0..n-1: node i is the
    token NODE_OFFSET + labels[i]."""
    emb = torch.as_tensor(token_emb).detach().float().cpu().numpy()
    return emb[NODE_OFFSET + np.asarray(graph.labels)].astype(np.float64)


def undirected_pairs(edges):
    """(E, 2) int64 pairs with self-edges dropped (a self-edge is a training row, not a graph edge)."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return edges[edges[:, 0] != edges[:, 1]]


def directed_edges(n, edges, self_edges=False):
    """Every edge both ways (u, v) and (v, u), once each; with self_edges also (v, v) for all v."""
    pairs = undirected_pairs(edges)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    if self_edges:
        both = np.concatenate([both, np.repeat(np.arange(n), 2).reshape(-1, 2)])
    return np.unique(both, axis=0)


def adjacency(n, edges):
    a = np.zeros((n, n))
    pairs = undirected_pairs(edges)
    a[pairs[:, 0], pairs[:, 1]] = a[pairs[:, 1], pairs[:, 0]] = 1.0
    return a


def laplacian(n, edges):
    """The combinatorial Laplacian D - A, dense (n, n); self-edges ignored."""
    a = adjacency(n, edges)
    return np.diag(a.sum(axis=1)) - a


def laplacian_eigen(n, edges):
    """(eigenvalues ascending (n,), eigenvectors as columns (n, n)) of laplacian(n, edges)."""
    return np.linalg.eigh(laplacian(n, edges))


def trivial_count(values, tol=EIGEN_TOL):
    """Number of zero eigenvalues = connected components. Their eigenvectors (constant on each
    component) say nothing about smoothness along edges, so they are left out of every share."""
    return max(1, int((np.asarray(values) < tol * max(1.0, float(np.max(values)))).sum()))


def fiedler_vector(n, edges):
    """The eigenvector of the lowest non-trivial eigenvalue (unit, sign fixed so that its largest
    |entry| is positive). On a degenerate eigenvalue (a cycle, a square grid) it is one vector of
    that eigenspace."""
    values, vectors = laplacian_eigen(n, edges)
    v = vectors[:, trivial_count(values)]
    return v if v[np.argmax(np.abs(v))] > 0 else -v


def fiedler_colour(n, edges, layout):
    """The Fiedler vector, or when its eigenvalue is degenerate the part of the layout's x (else y)
    coordinate inside that eigenspace: on a star the eigenspace is d - 1 'which arm' vectors, and
    any one of them lights up an arm or two and leaves the rest blank. Unit, signed to grow with x."""
    values, vectors = laplacian_eigen(n, edges)
    t = trivial_count(values)
    if t >= n:
        return np.zeros(n)
    space = vectors[:, t:t + widen_to_eigenspaces(values, t, 1)]
    for coord in np.asarray(layout, dtype=np.float64).reshape(n, -1).T:
        v = space @ (space.T @ (coord - coord.mean()))
        if np.linalg.norm(v) > 1e-6 * max(1.0, float(np.linalg.norm(coord))):
            return v / np.linalg.norm(v)
    return fiedler_vector(n, edges)


def spectral_order(n, edges):
    """Nodes ordered along the graph's smoothest direction: by the Fiedler vector, or, when its
    eigenvalue is degenerate (a cycle), by the angle in the first two such eigenvectors, which
    walks round the cycle instead of folding it in half."""
    values, vectors = laplacian_eigen(n, edges)
    t = trivial_count(values)
    if t + 1 < n and values[t + 1] - values[t] <= EIGEN_TOL:
        return np.argsort(np.arctan2(vectors[:, t + 1], vectors[:, t]), kind='stable')
    return np.argsort(fiedler_vector(n, edges), kind='stable')


def path_order(graph):
    """Nodes in the order they first appear along graph.paths (root, arm 0, arm 1, ...), then any
    node on no path: each arm a contiguous block. Spectral order when there are no paths."""
    paths = np.asarray(graph.paths)
    if paths.size == 0:
        return spectral_order(graph.n, graph.edges)
    seen = list(dict.fromkeys(paths.ravel().tolist()))
    return np.array(seen + sorted(set(range(graph.n)) - set(seen)), dtype=np.int64)


def bfs_ball(n, edges, start, size):
    """The first `size` nodes reached breadth-first from start (then the unreached ones, by index)."""
    a = adjacency(n, edges) > 0
    seen = np.zeros(n, dtype=bool)
    seen[start] = True
    out, frontier = [int(start)], [int(start)]
    while frontier and len(out) < size:
        frontier = np.flatnonzero(a[frontier].any(axis=0) & ~seen).tolist()
        seen[frontier] = True
        out += frontier
    return np.array((out + np.flatnonzero(~seen).tolist())[:size], dtype=np.int64)


def shown_nodes(graph, max_nodes=MAX_SHOWN):
    """(nodes in path_order, caption) that the similarity and Fiedler plots draw: every node up to
    max_nodes; beyond, whole paths evenly spaced over the graph's, or with no paths the nodes nearest
    the first of the spectral order (a connected patch). A cell or dot per node stays legible, and
    the PNG small, where all 801 nodes of the demo star were noise."""
    order = path_order(graph)
    if graph.n <= max_nodes:
        return order, ''
    paths = np.asarray(graph.paths)
    if paths.size:
        count = max(1, max_nodes // max(1, paths.shape[1] - 1))
        while True:
            picked = np.unique(np.linspace(0, len(paths), min(count, len(paths)), endpoint=False).astype(np.int64))
            keep = np.unique(paths[picked])
            if len(keep) <= max_nodes or count == 1:
                break
            count -= 1
        caption = f'{len(keep)} of {graph.n} nodes: {len(picked)} of {len(paths)} paths, evenly spaced'
    else:
        keep = bfs_ball(graph.n, graph.edges, order[0], max_nodes)
        caption = f'{len(keep)} of {graph.n} nodes: those nearest node {order[0]}'
    return order[np.isin(order, keep)], caption


# -----------------------------------------------------------------------------
# spectral energy


def spectral_energy(node_emb, eigvecs, trivial=1):
    """Share of the embedding's squared norm on each eigenvector (column of eigvecs), after
    projecting out the first `trivial` ones (for a connected graph the constant: i.e. centring).
    Returns (n,) shares: 0 on the trivial ones, summing to 1 over the rest (nan if nothing is left)."""
    x = np.asarray(node_emb, dtype=np.float64).reshape(len(eigvecs), -1)
    eigvecs = np.asarray(eigvecs, dtype=np.float64)
    null = eigvecs[:, :trivial]
    x = x - null @ (null.T @ x)
    energy = ((eigvecs.T @ x) ** 2).sum(axis=1)
    energy[:trivial] = 0.0
    total = energy.sum()
    return energy / total if total > EPS else np.full(len(energy), np.nan)


def widen_to_eigenspaces(values, start, k, tol=EIGEN_TOL):
    """k grown until it ends on a gap in values[start:]: the k lowest eigenvectors are not unique
    when k cuts a degenerate eigenvalue, so a cut inside one would be arbitrary."""
    while start + k < len(values) and values[start + k] - values[start + k - 1] <= tol:
        k += 1
    return k


def low_frequency_mass(node_emb, n, edges, k=None):
    """Share of the centred embedding's energy on the k lowest non-trivial Laplacian eigenvectors
    (k widened to whole eigenspaces; default the lowest quarter, rounded up). A random embedding
    puts k / (n - 1) there on average. Returns dict(mass, random, ratio, k)."""
    values, vectors = laplacian_eigen(n, edges)
    t = trivial_count(values)
    m = n - t  # non-trivial eigenvectors
    if m == 0:
        return dict(mass=float('nan'), random=float('nan'), ratio=float('nan'), k=0)
    k = math.ceil(LOW_SHARE * m) if k is None else k
    k = widen_to_eigenspaces(values, t, min(max(int(k), 1), m))
    mass = float(spectral_energy(node_emb, vectors, t)[t:t + k].sum())
    random = k / m
    return dict(mass=mass, random=random, ratio=mass / random, k=k)


# -----------------------------------------------------------------------------
# similarities and edge recovery


def cosine_matrix(node_emb):
    """(n, n) cosine similarity of the rows (a zero row has cosine 0 with everything)."""
    x = np.asarray(node_emb, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)
    return x @ x.T


def topk_mask(scores, k, allow_self=False):
    """(n, n) bool: [u, v] is True when v is among the k highest scores of row u (self excluded
    unless allow_self; ties go to the lower index)."""
    scores = np.array(scores, dtype=np.float64)
    if not allow_self:
        np.fill_diagonal(scores, -np.inf)
    top = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    mask = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=1)
    return mask


def topk_edge_recovery(scores, directed_edges, k, allow_self=False):
    """Fraction of the directed edges (u, v) whose v is in u's top k by score (nan if no edges)."""
    e = np.asarray(directed_edges, dtype=np.int64).reshape(-1, 2)
    if len(e) == 0:
        return float('nan')
    return float(topk_mask(scores, k, allow_self)[e[:, 0], e[:, 1]].mean())


def nearest_neighbour_accuracy(scores, n, edges):
    """Fraction of nodes (with at least one neighbour) whose top-1 other node is a graph
    neighbour: the accuracy of answering 'a neighbour of u' by the nearest embedding."""
    a = adjacency(n, edges) > 0
    has = a.any(axis=1)
    if not has.any():
        return float('nan')
    return float(topk_mask(scores, 1)[has][a[has]].sum() / has.sum())


def graph_metrics(node_emb, graph, prefix='geometry/', top_k=TOP_K, k=None, self_edges=False):
    """The numbers of one embedding on one graph, under stable names. Scores are dot products
    E @ E.T, as in the official notebooks; *_random is a random embedding's expected value."""
    n, edges = graph.n, undirected_pairs(graph.edges)
    emb = np.asarray(node_emb, dtype=np.float64).reshape(n, -1)
    scores = emb @ emb.T
    kk = max(1, min(top_k, n - 1))
    low = low_frequency_mass(emb, n, edges, k)
    degree = adjacency(n, edges).sum(axis=1)
    return {f'{prefix}spectral_low_mass': low['mass'],
            f'{prefix}spectral_low_mass_random': low['random'],
            f'{prefix}spectral_low_mass_ratio': low['ratio'],
            f'{prefix}spectral_k': low['k'],
            f'{prefix}topk_edge_recovery': topk_edge_recovery(scores, directed_edges(n, edges, self_edges), kk,
                                                              allow_self=self_edges),
            f'{prefix}topk_edge_recovery_random': min(1.0, kk / max(1, n - 1 + int(self_edges))),
            f'{prefix}topk_k': kk,
            f'{prefix}nearest_neighbour_edge_accuracy': nearest_neighbour_accuracy(scores, n, edges),
            f'{prefix}nearest_neighbour_edge_accuracy_random': float(degree[degree > 0].mean() / max(1, n - 1))}


# -----------------------------------------------------------------------------
# plots (matplotlib only imported here, with the Agg backend)


def node_ticks(ax, order):
    step = max(1, int(np.ceil(len(order) / MAX_TICKS)))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(np.arange(0, len(order), step))
        axis.set_ticklabels([str(i) for i in order[::step]], fontsize=7)
    ax.tick_params(axis='x', labelrotation=90)


def plot_similarity(node_emb, n, edges, title, path, order=None, caption=''):
    """(a) node x node cosine similarity beside the adjacency, both in one node order (default:
    spectral_order), so that a geometric embedding shows the adjacency's pattern. order may be a
    subset of the nodes (shown_nodes), named in caption."""
    plt = pyplot()
    order = spectral_order(n, edges) if order is None else np.asarray(order)
    sim = cosine_matrix(node_emb)[np.ix_(order, order)]
    adj = adjacency(n, edges)[np.ix_(order, order)]
    shown = len(order)
    side = min(4 + 0.12 * shown, 9)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.5, side), constrained_layout=True)
    # the scale is fitted to the off-diagonal cosines (the diagonal, always 1, would wash them out)
    off = np.abs(sim[~np.eye(shown, dtype=bool)]) if shown > 1 else np.zeros(1)
    vmax = max(float(off.max()), MIN_COLOUR_SCALE)
    im = axes[0].imshow(sim, cmap='RdBu_r', vmin=-vmax, vmax=vmax, interpolation='nearest')
    fig.colorbar(im, ax=axes[0], label='cosine similarity', shrink=0.8)
    axes[0].set_title('cosine(node, node) of the embedding', fontsize=9)
    axes[1].imshow(adj, cmap='Greys', vmin=0, vmax=1, interpolation='nearest')
    axes[1].set_title('adjacency (black = edge)', fontsize=9)
    for ax in axes:
        node_ticks(ax, order)
        ax.set_xlabel('node')
        ax.set_ylabel('node')
    note = f'; {caption}' if caption else ''
    fig.suptitle(f'{title}\nsame node order in both; geometric = red where the adjacency is black{note}', fontsize=10)
    return save_figure(plt, fig, path)


def spectrum_bins(values, k, max_bars=MAX_BARS):
    """Bars for the non-trivial spectrum (values ascending): one per eigenspace, or past max_bars of
    them runs of consecutive eigenvectors; a bar never straddles the k-th. Returns (first index,
    size) arrays."""
    m = len(values)
    starts = np.r_[0, 1 + np.flatnonzero(np.diff(values) > EIGEN_TOL)].astype(np.int64)
    if len(starts) > max_bars:
        starts = np.linspace(0, m, max_bars, endpoint=False).round().astype(np.int64)
    starts = np.unique(np.r_[starts, [k] if 0 < k < m else []]).astype(np.int64)
    return starts, np.diff(np.r_[starts, m])


def spectrum_figure(node_emb, n, edges, title, k=None):
    """(b) the embedding's energy per Laplacian eigenspace (ascending eigenvalue) beside a random
    embedding's, and the cumulative share of the k lowest eigenvectors against k. The k drawn is
    low_frequency_mass's, geometry/spectral_k of the metrics. Returns the figure."""
    plt = pyplot()
    values, vectors = laplacian_eigen(n, edges)
    t = trivial_count(values)
    energy, values = spectral_energy(node_emb, vectors, t)[t:], values[t:]
    low = low_frequency_mass(node_emb, n, edges, k)
    m, k = len(values), low['k']
    starts, sizes = spectrum_bins(values, k)
    shares = np.add.reduceat(energy, starts) if m else np.zeros(0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    idx = np.arange(len(starts))
    left.bar(idx, shares, color=np.where(starts < k, 'tab:red', 'tab:blue'), width=0.8)
    left.hlines(sizes / max(1, m), idx - 0.4, idx + 0.4, colors='k', linestyles='--', lw=1,
                label='random embedding (eigenvectors in the bar / all)')
    step = max(1, int(np.ceil(len(idx) / MAX_TICKS)))
    left.set_xticks(idx[::step])
    left.set_xticklabels([f'{values[a]:.2f}' + (f' x{b}' if b > 1 else '') for a, b in zip(starts, sizes)][::step],
                         fontsize=7, rotation=90)
    left.set_xlabel('Laplacian eigenvalue (x eigenvectors in its bar; low = smooth over the graph)')
    left.set_ylabel('share of centred embedding energy')
    left.set_title(f"red: the k = {k} lowest eigenvectors (geometry/spectral_k) hold {low['mass']:.3f} "
                   f"(random {low['random']:.3f})", fontsize=9)
    left.legend(fontsize=8)
    right.step(np.arange(m + 1), np.r_[0.0, np.cumsum(energy)], where='post', color='tab:red', label='embedding')
    right.plot([0, m], [0, 1], color='k', ls='--', lw=1, label='random embedding')
    right.axvline(k, color='0.5', ls=':', lw=1)
    right.plot([k], [low['mass']], 'o', color='tab:red', ms=5)
    right.annotate(f"k = {k}: {low['mass']:.3f}", (k, low['mass']), fontsize=8, xytext=(6, -12),
                   textcoords='offset points')
    right.set_xlim(0, max(1, m))
    right.set_ylim(0, 1.02)
    right.set_xlabel(f'k, the number of lowest non-trivial eigenvectors (of {m})')
    right.set_ylabel('cumulative share of energy')
    right.set_title('cumulative: a geometric embedding rises early', fontsize=9)
    right.legend(fontsize=8, loc='lower right')
    fig.suptitle(f'{title}\nspectral energy of the node embedding on the graph Laplacian', fontsize=10)
    return fig


def plot_spectrum(node_emb, n, edges, title, path, k=None):
    return save_figure(pyplot(), spectrum_figure(node_emb, n, edges, title, k), path)


def draw_graph(ax, xy, edges, colour, names, vmax):
    """Nodes at xy (one row per entry of names) with edges given as pairs of row indices."""
    few = len(xy) <= MAX_LABELLED  # past that, smaller dots and plain lines: antialiased, the PNG is 3x the size
    for u, v in edges:
        ax.plot(xy[[u, v], 0], xy[[u, v], 1], color='0.6', lw=0.8, zorder=1, antialiased=few)
    dots = ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap='coolwarm', vmin=-vmax, vmax=vmax, s=60 if few else 30,
                      edgecolors='k', linewidths=0.5 if few else 0.3, zorder=2)
    if few:
        for name, (x, y) in zip(names, xy):
            ax.annotate(str(name), (x, y), fontsize=7, xytext=(4, 4), textcoords='offset points')
    return dots


def plot_fiedler(node_emb, n, edges, layout, title, path, shown=None, caption=''):
    """(c) the Fiedler vector (fiedler_colour) drawn on the graph (nodes at layout) beside a 2-D PCA
    of the embedding, same colours, same edges: a geometric embedding looks like the graph. shown
    (default all) are the nodes drawn, and the ones the PCA is of."""
    plt = pyplot()
    shown = np.arange(n) if shown is None else np.asarray(shown)
    colour = fiedler_colour(n, edges, layout)[shown]
    vmax = max(float(np.abs(colour).max()) if len(colour) else 0.0, EPS)
    row = np.full(n, -1)
    row[shown] = np.arange(len(shown))
    pairs = row[undirected_pairs(edges)]
    pairs = pairs[(pairs >= 0).all(axis=1)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5), constrained_layout=True)
    dots = draw_graph(left, np.asarray(layout, dtype=np.float64)[shown], pairs, colour, shown, vmax)
    left.set_title('the graph (at its layout), coloured by the Fiedler vector', fontsize=9)
    left.set_aspect('equal', adjustable='datalim')
    left.axis('off')
    draw_graph(right, pca_2d(np.asarray(node_emb)[shown]), pairs, colour, shown, vmax)
    right.set_title('node embeddings: PCA of these nodes, same colours and edges', fontsize=9)
    right.set_xlabel('principal component 1')
    right.set_ylabel('principal component 2')
    fig.colorbar(dots, ax=[left, right], label='Fiedler vector value', shrink=0.7)
    fig.suptitle(f'{title}\n{caption}' if caption else title, fontsize=10)
    return save_figure(plt, fig, path)


def dynamics_figure(history, title='edge recovery during training'):
    """(d) associative (the model's own top-k edge recovery) and geometric (the embedding's nearest
    neighbours) recovery over training steps; history = [dict(step, associative, geometric)], a
    key missing or None where it was not measured. Steps spanning two decades or more (Node2Vec's
    10,000 epochs, measured every 25) get a log axis: the rise is in the first few hundred."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for key, colour, words in (('associative', 'tab:blue', "associative: the model's own top-k"),
                               ('geometric', 'tab:red', "geometric: the embedding's top-k nearest")):
        points = [(h['step'], h[key]) for h in history if h.get(key) is not None]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, color=colour, marker='o' if len(points) <= 50 else None, ms=3, label=words)
    positive = [h['step'] for h in history if h['step'] > 0]
    if positive and max(positive) >= 100 * min(positive):
        ax.set_xscale('symlog', linthresh=min(positive))  # linear below the first step, so step 0 stays
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel('training step' + (' (log scale)' if ax.get_xscale() == 'symlog' else ''))
    ax.set_ylabel('fraction of edges recovered')
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='best')
    return fig


def plot_dynamics(history, path, title='edge recovery during training'):
    return save_figure(pyplot(), dynamics_figure(history, title), path)


# -----------------------------------------------------------------------------
# everything for one embedding


def write_report(node_emb, graph, out_dir, title, name='graph', self_edges=False, history=None, top_k=TOP_K):
    """{name}.json (the metrics, title, PNG paths and history) and the PNGs {name}_*.png in out_dir
    (graph.json, graph_*.png for analyze.py, train.py and baseline_node2vec.py alike). Star graphs
    keep their arms as blocks in the similarity plot; other graphs use spectral_order; past
    MAX_SHOWN nodes both node plots draw shown_nodes. Returns (metrics, {plot: png path})."""
    os.makedirs(out_dir, exist_ok=True)
    n, edges = graph.n, undirected_pairs(graph.edges)
    metrics = graph_metrics(node_emb, graph, top_k=top_k, self_edges=self_edges)
    shown, caption = shown_nodes(graph)
    png = lambda what: os.path.join(out_dir, f'{name}_{what}.png')  # noqa: E731
    pngs = {'similarity': plot_similarity(node_emb, n, edges, title, png('similarity'), shown, caption),
            'spectrum': plot_spectrum(node_emb, n, edges, title, png('spectrum')),
            'fiedler': plot_fiedler(node_emb, n, edges, graph.layout, title, png('fiedler'), shown, caption)}
    if history:
        pngs['dynamics'] = plot_dynamics(history, png('dynamics'), title)
    write_json(dict(metrics, title=title, family=graph.family, n=n, pngs=pngs, history=history or []),
               os.path.join(out_dir, f'{name}.json'))
    return metrics, pngs
