"""
Bad input, as a user or a sweep config gives it: every case below must stop with exit code 2,
exactly one line on stderr that starts with 'error:' and names the key or problem, no traceback,
nothing on stdout, and nothing new on disk (no dataset, no out_dir, no wandb/ folder).

Each case runs the real `python3 train.py ...` or `python3 pathstar_data.py ...` entry point
(its `if __name__ == '__main__'` block) in an empty working directory holding only the case's own
files, with data_dir, out_dir and WANDB_DIR inside it and wandb logging on. To pay for the torch
import once, one helper process imports everything and forks a child per case; a few cases also
run as fresh interpreters.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from pathstar.training import device
from pathstar.data import cache as pathstar_cache
import train
from configurator import UserError
from conftest import ROOT
from pathstar.tokens import MAX_VOCAB_SIZE, NODE_OFFSET
from pathstar import validate
from conftest import checked

MAX_NODE_LABELS = MAX_VOCAB_SIZE - NODE_OFFSET  # the largest graph_vocab_size whose token ids fit in uint32

TRAIN, DATA = 'train.py', 'pathstar_data.py'

# given before every train.py case (the case's own arguments come after and win): wandb on, so a
# wandb/ folder would show up, and a run so small that a case wrongly let through costs seconds
TRAIN_BASE = ['--data_dir=data', '--out_dir=out', '--wandb_log=true', '--wandb_mode=offline', '--device=cpu',
              '--n_layer=1', '--n_head=2', '--n_embd=32', '--max_iters=2', '--eval_interval=1', '--eval_samples=8']
DATA_BASE = ['--data_dir=data']

def case(script, name, args, expect, files=None, api=True):
    """One bad input. expect: text the error line must contain (a str, or a tuple of strs).
    files: {relative path: text} created in the working directory first (config files, blockers).
    api: the args are plain --key=value overrides, so train(config) gets the same dict (see below)."""
    expect = (expect,) if isinstance(expect, str) else expect
    return pytest.param(dict(script=script, name=name, args=args, expect=expect, files=files or {}, api=api),
                        id=f"{script.split('.')[0]}-{name}")


DEFAULT_CACHE = pathstar_cache.cache_dir(checked({'data_dir': 'data'}))  # the cache folder of the defaults
CASES = [
    # keys
    case(TRAIN, 'unknown-key', ['--foo_bar=1'], ("unknown config key 'foo_bar'", 'configurator.py')),
    case(TRAIN, 'misspelt-key-gets-a-suggestion', ['--n_layers=4'],
         "unknown config key 'n_layers'; did you mean n_layer"),
    case(TRAIN, 'key-without-value', ['--graph_d'], "expected --key=value, got '--graph_d'", api=False),
    case(TRAIN, 'empty-key-name', ['--=3'], "unknown config key ''", api=False),
    # types
    case(TRAIN, 'int-given-a-word', ['--graph_d=ten'], "graph_d: expected an integer, got 'ten'"),
    case(TRAIN, 'int-given-a-fraction', ['--epochs=1.5'], "epochs: expected an integer, got '1.5'"),
    case(TRAIN, 'bool-given-a-number', ['--use_undirected=2'], 'use_undirected: expected true/false'),
    case(TRAIN, 'float-with-trailing-junk', ['--learning_rate=1e-3abc'], 'learning_rate: expected a number'),
    case(TRAIN, 'empty-value', ['--epochs='], 'epochs: empty value'),
    case(TRAIN, 'choice-not-in-the-list', ['--wandb_mode=sometimes'],
         'wandb_mode: expected one of auto, online, offline, disabled'),
    # numbers out of range
    case(TRAIN, 'nan-learning-rate', ['--learning_rate=nan'], 'learning_rate: must be a finite number'),
    case(TRAIN, 'minus-inf-learning-rate', ['--learning_rate=-inf'], 'learning_rate: must be a finite number'),
    case(TRAIN, 'negative-learning-rate', ['--learning_rate=-1e-3'], 'learning_rate: must be > 0'),
    case(TRAIN, 'zero-epochs', ['--epochs=0'], 'epochs: must be >= 1, got 0'),
    case(TRAIN, 'negative-epochs', ['--epochs=-5'], 'epochs: must be >= 1, got -5'),
    case(TRAIN, 'zero-accumulation-steps', ['--gradient_accumulation_steps=0'],
         'gradient_accumulation_steps: must be >= 1'),
    case(TRAIN, 'dropout-of-one', ['--dropout=1'], 'dropout: must be in [0, 1)'),
    case(TRAIN, 'negative-batch-size', ['--batch_size=-1'], "batch_size: must be 'auto' or an int >= 1"),
    case(TRAIN, 'batch-larger-than-the-graphs-rows', ['--graph_d=10', '--graph_holdout_percentage=0.2',
                                                      '--batch_size=100000'],
         ('batch_size: 100000 is more than the 160 training rows', "use 'auto' or <= 160")),
    # the graph
    case(TRAIN, 'one-arm', ['--graph_d=1'], 'graph_d: must be >= 2, got 1'),
    case(TRAIN, 'one-node-paths', ['--graph_l=1'], 'graph_l: must be >= 2, got 1'),
    case(TRAIN, 'negative-pause-tokens', ['--num_pause_tokens=-1'], 'num_pause_tokens: must be >= 0'),
    case(TRAIN, 'vocab-below-the-node-count', ['--graph_d=10', '--graph_vocab_size=40'],
         'graph_vocab_size: vocab_size must be >= d * (l-1) + 1 = 10 * 4 + 1 = 41, got 40'),
    case(TRAIN, 'vocab-0max', ['--graph_vocab_size=0max'], "graph_vocab_size: expected an int or 'Nmax'"),
    case(TRAIN, 'vocab-abcmax', ['--graph_vocab_size=abcmax'], "graph_vocab_size: expected an int or 'Nmax'"),
    case(TRAIN, 'vocab-beyond-uint32-token-ids', ['--graph_vocab_size=1e100'],
         f'graph_vocab_size: must be <= {MAX_NODE_LABELS}'),
    case(TRAIN, 'teacherless-with-one-target', ['--path_target=first_hop', '--teacherless=true'],
         "teacherless: has no effect with path_target='first_hop'"),
    case(TRAIN, 'first-hop-loss-on-reversed-rows', ['--path_target=reversed', '--path_loss=first_hop'],
         "path_loss: 'first_hop' keeps target 2 of a root..leaf row, so it needs path_target='full'"),
    case(TRAIN, 'unknown-path-target', ['--path_target=backwards'],
         'path_target: expected one of full, first_hop, reversed'),
    case(TRAIN, 'holdout-that-rounds-to-no-held-out-leaf', ['--graph_d=10', '--graph_holdout_percentage=0.04'],
         'graph_holdout_percentage: 0.04 of graph_d=10 rounds to 0 held-out leaves; use >= 0.05 or 0'),
    case(TRAIN, 'holdout-that-leaves-no-training-path', ['--graph_d=10', '--graph_holdout_percentage=0.96'],
         'graph_holdout_percentage: 0.96 of graph_d=10 rounds to 10 held-out leaves, leaving no training path'),
    case(TRAIN, 'negative-holdout', ['--graph_holdout_percentage=-0.1'], 'graph_holdout_percentage: must be in [0, 1)'),
    case(TRAIN, 'negative-data-seed', ['--data_seed=-1'], 'data_seed: must be >= 0, got -1'),
    # the model and the recipe
    case(TRAIN, 'n_embd-not-divisible-by-n_head', ['--n_embd=30', '--n_head=4'],
         'n_embd: must be divisible by n_head, got n_embd=30, n_head=4'),
    case(TRAIN, 'zero-heads', ['--n_head=0'], 'n_head: must be >= 1, got 0'),
    case(TRAIN, 'staged-recipe-with-an-empty-edge-stage',
         ['--epochs=300', '--recipe=staged', '--staged_edge_frac=0.001'],
         'staged_edge_frac: 0.001 of epochs=300 leaves an empty stage'),
    case(TRAIN, 'staged-recipe-with-an-empty-path-stage',
         ['--epochs=300', '--recipe=staged', '--staged_edge_frac=0.999'],
         'staged_edge_frac: 0.999 of epochs=300 leaves an empty stage'),
    case(TRAIN, 'negative-seed', ['--seed=-1'], 'seed: must be'),
    case(TRAIN, 'seed-too-large-for-the-epoch-shuffle', ['--seed=99999999999999'], 'seed: must be'),
    # the system
    case(TRAIN, 'cuda-on-a-machine-without-cuda', ['--device=cuda'],
         "device: 'cuda' asked for but CUDA is not available"),
    case(TRAIN, 'mps-on-a-machine-without-mps', ['--device=mps'], "device: 'mps'"),
    case(TRAIN, 'half-precision-on-cpu', ['--dtype=float16'], 'dtype: float16'),
    case(TRAIN, 'resume-without-a-checkpoint', ['--init_from=resume'],
         "init_from: 'resume' needs out/ckpt.pt, which does not exist"),
    case(TRAIN, 'resume-from-a-file-that-is-not-a-checkpoint', ['--init_from=resume'], 'out/ckpt.pt',
         files={'out/ckpt.pt': 'not a checkpoint\n'}),
    case(TRAIN, 'data_dir-below-a-file', ['--data_dir=blocker/data'],
         "data_dir: cannot create 'blocker/data'", files={'blocker': 'a file\n'}),
    case(TRAIN, 'out_dir-below-a-file', ['--out_dir=blocker/out'], 'out_dir', files={'blocker': 'a file\n'}),
    # config files (the user's own Python, run with runpy)
    case(TRAIN, 'missing-config-file', ['nope.py'], 'config file not found: nope.py', api=False),
    case(TRAIN, 'config-file-assigning-an-unknown-key', ['my.py'],
         "my.py: unknown config key 'learning_rte'; did you mean learning_rate",
         files={'my.py': 'n_layer = 1\nlearning_rte = 1e-3\n'}, api=False),
    case(TRAIN, 'config-file-assigning-a-wrong-type', ['my.py'], "graph_d: expected an integer, got 'ten'",
         files={'my.py': "graph_d = 'ten'\n"}, api=False),
    case(TRAIN, 'config-file-assigning-nan', ['my.py'], 'learning_rate: must be a finite number',
         files={'my.py': "learning_rate = float('nan')\n"}, api=False),
    case(TRAIN, 'config-file-with-a-syntax-error', ['my.py'], ('my.py', 'line 2'),
         files={'my.py': 'graph_d = 10\nn_layer = = 4\n'}, api=False),
    case(TRAIN, 'config-file-raising-an-error', ['my.py'], ('my.py', 'line 3', 'NameError'),
         files={'my.py': 'import math\ngraph_d = 10\nn_layer = layers * 2\n'}, api=False),
    case(TRAIN, 'yaml-file-given-as-a-config-file', ['sweep.yaml'], 'sweep.yaml',
         files={'sweep.yaml': 'method: grid\nparameters:\n  graph_d: {values: [10, 20]}\n'}, api=False),

    # pathstar_data.py's own command line
    case(DATA, 'misspelt-key-gets-a-suggestion', ['--grap_l=3'], "unknown config key 'grap_l'; did you mean graph_l"),
    case(DATA, 'key-without-value', ['--graph_l'], "expected --key=value, got '--graph_l'"),
    case(DATA, 'bool-given-a-word', ['--use_undirected=perhaps'], 'use_undirected: expected true/false'),
    case(DATA, 'empty-value', ['--num_pause_tokens='], 'num_pause_tokens: empty value'),
    case(DATA, 'vocab-0max', ['--graph_vocab_size=0max'], "graph_vocab_size: expected an int or 'Nmax'"),
    case(DATA, 'vocab-abcmax', ['--graph_vocab_size=abcmax'], "graph_vocab_size: expected an int or 'Nmax'"),
    case(DATA, 'vocab-below-the-node-count', ['--graph_d=5', '--graph_l=3', '--graph_vocab_size=10'],
         'vocab_size must be >= d * (l-1) + 1 = 5 * 2 + 1 = 11, got 10'),
    case(DATA, 'vocab-whose-ids-would-wrap-in-uint32', ['--graph_d=2', '--graph_l=2', '--graph_vocab_size=5000000000',
                                                        '--graph_holdout_percentage=0'],
         f'graph_vocab_size: must be <= {MAX_NODE_LABELS} (token ids are stored as uint32), got 5000000000'),
    case(DATA, 'negative-pause-tokens', ['--num_pause_tokens=-2'], 'num_pause_tokens: must be >= 0, got -2'),
    case(DATA, 'holdout-that-leaves-no-training-path', ['--graph_d=2', '--graph_holdout_percentage=0.9'],
         'graph_holdout_percentage: 0.9 of graph_d=2 rounds to 2 held-out leaves, leaving no training path'),
    case(DATA, 'negative-data-seed', ['--data_seed=-1'], 'data_seed: must be >= 0, got -1'),
    case(DATA, 'data_dir-below-a-file', ['--data_dir=blocker/data'],
         "data_dir: cannot write the dataset cache under 'blocker/data': Not a directory", files={'blocker': 'x\n'}),
    case(DATA, 'config-file-with-a-syntax-error', ['my.py'], ('my.py', 'line 1'),
         files={'my.py': 'graph_d = (10\n'}),
    # the dataset cache's place taken by a file (the cache folder's name is the default config's)
    case(DATA, 'file-where-the-cache-folder-belongs', [],
         (f"data_dir: {DEFAULT_CACHE}", 'is a file where the dataset cache folder belongs'),
         files={DEFAULT_CACHE: 'x\n'}),
    case(TRAIN, 'file-where-the-cache-folder-belongs', [],
         (f"data_dir: {DEFAULT_CACHE}", 'is a file where the dataset cache folder belongs'),
         files={DEFAULT_CACHE: 'x\n'}),
    case(DATA, 'data_dir-that-is-a-file', ['--data_dir=blocker'], "data_dir: 'blocker' is a file, not a folder",
         files={'blocker': 'x\n'}),
    case(TRAIN, 'data_dir-that-is-a-file', ['--data_dir=blocker'], "data_dir: 'blocker' is a file, not a folder",
         files={'blocker': 'x\n'}),
    # a run's folder and the keys of the later issues
    case(TRAIN, 'wandb-project-wandb-refuses', ['--wandb_project=a/b'], "wandb_project: 'a/b' is not a wandb project"),
    case(TRAIN, 'half-precision-on-an-explicit-cpu', ['--dtype=float16', '--device=cpu'],
         'dtype: float16 needs a CUDA device'),
    case(TRAIN, 'out_dir-name-longer-than-the-file-system-allows', ['--out_dir=' + 'x' * 300],
         'file systems allow 255'),
    case(TRAIN, 'a-folder-where-summary-json-goes', ['--out_dir=out'], 'summary.json is a folder',
         files={'out/summary.json/x': 'x\n'}),
    case(TRAIN, 'a-new-run-over-a-finished-one', ['--out_dir=out'],
         ('already holds a finished run', '--overwrite_out_dir=True'), files={'out/summary.json': '{}\n'}),
    case(TRAIN, 'edge_checkpoint-without-two-stages', ['--edge_checkpoint=edges.pt'], "only recipe='two_stage'"),
    case(TRAIN, 'two-stage-edge-batch-over-the-edge-rows', ['--recipe=two_stage'],
         'edge_batch_size: 16384 is more than the 1600 edge rows'),
    case(DATA, 'folder-where-the-cache-lock-file-belongs', [],
         (f"data_dir: {DEFAULT_CACHE}", ".lock is a folder where the dataset cache's lock file belongs"),
         files={DEFAULT_CACHE + '.lock/x': 'x\n'}),
]

# -----------------------------------------------------------------------------
# running the cases

HELPER = r'''
"""Import train.py's dependencies once, then fork a child per case (4 at a time) that runs the real entry point."""
import json, os, runpy, sys, time, traceback
root, cases_file = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)
import torch, torch._dynamo, wandb, train, pathstar_data  # noqa: F401  (imported once, for every child)


def run_case(c):
    """In the forked child: the case's cwd and files, argv, and stdout/stderr; never returns."""
    code = 1
    try:
        os.chdir(os.path.join(c['home'], 'cwd'))
        os.environ['WANDB_DIR'] = os.getcwd()
        for fd, name in ((1, 'stdout'), (2, 'stderr')):
            os.dup2(os.open(os.path.join(c['home'], name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.argv = [c['script'], *c['argv']]
        try:
            runpy.run_path(os.path.join(root, c['script']), run_name='__main__')
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()  # what the interpreter would print
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


pending, running, results = json.load(open(cases_file)), {}, {}
while pending or running:
    while pending and len(running) < 4:
        c = pending.pop(0)
        pid = os.fork()
        if pid == 0:
            run_case(c)
        running[pid] = (c, time.time())
    time.sleep(0.005)
    for pid, (c, started) in list(running.items()):
        done, raw = os.waitpid(pid, os.WNOHANG)
        if not done and time.time() - started < 90:
            continue
        if not done:  # nothing may hang
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        del running[pid]
        out = {name: open(os.path.join(c['home'], name)).read() for name in ('stdout', 'stderr')}
        results[c['id']] = dict(out, code=os.waitstatus_to_exitcode(raw) if done else 'hung',
                                seconds=round(time.time() - started, 2))
print(json.dumps(results))
'''


def tree(folder):
    """Every file and folder under folder, as sorted relative paths."""
    found = []
    for base, dirs, files in os.walk(folder):
        found += [os.path.relpath(os.path.join(base, name), folder) for name in dirs + files]
    return sorted(found)


def argv_of(c):
    return (TRAIN_BASE if c['script'] == TRAIN else DATA_BASE) + c['args']


def make_home(root, c):
    """root/<id>/cwd holding the case's files; the captured output goes next to cwd, not in it."""
    home = root / f"{c['script']}-{c['name']}"
    for rel, text in c['files'].items():
        path = home / 'cwd' / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (home / 'cwd').mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture(scope='module')
def outcomes(tmp_path_factory):
    """Run every case through the forking helper: {case id: outcome}."""
    root = tmp_path_factory.mktemp('bad_input')
    cases = [p.values[0] for p in CASES]
    jobs = []
    for c in cases:
        home = make_home(root, c)
        jobs.append(dict(id=f"{c['script']}-{c['name']}", script=c['script'], argv=argv_of(c), home=str(home)))
    (root / 'cases.json').write_text(json.dumps(jobs))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', WANDB_MODE='offline', WANDB_SILENT='true')
    helper = subprocess.run([sys.executable, '-c', HELPER, ROOT, str(root / 'cases.json')], env=env,
                            capture_output=True, text=True, timeout=600)
    assert helper.returncode == 0, helper.stderr[-3000:]
    results = json.loads(helper.stdout.strip().splitlines()[-1])
    for c, job in zip(cases, jobs):
        results[job['id']]['new_files'] = sorted(set(tree(os.path.join(job['home'], 'cwd'))) - set(own_files(c)))
    return results


def own_files(c):
    """The case's own files and the folders that hold them."""
    paths = set()
    for rel in c['files']:
        parts = rel.split('/')
        paths |= {os.path.join(*parts[:i]) for i in range(1, len(parts) + 1)}
    return paths


def assert_rejected(outcome, expect):
    assert outcome['code'] == 2, outcome
    assert 'Traceback' not in outcome['stderr'], outcome['stderr']
    lines = outcome['stderr'].splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), outcome['stderr']
    for text in expect:
        assert text in lines[0], (text, lines[0])
    assert outcome['stdout'] == '', outcome['stdout']


@pytest.mark.parametrize('c', CASES)
def test_bad_input_exits_2_with_one_error_line_and_writes_nothing(outcomes, c):
    outcome = outcomes[f"{c['script']}-{c['name']}"]
    assert_rejected(outcome, c['expect'])
    assert outcome['new_files'] == [], outcome['new_files']  # no data/, out/, wandb/, nothing


def test_there_are_at_least_30_bad_input_cases_and_each_is_named_once():
    names = [p.id for p in CASES]
    assert len(names) >= 30 and len(set(names)) == len(names)


# two cases again in fresh interpreters, exactly as a user types them (no fork, no runpy)
@pytest.mark.parametrize('script, name', [(TRAIN, 'batch-larger-than-the-graphs-rows'),
                                          (DATA, 'vocab-whose-ids-would-wrap-in-uint32')])
def test_a_fresh_process_rejects_bad_input_the_same_way(tmp_path, script, name):
    c = next(p.values[0] for p in CASES if p.values[0]['name'] == name and p.values[0]['script'] == script)
    cwd = make_home(tmp_path, c) / 'cwd'
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', WANDB_DIR=str(cwd))
    out = subprocess.run([sys.executable, os.path.join(ROOT, script), *argv_of(c)], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    assert_rejected(dict(code=out.returncode, stdout=out.stdout, stderr=out.stderr), c['expect'])
    assert tree(cwd) == []


def test_a_cuda_index_beyond_the_visible_gpus_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    assert device.pick_device('cuda:0') == 'cuda:0'
    with pytest.raises(UserError, match=r"device: 'cuda:3' asked for but 1 CUDA device"):
        device.pick_device('cuda:3')


# -----------------------------------------------------------------------------
# the sweep's entry point: train(config) in-process gets the same checks as the command line

def overrides_of(args):
    return dict(arg[2:].split('=', 1) for arg in args)


API_CASES = [p.values[0] for p in CASES if p.values[0]['script'] == TRAIN and p.values[0]['api']]


def test_train_config_raises_config_error_for_the_same_bad_values_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for c in API_CASES:
        cwd = make_home(tmp_path, c) / 'cwd'
        monkeypatch.chdir(cwd)
        monkeypatch.setenv('WANDB_DIR', str(cwd))
        config = dict(overrides_of(TRAIN_BASE), **overrides_of(c['args']))
        with pytest.raises(UserError) as err:
            train.train(config)
        message = str(err.value)
        assert '\n' not in message and all(text in message for text in c['expect']), (c['name'], message)
        assert sorted(set(tree(cwd)) - own_files(c)) == [], c['name']


def test_override_values_are_data_never_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / 'pwned'
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    cfg = validate.parse_args([f'--wandb_run_name={payload}', f'--out_dir={payload}'])
    assert cfg['wandb_run_name'] == payload and cfg['out_dir'] == payload  # kept as text
    for key in ('graph_d', 'learning_rate', 'use_undirected', 'batch_size', 'graph_vocab_size', 'init_from'):
        with pytest.raises(UserError):
            validate.parse_args([f'--{key}={payload}'])
    assert not marker.exists()
