"""graph='cycle': cycle_n nodes in a ring (edges only)."""
import numpy as np

from pathstar.errors import require
from pathstar.graphs.common import GraphSizes, circle, no_paths

KEYS = ('cycle_n',)
HAS_PATHS = False
BUILDERS = ('pathstar',)
IMPORTS = False


def sizes(cfg):
    return GraphSizes(cfg['cycle_n'], cfg['cycle_n'], 0, 0)


def check(cfg):
    require(cfg['cycle_n'] >= 3, f"cycle_n: must be >= 3, got {cfg['cycle_n']}")


def build(cfg, rng):
    n = cfg['cycle_n']
    edges = np.stack((np.arange(n), (np.arange(n) + 1) % n), 1)
    return (edges, *no_paths(cfg), circle(n))


def nodes_formula(cfg):
    """How the node count follows from the keys, for an error message."""
    return "cycle_n"


def folder_name(dcfg):
    return f"cycle_n{sizes(dcfg).nodes}_v{dcfg['graph_vocab_size']}"


def describe(meta):
    return 'cycle'
