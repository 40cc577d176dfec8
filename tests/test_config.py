"""configurator.py: typed parsing of overrides and config files, and the checks on whole configs."""
import os

import pytest

from configurator import UserError
from pathstar.validate import parse_args
from conftest import ROOT, cli_result
import train
from pathstar.graphs import common
from pathstar import validate


def test_overrides_are_parsed_to_the_type_of_their_default():
    cfg = parse_args(['--graph_d=100', '--learning_rate=1e-3', '--use_undirected=false', '--bias=1',
                      '--wandb_project=abc', '--dropout=0'])
    assert cfg['graph_d'] == 100 and isinstance(cfg['graph_d'], int)
    assert cfg['learning_rate'] == 1e-3 and isinstance(cfg['learning_rate'], float)
    assert cfg['use_undirected'] is False and cfg['bias'] is True
    assert cfg['wandb_project'] == 'abc' and cfg['dropout'] == 0.0


def test_auto_or_number_keys_take_either():
    assert parse_args(['--batch_size=auto'])['batch_size'] == 'auto'
    assert parse_args(['--batch_size=64'])['batch_size'] == 64
    assert parse_args(['--path_replication=3'])['path_replication'] == 3
    assert parse_args(['--graph_vocab_size=3max'])['graph_vocab_size'] == '3max'
    assert parse_args(['--graph_vocab_size=1e4'])['graph_vocab_size'] == 10000
    assert parse_args(['--compile=auto'])['compile'] == 'auto'
    assert parse_args(['--compile=false'])['compile'] is False


def test_yaml_style_strings_and_python_values_parse_the_same():
    assert validate.build_config({'learning_rate': '5e-4', 'graph_d': 20.0, 'bias': 'true'}) == \
        validate.build_config({'learning_rate': 5e-4, 'graph_d': 20, 'bias': True})


def test_vocab_nmax_resolves_to_n_times_the_node_count():
    assert common.resolve_vocab('2max', 41) == 2 * 41
    assert common.resolve_vocab(500, 41) == 500


@pytest.mark.parametrize('argv, message', [
    (['--graph_dd=3'], "unknown config key 'graph_dd'; did you mean graph_d"),
    (['--learning_rat=1e-3'], 'did you mean learning_rate'),
    (['--graph_d=abc'], 'graph_d: expected an integer'),
    (['--graph_d=2.5'], 'graph_d: expected an integer'),
    (['--learning_rate=nan'], 'learning_rate: must be a finite number'),
    (['--learning_rate=inf'], 'learning_rate: must be a finite number'),
    (['--learning_rate=0'], 'learning_rate: must be > 0'),
    (['--bias=maybe'], 'bias: expected true/false'),
    (['--graph_d='], 'graph_d: empty value'),
    (['--epochs=0'], 'epochs: must be >= 1'),
    (['--epochs=-3'], 'epochs: must be >= 1'),
    (['--graph_d=1'], 'graph_d: must be >= 2'),
    (['--graph_l=1'], 'graph_l: must be >= 2'),
    (['--num_pause_tokens=-1'], 'num_pause_tokens: must be >= 0'),
    (['--graph_holdout_percentage=1.0'], 'graph_holdout_percentage: must be in [0, 1)'),
    (['--graph_d=10', '--graph_vocab_size=10'], 'vocab_size must be >= d * (l-1) + 1 = 10 * 4 + 1 = 41, got 10'),
    (['--graph_vocab_size=0max'], "graph_vocab_size: expected an int or 'Nmax'"),
    (['--graph_vocab_size=abcmax'], "graph_vocab_size: expected an int or 'Nmax'"),
    (['--n_embd=100', '--n_head=3'], 'n_embd: must be divisible by n_head'),
    (['--init_from=gpt2'], 'init_from: expected one of scratch, resume'),
    (['--batch_size=0'], "batch_size: must be 'auto' or an int >= 1"),
    (['--device=tpu'], 'device: expected auto, cpu, cuda'),
    (['--min_lr=1'], 'min_lr: must be in [0, learning_rate'),
    (['graph_d=3'], 'config file not found'),
    (['--graph_d'], "expected --key=value"),
])
def test_bad_values_are_rejected_with_a_message_naming_the_key(argv, message):
    with pytest.raises(UserError) as err:
        parse_args(argv)
    assert message in str(err.value)
    assert '\n' not in str(err.value)


def test_config_file_runs_in_its_own_namespace(tmp_path):
    path = tmp_path / 'my.py'
    path.write_text('import math\n_helper = 3\ngraph_d = 2 * _helper\nlearning_rate = math.sqrt(1e-6)\n')
    cfg = parse_args([str(path), '--graph_l=7'])
    assert cfg['graph_d'] == 6 and cfg['learning_rate'] == pytest.approx(1e-3) and cfg['graph_l'] == 7
    assert 'math' not in cfg and '_helper' not in cfg


def test_later_overrides_win_over_the_config_file(tmp_path):
    path = tmp_path / 'my.py'
    path.write_text('graph_d = 6\n')
    assert parse_args([str(path), '--graph_d=8'])['graph_d'] == 8


def test_unknown_key_in_a_config_file_is_an_error(tmp_path):
    path = tmp_path / 'bad.py'
    path.write_text('n_layers = 4\n')
    with pytest.raises(UserError, match="unknown config key 'n_layers'; did you mean n_layer"):
        parse_args([str(path)])


@pytest.mark.parametrize('variant, changed', [
    ('staged', {'recipe': 'staged', 'out_dir': 'out-g5000-l5-staged'}),
    ('forward_only', {'use_undirected': False, 'out_dir': 'out-g5000-l5-forward'}),
    ('g10000_l6', {'graph_d': 10000, 'graph_l': 6, 'num_pause_tokens': 6, 'out_dir': 'out-g10000-l6'}),
    ('g10000_l10', {'graph_d': 10000, 'graph_l': 10, 'num_pause_tokens': 10, 'n_embd': 784,
                    'out_dir': 'out-g10000-l10'}),
])
def test_a_variant_config_changes_only_its_keys_of_the_config_before_it(variant, changed):
    base = parse_args([f'{ROOT}/config/paper_g5000_l5.py'])
    cfg = parse_args([f'{ROOT}/config/paper_g5000_l5.py', f'{ROOT}/config/{variant}.py'])
    assert {key: cfg[key] for key in cfg if cfg[key] != base[key]} == changed


def test_config_files_see_the_config_before_them_and_overrides_apply_in_order(tmp_path):
    (tmp_path / 'a.py').write_text('graph_d = 30\n')
    (tmp_path / 'b.py').write_text('graph_d = graph_d * 2\nn_layer += 1\n')
    cfg = parse_args([str(tmp_path / 'a.py'), '--n_layer=5', str(tmp_path / 'b.py')])
    assert cfg['graph_d'] == 60 and cfg['n_layer'] == 6
    assert parse_args([str(tmp_path / 'b.py'), '--graph_d=7'])['graph_d'] == 7


def test_a_config_file_that_exits_is_an_error_not_a_silent_exit(tmp_path):
    (tmp_path / 'quit.py').write_text('import sys\nsys.exit(0)\n')
    with pytest.raises(UserError, match='may not exit'):
        parse_args([str(tmp_path / 'quit.py')])


@pytest.mark.parametrize('argv, message', [
    (['--graph_dd=3'], "unknown config key 'graph_dd'"),
    (['--graph_vocab_size=10'], 'vocab_size must be >= d * (l-1) + 1'),
    (['--n_embd=100', '--n_head=3'], 'n_embd: must be divisible by n_head'),
    (['missing_config.py'], 'config file not found: missing_config.py'),
])
def test_train_cli_exits_2_with_one_line_and_writes_nothing(tmp_path, argv, message):
    paths = [f'--data_dir={tmp_path}/data', f'--out_dir={tmp_path}/out'] if argv[0].startswith('--') else []
    out = cli_result(train.main, [*argv, *paths], tmp_path)  # python3 train.py ..., in this process
    assert out.returncode == 2
    assert out.stderr.strip().startswith('error:') and message in out.stderr
    assert 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []
