"""
What every graph family shares: the Graph it builds, its sizes, the held-out count, and the
star-shaped trees' node numbering and layouts. Imports nothing of the project but pathstar.tokens.
"""
from typing import NamedTuple

import numpy as np

from pathstar.tokens import NODE_OFFSET

MAX_GRAPH_NODES = 2 ** 31  # node indices are int64, but a graph this big would not fit in memory anyway


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
        return self.labels[nodes] + NODE_OFFSET


class GraphSizes(NamedTuple):
    nodes: int
    edges: int      # undirected, self-edges not counted
    paths: int      # root->leaf paths of the path task (0: edges only)
    held_out: int   # of those paths, never trained


def holdout_count(d, percentage, builder='pathstar'):
    """How many of d paths (or subtrees) are held out: d * percentage rounded half up (0.05 of 10 is 1);
    the official builder trains int(d * (1 - percentage)) of them and holds out the rest."""
    if builder == 'official':
        return d - int(d * round(1 - percentage, 12))  # round: 1 - 0.25 is the 0.75 the official code is given
    return int(d * percentage + 0.5 + 1e-9)  # the 1e-9 keeps 0.05 * 10 = 0.4999.. from rounding down


def resolve_vocab(vocab, nodes):
    """graph_vocab_size as an int ('2max' -> 2 x the graph's nodes)."""
    if isinstance(vocab, str):
        return int(vocab[:-3]) * nodes
    return vocab


def no_paths(cfg):
    return np.zeros((0, cfg['graph_l']), np.int64), np.zeros(0, np.int64)


def circle(n, radius=1.0):
    angle = 2 * np.pi * np.arange(n) / max(n, 1)
    return radius * np.stack((np.cos(angle), np.sin(angle)), 1)


# -----------------------------------------------------------------------------
# star-shaped trees: node 0 is the root, then each arm's nodes in breadth-first order, arm by arm

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
