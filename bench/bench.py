"""
The performance benchmark: dataset builds, training throughput, eval and start-up
overhead, memory, the paper-scale configs' FLOPs and GPU memory computed without a GPU
(bench_paper.py), and (optionally) sweep throughput with concurrent agents.

    python3 bench/bench.py                     # full run: about 5 min on 2 CPU cores (+2 min with --agents)
    python3 bench/bench.py --quick             # smoke run: under 1 min (skips G(5000,5) on CPU)
    python3 bench/bench.py --agents 1,2,4      # also: trials/hour with 1, 2, 4 concurrent agents
    python3 bench/bench.py --json out.json     # results as JSON (default bench/results.json)
    python3 bench/bench.py --only ad --threads 1   # some configs only; 1 torch thread (a busy machine)

Every measurement runs in a fresh subprocess with a temp data_dir and out_dir (cold
dataset build, wandb off, device 'auto'). Training goes through train.train(cfg); inside
the child, train()'s hook times evaluations and checkpoint saves, and a global optimizer
step hook timestamps every step, so step time, eval and checkpoint overhead and
start -> first step are measured without touching train.py. The table comes last.
"""
import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, ROOT)
sys.path.insert(0, BENCH)

import bench_data  # noqa: E402  (the dataset-build benchmark; its children are fresh processes too)
from pathstar.validate import build_config as checked  # noqa: E402
from pathstar.data import inweights  # noqa: E402
from pathstar import validate  # noqa: E402

REFERENCE_B_S_PER_ITER = 0.25  # origin repo, config (b), 2-core CPU
TRAIN_TIMEOUT_S, AGENT_TIMEOUT_S = 420, 300  # per training child; per group of concurrent agents
PAPER_TIMEOUT_S = 300  # the paper-scale accounting (about 15 s)
PAPER_CONFIG = os.path.join(ROOT, 'config', 'paper_g5000_l5.py')
SMALL = dict(graph_d=20, n_embd=128, learning_rate=1e-3)  # (a): the CPU demo before the phase diagram chose G(200, 5)


# -----------------------------------------------------------------------------
# what is measured

def train_configs(quick, cuda):
    """name -> (config overrides, options). batch_size 'all' = every training row in one batch."""
    # (b) is the origin repo's reference point: 1,600 training rows (80% of 100 paths held in)
    b = dict(graph_d=100, graph_l=5, graph_holdout_percentage=0.2, n_layer=2, n_embd=64, batch_size='all',
             epochs=40 if quick else 300)
    configs = {
        'a d20 2x128': (dict(SMALL, epochs=50 if quick else 300), dict(warm_probe=True)),
        'a d20 2x128 mamba': (dict(SMALL, epochs=50 if quick else 300, model_type='mamba'), {}),  # a row per model
        'b d100 2x64 ev50': (dict(b, eval_interval=50), dict(warm_probe=True)),
        'b d100 2x64 ev100': (dict(b, eval_interval=100), {}),
        # (d): the demo itself (python3 train.py: G(200, 5), 2 x 128, batch 1024), GPT and Mamba, steps only
        'd demo G(200,5) 2x128': (dict(max_iters=10 if quick else 30, eval_interval=10 ** 6), {}),
        'd demo G(200,5) 2x128 mamba': (dict(max_iters=10 if quick else 30, eval_interval=10 ** 6, model_type='mamba'),
                                        {}),
    }
    c = 'c G(5000,5) 12x384'
    if cuda:
        configs[c] = (dict(config_file=PAPER_CONFIG, max_iters=10 if quick else 50), {})
    elif not quick:  # on CPU one step is tens of seconds: two steps, eval on a few rows only
        configs[c] = (dict(config_file=PAPER_CONFIG, max_iters=2), dict(eval_rows=8))
    else:
        configs[c] = (None, 'skipped with --quick on CPU: one step takes tens of seconds')
    return configs


def targets(builds, runs):
    """(what, measured, limit, unit) for each target; measured None = not measured."""
    by_d = {r['d']: r for r in builds}
    big = by_d.get(10 ** 6, {})
    a, b50, b100 = (runs.get(k, {}) for k in ('a d20 2x128', 'b d100 2x64 ev50', 'b d100 2x64 ev100'))
    gpt, mamba = (runs.get(k, {}) for k in ('d demo G(200,5) 2x128', 'd demo G(200,5) 2x128 mamba'))
    ratio = mamba['step_ms'] / gpt['step_ms'] if mamba.get('step_ms') and gpt.get('step_ms') else None
    return [
        ('build d=1e6: seconds', big.get('seconds'), 5.0, 's'),
        ('build d=1e6: peak RSS', big.get('peak_rss_mb'), 1430.0, 'MiB'),  # 1.5 GB
        ('(b) wall per iter, eval every 50', b50.get('s_per_iter'), REFERENCE_B_S_PER_ITER / 3, 's'),
        ('(b) eval overhead, eval every 100', b100.get('eval_pct'), 10.0, '%'),
        ('(a) start -> first step', a.get('start_to_first_step_s'), 3.0, 's'),
        ('(b) start -> first step', b50.get('start_to_first_step_s'), 3.0, 's'),
        ('(d) demo: Mamba step / GPT step', ratio, 2.0, 'x'),  # the scan in pathstar/models/scan.py, not a loop
    ]


# -----------------------------------------------------------------------------
# the child: one training run, timed from inside

class Timers:
    """Wall-clock intervals of evaluations and checkpoint saves, and the end time of every optimizer
    step, from train()'s hook (evals and saves) and torch's optimizer step hook."""

    def __init__(self, eval_rows=None):
        self.evals, self.saves, self.step_ends, self.started = [], [], [], {}
        self.eval_rows = eval_rows

    def hook(self, event, run):
        if event == 'start' and self.eval_rows:  # CPU runs of the GPU config: score a few rows only
            run.ev = shrink_eval_sets(run.ev, self.eval_rows)
        what, _, edge = event.partition('_')
        if edge == 'start':
            self.started[what] = now()
        elif edge == 'end':
            (self.evals if what == 'eval' else self.saves).append((self.started.pop(what), now()))

    def on_step(self, optimizer, args, kwargs):
        self.step_ends.append(now())

    def step_seconds(self):
        """Each step's own time: the gap since the previous step minus evals and saves inside it."""
        pauses = self.evals + self.saves
        out = []
        for prev, end in zip(self.step_ends, self.step_ends[1:]):
            out.append(end - prev - sum(e - s for s, e in pauses if prev <= s < end))
        return out


def now():
    """perf_counter once the GPU has finished what was queued: CUDA kernels run asynchronously, so
    without the synchronize a step or an eval would be timed when it was launched, not done."""
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def shrink_eval_sets(ev, n):
    """The first n rows of each eval set."""
    return ev._replace(train_paths=ev.train_paths[:n], edges=type(ev.edges)(*(t[:n] for t in ev.edges)),
                       val_paths=ev.val_paths[:n], all_edges=None if ev.all_edges is None else ev.all_edges[:n])


def child_config(spec, tmp):
    import configurator
    cfg = dict(spec)
    path = cfg.pop('config_file', None)
    if path:
        cfg = {**configurator.load_config_file(path), **cfg}
    cfg.update(data_dir=os.path.join(tmp, 'data'), out_dir=os.path.join(tmp, 'out'), wandb_log=False)
    if cfg.get('batch_size') == 'all':  # counted, not built: the run still builds its dataset cold
        cfg['batch_size'] = inweights.row_counts(checked(dict(cfg, batch_size='auto'))).train_rows
    return validate.build_config(cfg)


def run_timed(train, cfg, options):
    """train.train(cfg) with its evals, saves and optimizer steps timed. Returns (timers, summary, start, end)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook
    timers = Timers(options.get('eval_rows'))
    hook = register_optimizer_step_post_hook(timers.on_step)
    start = now()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            summary = train.train(cfg, timers.hook)
    finally:
        hook.remove()
    return timers, summary, start, now()


def child_train(spec, options):
    t0 = time.perf_counter()
    import torch
    import train
    import_s = time.perf_counter() - t0
    if options.get('threads'):
        torch.set_num_threads(options['threads'])
    with tempfile.TemporaryDirectory(prefix='bench_pathstar_') as tmp:
        cfg = child_config(spec, tmp)
        timers, summary, start, end = run_timed(train, cfg, options)
        rows_per_iter = min(cfg_batch(cfg, summary) * cfg['gradient_accumulation_steps'], summary['train_rows'])
        stats = train_stats(summary, timers, start, end, computed_tokens_per_step(cfg))
        stats['peak_mem_mb'] = peak_memory_mb(torch)
        if options.get('warm_probe'):  # a second train() in this process, as a sweep agent runs them
            cfg = dict(cfg, max_iters=1, out_dir=os.path.join(tmp, 'out_warm'))
            warm, _, warm_start, _ = run_timed(train, cfg, options)
            stats['warm_start_to_first_step_s'] = warm.step_ends[0] - warm_start
    return dict(stats, import_s=import_s, threads=torch.get_num_threads(), device=summary['device'],
                batch_rows=rows_per_iter)


def cfg_batch(cfg, summary):
    return validate.batch_rows(cfg, summary['train_rows'])


def computed_tokens_per_step(cfg):
    """Input tokens one step of the first stage computes, as train.py counts them: each part's rows
    (padding rows included) at its own length, each distinct row once in full-batch mode."""
    import bench_paper
    step = bench_paper.steps(cfg, bench_paper.geometry(cfg))[0]
    return sum(p.rows * step.accum * p.T for p in step.parts)


def train_stats(summary, timers, start, end, tokens_per_iter):
    wall = end - start
    return dict(iters=summary['iter'], epochs=summary['epoch'], wall_s=wall,
                s_per_iter=wall / max(summary['iter'], 1), epochs_per_s=summary['epoch'] / wall,
                **step_stats(timers.step_seconds(), tokens_per_iter), **overhead_stats(timers, wall),
                **startup_stats(timers, start))


def step_stats(steps, tokens_per_iter):
    """Training steps after the first: median and mean ms, tokens per second of the median step."""
    if not steps:
        return dict(step_ms=None, step_ms_mean=None, tokens_per_s=None)
    median = sorted(steps)[len(steps) // 2]
    return dict(step_ms=1e3 * median, step_ms_mean=1e3 * sum(steps) / len(steps), step_ms_max=1e3 * max(steps),
                tokens_per_s=tokens_per_iter / median)


def overhead_stats(timers, wall):
    eval_s, save_s = (sum(e - s for s, e in iv) for iv in (timers.evals, timers.saves))
    return dict(eval_calls=len(timers.evals), eval_s=eval_s, eval_pct=100 * eval_s / wall,
                save_s=save_s, save_pct=100 * save_s / wall)


def startup_stats(timers, start):
    """train() call -> first step done, split into setup (data, model), the evaluation at iter 0, the step."""
    if not timers.step_ends:
        return dict(start_to_first_step_s=None)
    first = timers.step_ends[0]
    initial = [e for e in timers.evals if e[1] <= first]
    return dict(start_to_first_step_s=first - start, setup_s=(initial[0][0] if initial else first) - start,
                initial_eval_s=sum(e - s for s, e in initial),
                first_step_ms=1e3 * (first - (initial[-1][1] if initial else start)))


def peak_memory_mb(torch):
    """GPU: max_memory_allocated. CPU: this process's peak RSS (VmHWM)."""
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return bench_data.peak_rss_mb()


def child_agent(spec, options):
    """One sweep agent: imports once, then runs `trials` small trainings back to back."""
    import torch
    import train
    torch.set_num_threads(options['threads'])
    walls = []
    with tempfile.TemporaryDirectory(prefix='bench_agent_') as tmp:
        for trial in range(options['trials']):
            out_dir = os.path.join(tmp, f'out{trial}')
            cfg = dict(spec, seed=1000 + trial, data_dir=options['data_dir'], out_dir=out_dir, wandb_log=False)
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                train.train(cfg)
            walls.append(time.perf_counter() - start)
    return dict(trial_walls=walls, threads=torch.get_num_threads())


def child_paper(spec, options):
    """bench_paper.py's paper-scale accounting and memory (FakeTensors: nothing real is computed), and
    its tables, rendered here because the parent never imports torch."""
    import bench_paper
    start = time.perf_counter()
    rows = bench_paper.measure()
    return dict(rows=rows, table=bench_paper.table(rows), seconds=time.perf_counter() - start)


def child_main(payload):
    kind, spec, options = payload['kind'], payload['spec'], payload['options']
    result = dict(train=child_train, agent=child_agent, paper=child_paper)[kind](spec, options)
    print(json.dumps(result))


# -----------------------------------------------------------------------------
# the parent

def child_command(kind, spec, options):
    payload = json.dumps(dict(kind=kind, spec=spec, options=options))
    return [sys.executable, os.path.abspath(__file__), '--child', payload]


def run_child(kind, spec, options, timeout):
    """One fresh subprocess; its last stdout line is the JSON result, or an error dict."""
    try:
        out = subprocess.run(child_command(kind, spec, options), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f'timed out after {timeout} s')
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines()
        return dict(error=lines[-1] if lines else f'exit code {out.returncode}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_builds():
    results = []
    for d in bench_data.SIZES:
        try:
            results.append(bench_data.run_one(d))
        except subprocess.CalledProcessError as e:
            results.append(dict(d=d, error=((e.stderr or '').strip().splitlines() or ['failed'])[-1]))
        print(f"build d={d:,}: {results[-1].get('seconds', 'error')} s", flush=True)
    return results


def bench_training(quick, cuda, threads, only):
    runs = {}
    for name, (spec, options) in train_configs(quick, cuda).items():
        if name[0] not in only:
            continue
        if spec is None:
            runs[name] = dict(skipped=options)
            continue
        options = dict(options, threads=threads) if threads else options
        runs[name] = dict(run_child('train', spec, options, timeout=TRAIN_TIMEOUT_S), config=spec, options=options)
        r = runs[name]
        print(f"train {name}: " + (r['error'] if 'error' in r else
                                   f"{r['iters']} iters, {r['s_per_iter']:.3f} s/iter, eval {r['eval_pct']:.1f}%"),
              flush=True)
    return runs


def bench_paper_scale():
    result = run_child('paper', None, {}, timeout=PAPER_TIMEOUT_S)
    print('paper scale: ' + (result['error'] if 'error' in result else f"{result['seconds']:.1f} s"), flush=True)
    return result


def agent_plans(counts, cores):
    """(agents, threads each): cores // k threads (at least 1), and for contrast the fewest agents
    above one with torch's default of one thread per core each (oversubscribed)."""
    plans = [(k, max(1, cores // k)) for k in counts]
    several = [k for k in counts if k > 1]
    if several and cores > 1:
        plans.append((min(several), cores))
    return plans


def bench_agents(counts, quick):
    """Aggregate trials/hour with k agents at once, each running short trials of (a) in-process."""
    spec = dict(SMALL, epochs=30 if quick else 100)
    trials = 1 if quick else 2
    results = []
    with tempfile.TemporaryDirectory(prefix='bench_agents_') as data_dir:
        for k, threads in agent_plans(counts, cpu_count()):
            options = dict(threads=threads, trials=trials, data_dir=data_dir)
            results.append(dict(run_agents(k, spec, options), agents=k, threads=threads, trials_each=trials,
                                epochs=spec['epochs']))
            print(f"agents {k} x {threads} threads: {results[-1].get('trials_per_hour', 'error')} trials/hour",
                  flush=True)
    return results


def run_agents(k, spec, options):
    start = time.perf_counter()
    procs = [subprocess.Popen(child_command('agent', spec, options), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(k)]
    try:
        outs = [p.communicate(timeout=max(1.0, start + AGENT_TIMEOUT_S - time.perf_counter())) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.communicate()
        return dict(error=f'timed out after {AGENT_TIMEOUT_S} s')
    wall = time.perf_counter() - start
    if any(p.returncode for p in procs):
        return dict(error=next(err for p, (_, err) in zip(procs, outs) if p.returncode).strip().splitlines()[-1])
    total = k * options['trials']
    return dict(wall_s=wall, trials=total, trials_per_hour=round(total * 3600 / wall))


def cpu_count():
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def machine():
    """The parent never imports torch: a child's ru_maxrss would start at the parent's RSS."""
    out = subprocess.run([sys.executable, '-c', TORCH_PROBE], capture_output=True, text=True, check=True, cwd=ROOT)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    return dict(cpu=cpu_model(), cores=cpu_count(), python=platform.python_version(), **probe,
                code=code_version(), load_avg_start=os.getloadavg()[0])


def code_version():
    """The commit measured, '+dirty' when the repo's top-level .py files differ from it."""
    def git(*args):
        out = subprocess.run(['git', *args], capture_output=True, text=True, cwd=ROOT)
        return out.stdout.strip() if out.returncode == 0 else None
    commit = git('rev-parse', '--short', 'HEAD')
    dirty = git('status', '--porcelain', '--untracked-files=no', '--', ':(glob)*.py')
    return None if commit is None else commit + ('+dirty' if dirty else '')


# torch's version and GPU, the import time of torch + train.py, and of torch._dynamo, which torch
# imports lazily on the first optimizer construction: a fixed cost inside every process's first train()
TORCH_PROBE = """
import json, time
t = time.perf_counter(); import torch, train; imports = time.perf_counter() - t
t = time.perf_counter(); import torch._dynamo; dynamo = time.perf_counter() - t
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
print(json.dumps(dict(torch=torch.__version__, gpu=gpu, import_train_s=imports, lazy_dynamo_import_s=dynamo)))
"""


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or 'unknown'


# -----------------------------------------------------------------------------
# the tables

def fmt(value, spec, missing='-'):
    return missing if value is None else format(value, spec)


def build_table(builds):
    head = f"{'d':>10} {'train rows':>12} {'seconds':>8} {'peak RSS MiB':>13}"
    lines = ['dataset build (l=5, cold, fresh process)', head, '-' * len(head)]
    for r in builds:
        lines.append(f"{r['d']:>10,} " + (f"error: {r['error']}" if 'error' in r else
                     f"{r['train_rows']:>12,} {r['seconds']:>8.2f} {r['peak_rss_mb']:>13.1f}"))
    return lines


def training_table(runs):
    head = (f"{'config':<20} {'iters':>5} {'rows':>5} {'step ms':>8} {'mean ms':>8} {'s/iter':>7} {'tok/s':>8} "
            f"{'epoch/s':>7} {'eval %':>6} {'ckpt %':>6} {'1st s':>6} {'warm s':>6} {'peak MiB':>8} {'thr':>3}")
    lines = ['training through train.train() (fresh process, cold dataset build)', head, '-' * len(head)]
    for name, r in runs.items():
        lines.append(f"{name:<20} " + (f"error: {r['error']}" if 'error' in r else r['skipped'] if 'skipped' in r
                                        else training_row(r)))
    lines += ['  step ms: median training step (mean ms: mean); s/iter, epoch/s: whole run incl. eval and checkpoints;',
              '  tok/s: input tokens computed per second of median step; 1st s: train() call -> first step done;',
              '  warm s: the same in a second train() in that process (a sweep agent); thr: torch threads']
    return lines + [f"  {n}: eval on {r['options']['eval_rows']} rows per eval set only (CPU)" for n, r in runs.items()
                    if r.get('options', {}).get('eval_rows')]


def training_row(r):
    return (f"{r['iters']:>5} {r['batch_rows']:>5} {fmt(r['step_ms'], '8.1f'):>8} {fmt(r['step_ms_mean'], '8.1f'):>8} "
            f"{r['s_per_iter']:>7.3f} {fmt(r['tokens_per_s'], '8.0f'):>8} {r['epochs_per_s']:>7.2f} "
            f"{r['eval_pct']:>6.1f} {r['save_pct']:>6.1f} {fmt(r['start_to_first_step_s'], '6.2f'):>6} "
            f"{fmt(r.get('warm_start_to_first_step_s'), '6.2f'):>6} {r['peak_mem_mb']:>8.0f} {r['threads']:>3}")


def agents_table(agents):
    head = f"{'agents':>6} {'threads each':>12} {'trials':>6} {'wall s':>7} {'trials/hour':>11}"
    epochs = agents[0]['epochs'] if agents else 0
    lines = [f'concurrent agents: processes each running {agents[0]["trials_each"] if agents else 0} (a)-config '
             f'trials of {epochs} epochs in-process (wall incl. process start)', head, '-' * len(head)]
    for r in agents:
        lines.append(f"{r['agents']:>6} {r['threads']:>12} " + (f"error: {r['error']}" if 'error' in r else
                     f"{r['trials']:>6} {r['wall_s']:>7.1f} {r['trials_per_hour']:>11,}"))
    return lines


def targets_table(rows, quick):
    head = f"{'target':<38} {'measured':>9} {'limit':>9}  status"
    lines = ['targets' + (' (--quick: fewer iterations, indicative only)' if quick else ''), head, '-' * len(head)]
    for what, value, limit, unit in rows:
        status = 'n/a' if value is None else ('PASS' if value <= limit else 'FAIL')
        lines.append(f"{what:<38} {fmt(value, '9.3f'):>9} {limit:>9.3f}  {status} ({unit})")
    return lines


def report(results):
    m = results['machine']
    lines = [f"code {m['code'] or 'unknown'}; machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
             f"gpu {m['gpu'] or 'none'}; "
             f"load average {m['load_avg_start']:.2f} at start, {m['load_avg_end']:.2f} at end",
             f"imports: torch + train.py {m['import_train_s']:.2f} s; torch._dynamo, imported lazily by the first "
             f"optimizer of each process (inside train()), {m['lazy_dynamo_import_s']:.2f} s"]
    if m['load_avg_start'] > 0.5 * m['cores']:  # the end value counts this benchmark's own children
        lines.append(f"WARNING: the 1-min load average was {m['load_avg_start']:.2f} before the benchmark started: "
                     f"other work (or a run just before) was using the CPU, so the timings may be inflated")
    lines += [''] + build_table(results['builds']) + [''] + training_table(results['training'])
    paper = results['paper']
    lines += [''] + (paper['table'] if 'table' in paper else [f"paper scale: error: {paper['error']}"])
    if results['agents']:
        lines += [''] + agents_table(results['agents'])
    return '\n'.join(lines + [''] + targets_table(results['targets'], results['quick']))


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='a fast smoke run (fewer iterations, no CPU G(5000,5))')
    parser.add_argument('--json', metavar='PATH', default=os.path.join(BENCH, 'results.json'))
    parser.add_argument('--agents', metavar='LIST', default='',
                        help='also measure trials/hour with these numbers of concurrent agents, e.g. 1,2,4')
    parser.add_argument('--threads', type=int, default=0,
                        help="torch threads in each training child (default: torch's own, one per core); "
                             "1 gives steadier numbers on a machine that others are using")
    parser.add_argument('--only', metavar='LETTERS', default='abcd', help='training configs to run, e.g. ad')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(json.loads(args.child))
    results = dict(quick=args.quick, threads=args.threads or None, machine=machine())
    cuda = results['machine']['gpu'] is not None
    results['builds'] = bench_builds()
    results['training'] = bench_training(args.quick, cuda, args.threads, args.only)
    results['paper'] = bench_paper_scale()
    results['agents'] = bench_agents([int(k) for k in args.agents.split(',')], args.quick) if args.agents else []
    results['machine']['load_avg_end'] = os.getloadavg()[0]
    results['targets'] = targets(results['builds'], results['training'])
    with open(args.json, 'w') as f:
        json.dump(results, f, indent=1)
    print(report(results))


if __name__ == '__main__':
    main()
