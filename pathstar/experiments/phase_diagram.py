"""
The phase diagram: where does planning from memory appear at small scale? A 2-layer GPT on stars of 50 to
400 arms, in panels that each vary one key against graph_d (width, learning rate, epochs), each a sweep with
the local backend, then the demo (the defaults) on more seeds; and the same for Mamba (learning rate, epochs),
with the embedding statistic beside the accuracy and each run's binomial test. Run by

    python3 reproduce.py --phase_diagram         # both: results/phase_diagram.md, phase_diagram_mamba.md, .png
    python3 reproduce.py --phase_diagram mamba   # one of them

and built from reproduce.py's sweeps and tables (so it resumes, and agents share its trials).
"""
import os
import statistics

import numpy as np

from configurator import DEFAULTS
from pathstar.experiments import evidence
from pathstar.experiments.contrasts import (METRICS, atomic_write, completed_runs, find_or_create, per_run,
                                            pinned_sweep, resolve, run_all, write_text)


# Panels share the rows (graph_d) and a 2-layer model (fixed), and each varies one key: width at lr 1e-2, learning
# rate at width 64, and epochs at width 128 (the best cell of the first). A panel may train fewer rows ('rows',
# where a run costs more than it tells) and change fixed keys ('at'). A column an earlier panel already holds
# (the same configs on all of the panel's rows) is trained once, by the earlier panel.
PHASE = dict(graph_d=[50, 100, 200, 400], data_seed=[1, 2],                   # a new graph each data_seed
             panels=[dict(key='n_embd', values=[32, 64, 128]),
                     dict(key='learning_rate', values=[1e-3, 3e-3, 1e-2], rows=[50, 100, 200]),
                     dict(key='epochs', values=[50, 100, 300], rows=[50, 100, 200], at=dict(n_embd=128))],
             fixed=dict(graph_l=5, graph_holdout_percentage=0.25, n_layer=2, n_head=4, n_embd=64, learning_rate=1e-2,
                        num_pause_tokens=3, epochs=300, eval_interval=5000, log_interval=1000, device='cpu'),
             demos=[dict(device='cpu'), dict(device='cpu', epochs=300)],     # the defaults, and the first try
             demo_seeds=[1337, 1338, 1339, 1340, 1341], name='phase_diagram', model='a 2-layer model')

# Mamba (the official block, no residuals) at the demo's width, on the rows where the GPT plans at 100 epochs:
# learning rate at 100 epochs, then epochs at lr 1e-2 (a 300-epoch run at 200 arms costs ~20 CPU-minutes).
# geometry_interval: the final evaluation also measures how often a held-out leaf's embedding is nearest its
# own arm's first hop, the statistic that separated Mamba from the GPT (pathstar/analysis/star.py).
NEAREST = ('geometry/nearest_first_hop_accuracy', 'held-out leaves nearest (cosine) their own first hop')
MAMBA_PHASE = dict(graph_d=[100, 200], data_seed=[1, 2],
                   panels=[dict(key='learning_rate', values=[1e-3, 1e-2], at=dict(epochs=100)),
                           dict(key='epochs', values=[30, 100, 300], rows=[100])],
                   fixed=dict({k: v for k, v in PHASE['fixed'].items() if k != 'n_head'},  # no heads in a Mamba block
                              model_type='mamba', n_embd=128, geometry_interval=1000),
                   demos=[], demo_seeds=[], name='phase_diagram_mamba', model='a 2-layer Mamba',
                   metrics=(*METRICS, NEAREST))
DIAGRAMS = dict(gpt=PHASE, mamba=MAMBA_PHASE)


def varied(ph):
    """The keys some panel of diagram ph varies or sets: with graph_d, they name a cell."""
    return list(dict.fromkeys(k for p in ph['panels'] for k in (p['key'], *p.get('at', {}))))


def base(ph, panel):
    return {**ph['fixed'], **panel.get('at', {})}


def rows(ph, panel):
    return panel.get('rows', ph['graph_d'])


def cell(ph, panel, d, value):
    """The cell's name: (graph_d, the value of each varied key)."""
    return (d, *(value if k == panel['key'] else base(ph, panel)[k] for k in varied(ph)))


def panel_sweeps(ph):
    """[sweep id]: each panel's sweep over its rows x its values x data_seed, less the values an earlier panel
    trains on every one of its rows."""
    ids, panels = [], ph['panels']
    for i, panel in enumerate(panels):
        cfg, keys = resolve((base(ph, panel),))
        done = {cell(ph, q, d, v) for q in panels[:i] for d in rows(ph, q) for v in q['values']}
        values = [v for v in panel['values'] if not all(cell(ph, panel, d, v) in done for d in rows(ph, panel))]
        grid = dict(graph_d=rows(ph, panel), data_seed=ph['data_seed'], **{panel['key']: values})
        ids.append(find_or_create(pinned_sweep(cfg, keys, grid, f"reproduce: {ph['name'].replace('_', ' ')}, "
                                               f"graph_d x {panel['key']}", METRICS[0][0]), 'phase'))
    return ids


def phase_cells(ph, sweep_ids):
    """{cell: [(data_seed, summary)]} over every panel's runs."""
    cells = {}
    for panel, sweep_id in zip(ph['panels'], sweep_ids):
        for params, (summary, _) in completed_runs(sweep_id).items():
            p = {**base(ph, panel), **dict(params)}
            cells.setdefault((p['graph_d'], *(p[k] for k in varied(ph))), []).append((p['data_seed'], summary))
    return cells


def cell_runs(ph, cells, panel, d, value):
    return sorted(cells.get(cell(ph, panel, d, value), []), key=lambda x: x[0])


def others(ph, panel):
    return ', '.join(f'{k}={base(ph, panel)[k]:g}' for k in varied(ph) if k != panel['key'])


def phase_table(ph, cells, panel, metric):
    key, values = panel['key'], panel['values']
    head = ['graph_d (held-out leaves, chance)', *(f'{key}={v:g}' for v in values)]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for d in ph['graph_d']:
        runs = [s for v in values for _, s in cell_runs(ph, cells, panel, d, v)]
        held = f"{runs[0]['val_rows']}, {1 / d:.3f}" if runs else f"chance {1 / d:.3f}"
        lines.append(f"| {d} ({held}) | " + ' | '.join(
            per_run([s[metric] for _, s in cell_runs(ph, cells, panel, d, v)]) for v in values) + ' |')
    return '\n'.join(lines) + '\n'


def above_chance(ph, cells):
    """Each run's exact binomial test of its held-out first hop against 1/graph_d: ([cells where some run
    is above chance], runs above, runs tested), a cell as 'graph_d=.., key=..'."""
    planning, above, tested = [], 0, 0
    for d, *values in sorted(cells):
        tests = [evidence.run_test(s[METRICS[0][0]], s['val_rows'], 1 / d)['above_chance']
                 for _, s in cells[(d, *values)]]
        above, tested = above + sum(tests), tested + len(tests)
        if any(tests):
            planning.append(', '.join([f'graph_d={d}', *(f'{k}={v:g}' for k, v in zip(varied(ph), values))]))
    return planning, above, tested


def plot_phase(ph, path, cells):
    """One heatmap a panel of the mean held-out first hop; each cell says its chance, and is hatched when the
    mean is within 0.1 of it."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ds, panels = ph['graph_d'], ph['panels']
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1.5, 1.0 * len(ds) + 2.0), squeeze=False,
                             layout='constrained')
    for n, (ax, panel) in enumerate(zip(axes[0], panels)):
        key, values = panel['key'], panel['values']
        grid = np.full((len(ds), len(values)), np.nan)
        for i, d in enumerate(ds):
            for j, v in enumerate(values):
                runs = cell_runs(ph, cells, panel, d, v)
                if runs:
                    grid[i, j] = statistics.mean(s[METRICS[0][0]] for _, s in runs)
        image = ax.imshow(grid, vmin=0, vmax=1, cmap='viridis', origin='lower', aspect='auto')
        demo = all(base(ph, panel).get(k, DEFAULTS[k]) == DEFAULTS[k] for k in (*varied(ph), 'model_type') if k != key)
        for i, d in enumerate(ds):
            for j, v in enumerate(values):
                if demo and (d, v) == (DEFAULTS['graph_d'], DEFAULTS[key]):  # the defaults' cell
                    ax.add_patch(plt.Rectangle((j - 0.47, i - 0.47), 0.94, 0.94, fill=False, lw=2.5, color='w'))
                if np.isnan(grid[i, j]):
                    ax.text(j, i, 'not run', ha='center', va='center', fontsize=8, color='0.4')
                else:
                    ax.text(j, i, f"{grid[i, j]:.2f}\n(chance {1 / d:.3f})", ha='center', va='center', fontsize=8,
                            color='w' if grid[i, j] < 0.6 else 'k')
                    if grid[i, j] < 1 / d + 0.1:
                        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch='//', color='r'))
        ax.set_xticks(range(len(values)), [f'{v:g}' for v in values])
        ax.set_xlabel(key)
        ax.set_yticks(range(len(ds)), [str(d) for d in ds] if n == 0 else [])
        if n == 0:
            ax.set_ylabel('graph_d')
        ax.set_title(f'graph_d x {key} ({others(ph, panel)})', fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), label='held-out first-hop accuracy (mean over graphs)')
    f = ph['fixed']
    fig.suptitle(f"Where planning from memory appears ({ph['model']}, l={f['graph_l']}, "
                 f"{f['graph_holdout_percentage']:.0%} held out; hatched: within 0.1 of chance; "
                 f"white box: the defaults)", fontsize=10)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=110))
    plt.close(fig)


def demo_table(demo, sweep_id):
    rows = sorted((dict(p)['seed'], s) for p, (s, _) in completed_runs(sweep_id).items())
    changed = ' '.join(f'{k}={v}' for k, v in demo.items() if k != 'device') or 'the defaults'
    return (f"\n{changed} (device=cpu):\n\n| seed | held-out first hop, final (at the best checkpoint) | held-out path "
            f"| wall |\n| --- | --- | --- | --- |\n"
            + ''.join(f"| {seed} | {s['val/accuracy/first_hop']:.3f} ({s['best/val/accuracy/first_hop']:.3f}) | "
                      f"{s['val/accuracy/path']:.3f} | {s['wall_time_s']:.0f} s |\n" for seed, s in rows))


def main(tables_only, train, which=tuple(DIAGRAMS)):
    """Train (unless tables_only) and write each diagram named in which ('gpt', 'mamba')."""
    for name in which:
        write_diagram(DIAGRAMS[name], tables_only, train)
    return 0


def write_diagram(ph, tables_only, train):
    fixed, panels = ph['fixed'], ph['panels']
    sweep_ids = panel_sweeps(ph)
    demo_ids = [find_or_create(pinned_sweep(*resolve((demo,)), dict(seed=ph['demo_seeds']),
                                            f'reproduce: demo candidate {demo}', METRICS[0][0]), 'phase')
                for demo in ph['demos']]
    if not tables_only:
        run_all([*sweep_ids, *demo_ids], train)
    cells = phase_cells(ph, sweep_ids)
    runs = [s for c in cells.values() for _, s in c]
    machines = sorted({m for i in sweep_ids for _, m in completed_runs(i).values()})  # as each trial recorded it
    tables = ''.join(f"\n## graph_d x {p['key']} ({others(ph, p)})\n"
                     + ''.join(f"\n{label[0].upper()}{label[1:]}:\n\n{phase_table(ph, cells, p, key)}"
                               for key, label in ph.get('metrics', METRICS)) for p in panels)
    planning, above, tested = above_chance(ph, cells)
    tests = (f"\nEach run's exact one-sided binomial test of its held-out first hop against chance (1/graph_d, "
             f"p < {evidence.ALPHA}): {above} of {tested} runs above chance; "
             + (f"cells with a run above chance: {'; '.join(planning)}.\n" if planning else
                "no cell has a run above chance.\n"))
    name, model = ph['name'], ' (Mamba)' if fixed.get('model_type') == 'mamba' else ''
    os.makedirs('results', exist_ok=True)
    text = (f"# Phase diagram: where planning from memory appears{model}\n\n"
            f"Held-out first-hop accuracy (final evaluation) of `train.py` with "
            f"{', '.join(f'{k}={v}' for k, v in fixed.items() if k != 'log_interval')}, "
            f"for graph_d x each panel's key (a panel may set some of these keys otherwise), data_seed "
            f"{', '.join(map(str, ph['data_seed']))} (a new graph and held-out set each): mean ± sample sd "
            f"(each run). Figure: [{name}.png]({name}.png)\n"
            f"{tables}{tests}\nWall time: {sum(s['wall_time_s'] for s in runs) / 60:.1f} min for {len(runs)} runs on "
            f"{', '.join(machines)}.\n"
            + ("\n## The demo (`python3 train.py`) on more seeds (the model's; the graph is the default data_seed's)\n"
               + ''.join(demo_table(demo, demo_id) for demo, demo_id in zip(ph['demos'], demo_ids))
               if ph['demos'] else '')
            + f"\nWritten by `python3 reproduce.py --phase_diagram {'gpt' if ph is PHASE else 'mamba'}`.\n")
    write_text(os.path.join('results', f'{name}.md'), text)
    plot_phase(ph, os.path.join('results', f'{name}.png'), cells)
    print(f"wrote results/{name}.md and .png ({len(runs)} runs)")
