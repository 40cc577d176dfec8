"""
Hyperparameter sweeps over train.py, on wandb or on a local optuna study.

    python3 run_sweep.py --sweep_config sweep_config_minimal.yaml --count 4     # create, then run 4 trials here
    python3 run_sweep.py --sweep_config sweep_config.yaml --create_only         # prints 'Sweep created! ID: <id>'
    python3 run_sweep.py --sweep_id <id> --count 10                              # join (or resume) a sweep
    python3 run_sweep.py --sweep_id <id> --results                               # a local sweep's table, best first
    python3 run_sweep.py --sweep_config sweep_config.yaml --dry_run             # check the YAML, print the plan

The sweep YAML is wandb's format; pathstar/sweeps/space.py reads and checks all of it
before anything is created.

Two backends. 'wandb' hands the YAML to wandb's sweep server and runs wandb.agent
(below). 'local' needs no account: an optuna study in a journal file under
sweeps/<id>/ (or any optuna storage URL, e.g. postgresql://, for many machines)
hands out trials to any number of agents; pathstar/sweeps/local.py runs them (with the train function
it is handed) and storage.py opens (and checks) the storage. Either way each trial calls
train.train() in the agent's process.
"""
import os
import re
import signal
import sys

import configurator
import train
from configurator import UserError
from pathstar import validate
from pathstar.cli import ArgumentParser
from pathstar.sweeps.local import (SWEEPS_DIR, Stopped, create_local_sweep, open_local_sweep, print_results,
                                   release_memory, run_local_agent)
from pathstar.sweeps.space import check_combinations, check_sweep, load_sweep_file, print_plan
from pathstar.sweeps.storage import first_line, hide_password


# -----------------------------------------------------------------------------
# the wandb backend

def run_wandb(args, sweep, train_fn):
    import wandb
    if sweep is not None:
        config = {key: value for key, value in sweep.items() if value is not None}
        print("creating the sweep on wandb...")
        try:
            sweep_id = wandb.sweep(config, project=args.project, entity=args.entity)
        except Exception as e:
            raise UserError(f"wandb could not create the sweep ({first_line(e)}); log in with `wandb login` "
                              f"or use --backend local") from None
        print(f"Sweep created! ID: {sweep_id}")
        print(f"Sweep path: {args.entity or wandb_entity(wandb)}/{args.project}/{sweep_id}")
        if args.create_only:
            return 0
    else:
        sweep_id = args.sweep_id

    def trial():
        wandb_trial(sweep_id, args.project, args.entity, train_fn)
    try:  # errors inside a trial are the agent's to report; these are about reaching the sweep at all
        wandb.agent(sweep_id, function=trial, count=args.count, project=args.project, entity=args.entity)
    except Exception as e:
        raise UserError(f"wandb agent for sweep {sweep_id} failed ({first_line(e)}); check `wandb login`, "
                          f"--project and --entity") from None
    return 0


def wandb_entity(wandb):
    try:
        return wandb.Api().default_entity
    except Exception:
        return '<your entity>'


def wandb_trial(sweep_id, project, entity, train_fn):
    """One run handed out by wandb.agent: its parameters are in the run's config."""
    import wandb
    run = wandb.init()
    overrides = {key: value for key, value in dict(run.config).items() if not key.startswith('_')}
    overrides.update(wandb_log=True, wandb_project=project, wandb_entity=entity or '',
                     out_dir=os.path.join(SWEEPS_DIR, sweep_id, run.id))
    # train.start_wandb adopts this run (adding the full config to it), logs every metric and the
    # summary to it, and finishes it; wandb's sweep server reads the metric from that summary
    try:
        train_fn(validate.build_config(overrides))
    finally:
        release_memory()


# -----------------------------------------------------------------------------
# the command line

def parse_args(argv):
    p = ArgumentParser(description="Create, join and inspect hyperparameter sweeps over train.py.")
    p.add_argument('--sweep_config', help="sweep YAML: create a sweep from it (then run trials unless --create_only)")
    p.add_argument('--sweep_id', help="join this sweep and run trials (a crashed agent rejoins the same way)")
    p.add_argument('--project', default='pathstar_sweep', help="wandb project (default: pathstar_sweep)")
    p.add_argument('--entity', default=None, help="wandb entity (default: yours)")
    p.add_argument('--count', type=int, default=None, help="trials to run in this agent (default: until done)")
    p.add_argument('--create_only', action='store_true', help="create the sweep, print its id, run nothing")
    p.add_argument('--backend', choices=('auto', 'wandb', 'local'), default='auto',
                   help="auto (default): wandb when logged in, else local")
    p.add_argument('--storage', default=None, help="local backend: journal file path or optuna RDB URL "
                                                   "(default: sweeps/<id>/journal.log)")
    p.add_argument('--dry_run', action='store_true', help="check --sweep_config and print the plan; creates nothing")
    p.add_argument('--results', action='store_true', help="print a local sweep's trials, best first")
    args = p.parse_args(argv)
    if args.sweep_config and args.sweep_id:
        raise UserError("give --sweep_config (create a sweep) or --sweep_id (join one), not both")
    if not args.sweep_config and not args.sweep_id:
        raise UserError("give --sweep_config to create a sweep or --sweep_id to join one (see --help)")
    if (args.dry_run or args.create_only) and not args.sweep_config:
        raise UserError(f"--{'dry_run' if args.dry_run else 'create_only'} needs --sweep_config")
    if args.results and not args.sweep_id:
        raise UserError("--results needs --sweep_id")
    if args.count is not None and args.count < 1:
        raise UserError(f"--count: must be >= 1, got {args.count}")
    if args.storage and args.backend == 'wandb':
        raise UserError("--storage is for the local backend; wandb keeps its sweeps on its server")
    if args.storage is not None:
        check_storage(args.storage, joining=bool(args.sweep_id))
    return args


def check_storage(url, joining):
    """--storage refused before anything is written: empty, a database in memory (no other agent could
    ever join it), or, to join, an SQLite file that does not exist (opening it would create it empty)."""
    if not url.strip():
        raise UserError("--storage '': name a journal file or a database URL, or leave --storage out to keep the "
                        "sweep in sweeps/<id>/journal.log")
    sqlite = re.fullmatch(r'sqlite:///?(.*)', url.strip())
    if sqlite and sqlite.group(1) in ('', ':memory:'):
        raise UserError(f"--storage {url}: an SQLite database in memory dies with this process, so no agent could "
                        f"join the sweep; name a file: sqlite:///path/to/sweeps.db")
    if sqlite and joining and not os.path.isfile(sqlite.group(1)):
        raise UserError(f"--storage {url}: no database file {sqlite.group(1)} to join; check the path, or create the "
                        f"sweep there first with --sweep_config")


def choose_backend(args):
    if args.backend != 'auto':
        return args.backend
    if args.storage or args.results:
        return 'local'
    if args.sweep_id and os.path.isfile(os.path.join(SWEEPS_DIR, args.sweep_id, 'journal.log')):
        return 'local'
    if configurator.logged_in_to_wandb():
        print("backend: wandb (logged in)")
        return 'wandb'
    print("backend: local (not logged in to wandb: no WANDB_API_KEY and no api.wandb.ai entry in ~/.netrc)")
    return 'local'


def install_stop_handlers():
    def stop(signum, frame):
        raise Stopped(signum)
    return {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}


def main(argv, train_fn=None):
    args = parse_args(argv)
    sweep = None
    if args.sweep_config:
        sweep = check_sweep(load_sweep_file(args.sweep_config))
        checked = check_combinations(sweep['parameters'])
        if args.dry_run:
            print_plan(sweep, args.sweep_config, checked)
            return 0
    backend = choose_backend(args)
    if backend == 'wandb':
        if args.results:
            raise UserError("--results reads local sweeps; a wandb sweep's results are on its dashboard")
        return run_wandb(args, sweep, train_fn or train.train)
    sweep_id = args.sweep_id
    if args.results:
        study, storage, sweep = open_local_sweep(sweep_id, args.storage)
        print_results(study, storage, sweep)
        return 0
    if sweep is not None:
        sweep_id = create_local_sweep(sweep, args.storage)
    join = f"python3 run_sweep.py --sweep_id {sweep_id}" + (f" --storage {hide_password(args.storage)}"
                                                            if args.storage else '')
    if sweep is not None:
        print(f"Sweep created! ID: {sweep_id}")
        print(f"join it with: {join}")
        if args.create_only:
            return 0
    handlers = install_stop_handlers()
    try:
        return run_local_agent(sweep_id, args.storage, args.count, args.project, args.entity,
                               train_fn or train.train)
    except KeyboardInterrupt as e:  # Stopped, or a Ctrl-C that came before our handlers
        signum = getattr(e, 'signum', signal.SIGINT)
        print(f"stopped by signal {signum}; rejoin with: {join}", file=sys.stderr)
        return 128 + signum
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)


if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)  # agents write to log files that people tail -f
    sys.exit(configurator.exit_on_user_error(lambda: main(sys.argv[1:])))
