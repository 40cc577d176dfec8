"""
The local backend: an optuna study, in a journal file or a database (storage.py opens either),
that hands out trials to any number of agents. run_sweep.py is its command line.

    sweep_id = local.create_local_sweep(sweep, storage_url)     # sweep: a checked space.check_sweep sweep
    study, storage, sweep = local.open_local_sweep(sweep_id, storage_url)
    exit_code = local.run_local_agent(sweep_id, storage_url, count, project, entity, train.train)
    local.print_results(study, storage, sweep)

Each trial calls train.train() in this process with out_dir sweeps/<id>/trial_<n>. Agents claim
queued trials (grid points, retries) atomically; a trial left RUNNING by a dead agent is failed and
queued again. A database has optuna's own trial heartbeat; the journal file has none, so it gets a
home-made one (storage.start_heartbeat).
"""
import gc
import math
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import time
import traceback

import yaml

from pathstar import validate
from pathstar.errors import UserError
from pathstar.sweeps.space import format_value, grid_points, print_table, swept
from pathstar.sweeps.storage import (MACHINE, beat, first_line, heartbeat_times, hide_password, is_abandoned,
                                     open_storage, optuna_heartbeat, start_heartbeat)
from pathstar.training.checkpoint import run_name
from pathstar.training.device import Interrupted

SWEEPS_DIR = 'sweeps'     # in the current directory: sweeps/<id>/{sweep.yaml,journal.log,trial_<n>/}
MAX_ATTEMPTS = 3          # an interrupted or abandoned trial is queued again, up to this many attempts
MAX_FAILS_IN_A_ROW = 5    # an agent whose every trial fails (no GPU, bad path) stops instead of spinning
STATE_NAMES = dict(COMPLETE='FINISHED', FAIL='FAILED', RUNNING='RUNNING', WAITING='QUEUED', PRUNED='PRUNED')


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM outside train() (which handles them itself): the agent stops."""

    def __init__(self, signum):
        super().__init__(f"signal {signum}")
        self.signum = signum


# -----------------------------------------------------------------------------
# creating and opening a sweep

def make_sampler(method):
    import optuna
    if method == 'bayes':  # constant_liar keeps parallel agents from proposing the same point
        return optuna.samplers.TPESampler(constant_liar=True)
    return optuna.samplers.RandomSampler()  # a grid's points are all queued, so it never samples them


def create_local_sweep(sweep, storage_url):
    """A new sweep's id. Its folder sweeps/<id>/ holds sweep.yaml, a copy of the config for people
    to read, and the journal unless storage_url names another file or a database. On any failure
    nothing it made is left behind."""
    import optuna
    while True:
        sweep_id = secrets.token_hex(4)
        folder = os.path.join(SWEEPS_DIR, sweep_id)
        if not os.path.exists(folder):
            break
    journal = storage_url or os.path.join(folder, 'journal.log')
    new_paths = [path for path in (SWEEPS_DIR, folder, journal) if '://' not in path and not os.path.exists(path)]
    try:
        if storage_url:  # checked before anything is made
            storage = open_storage(storage_url, create=True, stale_trial_callback=retry_stale_trial)
        os.makedirs(folder)
        if not storage_url:
            storage = open_storage(journal, create=True)
        goal = sweep['metric']['goal'] if sweep['metric'] else 'minimize'
        study = optuna.create_study(study_name=sweep_id, storage=storage, direction=goal,
                                    sampler=make_sampler(sweep['method']))
        study.set_user_attr('sweep', sweep)  # joiners read the config from here: the id is all they need
        if sweep['method'] == 'grid':
            for point in grid_points(sweep['parameters']):
                study.enqueue_trial(point)  # agents pop queued trials atomically: no point runs twice
        with open(os.path.join(folder, 'sweep.yaml'), 'w') as f:
            yaml.safe_dump(sweep, f, sort_keys=False)
    except BaseException:
        for path in reversed(new_paths):
            if os.path.isfile(path):
                os.remove(path)
            elif path == folder:
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.isdir(path) and not os.listdir(path):
                os.rmdir(path)  # sweeps/, unless another sweep was created in it meanwhile
        raise
    return sweep_id


def open_local_sweep(sweep_id, storage_url):
    """(study, storage, sweep) of an existing local sweep."""
    import optuna
    if not re.fullmatch(r'[A-Za-z0-9_-]+', sweep_id):
        raise UserError(f"--sweep_id: expected letters, digits, - or _, got {sweep_id!r}")
    if storage_url is None:
        storage_url = os.path.join(SWEEPS_DIR, sweep_id, 'journal.log')
        if not os.path.isfile(storage_url):
            raise UserError(f"sweep {sweep_id}: {storage_url} does not exist; run from the directory the sweep "
                              f"was created in, or pass the --storage it was created with")
    storage = open_storage(storage_url, stale_trial_callback=retry_stale_trial)
    try:
        sweep = storage.get_study_user_attrs(storage.get_study_id_from_name(sweep_id)).get('sweep')
    except KeyError:
        raise UserError(f"sweep {sweep_id}: not found in {hide_password(storage_url)}") from None
    if sweep is None:
        raise UserError(f"sweep {sweep_id}: the optuna study has no sweep config; it was not made by run_sweep.py")
    study = optuna.load_study(study_name=sweep_id, storage=storage, sampler=make_sampler(sweep['method']))
    return study, storage, sweep


def warn_if_edited(sweep_id, sweep):
    """sweeps/<id>/sweep.yaml is a copy for reading: the study's own copy of the config is the one
    used. Say so when the file was edited, rather than seem to run the edit."""
    path = os.path.join(SWEEPS_DIR, sweep_id, 'sweep.yaml')
    if not os.path.exists(path):  # e.g. on a machine that joins a database sweep made elsewhere
        return
    try:
        with open(path) as f:
            on_disk = yaml.safe_load(f)
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
        on_disk = None
    if on_disk != sweep:
        print(f"warning: {path} was changed after the sweep was created; the config stored in the sweep is the "
              f"one used. To run the changed config, create a new sweep: python3 run_sweep.py --sweep_config "
              f"{path}", file=sys.stderr)


# -----------------------------------------------------------------------------
# claiming trials, heartbeats, retries

def trial_id(storage, study, number):
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


def claim_queued(study, storage):
    """The first queued trial that this agent wins, or None: retries of interrupted or abandoned trials
    first (they resume a checkpoint, and a rejoined agent finishes what was stopped), then grid points."""
    import optuna
    from optuna.trial import TrialState
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for frozen in sorted(waiting, key=lambda t: ('retry_of' not in t.user_attrs, t.number)):
        tid = trial_id(storage, study, frozen.number)
        if optuna_heartbeat(storage):  # beat first: optuna never ages a RUNNING trial that has no beat
            storage.record_heartbeat(tid)
        try:
            if storage.set_trial_state_values(tid, TrialState.RUNNING):  # False: another agent won it
                return optuna.trial.Trial(study, tid)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def next_trial(study, storage, sweep):
    """Claim a trial and fix its parameters; None when a grid has no point left."""
    trial = claim_queued(study, storage)
    if trial is None and sweep['method'] != 'grid':
        trial = study.ask()
    if trial is None:
        return None
    tid = trial_id(storage, study, trial.number)
    storage.set_trial_user_attr(tid, 'agent', dict(machine=MACHINE, pid=os.getpid()))
    beat(storage, tid)
    for name, spec in swept(sweep['parameters']).items():
        if 'values' in spec:
            trial.suggest_categorical(name, spec['values'])
        elif spec['distribution'] == 'int_uniform':
            trial.suggest_int(name, spec['min'], spec['max'])
        else:
            trial.suggest_float(name, spec['min'], spec['max'], log=spec['distribution'] == 'log_uniform_values')
    return trial


def fail_abandoned_trials(study, storage):
    """Mark FAILED the trials left RUNNING by dead agents and queue each to run again."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState
    if optuna_heartbeat(storage):
        return optuna.storages.fail_stale_trials(study)  # calls retry_stale_trial for each
    now = time.time()
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_abandoned(frozen, now):
            continue
        tid = trial_id(storage, study, frozen.number)
        try:
            storage.set_trial_user_attr(tid, 'error', 'its agent died (no heartbeat)')
            storage.set_trial_state_values(tid, TrialState.FAIL)  # raises for all agents but one
        except UpdateFinishedTrialError:
            continue
        print(f"trial {frozen.number}: its agent {frozen.user_attrs.get('agent')} is gone; marked FAILED")
        queue_retry(study, storage.get_trial(tid))


def queue_retry(study, frozen, optuna_retry=None):
    """Queue the same parameters again: the failure was the agent's, not the config's. The retry resumes
    frozen's checkpoint. optuna_retry, optuna's own retry callback, also notes the retry history."""
    attempt = frozen.user_attrs.get('attempt', 1)
    if attempt >= MAX_ATTEMPTS:
        print(f"trial {frozen.number}: not queued again, it was attempt {attempt} of {MAX_ATTEMPTS}")
        return
    attrs = dict(attempt=attempt + 1, retry_of=frozen.number, resume_from=frozen.user_attrs.get('out_dir'))
    if optuna_retry:
        frozen.user_attrs = attrs  # what it copies to the retry, with the params and their distributions
        optuna_retry(study, frozen)
    else:
        study.enqueue_trial(frozen.params or frozen.system_attrs.get('fixed_params', {}), user_attrs=attrs)
    print(f"trial {frozen.number}: queued again (attempt {attempt + 1}); the next agent to take a trial runs it")


def retry_stale_trial(study, frozen):
    """Called by optuna's fail_stale_trials with a copy of each database trial it failed."""
    import optuna.storages as storages
    print(f"trial {frozen.number}: its agent {frozen.user_attrs.get('agent')} stopped its heartbeat; marked FAILED")
    retry = getattr(storages, 'RetryHeartbeatStaleTrialCallback', None) or storages.RetryFailedTrialCallback
    queue_retry(study, frozen, retry())  # no max_retry: our attempt count, which signals also add to, decides


# -----------------------------------------------------------------------------
# running trials

def trial_config(sweep, params, out_dir, project, entity, number):
    overrides = {name: spec['value'] for name, spec in sweep['parameters'].items() if 'value' in spec}
    overrides.update(params, out_dir=out_dir)
    cfg = validate.build_config(overrides)
    if 'wandb_project' not in sweep['parameters']:
        cfg['wandb_project'] = project
    if entity and 'wandb_entity' not in sweep['parameters']:
        cfg['wandb_entity'] = entity
    if not cfg['wandb_run_name']:
        cfg['wandb_run_name'] = f"t{number}_{run_name(cfg)}"
    return cfg


def resume_previous_attempt(cfg, previous_dir):
    """A retried trial continues from its last attempt's checkpoint, when this machine has it."""
    ckpt = os.path.join(previous_dir, 'ckpt.pt') if previous_dir else ''
    if os.path.isfile(ckpt):
        os.makedirs(cfg['out_dir'], exist_ok=True)
        shutil.copy2(ckpt, os.path.join(cfg['out_dir'], 'ckpt.pt'))
        cfg['init_from'] = 'resume'
        print(f"resuming from {ckpt}")


def objective(summary, metric):
    if metric is None:
        return 0.0  # optuna needs a number to finish a trial; with no metric it means nothing
    name = metric['name']
    if name not in summary:
        raise ValueError(f"metric {name!r} is not in the run's summary; it has: {', '.join(sorted(summary))}")
    value = summary[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"metric {name!r} is {value!r}, not a finite number")
    return float(value)


def finish(study, trial, value=None, error=None):
    """Tell the study how a trial ended; False if another agent had already failed it (our
    heartbeat looked stale to it), in which case the result stays in the trial folder only."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState
    state = TrialState.COMPLETE if error is None else TrialState.FAIL
    try:
        if error is not None:
            trial.set_user_attr('error', error[:300])
        if study.tell(trial, value, state=state, skip_if_finished=True).state == state:
            return True
    except UpdateFinishedTrialError:
        pass
    print(f"warning: trial {trial.number} had been marked failed by another agent; its result is only in "
          f"its folder", file=sys.stderr)
    return False


def run_trial(study, storage, trial, sweep, sweep_id, project, entity, train):
    """Train one trial in this process with train(cfg) -> summary (train.train, or a test's stand-in).
    Returns True if it finished; raises Stopped on a signal."""
    out_dir = os.path.join(SWEEPS_DIR, sweep_id, f'trial_{trial.number}')
    trial.set_user_attr('out_dir', out_dir)
    print(f"\n=== sweep {sweep_id} trial {trial.number}: "
          f"{' '.join(f'{k}={format_value(v)}' for k, v in trial.params.items()) or '(fixed values)'} -> {out_dir}")
    stop_beat = start_heartbeat(storage, trial_id(storage, study, trial.number))
    try:
        cfg = trial_config(sweep, trial.params, out_dir, project, entity, trial.number)
        resume_previous_attempt(cfg, trial.user_attrs.get('resume_from'))
        value = objective(train(cfg), sweep['metric'])
    except KeyboardInterrupt as e:  # Stopped, a bare Ctrl-C
        stop_signal(study, storage, trial, getattr(e, 'signum', signal.SIGINT))
    except Interrupted as e:  # train saved a checkpoint first; the retry resumes from it
        stop_signal(study, storage, trial, e.signum)
    except Exception as e:
        traceback.print_exc()
        finish(study, trial, error=first_line(e))
        print(f"trial {trial.number} FAILED ({first_line(e)}); going on with the next trial")
        return False
    finally:
        stop_beat.set()
    finish(study, trial, value=value)
    shown = f"{sweep['metric']['name']} = {value:.5g}" if sweep['metric'] else "no metric"
    print(f"trial {trial.number} finished: {shown}")
    return True


def release_memory():
    """Free what the last trial left before the next one starts: its model, optimizer and data sit in
    reference cycles that only the garbage collector frees, and CUDA keeps freed blocks in its cache."""
    gc.collect()
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def stop_signal(study, storage, trial, signum):
    if finish(study, trial, error=f"interrupted by signal {signum}"):
        queue_retry(study, storage.get_trial(trial_id(storage, study, trial.number)))
    raise Stopped(signum)


def run_local_agent(sweep_id, storage_url, count, project, entity, train):
    """Run trials until count is reached, a grid has nothing queued or running, or a signal arrives.
    Returns the exit code."""
    from optuna.trial import TrialState
    study, storage, sweep = open_local_sweep(sweep_id, storage_url)
    warn_if_edited(sweep_id, sweep)
    until = f"{count} trials" if count else ("the grid is done" if sweep['method'] == 'grid' else "stopped (Ctrl-C)")
    print(f"agent {socket.gethostname()}:{os.getpid()} on sweep {sweep_id} ({sweep['method']}): running until {until}")
    old_group = os.environ.get('WANDB_RUN_GROUP')
    os.environ['WANDB_RUN_GROUP'] = sweep_id  # trials with wandb_log=True are grouped by sweep
    ran, finished, fails_in_a_row, waited = 0, 0, 0, False
    try:
        while count is None or ran < count:
            fail_abandoned_trials(study, storage)
            trial = next_trial(study, storage, sweep)
            if trial is None and study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if not waited:  # a running trial whose agent dies is queued again: stay to run it
                    print(f"sweep {sweep_id}: no grid point queued; waiting while other agents' trials run")
                waited = True
                time.sleep(min(heartbeat_times()[0], 10))
                continue
            if trial is None:
                print(f"sweep {sweep_id}: no grid point left to run")
                break
            ok = run_trial(study, storage, trial, sweep, sweep_id, project, entity, train)
            release_memory()
            ran, finished = ran + 1, finished + ok
            fails_in_a_row = 0 if ok else fails_in_a_row + 1
            if fails_in_a_row == MAX_FAILS_IN_A_ROW:
                print(f"stopping: {fails_in_a_row} trials in a row failed; fix the cause, then rejoin", file=sys.stderr)
                break
    finally:
        if old_group is None:
            del os.environ['WANDB_RUN_GROUP']
        else:
            os.environ['WANDB_RUN_GROUP'] = old_group
    print(f"\nagent done: {finished} of {ran} trials finished")
    print_results(study, storage, sweep, limit=20)
    # non-zero when something is wrong with every trial (or the agent gave up), so scripts notice
    return 1 if (ran and not finished) or fails_in_a_row == MAX_FAILS_IN_A_ROW else 0


# -----------------------------------------------------------------------------
# the results table

def best_first(trials, metric):
    """Finished trials best first, then running ones, then the rest, each by number."""
    from optuna.trial import TrialState
    sign = -1 if metric and metric['goal'] == 'maximize' else 1

    def key(t):
        if t.state == TrialState.COMPLETE:
            return 0, sign * t.value, t.number
        return (1 if t.state == TrialState.RUNNING else 2), 0, t.number
    return sorted(trials, key=key)


def print_results(study, storage, sweep, limit=None):
    metric, names = sweep['metric'], list(swept(sweep['parameters']))
    now, journal = time.time(), not optuna_heartbeat(storage)  # is_abandoned reads the journal's heartbeat
    trials = best_first(study.get_trials(deepcopy=False), metric)
    counts = ', '.join(f"{sum(t.state.name == s for t in trials)} {shown.lower()}"
                       for s, shown in STATE_NAMES.items() if any(t.state.name == s for t in trials))
    goal = f"{metric['name']} ({metric['goal']}), best first" if metric else "no metric"
    print(f"sweep {study.study_name}: {sweep['method']}, {goal}; {counts or 'no trials'}")
    rows = []
    for t in trials[:limit]:
        params = t.params or t.system_attrs.get('fixed_params', {})  # a queued grid point has no params yet
        value = format_value(t.value) if metric and t.state.name == 'COMPLETE' else '-'
        note = t.user_attrs.get('error') or (
            'its agent died (no heartbeat)' if t.state.name == 'FAIL' else  # optuna's fail_stale_trials: no note
            'its agent is gone; the next agent to join re-runs it' if t.state.name == 'RUNNING' and journal
            and is_abandoned(t, now) else
            f"retry of {t.user_attrs['retry_of']}" if 'retry_of' in t.user_attrs else '')
        rows.append([t.number, STATE_NAMES[t.state.name], value, *(format_value(params.get(n, '-')) for n in names),
                     note[:60]])
    if rows:
        print_table(['trial', 'state', metric['name'] if metric else 'metric', *names, 'note'], rows)
    if limit and len(trials) > limit:
        print(f"... {len(trials) - limit} more: python3 run_sweep.py --sweep_id {study.study_name} --results")
