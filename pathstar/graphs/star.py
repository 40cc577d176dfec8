"""
graph='star': a root with graph_d arms of graph_l - 1 nodes, the path-star task. Node 0 is the root,
then each arm's nodes root side first, arm by arm; graph_holdout_percentage of the arms are held out.
"""
from pathstar.errors import require
from pathstar.graphs.common import (MAX_GRAPH_NODES, GraphSizes, holdout_count, radial_layout, tree_edges,
                                    tree_paths)

KEYS = ('graph_d', 'graph_l')   # the size keys this family reads
HAS_PATHS = True                # root->leaf path rows (the families without train edges alone)
BUILDERS = ('pathstar', 'official')  # graph_builder='official' draws it as the official builder does
IMPORTS = True                  # data_import: the official files hold a star


def sizes(cfg):
    d, l = cfg['graph_d'], cfg['graph_l']
    return GraphSizes(d * (l - 1) + 1, d * (l - 1), d, holdout_count(d, cfg['graph_holdout_percentage'],
                                                                     cfg['graph_builder']))


def check(cfg):
    n = sizes(cfg).nodes
    require(n <= MAX_GRAPH_NODES, f"graph_d: the graph would have {n:,} nodes, more than {MAX_GRAPH_NODES:,}")


def nodes_formula(cfg):
    """How the node count follows from the keys, for an error message."""
    d, l = cfg['graph_d'], cfg['graph_l']
    return f"d * (l-1) + 1 = {d} * {l - 1} + 1"


def holdout_units(cfg):
    """(what is held out, how many there are, the whole in words): the arms."""
    return 'leaves', cfg['graph_d'], f"graph_d={cfg['graph_d']}"


def build(cfg, rng):
    d, l = cfg['graph_d'], cfg['graph_l']
    paths = tree_paths(d, l, 1)
    held_out = rng.choice(d, sizes(cfg).held_out, replace=False)
    return tree_edges(paths), paths, held_out, radial_layout(paths, d * (l - 1) + 1)


def folder_name(dcfg):
    return (f"pathstar_d{dcfg['graph_d']}_l{dcfg['graph_l']}_v{dcfg['graph_vocab_size']}"
            f"_h{dcfg['graph_holdout_percentage']:g}_p{dcfg['num_pause_tokens']}")


def describe(meta):
    return f"{meta['d']} arms x {meta['l']} nodes per path"
