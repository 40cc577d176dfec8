"""
Evaluation metrics, defined once: console, wandb and summary.json all read the
names built by path_metrics().

For path rows, token_i is the i-th TARGET of the row (path_target='full': token_1 =
root, token_2 = the first hop, token_l = leaf; 'reversed': token_1 = leaf, token_l =
root; 'first_hop': token_1 is the only one). Each has a teacher-forced loss (one
forward pass over the row, with the inputs the model trains on) and a greedy accuracy
(generated from the prompt alone; path = every target right). first_hop is the
greedy accuracy of the target that is the hop after the root, wherever it sits.
first_hop_teacher_forced scores that hop in the teacher-forced pass: given the true
root for 'full' (what a model trained with path_loss='first_hop', never taught to emit
the root, can show), the true leaf..n2 for 'reversed', the prompt alone for
'first_hop' (so it equals first_hop there).

A teacherless model (teacherless=True) sees DUMMY inputs after the prompt in training,
so it is evaluated as the official code generates for it: one forward pass over the
prompt and the dummies, the argmax at each target position. That one pass gives the
losses, the accuracies and first_hop_teacher_forced (= first_hop) alike.

Where the held-out paths go wrong (path_errors): token_i_teacher_forced scores target i given the true
targets before it; token_i_given_prefix is the greedy accuracy of target i over the rows whose greedy
targets before it were all right (0 when none was); errors/<kind> splits the wrong rows by their first
wrong token (all 0 when none is wrong): a non-node token, the leaf the prompt names, the node just
reached again (repeat), another node of the row's own path in the wrong place, a training path's leaf,
or another node; errors/last_target/<kind> splits the same way the rows whose first wrong token is the
last target (the leaf, for 'full' targets). 'repeat' is one way held-out paths miss their leaf: the last
node before it is the leaf's one neighbour, the answer of the leaf's own edge row, so a model that looks
up the prompt's leaf in its edge memory returns that node instead of the leaf.

Edges: edge is teacher-forced on a fixed sample of edge rows with one right answer;
edge_all on every edge row (as the official code's edge accuracy: a prompt with
several right answers, such as the root's, can be right for one of its rows only).
"""
import re

import numpy as np
import torch
from torch.nn import functional as F

from pathstar.data import slots
from pathstar.tokens import NODE_OFFSET


def path_metrics(split, token_loss, token_correct, first_hop_tf, first_hop_slot=1):
    """The one place metric names are built. token_loss/token_correct: (rows, targets) tensors;
    first_hop_tf: (rows,) teacher-forced first-hop correctness; first_hop_slot: the target that
    is the first hop (meta['first_hop_slot'])."""
    n = token_loss.size(1)
    metrics = {f'{split}/loss/overall': token_loss.mean().item()}
    for i in range(n):
        metrics[f'{split}/loss/token_{i + 1}'] = token_loss[:, i].mean().item()
    for i in range(n):
        metrics[f'{split}/accuracy/token_{i + 1}'] = token_correct[:, i].float().mean().item()
    metrics[f'{split}/accuracy/path'] = token_correct.all(dim=1).float().mean().item()
    metrics[f'{split}/accuracy/first_hop'] = token_correct[:, first_hop_slot].float().mean().item()
    metrics[f'{split}/accuracy/first_hop_teacher_forced'] = first_hop_tf.float().mean().item()
    return metrics


ERROR_KINDS = ('non_node', 'prompt_leaf', 'repeat', 'own_path', 'training_leaf', 'other_node')


def first_error_kinds(generated, truth, prompt_leaf, node_offset, training_leaves):
    """Per row, the index in ERROR_KINDS of its first wrong generated token, or -1 when the row is right.
    generated, truth (n, l) tokens; prompt_leaf (n,) the leaf each prompt names; training_leaves the
    leaf tokens of the training paths (empty in context)."""
    wrong = generated != truth
    first = wrong.int().argmax(dim=1, keepdim=True)
    token = generated.gather(1, first)[:, 0]
    before = torch.where(first[:, 0] > 0, truth.gather(1, (first - 1).clamp(min=0))[:, 0], -1)  # the node it is at
    kind = torch.full_like(token, 5)
    kind[torch.isin(token, training_leaves)] = 4
    kind[(token[:, None] == truth).any(dim=1)] = 3
    kind[token == before] = 2
    kind[token == prompt_leaf] = 1
    kind[token < node_offset] = 0
    return torch.where(wrong.any(dim=1), kind, torch.full_like(kind, -1))


def path_errors(split, correct, tf_correct, kinds):
    """The error-analysis metrics of path rows: correct (n, l) greedy, tf_correct (n, l) teacher-forced,
    kinds (n,) from first_error_kinds."""
    metrics = {}
    for i in range(correct.size(1)):
        metrics[f'{split}/accuracy/token_{i + 1}_teacher_forced'] = tf_correct[:, i].float().mean().item()
        prefix = correct[:, :i].all(dim=1)  # 0 when no row got that far, so every run has the same keys
        metrics[f'{split}/accuracy/token_{i + 1}_given_prefix'] = \
            (correct[:, i] & prefix).sum().item() / max(prefix.sum().item(), 1)
    wrong = max((kinds >= 0).sum().item(), 1)  # every kind 0 when no row is wrong
    for k, name in enumerate(ERROR_KINDS):
        metrics[f'{split}/errors/{name}'] = (kinds == k).sum().item() / wrong
    # the rows whose first wrong token is the last target (the leaf, for 'full' targets), split the same way
    last = (kinds >= 0) & correct[:, :-1].all(dim=1)
    for k, name in enumerate(ERROR_KINDS):
        metrics[f'{split}/errors/last_target/{name}'] = (last & (kinds == k)).sum().item() / max(last.sum().item(), 1)
    return metrics


EVAL_BATCH_ROWS = 4096   # rows per evaluation forward pass at most...
EVAL_LOGITS = 2 ** 26    # ...and logits per pass at most (256 MiB in fp32), so eval memory stays flat at any vocab


def eval_chunk_rows(l, vocab_size, logits=EVAL_LOGITS):
    return max(1, min(EVAL_BATCH_ROWS, logits // (l * vocab_size)))


@torch.no_grad()
def score_paths(model, rows, prompt_len, l, device, ctx, logits_budget=EVAL_LOGITS, first_hop_slot=None, dummy=None,
                details=False):
    """Per-token teacher-forced loss, greedy-decoding correctness and teacher-forced first-hop
    correctness for path rows (n, T) whose l targets follow a prompt of prompt_len tokens, in chunks
    of at most logits_budget logits. first_hop_slot: the target that is the first hop (default 1,
    or 0 for a single target). dummy: the DUMMY token of a teacherless model, whose inputs after the
    prompt are dummies; then one forward pass per chunk gives the loss and the argmax 'generation'.
    details=True also returns the generated targets and the teacher-forced argmax, (n, l) each."""
    if first_hop_slot is None:
        first_hop_slot = 1 if l > 1 else 0
    losses, corrects, first_hops, gens, tfs = [], [], [], [], []
    batch = eval_chunk_rows(l, model.config.vocab_size, logits_budget)
    positions = torch.arange(prompt_len - 1, prompt_len - 1 + l, device=device)
    for start in range(0, len(rows), batch):
        chunk = torch.from_numpy(rows[start:start + batch].astype(np.int64)).to(device)
        truth = chunk[:, prompt_len:prompt_len + l]
        x = chunk[:, :-1]
        if dummy is not None:
            x = slots.put_dummies(x.clone(), prompt_len, l, dummy)
        with ctx:
            logits, _ = model(x, positions=positions.expand(len(chunk), -1))
            if dummy is None:
                generated = model.generate(chunk[:, :prompt_len], l)[:, prompt_len:]
            else:  # what the prompt and the dummies alone give, as the model was trained
                generated = logits.argmax(-1)
        first_hops.append((logits[:, first_hop_slot].argmax(-1) == truth[:, first_hop_slot]).cpu())
        losses.append(F.cross_entropy(logits.float().transpose(1, 2), truth, reduction='none').cpu())
        corrects.append((generated == truth).cpu())
        if details:
            gens.append(generated.cpu())
            tfs.append(logits.argmax(-1).cpu())
        del logits, generated  # before the next chunk's are made
    scores = torch.cat(losses), torch.cat(corrects), torch.cat(first_hops)
    return (*scores, torch.cat(gens), torch.cat(tfs)) if details else scores


def edge_scores(model, chunks, ctx):
    """(mean loss, mean accuracy, mean recall) over chunks of (x, positions (n, 1), targets (n,),
    answers (n,) or None), teacher-forced. recall: the target ranks among the top `answers` logits
    (ties count against it), so a prompt with m right answers can score all m; None without answers."""
    losses, correct, recalled = [], [], []
    for x, pos, target, answers in chunks:
        with ctx:
            logits, _ = model(x, positions=pos)
        logits = logits[:, 0].float()
        losses.append(F.cross_entropy(logits, target, reduction='none'))
        correct.append(logits.argmax(-1) == target)
        if answers is not None:
            rank = (logits >= logits.gather(1, target[:, None])).sum(1) - 1  # others at least as high
            recalled.append(rank < answers)
        del logits
    recall = torch.cat(recalled).float().mean().item() if recalled else None
    return torch.cat(losses).mean().item(), torch.cat(correct).float().mean().item(), recall


@torch.no_grad()
def score_edges(model, x, pos, tgt, ctx, logits_budget=EVAL_LOGITS):
    """Teacher-forced loss and accuracy on edge rows whose answer is determined (target in slot 0),
    in chunks of at most logits_budget logits."""
    batch = eval_chunk_rows(1, model.config.vocab_size, logits_budget)
    chunks = ((x[i:i + batch], pos[i:i + batch, :1], tgt[i:i + batch, 0], None) for i in range(0, len(x), batch))
    loss, accuracy, _ = edge_scores(model, chunks, ctx)
    return {'train/loss/edge': loss, 'train/accuracy/edge': accuracy}


def all_edge_chunk_rows(edge_len, model, logits=EVAL_LOGITS):
    """Edge rows per chunk of score_all_edges: as many as the logits budget allows (one logit row
    each), up to the input tokens of EVAL_BATCH_ROWS full rows (edge rows are short)."""
    tokens = EVAL_BATCH_ROWS * model.config.block_size
    return max(1, min(tokens // (edge_len - 1), logits // model.config.vocab_size))


@torch.no_grad()
def score_all_edges(model, rows, answers, device, ctx, logits_budget=EVAL_LOGITS):
    """Teacher-forced loss, accuracy and recall over every edge row (n, edge length), the last token
    the target, answers (n,) the right answers of each row's prompt. edge_all accuracy is the official
    code's edge accuracy (a prompt with m answers is right for one of its m rows at most);
    edge_all_recall counts a row right when its target is among the top m, so memorising every
    edge scores 1.0 on any graph. In large chunks within logits_budget logits."""
    T = rows.shape[1] - 1
    batch = all_edge_chunk_rows(rows.shape[1], model, logits_budget)

    def chunks():
        for i in range(0, len(rows), batch):
            chunk = torch.from_numpy(rows[i:i + batch].astype(np.int64)).to(device)
            yield (chunk[:, :T], torch.full((len(chunk), 1), T - 1, device=device), chunk[:, T],
                   torch.from_numpy(answers[i:i + batch]).to(device))
    loss, accuracy, recall = edge_scores(model, chunks(), ctx)
    return {'train/loss/edge_all': loss, 'train/accuracy/edge_all': accuracy, 'train/accuracy/edge_all_recall': recall}


def evaluate(model, ev, meta, device, ctx):
    model.eval()
    prompt_len, n, hop = meta['path_prompt_len'], len(meta['path_target_nodes']), meta['first_hop_slot']
    dummy = meta['tokens']['dummy'] if meta['config']['teacherless'] else None

    def paths(split, rows):
        loss, correct, first_hop_tf, generated, tf_pred = score_paths(model, rows, prompt_len, n, device, ctx,
                                                                      first_hop_slot=hop, dummy=dummy, details=True)
        truth = torch.from_numpy(rows[:, prompt_len:prompt_len + n].astype(np.int64))
        leaf = torch.from_numpy(rows[:, prompt_len - 1 - meta['config']['num_pause_tokens']].astype(np.int64))
        kinds = first_error_kinds(generated, truth, leaf, NODE_OFFSET, training_leaves)
        return {**path_metrics(split, loss, correct, first_hop_tf, first_hop_slot=hop),
                **path_errors(split, correct, tf_pred == truth, kinds)}
    training_leaves = torch.from_numpy(np.asarray(meta['paths'])[meta['train_arms'], -1].astype(np.int64)) \
        if 'train_arms' in meta else torch.zeros(0, dtype=torch.int64)
    metrics = paths('train', ev.train_paths) if len(ev.train_paths) else {}  # edge-only graphs have no paths
    if len(ev.edges[0]):  # l = 2 without backward edges has no edge with one right answer
        metrics.update(score_edges(model, *ev.edges, ctx))
    if ev.all_edges is not None and len(ev.all_edges):
        metrics.update(score_all_edges(model, ev.all_edges, ev.all_edge_answers, device, ctx))
    if len(ev.val_paths):
        metrics.update(paths('val', ev.val_paths))
    model.train()
    return metrics


def best_key(metrics):
    """Held-out path accuracy, then first-hop accuracy, decide the best evaluation (train's when
    nothing is held out, the edge accuracy on a graph without paths); only a strictly better key
    counts, so a loss dip saves nothing."""
    if 'train/accuracy/path' not in metrics and 'val/accuracy/path' not in metrics:
        return (metrics['train/accuracy/edge_all_recall'], metrics['train/accuracy/edge_all'])
    split = 'val' if 'val/accuracy/path' in metrics else 'train'
    return (metrics[f'{split}/accuracy/path'], metrics[f'{split}/accuracy/first_hop'])


def print_eval(metrics, iter_num, epoch, l, chance):
    """The evaluation as a few console lines; the target columns come from the metrics (l, the
    path's nodes, is not their number when path_target='first_hop')."""
    n = sum(1 for key in metrics if re.fullmatch(r'train/accuracy/token_\d+', key))
    edges = [f"{name} {metrics[f'train/accuracy/{key}']:.3f}" for key, name in (('edge', 'edge acc'),
             ('edge_all', 'all-edge acc'), ('edge_all_recall', 'recall')) if f'train/accuracy/{key}' in metrics]
    loss = metrics.get('train/loss/overall', metrics.get('train/loss/edge_all'))
    print(f"eval @ iter {iter_num} (epoch {epoch:.1f}): train loss {loss:.4f}"
          + (f" | val loss {metrics['val/loss/overall']:.4f}" if 'val/loss/overall' in metrics else '')
          + ''.join(f' | {e}' for e in edges))
    if chance is None:  # a graph without paths: the edges are all there is
        return
    print('  accuracy ' + ''.join(f'{"tok" + str(i + 1):>7}' for i in range(n)) + '   path    hop')
    for split in ('train', 'val'):
        if f'{split}/accuracy/path' in metrics:
            cells = ''.join(f"{metrics[f'{split}/accuracy/token_{i + 1}']:7.3f}" for i in range(n))
            print(f'  {split:<8} {cells}{metrics[f"{split}/accuracy/path"]:7.3f}'
                  f'{metrics[f"{split}/accuracy/first_hop"]:7.3f}')
    print(f'  (tok i is the i-th target; hop is the first hop after the root, greedy; chance {chance:.3f})')


def print_summary(summary):
    def show(key):
        return f"{summary[key]:.3f}" if key in summary else 'n/a'
    print(f"done in {summary['wall_time_s']:.1f}s, {summary['iter']} iters ({summary['epoch']:.1f} epochs)")
    if 'chance/first_hop' not in summary:  # a graph without paths
        print(f"  all edges: recall final {show('train/accuracy/edge_all_recall')}, best "
              f"{show('best/train/accuracy/edge_all_recall')}; accuracy {show('train/accuracy/edge_all')} "
              f"| loss {show('train/loss/edge_all')}")
        return
    print(f"  held-out first hop: final {show('val/accuracy/first_hop')}, best {show('best/val/accuracy/first_hop')} "
          f"(chance {summary['chance/first_hop']:.3f})")
    print(f"  held-out path:      final {show('val/accuracy/path')}, best {show('best/val/accuracy/path')}")
    print(f"  training path:      final {show('train/accuracy/path')} | val loss {show('val/loss/overall')} "
          f"| train loss {show('train/loss/overall')}")
