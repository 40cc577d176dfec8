"""yardstick.py's pure parts on hand-made inputs: reading the official trainer's log, our curve.json, aligning the
curves, the agreement rule and the report. Needs neither the official code nor the network."""
import pytest

import yardstick as ys

# an excerpt of the official trainer's stdout (mixed_full_path on G(5, 4)); tqdm writes to stderr, so none of it here
OFFICIAL_STDOUT = """Mixed dataset sizes -> edge=30 path_train=3 path_test=3 mixed_train=33

============================================================
JOINT EDGE + PATH TRAINING
============================================================
Epoch 1 | Test Acc: 0.00% | Forced Acc: 0.00%
Saved new best joint checkpoint: /tmp/logs/checkpoints/run_joint_training_best.pt
Edge Memorization | Loss: 3.3478 | Acc: 6.67%
Epoch 2 | Test Acc: 33.33% | Forced Acc: 66.67%
Edge Memorization | Loss: 3.3434 | Acc: 16.67%
Epoch 3 | Test Acc: 100.00% | Forced Acc: 100.00%
"""
OFFICIAL_STDERR = ("2026-12-03 06:46:14,548 | INFO | geometric_memory.train_in_weights | Model parameters: 21,328,512\n"
                   "Edge Memorization | Loss: 2.8813 | Acc: 16.67%:   0%|          | 0/1 [00:00<?, ?it/s]\n")


def test_the_official_log_gives_one_point_per_evaluation_and_drops_a_cut_off_last_one():
    curve = ys.parse_official_log(OFFICIAL_STDOUT)
    assert [p['epoch'] for p in curve] == [1, 2]  # epoch 3 has no edge line yet
    assert curve[0] == {'epoch': 1, 'path': 0.0, 'path_forced': 0.0, 'edge': pytest.approx(0.0667)}
    assert curve[1]['path'] == pytest.approx(1 / 3, abs=1e-4) and curve[1]['edge'] == pytest.approx(1 / 6, abs=1e-4)


def test_tqdm_lines_are_not_read_as_evaluations_and_the_parameter_count_is_found():
    assert ys.parse_official_log(OFFICIAL_STDERR) == []
    assert ys.parse_official_params(OFFICIAL_STDERR) == 21_328_512
    assert ys.parse_official_params('nothing') is None


def test_our_curve_keeps_whole_epochs_with_both_metrics():
    points = [{'epoch': 0.0, 'iter': 0, 'train/accuracy/edge_all': 0.0, 'train/accuracy/path': 0.0},
              {'epoch': 2.5, 'iter': 5, 'train/accuracy/edge_all': 0.1, 'train/accuracy/path': 0.0},
              {'epoch': 10.0, 'iter': 20, 'train/accuracy/edge_all': 0.5, 'train/accuracy/path': 1 / 3},
              {'epoch': 12.0, 'iter': 24, 'val/accuracy/path': 0.5}]
    assert ys.ours_curve(points) == [{'epoch': 0, 'edge': 0.0, 'path': 0.0}, {'epoch': 10, 'edge': 0.5, 'path': 1 / 3}]


def curve(*points):
    return [{'epoch': e, 'edge': edge, 'path': path} for e, edge, path in points]


def test_curves_align_on_the_epochs_every_run_has():
    official = curve(*[(e, 0.1 * e, 0.0) for e in range(1, 31)])  # every epoch
    ours_a = curve((0, 0, 0), (10, 0.5, 0), (20, 0.5, 0), (30, 0.5, 1))  # every 10, from 0
    ours_b = curve((0, 0, 0), (10, 0.4, 0), (20, 0.5, 0))  # stopped early
    assert ys.shared_epochs(official, ours_a, ours_b) == [10, 20]
    assert ys.shared_epochs() == []
    assert ys.values_at([official, ours_a], 20, 'edge') == [pytest.approx(2.0), 0.5]


def test_the_rule_is_the_official_mean_plus_minus_two_sample_sd():
    got = ys.agrees([0.5, 0.6], [0.4, 0.5, 0.6])  # official mean 0.5, sd 0.1: band [0.3, 0.7]
    assert got['ok'] and got['lo'] == pytest.approx(0.3) and got['hi'] == pytest.approx(0.7)
    assert not ys.agrees([0.75, 0.75], [0.4, 0.5, 0.6])['ok']
    assert ys.agrees([0.1], [0.4, 0.5, 0.6], k=4.0)['ok']


def test_with_every_official_seed_alike_only_its_printed_rounding_is_allowed():
    assert ys.agrees([1 / 6] * 3, [0.1667] * 3)['ok']  # '16.67%' is 1/6
    assert not ys.agrees([1 / 6, 1 / 6, 0.2], [0.1667] * 3)['ok']


def test_the_edge_ceiling_counts_one_right_row_per_prompt():
    # a path-star 0-1-2 both ways, no direction tokens: prompts 0, 1, 2; prompt 1 has two answers
    assert ys.edge_ceiling(['0=1', '1=2', '1=0', '2=1']) == pytest.approx(3 / 4)
    assert ys.edge_ceiling(['0=1', '0=2']) == pytest.approx(1 / 2)


def test_graph_files_and_the_check_against_the_builders_files(tmp_path):
    ours, theirs = tmp_path / 'ours', tmp_path / 'theirs'
    ours.mkdir()
    theirs.mkdir()
    stem = 'star_deg_2_deg_tree_1_path_3_nodes_5_sd_00_fb_11_selfedge_0'
    for folder, train in ((ours, '1=0,2,1\n3=0,4,3\n'), (theirs, '3=0,4,3\n1=0,2,1\n')):
        (folder / f'{stem}_pretrain.txt').write_text('0=2\n2=1\n')
        (folder / f'{stem}_train_1.txt').write_text(train)
    (ours / f'{stem}_test_1.txt').write_text('3=0,4,3\n')
    (theirs / 'star_deg_2_deg_tree_1_path_3_nodes_5_sd_00_fb_11_selfedge_1_pretrain.txt').write_text('0=0\n')
    assert ys.graph_files(ours) == {'pretrain': f'{stem}_pretrain.txt', 'train': f'{stem}_train_1.txt',
                                    'test': f'{stem}_test_1.txt'}
    assert ys.same_graph(ours, theirs) == {'pretrain': 'identical', 'train': 'reordered', 'test': 'differs'}


def runs():
    def run(points, wall):
        return {'curve': curve(*points), 'params': 21_328_512, 'wall_s': wall}
    ours_params = {'total': 21_305_472, 'block_size': 6, 'vocab_size': 23}
    official = {s: run([(e, 0.5, 0.0 if e < 20 else 1.0) for e in range(1, 21)], 100.0) for s in (1, 2, 3)}
    ours = {s: {**run([(0, 0, 0), (10, 0.5, 0), (20, edge, 1.0)], 50.0), 'params': ours_params}
            for s, edge in ((1, 0.5), (2, 0.5), (3, 0.2))}
    return {'official': official, 'ours': ours}


def test_verdicts_and_the_report_say_where_ours_agrees():
    epochs, v = ys.verdicts(runs())
    assert epochs == [10, 20]
    assert not v['edge']['final']['ok'] and v['edge']['share'] == 0.5  # 0.4 against an official 0.5 ± 0
    assert v['path']['final']['ok'] and v['path']['share'] == 1.0
    assert v['edge']['late']['epochs'] == [20, 20] and not v['edge']['late']['ok']  # a quarter of 2 epochs: the last
    context = {'graph': 'G(5, 4)', 'seeds': [1, 2, 3], 'epochs': 20, 'command': 'python3 yardstick.py --epochs=20',
               'total_wall_s': 450.0, 'recipe': {k: 1 for k in ys.RECIPE}, 'graph_check': {}, 'edge_rows': 30,
               'train_paths': 3, 'rows': 33, 'edge_ceiling': 16 / 30, 'official_flags': ['--x'], 'ours_flags': ['--y']}
    md = ys.report(runs(), context)
    assert '| 20 | 0.500 ± 0.000 | 0.400 ± 0.173 | 1.000 ± 0.000 | 1.000 ± 0.000 |' in md
    assert 'at epoch 20 DISAGREES' in md and 'at epoch 20 AGREES' in md and 'averaged over epochs 20–20' in md
    assert '`python3 yardstick.py --epochs=20`' in md and '+23,040' in md


def test_the_late_window_averages_each_seed_over_the_last_quarter():
    official = [curve(*[(e, 0.0, 1 / 3 if e % 20 else 2 / 3) for e in range(10, 81, 10)]) for _ in range(3)]
    ours = [curve(*[(e, 0.0, 1 / 3 if e != 80 else 0.0) for e in range(10, 81, 10)]) for _ in range(2)]
    made = {name: {s: {'curve': c} for s, c in enumerate(cs)} for name, cs in (('official', official), ('ours', ours))}
    _, v = ys.verdicts(made)
    assert v['path']['late']['epochs'] == [70, 80] and not v['path']['final']['ok']
    assert v['path']['late']['lo'] == pytest.approx(0.5)  # official (1/3 + 2/3) / 2 each seed; ours 1/6: still apart
    assert not v['path']['late']['ok'] and v['edge']['late']['ok']


def test_table_epochs_keeps_about_ten_rows_and_the_last():
    assert ys.table_epochs(list(range(10, 201, 10))) == list(range(10, 201, 20)) + [200]
    assert ys.table_epochs([5]) == [5]
