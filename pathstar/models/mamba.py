"""
model_type='mamba': a Mamba language model (a pathstar.models.base.LanguageModel, as the GPT is), as the
official code's `--model_family mamba`:

    x = wte(idx)                              # no position embedding
    for each layer: x = Mamba(LayerNorm(x))   # NO residual connection, as the official code
    logits = x @ wte.T                        # tied head, no final LayerNorm

The Mamba block (selective state-space model, Gu & Dao 2023) is written here in plain PyTorch
with the parameter names and shapes of mamba_ssm.Mamba, so one state_dict loads into either.
On a CUDA device with mamba-ssm installed, finish() swaps in mamba_ssm.Mamba (its fused kernels)
for each block; everywhere else the pure path below runs (mamba-ssm is imported only there).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from pathstar.errors import require
from pathstar.models.base import LanguageModel
from pathstar.models.scan import causal_conv, selective_scan


@dataclass
class MambaConfig:
    vocab_size: int
    block_size: int       # longest input the model sees; Mamba itself has no limit, generate crops to it
    n_layer: int = 2
    n_embd: int = 128
    d_state: int = 16     # SSM state size per channel (--mamba_state_dimension)
    d_conv: int = 4       # causal depthwise convolution width (--mamba_convolution_kernel)
    expand: int = 2       # d_inner = expand * n_embd (--mamba_expand_factor)
    bias: bool = False    # LayerNorm bias (the Mamba block's Linear layers have none, as mamba_ssm's)
    model_type: str = 'mamba'  # saved in the checkpoint's model_args: the registry picks the family by it
    # the architecture controls that mean something for Mamba (the GPT's, see model.py)
    use_layer_norm: bool = True
    tie_embeddings: bool = True
    freeze_token_embeddings: bool = False
    weight_init: str = 'default'   # 'non_geometric': the output head N(0, 1)


class MambaBlock(nn.Module):
    """The Mamba mixer in pure PyTorch: the names and shapes of mamba_ssm.Mamba's parameters."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1,
                                bias=True)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        # S4D-real initialisation: A = -(1..n) for every channel; skip connection D = 1
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, u):
        x, z = self.in_proj(u).chunk(2, dim=-1)                                # (b, T, d_inner) each
        x = F.silu(causal_conv(x, self.conv1d.weight, self.conv1d.bias))       # the conv1d module holds them
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt))
        y = selective_scan(x, dt, -torch.exp(self.A_log.float()), B, C, self.D)
        return self.out_proj((y * F.silu(z.float())).to(u.dtype))


class MambaLM(LanguageModel):
    """Token embedding, n_layer x Mamba(LayerNorm(x)) without residuals (faithful to the official
    code, whose blocks return the mixer's output alone), no final LayerNorm, tied head."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            ln=nn.ModuleList([nn.LayerNorm(config.n_embd, bias=config.bias) if config.use_layer_norm
                              else nn.Identity() for _ in range(config.n_layer)]),
            h=nn.ModuleList([MambaBlock(config.n_embd, config.d_state, config.d_conv, config.expand)
                             for _ in range(config.n_layer)]),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.transformer.wte.weight = self.lm_head.weight
        # the official init: every Linear N(0, 0.02) with zero biases, dt_proj.bias included
        # (overriding mamba_ssm's dt initialisation); the conv, A_log and D keep theirs
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, 'bias', None) is not None:
                    nn.init.zeros_(module.bias)
        if config.weight_init == 'non_geometric':
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=1.0)
        if config.freeze_token_embeddings:  # the associative-memory control: only the blocks learn
            for p in (self.lm_head.weight, self.transformer.wte.weight):
                p.requires_grad_(False)

    def use_kernels(self):
        """Replace each pure block by mamba_ssm.Mamba (CUDA kernels) holding the same weights."""
        from mamba_ssm import Mamba
        cfg = self.config
        for i, block in enumerate(self.transformer.h):
            fast = Mamba(d_model=cfg.n_embd, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand)
            fast.load_state_dict(block.state_dict())
            self.transformer.h[i] = fast
        return self

    def num_params(self, non_embedding=True):
        return sum(p.numel() for p in self.parameters())  # no position table to leave out

    def hidden(self, idx):
        x = self.transformer.wte(idx)
        for ln, block in zip(self.transformer.ln, self.transformer.h):
            x = block(ln(x))
        return x

    def flops_per_row(self, seq_len, slots):
        """Forward + backward FLOPs of one row (3x the forward): per input token and layer, 2 per
        weight of the four projections, 2 per conv tap, ~9 per state element of the scan
        (discretise exp(dt A), dt B x, the update h = dA h + dBx, C . h), plus the tied head at `slots`."""
        cfg = self.config
        d_inner, dt_rank = cfg.expand * cfg.n_embd, math.ceil(cfg.n_embd / 16)
        proj = (2 * d_inner * cfg.n_embd + (dt_rank + 2 * cfg.d_state) * d_inner + dt_rank * d_inner
                + d_inner * cfg.n_embd)  # in_proj, x_proj, dt_proj, out_proj
        per_token = 2 * proj + 2 * d_inner * cfg.d_conv + 9 * d_inner * cfg.d_state
        head = cfg.vocab_size * cfg.n_embd
        return 3 * cfg.n_layer * per_token * seq_len + 6 * head * slots


# -----------------------------------------------------------------------------
# the family's entry in the model registry

Model, Config = MambaLM, MambaConfig
# the GPT's architecture controls, which a Mamba block has nothing to take away from: refused unless default
NOT_APPLICABLE = {key: "a Mamba block has no attention, MLP, residual or position table"
                  for key in ('use_attention', 'use_mlp_only_blocks', 'use_residual', 'use_positional_encoding')}
NOT_APPLICABLE.update(gelu="a Mamba block has no GELU", init="the Mamba init is the official code's, always",
                      dropout="the official Mamba model has no dropout")
UNUSED = ('n_head',)  # a Mamba block has no heads: a sweep over it repeats runs
READS = ('compile',)
SLOW_ON_CPU = False  # the fast scan (scan.py): a step costs 1.5-2x a GPT step on a CPU
# never torch.compile'd: inductor (CPU, torch 2.13) computes two stacked blocks 12-38% off in grad mode, and
# the eager fast scan beats blocks compiled one by one (bench/README.md)
COMPILES = False


def config_from(cfg, vocab_size, block_size):
    return MambaConfig(vocab_size=vocab_size, block_size=block_size, n_layer=cfg['n_layer'], n_embd=cfg['n_embd'],
                       d_state=cfg['mamba_d_state'], d_conv=cfg['mamba_d_conv'], expand=cfg['mamba_expand'],
                       bias=cfg['bias'], use_layer_norm=cfg['use_layer_norm'], tie_embeddings=cfg['tie_embeddings'],
                       freeze_token_embeddings=cfg['freeze_token_embeddings'], weight_init=cfg['weight_init'])


def check(cfg):
    require(cfg['compile'] is not True, "compile: model_type='mamba' runs eager (torch.compile computes stacked "
                                        "Mamba blocks wrongly in grad mode, and the eager scan is faster); use "
                                        "compile=auto or false")


def kernels_available(device):
    """mamba-ssm's CUDA kernels run here: a CUDA device and the package installed."""
    if not str(device).startswith('cuda'):
        return False
    try:
        import mamba_ssm  # noqa: F401  (optional, CUDA only: imported where it is used)
    except Exception:  # not installed, or built against another torch/CUDA
        return False
    return True


def finish(model, device):
    if kernels_available(device):
        model.use_kernels()  # the same parameters, so the same checkpoints, on mamba_ssm.Mamba
    return model
