"""
A run's folder (out_dir) and the files in it, kept trustworthy:

    ckpt.pt        the resume checkpoint: model, optimizer, RNG state, config, progress
    best.pt        the weights of the best evaluation so far
    summary.json   the final metrics, written when the run finishes
    curve.json     every evaluation so far (its iter, epoch and metrics): the learning curve
    .lock          held while a run owns the folder: who it is

Every file is written to a temporary name and renamed, so a reader sees the old file or the
new one. A run takes the lock before it writes anything; a second run on the same out_dir
stops with one line naming the holder. A new run from scratch never overwrites a finished or
resumable run unless it is told to (overwrite_out_dir=True).
"""
import dataclasses
import fcntl
import glob
import json
import os
import socket
import sys
import time

import torch

import configurator
from pathstar.data import cache, tasks
from pathstar.errors import UserError
from pathstar.models import registry as models

RUN_FILES = ('ckpt.pt', 'best.pt', 'edges.pt', 'summary.json', 'curve.json')
NAME_MAX = 255     # bytes in one path component on Linux and macOS file systems
PATH_MAX = 4096    # bytes in a whole path on Linux
TMP_SUFFIX_LEN = 20  # '.tmp-<pid>' and the longest file name we add


# keys that define a run; on resume they come from the checkpoint
RUN_KEYS = [k for k in configurator.DEFAULTS if not k.startswith('wandb_') and k not in (
    'device', 'dtype', 'compile', 'compile_mode', 'data_dir', 'out_dir', 'init_from', 'overwrite_out_dir',
    'eval_only', 'checkpoint_interval', 'log_interval', 'geometry_interval')]


def run_name(cfg):
    """The run's name in wandb and in sweep trial names: its wandb_run_name, or its key parameters."""
    return cfg['wandb_run_name'] or (f"G{cfg['graph_d']}x{cfg['graph_l']}_p{cfg['num_pause_tokens']}"
                                     f"_L{cfg['n_layer']}x{cfg['n_embd']}_lr{cfg['learning_rate']:g}_s{cfg['seed']}")


def check_path(key, path, longest_child):
    """A folder we will create (out_dir, data_dir): every component and the whole path short enough
    for the file system, and its nearest existing parent a writable folder. Writes nothing."""
    full = os.path.abspath(path)
    for part in full.split(os.sep):
        if len(part.encode()) > NAME_MAX:
            raise UserError(f"{key}: the folder name {part[:40]!r}... has {len(part.encode())} bytes; "
                              f"file systems allow {NAME_MAX}")
    if len(full.encode()) + longest_child + TMP_SUFFIX_LEN > PATH_MAX:
        raise UserError(f"{key}: {full[:60]!r}... is too long ({len(full.encode())} bytes) for the files "
                          f"inside it: paths may have at most {PATH_MAX} bytes")
    if os.path.exists(full) and not os.path.isdir(full):
        raise UserError(f"{key}: {path!r} is a file, not a folder")
    parent = full
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{key}: cannot create {path!r}: {parent} is not a writable folder")


def check_out_dir(cfg):
    """Before anything is written: out_dir can be made, holds no folder where a run file goes, and
    (for a new run) holds no earlier run."""
    out_dir = cfg['out_dir']
    check_path('out_dir', out_dir, max(len(name) for name in RUN_FILES))
    for name in RUN_FILES:
        path = os.path.join(out_dir, name)
        if os.path.exists(path) and not os.path.isfile(path):
            raise UserError(f"out_dir: {path} is a folder, where the run writes its {name}; move it away")
    holder = lock_holder(out_dir)
    if holder:  # first: the advice below (resume, overwrite) would clobber a live run
        raise in_use(out_dir, holder)
    check_no_earlier_run(cfg)


def lock_holder(out_dir):
    """Who holds out_dir's lock ('pid N on host since ...'), or None when no live run does."""
    try:
        lock = open(os.path.join(out_dir, '.lock'))
    except OSError:
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return lock.read().strip() or 'another process'
        fcntl.flock(lock, fcntl.LOCK_UN)
    return None


def in_use(out_dir, holder):
    return UserError(f"out_dir: {out_dir} is in use by {holder}; give this run another --out_dir, or wait for "
                     f"that one to end")


def check_no_earlier_run(cfg):
    if cfg['init_from'] == 'resume' or cfg['overwrite_out_dir']:
        return
    found = [name for name in RUN_FILES if os.path.isfile(os.path.join(cfg['out_dir'], name))]
    if found:
        what = ('a finished run' if 'summary.json' in found else 'a run that can be resumed' if 'ckpt.pt' in found
                else "an earlier run's files")
        raise UserError(f"out_dir: {cfg['out_dir']} already holds {what} ({', '.join(found)}); give this run its "
                        f"own --out_dir, continue that one with --init_from=resume, or replace it with "
                        f"--overwrite_out_dir=True")


def claim(cfg):
    """Make out_dir and lock it for this run (the kernel drops the lock when the process dies).
    Returns the open lock file; close it to let go."""
    out_dir = cfg['out_dir']
    os.makedirs(out_dir, exist_ok=True)
    lock = open(os.path.join(out_dir, '.lock'), 'a+')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or 'another process'
        lock.close()
        raise in_use(out_dir, holder) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    lock.flush()
    try:
        check_no_earlier_run(cfg)  # again, now that no other run can start here
        if cfg['init_from'] == 'scratch':
            clear_run_files(cfg)
        for stale in glob.glob(glob.escape(out_dir) + '/*.tmp-*'):  # half-written by a killed run: never read
            os.remove(stale)
    except BaseException:
        lock.close()
        raise
    return lock


def clear_run_files(cfg):
    """Remove out_dir's run files (its owner's call: it holds the lock), but never the edge stage the run
    starts from."""
    keep = os.path.realpath(cfg['edge_checkpoint']) if cfg['edge_checkpoint'] else None
    for name in RUN_FILES:
        path = os.path.join(cfg['out_dir'], name)
        if os.path.isfile(path) and os.path.realpath(path) != keep:
            os.remove(path)


def atomic_save(obj, path):
    tmp = f'{path}.tmp-{os.getpid()}'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_summary(out_dir):
    """The summary.json a finished run wrote in out_dir, or None."""
    path = os.path.join(out_dir, 'summary.json')
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def atomic_write_json(obj, path):
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


# what a resume checkpoint must hold
CHECKPOINT_KEYS = ('model', 'optimizer', 'model_args', 'config', 'iter_num', 'last_eval', 'best', 'best_metrics',
                   'rng_cpu', 'wandb_id')


def load_for_resume(cfg, explicit, run_keys):
    """(config, checkpoint): the keys that define the run come from out_dir/ckpt.pt. An explicit
    override that differs from the checkpoint is reported (the checkpoint wins), and a key the
    checkpoint predates takes its default, said once."""
    path = os.path.join(cfg['out_dir'], 'ckpt.pt')
    if not os.path.isfile(path):
        raise UserError(f"init_from: 'resume' needs {path}, which does not exist")
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # truncated, foreign, or carrying pickled code: never unpickled
        raise UserError(f"init_from: cannot resume from {path}: not a readable checkpoint "
                          f"({type(e).__name__})") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing or not isinstance(checkpoint['config'], dict):
        raise UserError(f"init_from: {path} is not a pathstar resume checkpoint (it lacks "
                          f"{', '.join(missing) or 'a config'})")
    saved, older = checkpoint['config'], []
    for key in run_keys:
        if key not in saved:
            older.append(key)
        value = saved.get(key, configurator.DEFAULTS[key])
        if key in explicit and cfg[key] != value:
            print(f"warning: resuming keeps {key}={value!r} from the checkpoint, not {cfg[key]!r}", file=sys.stderr)
        cfg[key] = value
    if older:
        print(f"note: {path} was written before {', '.join(older)} existed; resuming with "
              f"{', '.join(f'{k}={configurator.DEFAULTS[k]!r}' for k in older)}", file=sys.stderr)
    return cfg, checkpoint


def restore_state(module, state, path, what):
    """load_state_dict, with a mismatch as one line (a checkpoint whose weights are not its config's)."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"init_from: the {what} in {path} does not match its own config ({first[:200]})") from None


def read_weights(path, key):
    """The dict a weights file (best.pt, edges.pt) holds, or one line saying what path is instead."""
    if os.path.isdir(path):
        raise UserError(f"{key}: {path} is a folder, not a weights file")
    if not os.path.isfile(path):
        raise UserError(f"{key}: {path} does not exist")
    try:
        saved = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # truncated, text, foreign, or carrying pickled code: never unpickled
        raise UserError(f"{key}: cannot read {path}: not a whole torch file (truncated, or another format; "
                        f"{type(e).__name__})") from None
    if not isinstance(saved, dict) or 'model' not in saved or not isinstance(saved.get('model_args'), dict):
        raise UserError(f"{key}: {path} is not a pathstar weights file (no model and model_args)")
    return saved


def check_edge_checkpoint(cfg):
    """Before anything is written or built: edge_checkpoint is the edges.pt of a two_stage run on this
    run's dataset, with this run's model (so the path stage starts from this graph's memory)."""
    path, key = cfg['edge_checkpoint'], 'edge_checkpoint'
    saved = read_weights(path, key)
    if saved.get('stage') != 'edges':
        raise UserError(f"{key}: {path} is not an edge stage's weights (the edges.pt a two_stage run writes, which "
                        f"names its dataset): a model trained on paths too, or an edges.pt older than that")
    theirs, ours = saved.get('dataset'), cache.dataset_name(cfg)
    if theirs != ours:
        old = saved.get('config', {})
        differ = [f"{k}={old.get(k)!r}" for k in tasks.task(cfg).data_config(cfg) if k in cfg
                  and old.get(k, cfg[k]) != cfg[k]]
        why = (', '.join(differ) if differ else "data_import's files changed since" if cfg['data_import']
               else 'another data format')
        raise UserError(f"{key}: {path} memorised another dataset ({theirs}; this run's is {ours}): it was "
                        f"trained with {why}")
    f = models.family(cfg)
    if models.family(saved['model_args']) is not f:
        raise UserError(f"{key}: {path} holds a model_type={saved['model_args'].get('model_type', 'gpt')!r} "
                        f"model; this run has model_type={cfg['model_type']!r}")
    args = saved['model_args']
    check_same_model(vars(f.config_from(cfg, args['vocab_size'], args['block_size'])), args, path, key)


def check_same_model(ours, theirs, path, key):
    """ours, theirs: model_args. A file written before a model key existed was made with its default."""
    fields = dataclasses.fields(models.family(ours).Config)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    differ = [k for k in ours if theirs.get(k, defaults.get(k)) != ours[k]]
    if differ:
        there = ', '.join(f"{k}={theirs.get(k)!r}" for k in differ)
        here = ', '.join(f"{k}={ours[k]!r}" for k in differ)
        raise UserError(f"{key}: {path} holds a different model ({there}; this run has {here})")


def check_resumed_dataset(cfg, checkpoint, path):
    """Resuming trains on the dataset the run began with, or stops: an edited data_import folder (or a
    change in how the graph is built) would otherwise switch graphs mid-run without a word."""
    theirs, ours = checkpoint.get('dataset'), cache.dataset_name(cfg)
    if theirs is not None and theirs != ours:
        what = (f"the files in data_import={cfg['data_import']!r} changed since" if cfg['data_import']
                else "this code builds another dataset from its config than when")
        raise UserError(f"init_from: {path} trained on dataset {theirs}, but {what} it was written (now {ours}); "
                        f"restore them, or start a new run")


def load_weights(model, path, key):
    """Start a model from the weights file of another run (best.pt, edges.pt): same shapes or one line."""
    saved = read_weights(path, key)
    check_same_model(vars(model.config), saved['model_args'], path, key)
    restore_state(model, saved['model'], path, 'model')
