"""
Train a small GPT on the in-weights path-star task and report how well it
plans the held-out paths.

    python3 train.py                                   # CPU-friendly demo (defaults in configurator.py)
    python3 train.py --graph_d=100 --n_layer=4 --epochs=2000
    python3 train.py config/paper_g5000_l5.py          # a named config, then overrides

train(config) -> summary is what the sweep runner calls in-process.
"""
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

import configurator
from configurator import wandb_mode
from model import estimate_mfu
from pathstar import validate
from pathstar.analysis import star as star_geometry
from pathstar.data import cache, slots
from pathstar.models import registry as models
from pathstar.models.base import LanguageModel
from pathstar.training import checkpoint as checkpoint_files
from pathstar.training import device as machine
from pathstar.training import recipes
from pathstar.training.checkpoint import RUN_KEYS, run_name
# what callers of train() catch: train.Interrupted, train.TrainingError
from pathstar.training.device import Interrupted, TrainingError  # noqa: F401
from pathstar.training.evaluate import best_key, evaluate, print_eval, print_summary


# -----------------------------------------------------------------------------
# the run's identity and wandb

def start_wandb(cfg, run_id):
    import wandb
    if wandb.run is not None:  # inside a wandb sweep agent: its run is ours
        wandb.run.config.update(cfg, allow_val_change=True)
        return wandb.run
    mode = wandb_mode(cfg)
    kwargs = dict(project=cfg['wandb_project'], entity=cfg['wandb_entity'] or None, name=run_name(cfg),
                  config=cfg, id=run_id, resume='allow' if run_id else None)
    try:
        return wandb.init(mode=mode, settings=wandb.Settings(init_timeout=60), **kwargs)
    except Exception as e:  # network down, bad key: keep the run, log offline
        if mode != 'online':
            raise
        print(f"warning: wandb online init failed ({type(e).__name__}: {e}); logging offline", file=sys.stderr)
        return wandb.init(mode='offline', **kwargs)


# -----------------------------------------------------------------------------
# the training run

@dataclass
class Run:
    """Everything one training run holds: set up once, then advanced by the loop below."""
    cfg: dict
    device: str
    dtype: str
    ctx: object                     # autocast, or nothing
    data: cache.PathStarData
    rows: slots.Targets     # every training row, on the device
    ev: slots.EvalSets
    plan: list                      # [Stage]
    max_iters: int
    batch_size: int
    model: LanguageModel
    step_model: torch.nn.Module     # the model, compiled or not
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    hook: Callable                  # hook(event, run); see train()
    lock: object = None             # out_dir/.lock, held while the run owns out_dir
    wandb: object = None
    wandb_id: Optional[str] = None
    dataset: str = ''               # the cache folder's name: which graph and rows, hashed
    iter_num: int = 0
    last_eval: int = -1
    best: Optional[list] = None     # best_key() of the best evaluation so far
    best_metrics: dict = field(default_factory=dict)
    curve: list = field(default_factory=list)       # every evaluation so far: its iter, epoch and metrics
    metrics: dict = field(default_factory=dict)     # the last evaluation
    last_line: dict = field(default_factory=dict)   # the last logged training line
    loss: Optional[torch.Tensor] = None             # the last step's loss, on the device
    lr: float = 0.0
    parts: dict = field(default_factory=dict)       # full-batch parts, by the stage's first row
    order: tuple = (None, None)                     # ((stage, epoch), a shuffle per kind of row)
    row_flops: dict = field(default_factory=dict)   # FLOPs of one row, by (inputs, target slots)
    t_start: float = field(default_factory=time.time)
    t_log: float = field(default_factory=time.time)
    tokens_since_log: int = 0                       # input tokens computed since the last log line
    flops_since_log: float = 0.0


def train(config, hook=None):
    """Run one training from a config dict (missing keys take their defaults); return the summary.

    hook(event, run), if given, is called at 'start' (set up, nothing trained yet), 'step' (before
    each optimizer step), 'eval_start'/'eval_end', 'save_start'/'save_end': the one way for
    tests and benchmarks to observe or perturb a run (run is the Run above).
    """
    cfg, checkpoint = validate.build_config(config), None
    if cfg['init_from'] == 'resume':
        cfg, checkpoint = checkpoint_files.load_for_resume(cfg, set(config), RUN_KEYS)
    stop, summary, r = {}, None, None
    handlers = install_signal_handlers(stop)
    try:
        r = setup(cfg, checkpoint, hook or (lambda event, run: None))
        with machine.out_of_memory_as_training_error(cfg, r.batch_size):
            r.hook('start', r)
            if (due(r, cfg['eval_interval']) or cfg['eval_only']) and r.last_eval != r.iter_num:
                evaluate_and_save(r)
            while r.iter_num < r.max_iters and not cfg['eval_only']:
                first_step(r, stop) if 'stepped' not in stop else train_step(r)
                if due(r, cfg['log_interval']):
                    log_step(r)
                if due(r, cfg['eval_interval']):
                    evaluate_and_save(r)
                if due(r, cfg['checkpoint_interval'] or cfg['eval_interval']) and r.iter_num < r.max_iters:
                    check_finite(r.loss.item(), r.iter_num, cfg)  # never save a diverged model
                    save(r, 'running')
                if 'signum' in stop:
                    save(r, 'interrupted')
                    raise Interrupted(stop['signum'], r.iter_num)
            earlier = None
            if not r.metrics:  # resumed a finished run: nothing was evaluated in this call
                earlier = checkpoint_files.read_summary(cfg['out_dir'])
                evaluate_and_save(r)
            if not cfg['eval_only']:
                save(r, 'finished')
            summary = write_summary(r, earlier)
        return summary
    except KeyboardInterrupt:
        if 'signum' not in stop:
            raise
        if r is not None and cfg['init_from'] == 'scratch':
            checkpoint_files.clear_run_files(cfg)  # the start-up's best.pt would turn a rerun away
        raise Interrupted(stop['signum']) from None
    finally:
        restore_signal_handlers(handlers)
        if r is not None:
            finish_wandb(r, summary)
            r.lock.close()  # out_dir is free for the next run


def setup(cfg, checkpoint, hook):
    """Check the machine, then build the data, model, optimizer and eval sets: a Run at iter 0
    (or at the checkpoint's iteration)."""
    device = machine.pick_device(cfg['device'])  # user errors first, before anything is written
    dtype = machine.pick_dtype(cfg['dtype'], device)
    checkpoint_files.check_out_dir(cfg)
    checkpoint_files.check_path('data_dir', cfg['data_dir'], longest_child=100)  # a cache folder and its files
    if checkpoint is not None:
        checkpoint_files.check_resumed_dataset(cfg, checkpoint, os.path.join(cfg['out_dir'], 'ckpt.pt'))
    elif cfg['edge_checkpoint']:
        checkpoint_files.check_edge_checkpoint(cfg)
    data = cache.load_or_build(cfg)
    meta = data.meta
    n_rows = meta['num_train_rows']
    stages = recipes.training_stages(cfg, n_rows, meta['num_edge_rows'])
    plan, max_iters = recipes.iteration_plan(cfg, stages, cfg['max_iters'])
    batch_size = max(stage.batch for stage in plan)

    machine.use_device(device)
    torch.manual_seed(cfg['seed'])
    with machine.out_of_memory_as_training_error(cfg, batch_size):
        model = models.build(cfg, meta['vocab_size'], meta['row_len'] - 1, device).to(device)
        rows = slots.training_targets(data, cfg['path_loss'], device)
    if cfg['edge_checkpoint'] and checkpoint is None:  # a resumed run's weights are all in its ckpt.pt
        checkpoint_files.load_weights(model, cfg['edge_checkpoint'], 'edge_checkpoint')
    r = Run(cfg=cfg, device=device, dtype=dtype, ctx=machine.autocast_context(device, dtype), data=data, rows=rows,
            ev=slots.eval_sets(data, cfg['eval_samples'], cfg['seed'], device), plan=plan,
            max_iters=max_iters, batch_size=batch_size, model=model, step_model=model,
            dataset=os.path.basename(data.path),
            optimizer=new_optimizer(model, cfg, device),
            scaler=torch.amp.GradScaler('cuda', enabled=(dtype == 'float16' and device.startswith('cuda'))),
            hook=hook)
    r.lock = checkpoint_files.claim(cfg)
    try:
        if checkpoint is not None:
            restore(r, checkpoint)
        if models.family(cfg).COMPILES and machine.use_compile(cfg['compile'], device):
            r.step_model = machine.compile_model(model, cfg['compile_mode'])
        d = meta['d']
        print(f"data: {n_rows} training rows ({meta['num_edge_rows']} edge rows), {len(data.val_rows)} held-out paths, "
              f"row length {meta['row_len']}; model: {model.num_params() / 1e6:.2f}M params on {device} ({dtype})")
        shown = ', '.join(f"{s.epochs} epochs x {s.iters_per_epoch} iters of <= {s.batch} rows over {s.rows} rows"
                          for s in plan)
        odds = f"first-hop chance 1/{d} = {1 / d:.3f}" if d else f"graph={cfg['graph']!r}: edge rows only"
        print(f"training ({cfg['recipe']}): {shown} = {max_iters} iters; {odds}")
        r.wandb = start_wandb(cfg, r.wandb_id) if cfg['wandb_log'] else None
    except BaseException:
        r.lock.close()
        raise
    return r


def new_optimizer(model, cfg, device):
    return model.configure_optimizers(cfg['weight_decay'], cfg['learning_rate'], (cfg['beta1'], cfg['beta2']),
                                      'cuda' if device.startswith('cuda') else device,
                                      decay_all=cfg['decay_params'] == 'all')


def restore(r, checkpoint):
    path = os.path.join(r.cfg['out_dir'], 'ckpt.pt')
    checkpoint_files.restore_state(r.model, checkpoint['model'], path, 'model')
    checkpoint_files.restore_state(r.optimizer, checkpoint['optimizer'], path, 'optimizer state')
    r.iter_num, r.last_eval = checkpoint['iter_num'], checkpoint['last_eval']
    r.best, r.best_metrics, r.wandb_id = checkpoint['best'], checkpoint['best_metrics'], checkpoint['wandb_id']
    r.curve = list(checkpoint.get('curve', []))  # a checkpoint from before curves: the curve starts here
    torch.set_rng_state(checkpoint['rng_cpu'])
    if r.device.startswith('cuda') and checkpoint.get('rng_cuda') is not None:
        torch.cuda.set_rng_state(checkpoint['rng_cuda'])


def due(r, interval):
    """Is something done every `interval` iterations due now? (The last iteration always is.)"""
    return r.iter_num % interval == 0 or r.iter_num == r.max_iters


def train_step(r):
    """One optimizer step on the rows the plan gives this iteration."""
    cfg = r.cfg
    stage, epoch, step = recipes.locate(r.iter_num, r.plan)
    if stage.new_optimizer and r.iter_num == stage.first_iter and r.iter_num > 0:
        r.optimizer = new_optimizer(r.model, cfg, r.device)  # two_stage: the path stage starts a fresh AdamW
    r.lr = recipes.lr_at(r.iter_num, stage.schedule)
    for group in r.optimizer.param_groups:
        group['lr'] = r.lr
    r.hook('step', r)
    if cfg['compile_mode'] == 'reduce-overhead' and r.step_model is not r.model:
        torch.compiler.cudagraph_mark_step_begin()
    if stage.batch >= stage.rows and cfg['dropout'] == 0:  # one batch holds every row, so order is moot
        if stage.first not in r.parts:
            r.parts[stage.first] = slots.distinct_parts(r.rows, stage.first, stage.first + stage.rows,
                                                                r.data.meta)
        parts = r.parts[stage.first]
        with r.ctx:  # only the loss is kept: the logits are freed before the backward pass
            loss = sum(p.share * r.step_model(p.x, p.tgt, cfg['label_smoothing'], positions=p.pos,
                                              weights=p.weights)[1] for p in parts)
        r.scaler.scale(loss).backward()
        count_computed(r, parts)
    else:
        batches = micro_batches(r, stage, epoch, step)
        for parts in batches:
            with r.ctx:
                loss = micro_batch_loss(r, parts)
            r.scaler.scale(loss / len(batches)).backward()
            count_computed(r, parts)
    if cfg['grad_clip'] > 0:
        r.scaler.unscale_(r.optimizer)
        torch.nn.utils.clip_grad_norm_(r.model.parameters(), cfg['grad_clip'])
    r.scaler.step(r.optimizer)
    r.scaler.update()
    r.optimizer.zero_grad(set_to_none=True)
    r.iter_num += 1
    r.loss = loss.detach()  # stays on the device until it is logged
    if stage.new_optimizer and len(r.plan) == 2 and r.iter_num == r.plan[1].first_iter:
        save_weights(r, 'edges.pt', stage='edges')  # two_stage: the edge stage, for later runs' edge_checkpoint


def micro_batches(r, stage, epoch, step):
    """This iteration's micro-batches, each a [Targets] with one part per kind of row (edge rows at
    their own length). Each kind is shuffled per epoch and cut into equal slices, so every row is seen
    once an epoch (recipes.slice_bounds); a short slice is padded with rows whose targets are ignored,
    so every step has the same shapes (one compiled graph, CUDA-graph friendly) and the same per-target
    mean. A kind with fewer rows than slices leaves some slices without a part of it."""
    t = r.rows
    kinds = slots.row_kinds(stage.first, stage.first + stage.rows, r.data.meta, t.x.size(1), t.tgt.size(1))
    sizes = [k.hi - k.lo for k in kinds]
    if r.order[0] != (stage.first, epoch):
        r.order = ((stage.first, epoch), recipes.epoch_orders(sizes, r.cfg['seed'], epoch, r.device))
    accum = r.cfg['gradient_accumulation_steps']
    slices = stage.iters_per_epoch * accum
    batches = []
    for j in range(step * accum, (step + 1) * accum):
        parts = []
        for kind, order, n, (lo, hi) in zip(kinds, r.order[1], sizes, recipes.slice_bounds(sizes, slices, j)):
            if hi == lo:  # this kind has fewer rows than slices, and none in this one
                continue
            size = math.ceil(n / slices)
            part = slots.rows_of(t, kind, torch.cat((order[lo:hi], order[:size - (hi - lo)])))
            if hi - lo < size:
                part = part._replace(tgt=part.tgt.clone())
                part.tgt[hi - lo:] = -1
            parts.append(part)
        if parts:  # empty only when accumulation makes more slices than the epoch has rows
            batches.append(parts)
    return batches


def micro_batch_loss(r, parts):
    """The mean over every target of the parts: each part's mean weighted by its number of targets."""
    total, count = 0.0, 0
    for p in parts:
        n = (p.tgt >= 0).sum()
        total = total + r.step_model(p.x, p.tgt, r.cfg['label_smoothing'], positions=p.pos)[1] * n
        count = count + n
    return total / count


def count_computed(r, parts):
    """Input tokens and FLOPs as computed (padding and target slots included, copies once)."""
    for p in parts:
        rows, T = p.x.shape
        K = p.tgt.size(1)
        if (T, K) not in r.row_flops:
            r.row_flops[T, K] = r.model.flops_per_row(T, K)
        r.tokens_since_log += rows * T
        r.flops_since_log += rows * r.row_flops[T, K]


def log_step(r):
    loss = r.loss.item()  # the only host sync between evaluations
    check_finite(loss, r.iter_num, r.cfg)
    dt = max(time.time() - r.t_log, 1e-9)
    tps = r.tokens_since_log / dt
    mfu = estimate_mfu(r.flops_since_log / dt, r.device, r.dtype)
    epoch = recipes.epochs_done(r.iter_num, r.plan)
    r.last_line = {'train/loss/step': loss, 'lr': r.lr, 'epoch': epoch, 'iter': r.iter_num,
                   'tokens_per_sec': tps, **({'mfu': mfu} if mfu is not None else {})}
    print(f"iter {r.iter_num}/{r.max_iters} | epoch {epoch:.1f} | loss {loss:.4f} | lr {r.lr:.2e} "
          f"| {tps / 1e3:.1f}k tok/s" + (f" | mfu {mfu * 100:.1f}%" if mfu is not None else ''))
    if r.wandb is not None:
        r.wandb.log(r.last_line, step=r.iter_num)
    r.t_log, r.tokens_since_log, r.flops_since_log = time.time(), 0, 0.0


def evaluate_and_save(r):
    """Evaluate, log, and keep the best: its metrics, and its weights in out_dir/best.pt."""
    cfg, meta = r.cfg, r.data.meta
    r.hook('eval_start', r)
    r.metrics = evaluate(r.model, r.ev, meta, r.device, r.ctx)
    r.metrics.update({'iter': r.iter_num, 'epoch': recipes.epochs_done(r.iter_num, r.plan)})
    if cfg['geometry_interval'] and ((r.iter_num // cfg['eval_interval']) % cfg['geometry_interval'] == 0
                                     or r.iter_num == r.max_iters):
        r.metrics.update(star_geometry.log_geometry(r.model, meta, cfg, r.iter_num, r.wandb, r.ev.all_edges))
    check_finite(r.metrics.get('train/loss/overall', r.metrics.get('train/loss/edge_all')), r.iter_num, cfg)
    print_eval(r.metrics, r.iter_num, r.metrics['epoch'], meta['l'], 1 / meta['d'] if meta['d'] else None)
    r.last_eval = r.iter_num
    if r.curve and r.curve[-1]['iter'] == r.iter_num:  # a finished run resumed: the same evaluation again
        r.curve.pop()
    r.curve.append({k: v for k, v in r.metrics.items() if isinstance(v, (int, float))})
    checkpoint_files.atomic_write_json(r.curve, os.path.join(cfg['out_dir'], 'curve.json'))
    improved = r.best is None or best_key(r.metrics) > tuple(r.best)
    if improved:
        r.best = list(best_key(r.metrics))
        r.best_metrics = {f'best/{k}': v for k, v in r.metrics.items() if '/' in k}
    if r.wandb is not None:
        r.wandb.log(r.metrics, step=r.iter_num)
    r.hook('eval_end', r)
    if improved:
        save_weights(r, 'best.pt')
    r.t_log, r.tokens_since_log, r.flops_since_log = time.time(), 0, 0.0  # eval time is not training throughput


def save_weights(r, name, stage=None):
    """out_dir/name: the model's weights, how to rebuild it and the dataset it learned (a third of a resume
    checkpoint). stage='edges' marks the edge stage's model, the one file edge_checkpoint takes."""
    r.hook('save_start', r)
    checkpoint_files.atomic_save(dict(model=r.model.state_dict(), model_args=vars(r.model.config), config=r.cfg,
                                      iter_num=r.iter_num, metrics=r.metrics, dataset=r.dataset, stage=stage),
                                 os.path.join(r.cfg['out_dir'], name))
    r.hook('save_end', r)


def save(r, status):
    """The resume checkpoint, out_dir/ckpt.pt: everything needed to continue the run exactly."""
    r.hook('save_start', r)
    checkpoint_files.atomic_save(dict(model=r.model.state_dict(), optimizer=r.optimizer.state_dict(),
                     model_args=vars(r.model.config), config=r.cfg, iter_num=r.iter_num, last_eval=r.last_eval,
                     best=r.best, best_metrics=r.best_metrics, curve=r.curve, rng_cpu=torch.get_rng_state(),
                     rng_cuda=torch.cuda.get_rng_state() if r.device.startswith('cuda') else None,
                     wandb_id=r.wandb.id if r.wandb is not None else r.wandb_id, status=status,
                     dataset=r.dataset),
                os.path.join(r.cfg['out_dir'], 'ckpt.pt'))
    r.hook('save_end', r)


def write_summary(r, earlier=None):
    """The last logged value of every metric (as wandb keeps it), the best ones, and the run's facts.
    `earlier`: the summary of the finished run this call resumed, which keeps its values (the training
    call's wall time, throughput, last lr) and only gains keys: a finished run's record never shrinks."""
    meta = r.data.meta
    summary = {**r.last_line, **r.metrics, **r.best_metrics}
    if meta['d']:  # a graph with paths
        summary['chance/first_hop'] = 1 / meta['d']
    summary.update({'wall_time_s': time.time() - r.t_start,
                    'iter': r.iter_num, 'max_iters': r.max_iters,
                    'epoch': recipes.epochs_done(r.iter_num, r.plan),
                    'params': r.model.num_params(), 'train_rows': meta['num_train_rows'],
                    'val_rows': len(r.data.val_rows), 'device': r.device})
    summary.update(earlier or {})
    checkpoint_files.atomic_write_json(summary, os.path.join(r.cfg['out_dir'], 'summary.json'))
    print_summary(summary)
    if r.wandb is not None:
        for key, value in summary.items():
            r.wandb.summary[key] = value
    return summary


def finish_wandb(r, summary):
    if r.wandb is not None:
        r.wandb.finish(exit_code=0 if summary is not None else 1)
        if wandb_mode(r.cfg) == 'offline':
            print(f"wandb: offline run saved; upload it with: wandb sync {os.path.dirname(r.wandb.dir)}")


def check_finite(loss, iter_num, cfg):
    if not math.isfinite(loss):
        raise TrainingError(f"loss became {loss} at iter {iter_num}: the run diverged; lower learning_rate "
                            f"(now {cfg['learning_rate']:g}) or set grad_clip (now {cfg['grad_clip']:g})")


def first_step(r, stop):
    """The call's first step, which may compile the model for minutes: a signal stops it at once (the
    handler raises), and an error it causes there (compile workers get Ctrl-C too) is that signal's. Its
    warnings are held until it ends: a signal inside the compiler's traced backward makes torch warn with
    the whole forward trace, which a stop drops; any other ending shows them as usual."""
    with warnings.catch_warnings(record=True) as held:  # the filters in force stay as they are
        try:
            if 'signum' in stop:  # the handler's raise landed in a callback, which ignores it
                raise KeyboardInterrupt
            train_step(r)
            if 'signum' in stop:
                raise KeyboardInterrupt
        except BaseException:
            if 'signum' in stop:
                raise KeyboardInterrupt from None
            show(held)
            raise
    show(held)
    stop['stepped'] = True


def show(held):
    for w in held:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def install_signal_handlers(stop):
    """SIGINT/SIGTERM: before the first step of this call (start-up, the dataset build, compiling) the
    run stops at once, with nothing trained to save; after it, the current step finishes, then the loop
    saves and stops."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        stop['signum'] = signum
        if 'stepped' not in stop:
            raise KeyboardInterrupt

    def unraisable(u, earlier=sys.unraisablehook):
        # a raise that lands in a weakref callback or __del__ is printed and dropped: first_step raises again
        if not (issubclass(u.exc_type, KeyboardInterrupt) and 'signum' in stop):
            earlier(u)
    handlers = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    handlers['unraisable'], sys.unraisablehook = sys.unraisablehook, unraisable
    return handlers


def restore_signal_handlers(handlers):
    for sig, old in handlers.items():
        if sig == 'unraisable':
            sys.unraisablehook = old
        else:
            signal.signal(sig, old)


def main(argv, hook=None):
    if set(argv) & set(configurator.HELP_FLAGS):
        print(configurator.help_text('train.py'))
        return
    try:
        train(configurator.parse_overrides(argv), hook)
    except Interrupted as e:
        print(f"stopped: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except KeyboardInterrupt:  # Ctrl-C before the run's own handler was in place: nothing to save yet
        print("stopped: interrupted during start-up", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    configurator.exit_on_user_error(lambda: main(sys.argv[1:]))
