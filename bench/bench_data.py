"""
How long a cold build of the path-star dataset takes, and how much memory it needs.

    python3 bench/bench_data.py                  # l=5, defaults, d = 1e3 .. 1e6
    python3 bench/bench_data.py --max_d=100000 --json bench.json

Each size runs load_or_build in a fresh subprocess, into an empty temp data_dir,
so its peak RSS (the child's own ru_maxrss) counts only that build and its load.
The table comes last.
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
SIZES = (10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6)


def child(d, data_dir):
    """Runs in the subprocess: one cold load_or_build, one JSON line on stdout."""
    import pathstar_data
    start = time.time()
    data = pathstar_data.load_or_build(dict(graph_d=d, graph_l=5, data_dir=data_dir), verbose=False)
    seconds = time.time() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps(dict(
        d=d, nodes=data.meta['num_nodes'], train_rows=len(data.train_rows), val_rows=len(data.val_rows),
        seconds=round(seconds, 3), build_seconds=round(data.build_seconds, 3),
        peak_rss_mb=round(peak_kb / 1024, 1), disk_bytes=pathstar_data.folder_bytes(data.path),
        dtype=data.meta['dtype'])))


def run_one(d):
    with tempfile.TemporaryDirectory(prefix='bench_pathstar_') as data_dir:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', str(d), data_dir],
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results):
    head = f"{'d':>9} {'nodes':>10} {'train rows':>12} {'seconds':>8} {'peak RSS MB':>12} {'bytes on disk':>14}"
    lines = [head, '-' * len(head)]
    for r in results:
        lines.append(f"{r['d']:>9,} {r['nodes']:>10,} {r['train_rows']:>12,} {r['seconds']:>8.2f} "
                     f"{r['peak_rss_mb']:>12.1f} {r['disk_bytes']:>14,}")
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--max_d', type=int, default=SIZES[-1], help='largest graph_d to build')
    parser.add_argument('--json', metavar='PATH', help='also write the results here')
    parser.add_argument('--child', nargs=2, metavar=('D', 'DATA_DIR'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(int(args.child[0]), args.child[1])
    results = []
    for d in [d for d in SIZES if d <= args.max_d]:
        results.append(run_one(d))
        print(f"d={d:,}: {results[-1]['seconds']:.2f} s", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    print(table(results))


if __name__ == '__main__':
    main()
