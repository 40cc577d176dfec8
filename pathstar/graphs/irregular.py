"""
graph='irregular': irregular_n nodes and irregular_edges edges, a random spanning tree plus random
extra edges (edges only); graph_builder='official' is the official code's fixed 16-node graph.
"""
import numpy as np

from pathstar.errors import require
from pathstar.graphs.common import GraphSizes, circle, no_paths

KEYS = ('irregular_n', 'irregular_edges')
HAS_PATHS = False
BUILDERS = ('pathstar', 'official')
IMPORTS = False

# the official code's fixed irregular graph (its graph_type='irregular' accepts only this one): a 12-node
# ring with chords (1-3, 5-8) and, apart from it, a complete graph on nodes 12..15; two components
OFFICIAL_IRREGULAR = ((0, 1), (0, 11), (1, 2), (1, 3), (2, 3), (3, 4), (4, 5), (5, 6), (5, 8), (6, 7), (7, 8),
                      (8, 9), (9, 10), (10, 11), (12, 13), (12, 14), (12, 15), (13, 14), (13, 15), (14, 15))


def sizes(cfg):
    return GraphSizes(cfg['irregular_n'], cfg['irregular_edges'], 0, 0)


def check(cfg):
    n, m = cfg['irregular_n'], cfg['irregular_edges']
    require(n >= 2, f"irregular_n: must be >= 2, got {n}")
    require(n - 1 <= m <= n * (n - 1) // 2, f"irregular_edges: a connected graph on {n} nodes has "
                                             f"{n - 1}..{n * (n - 1) // 2} edges, got {m}")
    require(cfg['graph_builder'] != 'official' or (n, m) == (16, 20),
            "graph_builder: the official irregular graph has irregular_n=16 and irregular_edges=20")


ENUMERATE_PAIRS = 2 ** 20  # up to this many node pairs the extra edges are drawn from a list of them all
DENSE_LAYOUT = 4096        # up to this many nodes the layout is spectral (a dense n x n eigenproblem)


def random_connected(n, m, rng):
    """A random spanning tree (each node in a random order joins a random earlier one) plus m - (n - 1)
    random extra edges, as sorted (u < v) pairs. On a large graph the extra edges are drawn pair by pair
    and redrawn when taken, so memory follows m, not the n^2 / 2 pairs."""
    order = rng.permutation(n)
    parents = order[(rng.random(n - 1) * np.arange(1, n)).astype(np.int64)]
    tree = np.stack((parents, order[1:]), 1)
    edges = set(map(tuple, np.sort(tree, 1).tolist()))
    extra = m - (n - 1)
    if n * (n - 1) // 2 <= ENUMERATE_PAIRS:
        others = [(u, v) for u in range(n) for v in range(u + 1, n) if (u, v) not in edges]
        for i in rng.choice(len(others), extra, replace=False):
            edges.add(others[i])
    else:  # m <= n^2 / 2, and a graph this big is sparse: few redraws
        while len(edges) < m:
            pairs = np.sort(rng.integers(0, n, (2 * (m - len(edges)) + 16, 2)), 1)
            for u, v in pairs[pairs[:, 0] != pairs[:, 1]].tolist():
                if len(edges) == m:
                    break
                edges.add((u, v))
    return np.array(sorted(edges), np.int64).reshape(-1, 2)


def spectral_layout(n, edges):
    """The Laplacian's 2nd and 3rd eigenvectors as coordinates: neighbours land near each other."""
    adj = np.zeros((n, n))
    adj[edges[:, 0], edges[:, 1]] = adj[edges[:, 1], edges[:, 0]] = 1
    _, vectors = np.linalg.eigh(np.diag(adj.sum(1)) - adj)
    return vectors[:, 1:3] if n > 2 else np.zeros((n, 2))


def build(cfg, rng):
    n, m = cfg['irregular_n'], cfg['irregular_edges']
    if cfg['graph_builder'] == 'official':
        edges = np.array(sorted(OFFICIAL_IRREGULAR), np.int64)
    else:
        edges = random_connected(n, m, rng)
    layout = spectral_layout(n, edges) if n <= DENSE_LAYOUT else circle(n)  # too big to draw node by node anyway
    return (edges, *no_paths(cfg), layout)


def nodes_formula(cfg):
    """How the node count follows from the keys, for an error message."""
    return "irregular_n"


def folder_name(dcfg):
    return f"irregular_n{sizes(dcfg).nodes}_v{dcfg['graph_vocab_size']}"


def describe(meta):
    return f"irregular, {meta['config']['irregular_edges']} edges"
