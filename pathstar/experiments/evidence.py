"""
The statistics a contrast's verdict is computed from, each defined once:

    binomial_p(k, n, p)        exact one-sided P(X >= k) for X ~ Binomial(n, p): a run against chance
    bootstrap_ci(values)       the 95% percentile-bootstrap interval of the mean over graphs (seeded)
    difference_ci(a, b)        the same for mean(a) - mean(b), the two arms resampled apart
    plans(run, chance)         a run plans when its held-out first hop beats chance at ALPHA (binomial test)
    epochs_to(curve, level)    the first epoch a learning curve reaches level (its last epoch if never)
    band(curves)               a metric's mean learning curve over graphs with its 95% bootstrap band
    verdict(claim, arms)       'agrees', 'differs' or 'inconclusive', by the rule written in VERDICT_RULE

A run's first-hop accuracy is k / n over its n held-out leaves, so k = round(accuracy * n). Pure Python
and numpy: nothing here trains or reads a file (a run's learning curve comes in its summary).
"""
import math

import numpy as np

ALPHA = 0.01          # a run is above chance when its one-sided binomial p-value is below this
BOOTSTRAP = 10000     # resamples for every interval
SEED = 0              # the bootstrap's generator: the same runs always give the same interval
MIN_RUNS = 5          # fewer finished runs in an arm than this: the verdict is inconclusive
LEVEL = 0.5           # 'sooner': arms are timed to this fraction of the better arm's mean best
VERDICT_RULE = (
    "A claim compares arms on one metric, over graphs (one run a graph). 'above chance' agrees when the lower "
    "end of the arm's 95% bootstrap interval is above chance and every run's one-sided binomial test against "
    f"chance has p < {ALPHA}, and differs when the interval's upper end is at or below chance. 'at chance' (no "
    "better than chance) agrees when the interval's lower end is at or below chance and no run's test is below "
    f"p = {ALPHA}, and differs when the lower end is above chance. 'a > b' agrees when the 95% "
    "interval of mean(a) - mean(b) is above 0 and differs when it is below 0. 'a sooner than b' is read from "
    "the learning curves (held-out first hop against epochs): the level is half the larger of the two arms' "
    "mean best first hop; each run's epochs to level is the first evaluated epoch at or above it (a run that "
    "never gets there counts its last epoch); it agrees when the 95% interval of mean(b's epochs) - "
    "mean(a's epochs) is above 0 and differs when it is below 0. Anything else, or an arm with "
    f"fewer than {MIN_RUNS} finished runs, is inconclusive.")


def binomial_p(k, n, p):
    """P(X >= k) for X ~ Binomial(n, p), exactly (a sum of log-space terms, so n in the millions is fine)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
           + (n - i) * math.log1p(-p) for i in range(k, n + 1)]
    top = max(log)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in log))


def successes(accuracy, n):
    """The number of right answers behind an accuracy measured on n items."""
    return int(round(accuracy * n))


def bootstrap_ci(values, level=0.95, resamples=BOOTSTRAP, seed=SEED):
    """(lo, hi): the percentile bootstrap interval of the mean; one value gives (v, v); none gives None."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    means = x[np.random.default_rng(seed).integers(0, x.size, (resamples, x.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def difference_ci(a, b, level=0.95, resamples=BOOTSTRAP, seed=SEED):
    """(lo, hi) of mean(a) - mean(b), each arm resampled on its own (its own graphs)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        return None
    rng = np.random.default_rng(seed)
    diff = (a[rng.integers(0, a.size, (resamples, a.size))].mean(axis=1)
            - b[rng.integers(0, b.size, (resamples, b.size))].mean(axis=1))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(diff, [tail, 100 - tail])
    return float(lo), float(hi)


def run_test(accuracy, n, chance):
    """The binomial test of one run's first hop: {'k', 'n', 'p_value', 'above_chance'}."""
    k = successes(accuracy, n)
    p_value = binomial_p(k, n, chance)
    return dict(k=k, n=n, p_value=p_value, above_chance=p_value < ALPHA)


def summary(values):
    """{'mean', 'ci95': [lo, hi], 'n'} of one metric over an arm's runs ({'n': 0} without runs)."""
    if not values:
        return dict(n=0)
    lo, hi = bootstrap_ci(values)
    return dict(mean=float(np.mean(values)), ci95=[lo, hi], n=len(values))


def learning_curve(summary, metric):
    """(epochs, values) of metric over a run's evaluations (summary['curve'], from its curve.json), or None."""
    points = [p for p in summary.get('curve', []) if metric in p]
    return ([p['epoch'] for p in points], [p[metric] for p in points]) if points else None


def epochs_to(epochs, values, level):
    """The first epoch whose value is at or above level; the last epoch when none is (the run never got
    there within its budget, so it took at least that long)."""
    for epoch, value in zip(epochs, values):
        if value >= level:
            return float(epoch)
    return float(epochs[-1])


def sooner_level(a_curves, b_curves):
    """The level both arms are timed to: LEVEL x the larger of the two arms' mean best value."""
    return LEVEL * max(float(np.mean([max(v) for _, v in curves])) for curves in (a_curves, b_curves))


def band(curves):
    """{'epochs', 'mean', 'ci95': [los, his], 'n'} of (epochs, values) curves over graphs, at the epochs every
    curve evaluated (the runs of one arm share their schedule); None without curves."""
    if not curves:
        return None
    common = sorted(set.intersection(*(set(e) for e, _ in curves)))
    at = [dict(zip(e, v)) for e, v in curves]
    columns = [[c[epoch] for c in at] for epoch in common]
    cis = [bootstrap_ci(column) for column in columns]
    return dict(epochs=[float(e) for e in common], mean=[float(np.mean(c)) for c in columns],
                ci95=[[lo for lo, _ in cis], [hi for _, hi in cis]], n=len(curves))


def verdict(kind, first, second=None, chance=None, tests=()):
    """'agrees' / 'differs' / 'inconclusive' for one claim, by VERDICT_RULE.

    kind 'above_chance' or 'at_chance': first is the arm's values, chance its chance level, tests its runs'
    run_test results; kind 'greater': first > second, the two arms' values; kind 'sooner': first gets there
    sooner than second, the two arms' (epochs, values) learning curves."""
    if len(first) < MIN_RUNS or (kind in ('greater', 'sooner') and len(second) < MIN_RUNS):
        return 'inconclusive'
    if kind == 'sooner':
        level = sooner_level(first, second)
        return verdict('greater', *([epochs_to(e, v, level) for e, v in curves] for curves in (second, first)))
    if kind == 'greater':
        lo, hi = difference_ci(first, second)
        return 'agrees' if lo > 0 else 'differs' if hi < 0 else 'inconclusive'
    lo, hi = bootstrap_ci(first)
    if kind == 'above_chance':
        if lo > chance and all(t['above_chance'] for t in tests):
            return 'agrees'
        return 'differs' if hi <= chance else 'inconclusive'
    if kind == 'at_chance':  # no better than chance: below it counts too (a model can be confidently wrong)
        if lo > chance:
            return 'differs'
        return 'agrees' if not any(t['above_chance'] for t in tests) else 'inconclusive'
    raise ValueError(f"unknown claim kind {kind!r}")
