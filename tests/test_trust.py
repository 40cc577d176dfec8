"""Cases an adversarial pass found mishandled ([4 of 4]): each test failed before its fix."""
import json
import os
import re

import pytest
import torch

import analyze
import baseline_node2vec
import pathstar_data
import reproduce
import train
from configurator import UserError, exit_on_user_error
from conftest import ROOT, cli_result, tiny_config
from pathstar import validate
from pathstar.data import cache


def summary_of(cfg):
    with open(os.path.join(cfg['out_dir'], 'summary.json')) as f:
        return json.load(f)


@pytest.mark.parametrize('change', [{}, dict(n_embd=64)])
def test_resuming_a_finished_run_never_shrinks_its_summary(tmp_path, change):
    cfg = tiny_config(tmp_path, epochs=4)
    train.train(cfg)
    before = summary_of(cfg)
    assert {'lr', 'tokens_per_sec', 'wall_time_s'} <= set(before)
    try:
        train.train(dict(cfg, init_from='resume', **change))
    except UserError:  # refusing a changed model is fine too; the record must not change either way
        pass
    after = summary_of(cfg)
    assert {k: after.get(k) for k in before} == before


def test_reproduce_only_with_no_name_is_refused():
    with pytest.raises(UserError, match='--only'):
        reproduce.parse_args(['--only='])
    assert len(reproduce.parse_args([]).only) > 1


def test_analyze_refuses_an_in_context_checkpoint(tmp_path, capsys):
    cfg = tiny_config(tmp_path, task='in_context', graph_d=3, graph_l=4, epochs=2, num_train_graphs=200,
                      num_val_graphs=50)
    train.train(cfg)
    ckpt = os.path.join(cfg['out_dir'], 'ckpt.pt')
    assert torch.load(ckpt, weights_only=True)['config']['task'] == 'in_context'
    with pytest.raises(SystemExit) as e:
        analyze_main([ckpt])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in_context" in err[0]


def test_analyze_names_a_folder_given_as_the_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        analyze_main([str(tmp_path)])
    assert 'is a folder' in capsys.readouterr().err


def analyze_main(argv):
    return exit_on_user_error(lambda: analyze.main(argv))


@pytest.mark.parametrize('script', ['train.py', 'pathstar_data.py'])
def test_help_lists_every_key_with_its_default_and_comment(script):
    from configurator import DEFAULTS
    main = train.main if script == 'train.py' else pathstar_data.main
    out = cli_result(main, ['--help'], ROOT)  # python3 <script> --help, in this process
    assert out.returncode == 0 and out.stderr == ''
    keys = [line.split('=')[0].strip()[2:] for line in out.stdout.splitlines() if line.startswith('  --')]
    assert keys == list(DEFAULTS)
    assert '  --graph_d=200' in out.stdout and 'arms of the star' in out.stdout and 'the model:' in out.stdout


def test_a_busy_out_dir_names_its_holder_before_any_advice_to_resume_or_overwrite(tmp_path):
    import fcntl
    cfg = tiny_config(tmp_path, epochs=2)
    train.train(cfg)
    with open(os.path.join(cfg['out_dir'], '.lock')) as held:  # another run's lock, as a live run holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        for extra in ({}, dict(init_from='resume'), dict(overwrite_out_dir=True)):
            with pytest.raises(UserError, match='is in use by') as e:
                train.train(dict(cfg, **extra))
            assert '--init_from=resume' not in str(e.value) and '--overwrite_out_dir' not in str(e.value)


def test_the_advice_for_a_used_out_dir_names_out_dir_first(tmp_path):
    cfg = tiny_config(tmp_path, epochs=2)
    train.train(cfg)
    with pytest.raises(UserError, match='give this run its own --out_dir'):
        train.train(cfg)


def test_overwriting_the_out_dir_keeps_the_edge_stage_the_run_starts_from(tmp_path):
    edges_run = dict(graph_d=6, graph_l=3, graph_holdout_percentage=0.34, recipe='two_stage', epochs=2, batch_size=2,
                     path_replication=1, edge_epochs=3, edge_batch_size=8, n_layer=1, n_head=2, n_embd=32,
                     data_dir=str(tmp_path / 'data'), out_dir=str(tmp_path / 'out'), device='cpu')
    train.train(edges_run)
    edges = os.path.join(edges_run['out_dir'], 'edges.pt')
    summary = train.train(dict(edges_run, edge_checkpoint=edges, overwrite_out_dir=True))
    assert os.path.isfile(edges) and summary['iter'] == summary['max_iters']


@pytest.mark.parametrize('word', ['yes', 'no', 'on'])
def test_booleans_are_true_false_1_or_0_only(word):
    from configurator import parse_overrides
    with pytest.raises(UserError, match='compile: expected true/false'):
        parse_overrides([f'--compile={word}'])
    assert parse_overrides(['--compile=1', '--bias=False']) == dict(compile=True, bias=False)


@pytest.mark.parametrize('storage, joining, message', [
    ('', False, "--storage '': name a journal file"),
    ('sqlite://', False, 'in memory'),
    ('sqlite:///:memory:', False, 'in memory'),
    ('sqlite:///missing.db', True, 'no database file missing.db to join'),
])
def test_sweep_storage_urls_no_agent_could_use_are_refused_before_anything_is_written(tmp_path, monkeypatch,
                                                                                       storage, joining, message):
    import run_sweep
    from conftest import ROOT
    monkeypatch.chdir(tmp_path)
    which = ['--sweep_id', 'abc123'] if joining else ['--sweep_config', os.path.join(ROOT, 'sweep_config_minimal.yaml')]
    with pytest.raises(UserError, match=message.replace('(', r'\(')):
        run_sweep.parse_args([*which, '--storage', storage, '--backend', 'local'])
    assert os.listdir(tmp_path) == []


def test_a_bad_edge_checkpoint_is_named_before_anything_is_built(tmp_path):
    folder = tmp_path / 'edges_dir'
    folder.mkdir()
    dangling = tmp_path / 'dangling.pt'
    dangling.symlink_to(tmp_path / 'gone.pt')
    base = tiny_config(tmp_path, recipe='two_stage')
    cases = ((folder, 'is a folder'), (dangling, 'is a symlink to'), (tmp_path / 'no.pt', 'does not exist'))
    for path, message in cases:
        with pytest.raises(UserError, match=f'edge_checkpoint: .*{message}'):
            train.train(dict(base, edge_checkpoint=str(path)))
    assert not (tmp_path / 'data').exists() and not (tmp_path / 'out').exists()


@pytest.mark.parametrize('overrides, message', [
    (dict(graph='grid', num_pause_tokens=1), "num_pause_tokens: shapes path rows, and graph='grid' trains edges only"),
    (dict(graph='cycle', graph_holdout_percentage=0.5), "graph_holdout_percentage: shapes path rows"),
    (dict(graph='irregular', path_target='first_hop'), "path_target: shapes path rows"),
    (dict(graph='grid', root_in_prompt=True), "root_in_prompt: shapes path rows"),
    (dict(graph='grid', teacherless=True), "teacherless: shapes path rows"),
    (dict(task='in_context', graph='star_tree'), "graph: task='in_context' draws a plain star per row"),
    (dict(model_type='mamba', gelu='tanh'), "gelu: applies to model_type='gpt' only, not 'mamba'"),
    (dict(model_type='mamba', init='official'), "init: applies to model_type='gpt' only"),
    (dict(model_type='mamba', dropout=0.1), "dropout: applies to model_type='gpt' only"),
    (dict(mamba_d_state=8), "mamba_d_state: applies to model_type='mamba' only, not 'gpt'"),
])
def test_a_key_the_run_would_ignore_is_refused_by_name(overrides, message):
    with pytest.raises(UserError, match=re.escape(message)):
        validate.build_config(overrides)


def test_the_official_mamba_preset_sets_no_key_it_ignores():
    presets = [f'{ROOT}/config/{name}.py' for name in ('official', 'official_g5000_l5', 'arch_mamba')]
    assert validate.parse_args(presets)['model_type'] == 'mamba'


@pytest.mark.parametrize('overrides, key', [
    (dict(graph_d=100000, n_embd=16), 'graph_d'),   # rows of 303 MiB; its embedding, 49 MiB, would fit
    (dict(task='in_context', num_train_graphs=10 ** 7, graph_d=3), 'num_train_graphs')])
def test_one_memory_estimate_refuses_any_dataset_too_big_before_building(tmp_path, monkeypatch, overrides, key):
    real = os.sysconf
    cfg = validate.build_config(dict(overrides, data_dir=str(tmp_path / 'data')))
    pages = 100 * 2 ** 20 // real('SC_PAGE_SIZE')  # a machine of 100 MiB
    monkeypatch.setattr(os, 'sysconf', lambda name: pages if name == 'SC_PHYS_PAGES' else real(name))
    message = f"^{key}: .* GiB in memory, more than this machine's"
    with pytest.raises(UserError, match=message):  # the config check: train.py, sweeps' dry runs
        validate.build_config(dict(overrides, data_dir=str(tmp_path / 'data')))
    with pytest.raises(UserError, match=message):
        cache.load_or_build(cfg)  # and the build, which pathstar_data.py and train.py both call
    assert not (tmp_path / 'data').exists()


def test_a_diverging_node2vec_is_one_line_exit_1_and_writes_nothing(tmp_path):
    out = cli_result(baseline_node2vec.main, ['config/tiny_graph.py', 'config/tiny_grid.py', '--n2v_lr=1e6',
                                              '--n2v_epochs=100', f'--out_dir={tmp_path / "n2v"}'], ROOT)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr
    assert 'diverged; lower --n2v_lr' in out.stderr and not (tmp_path / 'n2v').exists()


def test_in_context_graph_spaces_too_small_to_hold_out_a_graph_are_a_config_error(tmp_path):
    small = dict(task='in_context', graph_d=2, graph_l=2, num_val_graphs=50, graph_vocab_size=4,
                 data_dir=str(tmp_path / 'data'))   # 4 * 3 * 2 / 2! = 12 distinct stars
    with pytest.raises(UserError, match=r"^num_train_graphs: 12 draws from the only 12 distinct stars of graph_d=2, "
                                        r"graph_l=2 and graph_vocab_size=4 .* num_train_graphs < 12$"):
        validate.build_config(dict(small, num_train_graphs=12))
    cfg = validate.build_config(dict(small, num_train_graphs=11))
    assert cache.load_or_build(cfg, verbose=False).meta['num_val_rows'] == 50
    assert validate.build_config(dict(small, graph_vocab_size=5, num_train_graphs=12))  # 30 stars


def test_an_in_context_build_that_cannot_draw_its_validation_graphs_leaves_no_data_dir(tmp_path):
    cfg = validate.build_config(dict(task='in_context', graph_d=2, graph_l=2, num_train_graphs=11, num_val_graphs=50,
                                     graph_vocab_size=4, data_dir=str(tmp_path / 'data')))
    cfg['num_train_graphs'] = 1000  # past the check (which refuses it), so the build itself fails
    with pytest.raises(UserError, match='num_val_graphs: could not draw 50 graphs unlike every training graph'):
        cache.load_or_build(cfg)
    assert not (tmp_path / 'data').exists()


def official_with_id(tmp_path, big):
    """The fixture's graph with node 15 renamed big, in files whose names give no nodes_N."""
    folder = tmp_path / f'id_{big}'
    folder.mkdir()
    fixture = os.path.join(ROOT, 'tests', 'fixtures', 'official')
    for name in os.listdir(fixture):
        if name.endswith('.txt'):
            text = open(os.path.join(fixture, name)).read()
            (folder / name.replace('nodes_16_', '')).write_text(re.sub(r'\b15\b', str(big), text))
    return folder


def test_a_huge_id_in_an_imported_file_is_named_where_it_is(tmp_path):
    folder = official_with_id(tmp_path, 5 * 10 ** 9)  # beyond uint32 token ids
    with pytest.raises(UserError, match=r"^data_import: .*_pretrain\.txt, line \d+: node id 5000000000 is too large: "
                                        r"pathstar stores token ids as uint32, so ids go up to 4,294,967,288$"):
        validate.build_config(dict(data_import=str(folder)))


def test_an_imported_id_too_large_for_an_embedding_in_memory_is_a_config_error(tmp_path):
    folder = official_with_id(tmp_path, 3 * 10 ** 9)  # fits uint32, but 3e9 x 128 floats do not fit in memory
    with pytest.raises(UserError, match=rf"^graph_vocab_size: 3,000,000,001 \(set by data_import's files in "
                                        rf"{re.escape(str(folder))}\) labels make a 3,000,000,008 x 128 embedding of "
                                        rf"1,430\.5 GiB, more than this machine's"):
        validate.build_config(dict(data_import=str(folder), data_dir=str(tmp_path / 'data')))
    assert not (tmp_path / 'data').exists()
