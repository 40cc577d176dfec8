"""
graph='star_tree': a root with graph_d children, each the root of a full star_subtree_degree-ary tree,
so every root->leaf path has graph_l nodes (the official star with a subtree degree above 1).
subtree_holdout holds out whole subtrees, else single leaves.
The official builder's star_deg, deg_tree and path_length are graph_d, star_subtree_degree and graph_l
exactly (its path_length counts the root too), so its deg_tree_k files import and export as they are.
"""
import numpy as np

from pathstar.errors import require
from pathstar.graphs.common import (MAX_GRAPH_NODES, GraphSizes, holdout_count, radial_layout, tree_edges,
                                    tree_paths)

KEYS = ('graph_d', 'graph_l', 'star_subtree_degree', 'subtree_holdout')
HAS_PATHS = True
BUILDERS = ('pathstar',)
IMPORTS = True   # data_import: the official deg_tree_k files (k > 1) hold a star-tree


def sizes(cfg):
    d, l, k, p = cfg['graph_d'], cfg['graph_l'], cfg['star_subtree_degree'], cfg['graph_holdout_percentage']
    nodes = 1 + d * (k ** (l - 1) - 1) // (k - 1) if k > 1 else d * (l - 1) + 1
    leaves = d * k ** (l - 2)
    held = holdout_count(d, p) * k ** (l - 2) if cfg['subtree_holdout'] else holdout_count(leaves, p)
    return GraphSizes(nodes, nodes - 1, leaves, held)


def check(cfg):
    require(cfg['star_subtree_degree'] >= 2, f"star_subtree_degree: must be >= 2 (1 is graph='star'), got "
                                             f"{cfg['star_subtree_degree']}")
    n = sizes(cfg).nodes
    require(n <= MAX_GRAPH_NODES, f"graph_d: the graph would have {n:,} nodes, more than {MAX_GRAPH_NODES:,}")


def holdout_units(cfg):
    if cfg['subtree_holdout']:
        return 'subtrees', cfg['graph_d'], f"graph_d={cfg['graph_d']} subtrees"
    leaves = sizes(cfg).paths
    return 'leaves', leaves, f"{leaves} star_tree leaves"


def build(cfg, rng):
    d, l, k = cfg['graph_d'], cfg['graph_l'], cfg['star_subtree_degree']
    paths = tree_paths(d, l, k)
    s = sizes(cfg)
    if cfg['subtree_holdout']:  # whole subtrees: every leaf below the held-out children of the root
        arms = rng.choice(d, s.held_out // k ** (l - 2), replace=False)
        held_out = (arms[:, None] * k ** (l - 2) + np.arange(k ** (l - 2))).ravel()
    else:
        held_out = rng.choice(len(paths), s.held_out, replace=False)
    return tree_edges(paths), paths, held_out, radial_layout(paths, s.nodes)


def folder_name(dcfg):
    return f"star_tree_n{sizes(dcfg).nodes}_v{dcfg['graph_vocab_size']}"


def nodes_formula(cfg):
    """How the node count follows from the keys, for an error message."""
    return (f"1 + d * (k^(l-1) - 1) / (k-1) with d, l, k = graph_d, graph_l, star_subtree_degree = "
            f"{cfg['graph_d']}, {cfg['graph_l']}, {cfg['star_subtree_degree']}")


def describe(meta):
    c = meta['config']
    return f"{meta['d']} subtrees of degree {c['star_subtree_degree']}, {meta['num_paths']} paths of {meta['l']} nodes"
