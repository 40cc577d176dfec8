"""graph='grid': grid_rows x grid_cols nodes, each joined to its right and lower neighbours (edges only)."""
import numpy as np

from pathstar.errors import require
from pathstar.graphs.common import GraphSizes, no_paths

KEYS = ('grid_rows', 'grid_cols')
HAS_PATHS = False
BUILDERS = ('pathstar',)
IMPORTS = False


def sizes(cfg):
    r, c = cfg['grid_rows'], cfg['grid_cols']
    return GraphSizes(r * c, r * (c - 1) + c * (r - 1), 0, 0)


def check(cfg):
    require(min(cfg['grid_rows'], cfg['grid_cols']) >= 1 and cfg['grid_rows'] * cfg['grid_cols'] >= 2,
            f"grid_rows, grid_cols: must be >= 1 with at least 2 nodes, got {cfg['grid_rows']} x {cfg['grid_cols']}")


def build(cfg, rng):
    rows, cols = cfg['grid_rows'], cfg['grid_cols']
    node = np.arange(rows * cols).reshape(rows, cols)
    right = np.stack((node[:, :-1].ravel(), node[:, 1:].ravel()), 1)
    down = np.stack((node[:-1, :].ravel(), node[1:, :].ravel()), 1)
    edges = np.concatenate((right, down))
    edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))]  # node by node: its right, then its lower neighbour
    r, c = np.divmod(np.arange(rows * cols), cols)
    return (edges, *no_paths(cfg), np.stack((c, -r), 1).astype(float))


def nodes_formula(cfg):
    """How the node count follows from the keys, for an error message."""
    return f"grid_rows * grid_cols = {cfg['grid_rows']} * {cfg['grid_cols']}"


def folder_name(dcfg):
    return f"grid_n{sizes(dcfg).nodes}_v{dcfg['graph_vocab_size']}"


def describe(meta):
    return f"grid {meta['config']['grid_rows']} x {meta['config']['grid_cols']}"
