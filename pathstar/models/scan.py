"""
The selective scan of a Mamba block, and its causal convolution, fast on a CPU in plain PyTorch.

selective_scan_loop is the definition (a loop over time, autograd through every step):
    h_t = exp(dt_t A) * h_{t-1} + dt_t B_t x_t,   y_t = C_t . h_t + D x_t
x, dt (b, T, d); A (d, n); B, C (b, T, n); D (d,). selective_scan computes the same with a
torch.autograd.Function: it saves only the inputs for backward, works on a few rows of the batch at a
time in reused (c, T, n, d) buffers that stay in cache (a fresh large buffer per op page-faults), keeps the
state d-innermost, and in backward recomputes each chunk's states and runs the adjoint recurrence back in
time. On the CPU demo a Mamba step costs about 1.5x a GPT step this way on one thread and 1.6-2.1x on two
(bench/bench.py (d) on a shared 2-core machine), against 14x with the loop.
causal_conv does nn.Conv1d's depthwise causal convolution in d_conv shifted multiply-adds (its CPU
backward cost as much as the fast scan). tests/test_mamba_scan.py holds both to the definitions, float32
to 1e-5 and float64 to 1e-12, outputs and every gradient. Imports only torch.
"""
import torch

CHUNK_CELLS = 4 * 9 * 16 * 256  # elements of a (rows, T, n, d) chunk buffer per thread: ~0.6 MB in float32, the 4
#                              buffers of backward ~ one core's L2 (2 MB here). At the demo (n=16, d=256) 4 of its
#                              9-step path rows and 12 of its 3-step edge rows on one thread. Measured on one
#                              thread: smaller chunks cost more Python per row, larger ones fall out of cache
#                              (T=33, d=128: 2 rows 263 ms, 1 row 373, 4 rows 317).
GRAIN = 2 ** 15  # torch splits an elementwise op over its threads only above this many elements
#                  (at::internal::GRAIN_SIZE): on several threads a chunk is made large enough that each step of
#                  the recurrence, (rows, n, d), is split too. At the demo on 2 threads: 9 path rows a chunk, and
#                  the scan 1.3x faster than 4 rows (8 rows, exactly GRAIN, stay on one thread).


def _chunk(x, n):
    """Rows per chunk of x (b, T, d) with n states: chunking pays on CPU (cache); on a GPU one chunk, the whole
    batch, is best."""
    if x.device.type != 'cpu':
        return max(x.size(0), 1)
    threads, T, d = torch.get_num_threads(), x.size(1), x.size(2)
    rows = CHUNK_CELLS * threads // (T * d * n)
    return max(1, rows, GRAIN // (n * d) + 1 if threads > 1 else 1)


class _Buffers:
    """Reusable (c, T, n, d) buffers dA, h, lam, with the views the loop needs made once: on CPU a view
    costs about as much Python time as an op, so making them per chunk costs as much as the arithmetic."""

    def __init__(self, like, k, c, T, n, d):
        self.full = [like.new_empty(c, T, n, d) for _ in range(k)]
        self.steps = [f.unbind(1) for f in self.full]               # per-step (c, n, d) views
        self.mat = [f.view(c * T, n, d) for f in self.full]         # (c T, n, d), for bmm
        self.matT = [m.transpose(1, 2) for m in self.mat]           # (c T, d, n): v (1, d) @ it sums over d
        self.later = [f[:, 1:] for f in self.full]                  # steps 1..T-1
        self.earlier = [f[:, :-1] for f in self.full]               # steps 0..T-2


def _buffers(cache, like, k, c, T, n, d):
    if c not in cache:
        cache[c] = _Buffers(like, k, c, T, n, d)
    return cache[c]


def _states(dtu, dtxu, At, Bu, buf):
    """One chunk: dtu, dtxu = dt, dt x (c, T, 1, d); At (n, d); Bu (c, T, n, 1). Fills buf.full[0] with
    dA = exp(dt A) and buf.full[1] with every state h: dt B x first, then the recurrence in place."""
    dA, h = buf.full[0], buf.full[1]
    torch.mul(dtu, At, out=dA).exp_()                 # dt >= 0 > A: exp <= 1, never overflows
    torch.mul(Bu, dtxu, out=h)
    dAs, hs = buf.steps[0], buf.steps[1]
    for t in range(1, len(hs)):
        hs[t].addcmul_(dAs[t], hs[t - 1])            # h_t = dA_t h_{t-1} + dBx_t


def _split(c, *shaped):
    """Chunk views of (b, ...) tensors: c rows, or c T rows of a (b T, ...) view."""
    return [t.split(c) for t in shaped]


class SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, B, C, D):
        x, dt, B, C = (t.contiguous() for t in (x, dt, B, C))
        y = _forward(x, dt, A, B, C)
        ctx.save_for_backward(x, dt, A, B, C, D)
        return y.addcmul_(x, D)

    @staticmethod
    def backward(ctx, gy):
        x = ctx.saved_tensors[0]
        with torch.autocast(x.device.type, enabled=False):  # autocast off: bmm stays fp32
            return _backward(ctx.saved_tensors, gy.to(x.dtype).contiguous())


def _forward(x, dt, A, B, C):
    """y_t = C_t . h_t (no D x term), chunk by chunk; nothing of size (b, T, n, d) is kept."""
    b, T, d = x.shape
    n = A.size(1)
    c = min(_chunk(x, n), b)
    At = A.t().contiguous()  # (n, d): d innermost, like the states
    y = torch.empty_like(x)
    cache = {}
    for dtu, dtxu, Bu, Cm, ym in zip(*_split(c, dt.unsqueeze(2), (dt * x).unsqueeze(2), B.unsqueeze(-1)),
                                     *_split(c * T, C.view(b * T, 1, n), y.view(b * T, 1, d))):
        buf = _buffers(cache, x, 2, dtu.size(0), T, n, d)
        _states(dtu, dtxu, At, Bu, buf)
        torch.bmm(Cm, buf.mat[1], out=ym)
    return y


def _backward(saved, gy):
    x, dt, A, B, C, D = saved
    b, T, d = x.shape
    n = A.size(1)
    c = min(_chunk(x, n), b)
    bT = b * T
    At = A.t().contiguous()
    dtx = dt * x
    ddtx = torch.empty_like(x)     # dL/d(dt x)
    ddt = torch.zeros_like(x)      # dL/ddt through dA = exp(dt A) (none at t = 0: h_{-1} = 0)
    dB, dC = torch.empty_like(B), torch.empty_like(C)
    gA_acc = x.new_zeros(c, max(T - 1, 1), n, d)  # p dt, summed over b and t once at the end
    cache = {}
    dt1 = dt[:, 1:].contiguous().unsqueeze(2)  # contiguous per chunk: a strided broadcast in addcmul_ is slower
    chunks = zip(*_split(c, dt.unsqueeze(2), dtx.unsqueeze(2), B.unsqueeze(-1), C.unsqueeze(-1), gy.unsqueeze(2),
                         ddt[:, 1:], dt1),
                 *_split(c * T, gy.view(bT, 1, d), dC.view(bT, 1, n), B.view(bT, 1, n), ddtx.view(bT, 1, d),
                         dtx.view(bT, 1, d), dB.view(bT, 1, n)))
    for dtu, dtxu, Bu, Cu, gu, ddt1, dtu1, gm, dCm, Bm, ddtxm, dtxm, dBm in chunks:
        cc = dtu.size(0)
        buf = _buffers(cache, x, 3, cc, T, n, d)
        _states(dtu, dtxu, At, Bu, buf)
        torch.bmm(gm, buf.matT[1], out=dCm)                          # dC = sum_d h g (a row times h^T: 4x
        #                                                              faster on CPU than h times a column)
        torch.mul(Cu, gu, out=buf.full[2])                           # lam = dL/dh_t, direct part C g
        dAs, ls = buf.steps[0], buf.steps[2]
        for t in range(T - 2, -1, -1):
            ls[t].addcmul_(dAs[t + 1], ls[t + 1])                    # adjoint, backwards in time
        torch.bmm(Bm, buf.mat[2], out=ddtxm)                         # d(dt x) = sum_n B lam
        torch.bmm(dtxm, buf.matT[2], out=dBm)                        # dB = sum_d lam dt x
        if T > 1:
            p = buf.later[0].mul_(buf.earlier[1]).mul_(buf.later[2])  # dL/d(dt A) = lam_t dA_t h_{t-1}
            torch.sum(torch.mul(p, At, out=buf.later[1]), 2, out=ddt1)  # sum_n p A (h is spent: reused)
            gA_acc[:cc].addcmul_(p, dtu1)                              # p dt
    ddt.addcmul_(ddtx, x)
    dx = ddtx.mul_(dt).addcmul_(gy, D)
    gD = (gy * x).sum((0, 1))
    return dx, ddt, gA_acc.sum((0, 1)).t(), dB, dC, gD


def selective_scan(x, dt, A, B, C, D):
    """y (b, T, d) of the selective SSM (selective_scan_loop's), in float32 (float64 if an input is float64),
    with autocast off: the bmm here would otherwise run in half precision under CUDA autocast."""
    ts = (x, dt, A, B, C, D)
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32
    with torch.autocast(x.device.type, enabled=False):
        return SelectiveScan.apply(*(t.to(dtype) for t in ts))


# -----------------------------------------------------------------------------
# the rest of the block: nn.Conv1d's CPU backward for a depthwise, 4-tap, 9-step convolution costs about as
# much as the fast scan (~90 ms a layer at the demo size); d_conv shifted multiply-adds do the same.

class CausalConv(torch.autograd.Function):
    """Depthwise causal convolution of x (b, T, d) with conv1d's weight (d, 1, K) and bias (d,):
    out_t = bias + sum_k w_k x_{t+k-K+1}, i.e. conv1d(x.transpose(1, 2), padding=K-1)[..., :T] transposed.
    K in-place shifted multiply-adds each way; a hand-written backward (autograd's, through slices and
    broadcasts, costs 3x more)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        T, K = x.size(1), weight.size(-1)
        w = weight[:, 0, :].t().to(x.dtype).contiguous()      # (K, d)
        out = torch.addcmul(bias.to(x.dtype), x, w[K - 1])
        for lag in range(1, min(K, T)):                       # tap K-1-lag reads lag steps back
            out[:, lag:].addcmul_(x[:, :T - lag], w[K - 1 - lag])
        ctx.save_for_backward(x, w)
        ctx.dtypes = weight.dtype, bias.dtype
        return out

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        T, K = x.size(1), w.size(0)
        gy = gy.contiguous()
        gx = gy * w[K - 1]
        gf, xf = gy.float(), x.float()                          # weight sums in float32 (no-op in fp32)
        gw = xf.new_zeros(K, x.size(-1))
        gw[K - 1] = (gf * xf).sum((0, 1))
        for lag in range(1, min(K, T)):
            gx[:, :T - lag].addcmul_(gy[:, lag:], w[K - 1 - lag])
            gw[K - 1 - lag] = (gf[:, lag:] * xf[:, :T - lag]).sum((0, 1))
        return gx, gw.t().unsqueeze(1).to(ctx.dtypes[0]), gf.sum((0, 1)).to(ctx.dtypes[1])


def causal_conv(x, weight, bias):
    return CausalConv.apply(x, weight, bias)


def selective_scan_loop(x, dt, A, B, C, D):
    """The definition: y (b, T, d), a loop over time in float32, or float64 if an input is (elementwise ops
    only, so CUDA autocast leaves it be). selective_scan is the fast path; the tests hold it to this."""
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in (x, dt, A, B, C, D)) else torch.float32
    x, dt, A, B, C, D = (t.to(dtype) for t in (x, dt, A, B, C, D))
    dA = torch.exp(dt.unsqueeze(-1) * A)                            # (b, T, d, n)
    dBx = (dt * x).unsqueeze(-1) * B.unsqueeze(2)                   # (b, T, d, n)
    h = torch.zeros_like(dBx[:, 0])
    ys = []
    for t in range(x.size(1)):
        h = dA[:, t] * h + dBx[:, t]
        ys.append((h * C[:, t].unsqueeze(1)).sum(-1))
    return torch.stack(ys, dim=1) + x * D
