"""
The paper's findings (Noroozizadeh et al., arXiv 2510.26745) as contrasts that fit a laptop: each contrast
is a few arms (configs that differ in one thing), each arm trained with several seeds and summarised as a
markdown table and a figure.

    python3 reproduce.py                          # every contrast at the CPU scale, 5 graphs an arm
    python3 reproduce.py --quick                  # one seed of every contrast at a toy size: the plumbing (< 1 min)
    python3 reproduce.py --scale paper            # the paper's graph and model (GPUs)
    python3 reproduce.py --only pause_tokens,architecture
    python3 reproduce.py --phase_diagram          # graph_d x width, learning rate, epochs: where planning appears
    python3 reproduce.py --phase_diagram mamba    # the same for Mamba (learning rate, epochs), with the embedding
                                                  #   statistic; --phase_diagram gpt for the GPT's alone
    python3 reproduce.py --tables_only            # rewrite the tables and figures from the runs so far

Every arm is a grid sweep over its seeds on the local sweep backend (pathstar/sweeps/local.py), created on first use
and found again by its config (sweeps/reproduce/<scale>/<key>.id). So a rerun after a crash, or a second
reproduce.py started beside the first (another terminal, another GPU), joins the same sweeps, takes the
trials nobody has claimed and resumes interrupted ones from their checkpoints. An arm that several contrasts
share (the baseline is in most) is trained once.

Writes results/<contrast>.md and .png and results/reproduction.md (every contrast in one table) for the CPU
scale; the other scales write under results/<scale>/.
"""
import os
import sys
import time

import configurator
import train
from configurator import UserError
from pathstar.cli import ArgumentParser
from pathstar.models import registry as models
from pathstar.experiments import phase_diagram, verdicts
from pathstar.experiments.contrasts import (CONTRASTS, SCALES, arm_config, arm_row, baseline_runs, completed_runs,
                                            describe, find_or_create, pinned_sweep, run_all, write_contrast,
                                            write_text)
from run_sweep import install_stop_handlers


# -----------------------------------------------------------------------------
# the command line

def parse_args(argv):
    p = ArgumentParser(description="Run the paper's contrasts and write results/<contrast>.md and .png.")
    p.add_argument('--scale', choices=sorted(SCALES), default='cpu', help="cpu (default), quick or paper")
    p.add_argument('--quick', action='store_true', help="the same as --scale quick")
    p.add_argument('--only', help="comma-separated contrast names (default: all)")
    p.add_argument('--tables_only', action='store_true', help="train nothing; write tables from the runs so far")
    p.add_argument('--phase_diagram', nargs='?', const='all', choices=('all', *phase_diagram.DIAGRAMS),
                   help="graph_d x width, lr and epochs, the demo on 5 seeds (gpt); graph_d x lr and epochs for "
                        "Mamba (mamba); all: both (the default)")
    args = p.parse_args(argv)
    if args.quick:
        args.scale = 'quick'
    names = [c.name for c in CONTRASTS]
    if args.only is None:
        args.only = names
    else:
        args.only = [n.strip() for n in args.only.split(',') if n.strip()]
        if not args.only:
            raise UserError(f"--only: name at least one contrast: {', '.join(names)}")
    for n in args.only:
        if n not in names:
            raise UserError(f"--only: no contrast {n!r}; the contrasts are {', '.join(names)}")
    return args


def main(argv):
    args = parse_args(argv)
    if args.phase_diagram:
        which = tuple(phase_diagram.DIAGRAMS) if args.phase_diagram == 'all' else (args.phase_diagram,)
        return phase_diagram.main(args.tables_only, train.train, which)
    scale, plans, tables, slow = SCALES[args.scale], [], {}, set()   # plans: (contrast, [(arm, sweep id)])
    for c in (c for c in CONTRASTS if c.name in args.only):
        arms = []
        for arm in c.arms:
            if arm.baseline:  # no sweep: computed when the tables are written
                arms.append((arm, None))
                continue
            cfg, keys = arm_config(arm, scale)
            sweep = pinned_sweep(cfg, keys, {scale.seed_key: scale.seeds}, f"reproduce {args.scale}: {c.name}: "
                                 f"{arm.label}", c.metrics[0][0])
            arms.append((arm, find_or_create(sweep, args.scale, create=not args.tables_only)))
            if models.family(cfg).SLOW_ON_CPU:
                slow.add(arms[-1][1])
        plans.append((c, arms))
    # in registry order, but the families slow on a CPU (Mamba's scan) last: a short session gets every other
    # contrast
    sweep_ids = sorted(dict.fromkeys(sweep_id for _, arms in plans for _, sweep_id in arms if sweep_id),
                       key=lambda s: s in slow)
    t0 = time.time()
    if not args.tables_only:
        run_all(sweep_ids, train.train)
    skipped, records = [], []
    for c, arms in plans:
        finished = {arm.label: sorted(completed_runs(sweep_id).items()) if sweep_id else []
                    for arm, sweep_id in arms if not arm.baseline}
        runs = {label: [run for _, run in items] for label, items in finished.items()}
        if args.tables_only and not any(runs.values()):  # never replace a table with one of dashes
            print(f"note: contrast {c.name!r} has no finished runs yet; its table and figure are left as they are")
            skipped.append(c.name)
            continue
        baselines = {arm.label: baseline_runs(arm, scale) for arm, _ in arms if arm.baseline}
        rows = [arm_row(arm.label, baselines[arm.label] if arm.baseline else runs[arm.label], c.metrics,
                        scale.seeds) for arm, _ in arms]
        arm_runs = {label: [(dict(params), summary) for params, (summary, _) in items]
                    for label, items in finished.items()}
        arm_runs.update({label: [({scale.seed_key: seed}, summary) for seed, (summary, _) in zip(scale.seeds, done)]
                         for label, done in baselines.items()})
        records.append(verdicts.contrast_record(c, arm_runs))
        tables[c.name] = (f"## {c.title}\n\nThe paper: {c.paper}. Figure: [{c.name}.png]({c.name}.png)\n\n"
                          + write_contrast(c, rows, args.scale, scale, records[-1], verdicts.errors_table(arm_runs)))
    if records:  # the contrasts of this call replace theirs; the others' records stay as they were
        write_text(os.path.join(scale.results, 'reproduction.json'),
                   verdicts.to_json(verdicts.merged(os.path.join(scale.results, 'reproduction.json'), records)))
    if set(args.only) == {c.name for c in CONTRASTS} and not skipped:  # the whole table: every contrast, each run
        runs = [s for sweep_id in sweep_ids for s, _ in completed_runs(sweep_id).values()]
        write_text(os.path.join(scale.results, 'reproduction.md'),
                   f"# The paper's contrasts, reproduced\n\n{describe(args.scale, scale)}\n\n"
                   f"{verdicts.verdict_table(records)}\nThe same as JSON: reproduction.json.\n\n{len(runs)} distinct "
                   f"runs (an arm shared by contrasts is trained once), "
                   f"{sum(s['wall_time_s'] for s in runs) / 60:.1f} min of training in all.\n\n"
                   + '\n'.join(tables[c.name] for c in CONTRASTS))
    minutes = (time.time() - t0) / 60
    print(f"\nwrote {len(plans) - len(skipped)} contrasts to {scale.results}/ ({minutes:.1f} min in this call)")
    return 0


def stoppable(argv):
    """main(), where a signal stops the agent as run_sweep.py's does: the trial is queued again, to resume."""
    install_stop_handlers()
    try:
        return main(argv)
    except KeyboardInterrupt as e:  # local.Stopped, or a Ctrl-C before the handlers
        signum = getattr(e, 'signum', 2)
        print(f"stopped by signal {signum}; run the same command again to go on where it stopped", file=sys.stderr)
        return 128 + signum


if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(configurator.exit_on_user_error(lambda: stoppable(sys.argv[1:])))
