"""wandb logging: offline by default, never a network call, the metric names in the run files."""
import glob
import json
import os
import time

import train
from conftest import tiny_config


def test_offline_run_writes_the_metric_keys(tmp_path, capsys):
    summary = train.train(tiny_config(tmp_path, epochs=10, wandb_log=True, wandb_mode='auto'))
    runs = glob.glob(os.path.join(os.environ['WANDB_DIR'], 'wandb', 'offline-run-*'))
    assert len(runs) == 1
    keys = ('val/loss/overall', 'val/loss/token_2', 'val/accuracy/token_2', 'val/accuracy/path',
            'train/loss/overall', 'train/accuracy/path', 'lr', 'tokens_per_sec')
    deadline = time.time() + 60  # wandb's service may still be writing after finish() returns
    while True:
        history = open(glob.glob(os.path.join(runs[0], '*.wandb'))[0], 'rb').read()
        missing = [key for key in keys if key.encode() not in history]
        if not missing or time.time() > deadline:
            break
        time.sleep(0.2)
    assert missing == []
    assert 'wandb sync' in capsys.readouterr().out
    with open(tmp_path / 'out' / 'summary.json') as f:
        assert json.load(f)['val/loss/overall'] == summary['val/loss/overall']


def test_auto_mode_is_offline_without_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv('WANDB_MODE')
    assert train.wandb_mode(dict(wandb_mode='auto')) == 'offline'
    monkeypatch.setenv('WANDB_API_KEY', 'x' * 40)
    assert train.wandb_mode(dict(wandb_mode='auto')) == 'online'
    assert train.wandb_mode(dict(wandb_mode='disabled')) == 'disabled'


def test_run_name_is_built_from_the_key_parameters():
    cfg = dict(wandb_run_name='', graph_d=100, graph_l=5, num_pause_tokens=5, n_layer=4, n_embd=128,
               learning_rate=5e-4, seed=3)
    assert train.run_name(cfg) == 'G100x5_p5_L4x128_lr0.0005_s3'
    assert train.run_name(dict(cfg, wandb_run_name='mine')) == 'mine'
