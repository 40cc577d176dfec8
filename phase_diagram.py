"""
The phase diagram: where does planning from memory appear at small scale? The demo's model (2 layers,
lr 1e-3, 1500 epochs) on stars of more arms and at other widths, a sweep over graph_d x n_embd with the
local backend; then the candidates for the demo's default on more seeds. Run by

    python3 reproduce.py --phase_diagram     # results/phase_diagram.md and .png

and built from reproduce.py's sweeps and tables (so it resumes, and agents share its trials).
"""
import os
import statistics

from reproduce import (METRICS, atomic_write, completed_runs, find_or_create, machine_name, per_run, pinned_sweep,
                       resolve, run_all, write_text)


PHASE = dict(grid=dict(data_seed=[1, 2], graph_d=[10, 20, 40], n_embd=[64, 128, 256]),  # a seed at a time
             fixed=dict(graph_l=5, graph_holdout_percentage=0.25, n_layer=2, n_head=4, num_pause_tokens=3,
                        epochs=1500, learning_rate=1e-3, eval_interval=5000, log_interval=1000, device='cpu'),
             demos=[dict(graph_d=20, n_embd=128, epochs=1500, device='cpu'),    # candidates for the demo,
                    dict(graph_d=20, n_embd=128, epochs=3000, device='cpu')],   # the rest at the defaults
             demo_seeds=[1337, 1338, 1339, 1340, 1341])


def phase_cells(sweep_id):
    """{(graph_d, n_embd): [(seed, summary)]}"""
    cells = {}
    for params, (summary, _) in completed_runs(sweep_id).items():
        p = dict(params)
        cells.setdefault((p['graph_d'], p['n_embd']), []).append((p['data_seed'], summary))
    return cells


def phase_table(cells, ds, widths, key):
    head = ['graph_d (held-out leaves, chance)', *(f'n_embd={w}' for w in widths)]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for d in ds:
        runs = [s for w in widths for _, s in cells.get((d, w), [])]
        held = f"{runs[0]['val_rows']}, {1 / d:.3f}" if runs else f"chance {1 / d:.3f}"
        cells_text = []
        for w in widths:
            seeds = sorted(cells.get((d, w), []), key=lambda x: x[0])
            values = [s[key] for _, s in seeds]
            cells_text.append(per_run(values))
        lines.append(f"| {d} ({held}) | " + ' | '.join(cells_text) + ' |')
    return '\n'.join(lines) + '\n'


def plot_phase(path, cells, ds, widths):
    """Heatmap of the mean held-out first hop; each cell says its chance, and is hatched when the mean is
    within 0.1 of it."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    grid = np.full((len(ds), len(widths)), np.nan)
    for (d, w), runs in cells.items():
        grid[ds.index(d), widths.index(w)] = statistics.mean(s['val/accuracy/first_hop'] for _, s in runs)
    fig, ax = plt.subplots(figsize=(1.6 * len(widths) + 2.5, 1.0 * len(ds) + 1.5))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap='viridis', origin='lower', aspect='auto')
    for i, d in enumerate(ds):
        for j in range(len(widths)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}\n(chance {1 / d:.2f})", ha='center', va='center', fontsize=8,
                        color='w' if grid[i, j] < 0.6 else 'k')
                if grid[i, j] < 1 / d + 0.1:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch='//', color='r'))
    ax.set_xticks(range(len(widths)), [f'n_embd={w}' for w in widths])
    ax.set_yticks(range(len(ds)), [f'graph_d={d}' for d in ds])
    fig.colorbar(image, label='held-out first-hop accuracy (mean over seeds)')
    ax.set_title('Where planning from memory appears (2 layers, 1500 epochs, l=5; hatched: within 0.1 of chance)',
                 fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=110))
    plt.close(fig)


def demo_table(demo, sweep_id):
    rows = sorted((dict(p)['seed'], s) for p, (s, _) in completed_runs(sweep_id).items())
    return (f"\n{' '.join(f'{k}={v}' for k, v in demo.items())}:\n\n| seed | held-out first hop (best) | "
            f"held-out path | wall |\n| --- | --- | --- | --- |\n"
            + ''.join(f"| {seed} | {s['val/accuracy/first_hop']:.3f} ({s['best/val/accuracy/first_hop']:.3f}) | "
                      f"{s['val/accuracy/path']:.3f} | {s['wall_time_s']:.0f} s |\n" for seed, s in rows))


def main(tables_only):
    grid, fixed = PHASE['grid'], PHASE['fixed']
    cfg, keys = resolve((fixed,))
    sweep_id = find_or_create(pinned_sweep(cfg, keys, grid, 'reproduce: phase diagram', METRICS[0][0]), 'phase')
    demo_ids = [find_or_create(pinned_sweep(*resolve((demo,)), dict(seed=PHASE['demo_seeds']),
                                            f'reproduce: demo candidate {demo}', METRICS[0][0]), 'phase')
                for demo in PHASE['demos']]
    if not tables_only:
        run_all([sweep_id, *demo_ids])
    cells, ds, widths = phase_cells(sweep_id), grid['graph_d'], grid['n_embd']
    os.makedirs('results', exist_ok=True)
    text = (f"# Phase diagram: where planning from memory appears\n\nHeld-out first-hop accuracy (final evaluation) "
            f"of `train.py` with {', '.join(f'{k}={v}' for k, v in fixed.items() if k != 'log_interval')}, "
            f"for graph_d x n_embd, data_seed {', '.join(map(str, grid['data_seed']))} (a new graph and held-out set "
            f"each): mean ± sample sd (each run).\n\n"
            f"{phase_table(cells, ds, widths, METRICS[0][0])}\nHeld-out path accuracy:\n\n"
            f"{phase_table(cells, ds, widths, METRICS[1][0])}\n"
            f"Wall time: {sum(s['wall_time_s'] for c in cells.values() for _, s in c) / 60:.1f} min for "
            f"{sum(map(len, cells.values()))} runs on {machine_name()}.\n\n"
            f"## Candidates for the demo (`python3 train.py`) on more seeds (the model's; the graph is the default "
            f"data_seed's)\n" + ''.join(demo_table(demo, demo_id) for demo, demo_id in zip(PHASE['demos'], demo_ids))
            + "\nWritten by `python3 reproduce.py --phase_diagram`.\n")
    write_text(os.path.join('results', 'phase_diagram.md'), text)
    plot_phase(os.path.join('results', 'phase_diagram.png'), cells, ds, widths)
    print(f"wrote results/phase_diagram.md and .png ({sum(map(len, cells.values()))} runs)")
    return 0
