"""
Where a local sweep lives: opening its optuna storage (a journal file, or a database named by an
optuna RDB URL), and the signs of life agents leave in it (machine, pid, heartbeat). Nothing here
imports optuna before it is used.

    storage = sweep_storage.open_storage('sweeps/<id>/journal.log')
    storage = sweep_storage.open_storage('postgresql://user@host/db', stale_trial_callback=retry)
    stop = sweep_storage.start_heartbeat(storage, trial_id)   # while the trial trains; then stop.set()

"""
import importlib.util
import os
import re
import socket
import threading
import time
import warnings

from configurator import ConfigError

HEARTBEAT_S = 60          # a running trial stamps its heartbeat this often (env PATHSTAR_HEARTBEAT_S)...
STALE_S = 600             # ...and counts as abandoned when the stamp is older than this (env PATHSTAR_GRACE_S)


def open_storage(url, stale_trial_callback=None):
    """A journal file (a path) or an optuna RDB URL such as postgresql://user:pw@host/db.
    stale_trial_callback(study, frozen): what a database does with each trial whose heartbeat went stale."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happens
    warnings.filterwarnings('ignore', category=optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
    warnings.filterwarnings('ignore', message='Heartbeat of storage is supposed')  # ...and meant for study.optimize
    interval, grace = heartbeat_times()
    if '://' not in url:
        from optuna.storages.journal import JournalFileBackend
        return optuna.storages.JournalStorage(JournalFileBackend(os.path.abspath(url)))
    if re.match('postgres(ql)?://', url):  # name the driver: SQLAlchemy's default changed (psycopg2, then psycopg)
        only_2 = importlib.util.find_spec('psycopg2') and not importlib.util.find_spec('psycopg')
        url = re.sub('^postgres(ql)?://', f"postgresql+{'psycopg2' if only_2 else 'psycopg'}://", url)
    renamed = hasattr(optuna.storages, 'RetryHeartbeatStaleTrialCallback')  # optuna >= 4.9
    callback = {'heartbeat_stale_trial_callback' if renamed else 'failed_trial_callback': stale_trial_callback}
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=interval, grace_period=grace, **callback)
    except ImportError as e:  # no database driver
        name = e.name or getattr(e.__cause__, 'name', None) or 'psycopg'
        pip = {'psycopg': '"psycopg[binary]"', 'psycopg2': 'psycopg2-binary', 'MySQLdb': 'mysqlclient'}.get(name, name)
        raise ConfigError(f"--storage {hide_password(url)}: its driver, python module {name}, is not installed; "
                          f"pip install {pip}") from None
    except Exception as e:  # a refused connection, a wrong password: one line, not a page of sqlalchemy
        raise ConfigError(f"--storage: cannot open {hide_password(url)}: {first_line(e)}") from None


def heartbeat_times():
    """(interval, grace period) in seconds: HEARTBEAT_S and STALE_S unless the environment says otherwise."""
    times = [os.environ.get(var, '').strip() or default
             for var, default in (('PATHSTAR_HEARTBEAT_S', HEARTBEAT_S), ('PATHSTAR_GRACE_S', STALE_S))]
    if not all(str(t).isdigit() and int(t) > 0 for t in times) or int(times[1]) <= int(times[0]):
        raise ConfigError(f"PATHSTAR_HEARTBEAT_S={times[0]}, PATHSTAR_GRACE_S={times[1]}: both must be whole "
                          f"seconds > 0, the grace period longer than the heartbeat interval")
    return int(times[0]), int(times[1])


def optuna_heartbeat(storage):
    """A database has optuna's heartbeat (open_storage turns it on); the journal has only ours."""
    return getattr(storage, 'get_heartbeat_interval', lambda: None)() is not None


def hide_password(url):
    return re.sub(r'//([^:/@]+):[^@]*@', r'//\1:***@', url)


def first_line(e):
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


# -----------------------------------------------------------------------------
# an agent's signs of life: its machine and pid, and a heartbeat written to the storage

def machine_id():
    """host/boot/pid namespace: agents with the same id see each other's pids. None off Linux."""
    try:
        with open('/proc/sys/kernel/random/boot_id') as f:
            return f"{socket.gethostname()}/{f.read().strip()}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


MACHINE = machine_id()


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # killed but not yet reaped by its parent: a zombie is as dead as it gets
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[-1].split()[0] != 'Z'
    except (OSError, IndexError):
        return True


def is_abandoned(frozen, now):
    """A RUNNING trial whose agent is gone: a dead pid on this machine, or a heartbeat gone quiet."""
    agent = frozen.user_attrs.get('agent') or {}
    if MACHINE and agent.get('machine') == MACHINE and agent['pid'] != os.getpid():
        if not process_alive(agent['pid']):
            return True  # an alive pid may be a new process that reuses it: the heartbeat decides
    last = frozen.user_attrs.get('heartbeat')
    if last is None and frozen.datetime_start is not None:  # died between claiming and stamping
        last = frozen.datetime_start.timestamp()
    return last is not None and now - last > heartbeat_times()[1]


def beat(storage, tid):
    if optuna_heartbeat(storage):
        storage.record_heartbeat(tid)
    else:
        storage.set_trial_user_attr(tid, 'heartbeat', time.time())


def start_heartbeat(storage, tid):
    stop = threading.Event()

    def beats():
        while not stop.wait(heartbeat_times()[0]):
            try:
                beat(storage, tid)
            except Exception:  # one missed beat is harmless: the grace period allows for several
                pass
    threading.Thread(target=beats, daemon=True).start()
    return stop
