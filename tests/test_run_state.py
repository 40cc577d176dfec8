"""A run's folder and checkpoint, trusted: one run per out_dir, no silent overwrite of an earlier run,
damaged or foreign checkpoints as one line, every conflicting override reported on resume, and the
late failures moved before anything is written."""
import os

import pytest
import torch

from pathstar.training import checkpoint
import configurator
import model
import train
from configurator import UserError
from conftest import tiny_config
from pathstar import validate


def argv(cfg):
    return [f'--{k}={v}' for k, v in cfg.items()]


def finished_run(tmp_path, **overrides):
    cfg = tiny_config(tmp_path, epochs=4, **overrides)
    return cfg, train.train(cfg)


def exit_2(cfg, capsys):
    """train.py's outcome for cfg: the one error line (exit code 2 asserted)."""
    with pytest.raises(SystemExit) as stop:
        configurator.exit_on_user_error(lambda: train.main(argv(cfg)))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: '), err
    return err[0]


# -----------------------------------------------------------------------------
# out_dir belongs to one run

def test_a_new_run_does_not_overwrite_a_finished_one(tmp_path, capsys):
    cfg, _ = finished_run(tmp_path)
    out = tmp_path / 'out'
    before = {name: os.path.getmtime(out / name) for name in ('ckpt.pt', 'summary.json', 'best.pt')}
    message = exit_2(dict(cfg, epochs=8), capsys)
    assert 'already holds a finished run' in message and '--init_from=resume' in message
    assert '--overwrite_out_dir=True' in message
    assert {name: os.path.getmtime(out / name) for name in before} == before


def test_eval_only_from_scratch_does_not_replace_a_trained_runs_summary(tmp_path, capsys):
    cfg, summary = finished_run(tmp_path)
    assert 'overwrite_out_dir' in exit_2(dict(cfg, eval_only=True), capsys)
    again = train.train(dict(cfg, eval_only=True, init_from='resume'))  # what the user meant
    assert again['val/loss/overall'] == summary['val/loss/overall']


def test_overwrite_out_dir_starts_over(tmp_path):
    cfg, first = finished_run(tmp_path)
    second = train.train(dict(cfg, epochs=8, overwrite_out_dir=True))
    assert second['iter'] == 8 != first['iter']
    assert torch.load(tmp_path / 'out' / 'ckpt.pt', weights_only=True)['iter_num'] == 8


def test_a_second_run_on_a_busy_out_dir_stops_naming_the_holder_and_leaves_its_files(tmp_path, capsys):
    cfg = tiny_config(tmp_path, epochs=4)
    held = checkpoint.claim(validate.build_config(cfg))  # a live run, as far as the folder can tell
    try:
        in_flight = tmp_path / 'out' / 'ckpt.pt.tmp-424242'
        in_flight.write_bytes(b'half a checkpoint')
        message = exit_2(cfg, capsys)
        assert f'in use by pid {os.getpid()} on ' in message
        assert in_flight.exists()  # the holder's half-written file is its own
    finally:
        held.close()
    train.train(cfg)  # free again once the holder lets go
    assert not in_flight.exists()  # now it is a leftover, and cleared


def test_leftover_temp_files_of_a_killed_run_are_cleared(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    for name in ('summary.json.tmp-77', 'best.pt.tmp-78', 'ckpt.pt.tmp-79'):
        (out / name).write_text('half')
    train.train(tiny_config(tmp_path, epochs=2))
    assert not [name for name in os.listdir(out) if '.tmp-' in name]


# -----------------------------------------------------------------------------
# resuming from a checkpoint that is damaged, foreign or older

@pytest.mark.parametrize('damage, expect', [
    (lambda ck: torch.zeros(3), 'is not a pathstar resume checkpoint'),
    (lambda ck: {k: v for k, v in ck.items() if k != 'optimizer'}, 'lacks optimizer'),
    (lambda ck: dict(ck, model={k: v[..., :1] if v.dim() else v for k, v in ck['model'].items()}),
     'the model in'),
])
def test_a_damaged_or_foreign_checkpoint_is_one_line(tmp_path, capsys, damage, expect):
    cfg, _ = finished_run(tmp_path)
    path = tmp_path / 'out' / 'ckpt.pt'
    torch.save(damage(torch.load(path, weights_only=True)), path)
    message = exit_2(dict(cfg, init_from='resume'), capsys)
    assert expect in message


def test_a_checkpoint_older_than_a_key_resumes_with_its_default_and_says_so(tmp_path, capsys):
    cfg, summary = finished_run(tmp_path)
    path = tmp_path / 'out' / 'ckpt.pt'
    ck = torch.load(path, weights_only=True)
    del ck['config']['path_loss']
    torch.save(ck, path)
    again = train.train(dict(cfg, init_from='resume'))
    assert again['val/loss/overall'] == summary['val/loss/overall']
    assert "was written before path_loss existed; resuming with path_loss='full'" in capsys.readouterr().err


def test_every_override_that_conflicts_with_the_checkpoint_is_reported_even_a_default(tmp_path, capsys):
    cfg, _ = finished_run(tmp_path)  # graph_d=4
    train.main(argv(dict(out_dir=cfg['out_dir'], data_dir=cfg['data_dir'], device='cpu', init_from='resume',
                         graph_d=configurator.DEFAULTS['graph_d'], n_layer=1)))  # n_layer agrees
    err = capsys.readouterr().err
    assert f"resuming keeps graph_d=4 from the checkpoint, not {configurator.DEFAULTS['graph_d']}" in err
    assert 'n_layer' not in err


# -----------------------------------------------------------------------------
# failures that used to come after the dataset was written

@pytest.mark.parametrize('out_dir, expect', [
    ('x' * 300, 'has 300 bytes; file systems allow 255'),
    ('/'.join(['y' * 200] * 25), 'is too long'),
])
def test_an_out_dir_the_file_system_cannot_hold_is_refused_before_anything_is_written(tmp_path, capsys,
                                                                                        monkeypatch, out_dir, expect):
    monkeypatch.chdir(tmp_path)
    cfg = dict(tiny_config(tmp_path), out_dir=out_dir, data_dir='data')
    assert expect in exit_2(cfg, capsys)
    assert os.listdir(tmp_path) == []


def test_a_folder_where_a_run_file_goes_is_refused_at_the_start(tmp_path, capsys):
    (tmp_path / 'out' / 'summary.json').mkdir(parents=True)
    assert 'summary.json is a folder' in exit_2(tiny_config(tmp_path), capsys)
    assert not (tmp_path / 'data').exists()


def test_a_dataset_larger_than_memory_is_refused_with_the_estimate(tmp_path, capsys, monkeypatch):
    real = os.sysconf
    monkeypatch.setattr(os, 'sysconf', lambda name: 1000 if name == 'SC_PHYS_PAGES' else real(name))
    message = exit_2(tiny_config(tmp_path, graph_d=100000), capsys)
    assert 'GiB in memory' in message and "more than this machine's" in message
    assert not (tmp_path / 'data').exists()


def test_cpu_out_of_memory_at_model_build_is_one_line(tmp_path, monkeypatch):
    def fail(self, *a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory")
    monkeypatch.setattr(model.GPT, 'to', fail)
    with pytest.raises(train.TrainingError, match='out of CPU memory with batch_size=31'):
        train.train(tiny_config(tmp_path))


def test_wandb_project_names_wandb_refuses_are_config_errors():
    for bad in ('a/b', 'x:y', '#1', 'p' * 129):
        with pytest.raises(UserError, match='wandb_project'):
            validate.build_config(dict(wandb_project=bad))
