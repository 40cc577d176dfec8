"""
The star's geometry diagnostics: does a held-out leaf's embedding point at its own arm?

A node's vector is its row of the tied token embedding (wte = lm_head). An untied model
(tie_embeddings=False) has two: the input embedding gets the metrics and plots below under their
usual names, the output head (lm_head) the same ones as geometry/output_... and output_*.png. We measure
1. leaf x first-hop cosine: is a held-out leaf nearer the first hop of its own arm than any other
   arm's? The fraction for which it is, is the accuracy a purely geometric lookup would give;
2. Laplacian alignment: the share of node-embedding variance in the span of the graph Laplacian's
   lowest eigenvectors (the smoothest functions on the graph), against a random subspace's;
and draw a heatmap of (1) and a PCA projection of a few arms. The functions take plain arrays and
are cheap, so train.py calls log_geometry() during training and analyze.py (the command line) calls
them on a checkpoint; importing this module imports neither wandb nor matplotlib.
May import: pathstar.analysis.plots and .report, and the root's model-free data modules.
"""
import os

import numpy as np
import torch

from pathstar.data import cache, inweights, slots
from pathstar.errors import UserError
from pathstar.models import registry as models
from pathstar.analysis import report as graph_report
from pathstar.analysis.plots import EIGEN_TOL, EPS, MIN_COLOUR_SCALE, pca_2d, pyplot, save_figure

LAPLACIAN_K = 16         # default number of low Laplacian eigenvectors (widened to whole eigenspaces)
MAX_LEAVES = 4096        # leaves scored per split in the metrics (an evenly spaced subset beyond this)
MARGIN_CHUNK = 1024      # leaves per (chunk, d) similarity block in first_hop_margins
FORWARD_BATCH = 4096     # prompts per forward pass in model_first_hop_accuracy
MAX_ARMS = 64            # heatmap columns (first hops); half of them rows (held-out leaves)
PROJECTION_ARMS = 10     # arms drawn in the PCA projection, up to half of them held out
MAX_TICKS = 32           # tick labels per heatmap axis before they are thinned
MAX_OUTLINED = 64        # heatmap diagonal cells outlined (the right answers)

# -----------------------------------------------------------------------------
# nodes and embeddings


def token_embeddings(model):
    """The (input) token embedding matrix (vocab, C) as float32 on the model's device, detached;
    tied, it is the output head too."""
    return model.transformer.wte.weight.detach().float()


def output_embeddings(model):
    """The output head's matrix (vocab, C) when it is not tied to the token embedding, else None."""
    if getattr(model.config, 'tie_embeddings', True):
        return None
    return model.lm_head.weight.detach().float()


def embeddings_to_analyse(model):
    """[(metric infix, label, matrix)]: the token embedding, then the output head when untied."""
    out = output_embeddings(model)
    if out is None:
        return [('', 'tied embedding', token_embeddings(model))]
    return [('', 'input embedding (wte)', token_embeddings(model)), ('output_', 'output head (lm_head)', out)]


def node_tokens(paths):
    """Token ids of the N nodes in graph order: root, then arm 0 depth 1..l-1, arm 1, ..."""
    paths = np.asarray(paths)
    return np.concatenate([paths[:1, 0], paths[:, 1:].ravel()])


def node_embeddings(emb, paths):
    """(N, C) rows of emb for the nodes in node_tokens order, the layout laplacian_alignment reads."""
    emb = torch.as_tensor(emb)
    return emb[torch.as_tensor(node_tokens(paths), device=emb.device)]


def unit_rows(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(EPS)


# -----------------------------------------------------------------------------
# leaf x first-hop similarity


def leaf_first_hop_similarity(emb, paths, arms, max_cols=None):
    """Cosine between the leaves of `arms` (rows) and first-hop nodes (columns).

    Columns are `arms` first, then the other arms in order, cut to max_cols, so the
    right answer for row i is column i. Returns (sim (len(arms), cols), column arms).
    """
    emb, paths, arms = torch.as_tensor(emb).float(), np.asarray(paths), np.asarray(arms, dtype=np.int64)
    cols = np.concatenate([arms, inweights.other_arms(len(paths), arms)])[:max_cols]
    leaves = unit_rows(emb[torch.as_tensor(paths[arms, -1])])
    hops = unit_rows(emb[torch.as_tensor(paths[cols, 1])])
    return leaves @ hops.T, cols


def first_hop_margins(emb, paths, arms, chunk=MARGIN_CHUNK):
    """Per leaf of `arms`: cos(leaf, own arm's first hop) minus the largest cos(leaf, first hop)
    over the other d - 1 arms (positive = a geometric lookup finds the right arm). In chunks of
    rows, so that d = 10^4 needs no (d, d) matrix."""
    emb, paths, arms = torch.as_tensor(emb).float(), np.asarray(paths), np.asarray(arms, dtype=np.int64)
    hops = unit_rows(emb[torch.as_tensor(paths[:, 1])])
    out = []
    for start in range(0, len(arms), chunk):
        own = torch.as_tensor(arms[start:start + chunk], device=emb.device)
        sim = unit_rows(emb[torch.as_tensor(paths[arms[start:start + chunk], -1])]) @ hops.T
        rows = torch.arange(len(own), device=emb.device)
        right = sim[rows, own]
        sim[rows, own] = -float('inf')
        out.append(right - sim.max(dim=1).values)
    return torch.cat(out) if out else torch.zeros(0)


# -----------------------------------------------------------------------------
# the graph Laplacian and its low eigenvectors


def laplacian_levels(d, l):
    """The whole spectrum of the path-star Laplacian from two small eigenproblems (exact, any d).

    By symmetry an eigenvector is either
      'arm':  0 at the root and c[a] * phi(depth) on arm a with sum(c) = 0, phi an eigenvector of
              the arm's m x m path matrix with the root pinned to 0. Multiplicity d - 1 each.
      'star': the same values s(depth) on every arm (root s0): one vector per eigenvalue of an
              (m+1) x (m+1) quotient matrix, symmetrised by the weights (1, d, ..., d).
    Returns a list of (eigenvalue, kind, profile, multiplicity) sorted by eigenvalue, where
    profile is phi (length m, unit) for 'arm' and (s0, s1..sm) of the unit N-vector for 'star'.
    The trivial constant vector is left out.
    """
    m = l - 1
    arm = 2.0 * np.eye(m) - np.eye(m, k=1) - np.eye(m, k=-1)
    arm[-1, -1] = 1.0  # the leaf has one neighbour
    star = 2.0 * np.eye(m + 1) - np.eye(m + 1, k=1) - np.eye(m + 1, k=-1)
    star[0, 0], star[m, m] = d, 1.0
    star[0, 1] = star[1, 0] = -np.sqrt(d)  # W^1/2 Q W^-1/2 of the root row [d, -d]
    levels = []
    values, vectors = np.linalg.eigh(arm)
    levels += [(values[i], 'arm', vectors[:, i], d - 1) for i in range(m)]
    values, vectors = np.linalg.eigh(star)
    scale = np.concatenate([[1.0], np.full(m, 1.0 / np.sqrt(d))])  # unit N-vector: root u0, arm nodes u_j/sqrt(d)
    levels += [(values[i], 'star', vectors[:, i] * scale, 1) for i in range(1, m + 1)]  # i = 0 is the constant
    return sorted(levels, key=lambda level: level[0])


def lowest_levels(d, l, k, tol=EIGEN_TOL):
    """The lowest levels holding at least k eigenvectors, widened to whole eigenspaces: the k
    lowest eigenvectors are not unique when k cuts a degenerate eigenvalue (and here the lowest
    non-trivial eigenvalue alone has d - 1 vectors), so a cut inside one would be arbitrary."""
    picked, count = [], 0
    for level in laplacian_levels(d, l):
        if count >= k and level[0] > picked[-1][0] + tol:
            break
        picked.append(level)
        count += level[3]
    return picked, count


def laplacian_alignment(node_emb, d, l, k=LAPLACIAN_K):
    """Fraction of the centred node-embedding variance inside the span of the k lowest
    non-trivial Laplacian eigenvectors (k widened to whole eigenspaces, see lowest_levels).

    A random embedding puts k / (N - 1) of its variance there (the centred N-vectors span
    N - 1 dimensions). Returns dict(alignment, random, ratio, k).
    """
    x = torch.as_tensor(node_emb)
    x = x if x.dtype == torch.float64 else x.float()  # float32 on a GPU (MPS has no float64), float64 in tests
    n, m = x.size(0), l - 1
    assert n == d * m + 1, f"expected {d * m + 1} node rows, got {n}"
    x = x - x.mean(dim=0)
    total = (x ** 2).sum().item()
    levels, k_used = lowest_levels(d, l, min(k, n - 1))
    arms = x[1:].reshape(d, m, -1)
    captured = 0.0
    for _, kind, profile, _ in levels:
        profile = torch.as_tensor(profile, dtype=x.dtype, device=x.device)
        if kind == 'arm':  # project each arm on phi, then onto sum(c) = 0
            g = torch.einsum('j,ajc->ac', profile, arms)
            captured += ((g - g.mean(dim=0)) ** 2).sum().item()
        else:
            v = profile[0] * x[0] + torch.einsum('j,ajc->c', profile[1:], arms)
            captured += (v ** 2).sum().item()
    alignment = captured / total if total > 0 else float('nan')
    random = k_used / (n - 1)
    return dict(alignment=alignment, random=random, ratio=alignment / random, k=k_used)


# -----------------------------------------------------------------------------
# all the numbers for one model


def embedding_metrics(emb, meta, k=LAPLACIAN_K, max_leaves=MAX_LEAVES, infix=''):
    """The geometry/... metrics from an embedding matrix (vocab, C) and a dataset meta, named
    geometry/{infix}... At most max_leaves leaves per split are scored (a fixed, evenly spaced subset)."""
    paths, d, l = meta['paths'], meta['d'], meta['l']
    metrics = {}
    for prefix, arms in (('', meta['holdout_arms']), ('train_', meta['train_arms'])):
        arms = np.asarray(arms)
        if len(arms) > max_leaves:
            arms = arms[np.linspace(0, len(arms) - 1, max_leaves).astype(np.int64)]
        if len(arms) == 0:
            continue
        margins = first_hop_margins(emb, paths, arms)
        metrics[f'geometry/{infix}{prefix}diagonal_margin'] = margins.mean().item()
        metrics[f'geometry/{infix}{prefix}nearest_first_hop_accuracy'] = (margins > 0).float().mean().item()
    align = laplacian_alignment(node_embeddings(emb, paths), d, l, k)
    metrics.update({f'geometry/{infix}laplacian_alignment': align['alignment'],
                    f'geometry/{infix}laplacian_alignment_random': align['random'],
                    f'geometry/{infix}laplacian_alignment_ratio': align['ratio'],
                    f'geometry/{infix}laplacian_k': align['k']})
    return metrics


@torch.no_grad()
def geometry_metrics(model, meta, k=LAPLACIAN_K, max_leaves=MAX_LEAVES):
    """Flat dict of geometry/... metrics of a GPT; cheap enough to log at every evaluation. Untied,
    the input embedding's under the usual names and the output head's as geometry/output_..."""
    metrics = {}
    for infix, _, emb in embeddings_to_analyse(model):
        metrics.update(embedding_metrics(emb, meta, k, max_leaves, infix))
    return metrics


@torch.no_grad()
def model_first_hop_accuracy(model, meta, batch=FORWARD_BATCH):
    """What the model itself does on the held-out paths: the argmax where the first hop is predicted,
    given the true tokens before it (teacher-forced, as val/accuracy/first_hop_teacher_forced, so that
    a model trained with path_loss='first_hop', never taught to emit the root, is scored too), for every
    path_target and with teacherless inputs as such a model reads them."""
    arms = np.asarray(meta['holdout_arms'])
    if len(arms) == 0:
        return float('nan')
    model.eval()
    device = next(model.parameters()).device
    x = inweights.path_rows(meta['paths'][arms], meta)[:, :-1].astype(np.int64)
    rows = slots.path_inputs(x, meta)[:, :meta['path_prompt_len'] + meta['first_hop_slot']]
    right = 0
    for start in range(0, len(rows), batch):
        logits, _ = model(torch.from_numpy(rows[start:start + batch]).to(device))
        first_hop = logits[:, -1].argmax(-1).cpu().numpy()
        right += int((first_hop == meta['paths'][arms[start:start + batch], 1]).sum())
    return right / len(arms)


# -----------------------------------------------------------------------------
# plots (matplotlib imported only here, with the Agg backend: no display needed)


def arm_ticks(ax, cols, rows):
    """Arm numbers as tick labels, thinned so they stay legible."""
    for axis, arms in ((ax.xaxis, cols), (ax.yaxis, rows)):
        step = max(1, int(np.ceil(len(arms) / MAX_TICKS)))
        axis.set_ticks(np.arange(0, len(arms), step))
        axis.set_ticklabels([str(a) for a in arms[::step]], fontsize=7)
    ax.tick_params(axis='x', labelrotation=90)


def plot_heatmap(sim, title, path, row_arms=None, col_arms=None):
    """sim (rows, cols) from leaf_first_hop_similarity: the diagonal is the right answer."""
    plt = pyplot()
    sim = torch.as_tensor(sim).float().cpu().numpy()
    rows, cols = sim.shape
    row_arms = np.arange(rows) if row_arms is None else np.asarray(row_arms)
    col_arms = np.arange(cols) if col_arms is None else np.asarray(col_arms)
    fig, ax = plt.subplots(figsize=(min(4 + 0.14 * cols, 14), min(3 + 0.14 * rows, 10)), constrained_layout=True)
    # a symmetric scale fitted to the data: trained cosines are often small, and -1..1 would wash them out
    vmax = max(float(np.abs(sim).max()), MIN_COLOUR_SCALE)
    im = ax.imshow(sim, cmap='RdBu_r', vmin=-vmax, vmax=vmax, aspect='auto', interpolation='nearest')
    for i in range(min(rows, MAX_OUTLINED)):  # outline the right answers
        ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, ec='k', lw=0.8))
    if cols > rows:  # where the held-out leaves' own arms end and the other arms begin
        ax.axvline(rows - 0.5, color='k', lw=1, ls='--')
    arm_ticks(ax, col_arms, row_arms)
    ax.set_xlabel(f'first-hop node of arm (first {rows}: the rows\' own arms, then other arms)')
    ax.set_ylabel('held-out leaf of arm')
    ax.set_title(title + '\ncosine(leaf, first hop); outlined = own arm; '
                 'a red diagonal = geometric lookup finds the arm', fontsize=9)
    fig.colorbar(im, ax=ax, label='cosine similarity', shrink=0.8)
    return save_figure(plt, fig, path)


def plot_projection(emb, meta, title, path, max_shown=PROJECTION_ARMS):
    """PCA of the nodes of a few arms (up to half held-out), each arm a line root -> leaf."""
    plt = pyplot()
    held, trained = np.asarray(meta['holdout_arms']), np.asarray(meta['train_arms'])
    n_held = min(len(held), max_shown // 2)
    shown = list(held[:n_held]) + list(trained[:max_shown - n_held])
    paths = np.asarray(meta['paths'])
    tokens = np.concatenate([paths[:1, 0], paths[shown, 1:].ravel()])
    xy = pca_2d(torch.as_tensor(emb).float().cpu()[torch.as_tensor(tokens)].numpy())
    m = meta['l'] - 1
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    colours = plt.get_cmap('tab10' if len(shown) <= 10 else 'tab20')
    for i, arm in enumerate(shown):
        pts = np.vstack([xy[:1], xy[1 + i * m:1 + (i + 1) * m]])  # root, then depth 1..m
        held_out = i < n_held
        ax.plot(pts[:, 0], pts[:, 1], ls='--' if held_out else '-', color=colours(i % colours.N), lw=1.2,
                marker='o', ms=4, mfc='white' if held_out else colours(i % colours.N),
                label=f"arm {arm} ({'held out' if held_out else 'trained'})")
        ax.annotate('leaf', pts[-1], fontsize=7, xytext=(3, 3), textcoords='offset points')
    ax.plot(*xy[0], marker='*', color='k', ms=14, ls='none', label='root')
    ax.set_xlabel('principal component 1')
    ax.set_ylabel('principal component 2')
    ax.set_title(title + '\nnode embeddings, PCA of the nodes shown; each line is an arm root -> leaf', fontsize=9)
    ax.legend(fontsize=7, loc='best')
    return save_figure(plt, fig, path)


def geometry_plots(model, meta, out_dir, title, max_arms=MAX_ARMS, prefix='geometry'):
    """Write the heatmap and the projection PNGs into out_dir; return their paths. Untied, the output
    head's as well ({prefix}_output_*.png, keys output_heatmap, output_projection), each titled with
    the matrix it shows."""
    os.makedirs(out_dir, exist_ok=True)
    held = np.asarray(meta['holdout_arms'])
    rows = held[:max(1, max_arms // 2)]  # half the columns stay free for other arms
    paths, matrices = {}, embeddings_to_analyse(model)
    for infix, label, emb in matrices:
        emb = emb.cpu()
        named = title if len(matrices) == 1 else f'{title} | {label}'
        if len(rows):
            sim, cols = leaf_first_hop_similarity(emb, meta['paths'], rows, max_cols=max(max_arms, len(rows)))
            paths[f'{infix}heatmap'] = plot_heatmap(sim, named, os.path.join(out_dir, f'{prefix}_{infix}heatmap.png'),
                                                    rows, cols)
        paths[f'{infix}projection'] = plot_projection(emb, meta, named,
                                                      os.path.join(out_dir, f'{prefix}_{infix}projection.png'))
    return paths


# the architecture controls that differ from the default transformer, as words for a plot title
ARCH_WORDS = (('use_attention', False, 'no attention'), ('use_mlp_only_blocks', True, 'linear blocks'),
              ('use_residual', False, 'no residual'), ('use_layer_norm', False, 'no LayerNorm'),
              ('use_positional_encoding', False, 'no positions'), ('tie_embeddings', False, 'untied'),
              ('freeze_token_embeddings', True, 'frozen embeddings'), ('weight_init', 'non_geometric', 'non-geometric'))


def run_title(model_args, cfg, iter_num):
    arch = ', '.join(word for key, value, word in ARCH_WORDS if model_args.get(key) == value)
    family = cfg.get('graph', 'star')
    graph = f"G({cfg['graph_d']},{cfg['graph_l']})" if family == 'star' else family
    pause = f"{cfg['num_pause_tokens']} pause | " if family in ('star', 'star_tree') else ''
    return (f"{graph} | {model_args['n_layer']} layers x {model_args['n_embd']} | "
            f"{arch + ' | ' if arch else ''}{pause}iter {iter_num}")


# -----------------------------------------------------------------------------
# the command line


def log_geometry(model, meta, cfg, iter_num, run, edge_rows=None):
    """During training: the geometry numbers (returned), plots under out_dir/geometry/, wandb images.
    A star gets the closed-form numbers below; every graph up to graph_report.MAX_NODES nodes also
    gets graph_report's (spectrum, edge recovery, the associative vs geometric history)."""
    title = run_title(vars(model.config), cfg, iter_num)
    numbers, pngs = {}, {}
    if meta['graph'] == 'star':
        numbers = geometry_metrics(model, meta)
        pngs = geometry_plots(model, meta, os.path.join(cfg['out_dir'], 'geometry'), title,
                              prefix=f'iter{iter_num:07d}')
        print(f"  geometry: held-out diagonal margin {numbers['geometry/diagonal_margin']:.3f}, nearest-first-hop "
              f"accuracy {numbers['geometry/nearest_first_hop_accuracy']:.3f}, Laplacian alignment "
              f"{numbers['geometry/laplacian_alignment']:.3f} "
              f"(random {numbers['geometry/laplacian_alignment_random']:.3f})")
    general = graph_report.log(model, cfg, iter_num, edge_rows if edge_rows is not None else [], title)
    if general:
        numbers.update(general)
        print(f"  graph geometry: low-frequency mass {general['geometry/spectral_low_mass']:.3f} (random "
              f"{general['geometry/spectral_low_mass_random']:.3f}), top-{general['geometry/topk_k']} edge recovery: "
              f"associative {general['geometry/associative_topk_edge_recovery']:.3f}, geometric "
              f"{general['geometry/topk_edge_recovery']:.3f}")
    if run is not None:
        import wandb
        run.log({f'geometry_plots/{name}': wandb.Image(path) for name, path in pngs.items()}, step=iter_num)
    return numbers


def graph_meta(cfg):
    """The dataset meta of a run without its rows: the same draw as load_or_build, nothing written
    (a checkpoint from another machine may name a data_dir that does not exist here)."""
    dcfg = inweights.data_config(cfg)
    paths, holdout = inweights.draw_graph(dcfg)[:2]
    return inweights.make_meta(dcfg, paths, holdout)


def load_checkpoint(path):
    """(model on CPU, checkpoint dict, meta), or a one-line UserError."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
        model = models.from_model_args(ckpt['model_args'])
        model.load_state_dict(ckpt['model'])
        meta = graph_meta(ckpt['config'])
    except Exception as e:  # not a torch file, a different model, a truncated write, a missing key
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read checkpoint {path}: {type(e).__name__}: {reason}") from None
    if ckpt['config'].get('task') == 'in_context':
        raise UserError(f"checkpoint {path}: task='in_context' draws a new graph per row, so there is no one graph "
                        f"whose geometry its embedding could have; the diagnostics need task='in_weights'")
    learned, now = ckpt.get('dataset'), cache.dataset_name(ckpt['config'])
    if learned is not None and learned != now:  # files written before weights named their dataset have none
        what = (f"the files in data_import={ckpt['config']['data_import']!r} changed since"
                if ckpt['config'].get('data_import') else "this code builds another dataset from its config than when")
        raise UserError(f"checkpoint {path}: it learned dataset {learned}, but {what} it was written (now {now}); "
                        f"its geometry would be measured on another graph")
    if meta['vocab_size'] != ckpt['model_args']['vocab_size']:
        raise UserError(f"checkpoint {path}: vocab_size {ckpt['model_args']['vocab_size']} does not match its "
                          f"dataset's {meta['vocab_size']}")
    return model.eval(), ckpt, meta


