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
when a model reads the rows (pathstar_rows.py).

Each parameter set is built once, with vectorised numpy, into its own folder
{data_dir}/pathstar_d.._{hash}/ of .npy files and meta.json. Builders of the same
set take turns on a lock file. A finished folder is reused once every array matches
the shape, dtype and crc32 that meta.json records; a damaged one is rebuilt.
"""
import os
import sys
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

import configurator
import graphs
import official_files
from config_rules import graph_sizes, holdout_count  # noqa: F401 (holdout_count: pathstar_data's callers)


FORMAT_VERSION = 3  # bump when the files change meaning: it is part of every cache folder's hash
# (2: meta.json records each array's shape, dtype and crc32; 3: the DUMMY token, so node k is token 7 + k,
# and path rows follow path_target and root_in_prompt)

# token ids: node label k is token NODE_OFFSET + k, so vocab_size = NODE_OFFSET + V
PAD, PAUSE, EDGE, PATH, FWD, BWD, DUMMY = 0, 1, 2, 3, 4, 5, 6
NODE_OFFSET = 7
TOKENS = dict(pad=PAD, pause=PAUSE, edge=EDGE, path=PATH, fwd=FWD, bwd=BWD, dummy=DUMMY)
TOKEN_TEXT = {PAUSE: '_', EDGE: '[EDGE]', PATH: '[PATH]', FWD: '>', BWD: '<', DUMMY: '$'}  # PAD is not shown

# the config keys that decide the dataset's contents (data_dir only decides where it lives)
DATA_KEYS = ('graph', 'graph_d', 'graph_l', 'star_subtree_degree', 'subtree_holdout', 'grid_rows', 'grid_cols',
             'cycle_n', 'irregular_n', 'irregular_edges', 'add_self_edges', 'graph_vocab_size',
             'graph_holdout_percentage', 'graph_builder', 'num_pause_tokens',
             'use_undirected', 'use_directional_tokens', 'use_task_tokens', 'path_target', 'root_in_prompt',
             'teacherless', 'path_replication', 'data_seed', 'data_import')
# teacherless leaves the stored rows as they are; it is a data key so that meta['config'] carries it
# to pathstar_rows and evaluate, which put the DUMMY inputs in
ARRAYS = ('train_rows', 'train_mask', 'val_rows', 'val_mask')
MAX_VOCAB_SIZE = 2 ** 32  # token ids are stored as uint16 or uint32


@dataclass
class PathStarData:
    train_rows: np.ndarray   # (n_train, T) uint16 or uint32: edge rows first, then path rows
    train_mask: np.ndarray   # (n_train, T) bool, True at the tokens to predict
    val_rows: np.ndarray     # (n_val, T) the held-out paths, each once
    val_mask: np.ndarray     # (n_val, T) bool
    meta: dict
    path: str                # the cache folder
    build_seconds: Optional[float] = None  # time this call spent building; None when it reused a cache

    def decode(self, row):
        return decode(row)


def decode(row):
    """Token ids -> text, e.g. '[PATH] n17 _ _ _ n3 n40 n12 n9 n17' (PAD left out)."""
    words = []
    for token in np.asarray(row).tolist():
        if token != PAD:
            words.append(TOKEN_TEXT.get(token) or f"n{token - NODE_OFFSET}")
    return ' '.join(words)


# -----------------------------------------------------------------------------
# the config

def data_config(cfg):
    """The dataset keys of cfg, checked by configurator.check (configurator.UserError), graph_vocab_size as an int.

    Missing keys take their defaults, so a caller may pass just the keys it changes.
    """
    full = configurator.build_config({key: cfg[key] for key in DATA_KEYS if key in cfg})
    picked = {key: full[key] for key in DATA_KEYS}
    picked['graph_vocab_size'] = configurator.resolve_vocab(full['graph_vocab_size'], graph_sizes(full).nodes)
    return picked


def path_target_nodes(l, path_target):
    """The targets of a path row, in order, as depths on the root..leaf path (0 = root, l - 1 = leaf)."""
    if path_target == 'first_hop':
        return [1]
    if path_target == 'reversed':
        return list(range(l - 1, -1, -1))
    return list(range(l))


def row_lengths(cfg):
    """(edge row length, path prompt length, path row length) for these token options."""
    task = int(cfg['use_task_tokens'])
    edge_len = task + int(cfg['use_directional_tokens']) + 2
    prompt_len = task + int(cfg['root_in_prompt']) + 1 + cfg['num_pause_tokens']  # [PATH] (root) leaf PAUSE..
    return edge_len, prompt_len, prompt_len + len(path_target_nodes(cfg['graph_l'], cfg['path_target']))


# -----------------------------------------------------------------------------
# building the arrays (pure numpy, no disk)

def draw_graph(cfg):
    """The graph of cfg as token ids: (paths, held_out, edges, nodes).

    paths (P, l) int64 root..leaf of every path ((0, l) for families without a path task),
    held_out the sorted indices of the held-out paths, edges (E, 2) the (parent, child) pairs and
    nodes (n,) every node, in graphs.py's node order (for the star: the root, then arm by arm).
    With data_import, the graph of the official files instead (node label k is the official id k,
    the arms sorted by their first hop, the test file's arms held out); graph_builder='official'
    draws the star as the official builder does.
    """
    if cfg['data_import']:
        graph = official_files.read(cfg['data_import'])
        if (graph.d, graph.l, graph.vocab_size) != (cfg['graph_d'], cfg['graph_l'], cfg['graph_vocab_size']):
            raise configurator.UserError(f"data_import: the files in {cfg['data_import']} changed while in use; "
                                         f"run again")
        return star_parts(graph.paths + NODE_OFFSET, graph.held_out.copy())
    if cfg['graph_builder'] == 'official' and cfg['graph'] == 'star':
        return star_parts(*draw_official_graph(cfg))
    g = graphs.build(cfg)
    return g.tokens(g.paths), g.held_out, g.tokens(g.edges), g.tokens(np.arange(g.n))


def star_parts(paths, held_out):
    """(paths, held_out, edges, nodes) of a star given as (d, l) token ids, in graphs.py's order."""
    edges = np.stack((paths[:, :-1].ravel(), paths[:, 1:].ravel()), 1)
    return paths, held_out, edges, np.concatenate([paths[:1, 0], paths[:, 1:].ravel()])


def draw_official_graph(cfg):
    """The graph the official builder (Geometric_Memory, data/build_in_weights_datasets.py) makes for
    random_seed = data_seed: Python's random.Random shuffles range(V); the first id is the root and
    each arm takes the next l - 1, root side first; the same generator then shuffles the arms, and
    the first int(d * (1 - holdout)) of them are trained. So node label k is the official id k."""
    import random
    d, l = cfg['graph_d'], cfg['graph_l']
    rng = random.Random(cfg['data_seed'])
    ids = list(range(cfg['graph_vocab_size']))
    rng.shuffle(ids)
    paths = np.empty((d, l), np.int64)
    paths[:, 0] = ids[0]
    paths[:, 1:] = np.array(ids[1:configurator.num_nodes(d, l)]).reshape(d, l - 1)
    order = list(range(d))
    rng.shuffle(order)  # the official code shuffles the path lists themselves: the same permutation
    n_train = d - holdout_count(d, cfg['graph_holdout_percentage'], 'official')
    return paths + NODE_OFFSET, np.sort(np.array(order[n_train:], np.int64))


def other_arms(d, arms):
    """The sorted arms not in arms (a mask: np.setdiff1d sorts, and takes seconds at d = 1e6)."""
    keep = np.ones(d, bool)
    keep[arms] = False
    return np.flatnonzero(keep).astype(np.int64)


class RowCounts(NamedTuple):
    edge_rows: int
    path_replication: int   # copies of each training path
    train_rows: int         # edge rows + path_replication x training paths
    held_out: int           # held-out paths (the validation rows)


def row_counts(cfg):
    """The row counts of a config, known before anything is built (configurator checks batch_size
    against them). Reads the graph keys, add_self_edges, use_undirected and path_replication."""
    sizes = graph_sizes(cfg)
    edge_rows = sizes.edges * (2 if cfg['use_undirected'] else 1) + (sizes.nodes if cfg['add_self_edges'] else 0)
    trained = sizes.paths - sizes.held_out
    rep = cfg['path_replication']
    if rep == 'auto':  # about as many path rows as edge rows, so neither task drowns the other
        rep = max(1, edge_rows // trained) if trained else 1
    return RowCounts(edge_rows, rep, edge_rows + rep * trained, sizes.held_out)


def meta_scalars(cfg):
    """The scalars and lists of a dataset's meta: all of them follow from its config alone."""
    l, vocab, sizes = cfg['graph_l'], cfg['graph_vocab_size'], graph_sizes(cfg)
    edge_len, prompt_len, path_len = row_lengths(cfg)
    num_edge_rows, rep, num_train_rows, held_out = row_counts(cfg)
    d = cfg['graph_d'] if sizes.paths else 0  # the root's children: the first hop's choices (chance 1/d)
    vocab_size = NODE_OFFSET + vocab
    targets = path_target_nodes(l, cfg['path_target'])
    return dict(
        graph=cfg['graph'], d=d, l=l, num_nodes=sizes.nodes, num_paths=sizes.paths, graph_vocab_size=vocab,
        vocab_size=vocab_size, tokens=dict(TOKENS),
        row_len=max(edge_len, path_len) if sizes.paths else edge_len, path_prompt_len=prompt_len, edge_row_len=edge_len,
        # a path row's targets follow its prompt: these depths on the path (0 = root), the first hop at this slot
        path_target_nodes=targets, first_hop_slot=targets.index(1),
        num_edge_rows=num_edge_rows, path_replication=rep,
        num_train_rows=num_train_rows, num_val_rows=held_out,
        # the largest token id is vocab_size - 1; it must never wrap around
        dtype='uint16' if vocab_size <= 2 ** 16 else 'uint32',
        config=dict(cfg),
    )


def make_meta(cfg, paths, holdout_arms):
    """Everything about the dataset except its rows."""
    return dict(meta_scalars(cfg),
                paths=paths,  # (num_paths, l) root..leaf of every path ('arm': a path, d of them in a star)
                train_arms=other_arms(len(paths), holdout_arms), holdout_arms=holdout_arms)


def fill_edges(out, sources, targets, marker, cfg):
    """Write '[EDGE] marker source target' rows into out, one per edge, column by column."""
    col = 0
    if cfg['use_task_tokens']:
        out[:, col] = EDGE
        col += 1
    if cfg['use_directional_tokens']:
        out[:, col] = marker
        col += 1
    out[:, col] = sources
    out[:, col + 1] = targets


def path_rows(paths, meta):
    """'[PATH] (root) leaf PAUSE.. targets' rows, one per given root..leaf path, PAD after; the
    targets are the path nodes meta['path_target_nodes'] (root..leaf, the first hop, or leaf..root)."""
    cfg = meta['config']
    out = np.zeros((len(paths), meta['row_len']), meta['dtype'])
    if not len(paths):  # a graph without paths: its rows may be too short for a query
        return out
    write_query(out, paths, 0, meta['path_prompt_len'], meta['path_target_nodes'], cfg['use_task_tokens'],
                cfg['root_in_prompt'])
    return out


def write_query(out, paths, col, start, targets, task_token, root_in_prompt):
    """Write '[PATH] (root) leaf PAUSE..' from column col and the target nodes of each root..leaf path
    from column start (the prompt's end) into the rows out."""
    if task_token:
        out[:, col] = PATH
        col += 1
    if root_in_prompt:
        out[:, col] = paths[:, 0]
        col += 1
    out[:, col] = paths[:, -1]
    out[:, col + 1:start] = PAUSE
    out[:, start:start + len(targets)] = paths[:, targets]


def fill_rows(arrays, meta, edges, nodes):
    """Write every row and mask into zero-filled arrays (PAD is 0, so the padding is already there):
    the edges (E, 2) forwards, then backwards (use_undirected), then 'v -> v' for every node
    (add_self_edges, marked forwards), then the path rows."""
    cfg, paths, n_targets = meta['config'], meta['paths'], len(meta['path_target_nodes'])
    rows, mask = arrays['train_rows'], arrays['train_mask']
    n = len(edges)
    fill_edges(rows[:n], edges[:, 0], edges[:, 1], FWD, cfg)
    if cfg['use_undirected']:
        fill_edges(rows[n:2 * n], edges[:, 1], edges[:, 0], BWD, cfg)
        n *= 2
    if cfg['add_self_edges']:
        fill_edges(rows[n:n + len(nodes)], nodes, nodes, FWD, cfg)
    n_edges = meta['num_edge_rows']
    mask[:n_edges, meta['edge_row_len'] - 1] = True  # the last node; the source is given
    if not len(paths):  # grid, cycle, irregular: edge rows only
        return

    # the training paths are built once and broadcast into each of the repeats
    start = meta['path_prompt_len']
    train_paths = path_rows(paths[meta['train_arms']], meta)
    rows[n_edges:].reshape(meta['path_replication'], len(train_paths), -1)[:] = train_paths
    mask[n_edges:, start:start + n_targets] = True
    arrays['val_rows'][:] = path_rows(paths[meta['holdout_arms']], meta)
    arrays['val_mask'][:, start:start + n_targets] = True


def build_arrays(cfg):
    """The whole dataset in memory, without the disk: (arrays dict, meta dict)."""
    cfg = data_config(cfg)
    paths, holdout_arms, edges, nodes = draw_graph(cfg)
    meta = make_meta(cfg, paths, holdout_arms)
    arrays = {}
    for split in ('train', 'val'):
        # preallocated in the final dtype, and np.zeros maps zero pages lazily, so the
        # padding (PAD = 0, mask False) costs nothing
        shape = (meta[f'num_{split}_rows'], meta['row_len'])
        arrays[f'{split}_rows'] = np.zeros(shape, meta['dtype'])
        arrays[f'{split}_mask'] = np.zeros(shape, np.bool_)
    fill_rows(arrays, meta, edges, nodes)
    return arrays, meta


def load_or_build(cfg, verbose=True, mmap=False):
    """The dataset for cfg, from its cache folder under data_dir, building it first if needed
    (pathstar_cache.py keeps the folders trustworthy)."""
    import pathstar_cache  # it caches task='in_context' too (incontext_data.py builds those)
    return pathstar_cache.load_or_build(cfg, verbose, mmap)


# -----------------------------------------------------------------------------
# the command line

def human_bytes(n):
    for unit in ('B', 'KB', 'MB', 'GB'):
        if n < 1024 or unit == 'GB':
            return f"{n:.0f} {unit}" if unit == 'B' else f"{n:.1f} {unit}"
        n /= 1024


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))


def summary(data):
    """A few lines about the dataset and a handful of decoded rows, never the whole thing."""
    m = data.meta
    if m.get('task') == 'in_context':  # each row its own graph: another layout
        import incontext_data
        return incontext_data.summary(data)
    n_edges, n_paths = m['num_edge_rows'], len(m['train_arms'])
    built = (f"built in {data.build_seconds:.2f} s" if data.build_seconds is not None
             else "reused the existing cache")
    c = m['config']
    shape = {'star': f"{m['d']} arms x {m['l']} nodes per path",
             'star_tree': f"{m['d']} subtrees of degree {c['star_subtree_degree']}, {m['num_paths']} paths of "
                          f"{m['l']} nodes",
             'grid': f"grid {c['grid_rows']} x {c['grid_cols']}", 'cycle': 'cycle',
             'irregular': f"irregular, {c['irregular_edges']} edges"}[m['graph']]
    lines = [
        f"graph      {shape} = {m['num_nodes']:,} nodes, labels from range({m['graph_vocab_size']:,})"
        + (", self-edges" if c['add_self_edges'] else ''),
        f"vocab      {m['vocab_size']:,} tokens ({NODE_OFFSET} special + nodes), stored as {m['dtype']}",
        f"train      {len(data.train_rows):,} rows = {n_edges:,} edge rows + {n_paths:,} paths x "
        f"{m['path_replication']}",
        f"val        {len(data.val_rows):,} rows (held-out paths)",
        f"row length T={m['row_len']} (edge rows {m['edge_row_len']}, path prompt {m['path_prompt_len']})",
        f"path rows  {len(m['path_target_nodes'])} target(s): path_target={m['config']['path_target']}, "
        f"root_in_prompt={m['config']['root_in_prompt']}, teacherless={m['config']['teacherless']}"
        if m['num_paths'] else "path rows  none: this graph trains its edges only",
        f"on disk    {human_bytes(folder_bytes(data.path))} in {data.path}",
        f"build      {built}",
    ]
    # the first forward edges, and the first backward one when there are any
    edge_picks = sorted({i for i in (0, 1, n_edges // 2) if i < n_edges})
    shown = [('edge row', data.train_rows[i]) for i in edge_picks]
    shown += [('train path', data.train_rows[n_edges + i]) for i in range(min(2, n_paths))]
    shown += [('val path', data.val_rows[i]) for i in range(min(2, len(data.val_rows)))]
    lines += [f"{label:10s} {data.decode(row)}" for label, row in shown]
    if m['config']['teacherless'] and n_paths:  # what a model reads of a path row (pathstar_rows.path_inputs)
        row = np.array(data.train_rows[n_edges], np.int64)
        start, n = m['path_prompt_len'], len(m['path_target_nodes'])
        row[start:start + n - 1] = DUMMY
        lines.append(f"{'its input':10s} {data.decode(row[:start + n - 1])}")
    return '\n'.join(lines)


def export_flag(argv):
    """(argv without '--export_official DIR' or '--export_official=DIR', DIR or None): a flag of this
    command line, not a config key."""
    rest, folder, args = [], None, iter(argv)
    for arg in args:
        if arg != '--export_official' and not arg.startswith('--export_official='):
            rest.append(arg)
            continue
        if folder is not None:
            raise configurator.UserError("--export_official: given twice")
        folder = arg.partition('=')[2] if '=' in arg else next(args, '')
        if not folder or folder.startswith('--'):
            raise configurator.UserError("--export_official: expected a folder, e.g. --export_official official/g5_l4")
    return rest, folder


def export_official(cfg, folder):
    """Write cfg's graph into folder as the official code's three files (no cache is built); returns the
    lines to print. Only what the files would hold exactly: an in-weights plain star without self-edges."""
    given = {**configurator.DEFAULTS, **cfg}
    unsupported = [f"{key}={given[key]!r}" for key, ok in (('task', 'in_weights'), ('graph', 'star'),
                                                           ('add_self_edges', False)) if given[key] != ok]
    if unsupported:
        raise configurator.UserError(f"--export_official writes an in-weights plain star without self-edges; "
                                     f"{', '.join(unsupported)} is not written yet (the files would hold another "
                                     f"graph)")
    dcfg = data_config(cfg)
    paths, held_out = draw_graph(dcfg)[:2]
    return official_files.write(folder, paths - NODE_OFFSET, held_out, dcfg['use_undirected'])


def main():
    if set(sys.argv[1:]) & set(configurator.HELP_FLAGS):
        print(configurator.help_text('pathstar_data.py', ' [--export_official <folder>]'))
        print("\nPrints the dataset's summary (built and cached if new), or writes the official code's files.")
        return
    argv, export = export_flag(sys.argv[1:])
    cfg = configurator.parse_args(argv)
    if export is not None:
        print('\n'.join(export_official(cfg, export)))
        return
    print(summary(load_or_build(cfg, verbose=False, mmap=True)))


if __name__ == '__main__':
    configurator.exit_on_user_error(main)
