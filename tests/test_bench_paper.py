"""bench/bench_paper.py: its step shapes are the ones train.py feeds the model, its memory tracker on
FakeTensors agrees with torch's profiler on the same step run for real, and bench.py times the GPU's
work, not its launch."""
import importlib.util
import math
import os
import sys
from collections import Counter

import pytest
import torch
from torch.profiler import ProfilerActivity, profile, record_function

import train
from conftest import ROOT, tiny_config

sys.path.insert(0, os.path.join(ROOT, 'bench'))
import bench_paper  # noqa: E402
from pathstar.validate import build_config as checked  # noqa: E402
from pathstar.data import inweights  # noqa: E402
from pathstar import validate  # noqa: E402


def predicted_forwards(cfg):
    """The same, as bench_paper predicts them for one epoch of every stage."""
    geo = bench_paper.geometry(cfg)
    shapes, scored = Counter(), 0
    for step in bench_paper.steps(cfg, geo):
        for p in step.parts:
            forwards = round(p.computed * step.iters_per_epoch / p.rows)  # micro-batches holding this part
            shapes[(p.rows, p.T), (p.rows, p.K)] += forwards
            scored += round(p.real * step.iters_per_epoch) * p.useful_slots
    return shapes, scored


@pytest.mark.parametrize('overrides', [
    dict(batch_size=7),                                         # mini-batches of 3-4 edge and 3 path rows
    dict(batch_size=4, gradient_accumulation_steps=2),          # two micro-batches a step
    dict(batch_size=7, recipe='staged', staged_edge_frac=0.5),  # an edge stage, then a path stage
    dict(batch_size=7, path_loss='first_hop'),                  # one scored target in l slots
    dict(),                                                     # full batch: distinct rows, own lengths
    dict(recipe='staged', staged_edge_frac=0.5),                # full batch per stage
], ids=['mini', 'accum', 'staged', 'first_hop', 'full', 'full_staged'])
def test_step_shapes_are_what_train_feeds_the_model(tmp_path, forwards, overrides):
    epochs = 2 if overrides.get('recipe') == 'staged' else 1  # one epoch per stage
    cfg = validate.build_config(tiny_config(tmp_path, epochs=epochs, **overrides))
    calls = forwards
    train.train(cfg)
    shapes, scored = predicted_forwards(cfg)
    assert Counter((x, t) for x, t, _ in calls) == shapes
    assert sum(n for _, _, n in calls) == scored


def test_geometry_is_the_built_dataset(tmp_path):
    for overrides in (dict(), dict(use_undirected=False, graph_d=7, graph_l=4, num_pause_tokens=0),
                      dict(use_task_tokens=False, use_directional_tokens=False, path_replication=3)):
        cfg = validate.build_config(tiny_config(tmp_path, **overrides))
        arrays, meta = inweights.build_arrays(checked(cfg))
        geo = bench_paper.geometry(cfg)
        assert (geo.vocab_size, geo.T, geo.edge_T, geo.prompt_len, geo.l) == (
            meta['vocab_size'], meta['row_len'] - 1, meta['edge_row_len'] - 1, meta['path_prompt_len'], meta['l'])
        assert (geo.n_edges, geo.n_rows, geo.train_arms, geo.held_out) == (
            meta['num_edge_rows'], meta['num_train_rows'], len(meta['train_arms']), len(arrays['val_rows']))


def test_paper_accounting():
    """Per epoch of the paper config every real token counts once as useful. Everywhere: useful <=
    computed <= before (up to the padding of the last slices) < the old count, which overstated the
    FLOPs computed at the time by x1.3-1.55 at paper scale (the tied head at every position), and
    tokens/s by x4.5 in full-batch mode (copies and padding)."""
    results = {r['config']: r for r in bench_paper.measure(dtypes=())}
    paper = results['G(5000,5) paper']
    geo = bench_paper.geometry(bench_paper.paper_configs()[0][1])
    per_epoch = paper['useful_tokens'] * paper['iters_per_epoch']
    assert per_epoch == pytest.approx(geo.n_edges * geo.edge_T + (geo.n_rows - geo.n_edges) * geo.T)
    assert paper['useful_frac_before'] == pytest.approx(per_epoch / (geo.n_rows * geo.T))
    for name, r in results.items():
        # computed counts the padded last slices of an epoch, which the old code did not have
        assert r['flops_useful'] <= r['flops_computed'] <= r['flops_before'] * 1.001
        assert r['flops_before'] < r['flops_old_count']
        assert r['useful_frac_before'] <= r['useful_frac_now'] * 1.001 and r['useful_frac_now'] <= 1
        if not r['full_batch']:
            assert 1.25 <= r['flops_old_count'] / r['flops_before'] <= 1.55, name
            assert r['useful_frac_now'] > 0.99, name  # only the last slices of an epoch are padded
    full = results[bench_paper.FULL_BATCH[0]]
    assert full['old_tokens'] / full['computed_tokens'] > 4.5
    paths_only = results['staged: paths']  # path rows were always full length: only the count was off
    assert paths_only['flops_computed'] == pytest.approx(paths_only['flops_before'], rel=1e-3)


def profiled_peaks(cfg, geo, step, dtype):
    """Peak CPU bytes in each phase of bench_paper.measure_memory run on real tensors, from the
    allocations and frees torch's profiler records (each phase is a record_function range)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        bench_paper.measure_memory(cfg, geo, step, dtype, fake=False, round_to=1, phase=record_function)
    events = list(prof.profiler.kineto_results.events())
    memory = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == '[memory]')
    peaks = {}
    for name in ('train', 'eval_paths', 'eval_edges'):
        window = next(e for e in events if e.name() == name)
        live = sum(n for t, n in memory if t < window.start_ns())
        peak = live
        for t, n in memory:
            if window.start_ns() <= t <= window.end_ns():
                live += n
                peak = max(peak, live)
        peaks[name] = peak
    return peaks


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_memory_on_fake_tensors_matches_a_real_step(dtype):
    """The bench's number (LiveBytes on FakeTensors) against the allocator's own record of the same
    training step and evals on real CPU tensors: within 15% (it is within 1% here). bfloat16 runs under
    CPU autocast, as the bench's bf16 column does."""
    cfg = validate.build_config(dict(graph_d=50, graph_l=5, n_layer=2, n_head=4, n_embd=64, batch_size=128))
    geo = bench_paper.geometry(cfg)
    step, = bench_paper.steps(cfg, geo)
    assert not step.full_batch and len(step.parts) == 2
    fake = bench_paper.measure_memory(cfg, geo, step, dtype, round_to=1)
    real = profiled_peaks(cfg, geo, step, dtype)
    for name, peak in real.items():
        assert fake[f'{name}_peak_bytes'] == pytest.approx(peak, rel=0.15), name
    # and activations, not the resident state, make the train peak: the comparison means something
    assert fake['train_peak_bytes'] > 3 * fake['resident_bytes']


def test_live_bytes_counts_a_storage_once_and_until_it_is_freed():
    tracker = bench_paper.LiveBytes(round_to=512)
    with tracker:
        a = torch.zeros(1000)           # 4,000 bytes, rounded up to 4,096
        views = [a[:10], a.view(10, 100), a[::2]]
        assert tracker.live == 4096
        b = a * 2
        assert tracker.live == tracker.peak == 8192
        del a, views
        assert tracker.live == 4096
        tracker.reset()
        del b
    assert tracker.live == 0 and tracker.peak == 4096


def test_table_renders_every_config():
    results = bench_paper.measure([(bench_paper.FULL_BATCH[0], validate.build_config(bench_paper.FULL_BATCH[1]))],
                                  dtypes=('float32',))
    lines = bench_paper.table(results)
    rows = [line for line in lines if line.startswith(bench_paper.FULL_BATCH[0])]
    assert len(rows) == 2  # one in each table
    assert rows[1].split()[-5] == rows[1].split()[-3] == '-'  # no bf16 measured: its columns say so
    assert math.isfinite(results[0]['float32']['train_peak_bytes'])


def load_bench():
    spec = importlib.util.spec_from_file_location('bench_main', os.path.join(ROOT, 'bench', 'bench.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_timers_wait_for_the_gpu_before_reading_the_clock(monkeypatch):
    bench = load_bench()
    order = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_initialized', lambda: True)
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda *a: order.append('sync'))
    monkeypatch.setattr(bench.time, 'perf_counter', lambda: order.append('clock') or 1.0)
    timers = bench.Timers()
    timers.on_step(None, (), {})
    timers.hook('eval_start', None)
    timers.hook('eval_end', None)
    assert order == ['sync', 'clock'] * 3
    monkeypatch.setattr(torch.cuda, 'is_initialized', lambda: False)  # CUDA not in use: nothing to wait for
    order.clear()
    timers.on_step(None, (), {})
    assert order == ['clock']
