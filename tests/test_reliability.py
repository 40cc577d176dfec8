"""
What happens when things go wrong during a run: signals, kill -9 in the middle of a write,
concurrent dataset builders, divergence, out-of-memory, and untrusted files.

Faults are injected into child processes (a signal sent from inside a training step, a
torch.save or np.save that writes half a file and then hangs until it is SIGKILLed), so
every case is deterministic. Every model here is tiny, seeded, on CPU with one torch thread.
"""
import glob
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch

import model
from pathstar.data import cache as pc
import pathstar_data as ps
import train
from conftest import ROOT
from conftest import checked
from pathstar.data import inweights

# the seeded run every interruption is compared with: 30 iterations (31 rows, one batch per
# epoch), evaluations at 0, 10, 20, 30, and dropout so that a lost RNG state would show
REF = dict(graph_d=4, graph_l=3, num_pause_tokens=1, graph_holdout_percentage=0.25, n_layer=1, n_head=2,
           n_embd=32, epochs=30, eval_interval=10, log_interval=5, dropout=0.1, device='cpu')
COMPARED = ('iter', 'val/loss/overall', 'train/loss/overall', 'train/loss/edge', 'val/accuracy/path',
            'train/accuracy/path', 'best/val/loss/overall')
CHILD_ENV = dict(OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')


class one_torch_thread:
    """Results must not depend on how a run was split between processes: one thread everywhere."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


@pytest.fixture(autouse=True)
def single_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """The summary of the uninterrupted run, computed once for the module."""
    folder = tmp_path_factory.mktemp('reference')
    with one_torch_thread():
        return train.train(dict(REF, data_dir=str(folder / 'data'), out_dir=str(folder / 'out')))


def run_config(tmp_path, **overrides):
    return dict(REF, data_dir=str(tmp_path / 'data'), out_dir=str(tmp_path / 'out'), **overrides)


def assert_same_metrics(summary, reference):
    for key in COMPARED:
        assert summary[key] == pytest.approx(reference[key], abs=1e-6), key


def argv(cfg):
    return [f'--{key}={value}' for key, value in cfg.items()]


# a training child with one fault: python3 -c TRAIN_CHILD ROOT MODE ARG ARGV_JSON
TRAIN_CHILD = r'''
import json, os, signal, sys, time
root, mode, arg, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path.insert(0, root)
import torch
torch.set_num_threads(1)
import train
hook = None
if mode == 'signal':  # arg 'SIGINT:12': the signal arrives during the training step that starts at iter 12
    name, at = arg.split(':')
    def hook(event, run):
        if event == 'step' and run.iter_num == int(at):
            os.kill(os.getpid(), getattr(signal, name))
elif mode == 'hang-in-save':  # arg '2:MARKER': the 2nd save of ckpt.pt writes half its file, then hangs
    n, marker = arg.split(':', 1)
    real_save, calls = torch.save, []
    def save(obj, f, *rest, **kw):
        calls.extend([f] if 'ckpt.pt' in str(f) else [])
        real_save(obj, f, *rest, **kw)
        if len(calls) == int(n) and 'ckpt.pt' in str(f):
            os.truncate(f, os.path.getsize(f) // 2)
            open(marker, 'w').close()
            time.sleep(600)  # until the test sends SIGKILL
    torch.save = save
train.main(args, hook)
'''


def start_train_child(mode, arg, cfg):
    return subprocess.Popen([sys.executable, '-c', TRAIN_CHILD, ROOT, mode, arg, json.dumps(argv(cfg))],
                            env=dict(os.environ, **CHILD_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def communicate(proc, timeout=300):
    """(stdout, stderr) of a child that must end by itself; one that hangs is killed and fails the test."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f'the child hung for {timeout} s')


def wait_for(marker, proc, seconds=180):
    deadline = time.time() + seconds
    while not os.path.exists(marker):
        if proc.poll() is not None:
            pytest.fail(f'the child exited ({proc.returncode}) before the fault: {proc.communicate()[1][-3000:]}')
        assert time.time() < deadline, 'the child never reached the fault'
        time.sleep(0.02)


# -----------------------------------------------------------------------------
# wandb offline runs: the .wandb file is a log of protobuf records in 32 KiB blocks

def wandb_records(path):
    from wandb.proto import wandb_internal_pb2 as pb
    data = open(path, 'rb').read()
    assert data[:4] == b':W&B', path
    pos, block, chunk = 7, 32768, b''
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack('<IHB', data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # the rest of the block is padding
            pos += left
            continue
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(chunk)
            chunk = b''
            yield record


def offline_runs(wait=30):
    """{run folder: (run id, exit code or None when the run was never closed)}. wandb's finish()
    returns before its service has written the exit record, so wait up to `wait` seconds for it."""
    deadline = time.time() + wait
    while True:
        runs = {}
        for folder in sorted(glob.glob(os.path.join(os.environ['WANDB_DIR'], 'wandb', 'offline-run-*'))):
            files = glob.glob(os.path.join(folder, 'run-*.wandb'))
            assert len(files) == 1, folder
            exits = [r.exit.exit_code for r in wandb_records(files[0]) if r.HasField('exit')]
            runs[folder] = (folder.rsplit('-', 1)[1], exits[-1] if exits else None)
        if all(code is not None for _, code in runs.values()) or time.time() > deadline:
            return runs
        time.sleep(0.1)


# -----------------------------------------------------------------------------
# SIGINT / SIGTERM (SIGTERM at an evaluation is tests/test_train.py's)

def test_sigint_between_evaluations_checkpoints_exits_130_closes_wandb_and_resumes_to_the_same_metrics(
        tmp_path, reference):
    cfg = run_config(tmp_path, wandb_log=True, wandb_mode='offline')
    child = start_train_child('signal', 'SIGINT:12', cfg)
    _, err = communicate(child)
    assert child.returncode == 128 + signal.SIGINT, err
    assert 'Traceback' not in err and 'resume with --init_from=resume' in err
    ckpt = torch.load(tmp_path / 'out' / 'ckpt.pt', map_location='cpu', weights_only=True)
    assert ckpt['iter_num'] == 13 and ckpt['last_eval'] == 10 and ckpt['status'] == 'interrupted'
    assert not (tmp_path / 'out' / 'summary.json').exists()
    [(run_id, exit_code)] = offline_runs().values()
    assert exit_code not in (None, 0)  # the run was closed, and not as a success
    assert ckpt['wandb_id'] == run_id

    resumed = train.train(dict(cfg, init_from='resume'))
    assert_same_metrics(resumed, reference)
    second = [run for run in offline_runs().values() if run != (run_id, exit_code)]
    assert second == [(run_id, 0)]  # the same wandb run, continued and finished


def test_a_signal_during_the_last_step_still_ends_with_the_final_metrics(tmp_path, reference):
    """In-process, as a sweep calls train(): train() owns SIGTERM while it runs, and puts our handler
    back after. Ours only records a signal that reached it (failing the test instead of killing pytest)."""
    last = REF['epochs'] - 1

    def hook(event, run):
        if event == 'step' and run.iter_num == last:
            os.kill(os.getpid(), signal.SIGTERM)
    cfg = run_config(tmp_path)
    leaked = []

    def ours(signum, frame):
        leaked.append(signum)
    previous = signal.signal(signal.SIGTERM, ours)
    try:
        try:
            summary = train.train(cfg, hook)  # finishing the run is also a right answer
        except train.Interrupted as e:
            assert e.signum == signal.SIGTERM
            assert torch.load(tmp_path / 'out' / 'ckpt.pt', weights_only=True)['iter_num'] == REF['epochs']
            summary = train.train(dict(cfg, init_from='resume'))
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert leaked == []
    assert_same_metrics(summary, reference)
    assert json.load(open(tmp_path / 'out' / 'summary.json'))['iter'] == REF['epochs']


# -----------------------------------------------------------------------------
# kill -9 in the middle of a write

def test_kill_9_inside_a_checkpoint_write_keeps_the_previous_checkpoint_and_resume_matches(tmp_path, reference):
    cfg = run_config(tmp_path)  # resume checkpoints at every eval: iters 10, 20, 30
    marker = str(tmp_path / 'half-written')
    child = start_train_child('hang-in-save', f'2:{marker}', cfg)
    try:
        wait_for(marker, child)
    finally:
        child.kill()
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    out = tmp_path / 'out'
    [half] = glob.glob(str(out / 'ckpt.pt.tmp-*'))
    with pytest.raises(Exception):
        torch.load(half, weights_only=True)  # the write really was cut in half
    ckpt = torch.load(out / 'ckpt.pt', map_location='cpu', weights_only=True)
    assert ckpt['iter_num'] == 10 and ckpt['status'] == 'running'
    assert all(torch.isfinite(t).all() for t in ckpt['model'].values())

    resumed = train.train(dict(cfg, init_from='resume'))
    assert_same_metrics(resumed, reference)
    assert torch.load(out / 'ckpt.pt', weights_only=True)['status'] == 'finished'
    assert glob.glob(str(out / 'ckpt.pt.tmp-*')) == []  # the next run cleared the half-written file


DATA_CFG = dict(graph_d=300, graph_l=5, graph_holdout_percentage=0.1)

# a dataset builder child: python3 -c BUILDER ROOT CONFIG MODE MARKER, CONFIG checked here, as JSON (the child
# imports the cache layer alone: no torch, a tenth of the start-up)
BUILDER = r'''
import hashlib, json, os, sys, time
root, cfg, mode, marker = sys.argv[1:5]
sys.path.insert(0, root)
import numpy as np
from pathstar.data import cache as pc
if mode == 'hang-in-save':  # the 2nd array file is left half written, then the builder hangs
    real_save, calls = np.save, []
    def save(path, array, *rest, **kw):
        calls.append(path)
        real_save(path, array, *rest, **kw)
        if len(calls) == 2:
            os.truncate(path, os.path.getsize(path) // 2)
            open(marker, 'w').close()
            time.sleep(600)  # until the test sends SIGKILL
    np.save = save
else:  # 'wait': say so, then queue for the lock
    open(marker, 'w').close()
data = pc.load_or_build(json.loads(cfg), verbose=False)
h = hashlib.sha256(b''.join(np.ascontiguousarray(getattr(data, n)).tobytes() for n in pc.ARRAYS))
print(json.dumps(dict(built=data.build_seconds is not None, digest=h.hexdigest())))
'''


def digest(data):
    return hashlib.sha256(b''.join(np.ascontiguousarray(data[n]).tobytes() for n in pc.ARRAYS)).hexdigest()


def test_kill_9_inside_a_dataset_write_lets_the_waiting_builder_take_over_with_a_complete_cache(tmp_path):
    data_dir = tmp_path / 'data'

    def builder(mode, marker):
        cfg = json.dumps(checked(dict(DATA_CFG, data_dir=str(data_dir))))
        return subprocess.Popen([sys.executable, '-c', BUILDER, ROOT, cfg, mode, str(tmp_path / marker)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = builder('hang-in-save', 'half-written')
    second = None
    try:
        wait_for(tmp_path / 'half-written', first)  # the first holds the lock, one file half on disk
        second = builder('wait', 'queued')
        wait_for(tmp_path / 'queued', second)
        time.sleep(0.3)
        assert second.poll() is None  # waiting for the lock, not reading a half-built cache
    finally:
        first.kill()
        first.communicate(timeout=60)
    out, err = communicate(second)
    assert second.returncode == 0 and err == '', err
    taken_over = json.loads(out)
    arrays, _ = inweights.build_arrays(checked(DATA_CFG))
    assert taken_over == dict(built=True, digest=digest(arrays))
    folder = pc.cache_dir(checked(dict(DATA_CFG, data_dir=str(data_dir))))
    assert sorted(os.listdir(data_dir)) == sorted([os.path.basename(folder), os.path.basename(folder) + '.lock'])
    again = ps.load_or_build(dict(DATA_CFG, data_dir=str(data_dir)), verbose=False)
    assert again.build_seconds is None and digest(vars(again)) == digest(arrays)


# -----------------------------------------------------------------------------
# concurrent dataset builders

ROUNDS = r'''
"""ROUNDS times: WORKERS forked processes released together by a barrier build one dataset
in a fresh data_dir (half of them asking for a memory map); report what each got."""
import hashlib, json, multiprocessing, os, sys
root, base, rounds, workers, cfg = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sys.path.insert(0, root)
import numpy as np
from pathstar.data import cache as pc
CFG = json.loads(cfg)  # checked by the test


def worker(data_dir, barrier, conn, mmap):
    try:
        barrier.wait(timeout=60)
        data = pc.load_or_build(dict(CFG, data_dir=data_dir), verbose=False, mmap=mmap)
        h = hashlib.sha256(b''.join(np.ascontiguousarray(getattr(data, n)).tobytes() for n in pc.ARRAYS))
        conn.send(dict(built=data.build_seconds is not None, digest=h.hexdigest(), error=None))
    except BaseException as e:
        conn.send(dict(built=None, digest=None, error=repr(e)))


ctx = multiprocessing.get_context('fork')
report = []
for r in range(rounds):
    data_dir = os.path.join(base, f'round{r}', 'data')
    barrier = ctx.Barrier(workers)
    pipes = [ctx.Pipe(duplex=False) for _ in range(workers)]
    procs = [ctx.Process(target=worker, args=(data_dir, barrier, send, i % 2 == 1))
             for i, (_, send) in enumerate(pipes)]
    for p in procs:
        p.start()
    answers = [recv.recv() if recv.poll(120) else dict(built=None, digest=None, error='no answer')
               for recv, _ in pipes]
    for p in procs:
        p.join(60)
    files = {}
    for folder, _, names in os.walk(data_dir):
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, data_dir)] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    report.append(dict(answers=answers, exitcodes=[p.exitcode for p in procs], files=files))
print(json.dumps(report))
'''


def test_eight_concurrent_builders_build_once_and_agree_in_each_of_20_rounds(tmp_path):
    rounds, workers = 20, 8
    cfg = json.dumps(checked(dict(DATA_CFG, data_dir='.')))
    run = subprocess.run([sys.executable, '-c', ROUNDS, ROOT, str(tmp_path), str(rounds), str(workers), cfg],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stderr == '', run.stderr[-3000:]
    report = json.loads(run.stdout)
    arrays, _ = inweights.build_arrays(checked(DATA_CFG))
    folder = os.path.basename(pc.cache_dir(checked(dict(DATA_CFG, data_dir='.'))))
    expected_files = {folder + '.lock'} | {f'{folder}/{n}.npy' for n in (*pc.ARRAYS, 'paths')} | {f'{folder}/meta.json'}
    assert len(report) == rounds
    for r, result in enumerate(report):
        answers = result['answers']
        assert result['exitcodes'] == [0] * workers, (r, answers)
        assert [a['error'] for a in answers] == [None] * workers, r
        assert sum(a['built'] for a in answers) == 1, r  # one build; the 7 others reused it
        assert {a['digest'] for a in answers} == {digest(arrays)}, r
        assert set(result['files']) == expected_files, r  # no temp folder, no second copy
        assert result['files'] == report[0]['files'], r  # byte-identical files in every round


# -----------------------------------------------------------------------------
# divergence and out-of-memory

def test_a_diverging_run_stops_with_exit_1_one_error_line_naming_learning_rate_and_a_failed_wandb_run(
        tmp_path, capsys):
    cfg = run_config(tmp_path, learning_rate=1e6, grad_clip=0.0, dropout=0.0, eval_interval=2,
                     checkpoint_interval=1, wandb_log=True, wandb_mode='offline')
    with pytest.raises(SystemExit) as stop:
        train.main(argv(cfg))
    assert stop.value.code == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'Traceback' not in err, err
    assert 'diverged' in errors[0] and 'learning_rate (now 1e+06)' in errors[0] and 'grad_clip (now 0)' in errors[0]
    assert not (tmp_path / 'out' / 'summary.json').exists()
    ckpt = torch.load(tmp_path / 'out' / 'ckpt.pt', map_location='cpu', weights_only=True)
    assert all(torch.isfinite(t).all() for t in ckpt['model'].values())  # never overwritten by a NaN model
    assert [code for _, code in offline_runs().values()] == [1]  # closed, marked failed


def out_of_memory(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')


def test_out_of_memory_in_a_training_step_names_batch_size_and_model_size(tmp_path, capsys):
    cfg = run_config(tmp_path, epochs=3)
    def hook(event, run):  # the step runs out of memory
        if event == 'step':
            out_of_memory()
    with pytest.raises(train.TrainingError) as err:
        train.train(cfg, hook)
    message = str(err.value)
    assert '\n' not in message
    for text in ('out of GPU memory', 'batch_size=31', 'n_layer=1', 'n_embd=32', 'gradient_accumulation_steps'):
        assert text in message
    with pytest.raises(SystemExit) as stop:
        train.main(argv(dict(cfg, overwrite_out_dir=True)), hook)  # the failed run left its best.pt
    assert stop.value.code == 1
    assert capsys.readouterr().err.splitlines()[-1] == f'error: {message}'


def test_out_of_memory_while_placing_the_model_on_the_device_gets_the_same_message(tmp_path, monkeypatch):
    monkeypatch.setattr(model.GPT, 'to', lambda self, *a, **k: out_of_memory())
    with pytest.raises(train.TrainingError, match='batch_size=31, n_layer=1, n_embd=32'):
        train.train(run_config(tmp_path))


# -----------------------------------------------------------------------------
# security: nothing read from disk is unpickled (ruff's bandit rules, in pyproject.toml, keep
# pickle, eval and exec out of the code; these tests show a payload never runs)

class Payload:
    """Pickles to a call of open(marker, 'w'): unpickling it creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, 'w')


def test_a_checkpoint_carrying_a_pickle_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / 'payload-ran'
    cfg = run_config(tmp_path, epochs=2)
    train.train(cfg)
    path = tmp_path / 'out' / 'ckpt.pt'
    ckpt = torch.load(path, weights_only=True)
    ckpt['model'] = Payload(str(marker))
    torch.save(ckpt, path)
    with zipfile.ZipFile(path) as z:  # the payload is really in there
        pickled = z.read(next(n for n in z.namelist() if n.endswith('data.pkl')))
    assert b'cio\nopen\n' in pickled  # GLOBAL io.open, then REDUCE: a call to open()
    with pytest.raises(Exception):
        train.train(dict(cfg, init_from='resume'))
    assert not marker.exists()


def test_a_dataset_cache_carrying_a_pickle_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / 'payload-ran'
    cfg = dict(DATA_CFG, data_dir=str(tmp_path / 'data'))
    folder = ps.load_or_build(cfg, verbose=False).path
    np.save(os.path.join(folder, 'train_rows.npy'), np.array([Payload(str(marker))], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        ps.load_or_build(cfg, verbose=False)
    assert not marker.exists()
