"""
The model interface, written down once: every model family's model is a LanguageModel. The training
loop, the evaluation and the geometry diagnostics use only what is named here:

    .config                        the family's config dataclass (saved in checkpoints as model_args)
    .transformer.wte, .lm_head     the token embedding and the output head (tied unless tie_embeddings=False)
    hidden(idx) -> (B, T, C)       the family's own body: the last hidden states
    forward(idx, targets, label_smoothing, positions, weights) -> (logits, loss)
    generate(idx, max_new_tokens), configure_optimizers(...), num_params(), flops_per_row(seq_len, slots)

A family implements hidden, num_params and flops_per_row; the loss, greedy decoding and the optimiser
are shared here, so every family scores rows the same way. Imports only torch.
"""
import inspect

import torch
import torch.nn as nn
from torch.nn import functional as F


class LanguageModel(nn.Module):
    """A next-token model over token rows, with a tied (or untied) output head."""

    def hidden(self, idx):
        raise NotImplementedError

    def num_params(self, non_embedding=True):
        raise NotImplementedError

    def flops_per_row(self, seq_len, slots):
        raise NotImplementedError

    def forward(self, idx, targets=None, label_smoothing=0.0, positions=None, weights=None):
        """
        idx (B, T) token ids. targets (B, T) next-token ids with -1 = ignore.
        positions (B, K), optional: compute logits only at these positions, and then
        targets is (B, K). Rows here have few targets (the path, or an edge's end), so
        skipping the output head elsewhere saves most of its cost, with fixed shapes.
        weights (B,), optional: row b counts as weights[b] identical rows in the mean.
        Returns (logits, loss); loss is the mean over the non-ignored targets.
        """
        x = self.hidden(idx)
        if positions is not None:
            x = torch.gather(x, 1, positions.unsqueeze(-1).expand(-1, -1, x.size(-1)))
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            reduction = 'mean' if weights is None else 'none'
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                                   ignore_index=-1, label_smoothing=label_smoothing, reduction=reduction)
            if weights is not None:
                w = (targets >= 0) * weights[:, None]
                loss = (loss * w.reshape(-1)).sum() / w.sum()
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):
        """Greedy decoding: append max_new_tokens argmax tokens to every row of idx (B, T); the prefix is
        recomputed each step (rows are short), cropped to block_size."""
        for _ in range(max_new_tokens):
            x = self.hidden(idx[:, -self.config.block_size:])
            next_token = self.lm_head(x[:, -1]).argmax(dim=-1, keepdim=True)
            idx = torch.cat((idx, next_token.to(idx.dtype)), dim=1)
        return idx

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type, decay_all=False):
        # decay matrices and embeddings (>= 2-D), not biases or LayerNorm gains; decay_all: every
        # parameter, as the official code's AdamW(model.parameters(), weight_decay=...) does
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {'params': [p for p in params if p.dim() >= 2 or decay_all], 'weight_decay': weight_decay},
            {'params': [p for p in params if p.dim() < 2 and not decay_all], 'weight_decay': 0.0},
        ]
        fused = device_type == 'cuda' and 'fused' in inspect.signature(torch.optim.AdamW).parameters
        extra = dict(fused=True) if fused else dict()
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **extra)


def kernels_unused(model, device):
    """A family's finish(model, device) when it has no device-specific kernels: the model as it is."""
    return model
