"""Agents on many machines share a sweep through PostgreSQL (--storage postgresql://...): a throwaway server
in a temp dir, two agents, one killed with SIGKILL mid-trial; optuna's heartbeat fails its trial and the
survivor runs it again. Skipped only where the PostgreSQL server's binaries are not on PATH."""
import collections
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psycopg  # noqa: F401  (the driver optuna's storage uses: requirements-dev.txt)
import pytest
import yaml

import run_sweep
from pathstar.sweeps import local as sweep_local
from conftest import ROOT

RUN_SWEEP = os.path.join(ROOT, 'run_sweep.py')
# trial 0 (600 epochs, a second or two) is the one killed; the others train in well under a second
GRID = dict(epochs={'values': [600, 3, 4]}, graph_d={'value': 4}, graph_l={'value': 3}, n_layer={'value': 1},
            n_head={'value': 2}, n_embd={'value': 32}, num_pause_tokens={'value': 1}, device={'value': 'cpu'},
            graph_holdout_percentage={'value': 0.25}, eval_interval={'value': 50}, log_interval={'value': 1000})


def server_user():
    """PostgreSQL refuses to run as root: as root, run it as the postgres user (or nobody)."""
    if os.geteuid() != 0:
        return {}
    for name in ('postgres', 'nobody'):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
    pytest.skip("running as root, and there is no postgres or nobody user to run PostgreSQL as")


@pytest.fixture
def postgres():
    """The URL of a new PostgreSQL server that listens on a unix socket only; stopped and deleted after."""
    if not (shutil.which('initdb') and shutil.which('pg_ctl')):
        pytest.skip("PostgreSQL's initdb and pg_ctl are not on PATH (e.g. apt-get install postgresql, "
                    "then put /usr/lib/postgresql/<version>/bin on PATH)")
    as_user = server_user()
    # not under tmp_path, which only the user running pytest may enter; and a socket's path must stay short
    home = tempfile.mkdtemp(prefix='pathstar-pg-')
    if as_user:
        os.chown(home, as_user['user'], as_user['group'])
    data, log = os.path.join(home, 'data'), os.path.join(home, 'server.log')

    def pg_run(*args):
        return subprocess.run(args, cwd=home, capture_output=True, text=True, timeout=60, **as_user)
    try:
        done = pg_run('initdb', '-D', data, '-U', 'postgres', '--auth=trust', '--no-sync')
        assert done.returncode == 0, done.stdout + done.stderr
        options = f"-k {shlex.quote(home)} -c listen_addresses='' -c fsync=off"
        done = pg_run('pg_ctl', '-D', data, '-l', log, '-o', options, '-w', '-t', '30', 'start')
        assert done.returncode == 0, done.stdout + done.stderr + (open(log).read() if os.path.exists(log) else '')
        yield f"postgresql://postgres@/postgres?host={home}"  # run_sweep names the driver, psycopg
    finally:
        try:
            if os.path.isdir(data):
                pg_run('pg_ctl', '-D', data, '-m', 'immediate', '-w', 'stop')
        finally:
            shutil.rmtree(home, ignore_errors=True)


def agent_env(tmp_path):
    """Offline wandb in tmp_path, one torch thread per agent, a 1 s heartbeat that goes stale after 4 s."""
    env = dict(os.environ, WANDB_MODE='offline', WANDB_SILENT='true', WANDB_DIR=str(tmp_path / 'wandb_home'),
               HOME=str(tmp_path), OMP_NUM_THREADS='1', PATHSTAR_HEARTBEAT_S='1', PATHSTAR_GRACE_S='4')
    env.pop('WANDB_API_KEY', None)
    return env


def test_a_trial_whose_agent_is_killed_is_failed_and_run_again_by_the_other_agent(postgres, tmp_path, capsys):
    (tmp_path / 'grid.yaml').write_text(yaml.safe_dump(dict(
        method='grid', metric=dict(name='val/loss/overall', goal='minimize'),
        parameters=dict(GRID, data_dir={'value': str(tmp_path / 'data')}))))
    created = subprocess.run([sys.executable, RUN_SWEEP, '--sweep_config', 'grid.yaml', '--create_only',
                              '--storage', postgres], cwd=tmp_path, env=agent_env(tmp_path),
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    sweep_id = created.stdout.split('Sweep created! ID: ')[1].split()[0]
    study, _, _ = sweep_local.open_local_sweep(sweep_id, postgres)
    assert [t.state.name for t in study.get_trials()] == ['WAITING'] * 3

    agents, logs = {}, {}  # by pid
    try:
        for k in range(2):
            path = tmp_path / f'agent_{k}.log'
            with open(path, 'w') as log:
                agent = subprocess.Popen([sys.executable, RUN_SWEEP, '--sweep_id', sweep_id, '--storage', postgres],
                                         cwd=tmp_path, env=agent_env(tmp_path), stdout=log, stderr=subprocess.STDOUT)
            agents[agent.pid], logs[agent.pid] = agent, path
        # whichever agent claimed trial 0 is killed once that trial has trained and saved a checkpoint
        ckpt = tmp_path / 'sweeps' / sweep_id / 'trial_0' / 'ckpt.pt'
        deadline = time.time() + 60
        while not ckpt.exists():
            assert time.time() < deadline and all(a.poll() is None for a in agents.values()), read(logs)
            time.sleep(0.1)
        victim = agents.pop(study.trials[0].user_attrs['agent']['pid'])
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
        assert study.trials[0].state.name == 'RUNNING'
        (survivor,) = agents.values()
        assert survivor.wait(timeout=120) == 0, read(logs)
    finally:
        for agent in agents.values():
            if agent.poll() is None:
                agent.kill()
                agent.wait()

    out = logs[survivor.pid].read_text()
    assert "trial 0: its agent" in out and "stopped its heartbeat; marked FAILED" in out
    assert f"resuming from sweeps/{sweep_id}/trial_0/ckpt.pt" in out
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ['FAIL', 'COMPLETE', 'COMPLETE', 'COMPLETE']
    done = [t for t in trials if t.state.name == 'COMPLETE']
    assert collections.Counter(t.params['epochs'] for t in done) == {600: 1, 3: 1, 4: 1}  # each point once
    assert all(t.user_attrs['agent']['pid'] == survivor.pid for t in done)
    retry = trials[3]
    assert retry.params == trials[0].params and retry.user_attrs['attempt'] == 2
    assert retry.user_attrs['retry_of'] == 0 and retry.system_attrs['failed_trial'] == 0  # ours and optuna's
    assert retry.user_attrs['resume_from'] == os.path.join('sweeps', sweep_id, 'trial_0')

    capsys.readouterr()
    assert run_sweep.main(['--sweep_id', sweep_id, '--storage', postgres, '--results']) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows['0'].split()[1] == 'FAILED' and rows['0'].endswith('its agent died (no heartbeat)')
    assert rows['3'].split()[1] == 'FINISHED' and rows['3'].endswith('retry of 0')


def read(logs):
    return '\n'.join(f"--- agent {pid}:\n{path.read_text()}" for pid, path in logs.items())


@pytest.mark.parametrize('env, message', [
    ({}, 'its driver, python module psycopg, is not installed; pip install "psycopg[binary]"'),
    ({'PATHSTAR_GRACE_S': '30'}, 'PATHSTAR_HEARTBEAT_S=60, PATHSTAR_GRACE_S=30: both must be whole seconds > 0, '
                                 'the grace period longer than the heartbeat interval'),
    ({'PATHSTAR_HEARTBEAT_S': '0.5'}, 'PATHSTAR_HEARTBEAT_S=0.5, PATHSTAR_GRACE_S=600: both must be whole'),
], ids=['no_driver', 'grace_too_short', 'not_whole_seconds'])
def test_no_driver_or_bad_heartbeat_settings_are_one_line_and_exit_2(env, message, tmp_path):
    for name in ('psycopg', 'psycopg2'):  # the drivers, as when they are not installed
        (tmp_path / 'hide' / name).mkdir(parents=True)
        (tmp_path / 'hide' / name / '__init__.py').write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n")
    env = dict({k: v for k, v in agent_env(tmp_path).items() if not k.startswith('PATHSTAR_')},
               PYTHONPATH=str(tmp_path / 'hide'), **env)
    result = subprocess.run([sys.executable, RUN_SWEEP, '--sweep_id', 'abc', '--storage', 'postgresql://me@db/sweeps'],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count('\n') == 1, result.stderr
    assert result.stderr.startswith('error: ') and message in result.stderr
