"""
Train a small GPT on the in-weights path-star task and report how well it
plans the held-out paths.

    python3 train.py                                   # CPU-friendly demo (defaults in configurator.py)
    python3 train.py --graph_d=100 --n_layer=4 --epochs=2000
    python3 train.py config/paper_g5000_l5.py          # a named config, then overrides

train(config) -> summary is what the sweep runner calls in-process.
"""
import glob
import math
import os
import signal
import sys
import time
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

import configurator
import pathstar_data
from configurator import ConfigError, wandb_mode
from evaluate import best_key, evaluate, print_eval
from model import GPT, GPTConfig, estimate_mfu


class TrainingError(RuntimeError):
    """The run cannot go on (diverged, out of memory): one line for the user, status failed."""


class Interrupted(RuntimeError):
    """SIGINT/SIGTERM arrived: the checkpoint is saved, the run can be resumed."""

    def __init__(self, signum, iter_num):
        super().__init__(f"interrupted by signal {signum} at iter {iter_num}; resume with --init_from=resume")
        self.signum = signum


# -----------------------------------------------------------------------------
# system

def pick_device(name):
    if name != 'auto':
        if name.startswith('cuda') and not torch.cuda.is_available():
            raise ConfigError(f"device: {name!r} asked for but CUDA is not available; use device=cpu or auto")
        if name.startswith('cuda:') and int(name[5:]) >= torch.cuda.device_count():
            raise ConfigError(f"device: {name!r} asked for but {torch.cuda.device_count()} CUDA device(s) are visible")
        if name == 'mps' and not (getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available()):
            raise ConfigError("device: 'mps' asked for but MPS is not available; use device=cpu or auto")
        return name
    if torch.cuda.is_available():
        return 'cuda'
    if getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available():
        return 'mps'
    return 'cpu'


def check_out_dir(out_dir):
    """out_dir must be a folder or creatable as one; checked before anything is written."""
    path = os.path.abspath(out_dir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"out_dir: cannot create {out_dir!r}: {path} is not a writable folder")


def pick_dtype(name, device):
    """'auto': bf16 on GPUs that have it, fp16 (with a grad scaler) on older ones, fp32 elsewhere."""
    if name != 'auto':
        if name != 'float32' and not device.startswith('cuda'):  # autocast runs on CUDA only: it would be fp32
            raise ConfigError(f"dtype: {name} needs a CUDA device, got device={device!r}; use dtype=auto or float32")
        return name
    if device.startswith('cuda'):
        return 'bfloat16' if torch.cuda.is_bf16_supported() else 'float16'
    return 'float32'


def autocast_context(device, dtype):
    if dtype == 'float32' or not device.startswith('cuda'):
        return nullcontext()
    return torch.autocast(device_type='cuda', dtype=getattr(torch, dtype))


def use_compile(setting, device):
    return device.startswith('cuda') if setting == 'auto' else setting


# -----------------------------------------------------------------------------
# data on the device

def target_slots(rows, mask, slots):
    """
    For next-token training: inputs x = rows[:, :-1], and for each row up to `slots`
    (position in x, target token) pairs, padded with target -1. Fixed shapes mean the
    output head runs only where there is something to predict.
    """
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


def device_tensors(rows, mask, slots, device):
    pos, tgt = target_slots(rows, mask, slots)
    x = torch.from_numpy(rows[:, :-1].astype(np.int64)).to(device)
    return x, torch.from_numpy(pos).to(device), torch.from_numpy(tgt).to(device)


def distinct_parts(x, pos, tgt, first, end, n_edges, edge_len):
    """Rows first..end as one full batch, in at most two fixed parts with the same loss and gradient:
    edge rows cut to their own length (edge_len - 1 inputs, one target), and each distinct row once,
    weighted by its number of copies (path rows repeat path_replication times). Exact when dropout
    is 0, since copies are then identical. Returns [(x, pos, tgt, weights, share of the targets)]."""
    parts = []
    edges, others = (first, min(end, n_edges), edge_len - 1, 1), (max(first, n_edges), end, x.size(1), tgt.size(1))
    for lo, hi, T, K in (edges, others):
        if lo < hi:
            rows, counts = torch.unique(torch.cat((x[lo:hi, :T], pos[lo:hi, :K], tgt[lo:hi, :K]), 1), dim=0,
                                        return_counts=True)
            parts.append((rows[:, :T], rows[:, T:T + K], rows[:, T + K:], counts.float()))
    targets = [((t >= 0) * w[:, None]).sum() for _, _, t, w in parts]
    return [(*part, n / sum(targets)) for part, n in zip(parts, targets)]


def determined_edges(edge_rows, meta):
    """Edge rows whose prompt has one right answer. '> root ?' has graph_d, and without
    direction markers an inner node's two neighbours tie, so those rows are not scored."""
    source = edge_rows[:, meta['edge_row_len'] - 2].astype(np.int64)
    key = source
    if meta['config']['use_directional_tokens']:
        key = 2 * source + (edge_rows[:, meta['edge_row_len'] - 3] == meta['tokens']['bwd'])
    return np.bincount(key)[key] == 1


def eval_sets(data, cfg, device):
    """Fixed, seeded samples of training paths and edges (all held-out paths are scored)."""
    rng = np.random.default_rng(cfg['seed'])
    meta, k = data.meta, cfg['eval_samples']
    n_edges = meta['num_edge_rows']
    arms = np.sort(rng.permutation(meta['train_arms'])[:k])
    train_paths = pathstar_data.path_rows(meta['paths'][arms], meta)
    edge_idx = np.sort(rng.permutation(np.flatnonzero(determined_edges(data.train_rows[:n_edges], meta)))[:k])
    x, pos, tgt = device_tensors(data.train_rows[edge_idx], data.train_mask[edge_idx], 1, device)
    edges = (x[:, :meta['edge_row_len'] - 1], pos, tgt)  # causal: the padding after an edge changes nothing
    return dict(train_paths=train_paths, edges=edges, val_paths=data.val_rows)


def restrict_path_loss(targets, n_edges, path_loss):
    """path_loss='first_hop': path rows (after the edge rows) keep only slot 1, the hop after the root."""
    if path_loss == 'first_hop':
        targets[n_edges:, :1] = -1
        targets[n_edges:, 2:] = -1
    return targets


def epoch_order(n, seed, epoch, device):
    """The shuffle of one epoch depends only on (seed, epoch), so a resumed run sees the same batches."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)


def cosine_lr(it, max_iters, cfg):
    """Linear warmup, cosine decay to min_lr at lr_decay_frac of the run, then flat."""
    if not cfg['decay_lr']:
        return cfg['learning_rate']
    warmup = int(cfg['warmup_frac'] * max_iters)
    decay_end = max(int(cfg['lr_decay_frac'] * max_iters), warmup)
    if it < warmup:
        return cfg['learning_rate'] * (it + 1) / (warmup + 1)
    if it >= decay_end:
        return cfg['min_lr']
    progress = (it - warmup) / max(decay_end - warmup, 1)
    return cfg['min_lr'] + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg['learning_rate'] - cfg['min_lr'])


def training_stages(cfg, n_rows, n_edges):
    """[(first row, end row, epochs)]: 'interleaved' shuffles all rows together; 'staged'
    trains on the edge rows alone for staged_edge_frac of the epochs, then on the path rows."""
    if cfg['recipe'] == 'staged':
        edge_epochs = round(cfg['staged_edge_frac'] * cfg['epochs'])
        return [(0, n_edges, edge_epochs), (n_edges, n_rows, cfg['epochs'] - edge_epochs)]
    return [(0, n_rows, cfg['epochs'])]


def iteration_plan(stages, rows_per_iter):
    """Per stage: (first row, rows, epochs, iterations per epoch, its first iteration, its first epoch)."""
    plan, it, epoch = [], 0, 0
    for first, end, epochs in stages:
        per_epoch = math.ceil((end - first) / rows_per_iter)
        plan.append((first, end - first, epochs, per_epoch, it, epoch))
        it, epoch = it + epochs * per_epoch, epoch + epochs
    return plan, it


def locate(it, plan):
    """Iteration -> (stage, epoch counted over the whole run, step within that epoch)."""
    for stage in reversed(plan):
        if it >= stage[4]:
            epoch, step = divmod(it - stage[4], stage[3])
            return stage, stage[5] + epoch, step
    raise ValueError(it)


def epochs_done(it, plan):
    stage, epoch, step = locate(it, plan)
    return epoch + step / stage[3]


# -----------------------------------------------------------------------------
# checkpoints, summary, wandb

def atomic_save(obj, path):
    tmp = f'{path}.tmp-{os.getpid()}'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_json(obj, path):
    import json
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


# keys that define a run; on resume they come from the checkpoint
RUN_KEYS = [k for k in configurator.DEFAULTS if not k.startswith('wandb_') and k not in (
    'device', 'dtype', 'compile', 'data_dir', 'out_dir', 'init_from', 'eval_only', 'always_save_checkpoint',
    'log_interval', 'geometry_interval')]


def run_name(cfg):
    return cfg['wandb_run_name'] or (f"G{cfg['graph_d']}x{cfg['graph_l']}_p{cfg['num_pause_tokens']}"
                                     f"_L{cfg['n_layer']}x{cfg['n_embd']}_lr{cfg['learning_rate']:g}_s{cfg['seed']}")


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

def train(config):
    """Run one training from a config dict (missing keys take their defaults); return the summary."""
    cfg = configurator.build_config(config)
    out_dir = cfg['out_dir']
    ckpt_path = os.path.join(out_dir, 'ckpt.pt')
    checkpoint = None
    if cfg['init_from'] == 'resume':
        if not os.path.isfile(ckpt_path):
            raise ConfigError(f"init_from: 'resume' needs {ckpt_path}, which does not exist")
        try:
            checkpoint = torch.load(ckpt_path, map_location='cpu', weights_only=True)
        except Exception as e:  # truncated, foreign, or carrying pickled code: never unpickled
            raise ConfigError(f"init_from: cannot resume from {ckpt_path}: not a readable checkpoint "
                              f"({type(e).__name__})") from None
        for key in RUN_KEYS:
            if cfg[key] != checkpoint['config'][key] and cfg[key] != configurator.DEFAULTS[key]:
                print(f"warning: resuming keeps {key}={checkpoint['config'][key]!r} from the checkpoint, "
                      f"not {cfg[key]!r}", file=sys.stderr)
            cfg[key] = checkpoint['config'][key]

    device = pick_device(cfg['device'])  # user errors first, before anything is written
    dtype = pick_dtype(cfg['dtype'], device)
    check_out_dir(out_dir)
    n_edges, _, n_rows, _ = pathstar_data.row_counts(pathstar_data.data_config(cfg))
    batch_size = min(n_rows, 1024) if cfg['batch_size'] == 'auto' else cfg['batch_size']
    if batch_size > n_rows:  # checked before the dataset is built: a user error writes nothing
        raise ConfigError(f"batch_size: {batch_size} is more than the {n_rows} training rows; use 'auto' or <= {n_rows}")
    rows_per_iter = batch_size * cfg['gradient_accumulation_steps']
    plan, max_iters = iteration_plan(training_stages(cfg, n_rows, n_edges), rows_per_iter)
    if cfg['max_iters']:
        max_iters = min(max_iters, cfg['max_iters'])
    data = pathstar_data.load_or_build(cfg)
    meta = data.meta
    l, d = meta['l'], meta['d']
    chance = 1.0 / d

    device_type = 'cuda' if device.startswith('cuda') else device
    ctx = autocast_context(device, dtype)
    torch.manual_seed(cfg['seed'])
    if device_type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    model_config = GPTConfig(vocab_size=meta['vocab_size'], block_size=meta['row_len'] - 1, n_layer=cfg['n_layer'],
                             n_head=cfg['n_head'], n_embd=cfg['n_embd'], dropout=cfg['dropout'], bias=cfg['bias'])
    with out_of_memory_as_training_error(cfg, batch_size):
        model = GPT(model_config).to(device)
    optimizer = model.configure_optimizers(cfg['weight_decay'], cfg['learning_rate'],
                                           (cfg['beta1'], cfg['beta2']), device_type)
    scaler = torch.amp.GradScaler('cuda', enabled=(dtype == 'float16' and device_type == 'cuda'))
    iter_num, last_eval, best, best_metrics, wandb_id = 0, -1, None, {}, None
    if checkpoint is not None:
        model.load_state_dict(checkpoint['model'])
        optimizer.load_state_dict(checkpoint['optimizer'])
        iter_num, last_eval = checkpoint['iter_num'], checkpoint['last_eval']
        best, best_metrics, wandb_id = checkpoint['best'], checkpoint['best_metrics'], checkpoint['wandb_id']
        torch.set_rng_state(checkpoint['rng_cpu'])
        if device_type == 'cuda' and checkpoint.get('rng_cuda') is not None:
            torch.cuda.set_rng_state(checkpoint['rng_cuda'])
    step_model = torch.compile(model) if use_compile(cfg['compile'], device) else model

    with out_of_memory_as_training_error(cfg, batch_size):
        x_all, pos_all, tgt_all = device_tensors(data.train_rows, data.train_mask, l, device)
    restrict_path_loss(tgt_all, n_edges, cfg['path_loss'])
    ev = eval_sets(data, cfg, device)
    print(f"data: {n_rows} training rows ({meta['num_edge_rows']} edge rows), {len(data.val_rows)} held-out paths, "
          f"row length {meta['row_len']}; model: {model.num_params() / 1e6:.2f}M params on {device} ({dtype})")
    stages = ', '.join(f"{e} epochs x {k} iters over {n} rows" for _, n, e, k, _, _ in plan)
    print(f"training ({cfg['recipe']}): {stages} = {max_iters} iters of <= {rows_per_iter} rows; "
          f"first-hop chance 1/{d} = {chance:.3f}")

    run = start_wandb(cfg, wandb_id) if cfg['wandb_log'] else None
    stop = {}
    handlers = install_signal_handlers(stop)
    order, order_epoch = None, -1
    parts, parts_first = None, -1
    metrics, summary, last_line = {}, None, {}
    t_start = time.time()
    t_log, tokens_since_log = time.time(), 0
    os.makedirs(out_dir, exist_ok=True)
    for stale in glob.glob(glob.escape(ckpt_path) + '.tmp-*'):  # half-written by a killed run: never read
        os.remove(stale)

    def save(status):
        atomic_save(dict(model=model.state_dict(), optimizer=optimizer.state_dict(), model_args=vars(model_config),
                         config=cfg, iter_num=iter_num, last_eval=last_eval, best=best, best_metrics=best_metrics,
                         rng_cpu=torch.get_rng_state(),
                         rng_cuda=torch.cuda.get_rng_state() if device_type == 'cuda' else None,
                         wandb_id=run.id if run is not None else wandb_id, status=status), ckpt_path)

    def eval_now():
        nonlocal last_eval, best, best_metrics, metrics
        metrics = evaluate(model, ev, meta, device, ctx)
        metrics.update({'iter': iter_num, 'epoch': epochs_done(iter_num, plan)})
        geometry_now = cfg['geometry_interval'] and (
            (iter_num // cfg['eval_interval']) % cfg['geometry_interval'] == 0 or iter_num == max_iters)
        if geometry_now:
            metrics.update(log_geometry(model, meta, cfg, vars(model_config), iter_num, run))
        check_finite(metrics['train/loss/overall'], iter_num, cfg)
        print_eval(metrics, iter_num, metrics['epoch'], l, chance)
        last_eval = iter_num
        improved = best is None or best_key(metrics) > tuple(best)
        if improved:
            best, best_metrics = list(best_key(metrics)), {f'best/{k}': v for k, v in metrics.items() if '/' in k}
        if run is not None:
            run.log(metrics, step=iter_num)
        if (improved and iter_num > 0) or cfg['always_save_checkpoint']:
            save('running')

    try:
        if (iter_num % cfg['eval_interval'] == 0 or iter_num == max_iters or cfg['eval_only']) and last_eval != iter_num:
            eval_now()
        while iter_num < max_iters and not cfg['eval_only']:
            (first, n_stage, *_), epoch_index, step = locate(iter_num, plan)
            if epoch_index != order_epoch:
                order = first + epoch_order(n_stage, cfg['seed'], epoch_index, device)
                order_epoch = epoch_index
            lr = cosine_lr(iter_num, max_iters, cfg)
            for group in optimizer.param_groups:
                group['lr'] = lr
            if batch_size >= n_stage and cfg['dropout'] == 0:  # one batch holds every row, so order is moot
                if parts_first != first:
                    parts, parts_first = distinct_parts(x_all, pos_all, tgt_all, first, first + n_stage, n_edges,
                                                        meta['edge_row_len']), first
                with ctx:
                    loss = sum(share * step_model(xs, ts, cfg['label_smoothing'], positions=ps, weights=ws)[1]
                               for xs, ps, ts, ws, share in parts)
                scaler.scale(loss).backward()
                tokens_since_log += n_stage * x_all.size(1)
            else:
                batches = [order[i:i + batch_size] for i in range(step * rows_per_iter, (step + 1) * rows_per_iter,
                                                                  batch_size) if i < n_stage]
                for idx in batches:
                    with ctx:
                        _, loss = step_model(x_all[idx], tgt_all[idx], cfg['label_smoothing'], positions=pos_all[idx])
                    scaler.scale(loss / len(batches)).backward()
                    tokens_since_log += idx.numel() * x_all.size(1)
            if cfg['grad_clip'] > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg['grad_clip'])
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            iter_num += 1

            if iter_num % cfg['log_interval'] == 0 or iter_num == max_iters:
                loss_value = loss.item()  # the only host sync between evaluations
                check_finite(loss_value, iter_num, cfg)
                dt = max(time.time() - t_log, 1e-9)
                tps = tokens_since_log / dt
                mfu = estimate_mfu(model, tps, x_all.size(1), device)
                epoch = epochs_done(iter_num, plan)
                line = {'train/loss/step': loss_value, 'lr': lr, 'epoch': epoch,
                        'iter': iter_num, 'tokens_per_sec': tps, **({'mfu': mfu} if mfu is not None else {})}
                print(f"iter {iter_num}/{max_iters} | epoch {epoch:.1f} | loss {loss_value:.4f} "
                      f"| lr {lr:.2e} | {tps / 1e3:.1f}k tok/s" + (f" | mfu {mfu * 100:.1f}%" if mfu is not None else ''))
                if run is not None:
                    run.log(line, step=iter_num)
                last_line = line
                t_log, tokens_since_log = time.time(), 0
            if iter_num % cfg['eval_interval'] == 0 or iter_num == max_iters:
                eval_now()
                t_log, tokens_since_log = time.time(), 0
            if stop:
                save('interrupted')
                raise Interrupted(stop['signum'], iter_num)

        if not metrics:  # resumed a finished run: nothing was evaluated in this call
            eval_now()
        if not cfg['eval_only']:
            save('finished')
        summary = {**last_line, **metrics}  # the last logged value of every metric, as wandb keeps it
        summary.update(best_metrics)
        summary.update({'chance/first_hop': chance, 'wall_time_s': time.time() - t_start, 'iter': iter_num,
                        'max_iters': max_iters, 'epoch': epochs_done(iter_num, plan), 'params': model.num_params(),
                        'train_rows': n_rows, 'val_rows': len(data.val_rows), 'device': device})
        atomic_write_json(summary, os.path.join(out_dir, 'summary.json'))
        print_summary(summary, l)
        if run is not None:
            for key, value in summary.items():
                run.summary[key] = value
        return summary
    except torch.cuda.OutOfMemoryError:
        raise TrainingError(oom_message(cfg, batch_size)) from None
    finally:
        restore_signal_handlers(handlers)
        if run is not None:
            run.finish(exit_code=0 if summary is not None else 1)
            if wandb_mode(cfg) == 'offline':
                print(f"wandb: offline run saved; upload it with: wandb sync {os.path.dirname(run.dir)}")


def log_geometry(model, meta, cfg, model_args, iter_num, run):
    """Embedding-geometry numbers (returned) and plots (out_dir/geometry/, and wandb images)."""
    import analyze
    numbers = analyze.geometry_metrics(model, meta)
    title = analyze.run_title(model_args, cfg, iter_num)
    pngs = analyze.geometry_plots(model, meta, os.path.join(cfg['out_dir'], 'geometry'), title,
                                  prefix=f'iter{iter_num:07d}')
    print(f"  geometry: held-out diagonal margin {numbers['geometry/diagonal_margin']:.3f}, nearest-first-hop "
          f"accuracy {numbers['geometry/nearest_first_hop_accuracy']:.3f}, Laplacian alignment "
          f"{numbers['geometry/laplacian_alignment']:.3f} (random {numbers['geometry/laplacian_alignment_random']:.3f})")
    if run is not None:
        import wandb
        run.log({f'geometry_plots/{name}': wandb.Image(path) for name, path in pngs.items()}, step=iter_num)
    return numbers


def check_finite(loss, iter_num, cfg):
    if not math.isfinite(loss):
        raise TrainingError(f"loss became {loss} at iter {iter_num}: the run diverged; lower learning_rate "
                            f"(now {cfg['learning_rate']:g}) or set grad_clip (now {cfg['grad_clip']:g})")


@contextmanager
def out_of_memory_as_training_error(cfg, batch_size):
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise TrainingError(oom_message(cfg, batch_size)) from None


def oom_message(cfg, batch_size):
    return (f"out of GPU memory with batch_size={batch_size}, n_layer={cfg['n_layer']}, n_embd={cfg['n_embd']}: "
            f"lower batch_size (raise gradient_accumulation_steps to keep the rows per step) or the model size")


def print_summary(summary, l):
    def show(key):
        return f"{summary[key]:.3f}" if key in summary else 'n/a'
    print(f"done in {summary['wall_time_s']:.1f}s, {summary['iter']} iters ({summary['epoch']:.1f} epochs)")
    print(f"  held-out first hop: final {show('val/accuracy/token_2')}, best {show('best/val/accuracy/token_2')} "
          f"(chance {summary['chance/first_hop']:.3f})")
    print(f"  held-out path:      final {show('val/accuracy/path')}, best {show('best/val/accuracy/path')}")
    print(f"  training path:      final {show('train/accuracy/path')} | val loss {show('val/loss/overall')} "
          f"| train loss {show('train/loss/overall')}")


def install_signal_handlers(stop):
    """SIGINT/SIGTERM finish the current step, then the loop saves and stops."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        stop['signum'] = signum
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_signal_handlers(handlers):
    for sig, old in handlers.items():
        signal.signal(sig, old)


def main(argv):
    cfg = configurator.parse_args(argv)
    try:
        train(cfg)
    except Interrupted as e:
        print(f"stopped: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    configurator.exit_on_config_error(lambda: main(sys.argv[1:]))
