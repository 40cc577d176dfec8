"""Ctrl-C and SIGTERM before a run's first step (start-up, a compile, a long first step) stop it within
seconds, with one line and exit 128 + signal, and leave an out_dir the same command can use again."""
import os
import signal
import subprocess
import sys
import time
import weakref

import pytest

import train
from conftest import ROOT, tiny_config
from pathstar.training import checkpoint as checkpoint_files


def argv(cfg):
    return [f'--{k}={v}' for k, v in cfg.items()]


@pytest.mark.parametrize('event, signum', [('start', signal.SIGTERM), ('step', signal.SIGINT)])
def test_a_signal_before_the_first_step_stops_at_once_and_the_same_command_runs_again(tmp_path, event, signum):
    cfg = tiny_config(tmp_path, epochs=4)
    steps = []

    def hook(name, run):
        if name == 'step':
            steps.append(run.iter_num)
        if name == event and run.iter_num == 0:
            os.kill(os.getpid(), signum)
    with pytest.raises(train.Interrupted, match='before the first step: nothing new was trained') as e:
        train.train(cfg, hook)
    assert e.value.signum == signum and steps in ([], [0])
    assert not any(os.path.exists(os.path.join(cfg['out_dir'], f)) for f in checkpoint_files.RUN_FILES)
    summary = train.train(cfg)  # the same command: no "already holds an earlier run" in the way
    assert summary['iter'] == summary['max_iters']


def test_a_signal_whose_raise_a_callback_drops_still_stops_before_the_first_step(tmp_path, capsys):
    """Python prints and drops an exception raised inside a weakref callback: the signal still counts."""
    cfg, steps, refs = tiny_config(tmp_path, epochs=4), [], []

    def hook(name, run):
        steps.append(name)
        if name == 'start':
            thing = type('Thing', (), {})()
            refs.append(weakref.ref(thing, lambda ref: os.kill(os.getpid(), signal.SIGINT)))
            del thing  # the callback runs now, and the handler's KeyboardInterrupt is raised inside it
    with pytest.raises(train.Interrupted, match='before the first step') as e:
        train.train(cfg, hook)
    assert e.value.signum == signal.SIGINT and 'step' not in steps
    assert 'KeyboardInterrupt' not in capsys.readouterr().err
    assert not any(os.path.exists(os.path.join(cfg['out_dir'], f)) for f in checkpoint_files.RUN_FILES)


def test_ctrl_c_while_torch_compile_builds_the_first_step_is_one_line_and_exit_130(tmp_path):
    cfg = tiny_config(tmp_path, compile=True, epochs=2, eval_interval=1000)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    proc = subprocess.Popen([sys.executable, 'train.py', *argv(cfg)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the plan line: set up, the first step (and its compile) comes next
        if line.startswith('training ('):
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)  # a signal inside the compile may wait for its end (40 s when busy)
    if proc.returncode == 0:  # the compile and the run both finished inside the second: nothing to check
        pytest.fail('the tiny compiled run ended before the signal; make it longer')
    assert proc.returncode == 128 + signal.SIGINT, err
    assert err.strip().splitlines() == [err.strip().splitlines()[-1]] and err.startswith('stopped: '), err
    assert not any(os.path.exists(os.path.join(cfg['out_dir'], f)) for f in checkpoint_files.RUN_FILES)
    checkpoint_files.check_out_dir(dict(cfg, init_from='scratch', overwrite_out_dir=False))  # a rerun is let in


def test_ctrl_c_while_waiting_for_the_dataset_build_is_one_line_and_leaves_nothing(tmp_path):
    """A real signal during start-up: the run waits for another builder's lock on its dataset."""
    import fcntl
    from pathstar import validate
    from pathstar.data import cache
    cfg = tiny_config(tmp_path)
    folder = cache.cache_dir(validate.build_config(cfg))
    os.makedirs(tmp_path / 'data')
    with open(folder + '.lock', 'w') as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen([sys.executable, 'train.py', *argv(cfg)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
        deadline = time.time() + 120
        while not any(os.path.realpath(f'/proc/{proc.pid}/fd/{fd}') == folder + '.lock'
                      for fd in os.listdir(f'/proc/{proc.pid}/fd')):  # it has opened the lock: it waits
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT
    assert err.strip() == (f"stopped: interrupted by signal {signal.SIGINT} before the first step: nothing new "
                           f"was trained or saved; run the same command again to start it")
    assert not os.path.exists(cfg['out_dir']) and os.listdir(tmp_path / 'data') == [os.path.basename(folder) + '.lock']
