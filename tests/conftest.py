"""Shared test setup: wandb offline in temp folders, the repo on sys.path, a tiny config."""
import contextlib
import io
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import torch  # noqa: E402

from pathstar import validate  # noqa: E402  (importable once the repo is on sys.path)
from pathstar.models.base import LanguageModel  # noqa: E402


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    """No test may reach the network: wandb runs offline with its files under tmp_path."""
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('WANDB_SILENT', 'true')
    for var in ('WANDB_DIR', 'WANDB_CACHE_DIR', 'WANDB_CONFIG_DIR', 'WANDB_DATA_DIR'):
        monkeypatch.setenv(var, str(tmp_path / 'wandb_home'))
    monkeypatch.delenv('WANDB_API_KEY', raising=False)
    yield
    if 'wandb' in sys.modules:
        sys.modules['wandb'].teardown()


def tiny_config(tmp_path, **overrides):
    """A graph and model small enough to train in seconds on one CPU core."""
    cfg = dict(graph_d=4, graph_l=3, num_pause_tokens=1, graph_holdout_percentage=0.25,
               n_layer=1, n_head=2, n_embd=32, epochs=20, eval_interval=10, log_interval=5,
               data_dir=str(tmp_path / 'data'), out_dir=str(tmp_path / 'out'), device='cpu')
    cfg.update(overrides)
    return cfg


@pytest.fixture
def forwards():
    """(x shape, target shape, targets scored) of every training forward pass (targets given) of any model,
    seen through torch's global forward pre-hook (no patching)."""
    calls = []

    def hook(module, args):
        if isinstance(module, LanguageModel) and len(args) > 1 and args[1] is not None:
            idx, targets = args[0], args[1]
            calls.append((tuple(idx.shape), tuple(targets.shape), int((targets >= 0).sum())))
    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    yield calls
    handle.remove()


def checked(cfg):
    """A whole checked config from the keys a test sets (the library's data functions take only those)."""
    return validate.build_config(cfg)


def run_cli(main, args, cwd, env=None):
    """`python3 <script>.py args` in cwd, run in this process so the torch import is paid once: the script's
    main(argv) behind configurator.exit_on_user_error, as its __main__ block calls it, with env's variables
    set for the call. Returns (exit code, stdout, stderr); an unexpected exception propagates, as a
    traceback would end the real process."""
    import configurator
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    os.chdir(cwd)
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = configurator.exit_on_user_error(lambda: main(list(args))) or 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
    return code, out.getvalue(), err.getvalue()


def cli_result(main, args, cwd, env=None):
    """run_cli as a subprocess.CompletedProcess (returncode, stdout, stderr), for tests written against one."""
    code, out, err = run_cli(main, args, cwd, env)
    return subprocess.CompletedProcess(list(args), code, out, err)
