"""model.py: shapes, causality, target selection, generation, optimiser groups, MFU table."""
import torch

from model import GPT, GPTConfig, estimate_mfu, gpu_peak_flops


def small_model(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16, **kw))


def test_forward_shapes_and_ignore_index():
    model = small_model()
    idx = torch.randint(0, 20, (3, 8))
    logits, loss = model(idx)
    assert logits.shape == (3, 8, 20) and loss is None
    targets = torch.full((3, 8), -1)
    targets[:, 2] = 5
    _, loss = model(idx, targets)
    expected = torch.nn.functional.cross_entropy(logits[:, 2], torch.full((3,), 5))
    assert torch.allclose(loss, expected, atol=1e-6)


def test_positions_select_the_same_logits_as_the_full_pass():
    model = small_model()
    idx = torch.randint(0, 20, (4, 8))
    full, _ = model(idx)
    positions = torch.tensor([[1, 5], [0, 7], [3, 3], [6, 2]])
    picked, _ = model(idx, positions=positions)
    assert torch.allclose(picked, torch.gather(full, 1, positions.unsqueeze(-1).expand(-1, -1, 20)), atol=1e-6)


def test_attention_is_causal():
    model = small_model().eval()
    idx = torch.randint(0, 20, (1, 8))
    changed = idx.clone()
    changed[0, 5:] = (changed[0, 5:] + 1) % 20
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.allclose(a[0, :5], b[0, :5], atol=1e-6)
    assert not torch.allclose(a[0, 5:], b[0, 5:])


def test_weights_are_tied():
    model = small_model()
    assert model.lm_head.weight is model.transformer.wte.weight


def test_generate_appends_the_argmax_tokens():
    model = small_model().eval()
    idx = torch.randint(0, 20, (2, 3))
    out = model.generate(idx, 4)
    assert out.shape == (2, 7) and torch.equal(out[:, :3], idx)
    logits, _ = model(out[:, :3])
    assert torch.equal(out[:, 3], logits[:, -1].argmax(-1))


def test_label_smoothing_changes_the_loss():
    model = small_model()
    idx = torch.randint(0, 20, (2, 8))
    targets = torch.randint(0, 20, (2, 8))
    assert model(idx, targets, 0.1)[1].item() != model(idx, targets, 0.0)[1].item()


def test_optimizer_decays_only_matrices_and_embeddings():
    model = small_model(bias=True)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), 'cpu')
    decay, no_decay = opt.param_groups
    assert decay['weight_decay'] == 0.1 and all(p.dim() >= 2 for p in decay['params'])
    assert no_decay['weight_decay'] == 0.0 and all(p.dim() < 2 for p in no_decay['params'])
    assert len(no_decay['params']) > 0


def test_peak_flops_tell_the_h100_and_h200_variants_and_the_dtype_apart():
    assert gpu_peak_flops('NVIDIA H200') == 989e12 and gpu_peak_flops('NVIDIA H200 NVL') == 835e12
    assert gpu_peak_flops('NVIDIA H100 80GB HBM3') == 989e12 and gpu_peak_flops('NVIDIA H100 PCIe') == 756e12
    assert gpu_peak_flops('NVIDIA H100 NVL') == 835e12
    assert gpu_peak_flops('NVIDIA H100 80GB HBM3', 'float32') == 495e12  # TF32
    assert gpu_peak_flops('NVIDIA A100-SXM4-80GB', 'float16') == 312e12
    assert gpu_peak_flops('Tesla V100-SXM2-16GB', 'float32') == 15.7e12
    assert gpu_peak_flops('Some Unknown Accelerator') is None
    assert estimate_mfu(1e12, 'cpu', 'float32') is None


def test_flops_per_row_counts_what_is_computed():
    """Against torch's FLOP counter (matmuls): the head only at the target slots, the body at every
    position. The counter does not see the attention kernel on CPU, so its term is left out."""
    from torch.utils.flop_counter import FlopCounterMode
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=500, block_size=16, n_layer=2, n_head=4, n_embd=64))
    B, T, K = 8, 12, 3
    x, pos, tgt = torch.randint(0, 500, (B, T)), torch.randint(0, T, (B, K)), torch.randint(0, 500, (B, K))
    with FlopCounterMode(display=False) as counter:
        model(x, tgt, positions=pos)[1].backward()
    counted = counter.get_flop_counts()
    assert counted['GPT.lm_head'][torch.ops.aten.mm] == B * 6 * 500 * 64 * K  # the tied head at K slots only
    attention = 12 * 2 * 64 * T * T
    ours = B * (model.flops_per_row(T, K) - attention)
    assert abs(ours - counter.get_total_flops()) / counter.get_total_flops() < 0.01  # LayerNorm gains aside
