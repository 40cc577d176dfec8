"""
The paper's contrasts as data and code: the scales (quick, cpu, paper), the contrasts and their arms, each
arm a grid sweep over its seeds on the local sweep backend, found again by its config (so reruns and second
agents join it), and the tables and figures written from the finished trials. reproduce.py is the command
line (its docstring shows the calls); phase_diagram.py builds its panels from the same pieces.
May import: the root's train, sweep and data modules, and pathstar.analysis.
"""
import hashlib
import json
import os
import pathlib
import platform
import shutil
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

import configurator
from configurator import DEFAULTS
from pathstar import graphs, validate
from pathstar.data import inweights
from pathstar.experiments import evidence
from pathstar.analysis import geometry as graph_geometry
from pathstar.analysis.node2vec import train_node2vec
from pathstar.sweeps import local as sweep_local
from pathstar.sweeps.space import RUNNER_KEYS, check_combinations, check_sweep
from pathstar.training.checkpoint import RUN_KEYS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: config/, results/
INDEX_DIR = os.path.join(sweep_local.SWEEPS_DIR, 'reproduce')   # <scale>/<key>.id: the sweep of each arm
METRICS = (('val/accuracy/first_hop', 'held-out first hop'), ('val/accuracy/path', 'held-out path'))


# -----------------------------------------------------------------------------
# the contrasts
#
# An arm is a list of layers applied in order on top of its scale's base, as train.py applies config files
# and overrides: a config file (path from the repo root), (config file, keys) to take only those keys, a
# dict, or a function of the config so far that returns a dict.

@dataclass(frozen=True)
class Arm:
    label: str
    layers: tuple = ()
    task: str = 'in_weights'     # the scale's base it starts from: 'in_weights' or 'in_context'
    baseline: str = ''           # 'node2vec' or 'random': no training run, the embedding of that baseline on
                                 # the arm's graph, one per seed (see baseline_runs)


@dataclass(frozen=True)
class Claim:
    """What the paper says of one arm, or of two, on one metric; verdicts.py judges it (evidence.py's rule)."""
    kind: str                    # 'above_chance', 'at_chance', 'greater' (arm > other) or 'sooner' (learning curves)
    arm: str
    other: str = ''
    metric: str = 'val/accuracy/first_hop'


@dataclass(frozen=True)
class Contrast:
    name: str                    # results/<name>.md and .png; --only takes it
    title: str
    paper: str                   # what the paper reports, to read the table against
    arms: tuple
    metrics: tuple = METRICS     # (summary key, column title); the first is the sweep's objective
    claims: tuple = ()           # the paper's claims, each scored on the runs


def pause_l(cfg):  # the paper's setting: as many pause tokens as path nodes
    return dict(num_pause_tokens=cfg['graph_l'])


CURVE_POINTS = 20  # evaluations over a run whose claim is about speed: its learning curve


def curve_evals(cfg):
    """eval_interval for about CURVE_POINTS evaluations, a whole number of epochs apart: what a claim about
    speed is scored on. A layer of the arms of such a contrast (the others evaluate at the end only)."""
    rows = inweights.row_counts(cfg).train_rows
    per_epoch = -(-rows // (validate.batch_rows(cfg, rows) * cfg['gradient_accumulation_steps']))
    return dict(eval_interval=per_epoch * max(1, cfg['epochs'] // CURVE_POINTS))


# the data-format keys of the official preset; its model and optimiser are a GPU run's, so our model trains
# on either format and only the format differs
OFFICIAL_FORMAT = ('graph_builder', 'data_seed', 'graph_vocab_size', 'use_directional_tokens', 'use_task_tokens',
                   'num_pause_tokens', 'path_replication')

TINY = dict(graph_d=DEFAULTS['graph_d'], graph_l=DEFAULTS['graph_l'])  # a scale's star sizes would be refused

CONTRASTS = (
    Contrast('edge_directions', 'In-weights star: edges in both directions vs forward edges only',
             "with both directions the held-out paths are planned; with forward edges only the held-out first hop "
             "stays at chance",
             (Arm('both directions'), Arm('forward edges only', ('config/forward_only.py',))),
             claims=(Claim('above_chance', 'both directions'), Claim('at_chance', 'forward edges only'),
                     Claim('greater', 'both directions', 'forward edges only'))),
    Contrast('pause_tokens', 'Pause tokens between the queried leaf and the path',
             "every setting with pause tokens gets there, more pause tokens sooner; 0 is the slowest",
             (Arm('0 pause tokens', (dict(num_pause_tokens=0), curve_evals)),
              Arm('1 pause token', (dict(num_pause_tokens=1), curve_evals)),
              Arm('3 pause tokens', (dict(num_pause_tokens=3), curve_evals)),
              Arm('l pause tokens (one per path node)', (pause_l, curve_evals))),
             claims=(Claim('above_chance', '1 pause token'),
                     Claim('above_chance', 'l pause tokens (one per path node)'),
                     Claim('sooner', 'l pause tokens (one per path node)', '0 pause tokens'))),
    Contrast('format', "Our data format vs the official code's",
             "both formats teach the task (the official code is the paper's); ours marks edge direction with > / < "
             "and balances path rows against edge rows, the official one has no markers, each path once an epoch "
             "and one pause token",
             (Arm('ours'), Arm('official format', (('config/official.py', OFFICIAL_FORMAT),))),
             claims=(Claim('above_chance', 'ours'), Claim('above_chance', 'official format'))),
    Contrast('architecture', 'GPT vs Mamba vs attention-free vs frozen embeddings',
             "Transformers and Mamba both plan from memory; without attention nothing carries the leaf to the "
             "path (chance); with frozen embeddings no graph geometry can form",
             (Arm('GPT'), Arm('Mamba', ('config/arch_mamba.py',)),
              Arm('no attention', ('config/arch_no_attention.py',)),
              Arm('frozen embeddings', ('config/arch_frozen_embeddings.py',))),
             claims=(Claim('above_chance', 'GPT'), Claim('above_chance', 'Mamba'),
                     Claim('at_chance', 'no attention'))),
    # the official tiny transformer (config/tiny_graph.py) on its grid and cycle, against Node2Vec's embedding and a
    # random one of the same graph; graph_d and graph_l back at their defaults, as the other families need
    Contrast('geometry', "Geometry: spectral low-frequency mass of a transformer's embeddings vs Node2Vec vs random",
             "a transformer's embeddings are as low-frequency (graph-smooth) as Node2Vec's, far above random",
             tuple(Arm(f'{who}, {family}', ('config/tiny_graph.py', f'config/tiny_{family}.py', TINY), baseline=kind)
                   for family in ('grid', 'cycle')
                   for who, kind in (('transformer', ''), ('Node2Vec', 'node2vec'), ('random', 'random'))),
             metrics=(('geometry/spectral_low_mass', 'low-frequency mass'),
                                         ('geometry/topk_edge_recovery', 'top-5 edge recovery by embedding')),
             claims=tuple(Claim('greater', f'{who}, {family}', f'random, {family}', 'geometry/spectral_low_mass')
                          for family in ('grid', 'cycle') for who in ('transformer', 'Node2Vec'))),
    Contrast('in_context', 'In-context: teacher-forced vs teacherless vs reversed, next to in-weights',
             "in context, teacher forcing fails (Clever Hans) and teacherless or reversed targets help; in weights "
             "the teacher-forced model plans from memory",
             (Arm('in-weights, teacher-forced'), Arm('in-weights, teacherless', ('config/teacherless.py',)),
              Arm('in-weights, reversed', ('config/reversed_targets.py',)),
              Arm('in-context, teacher-forced', task='in_context'),
              Arm('in-context, teacherless', ('config/teacherless.py',), task='in_context'),
              Arm('in-context, reversed', ('config/reversed_targets.py',), task='in_context')),
             claims=(Claim('above_chance', 'in-weights, teacher-forced'),
                     Claim('at_chance', 'in-context, teacher-forced'),
                     # Clever Hans: the hops after the first are learned (teacher-forced, unseen graphs)
                     Claim('above_chance', 'in-context, teacher-forced', metric='val/accuracy/token_3_teacher_forced'),
                     Claim('above_chance', 'in-context, reversed'), Claim('above_chance', 'in-context, teacherless')),
             metrics=(*METRICS, ('val/accuracy/token_3_teacher_forced', 'held-out target 3, teacher-forced'))),
)


# -----------------------------------------------------------------------------
# the scales

@dataclass(frozen=True)
class Scale:
    about: str                   # one line for the tables
    seeds: tuple
    in_weights: tuple            # layers of the in-weights base
    in_context: tuple            # layers of the in-context base
    results: str                 # folder of its tables and figures
    seed_key: str = 'data_seed'  # what the seeds set: 'data_seed' draws a new graph and held-out set for each
                                 # run (so a small graph's few held-out leaves are not all one run's); 'seed'
                                 # the model's init and order on one graph, as the paper's runs


SCALES = dict(
    quick=Scale('toy size, one seed: a test of the plumbing, not of the paper', (1,),
                (dict(graph_d=8, graph_l=3, graph_holdout_percentage=0.25, n_layer=1, n_head=2, n_embd=32,
                      epochs=100, eval_interval=1000, log_interval=1000, device='cpu'),),
                ('config/in_context_cpu.py', dict(num_train_graphs=256, num_val_graphs=64, graph_l=3, n_embd=32,
                                                  batch_size='auto', epochs=5, eval_interval=1000, log_interval=1000)),
                os.path.join('out', 'reproduce_quick')),  # a plumbing check: nothing git tracks changes
    # the demo's graph and model (configurator.DEFAULTS): 50 held-out leaves a run, 250 an arm; in context,
    # config/in_context_cpu.py as it is (500 held-out graphs a run)
    cpu=Scale("the demo's graph and model, a new graph each seed", (1, 2, 3, 4, 5),  # evidence.MIN_RUNS graphs
              (dict(graph_d=200, graph_l=5, graph_holdout_percentage=0.25, n_layer=2, n_head=4, n_embd=128,
                    learning_rate=1e-2, epochs=100, eval_interval=5000, log_interval=500, device='cpu'),),
              ('config/in_context_cpu.py', dict(eval_interval=5000, log_interval=200)),
              'results'),
    paper=Scale("the paper's graph and model (config/paper_g5000_l5.py); in context, config/in_context_cpu.py's "
                "task with the paper's model", (1, 2, 3),
                ('config/paper_g5000_l5.py', dict(device='auto')),
                ('config/in_context_cpu.py', dict(device='auto', n_layer=12, n_head=8, n_embd=384, num_train_graphs=
                                                  200000, num_val_graphs=2000, epochs=100, eval_interval=1000)),
                os.path.join('results', 'paper'), seed_key='seed'),
)


def layer_values(layer, cfg):
    """The keys one layer sets, given the config so far."""
    if isinstance(layer, str):
        return configurator.load_config_file(os.path.join(ROOT, layer), cfg)
    if isinstance(layer, tuple):
        path, keys = layer
        return {k: v for k, v in configurator.load_config_file(os.path.join(ROOT, path), cfg).items() if k in keys}
    return layer(cfg) if callable(layer) else dict(layer)


def resolve(layers):
    """(the whole checked config, the keys the layers set)."""
    cfg, keys = dict(DEFAULTS), set()
    for layer in layers:
        values = layer_values(layer, cfg)
        for key, value in values.items():
            cfg[key] = configurator.parse_value(key, value)
        keys |= set(values)
    return validate.check(cfg), keys


def arm_config(arm, scale):
    return resolve((*getattr(scale, arm.task), *arm.layers))


def pinned_sweep(cfg, keys, grid, name, metric):
    """A grid sweep: every key that defines a run pinned (so changing a default later makes a new sweep
    rather than silently joining an old one), the keys of grid ({key: [values]}) swept."""
    pinned = (set(RUN_KEYS) | keys) - set(RUNNER_KEYS) - set(grid)
    parameters = {k: dict(value=cfg[k]) for k in sorted(pinned)}
    parameters.update({k: dict(values=list(v)) for k, v in grid.items()})
    return check_sweep(dict(method='grid', metric=dict(name=metric, goal='maximize'), parameters=parameters,
                            name=name))


# -----------------------------------------------------------------------------
# running the sweeps

def find_or_create(sweep, scale_name, create=True):
    """The id of the sweep with these parameters, created if no one has made it yet (None when it does
    not exist and create is False). Two processes that create it at once both make one; the first to
    link the id file wins and the other removes its own."""
    key = hashlib.sha1(json.dumps(sweep['parameters'], sort_keys=True).encode()).hexdigest()[:12]
    path = os.path.join(INDEX_DIR, scale_name, f'{key}.id')
    if not os.path.exists(path) and not create:
        return None
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        check_combinations(sweep['parameters'])
        sweep_id = sweep_local.create_local_sweep(sweep, None)
        tmp = f'{path}.tmp-{os.getpid()}'
        with open(tmp, 'w') as f:
            f.write(sweep_id + '\n')
        try:
            os.link(tmp, path)  # fails if it exists: never replaces another process's sweep
        except FileExistsError:
            shutil.rmtree(os.path.join(sweep_local.SWEEPS_DIR, sweep_id))
        finally:
            os.remove(tmp)
    with open(path) as f:
        return f.read().strip()


def machine_name():
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def run_queued(sweep_id, train):
    """Run the trials of a sweep that no agent has claimed (and any a dead agent left) with train(cfg) ->
    summary; how many ran."""
    study, storage, sweep = sweep_local.open_local_sweep(sweep_id, None)
    ran = 0
    while True:
        sweep_local.fail_abandoned_trials(study, storage)
        trial = sweep_local.next_trial(study, storage, sweep)
        if trial is None:
            return ran
        trial.set_user_attr('machine', machine_name())
        print(f"\n--- {sweep['name']}")
        sweep_local.run_trial(study, storage, trial, sweep, sweep_id, 'pathstar_reproduce', None, train)
        sweep_local.release_memory()
        ran += 1


def run_all(sweep_ids, train):
    """Every sweep's unclaimed trials, in order; then wait for the trials other agents run (a trial whose
    agent dies is queued again, and run here)."""
    for waits in range(10 ** 9):
        for sweep_id in sweep_ids:
            run_queued(sweep_id, train)
        busy = [s for s in sweep_ids if any(t.state.name == 'RUNNING' for t in
                                            sweep_local.open_local_sweep(s, None)[0].get_trials(deepcopy=False))]
        if not busy:
            return
        if waits == 0:
            print(f"waiting for other agents' trials in sweeps {', '.join(busy)}")
        time.sleep(10)


# -----------------------------------------------------------------------------
# reading the results

def completed_runs(sweep_id):
    """{params of a finished trial as a sorted tuple: (its summary, its machine)}; the last finished trial
    of each grid point counts (a retried trial has two). A run's learning curve (its curve.json) is its
    summary's 'curve'."""
    study, _, _ = sweep_local.open_local_sweep(sweep_id, None)
    runs = {}
    for t in study.get_trials(deepcopy=False):
        out_dir = t.user_attrs.get('out_dir', '')
        path, curve = os.path.join(out_dir, 'summary.json'), os.path.join(out_dir, 'curve.json')
        if t.state.name == 'COMPLETE' and os.path.isfile(path):
            with open(path) as f:
                summary = json.load(f)
            if os.path.isfile(curve):
                with open(curve) as f:
                    summary['curve'] = json.load(f)
            runs[tuple(sorted(t.params.items()))] = (summary, t.user_attrs.get('machine', '?'))
    return runs


def baseline_runs(arm, scale):
    """[(summary, machine)] of a baseline arm, one per seed: graph_geometry's numbers of Node2Vec's embedding
    (baseline_node2vec.py, the official settings, that seed) or of a random N(0, 1) one of the arm's n_embd,
    on the arm's graph. Seconds in all, so they are computed again each time rather than stored."""
    out = []
    for seed in scale.seeds:
        cfg = dict(arm_config(arm, scale)[0], **{scale.seed_key: seed})
        graph, t0 = graphs.build(cfg), time.time()
        if arm.baseline == 'node2vec':
            emb, _ = train_node2vec(graph, seed=seed, self_edges=cfg['add_self_edges'])
        else:
            emb = np.random.default_rng(seed).standard_normal((graph.n, cfg['n_embd']))
        metrics = graph_geometry.graph_metrics(emb, graph, self_edges=cfg['add_self_edges'])
        out.append((dict(metrics, val_rows=0, wall_time_s=time.time() - t0), machine_name()))
    return out


def mean_sd(values):
    """'mean ± sd' (the sample standard deviation over seeds), or the one value."""
    if not values:
        return '-'
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def per_run(values):
    """'mean ± sd (each run)': with three seeds the runs say more than the spread."""
    return mean_sd(values) + (f" ({', '.join(f'{v:.2f}' for v in values)})" if len(values) > 1 else '')


def arm_row(label, runs, metrics, seeds):
    """The numbers of one arm over its finished runs."""
    summaries = [s for s, _ in runs]
    curves = {k: [c for c in (evidence.learning_curve(s, k) for s in summaries) if c] for k, _ in metrics}
    return dict(label=label, values={k: [s[k] for s in summaries if k in s] for k, _ in metrics}, curves=curves,
                chance=sorted({round(s['chance/first_hop'], 4) for s in summaries if 'chance/first_hop' in s}),
                held_out=[s['val_rows'] for s in summaries], runs=f"{len(runs)}/{len(seeds)}",
                wall=sum(s['wall_time_s'] for s in summaries), machine=sorted({m for _, m in runs}))


def markdown_table(rows, metrics):
    head = ['arm', *(title for _, title in metrics), 'chance (first hop)', 'held-out', 'runs', 'wall time',
            'machine']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for r in rows:
        cells = [r['label'], *(per_run(r['values'][k]) for k, _ in metrics),
                 ', '.join(f"{c:.3f}" for c in r['chance']) or '-', ' + '.join(map(str, r['held_out'])) or '-',
                 r['runs'], f"{r['wall'] / 60:.1f} min", ', '.join(r['machine']) or '-']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def atomic_write(path, write):
    """write(tmp) then rename, so a reader sees the old file or the new one."""
    tmp = f'{path}.tmp-{os.getpid()}'
    write(tmp)
    os.replace(tmp, path)


def write_text(path, text):
    atomic_write(path, lambda tmp: pathlib.Path(tmp).write_text(text))


def about_time(contrast):
    """Whether a claim of the contrast is about speed: its figure is learning curves."""
    return any(c.kind == 'sooner' for c in contrast.claims)


def plot_contrast(path, contrast, rows):
    """Bars of the mean over seeds, a dot per seed, the first hop's chance as a dashed line; or, for a
    claim about speed, each arm's mean learning curve with its 95% bootstrap band over graphs."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if about_time(contrast):
        return plot_curves(path, contrast, rows, plt)
    fig, axes = plt.subplots(1, len(contrast.metrics), figsize=(len(contrast.metrics) * (1.5 + 0.8 * len(rows)), 4),
                             squeeze=False)
    for ax, (key, title) in zip(axes[0], contrast.metrics):
        for i, r in enumerate(rows):
            values = r['values'][key]
            if values:
                ax.bar(i, statistics.mean(values), color=f'C{i}', alpha=0.5)
                ax.scatter([i] * len(values), values, color='k', s=12, zorder=3)
            if key == 'val/accuracy/first_hop':
                for c in r['chance']:
                    ax.hlines(c, i - 0.4, i + 0.4, colors='r', linestyles='--', label='chance' if i == 0 else None)
        ax.set_xticks(range(len(rows)), [r['label'] for r in rows], rotation=25, ha='right', fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
        if key == 'val/accuracy/first_hop' and any(r['chance'] for r in rows):
            ax.legend(fontsize=8)
    fig.suptitle(contrast.title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=110))
    plt.close(fig)


def plot_curves(path, contrast, rows, plt):
    fig, axes = plt.subplots(1, len(contrast.metrics), figsize=(5 * len(contrast.metrics), 4), squeeze=False)
    for ax, (key, title) in zip(axes[0], contrast.metrics):
        for i, r in enumerate(rows):
            b = evidence.band(r['curves'][key])
            if b:
                ax.plot(b['epochs'], b['mean'], color=f'C{i}', label=f"{r['label']} ({b['n']} graphs)")
                ax.fill_between(b['epochs'], *b['ci95'], color=f'C{i}', alpha=0.2, linewidth=0)
        chances = sorted({c for r in rows for c in r['chance']})
        if key == 'val/accuracy/first_hop' and chances:
            ax.axhline(chances[0], color='r', linestyle='--', linewidth=1, label='chance')
        ax.set_ylim(0, 1.05)
        ax.set_xlabel('epoch')
        ax.set_title(f"{title}: mean, 95% band over graphs", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(contrast.title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=110))
    plt.close(fig)


def describe(scale_name, scale):
    """What the in-weights and in-context bases are, in one line each."""
    lines = []
    for task in ('in_weights', 'in_context'):
        cfg, _ = arm_config(Arm('', task=task), scale)
        lines.append(f"- {task.replace('_', '-')}: graph_d={cfg['graph_d']}, graph_l={cfg['graph_l']}, "
                     f"{cfg['n_layer']} layers x {cfg['n_embd']}, {cfg['epochs']} epochs, lr {cfg['learning_rate']:g}, "
                     f"{cfg['num_pause_tokens']} pause tokens"
                     + (f", holdout {cfg['graph_holdout_percentage']:g}" if task == 'in_weights' else
                        f", {cfg['num_train_graphs']} training graphs, {cfg['num_val_graphs']} held-out graphs"))
    return (f"Scale: {scale_name} ({scale.about}); {scale.seed_key} {', '.join(map(str, scale.seeds))}.\n"
            + '\n'.join(lines))


def claim_name(claim):
    """A claim's record as words: 'above_chance 1 pause token', 'sooner a than b', 'greater a > b'."""
    join = ' than ' if claim['kind'] == 'sooner' else ' > '
    metric = '' if claim['metric'] in ('val/accuracy/first_hop', 'geometry/spectral_low_mass') else \
        f" ({claim['metric'].split('/')[-1]})"
    return f"{claim['kind']} {claim['arm']}{join + claim['other'] if claim['other'] else ''}{metric}"


def claim_lines(record):
    """The contrast's verdict and each claim's verdict with why (verdicts.contrast_record)."""
    return f"Verdict: **{record['verdict']}**\n\n" + ''.join(f"- {claim_name(c)}: {c['verdict']} ({c['why']})\n"
                                                            for c in record['claims'])


def write_contrast(contrast, rows, scale_name, scale, record, errors=''):
    """results/<name>.md and .png; returns the verdict, its claims and the markdown table (and errors, the
    error analysis's table, after it)."""
    os.makedirs(scale.results, exist_ok=True)
    table = claim_lines(record) + '\n' + markdown_table(rows, contrast.metrics)
    text = (f"# {contrast.title}\n\nThe paper: {contrast.paper}.\n\n{describe(scale_name, scale)}\n\n{table}\n"
            f"Final evaluation of each run: mean ± sample standard deviation over seeds (each run's value); held-out "
            f"= held-out paths of each run (in-context: held-out graphs); wall time = all runs together.\n{errors}\n"
            f"Written by `python3 reproduce.py{'' if scale_name == 'cpu' else ' --scale ' + scale_name}`.\n")
    write_text(os.path.join(scale.results, f'{contrast.name}.md'), text)
    plot_contrast(os.path.join(scale.results, f'{contrast.name}.png'), contrast, rows)
    return table + errors
