"""
The path-star dataset, learned in the weights: one fixed star-shaped graph whose
edges and root->leaf paths are the training rows, while the paths to a few
held-out leaves are the validation rows.

    python3 pathstar_data.py --graph_d=5 --graph_l=4    # build (or reuse) and show a few rows

The graph is a root with graph_d arms of graph_l - 1 nodes each, so a root->leaf
path has graph_l nodes. Every row of a dataset has one length T, right-padded:

    edge row   [EDGE] > u v                      parent u -> child v
               [EDGE] < v u                      the same edge backwards (use_undirected)
    path row   [PATH] leaf _ _ _ root n2 .. leaf  ('_' is PAUSE)

A model is scored only on the targets (the masks): the last node of an edge row
and the graph_l path nodes of a path row. Held-out arms keep their edges in
training, so validation asks for a path the model has only seen in pieces.

Each parameter set is built once, with vectorised numpy, into its own folder
{data_dir}/pathstar_d.._{hash}/ of .npy files and meta.json. Builders of the same
set take turns on a lock file. A finished folder is reused once every array matches
the shape, dtype and crc32 that meta.json records; a damaged one is rebuilt.
"""
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import socket
import sys
import time
import zlib
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

import configurator


FORMAT_VERSION = 2  # bump when the files change meaning: it is part of every cache folder's hash
# (2: meta.json records each array's shape, dtype and crc32)

# token ids: node label k is token NODE_OFFSET + k, so vocab_size = NODE_OFFSET + V
PAD, PAUSE, EDGE, PATH, FWD, BWD = 0, 1, 2, 3, 4, 5
NODE_OFFSET = 6
TOKENS = dict(pad=PAD, pause=PAUSE, edge=EDGE, path=PATH, fwd=FWD, bwd=BWD)
TOKEN_TEXT = {PAUSE: '_', EDGE: '[EDGE]', PATH: '[PATH]', FWD: '>', BWD: '<'}  # PAD is not shown

# the config keys that decide the dataset's contents (data_dir only decides where it lives)
DATA_KEYS = ('graph_d', 'graph_l', 'graph_vocab_size', 'graph_holdout_percentage', 'num_pause_tokens',
             'use_undirected', 'use_directional_tokens', 'use_task_tokens', 'path_replication', 'data_seed')
ARRAYS = ('train_rows', 'train_mask', 'val_rows', 'val_mask')
MAX_VOCAB_SIZE = 2 ** 32  # token ids are stored as uint16 or uint32


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


def decode(row):
    """Token ids -> text, e.g. '[PATH] n17 _ _ _ n3 n40 n12 n9 n17' (PAD left out)."""
    words = []
    for token in np.asarray(row).tolist():
        if token != PAD:
            words.append(TOKEN_TEXT.get(token) or f"n{token - NODE_OFFSET}")
    return ' '.join(words)


# -----------------------------------------------------------------------------
# the config

def data_config(cfg):
    """The dataset keys of cfg, checked by configurator.check (configurator.ConfigError), graph_vocab_size as an int.

    Missing keys take their defaults, so a caller may pass just the keys it changes.
    """
    full = configurator.build_config({key: cfg[key] for key in DATA_KEYS if key in cfg})
    picked = {key: full[key] for key in DATA_KEYS}
    picked['graph_vocab_size'] = configurator.resolve_vocab(full['graph_vocab_size'], full['graph_d'], full['graph_l'])
    return picked


def holdout_count(d, percentage):
    """How many arms are held out: d * percentage rounded half up (0.05 of 10 arms is 1)."""
    return int(d * percentage + 0.5 + 1e-9)  # the 1e-9 keeps 0.05 * 10 = 0.4999.. from rounding down


def row_lengths(cfg):
    """(edge row length, path prompt length, path row length) for these token options."""
    task = int(cfg['use_task_tokens'])
    edge_len = task + int(cfg['use_directional_tokens']) + 2
    prompt_len = task + 1 + cfg['num_pause_tokens']  # [PATH] leaf PAUSE..
    return edge_len, prompt_len, prompt_len + cfg['graph_l']


# -----------------------------------------------------------------------------
# building the arrays (pure numpy, no disk)

def draw_graph(cfg):
    """Node labels, then the held-out arms, from one rng seeded by data_seed.

    Returns paths, (d, l) int64 token ids root..leaf for each arm, and the sorted held-out arms.
    """
    d, l = cfg['graph_d'], cfg['graph_l']
    rng = np.random.default_rng(cfg['data_seed'])
    labels = rng.choice(cfg['graph_vocab_size'], configurator.num_nodes(d, l), replace=False)
    # node index 0 is the root and arm a at depth j (1..l-1) is 1 + a*(l-1) + (j-1),
    # so the non-root labels reshaped to (d, l-1) are the arms in order
    paths = np.empty((d, l), np.int64)
    paths[:, 0] = labels[0]
    paths[:, 1:] = labels[1:].reshape(d, l - 1)
    paths += NODE_OFFSET
    held_out = rng.choice(d, holdout_count(d, cfg['graph_holdout_percentage']), replace=False)
    return paths, np.sort(held_out).astype(np.int64)


def other_arms(d, arms):
    """The sorted arms not in arms (a mask: np.setdiff1d sorts, and takes seconds at d = 1e6)."""
    keep = np.ones(d, bool)
    keep[arms] = False
    return np.flatnonzero(keep).astype(np.int64)


class RowCounts(NamedTuple):
    edge_rows: int
    path_replication: int   # copies of each training path
    train_rows: int         # edge rows + path_replication x training paths
    held_out: int           # held-out paths (the validation rows)


def row_counts(cfg):
    """The row counts of a config, known before anything is built (configurator checks batch_size
    against them). Reads graph_d, graph_l, graph_holdout_percentage, use_undirected, path_replication."""
    d, l = cfg['graph_d'], cfg['graph_l']
    edge_rows = (configurator.num_nodes(d, l) - 1) * (2 if cfg['use_undirected'] else 1)
    held_out = holdout_count(d, cfg['graph_holdout_percentage'])
    rep = cfg['path_replication']
    if rep == 'auto':  # about as many path rows as edge rows, so neither task drowns the other
        rep = max(1, edge_rows // (d - held_out))
    return RowCounts(edge_rows, rep, edge_rows + rep * (d - held_out), held_out)


def meta_scalars(cfg):
    """The scalars and lists of a dataset's meta: all of them follow from its config alone."""
    d, l, vocab = cfg['graph_d'], cfg['graph_l'], cfg['graph_vocab_size']
    edge_len, prompt_len, path_len = row_lengths(cfg)
    num_edge_rows, rep, num_train_rows, held_out = row_counts(cfg)
    vocab_size = NODE_OFFSET + vocab
    return dict(
        d=d, l=l, num_nodes=configurator.num_nodes(d, l), graph_vocab_size=vocab, vocab_size=vocab_size,
        tokens=dict(TOKENS),
        row_len=max(edge_len, path_len), path_prompt_len=prompt_len, edge_row_len=edge_len,
        num_edge_rows=num_edge_rows, path_replication=rep,
        num_train_rows=num_train_rows, num_val_rows=held_out,
        # the largest token id is vocab_size - 1; it must never wrap around
        dtype='uint16' if vocab_size <= 2 ** 16 else 'uint32',
        config=dict(cfg),
    )


def make_meta(cfg, paths, holdout_arms):
    """Everything about the dataset except its rows."""
    return dict(meta_scalars(cfg),
                paths=paths,  # (d, l) root..leaf of every arm
                train_arms=other_arms(cfg['graph_d'], holdout_arms), holdout_arms=holdout_arms)


def fill_edges(out, sources, targets, marker, cfg):
    """Write '[EDGE] marker source target' rows into out, one per edge, column by column."""
    col = 0
    if cfg['use_task_tokens']:
        out[:, col] = EDGE
        col += 1
    if cfg['use_directional_tokens']:
        out[:, col] = marker
        col += 1
    out[:, col] = sources
    out[:, col + 1] = targets


def path_rows(paths, meta):
    """'[PATH] leaf PAUSE.. root .. leaf' rows, one per given path, PAD after."""
    out = np.zeros((len(paths), meta['row_len']), meta['dtype'])
    start = meta['path_prompt_len']
    leaf_col = 0
    if meta['config']['use_task_tokens']:
        out[:, 0] = PATH
        leaf_col = 1
    out[:, leaf_col] = paths[:, -1]
    out[:, leaf_col + 1:start] = PAUSE
    out[:, start:start + meta['l']] = paths
    return out


def fill_rows(arrays, meta):
    """Write every row and mask into zero-filled arrays (PAD is 0, so the padding is already there)."""
    cfg, paths, l = meta['config'], meta['paths'], meta['l']
    rows, mask = arrays['train_rows'], arrays['train_mask']
    parents, children = paths[:, :-1].ravel(), paths[:, 1:].ravel()
    n = len(parents)
    fill_edges(rows[:n], parents, children, FWD, cfg)
    if cfg['use_undirected']:
        fill_edges(rows[n:2 * n], children, parents, BWD, cfg)
    n_edges = meta['num_edge_rows']
    mask[:n_edges, meta['edge_row_len'] - 1] = True  # the last node; the source is given

    # the training paths are built once and broadcast into each of the repeats
    start = meta['path_prompt_len']
    train_paths = path_rows(paths[meta['train_arms']], meta)
    rows[n_edges:].reshape(meta['path_replication'], len(train_paths), -1)[:] = train_paths
    mask[n_edges:, start:start + l] = True
    arrays['val_rows'][:] = path_rows(paths[meta['holdout_arms']], meta)
    arrays['val_mask'][:, start:start + l] = True


def build_arrays(cfg):
    """The whole dataset in memory, without the disk: (arrays dict, meta dict)."""
    cfg = data_config(cfg)
    paths, holdout_arms = draw_graph(cfg)
    meta = make_meta(cfg, paths, holdout_arms)
    arrays = {}
    for split in ('train', 'val'):
        # preallocated in the final dtype, and np.zeros maps zero pages lazily, so the
        # padding (PAD = 0, mask False) costs nothing
        shape = (meta[f'num_{split}_rows'], meta['row_len'])
        arrays[f'{split}_rows'] = np.zeros(shape, meta['dtype'])
        arrays[f'{split}_mask'] = np.zeros(shape, np.bool_)
    fill_rows(arrays, meta)
    return arrays, meta


# -----------------------------------------------------------------------------
# the cache on disk
#
# A cache folder holds FILES and meta.json, which records the shape, dtype and crc32 of every
# array. Readers take no lock: a folder only appears by rename once whole, and load() checks every
# file against meta.json and meta.json against the folder's config, so a damaged folder (a power
# cut's zeroed or truncated file, a missing file, an edited meta.json) is never used. Builders and
# repairers take turns on {folder}.lock, which names its holder while held.

FILES = (*ARRAYS, 'paths')  # the .npy files of a cache folder; meta.json comes last
WAIT_NOTICE_SECONDS = 30.0  # a builder waiting for the lock says whom it waits for this often
LOCK_POLL_SECONDS = 0.05


class DamagedCache(Exception):
    """A cache folder that does not hold what its meta.json and config say; it is rebuilt, never used."""


def cache_dir(cfg):
    """The folder this parameter set lives in under cfg['data_dir']."""
    dcfg = data_config(cfg)
    key = json.dumps(dict(dcfg, format_version=FORMAT_VERSION), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    name = (f"pathstar_d{dcfg['graph_d']}_l{dcfg['graph_l']}_v{dcfg['graph_vocab_size']}"
            f"_h{dcfg['graph_holdout_percentage']:g}_p{dcfg['num_pause_tokens']}_{digest}")
    return os.path.join(cfg.get('data_dir', configurator.DEFAULTS['data_dir']), name)


def is_built(folder):
    """Every file is there (meta.json is written last, and the folder appears by rename). Whether
    they hold what they should is load()'s check."""
    return all(os.path.isfile(os.path.join(folder, name)) for name in (*(f + '.npy' for f in FILES), 'meta.json'))


def checksum(array):
    """crc32 of an array's bytes, as 8 hex digits: about 7 GB/s, so reading a file costs more."""
    return f"{zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8)):08x}"


def array_record(array):
    return dict(shape=list(array.shape), dtype=array.dtype.name, crc32=checksum(array))


def layouts(meta):
    """{name: (shape, dtype name)} of every array of a dataset, from its meta's scalars."""
    train, val, rows = (meta['num_train_rows'], meta['row_len']), (meta['num_val_rows'], meta['row_len']), meta['dtype']
    return dict(train_rows=(train, rows), train_mask=(train, 'bool'), val_rows=(val, rows), val_mask=(val, 'bool'),
                paths=((meta['d'], meta['l']), 'int64'), holdout_arms=((meta['num_val_rows'],), 'int64'))


def save_meta(meta, folder, records):
    """meta.json: the scalars and lists, holdout_arms, and the shape, dtype and crc32 of every array."""
    plain = {k: v for k, v in meta.items() if k not in ('paths', 'train_arms', 'holdout_arms')}
    plain['holdout_arms'] = meta['holdout_arms'].tolist()
    plain['arrays'] = records
    with open(os.path.join(folder, 'meta.json'), 'w') as f:
        f.write(json.dumps(plain))  # dumps uses the C encoder, dump does not: 0.5 s at d = 1e6


def write_dataset(arrays, meta, folder):
    """The .npy files, then meta.json last: its presence is what marks a folder finished.

    Nothing is fsynced: a cache folder is a pure function of its config, and load() finds what a
    power cut damaged, so the folder is rebuilt instead.
    """
    os.makedirs(folder)
    everything = dict(arrays, paths=meta['paths'])
    for name, array in everything.items():
        np.save(os.path.join(folder, name + '.npy'), array)
    records = {name: array_record(array) for name, array in everything.items()}
    records['holdout_arms'] = array_record(np.asarray(meta['holdout_arms'], np.int64))
    save_meta(meta, folder, records)


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
    try:
        dcfg = data_config(meta['config'])
    except (configurator.ConfigError, TypeError):
        raise DamagedCache("meta.json's config is not a valid dataset config") from None
    name = os.path.basename(cache_dir(dict(dcfg, data_dir='.')))
    if dcfg != meta['config'] or name != os.path.basename(os.path.normpath(folder)):
        raise DamagedCache("meta.json's config is not the one the folder name stands for")
    expected = meta_scalars(dcfg)
    wrong = [key for key in expected if meta.get(key) != expected[key]]
    if wrong:
        raise DamagedCache(f"meta.json has wrong {', '.join(wrong)}")
    records = meta.get('arrays')
    want = layouts(meta)
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
            raise configurator.ConfigError(f"data_dir: {path} holds pickled objects, which pathstar never writes "
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
        arrays = {name: read_npy(folder, name, records[name], mmap) for name in FILES}
    except PermissionError as e:
        raise configurator.ConfigError(f"data_dir: cannot read the dataset cache {folder}: {e.strerror}; "
                                       f"fix its permissions or delete it") from None
    meta['paths'] = arrays.pop('paths')
    try:
        holdout = np.array(meta['holdout_arms'], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        holdout = None
    if holdout is None or list(holdout.shape) != records['holdout_arms']['shape']:
        raise DamagedCache("meta.json's holdout_arms are not a list of arm numbers")
    check_array('holdout_arms', holdout, records['holdout_arms'])  # so they are the arms that were held out
    meta['holdout_arms'] = holdout
    meta['train_arms'] = other_arms(meta['d'], meta['holdout_arms'])
    return PathStarData(**arrays, meta=meta, path=folder)


def check_place(folder):
    """A ConfigError, before anything is written, when a file is where a folder of the cache belongs."""
    data_dir = os.path.dirname(folder) or '.'
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise configurator.ConfigError(f"data_dir: {data_dir!r} is a file, not a folder; move it away or set "
                                       f"data_dir to a folder")
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise configurator.ConfigError(f"data_dir: {folder} is a file where the dataset cache folder belongs; "
                                       f"move it away or delete it")
    if os.path.isdir(folder + '.lock'):
        raise configurator.ConfigError(f"data_dir: {folder}.lock is a folder where the dataset cache's lock file "
                                       f"belongs; move it away or delete it")


def lock_holder(fd):
    """'pid N on HOST' as the lock's holder wrote it, or 'another process' before it has."""
    words = os.pread(fd, 300, 0).decode('utf-8', 'replace').split()
    return f"pid {words[0]} on {words[1]}" if len(words) == 2 and words[0].isdigit() else "another process"


@contextlib.contextmanager
def build_lock(folder):
    """Hold {folder}.lock, waiting for whoever holds it (and saying so every WAIT_NOTICE_SECONDS).

    The kernel releases the lock when its holder closes the file or dies; while held, the file
    names the holder (pid and host).
    """
    data_dir = os.path.dirname(folder) or '.'
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as e:  # a user error (a file in the way, no permission): one line, exit code 2
        raise configurator.ConfigError(f"data_dir: cannot write the dataset cache under {data_dir!r}: "
                                       f"{e.strerror or type(e).__name__}") from None
    try:
        fd = os.open(folder + '.lock', os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise configurator.ConfigError(f"data_dir: cannot open the lock file {folder}.lock: "
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
    delete it; one line on stderr says so. A ConfigError naming the folder when it cannot be moved."""
    aside = f"{folder}.tmp-damaged-{os.getpid()}"
    try:
        os.rename(folder, aside)
    except OSError as e:
        raise configurator.ConfigError(f"data_dir: the dataset cache {folder} is damaged ({reason}) and cannot be "
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
        arrays, meta = build_arrays(dcfg)
        try:
            write_dataset(arrays, meta, temp)
            os.rename(temp, folder)  # atomic: readers see no folder or a whole one
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return PathStarData(**arrays, meta=meta, path=folder, build_seconds=time.time() - start)


def load_or_build(cfg, verbose=True, mmap=False):
    """The dataset for cfg's dataset keys, from its cache folder, building it first if needed.

    cfg needs the dataset keys (missing ones take their defaults) and data_dir; bad values
    raise configurator.ConfigError before anything is written. mmap=True maps an existing cache's arrays
    read-only instead of reading them (a fresh build is in memory already). A damaged cache folder is
    rebuilt, with one line on stderr saying so.
    """
    dcfg, folder = data_config(cfg), cache_dir(cfg)
    check_place(folder)
    data = None
    if is_built(folder):
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


# -----------------------------------------------------------------------------
# the command line

def human_bytes(n):
    for unit in ('B', 'KB', 'MB', 'GB'):
        if n < 1024 or unit == 'GB':
            return f"{n:.0f} {unit}" if unit == 'B' else f"{n:.1f} {unit}"
        n /= 1024


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))


def summary(data):
    """A few lines about the dataset and a handful of decoded rows, never the whole thing."""
    m = data.meta
    n_edges, n_paths = m['num_edge_rows'], len(m['train_arms'])
    built = (f"built in {data.build_seconds:.2f} s" if data.build_seconds is not None
             else "reused the existing cache")
    lines = [
        f"graph      {m['d']} arms x {m['l']} nodes per path = {m['num_nodes']:,} nodes, "
        f"labels from range({m['graph_vocab_size']:,})",
        f"vocab      {m['vocab_size']:,} tokens ({NODE_OFFSET} special + nodes), stored as {m['dtype']}",
        f"train      {len(data.train_rows):,} rows = {n_edges:,} edge rows + {n_paths:,} paths x "
        f"{m['path_replication']}",
        f"val        {len(data.val_rows):,} rows (held-out paths)",
        f"row length T={m['row_len']} (edge rows {m['edge_row_len']}, path prompt {m['path_prompt_len']})",
        f"on disk    {human_bytes(folder_bytes(data.path))} in {data.path}",
        f"build      {built}",
    ]
    # the first forward edges, and the first backward one when there are any
    edge_picks = sorted({i for i in (0, 1, n_edges // 2) if i < n_edges})
    shown = [('edge row', data.train_rows[i]) for i in edge_picks]
    shown += [('train path', data.train_rows[n_edges + i]) for i in range(min(2, n_paths))]
    shown += [('val path', data.val_rows[i]) for i in range(min(2, len(data.val_rows)))]
    lines += [f"{label:10s} {data.decode(row)}" for label, row in shown]
    return '\n'.join(lines)


def main():
    cfg = configurator.parse_args(sys.argv[1:])
    print(summary(load_or_build(cfg, verbose=False, mmap=True)))


if __name__ == '__main__':
    configurator.exit_on_config_error(main)
