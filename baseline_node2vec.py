"""
The "Node2Vec" baseline of the official notebooks: a node embedding trained only to predict each
node's graph neighbours, then the same geometry report as a transformer's.

    python3 baseline_node2vec.py --graph_d=5 --graph_l=4           # writes out/node2vec_star/
    python3 baseline_node2vec.py config/x.py --n2v_epochs=2000 --out_dir=plots/n2v

Not random walks: as in the official code, one tied embedding E (n, dim), N(0, 1) init, trained
full batch with plain SGD (E -= lr * grad) on
    loss = sum over nodes u with a neighbour of  mean over neighbours v of  -log softmax(E[u] @ E.T)[v]
(the softmax over all nodes; neighbours both ways; with add_self_edges a node is its own neighbour).
Every --n2v_interval epochs the geometric top-k edge recovery is recorded for the dynamics plot.
It writes graph.json and graph_*.png, the same files and names as analyze.py's report of any graph.
The --n2v_* flags and --out_dir belong to this command; everything else is a config key.
"""
import argparse
import math
import os
import sys
import time

from configurator import exit_on_user_error
from pathstar import graphs
from pathstar.analysis import geometry as graph_geometry
from pathstar.analysis.node2vec import DIM, EPOCHS, INTERVAL, LR, SEED, Diverged, train_node2vec
from pathstar.analysis.plots import check_out_dir
from pathstar.cli import ArgumentParser
from pathstar.errors import UserError
from pathstar.validate import parse_args

def positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def natural_int(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def split_flags(argv):
    """(this command's flags, the rest for validate.parse_args)."""
    p = ArgumentParser(prog='baseline_node2vec.py', allow_abbrev=False, description=__doc__.strip().splitlines()[0])
    p.add_argument('--n2v_epochs', type=natural_int, default=EPOCHS, help=f"(default {EPOCHS})")
    p.add_argument('--n2v_dim', type=positive_int, default=DIM, help=f"embedding size (default {DIM})")
    p.add_argument('--n2v_lr', type=positive_float, default=LR, help=f"SGD step (default {LR})")
    p.add_argument('--n2v_seed', type=natural_int, default=SEED, help=f"(default {SEED})")
    p.add_argument('--n2v_interval', type=positive_int, default=INTERVAL,
                   help=f"epochs between history points (default {INTERVAL})")
    p.add_argument('--out_dir', help="for graph.json and the graph_*.png (default out/node2vec_<graph family>)")
    return p.parse_known_args(argv)


def print_table(metrics):
    print(f"{'metric':<48}{'value':>9}  {'random':>9}")
    for key, value in metrics.items():
        if key.endswith('_random'):
            continue
        random = metrics.get(f'{key}_random')
        tail = f"  {random:>9.3f}" if random is not None else ''
        print(f"{key:<48}{value:>9.3f}{tail}" if isinstance(value, float) else f"{key:<48}{value:>9}")


def main(argv):
    args, rest = split_flags(argv)
    cfg = parse_args(rest)
    graph = graphs.build(cfg)
    out_dir = args.out_dir or os.path.join('out', f'node2vec_{graph.family}')
    check_out_dir(out_dir, given=True)  # before the training, not after
    self_edges = bool(cfg.get('add_self_edges', False))
    start = time.time()
    try:
        emb, history = train_node2vec(graph, args.n2v_epochs, args.n2v_dim, args.n2v_lr, args.n2v_seed, self_edges,
                                      args.n2v_interval)
    except Diverged as e:  # nothing is written: the report needs a finite embedding
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    seconds = time.time() - start
    title = (f"Node2Vec baseline | {graph.family}, {graph.n} nodes, {len(graph.edges)} edges | "
             f"{args.n2v_epochs} epochs, dim {args.n2v_dim}, lr {args.n2v_lr}, seed {args.n2v_seed}")
    try:
        metrics, pngs = graph_geometry.write_report(emb, graph, out_dir, title, self_edges=self_edges,
                                                    history=history)
    except OSError as e:
        raise UserError(f"cannot write into {out_dir!r}: {e.strerror or type(e).__name__}") from None
    print(f"{title}\ntrained in {seconds:.1f} s, final loss {history[-1]['loss']:.4f}")
    print_table(metrics)
    for path in list(pngs.values()) + [os.path.join(out_dir, 'graph.json')]:
        print(f"wrote {path}")


if __name__ == '__main__':
    exit_on_user_error(lambda: main(sys.argv[1:]))
