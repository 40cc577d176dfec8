"""The official code as a yardstick: the paper's official trainer (Shahriarnz14/Geometric_Memory) and ours on the
same small graph with the same recipe (config/official.py), a few seeds each: do our curves of edge accuracy and
training-path accuracy lie within the official seeds' spread? `python3 yardstick.py --epochs=200 --seeds=1,2,3`
writes results/official_yardstick.{json,md,png}; one CPU thread a run, one run at a time."""
import argparse
import json
import os
import re
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
D, L = 5, 4  # G(5, 4): 16 nodes, 30 edge rows, 3 training paths: one full batch, about a second an epoch on one thread
METRICS = {'edge': 'train/accuracy/edge_all', 'path': 'train/accuracy/path'}  # ours' key for each shared metric
NAMES = {'edge': 'edge accuracy (teacher-forced)', 'path': 'training-path accuracy (greedy, whole path)'}
# the official trainer seeds nothing; seed torch's global RNG (init and DataLoader shuffle) before it starts
SEEDED = ("import runpy, sys, torch; torch.manual_seed(int(sys.argv[1])); sys.argv = ['train_in_weights.py'] + "
          "sys.argv[2:]; runpy.run_path('train_in_weights.py', run_name='__main__')")

# its stdout (tqdm goes to stderr): 'Epoch k | Test Acc: x% | Forced Acc: y%', then the edge evaluation of that epoch
EPOCH_RE = re.compile(r'^Epoch (\d+) \| Test Acc: ([\d.]+)% \| Forced Acc: ([\d.]+)%$')
EDGE_RE = re.compile(r'^Edge Memorization \| Loss: ([\d.]+) \| Acc: ([\d.]+)%$')
PARAMS_RE = re.compile(r'Model parameters: ([\d,]+)')
RECIPE = 'n_layer n_embd n_head learning_rate warmup_iters weight_decay num_pause_tokens data_seed'.split()


def parse_official_log(text):
    """The official stdout -> one dict per evaluation: epoch, path (greedy, exact), path_forced, edge (fractions)."""
    curve = []
    for line in text.splitlines():
        line = line.strip()
        if m := EPOCH_RE.match(line):
            curve.append({'epoch': int(m[1]), 'path': float(m[2]) / 100, 'path_forced': float(m[3]) / 100})
        elif (m := EDGE_RE.match(line)) and curve and 'edge' not in curve[-1]:
            curve[-1]['edge'] = float(m[2]) / 100
    return [point for point in curve if 'edge' in point]  # a run cut off between the two lines: drop its last


def parse_official_params(text):
    m = PARAMS_RE.search(text)
    return int(m[1].replace(',', '')) if m else None


def ours_curve(points):
    """Our curve.json -> the same shape as parse_official_log, at whole epochs only."""
    return [{'epoch': int(round(p['epoch'])), **{k: p[key] for k, key in METRICS.items()}}
            for p in points if abs(p['epoch'] - round(p['epoch'])) < 1e-6 and all(key in p for key in METRICS.values())]


def shared_epochs(*runs):
    """Epochs at which every run (of either trainer) has an evaluation, sorted."""
    return sorted(set.intersection(*({p['epoch'] for p in run} for run in runs))) if runs else []


def values_at(runs, epoch, metric):
    return [next(p[metric] for p in run if p['epoch'] == epoch) for run in runs]


def mean_sd(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def agrees(ours, official, k=2.0, slack=5e-5):
    """The rule: ours' seed mean lies within the official seeds' mean +- k sample sd. The slack is the official log's
    rounding (percentages to 2 decimals), so 16.67% equals our 1/6 when every official seed agrees (sd 0)."""
    mean, sd = mean_sd(official)
    lo, hi = mean - k * sd, mean + k * sd
    return {'ok': lo - slack <= statistics.fmean(ours) <= hi + slack, 'lo': lo, 'hi': hi}


def edge_ceiling(pretrain_lines):
    """Best edge accuracy any model can reach: one row right per distinct prompt (u of 'u=v') over all rows."""
    rows = [line.split('=')[0] for line in pretrain_lines if '=' in line]
    return len(set(rows)) / len(rows)


def sh(cmd, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', WANDB_MODE='offline')
    t0 = time.time()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout, done.stderr, time.time() - t0


def graph_files(folder):
    """{'pretrain' | 'train' | 'test': filename} of an official-format folder."""
    return {m[1]: name for name in os.listdir(folder) if (m := re.search(r'_(pretrain|train|test)(_\d+)?\.txt$', name))}


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def same_graph(ours, theirs):
    """Our export against the official builder's files, per split: 'identical', 'reordered' or 'differs'."""
    out = {}
    for kind, name in graph_files(ours).items():  # the builder writes selfedge_1 files too: match by name
        x, y = lines(os.path.join(ours, name)), lines(os.path.join(theirs, name))
        out[kind] = 'identical' if x == y else 'reordered' if sorted(x) == sorted(y) else 'differs'
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--official_repo', default='/tmp/official')
    ap.add_argument('--official_python', default='/tmp/tf_venv/bin/python')
    ap.add_argument('--epochs', type=int, default=200)
    ap.add_argument('--seeds', default='1,2,3')
    ap.add_argument('--eval_every', type=int, default=10, help='our eval interval, epochs (the official: every epoch)')
    ap.add_argument('--warmup_iters', type=int, help="both trainers' warmup steps (default: config/official.py's "
                                                     "1000, more than a few hundred epochs of one step each)")
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'official_yardstick'))
    ap.add_argument('--from_json', action='store_true', help='no training: redo the .md and .png from OUT.json')
    a = ap.parse_args()
    if a.from_json:
        context = json.load(open(a.out + '.json'))
        runs, context['rendered'] = context.pop('runs'), 'python3 yardstick.py --from_json'
    else:
        runs, context = train_both(a)
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out + '.json', 'w') as f:
            json.dump({**context, 'runs': runs}, f, indent=1)
    with open(a.out + '.md', 'w') as f:
        f.write(report(runs, context))
    plot(runs, context, a.out + '.png')
    print(f"wrote {a.out}.json, .md, .png")


def train_both(a):
    """Both trainers, every seed, one run at a time -> (runs, context): the curves and what the report says."""
    seeds = [int(s) for s in a.seeds.split(',')]
    cfg = runpy.run_path(os.path.join(HERE, 'config', 'official.py'))  # plain assignments: the recipe's keys
    assert abs(cfg['min_lr'] - cfg['learning_rate'] / 10) < 1e-12, 'the official cosine always ends at lr / 10'
    cfg['warmup_iters'] = cfg['warmup_iters'] if a.warmup_iters is None else a.warmup_iters
    t_start = time.time()
    work = tempfile.mkdtemp(prefix='yardstick_')
    try:
        # the graph: ours exports it, the official builder writes it too, and the two must agree
        export = os.path.join(work, 'ours_graph')
        sh([sys.executable, 'pathstar_data.py', 'config/official.py', f'--graph_d={D}', f'--graph_l={L}',
            '--batch_size=auto', '--export_official', export], HERE)
        sh([a.official_python, 'data/build_in_weights_datasets.py', '--graph_type', 'star', '--star_degree', str(D),
            '--path_length', str(L), '--random_seed', str(cfg['data_seed']),
            '--dataset_root', os.path.join(work, 'built')], a.official_repo)
        graph_check = same_graph(export, os.path.join(work, 'built', 'star_graphs_randomized'))
        files = graph_files(export)
        edges, train = lines(os.path.join(export, files['pretrain'])), lines(os.path.join(export, files['train']))
        rows = len(edges) + len(train)  # one full batch for both: the official 2048 would take them all too
        # the official trainer only scores its test file, so its copy of the graph has the training paths there
        root = os.path.join(work, 'official_root')
        os.makedirs(os.path.join(root, 'star_graphs_randomized'))
        for kind, src in (('pretrain', 'pretrain'), ('train', 'train'), ('test', 'train')):
            shutil.copy(os.path.join(export, files[src]), os.path.join(root, 'star_graphs_randomized', files[kind]))
        # our recipe's keys, flag for flag (the rest are its defaults, which config/official.py copies)
        official_flags = [str(x) for x in (
            '--training_recipe', 'mixed_full_path', '--graph_type', 'star', '--star_degree', D, '--path_length', L,
            '--add_forward_edges', '--add_backward_edges', '--transformer_layer_count', cfg['n_layer'],
            '--embedding_dimension', cfg['n_embd'], '--attention_head_count', cfg['n_head'],
            '--dropout_rate', cfg['dropout'], '--path_finetuning_learning_rate', cfg['learning_rate'],
            '--path_finetuning_warmup_steps', cfg['warmup_iters'], '--optimizer_weight_decay', cfg['weight_decay'],
            '--path_prefix_pause_token_count', cfg['num_pause_tokens'], '--path_finetuning_batch_size', rows,
            '--path_finetuning_epochs', a.epochs, '--path_finetuning_eval_interval_epochs', 1,
            '--checkpoint_interval_epochs', a.epochs + 1, '--dataset_root', root)]
        ours_flags = ['config/official.py', f'--data_import={export}', '--device=cpu', f'--epochs={a.epochs}',
                      f'--batch_size={rows}', f'--eval_interval={a.eval_every}', '--checkpoint_interval=1000000000',
                      f"--warmup_iters={cfg['warmup_iters']}"]
        runs = {'official': {}, 'ours': {}}
        for s in seeds:
            out, err, wall = sh([a.official_python, '-c', SEEDED, str(s)] + official_flags +
                                ['--experiment_log_root', os.path.join(work, f'official_{s}')], a.official_repo)
            runs['official'][s] = {'curve': parse_official_log(out), 'params': parse_official_params(err),
                                   'wall_s': wall}
            shutil.rmtree(os.path.join(work, f'official_{s}'))  # its checkpoints: ~85 MB each
            print(f"official seed {s}: {wall:.0f} s, final {runs['official'][s]['curve'][-1]}", flush=True)
            out_dir = os.path.join(work, f'ours_{s}')
            _, _, wall = sh([sys.executable, 'train.py'] + ours_flags + [f'--seed={s}', f'--out_dir={out_dir}'], HERE)
            runs['ours'][s] = {'curve': ours_curve(json.load(open(os.path.join(out_dir, 'curve.json')))),
                               'params': ours_params(out_dir), 'wall_s': wall}
            shutil.rmtree(out_dir)
            print(f"ours seed {s}: {wall:.0f} s, final {runs['ours'][s]['curve'][-1]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    context = {'graph': f'G({D}, {L})', 'rows': rows, 'edge_rows': len(edges), 'train_paths': len(train),
               'edge_ceiling': edge_ceiling(edges), 'graph_check': graph_check, 'epochs': a.epochs,
               'eval_every': a.eval_every, 'recipe': {key: cfg[key] for key in RECIPE}, 'seeds': seeds,
               'official_flags': [f.replace(work, 'WORK') for f in official_flags],
               'ours_flags': [f.replace(work, 'WORK') for f in ours_flags],
               'command': 'python3 ' + ' '.join(['yardstick.py'] + sys.argv[1:]), 'total_wall_s': time.time() - t_start}
    return runs, context


def ours_params(out_dir):
    """All our parameters, the position table included (summary.json's count leaves it out, as nanoGPT's does)."""
    model_args = torch.load(os.path.join(out_dir, 'ckpt.pt'), map_location='cpu', mmap=True)['model_args']
    summary = json.load(open(os.path.join(out_dir, 'summary.json')))
    return {'total': summary['params'] + model_args['block_size'] * model_args['n_embd'], **model_args}


def table_epochs(epochs, rows=10):
    picked = epochs[::max(1, len(epochs) // rows)]
    return picked + ([epochs[-1]] if epochs and picked[-1] != epochs[-1] else [])


def verdicts(runs):
    """Per metric: the rule at the last shared epoch, on each seed's mean over the last quarter of the shared epochs
    (steadier: a 3-path accuracy moves in thirds), and the share of shared epochs where it holds."""
    off, ours = ([r['curve'] for r in runs[t].values()] for t in ('official', 'ours'))
    epochs, out = shared_epochs(*off, *ours), {}
    late = epochs[-max(1, len(epochs) // 4):]
    for m in METRICS:
        checks = [agrees(values_at(ours, e, m), values_at(off, e, m)) for e in epochs]
        window = [[statistics.fmean(values_at([r], e, m)[0] for e in late) for r in rs] for rs in (ours, off)]
        out[m] = {'final': checks[-1], 'late': {**agrees(*window), 'epochs': [late[0], late[-1]], 'seeds': window},
                  'share': sum(c['ok'] for c in checks) / len(checks)}
    return epochs, out


def report(runs, c):
    epochs, v = verdicts(runs)
    off, ours = list(runs['official'].values()), list(runs['ours'].values())
    fmt = lambda xs: '{:.3f} ± {:.3f}'.format(*mean_sd(xs))  # noqa: E731
    fmt_list = lambda xs: ', '.join(f'{x:.3f}' for x in xs)  # noqa: E731
    op, up, k = off[0]['params'], ours[0]['params'], c['recipe']
    md = [f"# The official code as a yardstick: {c['graph']}, {len(c['seeds'])} seeds, {c['epochs']} epochs", '',
          f"Made by `{c['command']}` in {c['total_wall_s'] / 60:.1f} min, one CPU thread a run, one run at a time "
          f"(per run: official {fmt([r['wall_s'] for r in off])} s, ours {fmt([r['wall_s'] for r in ours])} s)"
          + (f"; this report re-rendered from its .json by `{c['rendered']}`." if c.get('rendered') else '.'), '',
          f"Both trainers run `config/official.py`'s recipe ({k['n_layer']} x {k['n_embd']}, {k['n_head']} heads, "
          f"AdamW lr {k['learning_rate']}, {k['warmup_iters']} warmup steps then cosine to lr / 10, weight decay "
          f"{k['weight_decay']}, {k['num_pause_tokens']} pause token, edges and paths interleaved) on our export of "
          f"{c['graph']} (data_seed {k['data_seed']}; against the official builder's files: {c['graph_check']}): "
          f"{c['edge_rows']} edge rows and {c['train_paths']} training paths, all {c['rows']} in one batch.", '',
          '| epoch | official edge | ours edge | official training path | ours training path |',
          '| --- | --- | --- | --- | --- |']
    for e in table_epochs(epochs):
        cells = [fmt(values_at([r['curve'] for r in runs[t].values()], e, m)) for m in METRICS for t in runs]
        md.append(f'| {e} | ' + ' | '.join(cells) + ' |')
    md += ['', f"Mean ± sample sd over seeds {c['seeds']}. **Rule**: ours agrees where our seed mean lies within the "
           "official seeds' mean ± 2 sd (± 0.00005, as the official log rounds), taken at the last epoch, on "
           "each seed's mean over the last quarter of the shared epochs, and at every shared epoch.", '']
    word = lambda check: f"{'AGREES' if check['ok'] else 'DISAGREES'} (band [{check['lo']:.3f}, {check['hi']:.3f}])"  # noqa: E731
    md += [f"- **{NAMES[m]}**: at epoch {epochs[-1]} {word(r['final'])}; averaged over epochs {r['late']['epochs'][0]}"
           f"–{r['late']['epochs'][1]} {word(r['late'])}, per seed ours {fmt_list(r['late']['seeds'][0])} and "
           f"official {fmt_list(r['late']['seeds'][1])}; at {r['share']:.0%} of the {len(epochs)} shared epochs."
           for m, r in v.items()]
    md += ['', '## Notes', '',
           "- Edge accuracy is the official one: teacher-forced over every edge row. Edge prompts carry no direction, "
           f"so a prompt with several answers is right on one row at most: the ceiling is {c['edge_ceiling']:.3f}.",
           '- The official trainer scores only its test file, so its copy of the graph holds the training paths in '
           'the test slot (what it trains on is unchanged): its "Test Acc" is the training-path accuracy here.',
           f"- Model size at the same flags: official {op:,} parameters, ours {up['total']:,} ({op - up['total']:+,}): "
           f"the same blocks, but its position table has max(64, 3 l) rows (ours {up['block_size']}) and its "
           f"vocabulary N + 9 tokens (ours {up['vocab_size']}).",
           "- The official code seeds nothing; torch's global RNG is seeded before it starts, so its runs repeat. "
           "Seed S draws differently in the two trainers: seeds pair nothing across them.",
           (f"- {c['epochs']} steps against {k['warmup_iters']} warmup steps: both stay in the linear warmup (LR at "
            f"most {k['learning_rate'] * c['epochs'] / k['warmup_iters']:.1e}); this compares early training only."
            if c['epochs'] <= k['warmup_iters'] else
            f"- {c['epochs']} steps, the first {k['warmup_iters']} of them the linear warmup to lr "
            f"{k['learning_rate']}, then the cosine (to lr / 10 at the last step)."),
           '- The official evaluates every epoch, ours at the `--eval_interval` below (one step an epoch); '
           'the table keeps the epochs both have.',
           '', '## Commands (seed S)', '',
           'WORK is a temporary folder: `WORK/ours_graph` holds our export, `WORK/official_root` its copy for the '
           'official trainer.', '',
           f"```\ncd OFFICIAL && python -c \"{SEEDED}\" S {' '.join(c['official_flags'])} --experiment_log_root LOG\n"
           f"python3 train.py {' '.join(c['ours_flags'])} --seed=S --out_dir=OUT\n```", '']
    return '\n'.join(md)


def plot(runs, c, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, m in zip(axes, METRICS):
        for trainer, colour in (('official', 'tab:blue'), ('ours', 'tab:orange')):
            curves = [r['curve'] for r in runs[trainer].values()]
            epochs = shared_epochs(*curves)
            vals = [values_at(curves, e, m) for e in epochs]
            ax.plot(epochs, [statistics.fmean(x) for x in vals], color=colour, label=f'{trainer} (mean, min-max band)')
            ax.fill_between(epochs, [min(x) for x in vals], [max(x) for x in vals], color=colour, alpha=0.25)
        if m == 'edge':
            ax.axhline(c['edge_ceiling'], color='grey', ls='--', lw=1, label='ceiling')
        ax.set(xlabel='epoch', ylabel=NAMES[m], ylim=(-0.03, 1.03), title=f"{c['graph']}, seeds {c['seeds']}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == '__main__':
    main()
