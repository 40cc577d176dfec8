"""
What a row of the path-star dataset means to a model: which positions are predicted,
which edges have one right answer, and the fixed samples scored at each evaluation.
pathstar/data writes the rows; this module is the only other place that knows
their layout (train.py and training/evaluate.py go through it and through the dataset's meta).

Next-token training reads a row as inputs x = row[:-1] and, for each target, a slot
(position in x, token to predict). Rows are padded to the same number of slots with
target -1, so the output head runs only where there is something to predict.
With teacherless=True the path inputs after the prompt are DUMMY tokens instead
(path_inputs), so every path target must come from the prompt alone; the targets
and edge rows are unchanged.
"""
from typing import NamedTuple, Optional

import numpy as np
import torch

from pathstar.data import inweights


class Targets(NamedTuple):
    """Rows ready for a model: inputs, and the (position, token) of each target slot (-1 = none)."""
    x: torch.Tensor      # (n, T) int64 inputs
    pos: torch.Tensor    # (n, slots) int64 positions in x
    tgt: torch.Tensor    # (n, slots) int64 tokens to predict, -1 in unused slots


class Part(NamedTuple):
    """A full-batch part: distinct rows at their own length, weighted by their copies."""
    x: torch.Tensor
    pos: torch.Tensor
    tgt: torch.Tensor
    weights: torch.Tensor  # (n,) copies of each distinct row
    share: float           # this part's share of all targets (the parts' losses add up to the mean)


class EvalSets(NamedTuple):
    train_paths: np.ndarray  # a fixed sample of training path rows
    edges: Targets           # a fixed sample of edge rows with one right answer, cut to edge length
    val_paths: np.ndarray    # every held-out path row
    all_edges: Optional[np.ndarray] = None  # every edge row at edge length (a view of the training rows)
    all_edge_answers: Optional[np.ndarray] = None  # per edge row, the right answers its prompt has


def target_slots(rows, mask, slots):
    """(pos, tgt) numpy arrays: for each row up to `slots` (position in x, target) pairs."""
    m = mask[:, 1:]
    n = len(rows)
    pos = np.zeros((n, slots), dtype=np.int64)
    tgt = np.full((n, slots), -1, dtype=np.int64)
    seen = np.zeros(n, dtype=np.int64)  # targets found so far in each row
    for t in range(m.shape[1]):  # a loop over row positions, not rows
        hit = np.nonzero(m[:, t])[0]
        pos[hit, seen[hit]] = t
        tgt[hit, seen[hit]] = rows[hit, t + 1]
        seen[hit] += 1
    return pos, tgt


def to_targets(rows, mask, slots, device):
    pos, tgt = target_slots(rows, mask, slots)
    x = torch.from_numpy(rows[:, :-1].astype(np.int64)).to(device)
    return Targets(x, torch.from_numpy(pos).to(device), torch.from_numpy(tgt).to(device))


def put_dummies(x, prompt_len, n_targets, dummy):
    """Teacherless inputs, in place: x[:, prompt_len:] holds the first n_targets - 1 targets of a path
    row (each is the input that predicts the next); they become dummy. Returns x."""
    x[:, prompt_len:prompt_len + n_targets - 1] = dummy
    return x


def path_inputs(x, meta):
    """Path-row inputs x (n, row_len - 1) as the model sees them: teacherless puts DUMMY after the
    prompt (in place), otherwise x is left as it is."""
    if meta['config']['teacherless']:
        put_dummies(x, meta['path_prompt_len'], len(meta['path_target_nodes']), meta['tokens']['dummy'])
    return x


def training_targets(data, path_loss, device):
    """Every training row as Targets; path_loss='first_hop' keeps only the hop after the root
    (configurator allows it with path_target='full' only)."""
    meta = data.meta
    t = to_targets(data.train_rows, data.train_mask, len(meta['path_target_nodes']), device)
    n_edges = meta['num_edge_rows']
    path_inputs(t.x[n_edges:], meta)
    if path_loss == 'first_hop':  # keep the first hop's slot only (slot 1: slot 0 is the root)
        hop = meta['first_hop_slot']
        t.tgt[n_edges:, :hop] = -1
        t.tgt[n_edges:, hop + 1:] = -1
    return t


class Kind(NamedTuple):
    """A run of training rows of one kind, and the inputs and target slots they need."""
    lo: int      # first row
    hi: int      # end row
    T: int       # input length: edge rows are shorter than path rows
    K: int       # target slots: one for an edge row


def row_kinds(first, end, meta, T, K):
    """Rows first..end split into their edge rows and their path (or other) rows, as [Kind].
    Edge rows come first in a dataset, and causal attention makes the padding after an edge
    irrelevant, so cutting them to their own length changes no loss or gradient."""
    n_edges = meta['num_edge_rows']
    kinds = [Kind(first, min(end, n_edges), meta['edge_row_len'] - 1, 1), Kind(max(first, n_edges), end, T, K)]
    return [k for k in kinds if k.lo < k.hi]


def rows_of(t, kind, idx):
    """Targets of rows idx (offsets from kind.lo) cut to the kind's length and slots."""
    rows = kind.lo + idx
    return Targets(t.x[rows, :kind.T], t.pos[rows, :kind.K], t.tgt[rows, :kind.K])


def distinct_parts(t, first, end, meta):
    """Rows first..end of Targets t as one full batch, in at most two parts with the same loss and
    gradient: each kind of row at its own length (row_kinds), and each distinct row once,
    weighted by its number of copies (path rows repeat path_replication times). Exact when dropout
    is 0, since copies are then identical. Returns [Part]."""
    found = []
    for k in row_kinds(first, end, meta, t.x.size(1), t.tgt.size(1)):
        rows, counts = torch.unique(torch.cat((t.x[k.lo:k.hi, :k.T], t.pos[k.lo:k.hi, :k.K],
                                               t.tgt[k.lo:k.hi, :k.K]), 1), dim=0, return_counts=True)
        found.append((rows[:, :k.T], rows[:, k.T:k.T + k.K], rows[:, k.T + k.K:], counts.float()))
    targets = [((tgt >= 0) * w[:, None]).sum() for _, _, tgt, w in found]
    return [Part(*part, share=n / sum(targets)) for part, n in zip(found, targets)]


def edge_answers(edge_rows, meta):
    """Per edge row, how many edge rows share its prompt (its right answers): '> root ?' has graph_d,
    and without direction markers an inner node's neighbours all answer '? u'."""
    source = edge_rows[:, meta['edge_row_len'] - 2].astype(np.int64)
    key = source
    if meta['config']['use_directional_tokens']:
        key = 2 * source + (edge_rows[:, meta['edge_row_len'] - 3] == meta['tokens']['bwd'])
    return np.bincount(key)[key]


def determined_edges(edge_rows, meta):
    """Edge rows whose prompt has one right answer (the others are not scored by 'edge')."""
    return edge_answers(edge_rows, meta) == 1


def eval_sets(data, samples, seed, device):
    """Fixed, seeded samples of `samples` training paths and edges (all held-out paths are scored, and
    all edge rows for edge_all)."""
    rng = np.random.default_rng(seed)
    meta = data.meta
    n_edges = meta['num_edge_rows']
    if meta.get('task') == 'in_context':  # no fixed graph: the first training rows are the training sample
        none = data.train_rows[:0, :meta['edge_row_len']]
        x, pos, tgt = to_targets(none, data.train_mask[:0, :meta['edge_row_len']], 1, device)
        return EvalSets(data.train_rows[:samples], Targets(x[:, :meta['edge_row_len'] - 1], pos, tgt),
                        data.val_rows, none)
    arms = np.sort(rng.permutation(meta['train_arms'])[:samples])
    train_paths = inweights.path_rows(meta['paths'][arms], meta)
    edge_idx = np.sort(rng.permutation(np.flatnonzero(determined_edges(data.train_rows[:n_edges], meta)))[:samples])
    x, pos, tgt = to_targets(data.train_rows[edge_idx], data.train_mask[edge_idx], 1, device)
    edges = Targets(x[:, :meta['edge_row_len'] - 1], pos, tgt)  # causal: the padding after an edge changes nothing
    all_edges = data.train_rows[:n_edges, :meta['edge_row_len']]
    return EvalSets(train_paths, edges, data.val_rows, all_edges, edge_answers(all_edges, meta))

