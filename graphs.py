"""
The graphs a model memorises, one family per builder in FAMILIES (the key `graph`):

    star       a root with graph_d arms of graph_l - 1 nodes (the path-star task)
    star_tree  a root with graph_d children, each the root of a full star_subtree_degree-ary
               tree, so every root->leaf path has graph_l nodes (the official star with
               star_subtree_degree > 1); subtree_holdout holds out whole subtrees
    grid       grid_rows x grid_cols, each node joined to its right and lower neighbours
    cycle      cycle_n nodes in a ring
    irregular  irregular_n nodes, irregular_edges edges: a random spanning tree plus random
               extra edges (graph_builder='official': the official code's fixed 16-node graph)

A graph is nodes 0..n-1 with labels (node k is token NODE_OFFSET + labels[k]), undirected
edges as (parent, child) pairs, the root->leaf paths a path task asks for (star families
only; grid, cycle and irregular train edges alone) and which of them are held out.
Turning a graph into token rows is pathstar_data.py's job; drawing it is graph_geometry's.
Node ids, labels and held-out paths all come from one generator seeded by data_seed.
"""
from typing import NamedTuple

import numpy as np

import config_rules


class Graph(NamedTuple):
    family: str
    n: int                 # nodes, indexed 0..n-1
    edges: np.ndarray      # (E, 2) int64 node pairs (parent, child); self-edges are not listed here
    labels: np.ndarray     # (n,) int64 distinct labels from range(graph_vocab_size)
    paths: np.ndarray      # (P, l) int64 nodes root..leaf of every path; (0, l) without a path task
    held_out: np.ndarray   # sorted indices into paths whose path rows are never trained
    layout: np.ndarray     # (n, 2) float positions to draw the nodes at

    def tokens(self, nodes):
        """Token ids of node indices (any shape)."""
        import pathstar_data
        return self.labels[nodes] + pathstar_data.NODE_OFFSET


FAMILIES = {}  # name -> builder(cfg, rng) -> (n, edges, paths, held_out, layout)


def family(name):
    def register(fn):
        FAMILIES[name] = fn
        return fn
    return register


def build(cfg):
    """The graph of a full config (configurator.build_config's)."""
    rng = np.random.default_rng(cfg['data_seed'])
    n = config_rules.graph_sizes(cfg).nodes
    vocab = config_rules.resolve_vocab(cfg['graph_vocab_size'], n)
    # labels first, so the star draws exactly what it always drew: labels, then the held-out arms
    labels = rng.choice(vocab, n, replace=False).astype(np.int64)
    edges, paths, held_out, layout = FAMILIES[cfg['graph']](cfg, rng)
    return Graph(cfg['graph'], n, edges, labels, paths, np.sort(held_out).astype(np.int64), layout)


def no_paths(cfg):
    return np.zeros((0, cfg['graph_l']), np.int64), np.zeros(0, np.int64)


def circle(n, radius=1.0):
    angle = 2 * np.pi * np.arange(n) / max(n, 1)
    return radius * np.stack((np.cos(angle), np.sin(angle)), 1)


# -----------------------------------------------------------------------------
# star families: node 0 is the root, then each arm's nodes in breadth-first order, arm by arm

def tree_paths(d, l, k):
    """(d * k^(l-2), l) node indices root..leaf of a root with d children, each the root of a full
    k-ary tree, numbered arm by arm breadth first (k = 1 is the star: node 1 + a*(l-1) + j-1)."""
    per_level = [k ** (j - 1) for j in range(1, l)]        # nodes at depth j = 1..l-1 of one arm
    offset = np.concatenate([[0], np.cumsum(per_level)])    # first index of each depth within an arm
    size = int(offset[-1])                                  # nodes per arm
    leaves = per_level[-1]
    paths = np.zeros((d * leaves, l), np.int64)             # column 0 is the root, node 0
    arm = np.repeat(np.arange(d), leaves)
    leaf = np.tile(np.arange(leaves), d)
    for j in range(1, l):
        paths[:, j] = 1 + arm * size + offset[j - 1] + leaf // k ** (l - 1 - j)
    return paths


def tree_edges(paths):
    """Each (parent, child) once, in child order: every non-root node has one parent."""
    pairs = np.stack((paths[:, :-1].ravel(), paths[:, 1:].ravel()), 1)
    _, first = np.unique(pairs[:, 1], return_index=True)
    return pairs[first]


def radial_layout(paths, n):
    """Depth is the radius, and each leaf gets its own angle; inner nodes sit at their leaves' mean angle."""
    angle = 2 * np.pi * np.arange(len(paths)) / max(len(paths), 1)
    total, count = np.zeros(n), np.zeros(n)
    np.add.at(total, paths.ravel(), np.repeat(angle, paths.shape[1]))
    np.add.at(count, paths.ravel(), 1)
    theta = total / np.maximum(count, 1)
    depth = np.zeros(n)
    depth[paths.ravel()] = np.tile(np.arange(paths.shape[1]), len(paths))
    return np.stack((depth * np.cos(theta), depth * np.sin(theta)), 1)


@family('star')
def star(cfg, rng):
    d, l = cfg['graph_d'], cfg['graph_l']
    paths = tree_paths(d, l, 1)
    held_out = rng.choice(d, config_rules.graph_sizes(cfg).held_out, replace=False)
    n = d * (l - 1) + 1
    return tree_edges(paths), paths, held_out, radial_layout(paths, n)


@family('star_tree')
def star_tree(cfg, rng):
    d, l, k = cfg['graph_d'], cfg['graph_l'], cfg['star_subtree_degree']
    paths = tree_paths(d, l, k)
    sizes = config_rules.graph_sizes(cfg)
    if cfg['subtree_holdout']:  # whole subtrees: every leaf below the held-out children of the root
        arms = rng.choice(d, sizes.held_out // k ** (l - 2), replace=False)
        held_out = (arms[:, None] * k ** (l - 2) + np.arange(k ** (l - 2))).ravel()
    else:
        held_out = rng.choice(len(paths), sizes.held_out, replace=False)
    return tree_edges(paths), paths, held_out, radial_layout(paths, sizes.nodes)


# -----------------------------------------------------------------------------
# graphs without a path task: edges only

@family('grid')
def grid(cfg, rng):
    rows, cols = cfg['grid_rows'], cfg['grid_cols']
    node = np.arange(rows * cols).reshape(rows, cols)
    right = np.stack((node[:, :-1].ravel(), node[:, 1:].ravel()), 1)
    down = np.stack((node[:-1, :].ravel(), node[1:, :].ravel()), 1)
    edges = np.concatenate((right, down))
    edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))]  # node by node: its right, then its lower neighbour
    r, c = np.divmod(np.arange(rows * cols), cols)
    return (edges, *no_paths(cfg), np.stack((c, -r), 1).astype(float))


@family('cycle')
def cycle(cfg, rng):
    n = cfg['cycle_n']
    edges = np.stack((np.arange(n), (np.arange(n) + 1) % n), 1)
    return (edges, *no_paths(cfg), circle(n))


# the official code's fixed irregular graph (its graph_type='irregular' accepts only this one): a 12-node
# ring with chords (1-3, 5-8) and, apart from it, a complete graph on nodes 12..15; two components
OFFICIAL_IRREGULAR = ((0, 1), (0, 11), (1, 2), (1, 3), (2, 3), (3, 4), (4, 5), (5, 6), (5, 8), (6, 7), (7, 8),
                      (8, 9), (9, 10), (10, 11), (12, 13), (12, 14), (12, 15), (13, 14), (13, 15), (14, 15))


def random_connected(n, m, rng):
    """A random spanning tree (each node in a random order joins a random earlier one) plus m - (n - 1)
    random extra edges, as sorted (u < v) pairs."""
    order = rng.permutation(n)
    parents = order[(rng.random(n - 1) * np.arange(1, n)).astype(np.int64)]
    tree = np.stack((parents, order[1:]), 1)
    edges = set(map(tuple, np.sort(tree, 1).tolist()))
    others = [(u, v) for u in range(n) for v in range(u + 1, n) if (u, v) not in edges]
    for i in rng.choice(len(others), m - (n - 1), replace=False):
        edges.add(others[i])
    return np.array(sorted(edges), np.int64).reshape(-1, 2)


def spectral_layout(n, edges):
    """The Laplacian's 2nd and 3rd eigenvectors as coordinates: neighbours land near each other."""
    adj = np.zeros((n, n))
    adj[edges[:, 0], edges[:, 1]] = adj[edges[:, 1], edges[:, 0]] = 1
    _, vectors = np.linalg.eigh(np.diag(adj.sum(1)) - adj)
    return vectors[:, 1:3] if n > 2 else np.zeros((n, 2))


@family('irregular')
def irregular(cfg, rng):
    n, m = cfg['irregular_n'], cfg['irregular_edges']
    if cfg['graph_builder'] == 'official':
        edges = np.array(sorted(OFFICIAL_IRREGULAR), np.int64)
    else:
        edges = random_connected(n, m, rng)
    return (edges, *no_paths(cfg), spectral_layout(n, edges))
