"""
Evaluation metrics, defined once: console, wandb and summary.json all read the
names built by path_metrics().

For path rows: teacher-forced per-token loss (one forward pass gives every token's
loss), and greedy autoregressive accuracy from the prompt (token_1 = root,
token_2 = the hard first hop, token_l = leaf; path = all l tokens right).
first_hop_teacher_forced scores the first hop given the true root, which is what
a model trained with path_loss='first_hop' (never taught to emit the root) can show.
"""
import numpy as np
import torch
from torch.nn import functional as F


def path_metrics(split, token_loss, token_correct, first_hop_tf):
    """The one place metric names are built. token_loss/token_correct: (rows, l) tensors;
    first_hop_tf: (rows,) teacher-forced first-hop correctness."""
    l = token_loss.size(1)
    metrics = {f'{split}/loss/overall': token_loss.mean().item()}
    for i in range(l):
        metrics[f'{split}/loss/token_{i + 1}'] = token_loss[:, i].mean().item()
    for i in range(l):
        metrics[f'{split}/accuracy/token_{i + 1}'] = token_correct[:, i].float().mean().item()
    metrics[f'{split}/accuracy/path'] = token_correct.all(dim=1).float().mean().item()
    metrics[f'{split}/accuracy/first_hop_teacher_forced'] = first_hop_tf.float().mean().item()
    return metrics


EVAL_BATCH_ROWS = 4096   # rows per evaluation forward pass at most...
EVAL_LOGITS = 2 ** 26    # ...and logits per pass at most (256 MiB in fp32), so eval memory stays flat at any vocab


def eval_chunk_rows(l, vocab_size, logits=EVAL_LOGITS):
    return max(1, min(EVAL_BATCH_ROWS, logits // (l * vocab_size)))


@torch.no_grad()
def score_paths(model, rows, prompt_len, l, device, ctx, logits_budget=EVAL_LOGITS):
    """Per-token teacher-forced loss, greedy-decoding correctness and teacher-forced
    first-hop correctness for path rows (n, T), in chunks of at most logits_budget logits."""
    losses, corrects, first_hops = [], [], []
    batch = eval_chunk_rows(l, model.config.vocab_size, logits_budget)
    positions = torch.arange(prompt_len - 1, prompt_len - 1 + l, device=device)
    for start in range(0, len(rows), batch):
        chunk = torch.from_numpy(rows[start:start + batch].astype(np.int64)).to(device)
        truth = chunk[:, prompt_len:prompt_len + l]
        with ctx:
            logits, _ = model(chunk[:, :-1], positions=positions.expand(len(chunk), -1))
            generated = model.generate(chunk[:, :prompt_len], l)[:, prompt_len:]
        first_hops.append((logits[:, 1].argmax(-1) == truth[:, 1]).cpu())
        losses.append(F.cross_entropy(logits.float().transpose(1, 2), truth, reduction='none').cpu())
        corrects.append((generated == truth).cpu())
        del logits, generated  # before the next chunk's are made
    return torch.cat(losses), torch.cat(corrects), torch.cat(first_hops)


@torch.no_grad()
def score_edges(model, x, pos, tgt, ctx, logits_budget=EVAL_LOGITS):
    """Teacher-forced loss and accuracy on edge rows whose answer is determined (target in slot 0),
    in chunks of at most logits_budget logits."""
    losses, correct = [], []
    batch = eval_chunk_rows(1, model.config.vocab_size, logits_budget)
    for start in range(0, len(x), batch):
        with ctx:
            logits, _ = model(x[start:start + batch], positions=pos[start:start + batch, :1])
        logits, target = logits[:, 0].float(), tgt[start:start + batch, 0]
        losses.append(F.cross_entropy(logits, target, reduction='none'))
        correct.append(logits.argmax(-1) == target)
        del logits
    return {'train/loss/edge': torch.cat(losses).mean().item(),
            'train/accuracy/edge': torch.cat(correct).float().mean().item()}


def evaluate(model, ev, meta, device, ctx):
    model.eval()
    l, prompt_len = meta['l'], meta['path_prompt_len']
    metrics = path_metrics('train', *score_paths(model, ev.train_paths, prompt_len, l, device, ctx))
    if len(ev.edges[0]):  # l = 2 without backward edges has no edge with one right answer
        metrics.update(score_edges(model, *ev.edges, ctx))
    if len(ev.val_paths):
        metrics.update(path_metrics('val', *score_paths(model, ev.val_paths, prompt_len, l, device, ctx)))
    model.train()
    return metrics


def best_key(metrics):
    """Held-out path accuracy, then first-hop accuracy, decide the best evaluation (train's when
    nothing is held out); only a strictly better key counts, so a loss dip saves nothing."""
    split = 'val' if 'val/accuracy/path' in metrics else 'train'
    return (metrics[f'{split}/accuracy/path'], metrics[f'{split}/accuracy/token_2'])


def print_eval(metrics, iter_num, epoch, l, chance):
    print(f"eval @ iter {iter_num} (epoch {epoch:.1f}): train loss {metrics['train/loss/overall']:.4f}"
          + (f" | val loss {metrics['val/loss/overall']:.4f}" if 'val/loss/overall' in metrics else '')
          + (f" | edge acc {metrics['train/accuracy/edge']:.3f}" if 'train/accuracy/edge' in metrics else ''))
    print('  accuracy ' + ''.join(f'{"tok" + str(i + 1):>7}' for i in range(l)) + '   path')
    for split in ('train', 'val'):
        if f'{split}/accuracy/path' in metrics:
            cells = ''.join(f"{metrics[f'{split}/accuracy/token_{i + 1}']:7.3f}" for i in range(l))
            print(f'  {split:<8} {cells}{metrics[f"{split}/accuracy/path"]:7.3f}')
    print(f'  (tok2 is the first hop after the root; chance {chance:.3f})')


def print_summary(summary):
    def show(key):
        return f"{summary[key]:.3f}" if key in summary else 'n/a'
    print(f"done in {summary['wall_time_s']:.1f}s, {summary['iter']} iters ({summary['epoch']:.1f} epochs)")
    print(f"  held-out first hop: final {show('val/accuracy/token_2')}, best {show('best/val/accuracy/token_2')} "
          f"(chance {summary['chance/first_hop']:.3f})")
    print(f"  held-out path:      final {show('val/accuracy/path')}, best {show('best/val/accuracy/path')}")
    print(f"  training path:      final {show('train/accuracy/path')} | val loss {show('val/loss/overall')} "
          f"| train loss {show('train/loss/overall')}")
