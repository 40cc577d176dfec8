"""
Plotting and file helpers the analysis modules share: matplotlib with the Agg backend (imported only
when a plot is drawn, so importing this module imports no matplotlib), PNGs and JSON written whole.
May import: pathstar.errors, numpy and the standard library.
"""
import json
import os

import numpy as np

from pathstar.errors import UserError

DPI = 120                # of the PNGs
EPS = 1e-12              # floor of a norm before dividing by it
EIGEN_TOL = 1e-9         # eigenvalues closer than this are one (degenerate) level
MIN_COLOUR_SCALE = 0.05  # smallest |cosine| the heatmap colours span (so noise near 0 is not saturated)


def pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save_figure(plt, fig, path):
    """Save as a PNG under a temp name, then rename: a reader (or a kill) never sees half a file."""
    tmp = f'{path}.tmp-{os.getpid()}'
    try:
        fig.savefig(tmp, dpi=DPI, format='png')
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def pca_2d(x):
    """Coordinates of the rows of x (few rows, many columns) on their top-2 principal components,
    from the small rows x rows Gram matrix: its eigenvectors scaled by sqrt(eigenvalue)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(x @ x.T)
    top = np.argsort(values)[::-1][:2]
    return vectors[:, top] * np.sqrt(np.clip(values[top], 0, None))


def write_json(obj, path):
    """Atomically (temp file + rename); NaN (no held-out arms) becomes null, which is valid JSON."""
    obj = {k: None if isinstance(v, float) and v != v else v for k, v in obj.items()}
    tmp = f'{path}.tmp-{os.getpid()}'
    try:
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_out_dir(out_dir, given):
    """out_dir must be a folder we can write, or creatable as one: checked before any work."""
    path = os.path.abspath(out_dir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
        where = f"--out_dir {out_dir!r}" if given else f"the checkpoint's folder {out_dir!r}"
        what = 'not writable' if os.path.isdir(path) else 'a file, not a folder'
        hint = '' if given else '; pick another with --out_dir'
        raise UserError(f"cannot write into {where}: {path} is {what}{hint}")
