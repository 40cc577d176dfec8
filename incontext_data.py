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
teacherless is applied when a model reads the rows (pathstar_rows.path_inputs), as in-weights.
use_undirected, use_directional_tokens, use_task_tokens, graph_holdout_percentage and
path_replication do not apply: edges are always '[EDGE] parent child', once each.

Training rows and validation rows come from separate generators seeded by data_seed, and a
validation graph equal to any training graph (same root and the same set of arms) is drawn again,
so validation always asks about unseen graphs. There are no edge rows (num_edge_rows = 0).

This first step keeps the arrays in memory (no cache folder): they take well under a second to
build at the sizes of config/in_context_cpu.py.
"""
import time

import numpy as np

import configurator
import pathstar_data
from pathstar_data import EDGE, NODE_OFFSET, TOKENS, PathStarData

IN_CONTEXT_KEYS = ('task', 'num_train_graphs', 'num_val_graphs')
MAX_TRIES = 100  # rounds of redrawing validation graphs that equal a training graph


def data_config(cfg):
    """The dataset keys (pathstar_data.data_config) plus the in-context ones, checked."""
    full = configurator.build_config({key: cfg[key] for key in (*pathstar_data.DATA_KEYS, *IN_CONTEXT_KEYS)
                                      if key in cfg})
    return dict(pathstar_data.data_config(full), **{key: full[key] for key in IN_CONTEXT_KEYS})


def row_layout(cfg):
    """(number of edges, path prompt length, row length)."""
    d, l = cfg['graph_d'], cfg['graph_l']
    n_edges = d * (l - 1)
    prompt_len = 3 * n_edges + 1 + int(cfg['root_in_prompt']) + 1 + cfg['num_pause_tokens']
    return n_edges, prompt_len, prompt_len + len(pathstar_data.path_target_nodes(l, cfg['path_target']))


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
    """(n_rows, d, l) token ids root..leaf of each arm of each row's graph."""
    d, l = cfg['graph_d'], cfg['graph_l']
    labels = draw_labels(rng, n_rows, cfg['graph_vocab_size'], configurator.num_nodes(d, l))
    paths = np.empty((n_rows, d, l), np.int64)
    paths[:, :, 0] = labels[:, :1]
    paths[:, :, 1:] = labels[:, 1:].reshape(n_rows, d, l - 1)
    return paths + NODE_OFFSET


def graph_keys(paths):
    """One hashable-by-numpy key per graph: the root, then the arms ordered by their first hop (first
    hops are distinct within a graph), so two rows have equal keys exactly when their graphs are equal."""
    order = np.argsort(paths[:, :, 1], axis=1)
    canon = np.take_along_axis(paths, order[:, :, None], axis=1).reshape(len(paths), -1)
    canon = np.ascontiguousarray(canon)
    return canon.view(np.dtype((np.void, canon.shape[1] * canon.itemsize))).ravel()


def draw_val_graphs(rng, n_rows, cfg, train_keys):
    """Validation graphs, none equal to a training graph (redrawn until so)."""
    kept, have = [], 0
    for _ in range(MAX_TRIES):
        paths = draw_graphs(rng, n_rows - have, cfg)
        paths = paths[~np.isin(graph_keys(paths), train_keys)]
        kept.append(paths)
        have += len(paths)
        if have == n_rows:
            return np.concatenate(kept)
    raise configurator.UserError(f"num_val_graphs: could not draw {n_rows} graphs unlike every training graph; "
                                 f"use a larger graph_vocab_size or fewer num_train_graphs")


def shuffle_edges(rng, paths):
    """Each row's d*(l-1) (parent, child) pairs in a random order of its own: (n, d*(l-1), 2)."""
    n, d, l = paths.shape
    pairs = np.stack((paths[:, :, :-1].reshape(n, -1), paths[:, :, 1:].reshape(n, -1)), axis=2)
    order = np.argsort(rng.random((n, d * (l - 1))), axis=1)
    return np.take_along_axis(pairs, order[:, :, None], axis=1)


def split_rows(rng, paths, meta):
    """(rows, mask) for graphs paths (n, d, l): shuffled '[EDGE] u v' triples, the query for a random
    leaf, then the path targets (the only masked tokens)."""
    cfg, n = meta['config'], len(paths)
    start, targets = meta['path_prompt_len'], meta['path_target_nodes']
    pairs = shuffle_edges(rng, paths)
    leaves = rng.integers(meta['d'], size=n)
    rows = np.zeros((n, meta['row_len']), meta['dtype'])
    triples = rows[:, :3 * pairs.shape[1]].reshape(n, -1, 3)
    triples[:, :, 0] = EDGE
    triples[:, :, 1:] = pairs
    path = paths[np.arange(n), leaves]  # (n, l) root..leaf of the queried arm
    pathstar_data.write_query(rows, path, 3 * pairs.shape[1], start, targets, True, cfg['root_in_prompt'])
    mask = np.zeros(rows.shape, np.bool_)
    mask[:, start:start + len(targets)] = True
    return rows, mask


def make_meta(cfg):
    d, l, vocab = cfg['graph_d'], cfg['graph_l'], cfg['graph_vocab_size']
    _, prompt_len, row_len = row_layout(cfg)
    targets = pathstar_data.path_target_nodes(l, cfg['path_target'])
    vocab_size = NODE_OFFSET + vocab
    return dict(
        task='in_context', d=d, l=l, num_nodes=configurator.num_nodes(d, l), graph_vocab_size=vocab,
        vocab_size=vocab_size, tokens=dict(TOKENS), row_len=row_len, path_prompt_len=prompt_len,
        edge_row_len=3,  # an '[EDGE] u v' triple; there are no edge rows
        path_target_nodes=targets, first_hop_slot=targets.index(1) if 1 in targets else 0,
        num_edge_rows=0, path_replication=1,
        num_train_rows=cfg['num_train_graphs'], num_val_rows=cfg['num_val_graphs'],
        dtype='uint16' if vocab_size <= 2 ** 16 else 'uint32', config=dict(cfg))


def build_arrays(cfg):
    """(arrays dict, meta dict) in memory; meta['train_graphs'] / ['val_graphs'] are the (n, d, l) graphs."""
    cfg = data_config(cfg)
    meta = make_meta(cfg)
    train_rng = np.random.default_rng([cfg['data_seed'], 0])
    val_rng = np.random.default_rng([cfg['data_seed'], 1])
    train_graphs = draw_graphs(train_rng, cfg['num_train_graphs'], cfg)
    val_graphs = draw_val_graphs(val_rng, cfg['num_val_graphs'], cfg, graph_keys(train_graphs))
    arrays = {}
    arrays['train_rows'], arrays['train_mask'] = split_rows(train_rng, train_graphs, meta)
    arrays['val_rows'], arrays['val_mask'] = split_rows(val_rng, val_graphs, meta)
    meta.update(train_graphs=train_graphs, val_graphs=val_graphs)
    return arrays, meta


def load_or_build(cfg, verbose=True, mmap=False):
    """The in-context dataset, built in memory (no cache folder yet; mmap does not apply)."""
    t0 = time.time()
    arrays, meta = build_arrays(cfg)
    seconds = time.time() - t0
    if verbose:
        print(f"in-context data: {meta['num_train_rows']} training graphs, {meta['num_val_rows']} validation "
              f"graphs, built in memory in {seconds:.2f} s")
    return PathStarData(**arrays, meta=meta, path='', build_seconds=seconds)
