"""reproduce.py's plumbing at a toy size: every contrast's sweeps run, tables and figures are written, a
rerun trains nothing; the geometry contrast's baselines are computed without a run."""
import json
import os

import pytest

import reproduce
from pathstar.experiments import contrasts, phase_diagram
from configurator import UserError

TINY = dict(graph_d=8, graph_l=3, graph_holdout_percentage=0.25, n_layer=1, n_head=2, n_embd=16, epochs=1,
            eval_interval=1000, log_interval=1000, eval_samples=4, device='cpu')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """--quick at a toy size (one iteration a run), in tmp_path."""
    monkeypatch.chdir(tmp_path)
    scale = contrasts.Scale('toy', (1,), (TINY,), ('config/in_context_cpu.py', dict(
        graph_l=3, n_embd=16, num_train_graphs=16, batch_size='auto', num_val_graphs=8, epochs=1, eval_interval=1000,
        eval_samples=4)), 'results/quick')
    monkeypatch.setitem(contrasts.SCALES, 'quick', scale)
    monkeypatch.setitem(contrasts.TINY, 'epochs', 2)  # the tiny-graph arms' own 500 epochs, cut
    return tmp_path


def trial_dirs(root):
    return sorted(d for d, _, files in os.walk(root / 'sweeps') if 'summary.json' in files)


def test_quick_runs_every_contrast_once_and_a_rerun_trains_nothing(toy, capsys):
    assert reproduce.main(['--quick']) == 0
    out = capsys.readouterr().out
    assert 'skipped' not in out
    results = toy / 'results' / 'quick'
    for c in contrasts.CONTRASTS:
        text = (results / f'{c.name}.md').read_text()
        assert text.count('| 1/1 |') == len(c.arms) and (results / f'{c.name}.png').stat().st_size > 0
    record = json.loads((results / 'reproduction.json').read_text())   # one seed a run: nothing is decided
    assert [r['name'] for r in record] == [c.name for c in contrasts.CONTRASTS]
    assert {r['verdict'] for r in record} == {'inconclusive'} and record[0]['arms'][0]['runs'][0]['data_seed'] == 1
    assert (results / 'reproduction.md').read_text().count('**inconclusive**') == len(contrasts.CONTRASTS) * 2
    geometry = (results / 'geometry.md').read_text()
    assert '| Node2Vec, grid | 0.99' in geometry and '| random, cycle |' in geometry  # computed, no run
    arms = sum(len(c.arms) for c in contrasts.CONTRASTS if c.name != 'geometry')
    runs = trial_dirs(toy)
    # the default arm is shared by 4 contrasts and trained once (pause_tokens' own, with its learning curve,
    # apart); geometry trains its 2 transformers only
    assert len(runs) == len(os.listdir(toy / 'sweeps' / 'reproduce' / 'quick')) == arms - 4 + 2
    table = (results / 'edge_directions.md').read_text()
    assert reproduce.main(['--quick', '--only', 'edge_directions']) == 0  # its sweeps are found again: nothing trains
    assert trial_dirs(toy) == runs and (results / 'edge_directions.md').read_text() == table
    again = json.loads((results / 'reproduction.json').read_text())  # one contrast's call keeps the others
    assert [r['name'] for r in again] == [r['name'] for r in record]


def test_tables_only_with_nothing_run_creates_nothing_and_overwrites_no_table(toy, capsys):
    results = toy / 'results' / 'quick'
    results.mkdir(parents=True)
    (results / 'edge_directions.md').write_text('the committed table\n')
    assert reproduce.main(['--quick', '--tables_only']) == 0
    assert not (toy / 'sweeps').exists()  # no sweep created, no trial queued
    assert sorted(os.listdir(results)) == ['edge_directions.md']
    assert (results / 'edge_directions.md').read_text() == 'the committed table\n'
    assert 'no finished runs yet' in capsys.readouterr().out


def test_tables_only_and_only_write_just_the_contrasts_asked_for(toy):
    assert reproduce.main(['--quick', '--only', 'edge_directions,format']) == 0
    (toy / 'results' / 'quick' / 'edge_directions.md').unlink()
    runs = trial_dirs(toy)
    assert reproduce.main(['--quick', '--only', 'edge_directions', '--tables_only']) == 0
    assert trial_dirs(toy) == runs
    text = (toy / 'results' / 'quick' / 'edge_directions.md').read_text()
    assert '| both directions |' in text and '| 1/1 |' in text
    assert not (toy / 'results' / 'quick' / 'reproduction.md').exists()


def test_the_phase_diagram_writes_its_tables_and_heatmaps_and_trains_a_shared_cell_once(toy, monkeypatch):
    monkeypatch.setitem(phase_diagram.PHASE, 'graph_d', [4, 8])
    monkeypatch.setitem(phase_diagram.PHASE, 'data_seed', [1])
    monkeypatch.setitem(phase_diagram.PHASE, 'panels', [
        dict(key='n_embd', values=[16]), dict(key='learning_rate', values=[1e-3, 1e-2]),
        dict(key='epochs', values=[1, 2], rows=[4], at=dict(n_embd=16))])
    monkeypatch.setitem(phase_diagram.PHASE, 'fixed', dict(TINY, graph_l=3, graph_holdout_percentage=0.5,
                                                           learning_rate=1e-3))
    monkeypatch.setitem(phase_diagram.PHASE, 'demos', [TINY])
    monkeypatch.setitem(phase_diagram.PHASE, 'demo_seeds', [1])
    assert reproduce.main(['--phase_diagram', 'gpt']) == 0
    assert not (toy / 'results' / 'phase_diagram_mamba.md').exists()
    text = (toy / 'results' / 'phase_diagram.md').read_text()
    assert text.count('| 4 (2, 0.250) |') == 6 and text.count('| 8 (4, 0.125) |') == 6  # 3 panels x 2 metrics
    assert '| graph_d (held-out leaves, chance) | learning_rate=0.001 | learning_rate=0.01 |' in text
    assert '## graph_d x epochs (n_embd=16, learning_rate=0.001)' in text
    assert text.count(' | - |\n') == 2  # the epochs panel trains graph_d=4 only: (8, 2 epochs) is empty
    assert text.count('\n| 1 | ') == 1
    # n_embd=16 at lr 1e-3 and 1 epoch is one cell of all three panels: 2 + 2 + 1 + 1 demo seed = 6 runs
    assert len(trial_dirs(toy)) == 6 and '5 runs on' in text
    assert (toy / 'results' / 'phase_diagram.png').stat().st_size > 0


def test_the_mamba_phase_diagram_measures_the_embedding_and_tests_each_run_against_chance(toy, monkeypatch):
    ph = phase_diagram.MAMBA_PHASE
    monkeypatch.setitem(ph, 'graph_d', [4, 8])
    monkeypatch.setitem(ph, 'data_seed', [1])
    monkeypatch.setitem(ph, 'panels', [dict(key='learning_rate', values=[1e-2], rows=[4], at=dict(epochs=1)),
                                       dict(key='epochs', values=[1, 2], rows=[4])])
    fixed = {k: v for k, v in TINY.items() if k != 'n_head'}
    monkeypatch.setitem(ph, 'fixed', dict(fixed, graph_l=3, graph_holdout_percentage=0.5, learning_rate=1e-2,
                                          model_type='mamba', geometry_interval=1000))
    assert reproduce.main(['--phase_diagram', 'mamba']) == 0
    assert not (toy / 'results' / 'phase_diagram.md').exists()
    text = (toy / 'results' / 'phase_diagram_mamba.md').read_text()
    assert text.startswith('# Phase diagram: where planning from memory appears (Mamba)')
    assert text.count('Held-out leaves nearest (cosine) their own first hop:') == 2  # one table a panel
    runs = trial_dirs(toy)
    assert len(runs) == 2  # (4, lr 1e-2, 1 epoch) is a cell of both panels: trained once
    assert text.count('| 8 (chance 0.125) | - |') == 6  # no panel trains graph_d=8: 2 panels x 3 tables
    summaries = [json.loads(open(os.path.join(d, 'summary.json')).read()) for d in runs]
    assert all('geometry/nearest_first_hop_accuracy' in s for s in summaries) and 'model_type=mamba' in text
    above = sum(phase_diagram.evidence.run_test(s['val/accuracy/first_hop'], s['val_rows'],
                                                s['chance/first_hop'])['above_chance'] for s in summaries)
    assert f"{above} of 2 runs above chance" in text and 'Wall time:' in text and '2 runs on' in text
    assert (toy / 'results' / 'phase_diagram_mamba.png').stat().st_size > 0


def test_mean_and_spread():
    assert contrasts.mean_sd([]) == '-'
    assert contrasts.mean_sd([0.5]) == '0.500'
    assert contrasts.mean_sd([0.25, 0.75]) == '0.500 ± 0.354'


def test_an_unknown_contrast_is_a_user_error():
    with pytest.raises(UserError, match="no contrast 'pause'"):
        reproduce.parse_args(['--only', 'pause'])


def test_quick_writes_nothing_git_tracks():
    """A newcomer's --quick leaves the checkout clean: its tables go under out/, which .gitignore holds."""
    results = contrasts.SCALES['quick'].results
    assert results.split(os.sep)[0] == 'out' and '/out/' in open(os.path.join(contrasts.ROOT, '.gitignore')).read()
