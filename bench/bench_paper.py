"""
The paper-scale configs, measured without a GPU: per optimizer step, the rows of each kind, the
useful share of the tokens, the FLOPs computed against the useful ones and against the old
accounting, and the peak memory of a training step and of an evaluation.

    python3 bench/bench_paper.py                 # the table (a few seconds; nothing real is computed)
    python3 bench/bench_paper.py --json out.json

Nothing is built or trained. Row counts and lengths come from pathstar/data/inweights.py (row_counts,
row_lengths), the configs from configurator (config/paper_g5000_l5.py, then each variant), the
per-step parts from the same formulas as train.micro_batches (tests/test_bench_paper.py checks them
against the shapes a real run feeds its model), and FLOPs from model.flops_per_row.

Memory: the model, its AdamW state, the training rows and each step's batch are FakeTensors (shapes
and dtypes, no data), and LiveBytes, a dispatch mode, adds up the bytes of every storage that an op
creates until it is freed. Two training steps run (fused AdamW, as on CUDA; the first creates the
optimizer state) and the peak of the second is reported, then the peak of one eval chunk
(evaluate.score_paths) and of the edge eval, with the AdamW state still held. fp32 runs as is; bf16
runs under CPU autocast, whose casts match CUDA autocast for this model (matmuls and attention in
bf16, layer norms and the loss in fp32). Not counted: the CUDA context and cuBLAS workspaces,
allocator fragmentation, and what torch.compile saves by fusing (the runs here are eager).
"""
import argparse
import json
import math
import os
import sys
import weakref
from contextlib import nullcontext
from typing import NamedTuple

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402
from torch.utils.weak import WeakIdKeyDictionary  # noqa: E402

from pathstar.training import evaluate  # noqa: E402
from pathstar.data import slots as row_slots  # noqa: E402
from pathstar.training import recipes  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from pathstar.validate import build_config as checked  # noqa: E402
from pathstar.data import inweights  # noqa: E402
from pathstar import tokens  # noqa: E402
from pathstar import validate  # noqa: E402

PAPER = os.path.join(ROOT, 'config', 'paper_g5000_l5.py')
VARIANTS = [('G(5000,5) paper', []), ('G(10^4,6)', ['g10000_l6.py']), ('G(10^4,10) 12x784', ['g10000_l10.py']),
            ('staged', ['staged.py']), ('forward_only', ['forward_only.py'])]
# for contrast, a config whose batch holds every row (full-batch mode): bench.py's (b)
FULL_BATCH = ('(b) d100 2x64 full', dict(graph_d=100, graph_l=5, graph_holdout_percentage=0.2, n_layer=2,
                                         n_embd=64, batch_size=1600))
CUDA_BLOCK = 512  # the CUDA caching allocator rounds every allocation up to this many bytes
GIB = 2 ** 30


def paper_configs():
    """[(name, config)]: the paper config alone, then each variant applied after it, then (b)."""
    out = [(name, validate.parse_args([PAPER] + [os.path.join(ROOT, 'config', f) for f in files]))
           for name, files in VARIANTS]
    return out + [(FULL_BATCH[0], validate.build_config(FULL_BATCH[1]))]


# -----------------------------------------------------------------------------
# the rows of a step

class Geometry(NamedTuple):
    """What a config's dataset looks like, from its config alone."""
    vocab_size: int
    T: int              # inputs of a full row (row_len - 1)
    edge_T: int         # inputs of an edge row
    prompt_len: int
    l: int
    n_edges: int        # edge rows
    n_rows: int         # training rows (edge rows + path rows, copies included)
    train_arms: int     # distinct training paths
    held_out: int       # validation rows


def geometry(cfg):
    counts = inweights.row_counts(checked(cfg))
    edge_len, prompt_len, path_len = inweights.row_lengths(checked(cfg))
    vocab = tokens.NODE_OFFSET + inweights.data_config(checked(cfg))['graph_vocab_size']
    return Geometry(vocab, max(edge_len, path_len) - 1, edge_len - 1, prompt_len, cfg['graph_l'], counts.edge_rows,
                    counts.train_rows, cfg['graph_d'] - counts.held_out, counts.held_out)


class Part(NamedTuple):
    """One kind of row in a step. Per micro-batch: `rows` computed at T inputs with K head slots.
    Per step, averaged over an epoch: `computed` rows (padding included) and `real` rows, each with
    `useful_slots` targets."""
    kind: str
    rows: int
    T: int
    K: int
    computed: float
    real: float
    useful_slots: int


class Step(NamedTuple):
    stage: str          # '' or, for the staged recipe, 'edges' / 'paths'
    full_batch: bool
    iters_per_epoch: int
    accum: int          # micro-batches per step
    parts: list         # [Part]
    old_rows: float     # rows per step as the old code counted them (each at T, copies included)


def stages(cfg, geo):
    """[(name, first row, rows, batch)]: recipes.training_stages, named."""
    found = recipes.training_stages(cfg, geo.n_rows, geo.n_edges)
    names = ['edges', 'paths'] if len(found) == 2 else ['']
    return [(name, first, end - first, batch) for name, (first, end, _, batch, _, _) in zip(names, found)]


def steps(cfg, geo):
    """[Step], one per stage: the parts train.py feeds the model in one optimizer step."""
    accum = cfg['gradient_accumulation_steps']
    assert cfg['path_target'] == 'full', 'the paper-scale table counts full path rows (every config in config/)'
    path_slots = 1 if cfg['path_loss'] == 'first_hop' else geo.l
    meta = dict(num_edge_rows=geo.n_edges, edge_row_len=geo.edge_T + 1)
    out = []
    for name, first, rows, batch in stages(cfg, geo):
        iters = math.ceil(rows / (batch * accum))
        full = batch >= rows and cfg['dropout'] == 0
        parts = []
        for k in row_slots.row_kinds(first, first + rows, meta, geo.T, geo.l):
            n, kind = k.hi - k.lo, 'edge' if k.lo < geo.n_edges else 'path'
            slots = 1 if kind == 'edge' else path_slots
            if full:  # row_slots.distinct_parts: each distinct row once, at its own length
                distinct = n if kind == 'edge' else min(n, geo.train_arms)
                parts.append(Part(kind, distinct, k.T, k.K, distinct, distinct, slots))
            else:  # train.micro_batches: near-equal slices of each kind (recipes.slice_bounds), padded
                size = math.ceil(n / (iters * accum))
                slices = min(n, iters * accum)  # slices with at least one real row (the others are skipped)
                parts.append(Part(kind, size, k.T, k.K, size * slices / iters, n / iters, slots))
        out.append(Step(name, full, iters, 1 if full else accum, parts, rows / iters))
    return out


def accounting(model, geo, step):
    """Tokens and FLOPs of one step, averaged over an epoch: useful (real rows at their own length, the
    head at real targets; in full-batch mode each distinct row once), computed (train.py's count),
    before (what the old code computed: every row at the full length T with l head slots) and
    old_count (what the old tokens/s and MFU counted: every row at T, 6N + attention per token, so the
    tied head at every position)."""
    cfg = model.config
    useful_tokens = sum(p.real * p.T for p in step.parts)
    computed_tokens = sum(p.computed * p.T for p in step.parts)
    old_tokens = step.old_rows * geo.T
    old_per_token = 6 * model.num_params() + 12 * cfg.n_layer * cfg.n_embd * geo.T
    return dict(
        useful_tokens=useful_tokens, computed_tokens=computed_tokens, old_tokens=old_tokens,
        useful_frac_now=useful_tokens / computed_tokens, useful_frac_before=useful_tokens / old_tokens,
        flops_useful=sum(p.real * model.flops_per_row(p.T, p.useful_slots) for p in step.parts),
        flops_computed=sum(p.computed * model.flops_per_row(p.T, p.K) for p in step.parts),
        flops_before=step.old_rows * model.flops_per_row(geo.T, geo.l),
        flops_old_count=old_tokens * old_per_token)


# -----------------------------------------------------------------------------
# memory

class LiveBytes(TorchDispatchMode):
    """The bytes of every storage alive, counted from the outputs of the ops run under this mode (and
    of tensors passed to track()); a storage counts from its creation until it is freed, once however
    many views share it. peak is the most at any moment since the last reset(). Works on real and on
    fake tensors. round_to rounds each storage up, as the CUDA caching allocator does."""

    def __init__(self, round_to=1):
        super().__init__()
        self.round_to = round_to
        self.sizes = WeakIdKeyDictionary()
        self.live = self.peak = 0

    def track(self, tensor):
        storage = tensor.untyped_storage()
        if storage in self.sizes:
            return
        n = -(-storage.nbytes() // self.round_to) * self.round_to
        self.sizes[storage] = n
        self.live += n
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, n).atexit = False

    def _free(self, n):
        self.live -= n

    def reset(self):
        self.peak = self.live

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.track(t)
        return out


def autocast(dtype):
    """Autocast as train.py uses it, on the CPU (FakeTensors here are CPU tensors)."""
    return nullcontext() if dtype == 'float32' else torch.autocast('cpu', dtype=getattr(torch, dtype))


def step_batches(step):
    """Fresh inputs of the step's shapes: for each micro-batch, [(x, pos, tgt)] per part."""
    def part(p):
        return tuple(torch.zeros(p.rows, w, dtype=torch.long) for w in (p.T, p.K, p.K))
    return [[part(p) for p in step.parts] for _ in range(step.accum)]


def train_step(model, optimizer, batches, ctx, label_smoothing=0.0, grad_clip=1.0):
    """One optimizer step as train.train_step takes it in mini-batch mode: each micro-batch's parts,
    the mean over their targets, backward; clip, step, zero_grad(set_to_none). (Full batch: the same
    parts weighted by copies, which costs the same memory.)"""
    for parts in batches:
        with ctx:
            total, count = 0.0, 0
            for x, pos, tgt in parts:
                n = (tgt >= 0).sum()
                total = total + model(x, tgt, label_smoothing, positions=pos)[1] * n
                count = count + n
            loss = total / count
        (loss / len(batches)).backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def eval_phases(model, geo, ctx, samples):
    """The two kinds of evaluation forward: one chunk of evaluate.score_paths (the most rows its logits
    budget allows, or every row of the larger path set if fewer), and evaluate.score_edges on its fixed
    sample of edge rows (computed as it does, without the .item() that a FakeTensor cannot give).
    Returns ({phase: callable}, chunk rows, edge rows)."""
    train_paths = min(samples, geo.train_arms)
    chunk = min(evaluate.eval_chunk_rows(geo.l, geo.vocab_size), max(train_paths, geo.held_out))
    n_edges = min(samples, geo.n_edges)  # at most: only edges with one right answer are sampled

    def paths():
        rows = np.zeros((chunk, geo.T + 1), np.int64)
        return evaluate.score_paths(model, rows, geo.prompt_len, geo.l, 'cpu', ctx)

    def edges():
        x = torch.zeros(n_edges, geo.edge_T, dtype=torch.long)
        pos = torch.zeros(n_edges, 1, dtype=torch.long)
        with ctx:
            logits, _ = model(x, positions=pos)
        logits, target = logits[:, 0].float(), pos[:, 0]
        return F.cross_entropy(logits, target), (logits.argmax(-1) == target).float().mean()
    return dict(eval_paths=paths, eval_edges=edges), chunk, n_edges


def gpt_config(cfg, geo):
    return GPTConfig(vocab_size=geo.vocab_size, block_size=geo.T, n_layer=cfg['n_layer'], n_head=cfg['n_head'],
                     n_embd=cfg['n_embd'], dropout=cfg['dropout'], bias=cfg['bias'])


def no_phase(name):
    return nullcontext()


def measure_memory(cfg, geo, step, dtype, fake=True, round_to=CUDA_BLOCK, phase=no_phase):
    """Peak bytes of a steady training step and of each kind of eval forward, and what is resident
    around them, for one step shape under autocast `dtype` ('float32' or 'bfloat16').
    fake=False runs the same on real CPU tensors, and phase(name) is entered around each measured
    phase ('train', 'eval_paths', 'eval_edges'): the tests profile a small config that way."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    ctx = autocast(dtype)
    tracker = LiveBytes(round_to)
    out = {}
    with FakeTensorMode(allow_non_fake_inputs=True) if fake else nullcontext(), tracker:
        model = GPT(gpt_config(cfg, geo))
        out['params_bytes'] = tracker.live
        # the device side of a Run: every training row as Targets (x, pos, tgt) and a shuffle per kind
        data = [torch.zeros(geo.n_rows, w, dtype=torch.long) for w in (geo.T, geo.l, geo.l, 1)]
        out['data_bytes'] = tracker.live - out['params_bytes']
        optimizer = model.configure_optimizers(cfg['weight_decay'], cfg['learning_rate'],
                                               (cfg['beta1'], cfg['beta2']), 'cuda')  # fused, as on CUDA
        for p in model.parameters():  # a first step with zero gradients creates the AdamW state
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        out['resident_bytes'] = tracker.live
        tracker.reset()
        with phase('train'):
            train_step(model, optimizer, step_batches(step), ctx, cfg['label_smoothing'], cfg['grad_clip'])
        out['train_peak_bytes'] = tracker.peak
        model.eval()
        phases, out['eval_chunk_rows'], out['eval_edge_rows'] = eval_phases(model, geo, ctx, cfg['eval_samples'])
        with torch.no_grad():
            for name, run in phases.items():
                tracker.reset()
                with phase(name):
                    result = run()
                del result
                out[f'{name}_peak_bytes'] = tracker.peak
        del data
    out['eval_peak_bytes'] = max(out['eval_paths_peak_bytes'], out['eval_edges_peak_bytes'])
    return out


# -----------------------------------------------------------------------------
# all of it

def measure(configs=None, dtypes=('float32', 'bfloat16')):
    """One result dict per (config, stage), for [(name, config)] (default: paper_configs()); memory
    for each autocast dtype in dtypes."""
    results = []
    for name, cfg in configs or paper_configs():
        geo = geometry(cfg)
        with torch.device('meta'):
            model = GPT(gpt_config(cfg, geo))
        for step in steps(cfg, geo):
            r = dict(config=name + (f': {step.stage}' if step.stage else ''), full_batch=step.full_batch,
                     iters_per_epoch=step.iters_per_epoch, accum=step.accum, params=model.num_params(),
                     vocab_size=geo.vocab_size, T=geo.T, parts=[p._asdict() for p in step.parts],
                     **accounting(model, geo, step))
            for dtype in dtypes:
                r[dtype] = measure_memory(cfg, geo, step, dtype)
            results.append(r)
    return results


def accounting_table(results):
    head = (f"{'':<24} {'iters':>5} {'rows/step':>11} {'useful tok %':>12} {'GFLOP per step':>33} "
            f"{'old count /':>17} {'old tok /':>9}")
    sub = (f"{'config':<24} {'/ep':>5} {'edge+path':>11} {'now':>5} {'before':>6} {'useful':>8} {'computed':>8} "
           f"{'before':>7} {'old cnt':>7} {'before':>8} {'now':>8} {'now':>9}")
    lines = ['paper scale, per optimizer step (no GPU needed: shapes from config/, FLOPs from model.flops_per_row)',
             head, sub, '-' * len(sub)]
    for r in results:
        rows = '+'.join(str(p['rows'] * r['accum']) for p in r['parts'])
        lines.append(
            f"{r['config']:<24} {r['iters_per_epoch']:>5} {rows + (' all' if r['full_batch'] else ''):>11} "
            f"{100 * r['useful_frac_now']:>5.1f} {100 * r['useful_frac_before']:>6.1f} "
            f"{gflop(r['flops_useful']):>8} {gflop(r['flops_computed']):>8} {gflop(r['flops_before']):>7} "
            f"{gflop(r['flops_old_count']):>7} {r['flops_old_count'] / r['flops_before']:>8.2f} "
            f"{r['flops_old_count'] / r['flops_computed']:>8.2f} {r['old_tokens'] / r['computed_tokens']:>9.2f}")
    return lines + [
        '  rows/step: rows of each kind per step, a fixed shape (the last slices of an epoch are padded);',
        '    "all": full batch, each distinct row once, weighted by its copies',
        '  useful tok %: real rows x their own length, as a share of the tokens computed now (edge and path rows',
        '    at their own lengths) and before (every row padded to the full length, copies included)',
        '  GFLOP/step: useful (real rows, the head only at real targets; in full-batch mode each distinct row',
        '    once), computed (as train.py counts them now), before (what the old code computed: every row at',
        '    full length with l head slots), old count (what the old tokens/s and MFU assumed: 6N + attention',
        '    per token of every full-length row, so the tied head at every position); averaged over an epoch',
        '  old count / before, / now: how far the old MFU overstated the FLOPs the old code, or the code now,',
        '    computes; old tok / now: the same for tokens/s (rows x full length, against the tokens computed now)']


def memory_table(results):
    head = (f"{'config':<24} {'params':>6} {'resident':>8} {'train step':>11} {'eval':>11} "
            f"{'eval rows':>11}")
    sub = (f"{'':<24} {'M':>6} {'GiB':>8} {'fp32':>5} {'bf16':>5} {'fp32':>5} {'bf16':>5} "
           f"{'paths':>5} {'edges':>5}")
    lines = ['paper scale, peak GPU memory in GiB (FakeTensors, no GPU: see bench/README.md)', head, sub,
             '-' * len(head)]
    for r in results:
        f32, b16 = r.get('float32', {}), r.get('bfloat16', {})
        lines.append(
            f"{r['config']:<24} {r['params'] / 1e6:>6.1f} {gib(f32.get('resident_bytes')):>8} "
            f"{gib(f32.get('train_peak_bytes')):>5} {gib(b16.get('train_peak_bytes')):>5} "
            f"{gib(f32.get('eval_peak_bytes')):>5} {gib(b16.get('eval_peak_bytes')):>5} "
            f"{f32.get('eval_chunk_rows', '-'):>5} {f32.get('eval_edge_rows', '-'):>5}")
    return lines + [
        '  resident: parameters, AdamW state and the training rows on the device, between steps',
        '  train step: the peak of a steady step (resident + gradients + activations + logits), eager;',
        '  eval: the peak of an evaluation in a training process (resident + one chunk of score_paths or the',
        '    score_edges forward); fp32, and bf16 = CPU autocast, which casts this model as CUDA autocast does;',
        '  not counted: the CUDA context, cuBLAS workspaces, allocator fragmentation, what torch.compile saves']


def table(results):
    return accounting_table(results) + [''] + memory_table(results)


def gflop(x):
    return f'{x / 1e9:,.0f}' if x >= 1e10 else f'{x / 1e9:.2f}'


def gib(n):
    return '-' if n is None else f'{n / GIB:.2f}' if n < 10 * GIB else f'{n / GIB:.1f}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--json', metavar='PATH', help='also write the results here')
    args = parser.parse_args()
    results = measure()
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    print('\n'.join(table(results)))


if __name__ == '__main__':
    main()
