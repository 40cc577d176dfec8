"""The fast selective scan (pathstar/models/scan.py) equals its definition, the loop over time, and the
Mamba block equals the official design as mambapy (an independent implementation) computes it: outputs
and the gradients of every input, float32 to 1e-5 and float64 to 1e-12, relative to the largest reference
entry. Seeded and small: a few seconds on one CPU thread."""
import pytest
import torch
import torch.nn.functional as F

from mambapy.mamba import MambaBlock as ReferenceBlock
from mambapy.mamba import MambaConfig as ReferenceConfig

from pathstar.models import mamba, scan


def inputs(b, T, d, n, dt_max, dtype, seed):
    """dt uniform in (0, dt_max] (dt_max 10: exp(dt A) underflows to 0 for A = -16), A = -(1..n) jittered."""
    g = torch.Generator().manual_seed(seed)
    def r(*s):
        return torch.randn(*s, generator=g, dtype=dtype)
    x = r(b, T, d)
    dt = torch.rand(b, T, d, generator=g, dtype=dtype) * dt_max + 1e-3
    A = -torch.arange(1, n + 1, dtype=dtype).repeat(d, 1) * torch.exp(0.2 * r(d, n))
    return [t.requires_grad_() for t in (x, dt, A, r(b, T, n), r(b, T, n), r(d))]


def outputs_and_grads(fn, ins, seed):
    y = fn(*ins)
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=y.dtype)
    return [y] + list(torch.autograd.grad(y, ins, gy))


def assert_close(ref, got, rtol, names):
    for name, a, b in zip(names, ref, got):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        scale = a.abs().max().clamp_min(1e-30)
        err = ((a - b).abs().max() / scale).item()
        assert err <= rtol, f'{name}: relative error {err:.2e} > {rtol:.0e}'


NAMES = ['y', 'dx', 'ddt', 'dA', 'dB', 'dC', 'dD']
# on one thread a chunk holds scan.CHUNK_CELLS // (T d n) rows: the small shapes are one chunk, (11, 9, 256, 16)
# three of 4, 4 and 3 rows (the demo's path rows, a ragged last chunk), (3, 40, 128, 16) three of one row; on two
# threads (11, 9, 256, 16) is 9 + 2 rows, each step of the recurrence split over both threads
SHAPES = [(3, 1, 8, 4), (5, 9, 16, 16), (2, 40, 8, 4), (11, 9, 256, 16), (3, 40, 128, 16)]


@pytest.fixture(params=[1, 2], ids=['1 thread', '2 threads'])
def threads(request):
    """The chunks depend on torch's thread count: both layouts are held to the definition."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('dt_max', [0.05, 1.0, 10.0])
def test_float32_matches_loop(shape, dt_max, threads):
    torch.manual_seed(0)
    ins = inputs(*shape, dt_max, torch.float32, seed=hash((shape, dt_max)) % 1000)
    ref = outputs_and_grads(scan.selective_scan_loop, ins, seed=1)
    got = outputs_and_grads(scan.selective_scan, ins, seed=1)
    assert_close(ref, got, 1e-5, NAMES)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('dt_max', [0.05, 1.0, 10.0])
def test_float64_matches_loop(shape, dt_max, threads):
    ins = inputs(*shape, dt_max, torch.float64, seed=7)
    ref = outputs_and_grads(scan.selective_scan_loop, ins, seed=2)
    got = outputs_and_grads(scan.selective_scan, ins, seed=2)
    assert_close(ref, got, 1e-12, NAMES)


def test_gradcheck_float64():
    ins = inputs(3, 5, 4, 3, 1.0, torch.float64, seed=3)
    assert torch.autograd.gradcheck(scan.selective_scan, ins)


def test_autocast_keeps_float32():
    """Under autocast (CPU bf16 here; CUDA fp16 the same way) the bmm must not run in half precision,
    neither in forward nor in a backward run inside the autocast region."""
    ins = inputs(5, 9, 16, 16, 1.0, torch.float32, seed=4)
    ref = outputs_and_grads(scan.selective_scan_loop, ins, seed=5)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = outputs_and_grads(scan.selective_scan, ins, seed=5)
    assert_close(ref, got, 1e-5, NAMES)


def test_half_inputs_compute_in_float32():
    ins = inputs(5, 9, 16, 16, 1.0, torch.float32, seed=6)
    half = [t.detach().bfloat16().requires_grad_() for t in ins]
    ref = outputs_and_grads(scan.selective_scan_loop, half, seed=8)
    got = outputs_and_grads(scan.selective_scan, half, seed=8)
    assert got[0].dtype == torch.float32
    assert_close(ref, got, 1e-5, NAMES)


@pytest.mark.parametrize('T', [1, 2, 9])
def test_causal_conv_matches_conv1d(T):
    torch.manual_seed(T)
    conv = torch.nn.Conv1d(12, 12, 4, groups=12, padding=3, bias=True)
    x = torch.randn(6, T, 12, requires_grad=True)
    def ref_fn(x, w, b):
        return F.conv1d(x.transpose(1, 2), w, b, padding=3, groups=12)[..., :T].transpose(1, 2)
    ins = [x, conv.weight, conv.bias]
    assert_close(outputs_and_grads(ref_fn, ins, seed=9), outputs_and_grads(scan.causal_conv, ins, seed=9),
                 1e-5, ['y', 'dx', 'dw', 'db'])


def reference_forward(blk, u):
    """MambaBlock's forward as defined: nn.Conv1d and the loop over time."""
    T = u.size(1)
    x, z = blk.in_proj(u).chunk(2, dim=-1)
    x = F.silu(blk.conv1d(x.transpose(1, 2))[..., :T].transpose(1, 2))
    dt, B, C = blk.x_proj(x).split([blk.dt_rank, blk.d_state, blk.d_state], dim=-1)
    y = scan.selective_scan_loop(x, F.softplus(blk.dt_proj(dt)), -torch.exp(blk.A_log.float()), B, C, blk.D)
    return blk.out_proj((y * F.silu(z.float())).to(u.dtype))


def perturbed_block(seed):
    torch.manual_seed(seed)
    blk = mamba.MambaBlock(32, d_state=16, d_conv=4, expand=2)
    with torch.no_grad():
        blk.dt_proj.bias.normal_()           # dt away from its init value, D away from 1, A away from -(1..n)
        blk.D.normal_()
        blk.A_log.add_(0.1 * torch.randn_like(blk.A_log))
    return blk


@pytest.mark.parametrize('T', [1, 9])
def test_block_matches_its_definition(T):
    blk = perturbed_block(10)
    u = torch.randn(6, T, 32, requires_grad=True)
    params = [u] + list(blk.parameters())
    names = ['y', 'du'] + [n for n, _ in blk.named_parameters()]
    ref = outputs_and_grads(lambda *a: reference_forward(blk, u), params, seed=11)
    got = outputs_and_grads(lambda *a: blk(u), params, seed=11)
    assert_close(ref, got, 1e-5, names)


@pytest.mark.parametrize('pscan', [True, False])
def test_block_matches_mambapy_an_independent_implementation(pscan):
    """mambapy's MambaBlock (its parallel scan, and its sequential one) loads our block's weights by name and
    computes the same outputs and parameter gradients."""
    blk = perturbed_block(12)
    ref_blk = ReferenceBlock(ReferenceConfig(d_model=32, n_layers=1, d_state=16, expand_factor=2, d_conv=4,
                                             bias=False, conv_bias=True, pscan=pscan))
    ref_blk.load_state_dict(blk.state_dict(), strict=True)
    u = torch.randn(6, 9, 32)
    ours = outputs_and_grads(lambda *a: blk(u), list(blk.parameters()), seed=13)
    ref_params = dict(ref_blk.named_parameters())
    theirs = outputs_and_grads(lambda *a: ref_blk(u), [ref_params[n] for n, _ in blk.named_parameters()], seed=13)
    assert_close(theirs, ours, 1e-5, ['y'] + [n for n, _ in blk.named_parameters()])
