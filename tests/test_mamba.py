"""model_type='mamba': the pure-PyTorch scan, the mamba_ssm parameter names, training, resume, analysis."""
import signal
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, tiny_config
from test_train import run_and_sigterm_at_third_eval

from pathstar.analysis import star
import configurator
from pathstar.models import registry as models
from pathstar.sweeps import space as sweep_space
import train
from pathstar.models.mamba import MambaBlock, MambaConfig, MambaLM, selective_scan
from pathstar import validate

# mamba_ssm.Mamba(d_model, d_state, d_conv, expand).state_dict(): names and shapes (d_model=32, defaults)
MAMBA_SSM_PARAMS = {
    'A_log': (64, 16), 'D': (64,), 'in_proj.weight': (128, 32), 'conv1d.weight': (64, 1, 4), 'conv1d.bias': (64,),
    'x_proj.weight': (2 + 32, 64), 'dt_proj.weight': (64, 2), 'dt_proj.bias': (64,), 'out_proj.weight': (32, 64),
}


def slow_scan(x, dt, A, B, C, D):
    """The selective SSM one batch row, channel, time step and state element at a time."""
    b, T, d = x.shape
    n = A.shape[1]
    y = torch.zeros(b, T, d, dtype=torch.float64)
    for i in range(b):
        for c in range(d):
            h = [0.0] * n
            for t in range(T):
                out = 0.0
                for s in range(n):
                    h[s] = (torch.exp(dt[i, t, c] * A[c, s]) * h[s] + dt[i, t, c] * B[i, t, s] * x[i, t, c]).item()
                    out += C[i, t, s].item() * h[s]
                y[i, t, c] = out + D[c].item() * x[i, t, c].item()
    return y


def test_the_scan_matches_a_direct_slow_scan_on_random_input():
    g = torch.Generator().manual_seed(0)
    b, T, d, n = 2, 7, 3, 4
    x = torch.randn(b, T, d, generator=g)
    dt = torch.nn.functional.softplus(torch.randn(b, T, d, generator=g))
    A = -torch.rand(d, n, generator=g) * 3
    B, C = torch.randn(b, T, n, generator=g), torch.randn(b, T, n, generator=g)
    D = torch.randn(d, generator=g)
    fast = selective_scan(x, dt, A, B, C, D)
    assert torch.allclose(fast.double(), slow_scan(x, dt, A, B, C, D), atol=1e-5)


def test_the_block_is_causal_and_its_parameters_are_mamba_ssms():
    block = MambaBlock(32)
    assert {k: tuple(v.shape) for k, v in block.state_dict().items()} == MAMBA_SSM_PARAMS
    u = torch.randn(2, 9, 32)
    with torch.no_grad():
        y = block(u)
        u2 = u.clone()
        u2[:, 5:] = torch.randn(2, 4, 32)
        assert torch.allclose(block(u2)[:, :5], y[:, :5], atol=1e-6)
        assert not torch.allclose(block(u2)[:, 5:], y[:, 5:])


def test_the_model_follows_the_gpt_interface():
    model = MambaLM(MambaConfig(vocab_size=20, block_size=8, n_layer=2, n_embd=32))
    assert list(model.state_dict())[:1] == ['transformer.wte.weight']
    assert all(k.split('.', 3)[3] in MAMBA_SSM_PARAMS for k in model.state_dict() if '.h.' in k)
    assert model.transformer.wte.weight is model.lm_head.weight
    assert all((m.dt_proj.bias == 0).all() for m in model.transformer.h)
    idx = torch.randint(0, 20, (3, 8))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 8, 20) and loss.item() == pytest.approx(torch.log(torch.tensor(20.)).item(), abs=0.05)
    pos = torch.tensor([[2, 5]] * 3)
    sub, _ = model(idx, positions=pos)
    assert torch.allclose(sub, logits[:, [2, 5]], atol=1e-6)
    assert model.generate(idx[:, :4], 3).shape == (3, 7)
    assert model.flops_per_row(8, 2) > 0
    rebuilt = models.from_model_args(vars(model.config))
    assert isinstance(rebuilt, MambaLM) and rebuilt.load_state_dict(model.state_dict())


def test_a_mamba_run_trains_resumes_to_the_same_metrics_and_is_analysed(tmp_path):
    cfg = tiny_config(tmp_path, model_type='mamba', n_head=3, epochs=40, learning_rate=3e-3)
    full = train.train(dict(cfg, out_dir=str(tmp_path / 'full')))
    assert full['train/loss/overall'] < 3.0  # from ln(25) = 3.22; no residuals, small init: slow at first
    child = run_and_sigterm_at_third_eval(cfg, tmp_path)  # stopped at iter 20, its checkpoint saved
    assert child.returncode == 128 + signal.SIGTERM, child.stderr
    resumed = train.train(dict(cfg, init_from='resume'))
    assert resumed['iter'] == full['iter']
    for key in ('val/loss/overall', 'train/loss/overall', 'val/accuracy/path', 'train/loss/edge'):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6), key
    model, ckpt, meta = star.load_checkpoint(str(tmp_path / 'full' / 'ckpt.pt'))
    assert isinstance(model, MambaLM) and ckpt['model_args']['model_type'] == 'mamba'
    metrics = star.geometry_metrics(model, meta)
    assert 'geometry/diagonal_margin' in metrics


def test_n_head_is_ignored_for_mamba_and_a_sweep_varying_it_warns(capsys):
    validate.check(dict(configurator.DEFAULTS, model_type='mamba', n_embd=30, n_head=4))
    with pytest.raises(configurator.UserError, match='mamba_d_state'):
        validate.check(dict(configurator.DEFAULTS, mamba_d_state=0))
    sweep_space.check_sweep(dict(method='grid', parameters=dict(model_type=dict(values=['gpt', 'mamba']),
                                                                n_head=dict(values=[2, 4]))))
    assert "n_head is swept but ignored where model_type='mamba'" in capsys.readouterr().out
    sweep_space.check_sweep(dict(method='grid', parameters=dict(n_head=dict(values=[2, 4]))))
    assert 'n_head' not in capsys.readouterr().out


def test_importing_train_does_not_import_mamba():
    code = "import sys; sys.path.insert(0, %r); import train; print('mamba' in sys.modules)" % ROOT
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == 'False', out.stderr


@pytest.mark.parametrize('control', [dict(tie_embeddings=False), dict(freeze_token_embeddings=True),
                                     dict(weight_init='non_geometric'), dict(use_layer_norm=False)])
def test_the_controls_that_mean_something_for_mamba_apply_to_it(tmp_path, control):
    from pathstar.models import registry as models
    cfg = validate.build_config(tiny_config(tmp_path, model_type='mamba', n_layer=1, n_embd=16, epochs=2,
                                                **control))
    model = models.build(cfg, 40, 8, 'cpu')
    key, value = next(iter(control.items()))
    if key == 'tie_embeddings':
        assert model.transformer.wte.weight is not model.lm_head.weight
    if key == 'freeze_token_embeddings':
        assert not model.lm_head.weight.requires_grad and any(p.requires_grad for p in model.parameters())
    if key == 'weight_init':
        assert model.lm_head.weight.std() > 0.5
    if key == 'use_layer_norm':
        assert all(isinstance(ln, torch.nn.Identity) for ln in model.transformer.ln)
    train.train(cfg)


def test_gpt_only_controls_are_refused_for_mamba():
    for key, value in dict(use_attention=False, use_mlp_only_blocks=True, use_residual=False,
                           use_positional_encoding=False).items():
        with pytest.raises(configurator.UserError, match=f"{key}: applies to model_type='gpt' only"):
            validate.build_config({'model_type': 'mamba', key: value})


def test_mamba_is_never_compiled():
    """torch.compile of the whole two-block MambaLM is wrong in grad mode (inductor, CPU): compile=True is
    refused in one line, and compile=auto leaves the family's model eager (COMPILES)."""
    with pytest.raises(configurator.UserError, match="compile: model_type='mamba' runs eager"):
        validate.build_config(dict(model_type='mamba', compile=True))
    assert validate.build_config(dict(model_type='mamba'))['compile'] == 'auto'
    assert not models.family(dict(model_type='mamba')).COMPILES and models.family({}).COMPILES


def test_the_official_mamba_layer_norm_has_a_bias():
    cfg = validate.parse_args([f'{ROOT}/config/arch_mamba.py'])
    ln = models.build(cfg, 20, 8).transformer.ln[0]
    assert cfg['bias'] is True and ln.bias is not None
