"""
The training recipes as a plan: which rows each iteration trains on, with which batch, and at
which learning rate. train.py asks locate(iteration) and lr_at(iteration, schedule); nothing
here touches a model.

    interleaved   edges and paths shuffled together, one schedule (the paper's main runs)
    staged        edges alone for staged_edge_frac of the epochs, then paths; one optimizer and schedule
    two_stage     edges, then paths, each with its own AdamW, batch, epochs and schedule (the official code's)
"""
import math
from typing import NamedTuple

import torch

from pathstar import validate


class Schedule(NamedTuple):
    """A learning-rate schedule: linear warmup, cosine decay to min_lr, then flat."""
    start: int            # its first iteration
    warmup: int           # iterations of warmup
    decay_end: int        # iterations after start when the cosine reaches min_lr
    lr: float
    min_lr: float
    decay: bool           # False: a constant lr, no warmup
    from_zero: bool       # warmup lr * i / warmup (the official code's), else lr * (i + 1) / (warmup + 1)


class Stage(NamedTuple):
    first: int            # first training row of the stage
    rows: int             # rows in the stage
    epochs: int
    batch: int            # rows per micro-batch
    iters_per_epoch: int
    first_iter: int
    first_epoch: int      # counted over the whole run
    schedule: Schedule
    new_optimizer: bool   # the stage starts with a fresh AdamW (recipe='two_stage')


def training_stages(cfg, n_rows, n_edges):
    """[(first row, end row, epochs, batch, learning-rate keys or None, new optimizer)]: 'interleaved'
    shuffles all rows together; 'staged' trains on the edge rows alone for staged_edge_frac of the
    epochs, then on the path rows, with one optimizer and schedule; 'two_stage' (the official code's
    staged recipe) is two runs in one, edges then paths, each with its own optimizer, batch, epochs
    and schedule (the edge stage's from the edge_* keys). lr keys None = one schedule for the run."""
    batch = validate.batch_rows(cfg, n_rows)
    if cfg['recipe'] == 'staged':
        edge_epochs = validate.staged_edge_epochs(cfg)
        return [(0, n_edges, edge_epochs, batch, None, False), (n_edges, n_rows, cfg['epochs'] - edge_epochs, batch,
                                                                None, False)]
    if cfg['recipe'] == 'two_stage':
        edges = dict(learning_rate=cfg['edge_learning_rate'], min_lr=cfg['edge_min_lr'],
                     warmup_iters=cfg['edge_warmup_iters'])
        paths = (n_edges, n_rows, cfg['epochs'], validate.batch_rows(cfg, n_rows - n_edges), {}, True)
        if cfg['edge_checkpoint']:  # the edge stage was trained by another run: start from its weights
            return [paths]
        return [(0, n_edges, cfg['edge_epochs'], cfg['edge_batch_size'], edges, True), paths]
    return [(0, n_rows, cfg['epochs'], batch, None, False)]


def schedule(cfg, start, iters, **keys):
    """The Schedule of `iters` iterations from `start`, from cfg's keys (keys override them)."""
    c = {**cfg, **keys}
    from_zero = c['warmup_iters'] > 0
    warmup = c['warmup_iters'] if from_zero else int(c['warmup_frac'] * iters)
    decay_end = max(int(c['lr_decay_frac'] * iters), warmup)
    return Schedule(start, warmup, decay_end, c['learning_rate'], c['min_lr'], c['decay_lr'], from_zero)


def iteration_plan(cfg, stages, max_iters_cap=0):
    """([Stage], total iterations) for training_stages(); max_iters_cap > 0 stops the run early, and
    a one-schedule run then fits its schedule to the shorter run."""
    accum = cfg['gradient_accumulation_steps']
    plan, it, epoch = [], 0, 0
    for first, end, epochs, batch, lr_keys, new_optimizer in stages:
        per_epoch = math.ceil((end - first) / (batch * accum))
        iters = epochs * per_epoch
        own = schedule(cfg, it, iters, **lr_keys) if lr_keys is not None else None
        plan.append(Stage(first, end - first, epochs, batch, per_epoch, it, epoch, own, new_optimizer))
        it, epoch = it + iters, epoch + epochs
    total = min(it, max_iters_cap) if max_iters_cap else it
    shared = schedule(cfg, 0, total)  # for the stages without a schedule of their own
    return [st if st.schedule else st._replace(schedule=shared) for st in plan], total


def locate(it, plan):
    """Iteration -> (stage, epoch counted over the whole run, step within that epoch)."""
    for stage in reversed(plan):
        if it >= stage.first_iter:
            epoch, step = divmod(it - stage.first_iter, stage.iters_per_epoch)
            return stage, stage.first_epoch + epoch, step
    raise ValueError(it)


def epochs_done(it, plan):
    stage, epoch, step = locate(it, plan)
    return epoch + step / stage.iters_per_epoch


SHUFFLE_SEED_STRIDE = 1_000_003  # a prime: (seed, epoch) pairs never share a shuffle seed


def epoch_orders(sizes, seed, epoch, device):
    """One shuffle per kind of row for an epoch. It depends only on (seed, epoch), so a resumed run
    sees the same batches, and it is drawn on the device, so no step waits for a host copy."""
    g = torch.Generator(device=device).manual_seed(seed * SHUFFLE_SEED_STRIDE + epoch)
    return [torch.randperm(n, generator=g, device=device) for n in sizes]


def slice_bounds(sizes, slices, j):
    """Rows [lo, hi) of each kind of row that slice j of an epoch takes, each kind cut into `slices`
    slices. A kind of n rows gives each slice n // slices rows and n % slices of them one more. Each
    kind puts its larger slices right after the previous kind's (counting round from slice 0), so no
    slice is empty while the epoch has at least as many rows as slices, even when every kind has fewer."""
    bounds, offset = [], 0
    for n in sizes:
        q, extra = divmod(n, slices)
        rank = (j - offset) % slices  # slice j's place in this kind's order, its larger slices first
        lo = q * rank + min(rank, extra)
        bounds.append((lo, lo + q + (rank < extra)))
        offset = (offset + extra) % slices
    return bounds


def lr_at(it, s):
    """The learning rate of iteration it under Schedule s."""
    i = it - s.start
    if not s.decay:
        return s.lr
    if i < s.warmup:
        return s.lr * i / s.warmup if s.from_zero else s.lr * (i + 1) / (s.warmup + 1)
    if i >= s.decay_end:
        return s.min_lr
    progress = (i - s.warmup) / max(s.decay_end - s.warmup, 1)
    return s.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (s.lr - s.min_lr)
