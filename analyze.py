"""
Geometry diagnostics of a trained path-star model: does a leaf's embedding point at its own arm?

    python3 analyze.py out/ckpt.pt                    # metrics table, PNGs, geometry.json, graph.json next to ckpt.pt
    python3 analyze.py out/ckpt.pt --out_dir=plots --max_arms=64 --k=16

The command line over pathstar.analysis: star.py (the star's closed-form metrics and plots) and
report.py (every graph family's spectrum and edge recovery); README's "Geometry diagnostics" says
what each number means.
"""
import argparse
import os
import re
import sys

import torch

from configurator import UserError, exit_on_user_error
from pathstar.analysis import plots, report, star
from pathstar.cli import ArgumentParser


def positive_int(text):
    if not re.fullmatch(r'[0-9]+', text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def parse_cli(argv):
    p = ArgumentParser(prog='analyze.py', allow_abbrev=False, description=__doc__.strip().splitlines()[0])
    p.add_argument('checkpoint', help="a ckpt.pt written by train.py")
    p.add_argument('--out_dir', help="for the PNGs and geometry.json (default: the checkpoint's folder)")
    p.add_argument('--max_arms', type=positive_int, default=star.MAX_ARMS,
                   help=f"heatmap columns; half of them are held-out rows (default: {star.MAX_ARMS})")
    p.add_argument('--k', type=positive_int, default=star.LAPLACIAN_K,
                   help=f"low Laplacian eigenvectors for the alignment (default: {star.LAPLACIAN_K})")
    return p.parse_args(argv)


def print_table(metrics, meta, laplacian_k=star.LAPLACIAN_K):
    chance = 1.0 / meta['d'] if meta['d'] else float('nan')
    # two different k: the star's closed-form alignment (--k) and graph_spectrum.png's lowest quarter
    notes = {'nearest_first_hop_accuracy': f'chance {chance:.3f}',
             'model/val_first_hop_accuracy': f'chance {chance:.3f}',
             'diagonal_margin': 'cosine, > 0 = own arm wins',
             'laplacian_k': f'--k={laplacian_k} widened to whole eigenspaces',
             'spectral_k': "lowest quarter widened; graph_spectrum.png's k"}
    print(f"{'metric':<46}{'value':>9}  note")
    for key, value in metrics.items():
        if key.endswith('_random'):
            continue
        note = next((v for k, v in notes.items() if key.endswith(k)), '')
        if key + '_random' in metrics:
            note = f"random {metrics[key + '_random']:.3f}"
        shown = f'{value:>9.3f}' if isinstance(value, float) else f'{value:>9}'
        print(f"{key:<46}{shown}  {note}".rstrip())


@torch.no_grad()
def main(argv):
    args = parse_cli(argv)
    ckpt_path = args.checkpoint
    if os.path.isdir(ckpt_path):
        raise UserError(f"checkpoint {ckpt_path} is a folder; name its ckpt.pt or best.pt")
    if not os.path.isfile(ckpt_path):
        raise UserError(f"checkpoint not found: {ckpt_path}")
    out_dir = args.out_dir or os.path.dirname(os.path.abspath(ckpt_path))
    plots.check_out_dir(out_dir, given=bool(args.out_dir))  # before the minutes of work, not after
    model, ckpt, meta = star.load_checkpoint(ckpt_path)
    title = star.run_title(ckpt['model_args'], ckpt['config'], ckpt.get('iter_num', '?'))
    is_star = meta['graph'] == 'star'
    metrics = star.geometry_metrics(model, meta, k=args.k) if is_star else {}
    if meta['num_paths']:
        metrics['model/val_first_hop_accuracy'] = star.model_first_hop_accuracy(model, meta)
    json_path = os.path.join(out_dir, 'geometry.json')
    try:  # each file is renamed into place whole; a disk that fills up now is still one line
        pngs = star.geometry_plots(model, meta, out_dir, title, max_arms=args.max_arms) if is_star else {}
        general, graph_pngs = report.of_checkpoint(model, ckpt['config'], meta, out_dir, title)
        metrics.update(general)
        pngs.update(graph_pngs)
        plots.write_json(dict(metrics, checkpoint=os.path.abspath(ckpt_path), iter=ckpt.get('iter_num'), title=title,
                        pngs=pngs), json_path)
    except OSError as e:
        raise UserError(f"cannot write into {out_dir!r}: {e.strerror or type(e).__name__}") from None
    print(f"{ckpt_path}: {title}")
    print_table(metrics, meta, args.k)
    for name, path in pngs.items():
        print(f"wrote {path}")
    if graph_pngs:
        print(f"wrote {os.path.join(out_dir, 'graph.json')}")
    print(f"wrote {json_path}")



if __name__ == '__main__':
    exit_on_user_error(lambda: main(sys.argv[1:]))
