"""
The phase diagram: where does planning from memory appear at small scale? A 2-layer model on stars of
50 to 400 arms, in two panels: graph_d x n_embd at the demo's learning rate, and graph_d x learning_rate at
the demo's width, each a sweep with the local backend; then the demo (the defaults) on more seeds. Run by

    python3 reproduce.py --phase_diagram     # results/phase_diagram.md and .png

and built from reproduce.py's sweeps and tables (so it resumes, and agents share its trials).
"""
import os
import statistics

import numpy as np

from configurator import DEFAULTS
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
             demo_seeds=[1337, 1338, 1339, 1340, 1341])


def varied():
    """The keys some panel varies or sets: with graph_d, they name a cell."""
    return list(dict.fromkeys(k for p in PHASE['panels'] for k in (p['key'], *p.get('at', {}))))


def base(panel):
    return {**PHASE['fixed'], **panel.get('at', {})}


def rows(panel):
    return panel.get('rows', PHASE['graph_d'])


def cell(panel, d, value):
    """The cell's name: (graph_d, the value of each varied key)."""
    return (d, *(value if k == panel['key'] else base(panel)[k] for k in varied()))


def panel_sweeps():
    """[sweep id]: each panel's sweep over its rows x its values x data_seed, less the values an earlier panel
    trains on every one of its rows."""
    ids = []
    for i, panel in enumerate(PHASE['panels']):
        cfg, keys = resolve((base(panel),))
        done = {cell(q, d, v) for q in PHASE['panels'][:i] for d in rows(q) for v in q['values']}
        values = [v for v in panel['values'] if not all(cell(panel, d, v) in done for d in rows(panel))]
        grid = dict(graph_d=rows(panel), data_seed=PHASE['data_seed'], **{panel['key']: values})
        ids.append(find_or_create(pinned_sweep(cfg, keys, grid, f"reproduce: phase diagram, graph_d x {panel['key']}",
                                               METRICS[0][0]), 'phase'))
    return ids


def phase_cells(sweep_ids):
    """{cell: [(data_seed, summary)]} over every panel's runs."""
    cells = {}
    for panel, sweep_id in zip(PHASE['panels'], sweep_ids):
        for params, (summary, _) in completed_runs(sweep_id).items():
            p = {**base(panel), **dict(params)}
            cells.setdefault((p['graph_d'], *(p[k] for k in varied())), []).append((p['data_seed'], summary))
    return cells


def cell_runs(cells, panel, d, value):
    return sorted(cells.get(cell(panel, d, value), []), key=lambda x: x[0])


def others(panel):
    return ', '.join(f'{k}={base(panel)[k]:g}' for k in varied() if k != panel['key'])


def phase_table(cells, panel, metric):
    key, values = panel['key'], panel['values']
    head = ['graph_d (held-out leaves, chance)', *(f'{key}={v:g}' for v in values)]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for d in PHASE['graph_d']:
        runs = [s for v in values for _, s in cell_runs(cells, panel, d, v)]
        held = f"{runs[0]['val_rows']}, {1 / d:.3f}" if runs else f"chance {1 / d:.3f}"
        lines.append(f"| {d} ({held}) | " + ' | '.join(per_run([s[metric] for _, s in cell_runs(cells, panel, d, v)])
                                                         for v in values) + ' |')
    return '\n'.join(lines) + '\n'


def plot_phase(path, cells):
    """One heatmap a panel of the mean held-out first hop; each cell says its chance, and is hatched when the
    mean is within 0.1 of it."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ds, panels = PHASE['graph_d'], PHASE['panels']
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1.5, 1.0 * len(ds) + 2.0), squeeze=False,
                             layout='constrained')
    for n, (ax, panel) in enumerate(zip(axes[0], panels)):
        key, values = panel['key'], panel['values']
        grid = np.full((len(ds), len(values)), np.nan)
        for i, d in enumerate(ds):
            for j, v in enumerate(values):
                runs = cell_runs(cells, panel, d, v)
                if runs:
                    grid[i, j] = statistics.mean(s[METRICS[0][0]] for _, s in runs)
        image = ax.imshow(grid, vmin=0, vmax=1, cmap='viridis', origin='lower', aspect='auto')
        demo = all(base(panel)[k] == DEFAULTS[k] for k in varied() if k != key)
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
        ax.set_title(f'graph_d x {key} ({others(panel)})', fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), label='held-out first-hop accuracy (mean over graphs)')
    f = PHASE['fixed']
    fig.suptitle(f"Where planning from memory appears ({f['n_layer']} layers, l={f['graph_l']}, "
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


def main(tables_only, train):
    fixed, panels = PHASE['fixed'], PHASE['panels']
    sweep_ids = panel_sweeps()
    demo_ids = [find_or_create(pinned_sweep(*resolve((demo,)), dict(seed=PHASE['demo_seeds']),
                                            f'reproduce: demo candidate {demo}', METRICS[0][0]), 'phase')
                for demo in PHASE['demos']]
    if not tables_only:
        run_all([*sweep_ids, *demo_ids], train)
    cells = phase_cells(sweep_ids)
    runs = [s for c in cells.values() for _, s in c]
    machines = sorted({m for i in sweep_ids for _, m in completed_runs(i).values()})  # as each trial recorded it
    tables = ''.join(f"\n## graph_d x {p['key']} ({others(p)})\n\n"
                     f"Held-out first hop:\n\n{phase_table(cells, p, METRICS[0][0])}\n"
                     f"Held-out path:\n\n{phase_table(cells, p, METRICS[1][0])}" for p in panels)
    os.makedirs('results', exist_ok=True)
    text = (f"# Phase diagram: where planning from memory appears\n\nHeld-out first-hop accuracy (final evaluation) "
            f"of `train.py` with {', '.join(f'{k}={v}' for k, v in fixed.items() if k != 'log_interval')}, "
            f"for graph_d x each panel's key (a panel may set some of these keys otherwise), data_seed "
            f"{', '.join(map(str, PHASE['data_seed']))} (a new graph and held-out set each): mean ± sample sd "
            f"(each run). Figure: [phase_diagram.png](phase_diagram.png)\n"
            f"{tables}\nWall time: {sum(s['wall_time_s'] for s in runs) / 60:.1f} min for {len(runs)} runs on "
            f"{', '.join(machines)}.\n\n## The demo (`python3 train.py`) on more seeds (the model's; the graph is the "
            f"default data_seed's)\n"
            + ''.join(demo_table(demo, demo_id) for demo, demo_id in zip(PHASE['demos'], demo_ids))
            + "\nWritten by `python3 reproduce.py --phase_diagram`.\n")
    write_text(os.path.join('results', 'phase_diagram.md'), text)
    plot_phase(os.path.join('results', 'phase_diagram.png'), cells)
    print(f"wrote results/phase_diagram.md and .png ({len(runs)} runs)")
    return 0
