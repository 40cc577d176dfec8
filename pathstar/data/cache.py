"""
The dataset cache on disk: one folder per parameter set, {data_dir}/pathstar_d.._{hash}/, of
.npy arrays and meta.json (the task's module builds the arrays; this file keeps them).

A cache folder holds .npy files (ARRAYS and SAVED) and meta.json, which records the shape, dtype
and crc32 of every array. Readers take no lock: a folder only appears by rename once whole, and
load() checks every file against meta.json and meta.json against the folder's config, so a damaged
folder (a power cut's zeroed or truncated file, a missing file, an edited meta.json) is never used.
Builders and repairers take turns on {folder}.lock, which names its holder while held.

Every task's dataset shares these guarantees: tasks.py picks the module that names, builds and lays
out cfg's dataset (inweights.py, incontext.py). load_or_build takes a checked config (validate.py's):
nothing here parses or checks a config again.
"""
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import socket
import stat
import sys
import time
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from pathstar.data.inweights import other_arms
from pathstar.data.tasks import task as scheme
from pathstar.errors import UserError
from pathstar.graphs import official
from pathstar.tokens import decode

FORMAT_VERSION = 3  # bump when the files change meaning: it is part of every cache folder's hash
# (2: meta.json records each array's shape, dtype and crc32; 3: the DUMMY token, so node k is token 7 + k,
# and path rows follow path_target and root_in_prompt)
ARRAYS = ('train_rows', 'train_mask', 'val_rows', 'val_mask')
WAIT_NOTICE_SECONDS = 30.0  # a builder waiting for the lock says whom it waits for this often
LOCK_POLL_SECONDS = 0.05


@dataclass
class PathStarData:
    train_rows: np.ndarray   # (n_train, T) uint16 or uint32: edge rows first, then path rows
    train_mask: np.ndarray   # (n_train, T) bool, True at the tokens to predict
    val_rows: np.ndarray     # (n_val, T) the held-out paths, each once
    val_mask: np.ndarray     # (n_val, T) bool
    meta: dict
    path: str                # the cache folder
    build_seconds: Optional[float] = None  # time this call spent building; None when it reused a cache

    def decode(self, row):
        return decode(row)


class DamagedCache(Exception):
    """A cache folder that does not hold what its meta.json and config say; it is rebuilt, never used."""


def cache_dir(cfg):
    """The folder this parameter set lives in under cfg['data_dir']."""
    s = scheme(cfg)
    dcfg = s.data_config(cfg)
    key = dict(dcfg, format_version=FORMAT_VERSION)
    if dcfg['data_import']:  # the files' bytes too: an edited file is another dataset
        key['data_import_sha256'] = official.read(dcfg['data_import']).digest
    else:
        del key['data_import']  # the folders of generated graphs keep their names
    key = json.dumps(key, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return os.path.join(cfg['data_dir'], f"{s.folder_name(dcfg)}_{digest}")


def memory_need(dcfg):
    """(bytes, rows, row length): what the dataset of a data config holds in memory while a run trains on
    it, from the config alone (nothing is built): its rows and masks as stored, then the int64 inputs,
    positions and target slots made from them. The one estimate: train.py, pathstar_data.py and sweep
    dry runs all check it."""
    m = scheme(dcfg).meta_scalars(dcfg)
    rows, T, targets = m['num_train_rows'] + m['num_val_rows'], m['row_len'], len(m['path_target_nodes'])
    return rows * (T * (np.dtype(m['dtype']).itemsize + 1) + (T - 1) * 8 + 2 * targets * 8), rows, T


def check_memory(cfg):
    """Refuse, before anything is built or written, a dataset that cannot fit in this machine's memory."""
    s = scheme(cfg)
    need, rows, T = memory_need(s.data_config(cfg))
    have = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    if need > have:
        raise UserError(f"{s.SIZE_KEY}: {rows:,} rows of {T} tokens need about {need / 2 ** 30:.1f} GiB in memory, "
                        f"more than this machine's {have / 2 ** 30:.1f} GiB; {s.SMALLER}")


def dataset_name(cfg):
    """The name of the dataset a config trains on: its cache folder's, which hashes every data key (and
    data_import's file bytes), so two configs share it exactly when they share the graph and rows."""
    return os.path.basename(cache_dir(cfg))


def is_built(folder, saved=()):
    """Every file is there (meta.json is written last, and the folder appears by rename). Whether
    they hold what they should is load()'s check."""
    names = (*(f + '.npy' for f in (*ARRAYS, *saved)), 'meta.json')
    return all(os.path.isfile(os.path.join(folder, name)) for name in names)


def checksum(array):
    """crc32 of an array's bytes, as 8 hex digits: about 7 GB/s, so reading a file costs more."""
    return f"{zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8)):08x}"


def array_record(array):
    return dict(shape=list(array.shape), dtype=array.dtype.name, crc32=checksum(array))


def save_meta(meta, folder, records, saved):
    """meta.json: the scalars and lists, holdout_arms (in-weights), and the shape, dtype and crc32 of every array."""
    plain = {k: v for k, v in meta.items() if k not in (*saved, 'train_arms', 'holdout_arms')}
    if 'holdout_arms' in meta:
        plain['holdout_arms'] = meta['holdout_arms'].tolist()
    plain['arrays'] = records
    with open(os.path.join(folder, 'meta.json'), 'w') as f:
        f.write(json.dumps(plain))  # dumps uses the C encoder, dump does not: 0.5 s at d = 1e6


def write_dataset(arrays, meta, folder, saved=()):
    """The .npy files (arrays, and meta's arrays named in saved), then meta.json last: its presence is
    what marks a folder finished.

    Nothing is fsynced: a cache folder is a pure function of its config, and load() finds what a
    power cut damaged, so the folder is rebuilt instead.
    """
    os.makedirs(folder)
    everything = dict(arrays, **{name: meta[name] for name in saved})
    for name, array in everything.items():
        np.save(os.path.join(folder, name + '.npy'), array)
    records = {name: array_record(array) for name, array in everything.items()}
    if 'holdout_arms' in meta:
        records['holdout_arms'] = array_record(np.asarray(meta['holdout_arms'], np.int64))
    save_meta(meta, folder, records, saved)


def read_meta(folder):
    """meta.json, checked against the folder's name and its own config (DamagedCache otherwise)."""
    try:
        with open(os.path.join(folder, 'meta.json'), 'rb') as f:
            meta = json.loads(f.read())
    except FileNotFoundError:
        raise DamagedCache("meta.json is missing") from None
    except IsADirectoryError:
        raise DamagedCache("meta.json is a folder") from None
    except ValueError:  # not UTF-8, not JSON (a power cut leaves zeros)
        raise DamagedCache("meta.json is not valid JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get('config'), dict):
        raise DamagedCache("meta.json has no config")
    s = scheme(meta['config'])
    try:
        dcfg = s.data_config(meta['config'])
    except (UserError, TypeError, KeyError, ValueError):
        raise DamagedCache("meta.json's config is not a valid dataset config") from None
    name = os.path.basename(cache_dir(dict(dcfg, data_dir='.')))
    if dcfg != meta['config'] or name != os.path.basename(os.path.normpath(folder)):
        raise DamagedCache("meta.json's config is not the one the folder name stands for")
    expected = s.meta_scalars(dcfg)
    wrong = [key for key in expected if meta.get(key) != expected[key]]
    if wrong:
        raise DamagedCache(f"meta.json has wrong {', '.join(wrong)}")
    records = meta.get('arrays')
    want = s.layouts(meta)
    if not isinstance(records, dict) or set(records) != set(want) or not all(
            isinstance(r, dict) and r.get('shape') == list(want[n][0]) and r.get('dtype') == want[n][1]
            and isinstance(r.get('crc32'), str) for n, r in records.items()):
        raise DamagedCache("meta.json's array records do not match its config")
    return meta


def check_array(name, array, record):
    if checksum(array) != record['crc32']:
        raise DamagedCache(f"{name} fails its checksum")


def read_npy(folder, name, record, mmap):
    """One array file, its header checked before a byte of data is read (DamagedCache otherwise)."""
    path = os.path.join(folder, name + '.npy')
    shape, dtype = tuple(record['shape']), np.dtype(record['dtype'])
    try:
        f = open(path, 'rb')
    except FileNotFoundError:
        raise DamagedCache(f"{name}.npy is missing") from None
    except IsADirectoryError:
        raise DamagedCache(f"{name}.npy is a folder") from None
    with f:
        try:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            got_shape, fortran_order, got_dtype = read_header(f)
        except (ValueError, SyntaxError):  # numpy's word for a bad magic string, header or version
            raise DamagedCache(f"{name}.npy is not a .npy file") from None
        if got_dtype.hasobject:  # pickled objects: no power cut writes those, someone else did
            raise UserError(f"data_dir: {path} holds pickled objects, which pathstar never writes "
                                           f"and will not read; delete {folder} and it is rebuilt")
        if (got_shape, fortran_order, got_dtype) != (shape, False, dtype):
            raise DamagedCache(f"{name}.npy holds {got_dtype}{list(got_shape)}, not {dtype}{list(shape)}")
        offset, size = f.tell(), os.fstat(f.fileno()).st_size
        wanted = offset + int(np.prod(shape)) * dtype.itemsize
        if size != wanted:
            raise DamagedCache(f"{name}.npy is {size:,} bytes, not {wanted:,}")
        if mmap:
            array = np.memmap(f, dtype, mode='r', offset=offset, shape=shape)
        else:
            array = np.fromfile(f, dtype, count=int(np.prod(shape))).reshape(shape)
    check_array(f"{name}.npy", array, record)
    return array


def load(folder, mmap=False):
    """Read a finished cache folder and check all of it (no pickle anywhere).

    Raises DamagedCache, naming the fault, when a file is missing or is not what meta.json records
    (shape, dtype, crc32), or meta.json is not what its config implies; the crc32 of every array is
    checked even when mmap=True maps the files instead of reading them.
    """
    try:
        meta = read_meta(folder)
        records = meta.pop('arrays')
        saved = scheme(meta['config']).SAVED
        arrays = {name: read_npy(folder, name, records[name], mmap) for name in (*ARRAYS, *saved)}
    except PermissionError as e:
        raise UserError(f"data_dir: cannot read the dataset cache {folder}: {e.strerror}; "
                                       f"fix its permissions or delete it") from None
    meta.update({name: arrays.pop(name) for name in saved})
    if 'holdout_arms' not in records:  # in-context: no fixed graph, so no held-out arms
        return PathStarData(**arrays, meta=meta, path=folder)
    try:
        holdout = np.array(meta['holdout_arms'], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        holdout = None
    if holdout is None or list(holdout.shape) != records['holdout_arms']['shape']:
        raise DamagedCache("meta.json's holdout_arms are not a list of arm numbers")
    check_array('holdout_arms', holdout, records['holdout_arms'])  # so they are the arms that were held out
    meta['holdout_arms'] = holdout
    meta['train_arms'] = other_arms(meta['num_paths'], meta['holdout_arms'])
    return PathStarData(**arrays, meta=meta, path=folder)


def check_place(folder):
    """A UserError, before anything is written, when a file is where a folder of the cache belongs."""
    data_dir = os.path.dirname(folder) or '.'
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise UserError(f"data_dir: {data_dir!r} is a file, not a folder; move it away or set "
                                       f"data_dir to a folder")
    try:  # one stat, not exists() then isdir(): a damaged folder set aside in between is no file
        in_the_way = not stat.S_ISDIR(os.stat(folder).st_mode)
    except OSError:  # nothing there, or a dangling symlink
        in_the_way = os.path.islink(folder)
    if in_the_way:
        raise UserError(f"data_dir: {folder} is a file where the dataset cache folder belongs; "
                                       f"move it away or delete it")
    if os.path.isdir(folder + '.lock'):
        raise UserError(f"data_dir: {folder}.lock is a folder where the dataset cache's lock file "
                                       f"belongs; move it away or delete it")


def lock_holder(fd):
    """'pid N on HOST' as the lock's holder wrote it, or 'another process' before it has."""
    words = os.pread(fd, 300, 0).decode('utf-8', 'replace').split()
    return f"pid {words[0]} on {words[1]}" if len(words) == 2 and words[0].isdigit() else "another process"


@contextlib.contextmanager
def build_lock(folder):
    """Hold {folder}.lock, waiting for whoever holds it (and saying so every WAIT_NOTICE_SECONDS).

    The kernel releases the lock when its holder closes the file or dies; while held, the file
    names the holder (pid and host). A build that finds its config bad (UserError) removes the lock
    file and data_dir it made: bad input leaves nothing on disk.
    """
    data_dir = os.path.dirname(folder) or '.'
    made_dir, made_lock = not os.path.isdir(data_dir), not os.path.lexists(folder + '.lock')
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as e:  # a user error (a file in the way, no permission): one line, exit code 2
        raise UserError(f"data_dir: cannot write the dataset cache under {data_dir!r}: "
                                       f"{e.strerror or type(e).__name__}") from None
    try:
        fd = os.open(folder + '.lock', os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise UserError(f"data_dir: cannot open the lock file {folder}.lock: "
                                       f"{e.strerror or type(e).__name__}") from None
    try:
        started = time.monotonic()
        notice_at = started + WAIT_NOTICE_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            if time.monotonic() >= notice_at:
                print(f"pathstar: waiting for {lock_holder(fd)} to finish building {folder} "
                      f"({time.monotonic() - started:.0f} s so far)", file=sys.stderr, flush=True)
                notice_at = time.monotonic() + WAIT_NOTICE_SECONDS
            time.sleep(LOCK_POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        except UserError:
            if made_lock:  # anyone waiting on it has the same config, and fails the same way
                os.unlink(folder + '.lock')
            if made_dir:
                with contextlib.suppress(OSError):
                    os.rmdir(data_dir)  # only if nothing else was put there meanwhile
            raise
        finally:
            os.ftruncate(fd, 0)  # before the unlock: nobody reads a finished holder's name
    finally:
        os.close(fd)


def remove_leftovers(folder):
    """Delete temp folders of killed builds and damaged folders set aside.

    Only called while holding the lock, and every builder holds it until it has renamed
    its temp folder into place, so nothing here belongs to a live build.
    """
    for stale in glob.glob(glob.escape(folder) + '.tmp-*'):
        shutil.rmtree(stale, ignore_errors=True)


def set_aside(folder, reason):
    """Rename a damaged folder out of the way (a process that has its files open keeps them), then
    delete it; one line on stderr says so. A UserError naming the folder when it cannot be moved."""
    aside = f"{folder}.tmp-damaged-{os.getpid()}"
    try:
        os.rename(folder, aside)
    except OSError as e:
        raise UserError(f"data_dir: the dataset cache {folder} is damaged ({reason}) and cannot be "
                                       f"rebuilt ({e.strerror or type(e).__name__}); delete it") from None
    print(f"pathstar: the dataset cache {folder} was damaged ({reason}); rebuilding it", file=sys.stderr, flush=True)
    shutil.rmtree(aside, ignore_errors=True)  # what is left (open files on NFS) goes with the next leftovers


def build_locked(dcfg, folder, verbose=False, mmap=False):
    """Under the lock: load folder if it is whole (another process built it first), else build and save it.

    Returns the PathStarData, with build_seconds set when this call built it.
    """
    check_place(folder)
    with build_lock(folder):
        remove_leftovers(folder)
        if os.path.isdir(folder):
            try:
                return load(folder, mmap)  # someone built it while we waited
            except DamagedCache as e:
                set_aside(folder, e)
        if verbose:
            print(f"pathstar: building {folder}")
        start = time.time()
        temp = f"{folder}.tmp-{os.getpid()}"
        s = scheme(dcfg)
        arrays, meta = s.build_arrays(dcfg)
        try:
            write_dataset(arrays, meta, temp, s.SAVED)
            os.rename(temp, folder)  # atomic: readers see no folder or a whole one
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return PathStarData(**arrays, meta=meta, path=folder, build_seconds=time.time() - start)


def load_or_build(cfg, verbose=True, mmap=False):
    """The dataset for cfg's dataset keys, from its cache folder, building it first if needed.

    cfg is a checked config (validate.build_config's); a cache folder that cannot be used raises
    UserError before anything is written. mmap=True maps an existing cache's arrays
    read-only instead of reading them (a fresh build is in memory already). A damaged cache folder is
    rebuilt, with one line on stderr saying so.
    """
    s = scheme(cfg)
    dcfg, folder = s.data_config(cfg), cache_dir(cfg)
    check_place(folder)
    check_memory(cfg)
    data = None
    if is_built(folder, s.SAVED):
        try:
            data = load(folder, mmap)
        except DamagedCache:
            pass  # checked again, and rebuilt, under the lock
    if data is None:
        data = build_locked(dcfg, folder, verbose, mmap)
    if verbose:
        done = f"built in {data.build_seconds:.2f} s" if data.build_seconds is not None else "reused the cache"
        print(f"pathstar: {done}: {len(data.train_rows):,} train rows, {len(data.val_rows):,} val rows, "
              f"T={data.meta['row_len']}, {data.meta['dtype']}")
    return data
