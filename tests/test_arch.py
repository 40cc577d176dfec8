"""The architecture controls (use_attention, use_mlp_only_blocks, use_residual, use_layer_norm,
use_positional_encoding, tie_embeddings, freeze_token_embeddings, weight_init): structure, training,
resume, analysis, configs and the validator."""
import os
import re

import pytest
import torch

import analyze
from pathstar.analysis import star
import configurator
import train
from conftest import tiny_config
from model import GPT, GPTConfig
from pathstar import validate

CONTROLS = {
    'no_attention': dict(use_attention=False),
    'mlp_only': dict(use_attention=False, use_mlp_only_blocks=True, use_residual=False, use_layer_norm=False,
                     use_positional_encoding=False),
    'no_residual': dict(use_residual=False),
    'frozen': dict(freeze_token_embeddings=True),
    'untied': dict(tie_embeddings=False),
    'non_geometric': dict(weight_init='non_geometric'),
    'no_layer_norm': dict(use_layer_norm=False),
    'no_positional_encoding': dict(use_positional_encoding=False),
    'mlp_only_blocks': dict(use_mlp_only_blocks=True),
}


def small_model(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(**dict(dict(vocab_size=40, block_size=8, n_layer=2, n_head=2, n_embd=16), **kw)))


def test_no_attention_blocks_have_no_attention_and_no_second_norm():
    model = small_model(use_attention=False)
    assert not any('attn' in name or 'ln_2' in name for name, _ in model.named_parameters())
    block = model.transformer.h[0]
    x = torch.randn(2, 8, 16)
    assert torch.allclose(block(x), x + block.mlp(block.ln_1(x)))
    # each position sees only its own token: changing a later token leaves earlier logits alone, and
    # with no position table either, one token gives one output wherever it stands
    model = small_model(use_attention=False, use_positional_encoding=False).eval()
    idx = torch.tensor([[3, 3, 5, 3]])
    logits, _ = model(idx)
    assert torch.allclose(logits[0, 0], logits[0, 1]) and torch.allclose(logits[0, 0], logits[0, 3])


def test_mlp_only_blocks_are_one_linear_map_without_activation():
    model = small_model(**CONTROLS['mlp_only'])
    mlp = model.transformer.h[0].mlp
    assert [tuple(p.shape) for p in mlp.parameters()] == [(16, 16)]
    x = torch.randn(3, 16)
    assert torch.allclose(mlp(2 * x), 2 * mlp(x), atol=1e-6)  # linear: no GELU
    block = model.transformer.h[0]
    assert torch.allclose(block(x), mlp(x))  # no residual, no LayerNorm
    assert isinstance(model.transformer.ln_f, torch.nn.Identity)
    assert 'wpe' not in model.transformer


def test_no_residual_and_no_layer_norm_blocks():
    model = small_model(use_residual=False, use_layer_norm=False)
    block = model.transformer.h[0]
    assert not any('ln' in name for name, _ in model.named_parameters())
    x = torch.randn(2, 8, 16)
    assert torch.allclose(block(x), block.mlp(block.attn(x)), atol=1e-6)


def test_untied_embeddings_are_separate_and_both_small():
    model = small_model(tie_embeddings=False)
    wte, head = model.transformer.wte.weight, model.lm_head.weight
    assert wte is not head and not torch.equal(wte, head)
    assert wte.std().item() == pytest.approx(0.02, rel=0.2) and head.std().item() == pytest.approx(0.02, rel=0.2)
    # the input embedding is a lookup table: not counted (nor in the FLOPs), the head is
    tied = small_model()
    assert model.num_params() == tied.num_params()
    assert model.flops_per_row(8, 2) == tied.flops_per_row(8, 2)


def test_non_geometric_init_draws_the_head_from_a_unit_normal():
    tied = small_model(weight_init='non_geometric', n_embd=64)
    assert tied.lm_head.weight.std().item() == pytest.approx(1.0, rel=0.1)
    assert tied.transformer.wte.weight is tied.lm_head.weight
    untied = small_model(weight_init='non_geometric', tie_embeddings=False, n_embd=64)
    assert untied.lm_head.weight.std().item() == pytest.approx(1.0, rel=0.1)
    assert untied.transformer.wte.weight.std().item() == pytest.approx(0.02, rel=0.2)  # the official code's choice


def test_frozen_embeddings_get_no_gradient_and_do_not_move():
    for tie in (True, False):
        model = small_model(freeze_token_embeddings=True, tie_embeddings=tie)
        frozen = {id(p) for p in model.embedding_parameters()}
        assert len(frozen) == (2 if tie else 3)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.99), 'cpu')
        assert not frozen & {id(p) for g in opt.param_groups for p in g['params']}
        idx = torch.randint(0, 40, (4, 8))
        _, loss = model(idx, idx)
        loss.backward()
        opt.step()
        for name, p in model.named_parameters():
            if id(p) in frozen:
                assert p.grad is None and torch.equal(p, before[name]), name
            elif p.dim() >= 2:
                assert not torch.equal(p, before[name]), name


def test_flops_count_what_each_control_computes():
    base, no_attn = small_model(), small_model(use_attention=False)
    T = 8
    attention_term = 12 * 2 * 16 * T * T
    attn_params = sum(p.numel() for n, p in base.named_parameters() if '.attn.' in n or '.ln_2.' in n)
    assert base.flops_per_row(T, 2) - no_attn.flops_per_row(T, 2) == 6 * attn_params * T + attention_term
    linear = small_model(use_attention=False, use_mlp_only_blocks=True)
    body = sum(p.numel() for p in linear.transformer.h.parameters()) + sum(
        p.numel() for p in linear.transformer.ln_f.parameters())
    assert body == 2 * (16 * 16 + 16) + 16  # per block Linear(d, d) and ln_1; the final LayerNorm
    assert linear.flops_per_row(T, 2) == 6 * body * T + 6 * 40 * 16 * 2
    frozen = small_model(freeze_token_embeddings=True)
    assert frozen.flops_per_row(T, 2) == base.flops_per_row(T, 2) and frozen.num_params() == base.num_params()


def test_defaults_keep_the_old_model_and_old_checkpoints_load():
    model = small_model()
    assert model.lm_head.weight is model.transformer.wte.weight
    old_args = {k: v for k, v in vars(model.config).items()
                if k in ('vocab_size', 'block_size', 'n_layer', 'n_head', 'n_embd', 'dropout', 'bias', 'gelu', 'init')}
    rebuilt = GPT(GPTConfig(**old_args))
    rebuilt.load_state_dict(model.state_dict())
    idx = torch.randint(0, 40, (2, 8))
    assert torch.equal(rebuilt(idx)[0], model(idx)[0])


@pytest.mark.parametrize('name', sorted(CONTROLS))
def test_every_control_trains_evaluates_and_is_analysed(tmp_path, name):
    logged = name in ('untied', 'mlp_only')  # geometry during training draws plots too: seconds each
    summary = train.train(tiny_config(tmp_path, epochs=6, eval_interval=5, geometry_interval=int(logged),
                                      **CONTROLS[name]))
    assert summary['iter'] > 0 and 0.0 <= summary['val/accuracy/path'] <= 1.0
    if logged:
        assert 'geometry/diagonal_margin' in summary
        assert ('geometry/output_diagonal_margin' in summary) == (name == 'untied')
    ckpt = os.path.join(tmp_path, 'out', 'ckpt.pt')
    saved = torch.load(ckpt, weights_only=True)
    for key, value in CONTROLS[name].items():
        assert saved['model_args'][key] == value
    model, _, meta = star.load_checkpoint(ckpt)
    metrics = star.geometry_metrics(model, meta)
    assert 'geometry/diagonal_margin' in metrics
    assert ('geometry/output_diagonal_margin' in metrics) == (name == 'untied')
    assert all(v == v for k, v in metrics.items() if 'laplacian' in k)  # no NaN
    if name not in ('untied', 'mlp_only'):  # the plots take seconds: the CLI on two controls is enough
        return
    analyze.main([ckpt, f'--out_dir={tmp_path / "plots"}'])
    pngs = sorted(os.listdir(tmp_path / 'plots'))
    expected = {'geometry_heatmap.png', 'geometry_projection.png'}
    if name == 'untied':
        expected |= {'geometry_output_heatmap.png', 'geometry_output_projection.png'}
    assert expected <= set(pngs)


class Stop(Exception):
    pass


@pytest.mark.parametrize('name', list(CONTROLS))
def test_resume_ends_with_the_same_metrics_as_an_uninterrupted_run(tmp_path, name):
    cfg = tiny_config(tmp_path, epochs=8, eval_interval=4, **CONTROLS[name])
    full = train.train(dict(cfg, out_dir=str(tmp_path / 'full')))

    def stop_after_first_save(event, run):
        if event == 'save_end' and run.iter_num > 0:
            raise Stop

    with pytest.raises(Stop):
        train.train(cfg, hook=stop_after_first_save)
    resumed = train.train(dict(cfg, init_from='resume'))
    assert resumed['iter'] == full['iter']
    for key in ('val/loss/overall', 'train/loss/overall', 'val/accuracy/path'):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6), key
    if name == 'frozen':  # the frozen embeddings never moved, across the resume either
        saved = torch.load(tmp_path / 'out' / 'ckpt.pt', weights_only=True)
        torch.manual_seed(configurator.DEFAULTS['seed'])  # as train.setup seeds before building the model
        initial = GPT(GPTConfig(**saved['model_args'])).state_dict()
        for key in ('lm_head.weight', 'transformer.wpe.weight'):
            assert torch.equal(saved['model'][key], initial[key]), key
        assert not torch.equal(saved['model']['transformer.h.0.mlp.c_fc.weight'],
                               initial['transformer.h.0.mlp.c_fc.weight'])


def test_validator():
    # without attention there are no heads, so n_head need not divide n_embd
    validate.build_config(dict(n_embd=30, n_head=4, use_attention=False))
    with pytest.raises(configurator.UserError, match='n_embd: must be divisible by n_head'):
        validate.build_config(dict(n_embd=30, n_head=4))
    with pytest.raises(configurator.UserError, match='weight_init: expected one of default, non_geometric'):
        validate.build_config(dict(weight_init='xavier'))
    with pytest.raises(configurator.UserError, match='use_attention: expected true/false'):
        configurator.parse_overrides(['--use_attention=maybe'])


@pytest.mark.parametrize('name', ['no_attention', 'mlp_only', 'frozen_embeddings', 'untied', 'non_geometric',
                                  'no_residual', 'no_layer_norm', 'no_positional_encoding', 'mamba'])
def test_arch_configs_apply_after_another_config(name):
    cfg = validate.parse_args(['config/official_g5000_l5.py', f'config/arch_{name}.py'])
    assert cfg['out_dir'] == f'out-official-g5000-l5-{name}'
    model_keys = ('use_attention', 'use_mlp_only_blocks', 'use_residual', 'use_layer_norm', 'use_positional_encoding',
                  'tie_embeddings', 'freeze_token_embeddings', 'weight_init', 'model_type')
    assert any(cfg[k] != configurator.DEFAULTS[k] for k in model_keys)


def test_architecture_sweep_checks_and_its_numbers_are_floats():
    from pathstar.sweeps import space as sweep_space
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'config',
                        'architecture_sweep.yaml')
    sweep = sweep_space.check_sweep(sweep_space.load_sweep_file(path))
    assert sweep_space.check_combinations(sweep['parameters']) > 0
    assert sweep_space.grid_size(sweep['parameters']) == 2 ** 5 * 3
    assert sweep['metric'] == dict(name='val/accuracy/path', goal='maximize')
    with open(path) as f:
        text = f.read()
    assert '1.0e-2' in text and not re.search(r'(?<![.\d])\de-', text)  # YAML reads 1e-2 as a string


def test_a_checkpoint_from_before_the_architecture_keys_resumes_and_is_analysed(tmp_path, capsys):
    cfg = tiny_config(tmp_path, epochs=4, eval_interval=2)
    full = train.train(cfg)
    path = tmp_path / 'out' / 'ckpt.pt'
    ckpt = torch.load(path, weights_only=True)
    new_keys = ('use_attention', 'use_mlp_only_blocks', 'use_residual', 'use_layer_norm', 'use_positional_encoding',
                'tie_embeddings', 'freeze_token_embeddings', 'weight_init')
    for key in new_keys:
        del ckpt['config'][key], ckpt['model_args'][key]
    torch.save(ckpt, path)
    resumed = train.train(dict(cfg, init_from='resume'))
    assert 'was written before use_attention' in capsys.readouterr().err
    assert resumed['val/loss/overall'] == pytest.approx(full['val/loss/overall'], abs=1e-6)
    model, _, meta = star.load_checkpoint(str(path))
    assert model.config.tie_embeddings and model.lm_head.weight is model.transformer.wte.weight
    assert 'geometry/output_diagonal_margin' not in star.geometry_metrics(model, meta)
