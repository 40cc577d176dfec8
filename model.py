"""
A small GPT in the style of nanoGPT: token + learned position embeddings,
pre-LayerNorm blocks with causal self-attention and a GELU MLP, weight tying.
It knows nothing about graphs; train.py feeds it token rows.

model_type='gpt' in the model registry (pathstar/models/registry.py): this module is the family,
GPT implements pathstar.models.base.LanguageModel (the loss, decoding and optimiser are there), and
config_from and check are what the registry and the validator call. It imports only pathstar.models.base
and pathstar.errors of the project.
"""
import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from pathstar.errors import require
from pathstar.models.base import LanguageModel, kernels_unused


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int       # longest input the model sees (row length - 1)
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False
    gelu: str = 'exact'        # 'tanh': the tanh approximation (the official code's)
    init: str = 'nanogpt'      # 'official': the position table N(0, 1) and no depth-scaled residual projections
    # architecture controls (the official code's flags); the defaults are the transformer above, so a
    # checkpoint written before these fields existed builds the same model
    use_attention: bool = True            # False: block = x + mlp(ln_1(x)), no attention and no ln_2
    use_mlp_only_blocks: bool = False     # True: one Linear(d, d) (+ dropout), no activation, in place of the MLP
    use_residual: bool = True             # False: no skip connections in the blocks
    use_layer_norm: bool = True           # False: no ln_1, ln_2 or final LayerNorm
    use_positional_encoding: bool = True  # False: no position table
    tie_embeddings: bool = True           # False: an input embedding separate from the output head
    freeze_token_embeddings: bool = False  # True: token embedding, output head and position table never train
    weight_init: str = 'default'          # 'non_geometric': the output head (so a tied embedding) ~ N(0, 1)


class CausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.dropout = config.dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.approximate = 'tanh' if config.gelu == 'tanh' else 'none'

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class LinearMLP(nn.Module):
    """use_mlp_only_blocks: one Linear(d, d) and dropout, no activation, in place of the GELU MLP.
    Its weight is plain N(0, 0.02) (not depth-scaled), as the official code leaves it."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_fc(x))


def layer_norm(config):
    return nn.LayerNorm(config.n_embd, bias=config.bias) if config.use_layer_norm else nn.Identity()


class Block(nn.Module):
    """Pre-LayerNorm: x + attn(ln_1(x)), then + mlp(ln_2(x)). Without attention the block is
    x + mlp(ln_1(x)) (no ln_2); without residuals the sums become plain assignments."""

    def __init__(self, config):
        super().__init__()
        self.residual, self.use_attention = config.use_residual, config.use_attention
        self.ln_1 = layer_norm(config)
        if config.use_attention:
            self.attn = CausalSelfAttention(config)
            self.ln_2 = layer_norm(config)
        self.mlp = LinearMLP(config) if config.use_mlp_only_blocks else MLP(config)

    def forward(self, x):
        if self.use_attention:
            a = self.attn(self.ln_1(x))
            x = x + a if self.residual else a
            m = self.mlp(self.ln_2(x))
        else:
            m = self.mlp(self.ln_1(x))
        return x + m if self.residual else m


class GPT(LanguageModel):
    """model_type='gpt'."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        modules = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))
        if config.use_positional_encoding:
            modules['wpe'] = nn.Embedding(config.block_size, config.n_embd)
        modules.update(drop=nn.Dropout(config.dropout), h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                       ln_f=layer_norm(config))
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            # weight tying: the input and output embedding of a node id are one vector,
            # which is also what the geometry diagnostics read
            self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)  # untied, the input embedding is N(0, 0.02) as the head is
        if config.init == 'official':  # its position table keeps torch's N(0, 1); no depth scaling
            if config.use_positional_encoding:
                nn.init.normal_(self.transformer.wpe.weight, mean=0.0, std=1.0)
        else:
            # GPT-2: scale the residual projections by the depth so the residual stream
            # does not grow with n_layer
            for name, p in self.named_parameters():
                if name.endswith('c_proj.weight'):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        if config.weight_init == 'non_geometric':  # the output head only (tied: the token embedding with it)
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=1.0)
        if config.freeze_token_embeddings:  # the official 'associative' control: only the blocks (and ln_f) train
            for p in self.embedding_parameters():
                p.requires_grad_(False)

    def embedding_parameters(self):
        """The token embedding, the output head and the position table (each once when tied)."""
        params = [self.lm_head.weight]
        if not self.config.tie_embeddings:
            params.append(self.transformer.wte.weight)
        if self.config.use_positional_encoding:
            params.append(self.transformer.wpe.weight)
        return params

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding=True):
        """Every parameter, frozen or not; non_embedding leaves out the lookup tables (the position
        table, and the input embedding when it is not tied to the output head)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            if self.config.use_positional_encoding:
                n -= self.transformer.wpe.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.transformer.wte.weight.numel()
        return n

    def hidden(self, idx):
        """Final-layer hidden states (B, T, C) after ln_f."""
        T = idx.size(1)
        assert T <= self.config.block_size, f"sequence of {T} > block_size {self.config.block_size}"
        x = self.transformer.wte(idx)
        if self.config.use_positional_encoding:
            x = x + self.transformer.wpe(torch.arange(T, dtype=torch.long, device=idx.device))
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def flops_per_row(self, seq_len, slots):
        """Forward + backward FLOPs of one row of seq_len inputs whose output head runs at `slots`
        positions (PaLM appendix B, counting what is computed: the body at every position,
        attention over seq_len, the head only at the slots; an embedding lookup is free). Frozen
        parameters count as trained ones: their forward and backward are computed all the same."""
        cfg = self.config
        head = self.lm_head.weight.numel()
        body = sum(p.numel() for p in self.transformer.h.parameters()) + \
            sum(p.numel() for p in self.transformer.ln_f.parameters())
        attention = 12 * cfg.n_layer * cfg.n_embd * seq_len * seq_len if cfg.use_attention else 0
        return 6 * body * seq_len + 6 * head * slots + attention


# dense tensor-core peaks in TFLOP/s, (bf16/fp16, tf32), by a name torch.cuda.get_device_name
# contains; the first match wins, so the PCIe/NVL variants come before the SXM parts
GPU_PEAK_TFLOPS = [
    ('H100 PCIe', 756, 378), ('H100 NVL', 835, 418), ('H100', 989, 495),
    ('H200 NVL', 835, 418), ('H200', 989, 495), ('GH200', 989, 495), ('B200', 2250, 1100),
    ('A100', 312, 156), ('A800', 312, 156), ('L40S', 362, 183), ('L40', 181, 90.5),
    ('RTX 6000 Ada', 365, 182), ('A6000', 155, 77), ('4090', 165, 82.6), ('3090', 71, 35.6),
    ('A10', 125, 62.5), ('L4', 121, 60), ('V100', 125, 15.7), ('T4', 65, 8.1),
]


def gpu_peak_flops(device_name, dtype='bfloat16'):
    """The dense peak FLOP/s of the named GPU for dtype (float32 runs on TF32 where it
    exists), or None when we do not know the GPU."""
    for key, half, tf32 in GPU_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return 1e12 * (tf32 if dtype == 'float32' else half)
    return None


def estimate_mfu(flops_per_sec, device, dtype):
    """Model FLOPs utilisation against the GPU's dense peak for dtype; None on CPU or unknown GPUs."""
    if not str(device).startswith('cuda') or not torch.cuda.is_available():
        return None
    peak = gpu_peak_flops(torch.cuda.get_device_name(torch.device(device)), dtype)
    return None if peak is None else flops_per_sec / peak


# -----------------------------------------------------------------------------
# the family's entry in the model registry

Model, Config = GPT, GPTConfig
NOT_APPLICABLE = {key: "a GPT has no state-space block" for key in ('mamba_d_state', 'mamba_d_conv', 'mamba_expand')}
UNUSED = ()  # keys it ignores without a word: none
READS = ('n_embd', 'n_head', 'use_attention')  # check's keys
SLOW_ON_CPU = False  # reproduce.py runs the slow families' arms last
COMPILES = True  # compile=auto compiles it on CUDA
finish = kernels_unused


def config_from(cfg, vocab_size, block_size):
    """GPTConfig from the train config: every GPTConfig field that is also a config key."""
    return GPTConfig(vocab_size=vocab_size, block_size=block_size,
                     **{f.name: cfg[f.name] for f in dataclasses.fields(GPTConfig) if f.name in cfg
                        and f.name not in ('vocab_size', 'block_size')})


def check(cfg):
    """No rule rejects a combination of the architecture keys: each one still trains. n_layer >= 1 and
    every block keeps a weight matrix, so even with freeze_token_embeddings something is left to train;
    the controls that cannot solve the task (no attention, no positions) are the point of running them.
    Only the heads must divide the width (a GPT without attention has none)."""
    require(not cfg['use_attention'] or cfg['n_embd'] % cfg['n_head'] == 0,
            f"n_embd: must be divisible by n_head, got n_embd={cfg['n_embd']}, n_head={cfg['n_head']}")
