"""Micro-batches at every batch size: each step has rows to train on, and an epoch sees every row once,
whatever the batch size, the accumulation, and however few rows a kind of row has."""
import collections
import math

import pytest
import torch

import pathstar_data
from pathstar.data import slots as pathstar_rows
from pathstar.training import recipes
import train
from conftest import tiny_config


def row_tokens(part):
    """The rows of a part whose targets are scored, as hashable tuples (tokens, then targets)."""
    keep = (part.tgt >= 0).any(1)
    return [tuple(x) + tuple(t) for x, t in zip(part.x[keep].tolist(), part.tgt[keep].tolist())]


def epoch_rows(cfg):
    """(the rows of the first epoch as the micro-batches train() cuts them give them, the training rows)."""
    seen, expected = collections.Counter(), collections.Counter()

    def hook(event, r):
        if event != 'step':
            return
        stage, epoch, step = recipes.locate(r.iter_num, r.plan)
        if not expected:
            t = r.rows
            for kind in pathstar_rows.row_kinds(0, stage.rows, r.data.meta, t.x.size(1), t.tgt.size(1)):
                expected.update(row_tokens(pathstar_rows.rows_of(t, kind, torch.arange(kind.hi - kind.lo))))
        if epoch == 0:
            batches = train.micro_batches(r, stage, epoch, step)
            assert batches, f'step {step} has no rows'
            for parts in batches:
                assert parts
                for p in parts:
                    seen.update(row_tokens(p))
    train.train(cfg, hook)
    return seen, expected


def n_train_rows(tmp_path):
    return pathstar_data.load_or_build(tiny_config(tmp_path), verbose=False).meta['num_train_rows']


def test_every_batch_size_trains_and_sees_every_row_once_an_epoch(tmp_path):
    n = n_train_rows(tmp_path)
    for batch in range(1, n):  # batch >= n is a full batch, without micro-batches
        cfg = tiny_config(tmp_path, out_dir=str(tmp_path / f'out{batch}'), batch_size=batch, epochs=1,
                          eval_interval=1000, log_interval=1000)
        seen, expected = epoch_rows(cfg)
        assert seen == expected, f'batch_size={batch}'
    summary = train.train(tiny_config(tmp_path, out_dir=str(tmp_path / 'full'), batch_size=n, epochs=1))
    assert summary['max_iters'] == 1


@pytest.mark.parametrize('accum', [2, 3])
def test_gradient_accumulation_at_small_batches_sees_every_row_once_an_epoch(tmp_path, accum):
    n = n_train_rows(tmp_path)
    for batch in (1, 2, 5, n // accum):  # batch 1 with accumulation cuts more slices than there are rows
        cfg = tiny_config(tmp_path, out_dir=str(tmp_path / f'out{batch}'), batch_size=batch, epochs=1,
                          gradient_accumulation_steps=accum, eval_interval=1000, log_interval=1000)
        seen, expected = epoch_rows(cfg)
        assert seen == expected, f'batch_size={batch}'


def demo_row_counts(tmp_path):
    """(edge rows, path rows) of the default demo graph."""
    meta = pathstar_data.load_or_build(dict(data_dir=str(tmp_path / 'data')), verbose=False).meta
    return meta['num_edge_rows'], meta['num_train_rows'] - meta['num_edge_rows']


def test_slices_of_the_demo_graphs_rows_are_never_empty_at_any_batch_size(tmp_path):
    sizes = demo_row_counts(tmp_path)
    n = sum(sizes)
    for batch in range(1, n + 1):
        slices = math.ceil(n / batch)
        bounds = [recipes.slice_bounds(sizes, slices, j) for j in range(slices)]
        for k, size in enumerate(sizes):
            taken = [hi - lo for lo, hi in (b[k] for b in bounds)]
            assert sum(taken) == size and max(taken) <= math.ceil(size / slices), (batch, k)
        assert min(sum(hi - lo for lo, hi in b) for b in bounds) > 0, f'batch_size={batch}'


def test_slice_bounds_by_hand():
    # 3 edge rows and 2 path rows in 4 slices: the edges fill slices 0-2, the paths go on round to 3, 0
    assert [recipes.slice_bounds([3, 2], 4, j) for j in range(4)] == [
        [(0, 1), (1, 2)], [(1, 2), (2, 2)], [(2, 3), (2, 2)], [(3, 3), (0, 1)]]
    assert [recipes.slice_bounds([7], 3, j) for j in range(3)] == [[(0, 3)], [(3, 5)], [(5, 7)]]


def test_the_demo_at_batch_size_16_trains(tmp_path):
    summary = train.train(dict(data_dir=str(tmp_path / 'data'), out_dir=str(tmp_path / 'out'), batch_size=16,
                               max_iters=2, eval_interval=1000, device='cpu'))
    assert summary['iter'] == 2
