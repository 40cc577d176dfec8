"""What a local sweep keeps on disk, and what happens when that goes wrong: a journal whose last record a
crash or a full disk cut off, a damaged line, a --storage path that is a folder or does not exist, a
sweeps/<id>/sweep.yaml edited after creation; and the memory an agent frees between its trials."""
import gc
import glob
import json
import os
import subprocess
import sys
import weakref

import pytest
import yaml

import run_sweep
from pathstar.sweeps import local as sweep_local
from pathstar.sweeps import space as sweep_space
import train
from conftest import ROOT, cli_result

RUN_SWEEP = os.path.join(ROOT, 'run_sweep.py')
TINY = dict(graph_d=4, graph_l=3, num_pause_tokens=1, graph_holdout_percentage=0.25, n_layer=1, n_head=2, n_embd=32,
            epochs=3, eval_interval=100, log_interval=100, device='cpu')


def write_sweep(path, **swept):
    params = {key: {'value': value} for key, value in TINY.items() if key not in swept}
    params.update(swept)
    path.write_text(yaml.safe_dump(dict(method='grid', metric=dict(name='val/loss/overall', goal='minimize'),
                                        parameters=params)))
    return str(path)


def run(args, cwd):
    """python3 run_sweep.py args in cwd (in this process: conftest.run_cli), not logged in to wandb."""
    return cli_result(run_sweep.main, args, cwd, dict(HOME=str(cwd)))


def run_process(args, cwd):
    """The same as a process of its own, for an agent that must be gone afterwards."""
    env = dict(os.environ, HOME=str(cwd), OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, RUN_SWEEP, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def create(tmp_path, monkeypatch, **swept):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path / 'grid.yaml', **swept)
    return sweep_local.create_local_sweep(sweep_space.check_sweep(sweep_space.load_sweep_file(path)), None)


def records(path):
    """Every line of a journal, parsed: raises if one is not JSON or the file does not end with a newline."""
    data = open(path, 'rb').read()
    assert data.endswith(b'\n')
    return [json.loads(line) for line in data.splitlines()]


def table(stdout):
    """--results rows as {trial number: [state, value, ..., note words]}."""
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines()[2:]}


def states(study):
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def assert_one_error_line(result, *texts):
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'Traceback' not in result.stderr and result.stderr.count('\n') == 1, result.stderr
    assert result.stderr.startswith('error: ') and all(text in result.stderr for text in texts), result.stderr


# -----------------------------------------------------------------------------
# the journal: a cut-off last record, a damaged line

def test_a_cut_off_last_record_is_set_aside_and_the_sweep_goes_on(tmp_path):
    """The issue, step by step: truncate the last 40 bytes of a journal with a finished trial, run
    --results, join with --count 1, run --results again."""
    first = run_process(['--sweep_config', write_sweep(tmp_path / 'grid.yaml'), '--backend', 'local'], tmp_path)
    assert first.returncode == 0, first.stderr
    (sweep_id,) = os.listdir(tmp_path / 'sweeps')
    journal = tmp_path / 'sweeps' / sweep_id / 'journal.log'
    whole = journal.read_bytes()
    last = whole.splitlines(keepends=True)[-1]
    assert json.loads(last)['op_code'] == 6 and len(last) > 40  # the record that finished trial 0
    journal.write_bytes(whole[:-40])

    shown = run(['--sweep_id', sweep_id, '--results'], tmp_path)
    assert shown.returncode == 0, shown.stderr
    (side,) = glob.glob(str(journal) + '.partial-*')
    assert shown.stderr == (f"warning: sweeps/{sweep_id}/journal.log: set aside a partial last record "
                            f"({len(last) - 40} bytes) in sweeps/{sweep_id}/{os.path.basename(side)}\n")
    assert open(side, 'rb').read() == last[:-40] + b'\n'
    assert journal.read_bytes() == whole[:-len(last)]  # the complete records, untouched
    # the record that finished it is lost, and the table says what will happen to the trial
    assert table(shown.stdout)['0'][:2] == ['RUNNING', '-']
    assert ' '.join(table(shown.stdout)['0']).endswith(' its agent is gone; the next agent to join re-runs it')

    joined = run(['--sweep_id', sweep_id, '--count', '1'], tmp_path)
    assert joined.returncode == 0, joined.stderr
    assert 'partial' not in joined.stderr and 'agent done: 1 of 1 trials finished' in joined.stdout
    assert f"resuming from sweeps/{sweep_id}/trial_0/ckpt.pt" in joined.stdout

    again = run(['--sweep_id', sweep_id, '--results'], tmp_path)
    assert again.returncode == 0 and again.stderr == '', again.stderr
    rows = table(again.stdout)
    assert rows['0'][0] == 'FAILED' and rows['1'][0] == 'FINISHED' and rows['1'][-3:] == ['retry', 'of', '0']
    assert all(record['op_code'] in range(11) for record in records(journal))
    assert glob.glob(str(journal) + '.partial-*') == [side]


def test_an_agent_already_running_sets_a_cut_off_record_aside_before_it_appends(tmp_path, monkeypatch, capsys):
    sweep_id = create(tmp_path, monkeypatch, n_layer={'values': [1, 2]})
    study, storage, _ = sweep_local.open_local_sweep(sweep_id, None)  # opened while the journal was whole
    journal = os.path.join('sweeps', sweep_id, 'journal.log')
    whole = open(journal, 'rb').read()
    cut = b'{"op_code":8,"worker_id":"crashed","trial_id":1,"user_attr":{"heart'
    with open(journal, 'ab') as f:  # another agent's append, cut off by a crash
        f.write(cut)
    capsys.readouterr()
    assert states(study) == ['WAITING', 'WAITING']  # reading skips the cut-off record, as optuna always did
    storage.set_trial_user_attr(sweep_local.trial_id(storage, study, 0), 'note', 'written after the crash')
    assert f"set aside a partial last record ({len(cut)} bytes)" in capsys.readouterr().err
    assert open(journal, 'rb').read().startswith(whole) and len(records(journal)) == whole.count(b'\n') + 1
    study, _, _ = sweep_local.open_local_sweep(sweep_id, None)
    assert study.trials[0].user_attrs['note'] == 'written after the crash'
    assert 'heart' not in json.dumps(study.trials[1].user_attrs)


@pytest.mark.parametrize('damage', ['middle', 'run_together'])
def test_a_damaged_line_is_one_error_naming_the_file_and_the_line(damage, tmp_path, monkeypatch):
    """A damaged line in the middle, or what an older agent left: a record appended onto a cut-off one.
    Then the repairs SWEEP_GUIDE.md gives for each: delete the line; delete the cut-off part."""
    sweep_id = create(tmp_path, monkeypatch, n_layer={'values': [1, 2]})
    def fake_train(cfg):
        return {'val/loss/overall': 0.5}
    assert run_sweep.main(['--sweep_id', sweep_id, '--count', '1'], train_fn=fake_train) == 0
    journal = tmp_path / 'sweeps' / sweep_id / 'journal.log'
    lines = journal.read_bytes().splitlines(keepends=True)
    if damage == 'middle':  # a trial's user attribute (op_code 8), e.g. its heartbeat
        number = next(n for n, line in enumerate(lines, 1) if line.startswith(b'{"op_code":8,'))
        damaged = lines[:number - 1] + [lines[number - 1][:25] + b'\n'] + lines[number:]
        repaired = lines[:number - 1] + lines[number:]
    else:
        number = len(lines)
        damaged = lines[:-1] + [lines[-1][:30] + lines[-1]]
        repaired = lines
    journal.write_bytes(b''.join(damaged))
    for args in (['--sweep_id', sweep_id, '--count', '1'], ['--sweep_id', sweep_id, '--results']):
        result = run(args, tmp_path)
        assert_one_error_line(result, f"sweeps/{sweep_id}/journal.log: line {number} is damaged",
                              "'Recovering a damaged sweep' in SWEEP_GUIDE.md")
        assert result.stdout == '' and journal.read_bytes() == b''.join(damaged)
    assert sorted(os.listdir(journal.parent)) == ['journal.log', 'sweep.yaml']

    journal.write_bytes(b''.join(repaired))
    result = run(['--sweep_id', sweep_id, '--results'], tmp_path)
    assert result.returncode == 0 and result.stderr == '', result.stderr
    assert table(result.stdout)['0'][:2] == ['FINISHED', '0.5'] and table(result.stdout)['1'][0] == 'QUEUED'


# -----------------------------------------------------------------------------
# --storage: only creating a sweep makes a journal file, and only in a folder that exists

@pytest.mark.parametrize('args, message', [
    (['--sweep_config', 'grid.yaml', '--storage', 'nowhere/sweeps.log'],
     "--storage nowhere/sweeps.log: the folder nowhere does not exist; create it first"),
    (['--sweep_config', 'grid.yaml', '--storage', 'folder'],
     "--storage folder: is a folder; give the path of a journal file, e.g. folder/sweeps.log"),
    (['--sweep_config', 'grid.yaml', '--storage', 'grid.yaml/sweeps.log'],
     "--storage grid.yaml/sweeps.log: the folder grid.yaml is not a folder"),
    (['--sweep_config', 'grid.yaml', '--storage', 'grid.yaml'],
     "grid.yaml: is not an optuna journal file (line 1 is not a journal record)"),
    (['--sweep_id', 'abc123', '--storage', 'other.json'], "other.json: is not an optuna journal file; pass the "
                                                          "journal the sweep was created with"),
    (['--sweep_id', 'abc123', '--storage', 'wrong.log'],
     "--storage wrong.log: does not exist; a journal file is made only when a sweep is created"),
    (['--sweep_id', 'abc123', '--storage', 'nowhere/sweeps.log', '--results'], "--storage nowhere/sweeps.log: does "
                                                                                "not exist"),
    (['--sweep_id', 'abc123', '--storage', 'folder'], "--storage folder: is a folder"),
    (['--sweep_id', 'abc123', '--storage', 'empty.log'], "sweep abc123: not found in empty.log"),
], ids=['create_in_a_missing_folder', 'create_in_a_folder', 'create_below_a_file', 'create_in_a_yaml_file',
        'join_a_json_file_without_a_newline', 'join_a_missing_file',
        'results_in_a_missing_folder', 'join_a_folder', 'join_the_wrong_journal'])
def test_a_bad_storage_path_is_one_line_and_leaves_nothing_on_disk(args, message, tmp_path):
    write_sweep(tmp_path / 'grid.yaml', n_layer={'values': [1]})
    (tmp_path / 'folder').mkdir()
    (tmp_path / 'empty.log').write_bytes(b'')
    (tmp_path / 'other.json').write_bytes(b'{"a": 1}')  # no newline: not to be taken for a cut-off record
    before = {path: open(path, 'rb').read() for path in glob.glob(str(tmp_path / '**'), recursive=True)
              if os.path.isfile(path)}
    assert_one_error_line(run(['--backend', 'local', *args], tmp_path), message)
    assert sorted(os.listdir(tmp_path)) == ['empty.log', 'folder', 'grid.yaml', 'other.json']
    assert os.listdir(tmp_path / 'folder') == []
    assert all(open(path, 'rb').read() == data for path, data in before.items())


def test_a_journal_named_by_storage_is_made_by_creation_and_read_by_joiners(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    def fake_train(cfg):
        return {'val/loss/overall': 0.5}
    path = write_sweep(tmp_path / 'grid.yaml', n_layer={'values': [1]})
    assert run_sweep.main(['--sweep_config', path, '--backend', 'local', '--storage', 'shared.log',
                           '--create_only'], train_fn=fake_train) == 0
    sweep_id = capsys.readouterr().out.split('Sweep created! ID: ')[1].split()[0]
    assert run_sweep.main(['--sweep_id', sweep_id, '--storage', 'shared.log'], train_fn=fake_train) == 0
    assert run_sweep.main(['--sweep_id', sweep_id, '--storage', 'shared.log', '--results'], train_fn=fake_train) == 0
    assert table(capsys.readouterr().out.split(f"sweep {sweep_id}: grid")[-1])['0'][:2] == ['FINISHED', '0.5']
    assert os.path.isfile('shared.log') and os.listdir(tmp_path / 'sweeps' / sweep_id) == ['sweep.yaml']


# -----------------------------------------------------------------------------
# sweeps/<id>/sweep.yaml is a copy: the study's config is the one used

def test_joining_after_sweep_yaml_was_edited_says_the_stored_config_is_used(tmp_path, monkeypatch, capsys):
    sweep_id = create(tmp_path, monkeypatch, n_layer={'values': [1, 2]})
    seen = []
    def fake_train(cfg):
        return seen.append(cfg['n_layer']) or {'val/loss/overall': 0.5}
    assert run_sweep.main(['--sweep_id', sweep_id, '--count', '1'], train_fn=fake_train) == 0
    assert 'warning' not in capsys.readouterr().err  # untouched: nothing to say

    copy = tmp_path / 'sweeps' / sweep_id / 'sweep.yaml'
    edited = yaml.safe_load(copy.read_text())
    edited['parameters']['n_layer'] = {'values': [3, 4]}
    copy.write_text(yaml.safe_dump(edited))
    assert run_sweep.main(['--sweep_id', sweep_id, '--count', '1'], train_fn=fake_train) == 0
    err = capsys.readouterr().err
    assert err == (f"warning: sweeps/{sweep_id}/sweep.yaml was changed after the sweep was created; the config "
                   f"stored in the sweep is the one used. To run the changed config, create a new sweep: "
                   f"python3 run_sweep.py --sweep_config sweeps/{sweep_id}/sweep.yaml\n")
    assert seen == [1, 2]
    assert run_sweep.main(['--sweep_config', str(copy), '--dry_run'], train_fn=fake_train) == 0  # the advice works


# -----------------------------------------------------------------------------
# memory

def test_a_finished_trials_model_is_freed_before_the_next_trial_starts(tmp_path, monkeypatch):
    """The model, optimizer and data of a trial sit in reference cycles; with the collector off, only
    the agent's own gc.collect() after each trial frees them."""
    sweep_id = create(tmp_path, monkeypatch, n_layer={'values': [1, 2]})
    models, alive_at_start = [], []
    real_train = train.train

    def hook(event, run):
        if event == 'start':
            alive_at_start.append([ref() is not None for ref in models])
            models.append(weakref.ref(run.model))
    def fake_train(cfg):
        return real_train(cfg, hook)
    gc.collect()
    gc.disable()
    try:
        assert run_sweep.main(['--sweep_id', sweep_id], train_fn=fake_train) == 0
        assert alive_at_start == [[], [False]] and [ref() for ref in models] == [None, None]
    finally:
        gc.enable()
