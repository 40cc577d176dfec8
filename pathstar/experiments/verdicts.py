"""
Each contrast's claims scored on its runs (evidence.py's statistics and rule), and the machine-readable
results/reproduction.json:

    [{"name", "claim" (the paper's words), "verdict", "claims": [{"kind", "arm", "other", "metric", "verdict",
      "why"}], "arms": [{"arm", "task", "chance", "runs": [{"data_seed", "seed", "first_hop", "path",
      "held_out", "p_value", "above_chance"}], "first_hop": {"mean", "ci95", "n"}, "path": {...},
      "curve": {"epochs", "mean", "ci95": [los, his], "n"} (the first hop's learning curve, where runs have one)}]}]

A contrast agrees when every claim agrees, differs when any claim differs, and is inconclusive otherwise.
"""
import json
import os

import numpy as np

from pathstar.experiments import evidence
from pathstar.experiments.contrasts import CONTRASTS, claim_name
from pathstar.training.evaluate import ERROR_KINDS

FIRST_HOP, PATH = 'val/accuracy/first_hop', 'val/accuracy/path'


def run_record(params, summary):
    """One run: its seeds, its held-out accuracies and the binomial test of its first hop against chance."""
    out = dict(params, held_out=summary.get('val_rows', 0))
    out.update({k: summary[key] for k, key in (('first_hop', FIRST_HOP), ('path', PATH)) if key in summary})
    if 'first_hop' in out and out['held_out'] and 'chance/first_hop' in summary:
        test = evidence.run_test(out['first_hop'], out['held_out'], summary['chance/first_hop'])
        out.update(p_value=test['p_value'], above_chance=test['above_chance'])
    return out


def arm_record(arm, runs):
    """runs: [(params dict, summary)] of the arm's finished runs."""
    summaries = [s for _, s in runs]
    curves = [c for c in (evidence.learning_curve(s, FIRST_HOP) for s in summaries) if c]
    chances = sorted({s['chance/first_hop'] for s in summaries if 'chance/first_hop' in s})
    return dict(arm=arm.label, task=arm.task, chance=chances[0] if len(chances) == 1 else chances or None,
                runs=[run_record(p, s) for p, s in runs],
                first_hop=evidence.summary([s[FIRST_HOP] for s in summaries if FIRST_HOP in s]),
                path=evidence.summary([s[PATH] for s in summaries if PATH in s]),
                **(dict(curve=evidence.band(curves)) if curves else {}), _summaries=summaries)


def claim_record(claim, arms):
    """The verdict of one claim, and why, from the arms' records by label."""
    first = arms.get(claim.arm)
    other = arms.get(claim.other) if claim.other else None
    record = dict(kind=claim.kind, arm=claim.arm, other=claim.other, metric=claim.metric)
    if first is None or (claim.other and other is None):
        return dict(record, verdict='inconclusive', why='an arm of the claim has no runs')
    if claim.kind == 'sooner':
        return sooner_record(record, first, other, claim.metric)
    values = [s[claim.metric] for s in first['_summaries'] if claim.metric in s]
    if claim.kind == 'greater':
        others = [s[claim.metric] for s in other['_summaries'] if claim.metric in s]
        ci = evidence.difference_ci(values, others)
        return dict(record, verdict=evidence.verdict('greater', values, others), difference_ci95=ci,
                    why=f"{len(values)} and {len(others)} runs; 95% interval of the difference {fmt(ci)}")
    # each run's binomial test on the claim's metric, against the first hop's chance (1/d)
    tests = [evidence.run_test(s[claim.metric], s.get('val_rows', 0), first['chance'])
             if claim.metric in s and s.get('val_rows') else dict(above_chance=False) for s in first['_summaries']]
    ci = evidence.bootstrap_ci(values)
    verdict = evidence.verdict(claim.kind, values, chance=first['chance'], tests=tests)
    return dict(record, verdict=verdict, why=f"{len(values)} runs; mean {fmt(ci)} against chance "
                                             f"{first['chance']:.3f}; {sum(t['above_chance'] for t in tests)} "
                                             f"of {len(tests)} runs above chance (p < {evidence.ALPHA})")


def sooner_record(record, first, other, metric):
    """'first sooner than second', from every run's learning curve of metric (evidence.epochs_to)."""
    a, b = ([evidence.learning_curve(s, metric) for s in arm['_summaries']] for arm in (first, other))
    if not all(a + b):
        return dict(record, verdict='inconclusive', why='a claim about speed needs every run\'s learning curve; '
                                                        f'{sum(not c for c in a + b)} runs have none')
    level = evidence.sooner_level(a, b)
    ea, eb = ([evidence.epochs_to(e, v, level) for e, v in curves] for curves in (a, b))
    ci = evidence.difference_ci(eb, ea)
    return dict(record, verdict=evidence.verdict('greater', eb, ea), level=level, epochs_to_level=[ea, eb],
                difference_ci95=ci, why=f"{len(a)} and {len(b)} runs; epochs to {level:.3f}: mean {np.mean(ea):.1f} "
                                        f"against {np.mean(eb):.1f}, 95% interval of the difference {fmt(ci)}")


def fmt(ci):
    return '-' if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def contrast_record(contrast, arm_runs):
    """arm_runs: {arm label: [(params, summary)]}; the contrast's record for reproduction.json."""
    arms = {arm.label: arm_record(arm, arm_runs.get(arm.label, [])) for arm in contrast.arms}
    claims = [claim_record(c, {k: a for k, a in arms.items() if a['runs']}) for c in contrast.claims]
    verdicts = {c['verdict'] for c in claims}
    verdict = 'differs' if 'differs' in verdicts else 'agrees' if verdicts == {'agrees'} else 'inconclusive'
    return dict(name=contrast.name, claim=contrast.paper, verdict=verdict, claims=claims,
                arms=[{k: v for k, v in a.items() if not k.startswith('_')} for a in arms.values()])


def verdict_table(records):
    """The verdict table README and reproduction.md lead with."""
    lines = ['| contrast | verdict | claims (verdict: why) |', '| --- | --- | --- |']
    for r in records:
        claims = '; '.join(f"{claim_name(c)}: {c['verdict']}" for c in r['claims'])
        lines.append(f"| {r['name']} | **{r['verdict']}** | {claims} |")
    return '\n'.join(lines) + f"\n\nThe rule: {evidence.VERDICT_RULE}\n"


def pooled(pairs):
    """sum(w v) / sum(w) over (weight, value) pairs: a rate over all runs' rows from each run's rate and its
    number of rows; '-' when no run has a row to count."""
    total = sum(w for w, _ in pairs)
    return f"{sum(w * v for w, v in pairs) / total:.2f}" if total > 0 else '-'


def given_prefix(runs, i):
    """Target i right over the rows of all runs whose targets before it were right: a run's rows with a right
    prefix are val_rows times the product of its earlier targets' given-prefix rates."""
    pairs = []
    for s in runs:
        rates = [s.get(f'val/accuracy/token_{j}_given_prefix') for j in range(1, i + 1)]
        if None not in rates:
            pairs.append((s['val_rows'] * float(np.prod(rates[:-1])), rates[-1]))
    return pooled(pairs)


def errors_table(arm_runs):
    """Where each arm's held-out paths go wrong, from its runs' error metrics (evaluate.path_errors), over all
    its runs' rows: each target's greedy accuracy given that every target before it was right, and the wrong
    paths split by their first wrong token. '' when no arm has them. arm_runs: {arm label: [(params, summary)]}."""
    arms = {label: [s for _, s in runs] for label, runs in arm_runs.items()
            if any('val/errors/other_node' in s for _, s in runs)}
    if not arms:
        return ''
    n = max(int(k.split('_')[1]) for runs in arms.values() for s in runs for k in s
            if k.startswith('val/accuracy/token_') and k.endswith('_given_prefix'))
    head = ['arm', *(f'target {i} given a right prefix' for i in range(1, n + 1)),
            *(f'wrong: {kind.replace("_", " ")}' for kind in ERROR_KINDS)]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    last = ['| arm | rows wrong first at the last target | ' + ' | '.join(k.replace('_', ' ') for k in ERROR_KINDS)
            + ' |', '|' + ' --- |' * (2 + len(ERROR_KINDS))]
    for label, runs in arms.items():
        cells = [given_prefix(runs, i) for i in range(1, n + 1)]
        cells += [pooled([(s['val_rows'] * (1 - s[PATH]), s[f'val/errors/{kind}']) for s in runs
                          if f'val/errors/{kind}' in s]) for kind in ERROR_KINDS]
        lines.append(f"| {label} | " + ' | '.join(cells) + ' |')
        runs = [s for s in runs if 'val/errors/last_target/other_node' in s]
        if runs:  # how many rows first go wrong at the last target, and as what
            m = max(int(k.split('_')[1]) for k in runs[0] if k.startswith('val/accuracy/token_')
                    and k.endswith('_given_prefix'))  # this arm's targets
            rows = [s['val_rows'] * float(np.prod([s[f'val/accuracy/token_{j}_given_prefix'] for j in range(1, m)]))
                    * (1 - s[f'val/accuracy/token_{m}_given_prefix']) for s in runs]
            last.append(f"| {label} | {sum(rows):.0f} | " + ' | '.join(
                pooled([(w, s[f'val/errors/last_target/{kind}']) for w, s in zip(rows, runs)]) for kind in ERROR_KINDS)
                + ' |')
    return ("\nWhere the held-out paths go wrong, over all runs' held-out rows: each target's greedy accuracy over the "
            "rows whose earlier targets were all right, and the wrong paths split by their first wrong token: a "
            "non-node token, the leaf the prompt names, the node just reached again (repeat), another node of the "
            "row's own path, a training path's leaf, another node ('-': no row to count, or runs that predate the "
            "metric; before 'repeat' was counted apart, own path held it).\n\n" + '\n'.join(lines) + '\n'
            + ("\nThe rows whose first wrong token is the last target (for forward targets the leaf, which the prompt "
               "names), split the same way:\n\n" + '\n'.join(last) + '\n' if len(last) > 2 else ''))


def merged(path, records):
    """The records of path's reproduction.json with these replacing theirs by name, in CONTRASTS' order."""
    by_name = {}
    if os.path.isfile(path):
        with open(path) as f:
            by_name = {r['name']: r for r in json.load(f)}
    by_name.update({r['name']: r for r in records})
    order = [c.name for c in CONTRASTS]
    return sorted(by_name.values(), key=lambda r: order.index(r['name']) if r['name'] in order else len(order))


def to_json(records):
    return json.dumps(records, indent=1, sort_keys=False) + '\n'
