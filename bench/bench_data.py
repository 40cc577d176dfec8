"""
How long a cold build of the path-star dataset takes, and how much memory it needs.

    python3 bench/bench_data.py                  # l=5, defaults, d = 1e3 .. 1e6, then in-context G(5,5) x 1e6
    python3 bench/bench_data.py --max_d=100000 --in_context_rows=0 --json bench.json

Each size runs load_or_build in a fresh subprocess, into an empty temp data_dir,
so its peak RSS (the child's own VmHWM) counts only that build and its load.
The last row is the in-context task (pathstar/data/incontext.py): in_context_rows sequences, each
its own G(5,5), and 10**4 validation graphs. The table comes last.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from pathstar.data import cache, inweights  # noqa: E402  (the repo is on sys.path from here)
SIZES = (10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6)
IN_CONTEXT = dict(task='in_context', graph_d=5, graph_l=5, num_val_graphs=10 ** 4)


def child(cfg):
    """Runs in the subprocess: one cold load_or_build of a checked config (the parent checks it, so the child's
    peak RSS is the build's, without torch, which the check imports), one JSON line on stdout."""
    start = time.time()
    data = cache.load_or_build(json.loads(cfg), verbose=False)
    seconds = time.time() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps(dict(
        task=data.meta.get('task', 'in_weights'),
        d=data.meta['d'], nodes=data.meta['num_nodes'], train_rows=len(data.train_rows), val_rows=len(data.val_rows),
        seconds=round(seconds, 3), build_seconds=round(data.build_seconds, 3),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),  # the whole child, imports too: on a shared
        # machine this says what the build costs when the wall clock says how busy the machine was
        peak_rss_mb=round(peak_rss_mb(), 1), disk_bytes=inweights.folder_bytes(data.path),
        dtype=data.meta['dtype'])))


def peak_rss_mb():
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not inherit the parent's RSS across fork + exec)."""
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) for line in f if line.startswith('VmHWM:')) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_one(d, in_context_rows=0):
    with tempfile.TemporaryDirectory(prefix='bench_pathstar_') as data_dir:
        cfg = dict(IN_CONTEXT, num_train_graphs=in_context_rows) if in_context_rows else dict(graph_d=d, graph_l=5)
        from pathstar import validate  # here, not at the top: the child runs this file, and validate imports torch
        checked = json.dumps(validate.build_config(dict(cfg, data_dir=data_dir)))
        out = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', checked], capture_output=True,
                             text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results):
    head = (f"{'task':>10} {'d':>9} {'nodes':>10} {'train rows':>12} {'seconds':>8} {'CPU s':>6} {'peak RSS MB':>12} "
            f"{'bytes on disk':>14}")
    lines = [head, '-' * len(head)]
    for r in results:
        lines.append(f"{r['task']:>10} {r['d']:>9,} {r['nodes']:>10,} {r['train_rows']:>12,} {r['seconds']:>8.2f} "
                     f"{r['cpu_seconds']:>6.2f} {r['peak_rss_mb']:>12.1f} {r['disk_bytes']:>14,}")
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--max_d', type=int, default=SIZES[-1], help='largest graph_d to build')
    parser.add_argument('--json', metavar='PATH', help='also write the results here')
    parser.add_argument('--in_context_rows', type=int, default=10 ** 6,
                        help='in-context G(5,5) sequences to build last (0 = skip)')
    parser.add_argument('--child', metavar='CONFIG_JSON', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    results = []
    for d in [d for d in SIZES if d <= args.max_d]:
        results.append(run_one(d))
        print(f"d={d:,}: {results[-1]['seconds']:.2f} s", flush=True)
    if args.in_context_rows:
        results.append(run_one(5, args.in_context_rows))
        print(f"in-context G(5,5) x {args.in_context_rows:,}: {results[-1]['seconds']:.2f} s", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    print(table(results))


if __name__ == '__main__':
    main()
