"""
The graph families, one module each, and their registry GRAPHS (the key `graph`):

    star       a root with graph_d arms of graph_l - 1 nodes (the path-star task)
    star_tree  a root with graph_d children, each the root of a full star_subtree_degree-ary tree
    grid       grid_rows x grid_cols                     } edges only: no path task
    cycle      cycle_n nodes in a ring                   }
    irregular  a random connected graph (or the official one)

A family module holds everything about its family: KEYS (its size keys), HAS_PATHS, BUILDERS (the
graph_builder values it knows), IMPORTS (whether data_import's official files can hold it), sizes(cfg),
check(cfg) (raises UserError), build(cfg, rng) -> (edges, paths, held_out, layout), describe(meta),
folder_name(dcfg) (its cache folders' readable name) and nodes_formula(cfg) (how its node count follows
from its keys, for messages); a path family also holdout_units(cfg).
Adding a family is one module and one line in GRAPHS, plus its keys in configurator.py.
Node ids, labels and held-out paths all come from one generator seeded by data_seed.
May import: pathstar.tokens, pathstar.errors; a family module only common.py of its siblings.
"""
import numpy as np

from pathstar.errors import UserError
from pathstar.graphs import cycle, grid, irregular, star, star_tree
from pathstar.graphs.common import Graph, resolve_vocab

GRAPHS = {'star': star, 'star_tree': star_tree, 'grid': grid, 'cycle': cycle, 'irregular': irregular}
# every family's size keys, and the keys every family reads
GRAPH_KEYS = ('graph', *dict.fromkeys(k for f in GRAPHS.values() for k in f.KEYS), 'graph_holdout_percentage',
              'graph_builder')


def family(cfg):
    """The module of cfg's graph family; an unknown one is a UserError naming the known ones."""
    name = cfg['graph']
    if name not in GRAPHS:
        raise UserError(f"graph: expected one of {', '.join(GRAPHS)}, got {name!r}")
    return GRAPHS[name]


def graph_sizes(cfg):
    """GraphSizes of cfg's graph, from its GRAPH_KEYS alone."""
    return family(cfg).sizes(cfg)


def folder_name(dcfg):
    """The readable part of an in-weights cache folder's name (the hash follows it)."""
    return family(dcfg).folder_name(dcfg)


def build(cfg):
    """The Graph of a checked config."""
    rng = np.random.default_rng(cfg['data_seed'])
    n = graph_sizes(cfg).nodes
    # labels first, so the star draws exactly what it always drew: labels, then the held-out arms
    labels = rng.choice(resolve_vocab(cfg['graph_vocab_size'], n), n, replace=False).astype(np.int64)
    edges, paths, held_out, layout = family(cfg).build(cfg, rng)
    return Graph(cfg['graph'], n, edges, labels, paths, np.sort(held_out).astype(np.int64), layout)
