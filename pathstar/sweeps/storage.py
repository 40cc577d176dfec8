"""
Where a local sweep lives: opening its optuna storage (a journal file, or a database named by an
optuna RDB URL), and the signs of life agents leave in it (machine, pid, heartbeat).

    storage = storage.open_storage('sweeps/<id>/journal.log')                  # join: the file must exist
    storage = storage.open_storage('/shared/sweeps.log', create=True)          # create: it may be new
    storage = storage.open_storage('postgresql://user@host/db', stale_trial_callback=retry)
    stop = storage.start_heartbeat(storage, trial_id)   # while the trial trains; then stop.set()

The journal file is optuna's JournalFileBackend: one JSON record per line, appended by every agent
under optuna's lock (a symlink journal.log.lock beside it). A crash or a full disk in the middle of
an append leaves a cut-off last record. optuna skips it when reading, but appends the next record
onto it, and that joined line makes the journal unreadable for good. So the journal is checked here
before optuna reads it: a damaged complete line is a UserError naming the file and the line, and
a cut-off last record is moved to a side file, journal.log.partial-<time>, under the same lock. The
lock that optuna takes for every append does the same check first, so an agent that is already
running never appends after a cut-off record either. Nothing here imports optuna before it is used.
"""
import importlib.util
import json
import os
import re
import socket
import sys
import threading
import time
import warnings

from pathstar.errors import UserError

HEARTBEAT_S = 60          # a running trial stamps its heartbeat this often (env PATHSTAR_HEARTBEAT_S)...
STALE_S = 600             # ...and counts as abandoned when the stamp is older than this (env PATHSTAR_GRACE_S)
GUIDE = "see 'Recovering a damaged sweep' in SWEEP_GUIDE.md"
RECORD_START = b'{"op_code":'  # how optuna writes every journal record


def open_storage(url, create=False, stale_trial_callback=None):
    """A journal file (a path) or an optuna RDB URL such as postgresql://user:pw@host/db. create: the
    journal file may be made (only creating a sweep does that). stale_trial_callback(study, frozen):
    what a database does with each trial whose heartbeat went stale."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happens
    warnings.filterwarnings('ignore', category=optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
    warnings.filterwarnings('ignore', message='Heartbeat of storage is supposed')  # ...and meant for study.optimize
    interval, grace = heartbeat_times()
    if '://' not in url:
        return open_journal(url, create)
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
        raise UserError(f"--storage {hide_password(url)}: its driver, python module {name}, is not installed; "
                          f"pip install {pip}") from None
    except Exception as e:  # a refused connection, a wrong password: one line, not a page of sqlalchemy
        raise UserError(f"--storage: cannot open {hide_password(url)}: {first_line(e)}") from None


def heartbeat_times():
    """(interval, grace period) in seconds: HEARTBEAT_S and STALE_S unless the environment says otherwise."""
    times = [os.environ.get(var, '').strip() or default
             for var, default in (('PATHSTAR_HEARTBEAT_S', HEARTBEAT_S), ('PATHSTAR_GRACE_S', STALE_S))]
    if not all(str(t).isdigit() and int(t) > 0 for t in times) or int(times[1]) <= int(times[0]):
        raise UserError(f"PATHSTAR_HEARTBEAT_S={times[0]}, PATHSTAR_GRACE_S={times[1]}: both must be whole "
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


# -----------------------------------------------------------------------------
# the journal file

def open_journal(path, create):
    """optuna's JournalStorage on the file at path, checked first and guarded by SetAsideLock."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
    check_journal_path(path, create)
    full = os.path.abspath(path)
    lock = SetAsideLock(JournalFileSymlinkLock(full), full, path)  # optuna's default lock, so old agents respect it
    if os.path.exists(full) and check_journal(full, path):
        try:
            lock.acquire()  # which sets the cut-off record aside
            lock.release()
        except OSError as e:
            raise UserError(f"{path}: its last record is cut off, and setting it aside failed ({e.strerror}); "
                              f"free some disk space or fix the permissions, then run this again") from None
    return JournalStorage(JournalFileBackend(full, lock_obj=lock))


def check_journal_path(path, create):
    """Only creating a sweep may create a journal file, and only in a folder that exists."""
    if os.path.isdir(path):
        raise UserError(f"--storage {path}: is a folder; give the path of a journal file, "
                          f"e.g. {os.path.join(path, 'sweeps.log')}")
    if os.path.exists(path):
        return
    if not create:
        raise UserError(f"--storage {path}: does not exist; a journal file is made only when a sweep is created "
                          f"(--sweep_config), so pass the --storage the sweep was created with")
    folder = os.path.dirname(path) or '.'
    if not os.path.isdir(folder):
        problem = 'is not a folder' if os.path.exists(folder) else 'does not exist; create it first'
        raise UserError(f"--storage {path}: the folder {folder} {problem}")


def check_journal(path, shown):
    """Raise UserError at the first complete line that is not a journal record. Returns the size of
    a cut-off last record (the bytes after the last newline), 0 when there is none. It reads without
    the lock: a record being appended meanwhile may look cut off, which the lock holder then sees whole."""
    with open(path, 'rb') as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b'\n'):
                if number == 1 and not (line.startswith(RECORD_START) or RECORD_START.startswith(line)):
                    raise UserError(f"{shown}: is not an optuna journal file; pass the journal the sweep "
                                      f"was created with")  # and it is left as it is
                return len(line)
            if not is_record(line):
                if number == 1:
                    raise UserError(f"{shown}: is not an optuna journal file (line 1 is not a journal record); "
                                      f"pass the journal the sweep was created with")
                raise UserError(f"{shown}: line {number} is damaged (not a journal record), and optuna cannot "
                                  f"read the sweep past it; remove or repair that line, or move the journal aside "
                                  f"and create the sweep again: {GUIDE}")
    return 0


def is_record(line):
    try:
        record = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return False
    return isinstance(record, dict) and 'op_code' in record


class SetAsideLock:
    """optuna's journal lock which, once held, sets aside a cut-off last record. optuna takes it
    for every append, so nothing is ever appended to the end of a cut-off record."""

    def __init__(self, lock, path, shown):
        self.lock, self.path, self.shown = lock, path, shown

    def acquire(self):
        self.lock.acquire()
        try:
            set_aside_partial_record(self.path, self.shown)
        except BaseException:
            self.lock.release()
            raise
        return True

    def release(self):
        self.lock.release()


def set_aside_partial_record(path, shown):
    """With the journal's lock held, so that nobody is appending: move whatever follows the last
    newline to the side file path.partial-<time> (appended to, one line per record) and cut it off."""
    with open(path, 'r+b') as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b'\n':
            return
        cut = end_of_last_line(f, size)
        f.seek(cut)
        tail = f.read()
        side = f"{path}.partial-{time.strftime('%Y%m%d-%H%M%S')}"
        with open(side, 'ab') as keep:
            keep.write(tail + b'\n')
            keep.flush()
            os.fsync(keep.fileno())
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    print(f"warning: {shown}: set aside a partial last record ({len(tail)} bytes) in "
          f"{os.path.join(os.path.dirname(shown), os.path.basename(side))}", file=sys.stderr)


def end_of_last_line(f, size, chunk=1 << 16):
    """The offset just after the file's last newline (0 if it has none), reading backwards."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        f.seek(start)
        newline = f.read(end - start).rfind(b'\n')
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0
