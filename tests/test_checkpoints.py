"""Weights files name the dataset they learned ([4 of 4]): an edge checkpoint of another graph, a model
trained on paths, or an edited data_import folder under a resumed run is refused in one line, before
anything is built or written. Each test failed before its fix."""
import os
import shutil
import signal

import pytest
import torch

import train
from configurator import UserError
from conftest import ROOT

FIXTURE = os.path.join(ROOT, 'tests', 'fixtures', 'official')


def two_stage(tmp_path, name, **overrides):
    cfg = dict(graph_d=6, graph_l=3, graph_holdout_percentage=0.34, recipe='two_stage', epochs=2, batch_size=2,
               path_replication=1, edge_epochs=3, edge_batch_size=8, n_layer=1, n_head=2, n_embd=32,
               eval_interval=1000, log_interval=1000, device='cpu', data_dir=str(tmp_path / name / 'data'),
               out_dir=str(tmp_path / name / 'out'))
    return {k: v for k, v in {**cfg, **overrides}.items() if v is not None}


@pytest.fixture(scope='module')
def edges_run(tmp_path_factory):
    """One finished two_stage run: its config and its edges.pt."""
    tmp = tmp_path_factory.mktemp('edges')
    cfg = two_stage(tmp, 'first')
    train.train(cfg)
    return cfg, os.path.join(cfg['out_dir'], 'edges.pt')


def refused_before_anything_is_written(cfg, message):
    with pytest.raises(UserError, match=message) as e:
        train.train(cfg)
    assert '\n' not in str(e.value)
    assert not os.path.exists(cfg['data_dir']) and not os.path.exists(cfg['out_dir'])
    return str(e.value)


def test_the_edge_stage_file_names_its_dataset_and_stage(edges_run):
    cfg, edges = edges_run
    saved = torch.load(edges, weights_only=True)
    assert saved['stage'] == 'edges' and saved['dataset'] == os.listdir(cfg['data_dir'])[0].removesuffix('.lock')
    assert torch.load(os.path.join(cfg['out_dir'], 'best.pt'), weights_only=True)['stage'] is None


def test_an_edge_checkpoint_of_another_graph_is_refused_naming_the_difference(edges_run, tmp_path):
    _, edges = edges_run
    message = refused_before_anything_is_written(two_stage(tmp_path, 'other', data_seed=7, edge_checkpoint=edges),
                                                 'edge_checkpoint: .* memorised another dataset')
    assert 'data_seed=1337' in message or 'data_seed=' in message


@pytest.mark.parametrize('name', ['ckpt.pt', 'best.pt'])
def test_a_model_trained_on_paths_is_not_an_edge_checkpoint(edges_run, tmp_path, name):
    cfg, _ = edges_run
    refused_before_anything_is_written(two_stage(tmp_path, 'next', edge_checkpoint=os.path.join(cfg['out_dir'], name)),
                                       "is not an edge stage's weights")


def test_an_edge_checkpoint_of_another_model_type_names_model_type(tmp_path):
    mamba = two_stage(tmp_path, 'mamba', model_type='mamba', n_head=None, edge_epochs=1)
    train.train(mamba)
    refused_before_anything_is_written(
        two_stage(tmp_path, 'gpt', edge_checkpoint=os.path.join(mamba['out_dir'], 'edges.pt')),
        "holds a model_type='mamba' model; this run has model_type='gpt'")


def test_an_edge_checkpoint_of_another_width_is_refused_before_the_dataset_is_built(edges_run, tmp_path):
    _, edges = edges_run
    refused_before_anything_is_written(two_stage(tmp_path, 'wide', n_embd=64, edge_checkpoint=edges),
                                       r'holds a different model \(n_embd=32; this run has n_embd=64\)')


@pytest.mark.parametrize('content', [b'not a torch file\n', None])
def test_a_damaged_or_foreign_edge_checkpoint_is_one_line_naming_the_file(edges_run, tmp_path, content):
    _, edges = edges_run
    bad = tmp_path / 'edges.pt'
    data = open(edges, 'rb').read()
    bad.write_bytes(content if content is not None else data[:len(data) // 2])  # None: truncated
    message = refused_before_anything_is_written(two_stage(tmp_path, 'next', edge_checkpoint=str(bad)),
                                                 'edge_checkpoint: cannot read .*edges.pt: not a whole torch file')
    assert 'KeyError' not in message


def test_an_interrupted_run_resumes_from_its_ckpt_after_its_edge_checkpoint_is_gone(edges_run, tmp_path):
    _, edges = edges_run
    copy = tmp_path / 'edges.pt'
    shutil.copy(edges, copy)
    cfg = two_stage(tmp_path, 'cut', edge_checkpoint=str(copy), checkpoint_interval=1)

    def stop(event, run):
        if event == 'step' and run.iter_num == 2:
            os.kill(os.getpid(), signal.SIGTERM)
    with pytest.raises(train.Interrupted):
        train.train(cfg, stop)
    os.remove(copy)  # ckpt.pt holds every weight: the edge stage's file is not needed to continue
    summary = train.train(dict(cfg, init_from='resume', edge_checkpoint=''))
    assert summary['iter'] == summary['max_iters']


def test_resuming_after_data_import_files_were_edited_is_refused(tmp_path):
    folder = tmp_path / 'official'
    shutil.copytree(FIXTURE, folder)
    cfg = dict(data_import=str(folder), n_layer=1, n_head=2, n_embd=32, epochs=4, batch_size=4,
               eval_interval=1000, log_interval=1000, checkpoint_interval=1, device='cpu',
               data_dir=str(tmp_path / 'data'), out_dir=str(tmp_path / 'out'))

    def stop(event, run):
        if event == 'step' and run.iter_num == 1:
            os.kill(os.getpid(), signal.SIGTERM)
    with pytest.raises(train.Interrupted):
        train.train(cfg, stop)
    train_file = next(folder.glob('*_train_3.txt'))
    lines = train_file.read_text().splitlines()
    test_file = next(folder.glob('*_test_2.txt'))
    tests = test_file.read_text().splitlines()
    train_file.write_text('\n'.join([tests[0], *lines[1:]]) + '\n')  # swap a training path for a held-out one
    test_file.write_text('\n'.join([lines[0], tests[1]]) + '\n')
    caches = sorted(os.listdir(tmp_path / 'data'))
    with pytest.raises(UserError, match='init_from: .*data_import=.* changed since it was written'):
        train.train(dict(cfg, init_from='resume'))
    assert sorted(os.listdir(tmp_path / 'data')) == caches  # no second cache built


def test_analyze_refuses_a_checkpoint_whose_data_import_files_were_edited(tmp_path):
    import analyze
    folder = tmp_path / 'official'
    shutil.copytree(FIXTURE, folder)
    cfg = dict(data_import=str(folder), n_layer=1, n_head=2, n_embd=32, epochs=2, batch_size=4, eval_interval=1000,
               log_interval=1000, device='cpu', data_dir=str(tmp_path / 'data'), out_dir=str(tmp_path / 'out'))
    train.train(cfg)
    pretrain = next(folder.glob('*_pretrain.txt'))
    lines = pretrain.read_text().splitlines()
    pretrain.write_text('\n'.join(lines[1:] + lines[:1]) + '\n')  # the same edges, another order: other bytes
    with pytest.raises(UserError, match=r"checkpoint .*best.pt: it learned dataset .* data_import=.* changed since"):
        analyze.main([os.path.join(cfg['out_dir'], 'best.pt')])


def test_a_run_writes_its_learning_curve_and_a_resumed_run_continues_it_exactly(tmp_path):
    from conftest import tiny_config
    full = tiny_config(tmp_path / 'full', epochs=12, eval_interval=3, log_interval=100)
    train.train(full)
    cut = tiny_config(tmp_path / 'cut', epochs=12, eval_interval=3, log_interval=100, checkpoint_interval=1)

    def stop(event, run):
        if event == 'step' and run.iter_num == 7:
            os.kill(os.getpid(), signal.SIGTERM)
    with pytest.raises(train.Interrupted):
        train.train(cut, stop)
    train.train(dict(cut, init_from='resume'))
    train.train(dict(cut, init_from='resume'))  # a finished run again: no point twice

    def curve(cfg):
        import json
        with open(os.path.join(cfg['out_dir'], 'curve.json')) as f:
            return json.load(f)
    assert [p['iter'] for p in curve(full)] == [0, 3, 6, 9, 12]
    assert [p['epoch'] for p in curve(full)] == [0, 3, 6, 9, 12]
    ours, theirs = curve(cut), curve(full)
    assert [p['iter'] for p in ours] == [0, 3, 6, 9, 12]
    for a, b in zip(ours, theirs):
        assert a['val/accuracy/first_hop'] == b['val/accuracy/first_hop']
        assert a['train/loss/overall'] == pytest.approx(b['train/loss/overall'], abs=1e-6)
