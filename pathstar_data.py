"""
The path-star dataset, learned in the weights: one fixed star-shaped graph whose
edges and root->leaf paths are the training rows, while the paths to a few
held-out leaves are the validation rows.

    python3 pathstar_data.py --graph_d=5 --graph_l=4    # build (or reuse) and show a few rows
    python3 pathstar_data.py --graph_d=5 --graph_l=4 --export_official DIR   # write it as the official code's files

The graph is a root with graph_d arms of graph_l - 1 nodes each, so a root->leaf
path has graph_l nodes. Every row of a dataset has one length T, right-padded:

    edge row   [EDGE] > u v                      parent u -> child v
               [EDGE] < v u                      the same edge backwards (use_undirected)
    path row   [PATH] leaf _ _ _ root n1 .. leaf  ('_' is PAUSE; path_target='full')
               [PATH] leaf _ _ _ n1               (path_target='first_hop': the hop after the root)
               [PATH] leaf _ _ _ leaf .. n1 root  (path_target='reversed')
               [PATH] root leaf _ _ _ ..          (root_in_prompt: the root joins the prompt)

A model is scored only on the targets (the masks): the last node of an edge row
and the nodes after the prompt of a path row. Held-out arms keep their edges in
training, so validation asks for a path the model has only seen in pieces.
teacherless=True changes no row: the inputs after a path prompt become DUMMY ('$')
when a model reads the rows (pathstar/data/slots.py).

This file is the dataset's entry point: load_or_build(cfg) checks a config (or the few keys a caller
changes) once and hands it to the library (pathstar/data: inweights.py and incontext.py build the rows,
cache.py keeps them), and the command line shows a dataset or exports it. Each parameter set is built
once, with vectorised numpy, into its own folder
{data_dir}/pathstar_d.._{hash}/ of .npy files and meta.json. Builders of the same
set take turns on a lock file. A finished folder is reused once every array matches
the shape, dtype and crc32 that meta.json records; a damaged one is rebuilt.
"""
import sys

import configurator
from pathstar import validate
from pathstar.data import cache, inweights, tasks
from pathstar.errors import UserError
from pathstar.graphs import official
from pathstar.tokens import NODE_OFFSET


def load_or_build(cfg, verbose=True, mmap=False):
    """The dataset for cfg (a whole config, or just the keys a caller changes: the rest take their
    defaults), from its cache folder under data_dir, building it first if needed. The config is checked
    here, once (UserError, before anything is written); cache.py keeps the folders trustworthy."""
    return cache.load_or_build(validate.build_config(cfg), verbose, mmap)


def summary(data):
    """A few lines about the dataset and a handful of decoded rows, never the whole thing."""
    return tasks.task(data.meta['config']).summary(data)


def export_flag(argv):
    """(argv without '--export_official DIR' or '--export_official=DIR', DIR or None): a flag of this
    command line, not a config key."""
    rest, folder, args = [], None, iter(argv)
    for arg in args:
        if arg != '--export_official' and not arg.startswith('--export_official='):
            rest.append(arg)
            continue
        if folder is not None:
            raise UserError("--export_official: given twice")
        folder = arg.partition('=')[2] if '=' in arg else next(args, '')
        if not folder or folder.startswith('--'):
            raise UserError("--export_official: expected a folder, e.g. --export_official official/g5_l4")
    return rest, folder


def export_official(cfg, folder):
    """Write cfg's graph into folder as the official code's three files (no cache is built), all three or
    none; returns the lines to print. Only what the files hold exactly: an in-weights star or star-tree,
    with or without self-edges (selfedge_1)."""
    given = {**configurator.DEFAULTS, **cfg}
    for key, allowed in (('task', ('in_weights',)), ('graph', ('star', 'star_tree'))):
        if given[key] not in allowed:
            raise UserError(f"--export_official: {key}={given[key]!r} is not written; the official files hold "
                            f"one in-weights graph={' or '.join(map(repr, ('star', 'star_tree')))}")
    dcfg = inweights.data_config(cfg)
    paths, held_out = inweights.draw_graph(dcfg)[:2]
    k = dcfg['star_subtree_degree'] if dcfg['graph'] == 'star_tree' else 1
    return official.write(folder, paths - NODE_OFFSET, held_out, dcfg['use_undirected'], k, dcfg['add_self_edges'])


def main(argv):
    if set(argv) & set(configurator.HELP_FLAGS):
        print(configurator.help_text('pathstar_data.py', ' [--export_official <folder>]'))
        print("\nPrints the dataset's summary (built and cached if new), or writes the official code's files.")
        return
    argv, export = export_flag(argv)
    cfg = validate.parse_args(argv)
    if export is not None:
        print('\n'.join(export_official(cfg, export)))
        return
    print(summary(cache.load_or_build(cfg, verbose=False, mmap=True)))


if __name__ == '__main__':
    configurator.exit_on_user_error(lambda: main(sys.argv[1:]))
