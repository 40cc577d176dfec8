"""
The in-context path-star task (Bachmann & Nagarajan 2024): every row carries its own random star
graph, so nothing about a graph can be memorised in the weights. A row is

    [EDGE] u v  [EDGE] u v  ...  [PATH] leaf _ _ _  root n1 .. leaf
    '----- d*(l-1) edges, parent child, -----'  '-- query --'  '- targets -'
           in a random order

The paper writes `u v , ... / root leaf =` then the path; here the per-edge marker [EDGE] stands
in for the ',' separator and [PATH] for '/', so no new token is needed. Node labels are drawn per
row without replacement from range(graph_vocab_size) (token NODE_OFFSET + label). The queried leaf
is uniform over the d arms. The targets follow path_target like the in-weights path rows ('full'
root..leaf, 'first_hop', 'reversed' leaf..root), root_in_prompt puts the root after [PATH], and
teacherless is applied when a model reads the rows (slots.path_inputs), as in-weights.
use_undirected, use_directional_tokens, use_task_tokens, graph_holdout_percentage and
path_replication do not apply (check() rejects them): edges are '[EDGE] parent child', once each.

Training rows and validation rows come from separate generators seeded by data_seed, and a
validation graph equal to any training graph (same root and the same set of arms) is drawn again,
so validation always asks about unseen graphs. There are no edge rows (num_edge_rows = 0).

The dataset is cached like the in-weights one (cache.py, the same checksums, lock and
rebuild of a damaged folder) in {data_dir}/in_context_d.._{hash}/; the graphs themselves are kept
too, as train_graphs.npy and val_graphs.npy, (n, d, l) token ids root..leaf of every arm. Every step
is vectorised over rows: a million rows of G(5,5) take about 2.5 CPU seconds (bench/bench_data.py).

    python3 pathstar_data.py --task=in_context --graph_d=2 --graph_l=5   # build (or reuse), show two rows
"""
import math

import numpy as np

import configurator
from pathstar.data import inweights
from pathstar.errors import UserError, require
from pathstar.tokens import DUMMY, EDGE, NODE_OFFSET, TOKENS

IN_CONTEXT_KEYS = ('task', 'num_train_graphs', 'num_val_graphs')
SAVED = ('train_graphs', 'val_graphs')  # meta arrays the cache keeps beside the rows (cache.py)
SIZE_KEY, SMALLER = 'num_train_graphs', 'draw fewer graphs or smaller ones'  # a dataset too big for memory
MAX_TRIES = 100  # rounds of redrawing validation graphs that equal a training graph


# the in-weights keys an in-context row has no use for, and why: set to anything but their default,
# they would silently change nothing
IN_WEIGHTS_ONLY = dict(
    use_undirected="an in-context row lists each edge once, parent first",
    use_directional_tokens="an in-context row marks its edges with [EDGE] alone",
    use_task_tokens="an in-context row always has its [EDGE] and [PATH] markers",
    graph_holdout_percentage="in-context validation holds out whole graphs, num_val_graphs of them, not arms",
    path_replication="each in-context graph is one row; num_train_graphs sets how many",
)
READS = ('graph', 'geometry_interval', 'recipe', 'graph_builder', 'data_import', 'graph_d', 'graph_l',
         'graph_vocab_size', 'num_train_graphs', *IN_WEIGHTS_ONLY)  # check's keys


def check(cfg):
    """The rules of task='in_context' (validate.py calls them through tasks.TASKS)."""
    require(cfg['graph'] == 'star', f"graph: task='in_context' draws a plain star per row; use graph='star', "
                                    f"got {cfg['graph']!r}")
    require(cfg['geometry_interval'] == 0,
            "geometry_interval: the geometry diagnostics read one fixed graph, so task='in_context' needs 0")
    require(cfg['recipe'] == 'interleaved',
            f"recipe: {cfg['recipe']!r} trains edge rows apart, and task='in_context' has none; use 'interleaved'")
    require(not cfg['data_import'], "data_import: its files hold one graph, and task='in_context' draws a "
                                    "graph per row; leave it ''")
    require(cfg['graph_builder'] == 'pathstar',
            "graph_builder: 'official' builds one graph; task='in_context' needs 'pathstar'")
    for key, why in IN_WEIGHTS_ONLY.items():
        default = configurator.DEFAULTS[key]
        require(cfg[key] == default, f"{key}: applies to task='in_weights' only, not task='in_context' ({why}); "
                                     f"leave it at {default!r}, got {cfg[key]!r}")
    check_graph_space(cfg)


def log_graph_count(d, l, vocab):
    """log of the number of distinct stars: 1 + d(l-1) distinct labels of range(vocab) in order, the d
    arms unordered (canonical() sorts them)."""
    n = d * (l - 1) + 1
    return math.lgamma(vocab + 1) - math.lgamma(vocab - n + 1) - math.lgamma(d + 1) if vocab >= n else -math.inf


def check_graph_space(cfg):
    """Validation graphs must be unlike every training graph: refused when the num_train_graphs draws could
    cover the whole space of stars (at fewer draws than stars, a fresh draw is unseen with probability at
    least 1/e, so the build always finds its validation graphs)."""
    d, l, vocab, n = cfg['graph_d'], cfg['graph_l'], cfg['graph_vocab_size'], cfg['num_train_graphs']
    if not isinstance(vocab, int) or vocab < d * (l - 1) + 1:
        return  # the vocabulary rule names this
    log_count = log_graph_count(d, l, vocab)
    if log_count < math.log(n) + 1e-9:
        count = round(math.exp(log_count))
        raise UserError(f"num_train_graphs: {n:,} draws from the only {count:,} distinct stars of graph_d={d}, "
                        f"graph_l={l} and graph_vocab_size={vocab} leave no graph unseen to validate on; use a "
                        f"larger graph_vocab_size or num_train_graphs < {count:,}")


def data_config(cfg):
    """The dataset keys of a checked config (inweights.data_config) plus the in-context ones."""
    return dict(inweights.data_config(cfg), **{key: cfg[key] for key in IN_CONTEXT_KEYS})


def folder_name(dcfg):
    """The readable part of the cache folder's name (cache.cache_dir adds the hash)."""
    return (f"in_context_d{dcfg['graph_d']}_l{dcfg['graph_l']}_v{dcfg['graph_vocab_size']}"
            f"_p{dcfg['num_pause_tokens']}_n{dcfg['num_train_graphs']}")


def layouts(meta):
    """{name: (shape, dtype name)} of every array of the cache folder, from meta's scalars."""
    n_train, n_val, t, dtype = meta['num_train_rows'], meta['num_val_rows'], meta['row_len'], meta['dtype']
    graphs = (meta['d'], meta['l'])
    return dict(train_rows=((n_train, t), dtype), train_mask=((n_train, t), 'bool'), val_rows=((n_val, t), dtype),
                val_mask=((n_val, t), 'bool'), train_graphs=((n_train, *graphs), dtype),
                val_graphs=((n_val, *graphs), dtype))


def row_layout(cfg):
    """(number of edges, path prompt length, row length)."""
    d, l = cfg['graph_d'], cfg['graph_l']
    n_edges = d * (l - 1)
    prompt_len = 3 * n_edges + 1 + int(cfg['root_in_prompt']) + 1 + cfg['num_pause_tokens']
    return n_edges, prompt_len, prompt_len + len(inweights.path_target_nodes(l, cfg['path_target']))


def draw_labels(rng, n_rows, vocab, n_nodes, chunk_cells=1 << 22):
    """(n_rows, n_nodes) int64 labels, distinct within each row, uniform over range(vocab): the first
    n_nodes of a random permutation per row (argpartition of uniform keys), in chunks of rows."""
    out = np.empty((n_rows, n_nodes), np.int64)
    step = max(1, chunk_cells // vocab)
    for lo in range(0, n_rows, step):
        keys = rng.random((min(step, n_rows - lo), vocab))
        picked = np.argpartition(keys, n_nodes - 1, axis=1)[:, :n_nodes] if n_nodes < vocab else np.argsort(keys, 1)
        out[lo:lo + len(keys)] = rng.permuted(picked, axis=1)
    return out


def draw_graphs(rng, n_rows, cfg):
    """(n_rows, d, l) uint32 token ids root..leaf of each arm of each row's graph (the validator keeps
    token ids below 2**32; 4 bytes a node halves the memory traffic of int64)."""
    d, l = cfg['graph_d'], cfg['graph_l']
    labels = draw_labels(rng, n_rows, cfg['graph_vocab_size'], d * (l - 1) + 1).astype(np.uint32)
    labels += NODE_OFFSET
    paths = np.empty((n_rows, d, l), np.uint32)
    paths[:, :, 0] = labels[:, :1]
    paths[:, :, 1:] = labels[:, 1:].reshape(n_rows, d, l - 1)
    return paths


def gather_rows(x, order):
    """x (n, k, ...) with each row's k entries taken in that row's order (n, k): one flat gather, which is
    several times faster than np.take_along_axis's broadcast index arrays at 10**6 rows."""
    n, k = order.shape
    flat = (order + np.arange(n)[:, None] * x.shape[1]).ravel()
    return x.reshape(n * x.shape[1], *x.shape[2:])[flat].reshape(n, k, *x.shape[2:])


def canonical(paths):
    """(n, d*l) each graph as its arms ordered by their first hop (distinct within a graph), so two rows
    are equal exactly when their graphs are (the root starts every arm)."""
    return gather_rows(paths, np.argsort(paths[:, :, 1], axis=1)).reshape(len(paths), -1)


def graph_keys(paths):
    """One exact key per graph that np.isin compares as bytes (a void scalar of its canonical form)."""
    canon = np.ascontiguousarray(canonical(paths))
    return canon.view(np.dtype((np.void, canon.shape[1] * canon.itemsize))).ravel()


def graph_hashes(paths):
    """One uint64 per graph, equal for equal graphs: a fixed random linear hash (mod 2**64) of its canonical
    form. Sorting these is ~10x faster than sorting the byte keys at 10**6 graphs; unequal graphs rarely
    collide, and unseen() checks every match exactly."""
    canon = canonical(paths)
    mult = np.random.default_rng(0).integers(1, 2 ** 63, size=canon.shape[1], dtype=np.uint64) | np.uint64(1)
    out = np.zeros(len(canon), np.uint64)
    for j in range(canon.shape[1]):  # column by column: no (n, d*l) uint64 temporary
        out += canon[:, j].astype(np.uint64) * mult[j]
    return out


def is_in_sorted(x, sorted_values):
    """np.isin(x, sorted_values) by binary search: np.isin would sort (or hash) 10**6 values again per call."""
    at = np.minimum(np.searchsorted(sorted_values, x), max(len(sorted_values) - 1, 0))
    return sorted_values[at] == x if len(sorted_values) else np.zeros(len(x), bool)


def unseen(paths, train_paths, train_hashes, sorted_hashes):
    """A mask of the graphs in paths equal to no training graph: hashes first, then the exact keys of the few
    whose hash matches one of train_hashes (the hashes of train_paths; sorted_hashes is them sorted)."""
    hashes = graph_hashes(paths)
    maybe = np.flatnonzero(is_in_sorted(hashes, sorted_hashes))
    keep = np.ones(len(paths), bool)
    if len(maybe):
        near = train_paths[np.isin(train_hashes, hashes[maybe])]
        keep[maybe] = ~np.isin(graph_keys(paths[maybe]), graph_keys(near))
    return keep


def draw_val_graphs(rng, n_rows, cfg, train_paths):
    """Validation graphs, none equal to a training graph (redrawn until so)."""
    train_hashes = graph_hashes(train_paths)
    sorted_hashes = np.sort(train_hashes)
    kept, have = [], 0
    for _ in range(MAX_TRIES):
        paths = draw_graphs(rng, n_rows - have, cfg)
        paths = paths[unseen(paths, train_paths, train_hashes, sorted_hashes)]
        kept.append(paths)
        have += len(paths)
        if have == n_rows:
            return np.concatenate(kept)
    raise UserError(f"num_val_graphs: could not draw {n_rows} graphs unlike every training graph; "
                                 f"use a larger graph_vocab_size or fewer num_train_graphs")


def shuffle_edges(rng, paths):
    """Each row's d*(l-1) edges in a random order of its own: (parents, children), each (n, d*(l-1)).
    Edge e is arm e // (l-1) at depth e % (l-1), so both are gathered straight from the flat paths."""
    n, d, l = paths.shape
    order = np.argsort(rng.random((n, d * (l - 1))), axis=1)
    edges = np.arange(d * (l - 1))
    parent_of = edges // (l - 1) * l + edges % (l - 1)  # edge e's parent within a row's flat (d*l) paths
    parent_at = parent_of[order] + np.arange(n)[:, None] * (d * l)
    flat = paths.reshape(-1)
    return flat[parent_at], flat[parent_at + 1]


def split_rows(rng, paths, meta):
    """(rows, mask) for graphs paths (n, d, l): shuffled '[EDGE] u v' triples, the query for a random
    leaf, then the path targets (the only masked tokens)."""
    cfg, n = meta['config'], len(paths)
    start, targets = meta['path_prompt_len'], meta['path_target_nodes']
    parents, children = shuffle_edges(rng, paths)
    leaves = rng.integers(meta['d'], size=n)
    rows = np.zeros((n, meta['row_len']), meta['dtype'])
    n_edges = parents.shape[1]
    rows[:, 0:3 * n_edges:3] = EDGE
    rows[:, 1:3 * n_edges:3] = parents
    rows[:, 2:3 * n_edges:3] = children
    path = paths[np.arange(n), leaves]  # (n, l) root..leaf of the queried arm
    inweights.write_query(rows, path, 3 * n_edges, start, targets, True, cfg['root_in_prompt'])
    mask = np.zeros(rows.shape, np.bool_)
    mask[:, start:start + len(targets)] = True
    return rows, mask


def meta_scalars(cfg):
    """Everything about the dataset but its arrays: all of it follows from the config."""
    d, l, vocab = cfg['graph_d'], cfg['graph_l'], cfg['graph_vocab_size']
    _, prompt_len, row_len = row_layout(cfg)
    targets = inweights.path_target_nodes(l, cfg['path_target'])
    vocab_size = NODE_OFFSET + vocab
    return dict(
        task='in_context', graph='star', d=d, l=l, num_nodes=d * (l - 1) + 1, graph_vocab_size=vocab,
        vocab_size=vocab_size, tokens=dict(TOKENS), row_len=row_len, path_prompt_len=prompt_len,
        edge_row_len=3,  # an '[EDGE] u v' triple; there are no edge rows
        path_target_nodes=targets, first_hop_slot=targets.index(1) if 1 in targets else 0,
        num_edge_rows=0, path_replication=1,
        num_train_rows=cfg['num_train_graphs'], num_val_rows=cfg['num_val_graphs'],
        dtype='uint16' if vocab_size <= 2 ** 16 else 'uint32', config=dict(cfg))


def build_arrays(cfg):
    """(arrays dict, meta dict) in memory; meta['train_graphs'] / ['val_graphs'] are the (n, d, l) graphs."""
    cfg = data_config(cfg)
    meta = meta_scalars(cfg)
    train_rng = np.random.default_rng([cfg['data_seed'], 0])
    val_rng = np.random.default_rng([cfg['data_seed'], 1])
    train_graphs = draw_graphs(train_rng, cfg['num_train_graphs'], cfg)
    val_graphs = draw_val_graphs(val_rng, cfg['num_val_graphs'], cfg, train_graphs)
    arrays = {}
    arrays['train_rows'], arrays['train_mask'] = split_rows(train_rng, train_graphs, meta)
    arrays['val_rows'], arrays['val_mask'] = split_rows(val_rng, val_graphs, meta)
    meta.update(train_graphs=train_graphs.astype(meta['dtype']), val_graphs=val_graphs.astype(meta['dtype']))
    return arrays, meta


def summary(data):
    """A few lines about an in-context dataset and two decoded rows (inweights.summary's counterpart)."""
    m, cfg = data.meta, data.meta['config']
    n_edges = m['d'] * (m['l'] - 1)
    built = f"built in {data.build_seconds:.2f} s" if data.build_seconds is not None else "reused the existing cache"
    lines = [
        f"task       in_context: every row its own star of {m['d']} arms x {m['l']} nodes per path "
        f"({m['num_nodes']} nodes), labels from range({m['graph_vocab_size']:,})",
        f"vocab      {m['vocab_size']:,} tokens ({NODE_OFFSET} special + nodes), stored as {m['dtype']}",
        f"train      {len(data.train_rows):,} rows (one graph each)",
        f"val        {len(data.val_rows):,} rows (graphs unlike every training graph)",
        f"row length T={m['row_len']} ({n_edges} edges x 3, path prompt ends at {m['path_prompt_len']}, "
        f"{len(m['path_target_nodes'])} target(s))",
        f"path       path_target={cfg['path_target']}, root_in_prompt={cfg['root_in_prompt']}, "
        f"teacherless={cfg['teacherless']}",
        f"on disk    {inweights.human_bytes(inweights.folder_bytes(data.path))} in {data.path}",
        f"build      {built}",
    ]
    shown = [('train row', data.train_rows[0])] if len(data.train_rows) else []
    shown += [('val row', data.val_rows[0])] if len(data.val_rows) else []
    lines += [f"{label:10s} {data.decode(row)}" for label, row in shown]
    if cfg['teacherless'] and len(data.train_rows):  # what a model reads (slots.path_inputs)
        row, start = np.array(data.train_rows[0], np.int64), m['path_prompt_len']
        row[start:start + len(m['path_target_nodes']) - 1] = DUMMY
        lines.append(f"{'its input':10s} {data.decode(row[:start + len(m['path_target_nodes']) - 1])}")
    return '\n'.join(lines)
