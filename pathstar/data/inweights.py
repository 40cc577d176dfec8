"""
task='in_weights': the rows of one fixed graph, learned in the weights. Its edges and its training
root->leaf paths are the training rows; the paths to the held-out leaves are the validation rows
(pathstar_data.py's docstring shows the row layouts). Pure numpy, no disk: cache.py keeps the arrays.
"""
import os
import random
from typing import NamedTuple

import numpy as np

from pathstar import graphs
from pathstar.errors import UserError
from pathstar.graphs import official
from pathstar.graphs.common import holdout_count, resolve_vocab
from pathstar.tokens import BWD, DUMMY, EDGE, FWD, NODE_OFFSET, PATH, PAUSE, TOKENS

# the config keys that decide the dataset's contents (data_dir only decides where it lives)
DATA_KEYS = ('graph', 'graph_d', 'graph_l', 'star_subtree_degree', 'subtree_holdout', 'grid_rows', 'grid_cols',
             'cycle_n', 'irregular_n', 'irregular_edges', 'add_self_edges', 'graph_vocab_size',
             'graph_holdout_percentage', 'graph_builder', 'num_pause_tokens',
             'use_undirected', 'use_directional_tokens', 'use_task_tokens', 'path_target', 'root_in_prompt',
             'teacherless', 'path_replication', 'data_seed', 'data_import')
# teacherless leaves the stored rows as they are; it is a data key so that meta['config'] carries it
# to slots.py and evaluate.py, which put the DUMMY inputs in
SAVED = ('paths',)  # the meta arrays kept as .npy files beside the rows (holdout_arms live in meta.json)
SIZE_KEY, SMALLER = 'graph_d', 'use a smaller graph'  # what a dataset too big for memory is blamed on


# -----------------------------------------------------------------------------
# the config

READS = ()  # the keys check reads


def check(cfg):
    """task='in_weights' has no rules of its own: the graph families' and the validator's cover it."""


def data_config(cfg):
    """The dataset keys of a checked config, graph_vocab_size as an int (it is not checked again here)."""
    picked = {key: cfg[key] for key in DATA_KEYS}
    picked['graph_vocab_size'] = resolve_vocab(cfg['graph_vocab_size'], graphs.graph_sizes(cfg).nodes)
    return picked


def folder_name(dcfg):
    return graphs.folder_name(dcfg)


def layouts(meta):
    """{name: (shape, dtype name)} of every array of a dataset, from its meta's scalars (cache.py checks the
    files against it)."""
    train, val, rows = (meta['num_train_rows'], meta['row_len']), (meta['num_val_rows'], meta['row_len']), meta['dtype']
    return dict(train_rows=(train, rows), train_mask=(train, 'bool'), val_rows=(val, rows), val_mask=(val, 'bool'),
                paths=((meta['num_paths'], meta['l']), 'int64'), holdout_arms=((meta['num_val_rows'],), 'int64'))


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
    nodes (n,) every node, in the graph family's node order (for the star: the root, then arm by arm).
    With data_import, the graph of the official files instead (node label k is the official id k,
    the arms sorted by their first hop, the test file's arms held out); graph_builder='official'
    draws the star as the official builder does.
    """
    if cfg['data_import']:
        graph = official.read(cfg['data_import'])
        if (graph.d, graph.l, graph.vocab_size) != (cfg['graph_d'], cfg['graph_l'], cfg['graph_vocab_size']):
            raise UserError(f"data_import: the files in {cfg['data_import']} changed while in use; "
                                         f"run again")
        edges, nodes = graph.edges_and_nodes()  # a star's as star_parts makes them; a star-tree's too
        return graph.paths + NODE_OFFSET, graph.held_out.copy(), edges + NODE_OFFSET, nodes + NODE_OFFSET
    if cfg['graph_builder'] == 'official' and cfg['graph'] == 'star':
        return star_parts(*draw_official_graph(cfg))
    g = graphs.build(cfg)
    return g.tokens(g.paths), g.held_out, g.tokens(g.edges), g.tokens(np.arange(g.n))


def star_parts(paths, held_out):
    """(paths, held_out, edges, nodes) of a star given as (d, l) token ids, in pathstar/graphs' order."""
    edges = np.stack((paths[:, :-1].ravel(), paths[:, 1:].ravel()), 1)
    return paths, held_out, edges, np.concatenate([paths[:1, 0], paths[:, 1:].ravel()])


def draw_official_graph(cfg):
    """The graph the official builder (Geometric_Memory, data/build_in_weights_datasets.py) makes for
    random_seed = data_seed: Python's random.Random shuffles range(V); the first id is the root and
    each arm takes the next l - 1, root side first; the same generator then shuffles the arms, and
    the first int(d * (1 - holdout)) of them are trained. So node label k is the official id k."""
    d, l = cfg['graph_d'], cfg['graph_l']
    rng = random.Random(cfg['data_seed'])
    ids = list(range(cfg['graph_vocab_size']))
    rng.shuffle(ids)
    paths = np.empty((d, l), np.int64)
    paths[:, 0] = ids[0]
    paths[:, 1:] = np.array(ids[1:d * (l - 1) + 1]).reshape(d, l - 1)
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
    sizes = graphs.graph_sizes(cfg)
    edge_rows = sizes.edges * (2 if cfg['use_undirected'] else 1) + (sizes.nodes if cfg['add_self_edges'] else 0)
    trained = sizes.paths - sizes.held_out
    rep = cfg['path_replication']
    if rep == 'auto':  # about as many path rows as edge rows, so neither task drowns the other
        rep = max(1, edge_rows // trained) if trained else 1
    return RowCounts(edge_rows, rep, edge_rows + rep * trained, sizes.held_out)


def meta_scalars(cfg):
    """The scalars and lists of a dataset's meta: all of them follow from its config alone."""
    l, vocab, sizes = cfg['graph_l'], cfg['graph_vocab_size'], graphs.graph_sizes(cfg)
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


# -----------------------------------------------------------------------------
# what pathstar_data.py shows

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
    n_edges, n_paths = m['num_edge_rows'], len(m['train_arms'])
    built = (f"built in {data.build_seconds:.2f} s" if data.build_seconds is not None
             else "reused the existing cache")
    c = m['config']
    shape = graphs.family(m).describe(m)
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
    if m['config']['teacherless'] and n_paths:  # what a model reads of a path row (slots.path_inputs)
        row = np.array(data.train_rows[n_edges], np.int64)
        start, n = m['path_prompt_len'], len(m['path_target_nodes'])
        row[start:start + n - 1] = DUMMY
        lines.append(f"{'its input':10s} {data.decode(row[:start + n - 1])}")
    return '\n'.join(lines)
