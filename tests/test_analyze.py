"""analyze.py: geometry diagnostics on hand-built embeddings whose answer is known, and the CLI end to end."""
import errno
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

import analyze
from pathstar.analysis import plots, star
import pathstar_data
import train
from model import GPT, GPTConfig
from conftest import ROOT, cli_result, tiny_config
from conftest import checked

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def star_paths(d, l, offset=0):
    """Token ids laid out as in pathstar_data: node i of node_tokens order is token offset + i."""
    m = l - 1
    paths = np.empty((d, l), np.int64)
    paths[:, 0] = offset
    paths[:, 1:] = offset + 1 + np.arange(d * m).reshape(d, m)
    return paths


def clustered_embeddings(d, l, noise=0.0, seed=0):
    """Every node of arm a is the unit vector e_a (plus noise); the root is e_d. Orthogonal across arms."""
    rng = np.random.default_rng(seed)
    m = l - 1
    emb = np.zeros((d * m + 1, d + 1))
    emb[0, d] = 1.0
    for a in range(d):
        emb[1 + a * m:1 + (a + 1) * m, a] = 1.0
    return torch.tensor(emb + noise * rng.standard_normal(emb.shape), dtype=torch.float32)


def dense_laplacian(d, l):
    """The reference L = D - A (N, N) of the undirected path-star, nodes in node_tokens order."""
    m, n = l - 1, d * (l - 1) + 1
    arm_nodes = 1 + np.arange(d * m).reshape(d, m)
    parents = np.concatenate([np.zeros((d, 1), np.int64), arm_nodes[:, :-1]], axis=1).ravel()
    children = arm_nodes.ravel()
    adj = np.zeros((n, n))
    adj[parents, children] = adj[children, parents] = 1.0
    return np.diag(adj.sum(1)) - adj


def low_eigenvectors(d, l, k):
    """Columns 1..k of the dense eigendecomposition (column 0 is the constant)."""
    _, vectors = np.linalg.eigh(dense_laplacian(d, l))
    return vectors[:, 1:k + 1]


def diagonal_margin(sim):
    """The reference margin on a full similarity matrix: per row i, sim[i, i] minus the largest other entry."""
    sim = torch.as_tensor(sim).float()
    rows = torch.arange(sim.size(0))
    others = sim.clone()
    others[rows, rows] = -float('inf')
    return sim[rows, rows] - others.max(dim=1).values


def geometric_accuracy(emb, paths, arms):
    """Fraction of the leaves of `arms` whose nearest first hop is their own arm's."""
    return (star.first_hop_margins(emb, paths, arms) > 0).float().mean().item()


# -----------------------------------------------------------------------------
# leaf x first hop


def test_clustered_arms_give_a_large_margin_and_perfect_geometric_accuracy():
    d, l = 12, 5
    emb, paths = clustered_embeddings(d, l, noise=0.05), star_paths(d, l)
    arms = np.array([3, 7, 11])
    sim, cols = star.leaf_first_hop_similarity(emb, paths, arms)
    assert sim.shape == (3, d) and cols[:3].tolist() == [3, 7, 11] and sorted(cols.tolist()) == list(range(d))
    margin = diagonal_margin(sim)
    assert (margin > 0.5).all()
    assert geometric_accuracy(emb, paths, arms) == 1.0
    assert geometric_accuracy(emb, paths, np.arange(d)) == 1.0


def test_margins_against_all_arms_equal_the_heatmap_diagonal_margin():
    d, l = 30, 4
    emb, paths = torch.randn(d * 3 + 1, 16, generator=torch.Generator().manual_seed(0)), star_paths(d, l)
    arms = np.array([0, 5, 29])
    sim, _ = star.leaf_first_hop_similarity(emb, paths, arms)
    chunked = star.first_hop_margins(emb, paths, arms, chunk=2)  # chunks must not change the answer
    assert torch.allclose(diagonal_margin(sim), chunked, atol=1e-6)


def test_first_hop_margins_on_known_cosines():
    # d = 3, l = 2: leaf of arm a is token 4 + a; first hops 1, 2, 3 are e_0, e_1, e_2
    paths = np.array([[0, 1, 4], [0, 2, 5], [0, 3, 6]])
    emb = torch.zeros(7, 3)
    emb[1:4] = torch.eye(3)
    emb[4], emb[5] = torch.tensor([0.9, 0.2, 0.5]), torch.tensor([0.1, 0.3, 0.4])
    unit = [emb[4] / emb[4].norm(), emb[5] / emb[5].norm()]
    want = torch.stack([unit[0][0] - unit[0][2], unit[1][1] - unit[1][2]])
    assert torch.allclose(star.first_hop_margins(emb, paths, [0, 1]), want)
    assert torch.allclose(diagonal_margin(torch.stack(unit)), want)  # the reference agrees


def test_random_embeddings_give_chance_geometric_accuracy():
    # each leaf's nearest first hop is uniform over d arms: the hit count over `seeds` x d leaves
    # is close to Binomial(n, 1/d); accept mean within 4 standard deviations of 1/d
    d, l, seeds = 200, 3, 8
    hits = []
    for seed in range(seeds):
        emb = torch.randn(d * (l - 1) + 1, 64, generator=torch.Generator().manual_seed(seed))
        hits.append(geometric_accuracy(emb, star_paths(d, l), np.arange(d)))
    n, p = seeds * d, 1.0 / d
    assert abs(np.mean(hits) - p) < 4 * np.sqrt(p * (1 - p) / n)
    margins = star.first_hop_margins(emb, star_paths(d, l), np.arange(d))
    assert margins.mean() < 0  # the best of 199 others beats a random own arm


# -----------------------------------------------------------------------------
# the Laplacian


@pytest.mark.parametrize('d,l', [(2, 2), (4, 3), (7, 6)])
def test_laplacian_is_symmetric_with_zero_row_sums_and_one_zero_eigenvalue(d, l):
    lap = dense_laplacian(d, l)
    n = d * (l - 1) + 1
    assert lap.shape == (n, n) and np.array_equal(lap, lap.T)
    assert np.allclose(lap.sum(axis=1), 0)
    assert lap[0, 0] == d and lap[n - 1, n - 1] == 1  # the root has d neighbours, a leaf one
    assert np.sum(np.abs(np.linalg.eigvalsh(lap)) < 1e-9) == 1  # connected


@pytest.mark.parametrize('d,l', [(2, 2), (4, 3), (10, 5), (7, 6)])
def test_the_closed_form_spectrum_matches_dense_eigh(d, l):
    dense = np.linalg.eigvalsh(dense_laplacian(d, l))
    closed = sorted([0.0] + [value for value, _, _, mult in star.laplacian_levels(d, l) for _ in range(mult)])
    assert np.allclose(closed, dense, atol=1e-9)


def test_k_is_widened_to_whole_eigenspaces():
    # G(10, 5): eigenvalue 0.12 has 9 vectors (arm level), then one 'star' vector at 0.56
    assert star.lowest_levels(10, 5, 1)[1] == 9
    assert star.lowest_levels(10, 5, 9)[1] == 9
    assert star.lowest_levels(10, 5, 10)[1] == 10
    assert star.lowest_levels(10, 5, 11)[1] == 19


@pytest.mark.parametrize('k', [9, 10, 19])
def test_alignment_equals_a_dense_projection(k):
    d, l = 10, 5
    x = torch.randn(d * 4 + 1, 24, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    basis = low_eigenvectors(d, l, k)
    xc = x.numpy() - x.numpy().mean(0)
    dense = np.sum((basis.T @ xc) ** 2) / np.sum(xc ** 2)
    got = star.laplacian_alignment(x, d, l, k)
    assert got['k'] == k and got['alignment'] == pytest.approx(dense, rel=1e-9)


def test_embeddings_spanned_by_low_eigenvectors_are_fully_aligned():
    d, l, k = 20, 5, 19
    basis = low_eigenvectors(d, l, k)
    mix = np.random.default_rng(0).standard_normal((k, 32))  # any embedding inside the span
    got = star.laplacian_alignment(basis @ mix, d, l, k)
    assert got['alignment'] == pytest.approx(1.0, abs=1e-9)
    assert got['random'] == pytest.approx(19 / 80) and got['ratio'] > 4


def test_random_embeddings_align_like_a_random_subspace():
    d, l, k = 40, 5, 39
    x = torch.randn(d * 4 + 1, 2048, generator=torch.Generator().manual_seed(0))
    got = star.laplacian_alignment(x, d, l, k)
    assert got['random'] == pytest.approx(39 / 160)
    assert got['alignment'] == pytest.approx(got['random'], rel=0.05)  # sd ~ sqrt(2 / (k C)) relative
    assert got['ratio'] == pytest.approx(1.0, rel=0.05)


def test_clustered_arms_are_aligned_with_the_low_eigenvectors():
    got = star.laplacian_alignment(clustered_embeddings(40, 5), 40, 5, 16)
    assert got['k'] == 39 and got['ratio'] > 3


# -----------------------------------------------------------------------------
# metrics of a model, speed, and the CLI


def test_graph_meta_is_what_load_or_build_draws(tmp_path):
    cfg = tiny_config(tmp_path, graph_d=9, graph_l=4)
    meta, built = star.graph_meta(checked(cfg)), pathstar_data.load_or_build(cfg, verbose=False).meta
    assert np.array_equal(meta['paths'], built['paths']) and np.array_equal(meta['holdout_arms'], built['holdout_arms'])
    assert meta['vocab_size'] == built['vocab_size']


def test_geometry_metrics_names_and_speed_at_d1000(tmp_path):
    meta = star.graph_meta(checked(tiny_config(tmp_path, graph_d=1000, graph_l=5)))
    net = GPT(GPTConfig(vocab_size=meta['vocab_size'], block_size=16, n_layer=1, n_embd=128))
    metrics = star.geometry_metrics(net, meta)
    assert set(metrics) == {'geometry/diagonal_margin', 'geometry/nearest_first_hop_accuracy',
                            'geometry/train_diagonal_margin', 'geometry/train_nearest_first_hop_accuracy',
                            'geometry/laplacian_alignment', 'geometry/laplacian_alignment_random',
                            'geometry/laplacian_alignment_ratio', 'geometry/laplacian_k'}
    assert metrics['geometry/nearest_first_hop_accuracy'] < 0.05  # an untrained model is near chance


def test_importing_analyze_imports_neither_wandb_nor_matplotlib():
    code = 'import sys, analyze; print("wandb" in sys.modules, "matplotlib" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ['False', 'False'], out.stderr


def run_cli(*args):
    """python3 analyze.py args in the repo, in this process (conftest.run_cli)."""
    return cli_result(analyze.main, [str(a) for a in args], ROOT)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(checkpoint path, train summary) of a tiny run, shared by the CLI tests."""
    folder = tmp_path_factory.mktemp('trained')
    summary = train.train(tiny_config(folder, epochs=5, eval_interval=100))
    return folder / 'out' / 'ckpt.pt', summary


def tree(folder):
    return sorted(os.path.relpath(os.path.join(top, name), folder)
                  for top, dirs, files in os.walk(folder) for name in dirs + files)


def test_cli_on_a_trained_checkpoint_writes_pngs_and_json(trained, tmp_path):
    ckpt, summary = trained
    out = run_cli(ckpt, '--out_dir', tmp_path / 'geo', '--max_arms=8')
    assert out.returncode == 0, out.stderr
    assert 'geometry/nearest_first_hop_accuracy' in out.stdout
    for name in ('geometry_heatmap.png', 'geometry_projection.png'):
        assert (tmp_path / 'geo' / name).read_bytes()[:8] == PNG_MAGIC
    assert tree(tmp_path / 'geo') == ['geometry.json', 'geometry_heatmap.png', 'geometry_projection.png', 'graph.json',
                                      'graph_fiedler.png', 'graph_similarity.png', 'graph_spectrum.png']  # no temps
    saved = json.loads((tmp_path / 'geo' / 'geometry.json').read_text())
    for key in ('geometry/diagonal_margin', 'geometry/nearest_first_hop_accuracy',
                'geometry/train_nearest_first_hop_accuracy', 'geometry/laplacian_alignment',
                'geometry/laplacian_alignment_ratio', 'model/val_first_hop_accuracy', 'pngs', 'iter'):
        assert key in saved, key
    assert saved['model/val_first_hop_accuracy'] == summary['val/accuracy/first_hop_teacher_forced']


def readme_analyze_files():
    """The file names (`*.png`, `*.json`) README's analyze.py section lists."""
    with open(os.path.join(ROOT, 'README.md')) as f:
        text = f.read()
    start = text.index('## Geometry diagnostics (`analyze.py`)')
    return set(re.findall(r'`(\w+\.(?:png|json))`', text[start:text.index('\n## ', start)]))


def test_cli_writes_exactly_the_files_readme_lists_and_says_so(trained, tmp_path, capsys):
    ckpt, _ = trained
    assert run_main([str(ckpt), '--out_dir', str(tmp_path / 'geo')]) == 0
    written = set(os.listdir(tmp_path / 'geo'))
    assert written == readme_analyze_files() and 'graph.json' in written
    printed = capsys.readouterr().out
    assert {line.removeprefix(f'wrote {tmp_path / "geo"}{os.sep}') for line in printed.splitlines()
            if line.startswith('wrote ')} == written


def test_the_table_tells_the_two_ks_apart(trained, tmp_path, capsys):
    """laplacian_k (the star's --k) and spectral_k (graph_spectrum.png's) stood side by side unexplained."""
    ckpt, _ = trained
    assert run_main([str(ckpt), '--out_dir', str(tmp_path / 'geo'), '--k=2']) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith('geometry/')}
    assert rows['geometry/laplacian_k'].endswith('--k=2 widened to whole eigenspaces')
    assert rows['geometry/spectral_k'].endswith("graph_spectrum.png's k")


def test_cli_bad_checkpoint_path_is_one_line_and_exit_2():
    out = run_cli('no/such/ckpt.pt')
    assert out.returncode == 2 and out.stderr.strip() == 'error: checkpoint not found: no/such/ckpt.pt'
    assert 'Traceback' not in out.stderr


def run_main(argv):
    """analyze.py's main in-process, as the CLI wraps it: its exit code."""
    from configurator import exit_on_user_error
    try:
        exit_on_user_error(lambda: analyze.main(argv))
    except SystemExit as e:
        return e.code
    return 0


@pytest.mark.parametrize('args,message', [
    ([], 'the following arguments are required: checkpoint'),
    (['x.pt', '--max_arms=0'], "argument --max_arms: expected an integer >= 1, got '0'"),
    (['x.pt', '--k=2.5'], "argument --k: expected an integer >= 1, got '2.5'"),
    (['x.pt', '--k'], 'argument --k: expected one argument'),
    (['x.pt', '--colour=red'], 'unrecognized arguments: --colour=red'),
    (['x.pt', '--max=8'], 'unrecognized arguments: --max=8'),  # no abbreviations: a typo is not guessed
    (['a.pt', 'b.pt'], 'unrecognized arguments: b.pt'),
])
def test_cli_user_errors_are_one_line_and_exit_2(args, message, capsys):
    assert run_main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith('error: ') and message in err


def test_cli_help_lists_the_options_and_exits_0(capsys):
    assert run_main(['--help']) == 0
    out = capsys.readouterr()
    assert out.err == '' and all(option in out.out for option in ('checkpoint', '--out_dir', '--max_arms', '--k'))


def test_cli_rejects_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / 'ckpt.pt'
    bad.write_text('not a checkpoint')
    assert run_main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'cannot read checkpoint' in err


def test_cli_out_dir_under_a_file_is_one_line_exit_2_before_reading_the_checkpoint(tmp_path, capsys):
    # the checkpoint is not one either: had analyze.py read it first, the error would be about it
    (tmp_path / 'ckpt.pt').write_text('not a checkpoint')
    (tmp_path / 'blocker').write_text('a file')
    before = tree(tmp_path)
    out_dir = tmp_path / 'blocker' / 'geo' / 'deeper'
    out = run_cli(tmp_path / 'ckpt.pt', f'--out_dir={out_dir}')
    assert out.returncode == 2 and out.stdout == '' and 'Traceback' not in out.stderr
    assert out.stderr.strip() == (f"error: cannot write into --out_dir '{out_dir}': "
                                  f"{tmp_path / 'blocker'} is a file, not a folder")
    assert run_main([str(tmp_path / 'ckpt.pt'), f'--out_dir={tmp_path / "blocker"}']) == 2  # out_dir is the file
    assert 'is a file, not a folder' in capsys.readouterr().err
    assert tree(tmp_path) == before


def read_only_folders_block_writes():
    """False as root (with CAP_DAC_OVERRIDE), where a chmod 555 folder still takes new files."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o555)
        try:
            open(os.path.join(folder, 'probe'), 'w').close()
            return False
        except PermissionError:
            return True
        finally:
            os.chmod(folder, 0o755)


@pytest.mark.skipif(not read_only_folders_block_writes(), reason='root writes into read-only folders')
@pytest.mark.parametrize('given', [True, False])
def test_cli_read_only_out_dir_is_one_line_exit_2_and_nothing_written(trained, tmp_path, given, monkeypatch, capsys):
    ckpt, _ = trained
    folder = tmp_path / 'ro'
    folder.mkdir()
    if not given:  # the default out_dir is the checkpoint's folder
        ckpt = folder / 'ckpt.pt'
        ckpt.write_bytes(trained[0].read_bytes())
    monkeypatch.setattr(star, 'load_checkpoint', lambda path: pytest.fail('read before the out_dir check'))
    folder.chmod(0o555)
    try:
        assert run_main([str(ckpt)] + ([f'--out_dir={folder / "geo"}'] if given else [])) == 2
        assert tree(folder) == ([] if given else ['ckpt.pt'])
    finally:
        folder.chmod(0o755)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f'{folder} is not writable' in err
    assert ('--out_dir' in err) and (given or "the checkpoint's folder" in err)


def test_a_write_that_fails_midway_is_one_line_and_leaves_no_partial_file(trained, tmp_path, monkeypatch, capsys):
    def full_disk(self, path, **kwargs):
        with open(path, 'wb') as f:
            f.write(PNG_MAGIC)  # half a PNG, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    from matplotlib.figure import Figure
    monkeypatch.setattr(Figure, 'savefig', full_disk)
    assert run_main([str(trained[0]), f'--out_dir={tmp_path / "geo"}']) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: cannot write into '{tmp_path / 'geo'}': {os.strerror(errno.ENOSPC)}"
    assert tree(tmp_path / 'geo') == []  # neither the PNG nor its temp file


def test_pca_2d_matches_the_svd_up_to_sign():
    x = np.random.default_rng(0).standard_normal((30, 100)) * np.linspace(3, 0.1, 100)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    assert np.allclose(np.abs(plots.pca_2d(x)), np.abs(centred @ vt[:2].T))


# -----------------------------------------------------------------------------
# the named configs and the sweep


def test_pause_ablation_sweep_is_a_grid_over_pause_tokens_that_passes_the_sweep_checks():
    from pathstar.sweeps import space as sweep_space
    sweep = sweep_space.check_sweep(sweep_space.load_sweep_file(f'{ROOT}/config/pause_ablation_sweep.yaml'))
    assert sweep['method'] == 'grid' and sweep['metric'] == {'name': 'val/accuracy/path', 'goal': 'maximize'}
    assert sweep['parameters']['num_pause_tokens']['values'] == [0, 1, 3, 5, 10]
    assert sweep_space.check_combinations(sweep['parameters']) > 0
