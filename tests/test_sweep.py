"""run_sweep.py (with sweep_local.py and sweep_storage.py), sweep_space.py and run_multi_gpu_sweep.sh: checks,
the local backend end to end, resuming, the wandb backend with fakes, and the shell script with a fake
nvidia-smi and python."""
import glob
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

import run_sweep
from pathstar.sweeps import local as sweep_local
from pathstar.sweeps import space as sweep_space
from pathstar.sweeps import storage as sweep_storage
import train
from conftest import ROOT, run_cli
from pathstar import validate

RUN_SWEEP = os.path.join(ROOT, 'run_sweep.py')
SCRIPT = os.path.join(ROOT, 'run_multi_gpu_sweep.sh')
# a graph and model that train in about a second on one core
TINY = dict(graph_d=4, graph_l=3, num_pause_tokens=1, graph_holdout_percentage=0.25, n_layer=1, n_head=2, n_embd=32,
            epochs=3, eval_interval=100, log_interval=100, device='cpu')
GRID4 = dict(learning_rate={'values': [1e-3, 3e-3]}, weight_decay={'values': [0.0, 0.1]})


def write_sweep(path, method='grid', metric=('val/loss/overall', 'minimize'), **swept):
    params = {key: {'value': value} for key, value in TINY.items() if key not in swept}
    params.update(swept)
    doc = dict(method=method, parameters=params)
    if metric:
        doc['metric'] = dict(name=metric[0], goal=metric[1])
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def sweep_env(tmp_path):
    """For child processes: offline wandb in tmp_path, not logged in, one thread each."""
    env = dict(os.environ, WANDB_MODE='offline', WANDB_SILENT='true', WANDB_DIR=str(tmp_path / 'wandb_home'),
               HOME=str(tmp_path), OMP_NUM_THREADS='1')
    env.pop('WANDB_API_KEY', None)
    return env


def run(args, cwd, tmp_path, timeout=120):
    return subprocess.run([sys.executable, RUN_SWEEP, *args], cwd=cwd, env=sweep_env(tmp_path),
                          capture_output=True, text=True, timeout=timeout)


def load(tmp_path, sweep_id):
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        study, _, sweep = sweep_local.open_local_sweep(sweep_id, None)
    finally:
        os.chdir(old)
    return study, sweep


def states(study):
    return [t.state.name for t in study.get_trials(deepcopy=False)]


# -----------------------------------------------------------------------------
# checking the sweep config: one line on stderr, exit 2, nothing created

BAD = {
    'malformed': ("method: grid\nparameters: [unclosed\n", "not valid YAML at line"),
    'not_a_mapping': ("- method\n- grid\n", "expected a mapping"),
    'unknown_method': ("method: hyperband\nparameters: {n_layer: {value: 2}}\n",
                       "method: expected grid, random or bayes, got 'hyperband'"),
    'bayes_without_metric': ("method: bayes\nparameters: {n_layer: {values: [1, 2]}}\n",
                             "metric: bayes needs a metric"),
    'bad_goal': ("method: random\nmetric: {name: val/loss/overall, goal: lower}\nparameters: {n_layer: {value: 2}}\n",
                 "goal must be minimize or maximize, got 'lower'"),
    'val_metric_without_holdout': ("method: random\nmetric: {name: val/loss/overall, goal: minimize}\nparameters:\n"
                                   "  graph_holdout_percentage: {values: [0.2, 0]}\n",
                                   "val/loss/overall is measured on held-out paths, but graph_holdout_percentage=0"),
    'unknown_parameter': ("method: random\nparameters: {lerning_rate: {values: [1e-3]}}\n",
                          "unknown config key 'lerning_rate'; did you mean learning_rate"),
    'grid_with_distribution': ("method: grid\nparameters:\n  learning_rate: {distribution: uniform, min: 1e-4, "
                               "max: 1e-3}\n", "learning_rate: grid search needs discrete values"),
    'min_not_below_max': ("method: random\nparameters:\n  learning_rate: {distribution: log_uniform_values, "
                          "min: 1e-2, max: 1e-4}\n", "learning_rate: min must be less than max"),
    'empty_values': ("method: grid\nparameters: {n_layer: {values: []}}\n", "n_layer: values must be a non-empty list"),
    'wrong_type': ("method: grid\nparameters: {n_layer: {values: [2, two]}}\n", "n_layer: expected an integer"),
    'uniform_on_an_int_key': ("method: random\nparameters: {n_layer: {distribution: uniform, min: 1, max: 4}}\n",
                              "n_layer: takes integers; use int_uniform"),
    'impossible_vocab': ("method: grid\nparameters:\n  graph_d: {values: [4, 500]}\n  graph_l: {values: [3, 11]}\n"
                         "  graph_vocab_size: {value: 2000}\n",
                         "= 500 * 10 + 1 = 5001, got 2000 (in the combination graph_d=500, graph_l=11, "
                         "graph_vocab_size=2000)"),
    'n_embd_n_head': ("method: bayes\nmetric: {name: val/loss/overall, goal: minimize}\nparameters:\n"
                      "  n_embd: {values: [64, 96]}\n  n_head: {values: [4, 12]}\n",
                      "n_embd: must be divisible by n_head, got n_embd=64, n_head=12 (in the combination "
                      "n_embd=64, n_head=12)"),
    'staged_recipe_too_short': ("method: grid\nparameters:\n  recipe: {value: staged}\n  epochs: {values: [1, 10]}\n",
                                "leaves an empty stage (0 edge epochs); need 0 < round(staged_edge_frac * epochs) "
                                "< epochs (in the combination recipe=staged, epochs=1)"),
    'holdout_rounds_to_zero': ("method: grid\nparameters:\n  graph_d: {values: [4, 10]}\n"
                               "  graph_holdout_percentage: {value: 0.1}\n",
                               "rounds to 0 held-out leaves; use >= 0.125 or 0 (in the combination graph_d=4, "
                               "graph_holdout_percentage=0.1)"),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_a_bad_sweep_config_is_one_line_and_exit_2(case, tmp_path):
    text, message = BAD[case]
    (tmp_path / 'bad.yaml').write_text(text)
    check_user_error(['--sweep_config', 'bad.yaml', '--backend', 'local'], message, tmp_path)  # would create


@pytest.mark.parametrize('args, message', [
    (['--sweep_config', 'missing.yaml'], "sweep config not found: missing.yaml"),
    (['--sweep_config', 'folder'], "cannot read sweep config folder"),  # root reads any file, so: a folder
    (['--sweep_config', 'binary.yaml'], "binary.yaml: not valid YAML"),
    (['--sweep_id', 'deadbeef', '--backend', 'local'], "sweep deadbeef: sweeps/deadbeef/journal.log does not exist"),
    (['--count', '3'], "give --sweep_config to create a sweep or --sweep_id to join one"),
    (['--sweep_id', 'x', '--cout', '3'], "unrecognized arguments: --cout 3"),
], ids=['missing_file', 'unreadable', 'binary', 'unknown_sweep_id', 'no_config_or_id', 'bad_flag'])
def test_bad_files_and_flags_are_one_line_and_exit_2(args, message, tmp_path):
    (tmp_path / 'folder').mkdir()
    (tmp_path / 'binary.yaml').write_bytes(b'\xff\xfe\x00method')
    check_user_error(args, message, tmp_path, allowed={'folder', 'binary.yaml'})


def check_user_error(args, message, cwd, allowed=('bad.yaml',)):
    code, _, err = run_cli(run_sweep.main, args, cwd, dict(HOME=str(cwd)))  # HOME: no wandb login
    assert code == 2, err
    assert err.startswith('error: ') and err.count('\n') == 1, err
    assert message in err
    assert sorted(os.listdir(cwd)) == sorted(allowed)  # no sweeps/, no data/


def test_numeric_strings_are_parsed_to_the_keys_type():
    raw = yaml.safe_load("method: random\nmetric: {name: val/accuracy/path, goal: maximize}\nparameters:\n"
                         "  learning_rate: {distribution: log_uniform_values, min: 1e-4, max: 1e-2}\n"
                         "  min_lr: {value: 1e-6}\n  graph_d: {values: ['20', 1e2]}\n"
                         "  bias: {values: [true, 'false']}\n")
    assert isinstance(raw['parameters']['learning_rate']['min'], str)  # what PyYAML does with 1e-4
    params = sweep_space.check_sweep(raw)['parameters']
    assert params['learning_rate'] == dict(distribution='log_uniform_values', min=1e-4, max=1e-2)
    assert params['min_lr'] == {'value': 1e-6}
    assert params['graph_d'] == {'values': [20, 100]} and params['bias'] == {'values': [True, False]}
    assert sweep_space.check_combinations(params) > 0


def test_a_batch_larger_than_some_graphs_rows_is_rejected_before_any_trial(tmp_path, monkeypatch, capsys):
    """batch_size x graph_d: G(4,3) has 31 training rows, G(40,3) has 310; 100 fits only the second."""
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path / 'grid.yaml', batch_size={'values': [16, 100]}, graph_d={'values': [40, 4]})
    for flag in ('--dry_run', '--create_only'):
        with pytest.raises(SystemExit) as stop:
            run_sweep.configurator.exit_on_user_error(
                lambda: run_sweep.main(['--sweep_config', path, '--backend', 'local', flag]))
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and err.startswith(
            "error: batch_size: 100 is more than the 31 training rows; use 'auto' or <= 31 "
            "(in the combination batch_size=100, graph_d=4, ")
    assert not os.path.exists('sweeps') or os.listdir('sweeps') == []


def test_every_rule_reads_only_the_keys_it_declares():
    """The sweep checker combines the values of keys that share a rule, so a rule that read an
    undeclared key could pass the check and fail a trial."""
    import configurator

    class Reads(dict):
        def __getitem__(self, key):
            self.seen.add(key)
            return dict.__getitem__(self, key)
    assert len(validate.RULES) > 30
    for keys, rule in validate.RULES:
        cfg = Reads(configurator.DEFAULTS, batch_size=10, recipe='staged')
        cfg.seen = set()
        rule(cfg)
        assert cfg.seen <= set(keys), (rule.__name__, cfg.seen - set(keys))


def test_ranges_are_checked_at_their_ends_and_int_ranges_next_to_them():
    with pytest.raises(run_sweep.UserError, match=r'min_lr: must be in .* \(in the combination '
                                                    r'learning_rate=0.0001, min_lr=0.001\)'):
        sweep_space.check_combinations(sweep_space.check_sweep(yaml.safe_load(
            "method: random\nparameters:\n  learning_rate: {distribution: log_uniform_values, min: 1e-4, max: 1e-2}\n"
            "  min_lr: {distribution: uniform, min: 0, max: 1e-3}\n"))['parameters'])
    with pytest.raises(run_sweep.UserError, match='n_embd=64, n_head=5'):  # 5 is in [4, 8] and divides nothing
        sweep_space.check_combinations(sweep_space.check_sweep(yaml.safe_load(
            "method: random\nparameters:\n  n_head: {distribution: int_uniform, min: 4, max: 8}\n"
            "  n_embd: {value: 64}\n"))['parameters'])


@pytest.mark.parametrize('variant', [{}, dict(path_target='first_hop', root_in_prompt=True)],
                         ids=['full', 'first_hop_root'])
def test_every_metric_name_the_checks_know_is_in_what_train_returns(tmp_path, capsys, variant):
    summary = train.train(dict(TINY, data_dir=str(tmp_path / 'data'), out_dir=str(tmp_path / 'out'), **variant))
    numeric = {k for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    names = sweep_space.summary_metric_names(TINY['graph_l'], path_target=variant.get('path_target', 'full'))
    assert set(names) == numeric  # exactly: on a CPU the log line has no mfu
    capsys.readouterr()
    sweep_space.check_metric_name('val/los', {})  # unknown: a warning with suggestions, not an error
    assert "warning: metric 'val/los' is not a summary key" in capsys.readouterr().err


@pytest.mark.parametrize('config', ['sweep_config.yaml', 'sweep_config_minimal.yaml'])
def test_the_shipped_configs_pass_the_dry_run(config, tmp_path):
    result = run(['--sweep_config', os.path.join(ROOT, config), '--dry_run'], tmp_path, tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'metric:       val/loss/overall (minimize)' in result.stdout
    assert ('4 grid points' if 'minimal' in config else 'unbounded') in result.stdout
    assert 'learning_rate' in result.stdout and 'nothing was created' in result.stdout
    assert os.listdir(tmp_path) == []


# -----------------------------------------------------------------------------
# the local backend end to end

def test_two_agents_share_a_sweep_without_losing_or_repeating_a_trial(tmp_path):
    path = write_sweep(tmp_path / 'grid.yaml', **GRID4)
    created = run(['--sweep_config', path, '--create_only', '--backend', 'local'], tmp_path, tmp_path)
    assert created.returncode == 0, created.stderr
    # the id is read the way run_multi_gpu_sweep.sh reads it
    sweep_id = subprocess.run(['sed', '-n', r's/^Sweep created! ID: *\([^ ]*\).*$/\1/p'], input=created.stdout,
                              capture_output=True, text=True).stdout.strip()
    assert len(sweep_id) == 8 and states(load(tmp_path, sweep_id)[0]) == ['WAITING'] * 4

    agents = [subprocess.Popen([sys.executable, RUN_SWEEP, '--sweep_id', sweep_id, '--count', '2'], cwd=tmp_path,
                               env=sweep_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    outputs = [agent.communicate(timeout=180) for agent in agents]
    for agent, (out, err) in zip(agents, outputs):
        assert agent.returncode == 0, err
        assert 'agent done: 2 of 2 trials finished' in out

    study, _ = load(tmp_path, sweep_id)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ['COMPLETE'] * 4
    assert sorted((t.params['learning_rate'], t.params['weight_decay']) for t in trials) == \
        [(1e-3, 0.0), (1e-3, 0.1), (3e-3, 0.0), (3e-3, 0.1)]
    assert all(math.isfinite(t.value) for t in trials)
    for t in trials:
        summary = json.load(open(tmp_path / 'sweeps' / sweep_id / f'trial_{t.number}' / 'summary.json'))
        assert summary['val/loss/overall'] == t.value

    table = run(['--sweep_id', sweep_id, '--results'], tmp_path, tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert '4 finished' in lines[0] and lines[1].split()[:3] == ['trial', 'state', 'val/loss/overall']
    shown = [float(line.split()[2]) for line in lines[2:6]]
    assert shown == sorted(shown) and shown[0] == pytest.approx(study.best_value, rel=1e-3)


def test_a_grid_runs_out_and_the_agent_stops(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path / 'grid.yaml', n_layer={'values': [1, 2]})
    assert run_sweep.main(['--sweep_config', path, '--count', '5', '--backend', 'local']) == 0
    out = capsys.readouterr().out
    assert 'no grid point left to run' in out and 'agent done: 2 of 2 trials finished' in out
    sweep_id = os.listdir('sweeps')[0]
    assert states(load(tmp_path, sweep_id)[0]) == ['COMPLETE', 'COMPLETE']


def test_a_failing_trial_is_marked_failed_and_the_agent_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'a_file').write_text('')  # a data_dir that cannot be created: only the trial can find out
    path = write_sweep(tmp_path / 'grid.yaml', data_dir={'values': [str(tmp_path / 'a_file' / 'data'), 'data']})
    assert run_sweep.main(['--sweep_config', path, '--backend', 'local']) == 0
    out, err = capsys.readouterr()
    assert 'Traceback' in err and 'data_dir: cannot create' in err
    assert 'trial 0 FAILED' in out and 'trial 1 finished' in out
    study, _ = load(tmp_path, os.listdir('sweeps')[0])
    assert states(study) == ['FAIL', 'COMPLETE']
    assert 'data_dir' in study.trials[0].user_attrs['error']
    assert run_sweep.main(['--sweep_id', study.study_name, '--results', '--backend', 'local']) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert rows[0].split()[:2] == ['1', 'FINISHED'] and rows[1].split()[:2] == ['0', 'FAILED']


def test_a_missing_metric_fails_the_trial_and_names_the_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    def fake_train(cfg):
        return {'train/loss/overall': 0.5}
    path = write_sweep(tmp_path / 'grid.yaml', n_layer={'values': [1]})
    # every trial fails
    assert run_sweep.main(["--sweep_config", path, "--backend", "local"], train_fn=fake_train) == 1
    err = capsys.readouterr().err
    assert "metric 'val/loss/overall' is not in the run's summary; it has: train/loss/overall" in err


def test_an_agent_killed_mid_trial_leaves_a_trial_that_the_next_agent_fails_and_queues_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path / 'grid.yaml', epochs={'values': [2000, 2]})
    sweep_id = sweep_local.create_local_sweep(sweep_space.check_sweep(sweep_space.load_sweep_file(path)), None)
    agent = subprocess.Popen([sys.executable, RUN_SWEEP, '--sweep_id', sweep_id, '--count', '1'], cwd=tmp_path,
                             env=sweep_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    study, _ = load(tmp_path, sweep_id)
    deadline = time.time() + 180
    while 'agent' not in study.trials[0].user_attrs:  # trial 0 (2000 epochs) claimed and stamped
        assert time.time() < deadline and agent.poll() is None
        time.sleep(0.2)
    agent.kill()
    agent.wait()
    assert states(study) == ['RUNNING', 'WAITING']

    seen = []

    def fake_train(cfg):
        return seen.append(cfg['epochs']) or {'val/loss/overall': 0.5}
    # rejoin: trial 0 is failed and queued again, and its retry runs before grid point 1
    assert run_sweep.main(['--sweep_id', sweep_id, '--count', '1'], train_fn=fake_train) == 0
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ['FAIL', 'WAITING', 'COMPLETE'] and seen == [2000]
    assert trials[0].user_attrs['error'] == 'its agent died (no heartbeat)'
    assert trials[2].params == {'epochs': 2000}
    assert trials[2].user_attrs['retry_of'] == 0 and trials[2].user_attrs['attempt'] == 2


def test_a_silent_heartbeat_on_another_machine_counts_as_a_dead_agent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path / 'random.yaml', method='random', learning_rate={
        'distribution': 'log_uniform_values', 'min': '1e-4', 'max': '1e-2'})
    sweep_id = sweep_local.create_local_sweep(sweep_space.check_sweep(sweep_space.load_sweep_file(path)), None)
    study, storage, sweep = sweep_local.open_local_sweep(sweep_id, None)
    for age in (10, sweep_storage.STALE_S + 10):
        trial = sweep_local.next_trial(study, storage, sweep)
        trial.set_user_attr('agent', dict(machine='elsewhere/boot', pid=1))
        trial.set_user_attr('heartbeat', time.time() - age)
    sweep_local.fail_abandoned_trials(study, storage)
    assert states(study) == ['RUNNING', 'FAIL', 'WAITING']  # the fresh one lives; the stale one is queued again
    assert study.trials[2].system_attrs['fixed_params'] == study.trials[1].params


def test_a_signal_fails_the_trial_stops_the_agent_and_the_retry_resumes_its_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path / 'grid.yaml', n_layer={'values': [1, 2]})
    seen = []

    def interrupted(cfg):  # what train does on SIGTERM: save a checkpoint, raise
        os.makedirs(cfg['out_dir'])
        open(os.path.join(cfg['out_dir'], 'ckpt.pt'), 'w').write('weights')
        raise train.Interrupted(signal.SIGTERM, 7)
    fake_train = interrupted
    assert run_sweep.main(['--sweep_config', path, '--backend', 'local'], train_fn=fake_train) == 128 + signal.SIGTERM
    assert 'stopped by signal 15' in capsys.readouterr().err
    sweep_id = os.listdir('sweeps')[0]

    def fake_train(cfg):
        return seen.append(cfg) or {'val/loss/overall': 0.25}
    # --count 1: the interrupted trial, resumed, comes before the grid's next point (n_layer=2)
    assert run_sweep.main(['--sweep_id', sweep_id, '--count', '1'], train_fn=fake_train) == 0
    study, _ = load(tmp_path, sweep_id)
    assert states(study) == ['FAIL', 'WAITING', 'COMPLETE'] and study.trials[2].value == 0.25
    assert study.trials[0].user_attrs['error'] == 'interrupted by signal 15'
    assert study.trials[2].params == {'n_layer': 1}
    assert seen[0]['init_from'] == 'resume' and seen[0]['out_dir'] == os.path.join('sweeps', sweep_id, 'trial_2')
    assert open(os.path.join(seen[0]['out_dir'], 'ckpt.pt')).read() == 'weights'


def test_an_rdb_storage_url_works_like_the_journal(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    def fake_train(cfg):
        return {'val/loss/overall': cfg['n_layer'] / 10}
    path = write_sweep(tmp_path / 'grid.yaml', n_layer={'values': [2, 1]})
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"  # one agent only: sqlite is not safe for several
    assert run_sweep.main(['--sweep_config', path, '--storage', url], train_fn=fake_train) == 0
    sweep_id = os.listdir('sweeps')[0]
    capsys.readouterr()
    assert run_sweep.main(['--sweep_id', sweep_id, '--storage', url, '--results'], train_fn=fake_train) == 0
    rows = [line.split()[:4] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == [['1', 'FINISHED', '0.1', '1'], ['0', 'FINISHED', '0.2', '2']]


def test_trials_with_wandb_log_are_grouped_by_sweep_in_the_sweep_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path / 'grid.yaml', wandb_log={'value': True}, n_layer={'values': [1]})
    seen = []
    def fake_train(cfg):
        return seen.append((cfg, os.environ['WANDB_RUN_GROUP'])) or {'val/loss/overall': 0.5}
    assert run_sweep.main(['--sweep_config', path, '--backend', 'local', '--project', 'proj'], train_fn=fake_train) == 0
    cfg, group = seen[0]
    assert group == os.listdir('sweeps')[0] and cfg['wandb_project'] == 'proj' and cfg['wandb_log'] is True
    assert 'WANDB_RUN_GROUP' not in os.environ


def test_auto_picks_local_without_a_wandb_login(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('HOME', str(tmp_path))  # no ~/.netrc
    args = run_sweep.parse_args(['--sweep_config', 'x.yaml'])
    assert run_sweep.choose_backend(args) == 'local'
    assert 'not logged in to wandb' in capsys.readouterr().out
    monkeypatch.setenv('WANDB_API_KEY', 'x' * 40)
    assert run_sweep.choose_backend(args) == 'wandb'


# -----------------------------------------------------------------------------
# the wandb backend, with wandb.sweep and wandb.agent replaced by fakes

def test_the_wandb_backend_creates_the_sweep_and_its_agent_trains_each_run(tmp_path, monkeypatch, capsys):
    import wandb
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path / 'grid.yaml', learning_rate={'values': ['3e-3']})
    calls = {}

    def fake_sweep(config, project=None, entity=None):
        calls['sweep'] = (config, project, entity)
        return 'wb123456'

    def fake_agent(sweep_id, function=None, count=None, project=None, entity=None):
        calls['agent'] = (sweep_id, count, project, entity)
        # what wandb's agent does for each run: the run's parameters in a file that wandb.init reads
        params = tmp_path / 'params.yaml'
        params.write_text(yaml.safe_dump({k: {'value': v['value'] if 'value' in v else v['values'][0]}
                                          for k, v in calls['sweep'][0]['parameters'].items()}))
        monkeypatch.setenv('WANDB_SWEEP_PARAM_PATH', str(params))
        wandb.teardown()
        function()
        wandb.teardown()  # the run's files are complete once the wandb service has shut down
    monkeypatch.setattr(wandb, 'sweep', fake_sweep)
    monkeypatch.setattr(wandb, 'agent', fake_agent)

    assert run_sweep.main(['--sweep_config', path, '--backend', 'wandb', '--project', 'proj', '--entity', 'me',
                           '--count', '1']) == 0
    assert 'Sweep created! ID: wb123456\nSweep path: me/proj/wb123456' in capsys.readouterr().out
    config, project, entity = calls['sweep']
    assert (project, entity) == ('proj', 'me') and config['method'] == 'grid'
    assert config['metric'] == dict(name='val/loss/overall', goal='minimize')
    assert config['parameters']['learning_rate'] == {'values': [0.003]}  # a number, not the string '3e-3'
    assert calls['agent'] == ('wb123456', 1, 'proj', 'me')

    run_dir = [d for d in os.listdir('sweeps/wb123456')]
    assert len(run_dir) == 1 and os.path.isfile(os.path.join('sweeps/wb123456', run_dir[0], 'summary.json'))
    # the offline run (the one wandb.init gave the trial) holds the metric the sweep server reads
    log = glob.glob(os.path.join(os.environ['WANDB_DIR'], 'wandb', f'offline-run-*-{run_dir[0]}', '*.wandb'))
    history = open(log[0], 'rb').read()
    assert b'val/loss/overall' in history and b'learning_rate' in history and b'0.003' in history

    calls.clear()
    assert run_sweep.main(['--sweep_config', path, '--backend', 'wandb', '--create_only']) == 0
    assert 'sweep' in calls and 'agent' not in calls


# -----------------------------------------------------------------------------
# run_multi_gpu_sweep.sh with a fake nvidia-smi and a fake python

FAKE_PYTHON = r'''#!/usr/bin/env bash
echo "CUDA=${CUDA_VISIBLE_DEVICES-unset} ARGS=$*" >> "$STUB_LOG"
case " $* " in *" --create_only "*) echo "Sweep created! ID: abc123"; exit 0 ;; esac
if [ -n "${STUB_SLEEP:-}" ]; then
    sleep "$STUB_SLEEP" &
    trap 'kill $!; echo "stopped ${CUDA_VISIBLE_DEVICES-unset}" >> "$STUB_LOG"; exit 143' TERM
    echo "trapped ${CUDA_VISIBLE_DEVICES-unset}" >> "$STUB_LOG"
    wait $!
fi
echo "agent output on ${CUDA_VISIBLE_DEVICES-cpu}"
[ "${CUDA_VISIBLE_DEVICES-}" = "${STUB_FAIL_GPU-none}" ] && exit 3
exit 0
'''


def script_env(tmp_path, gpus=2, **extra):
    """PATH holds only the tools the script needs (so no real nvidia-smi), plus a fake one if gpus."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    for tool in ('bash', 'sed', 'tr', 'head', 'tail', 'sleep', 'dirname', 'env'):
        if not (bin_dir / tool).exists():
            os.symlink(shutil.which(tool), bin_dir / tool)
    smi = bin_dir / 'nvidia-smi'
    if gpus and not smi.exists():
        smi.write_text('#!/usr/bin/env bash\n' + ''.join(f'echo "GPU {i}: NVIDIA Fake (UUID: GPU-{i})"\n'
                                                          for i in range(gpus)))
        smi.chmod(0o755)
    python = tmp_path / 'python'
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ('CUDA_VISIBLE_DEVICES', 'GPUS', 'AGENTS_PER_GPU')}
    env.update(PATH=str(bin_dir), PYTHON=str(python), STUB_LOG=str(tmp_path / 'calls.log'), **extra)
    (tmp_path / 'work').mkdir(exist_ok=True)
    return env


def run_script(tmp_path, env, *args):
    result = subprocess.run(['bash', SCRIPT, 'cfg.yaml', *args], cwd=tmp_path / 'work', env=env,
                            capture_output=True, text=True, timeout=60)
    calls = (tmp_path / 'calls.log').read_text().splitlines()
    return result, calls[0], sorted(calls[1:])


def test_the_script_creates_the_sweep_then_runs_one_pinned_agent_per_gpu(tmp_path):
    env = script_env(tmp_path, BACKEND='local', STORAGE='j.log')
    result, create, agents = run_script(tmp_path, env, '3', 'proj', 'me')
    assert result.returncode == 0, result.stderr
    assert create == (f"CUDA=unset ARGS={ROOT}/run_sweep.py --sweep_config cfg.yaml --create_only --project proj "
                      f"--entity me --backend local --storage j.log")
    tail = "--sweep_id abc123 --count 3 --project proj --entity me --backend local --storage j.log"
    assert agents == [f"CUDA=0 ARGS={ROOT}/run_sweep.py {tail}", f"CUDA=1 ARGS={ROOT}/run_sweep.py {tail}"]
    for gpu in (0, 1):
        assert (tmp_path / 'work' / f'gpu_{gpu}_sweep.log').read_text() == f'agent output on {gpu}\n'
    assert 'tail -f gpu_0_sweep.log' in result.stdout and 'nvidia-smi' in result.stdout


def test_the_script_takes_gpus_and_agents_per_gpu_from_the_environment(tmp_path):
    result, _, agents = run_script(tmp_path, script_env(tmp_path, GPUS='1'))
    assert result.returncode == 0 and [a.split()[0] for a in agents] == ['CUDA=1']
    assert '--count 10 --project pathstar_sweep' in agents[0]  # the defaults
    (tmp_path / 'calls.log').unlink()
    result, _, agents = run_script(tmp_path, script_env(tmp_path, AGENTS_PER_GPU='2'))
    assert result.returncode == 0 and [a.split()[0] for a in agents] == ['CUDA=0', 'CUDA=0', 'CUDA=1', 'CUDA=1']
    assert sorted(f for f in os.listdir(tmp_path / 'work') if f.startswith('gpu_')) == \
        ['gpu_0_0_sweep.log', 'gpu_0_1_sweep.log', 'gpu_1_0_sweep.log', 'gpu_1_1_sweep.log', 'gpu_1_sweep.log']


def test_without_nvidia_smi_the_script_runs_one_cpu_agent_and_shows_its_output(tmp_path):
    result, _, agents = run_script(tmp_path, script_env(tmp_path, gpus=0))
    assert result.returncode == 0, result.stderr
    assert len(agents) == 1 and agents[0].startswith('CUDA=unset')
    assert 'agent output on cpu' in result.stdout
    assert (tmp_path / 'work' / 'cpu_sweep.log').read_text() == 'agent output on cpu\n'


def test_the_script_fails_when_an_agent_fails(tmp_path):
    result, _, agents = run_script(tmp_path, script_env(tmp_path, STUB_FAIL_GPU='1'))
    assert len(agents) == 2 and result.returncode != 0
    assert 'some agents failed' in result.stderr


def test_sigterm_stops_the_scripts_own_agents(tmp_path):
    env = script_env(tmp_path, STUB_SLEEP='30')
    script = subprocess.Popen(['bash', SCRIPT, 'cfg.yaml'], cwd=tmp_path / 'work', env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / 'calls.log'
    deadline = time.time() + 120
    while not log.exists() or log.read_text().count('trapped') < 2:  # both agents started, their traps set
        assert time.time() < deadline and script.poll() is None
        time.sleep(0.1)
    script.send_signal(signal.SIGTERM)
    assert script.wait(timeout=60) != 0
    assert sorted(line for line in log.read_text().splitlines() if line.startswith('stopped')) == \
        ['stopped 0', 'stopped 1']


# GPUs are checked against nvidia-smi before anything starts; agents see nvidia-smi's numbering

def run_script_raw(tmp_path, env):
    """The script's result, and the fake python's calls (none when nothing started)."""
    result = subprocess.run(['bash', SCRIPT, 'cfg.yaml'], cwd=tmp_path / 'work', env=env,
                            capture_output=True, text=True, timeout=60)
    log = tmp_path / 'calls.log'
    return result, log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize('gpus, gpus_on_the_machine, message', [
    ('abc', 2, "error: GPUS: 'abc' is not a GPU index (nvidia-smi lists 0 1)"),
    ('0,x1', 2, "error: GPUS: 'x1' is not a GPU index (nvidia-smi lists 0 1)"),
    ('-1', 2, "error: GPUS: '-1' is not a GPU index (nvidia-smi lists 0 1)"),
    ('1.0', 2, "error: GPUS: '1.0' is not a GPU index (nvidia-smi lists 0 1)"),
    ('0,2', 2, 'error: GPUS: GPU 2 is not one that nvidia-smi lists (0 1)'),
    ('1,01', 2, 'error: GPUS: GPU 1 is given twice; set AGENTS_PER_GPU for more agents per GPU'),
    (',', 2, "error: GPUS: no GPU in ','"),
    ('0', 0, "error: GPUS: '0' asked for, but nvidia-smi lists no GPU here; unset GPUS to run one agent on the CPU"),
])
def test_gpus_that_nvidia_smi_does_not_list_stop_the_script_before_anything_starts(
        tmp_path, gpus, gpus_on_the_machine, message):
    result, calls = run_script_raw(tmp_path, script_env(tmp_path, gpus=gpus_on_the_machine, GPUS=gpus))
    assert result.returncode == 2 and result.stderr == message + '\n' and result.stdout == ''
    assert calls == [] and os.listdir(tmp_path / 'work') == []  # no sweep, no agent, no log


def with_order_logging(tmp_path):
    """The fake python, also logging the CUDA_DEVICE_ORDER each call sees."""
    python = tmp_path / 'python'
    python.write_text(FAKE_PYTHON.replace('CUDA=${CUDA_VISIBLE_DEVICES-unset}',
                                          'CUDA=${CUDA_VISIBLE_DEVICES-unset} ORDER=${CUDA_DEVICE_ORDER-unset}'))


def test_agents_number_gpus_as_nvidia_smi_does(tmp_path):
    env = script_env(tmp_path, gpus=3, GPUS='2,0')
    with_order_logging(tmp_path)
    result, calls = run_script_raw(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert sorted(call.split()[:2] for call in calls[1:]) == [['CUDA=0', 'ORDER=PCI_BUS_ID'],
                                                             ['CUDA=2', 'ORDER=PCI_BUS_ID']]


def test_an_existing_cuda_visible_devices_picks_the_gpus_and_is_checked_too(tmp_path):
    env = script_env(tmp_path, gpus=4, CUDA_VISIBLE_DEVICES='3,1')
    with_order_logging(tmp_path)
    result, calls = run_script_raw(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert sorted(call.split()[0] for call in calls[1:]) == ['CUDA=1', 'CUDA=3']
    assert 'agent on GPU 3' in result.stdout and 'agent on GPU 1' in result.stdout

    (tmp_path / 'calls.log').unlink()  # a UUID that nvidia-smi lists works as well; GPUS wins over both
    result, calls = run_script_raw(tmp_path, dict(env, CUDA_VISIBLE_DEVICES='GPU-2'))
    assert result.returncode == 0 and [call.split()[0] for call in calls[1:]] == ['CUDA=GPU-2']
    (tmp_path / 'calls.log').unlink()
    result, calls = run_script_raw(tmp_path, dict(env, GPUS='0'))
    assert result.returncode == 0 and [call.split()[0] for call in calls[1:]] == ['CUDA=0']

    (tmp_path / 'calls.log').unlink()
    result, calls = run_script_raw(tmp_path, dict(env, CUDA_VISIBLE_DEVICES='1,7'))
    assert result.returncode == 2 and calls == []
    assert result.stderr == 'error: CUDA_VISIBLE_DEVICES: GPU 7 is not one that nvidia-smi lists (0 1 2 3)\n'
    result, calls = run_script_raw(tmp_path, dict(env, CUDA_VISIBLE_DEVICES='GPU-9'))
    assert result.returncode == 2 and calls == []


def test_an_empty_cuda_visible_devices_runs_one_agent_on_the_cpu(tmp_path):
    result, calls = run_script_raw(tmp_path, script_env(tmp_path, gpus=2, CUDA_VISIBLE_DEVICES=''))
    assert result.returncode == 0, result.stderr
    assert [call.split()[0] for call in calls[1:]] == ['CUDA=']
    assert 'CUDA_VISIBLE_DEVICES is empty: running one agent on the CPU' in result.stdout


FIXTURE = os.path.join(ROOT, 'tests', 'fixtures', 'official')
# sweeps whose trials would each fail, that the dry run must refuse as the trial would: (swept keys, message)
DOOMED = {
    'data_import-batch': (dict(data_import={'value': FIXTURE}, batch_size={'values': [4, 100000]}),
                          "batch_size: 100000 is more than the 33 training rows"),
    'missing-edge-checkpoint': (dict(recipe={'value': 'two_stage'}, edge_checkpoint={'value': '/nonexistent/edges.pt'},
                                     seed={'values': [1, 2]}), "edge_checkpoint: /nonexistent/edges.pt does not exist"),
    'in-context-space': (dict(task={'value': 'in_context'}, graph_d={'value': 2}, graph_l={'value': 2},
                              graph_vocab_size={'value': 5}, num_train_graphs={'values': [10, 50]},
                              n_embd={'value': 16}, n_head={'value': 2}),
                         "num_train_graphs: 50 draws from the only 30 distinct stars"),
    'too-big-for-memory': (dict(graph_d={'values': [10, 300000000]}, graph_vocab_size={'value': '1max'}),
                           "graph_d: 2,400,000,000 rows of 6 tokens need about 263.8 GiB in memory"),
}


@pytest.mark.parametrize('name', DOOMED)
def test_the_dry_run_refuses_what_every_trial_would_refuse(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    swept, message = DOOMED[name]
    params = {key: {'value': value} for key, value in TINY.items() if key not in swept and not (
        name == 'data_import-batch' and key.startswith('graph'))}
    params.update(swept)
    path = tmp_path / 'sweep.yaml'
    path.write_text(yaml.safe_dump(dict(method='grid', metric=dict(name='val/loss/overall', goal='minimize'),
                                        parameters=params)))
    with pytest.raises(run_sweep.UserError) as e:
        run_sweep.main(['--sweep_config', str(path), '--dry_run'])
    assert message in str(e.value) and '(in the combination ' in str(e.value) and '\n' not in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ['sweep.yaml']
