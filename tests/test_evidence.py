"""The statistics behind a contrast's verdict (pathstar/experiments/evidence.py), on cases worked by hand."""
import math

import pytest

from pathstar.experiments import evidence


def test_binomial_tail_matches_hand_worked_values():
    assert evidence.binomial_p(0, 10, 0.3) == 1.0
    assert evidence.binomial_p(3, 3, 0.5) == pytest.approx(1 / 8)
    assert evidence.binomial_p(2, 3, 0.5) == pytest.approx(4 / 8)            # 3/8 + 1/8
    assert evidence.binomial_p(1, 10, 0.1) == pytest.approx(1 - 0.9 ** 10)
    assert evidence.binomial_p(11, 10, 0.1) == 0.0
    assert evidence.binomial_p(50, 50, 0.005) == pytest.approx(0.005 ** 50, rel=1e-9)  # no underflow to 0
    assert evidence.binomial_p(5, 10 ** 6, 1e-6) == pytest.approx(
        1 - sum(math.exp(-1) / math.factorial(i) for i in range(5)), rel=1e-4)       # the Poisson limit


def test_successes_round_an_accuracy_back_to_a_count():
    assert evidence.successes(0.82, 50) == 41 and evidence.successes(1 / 3, 3) == 1


def test_a_run_is_above_chance_only_below_alpha():
    assert evidence.run_test(0.82, 50, 1 / 200)['above_chance']
    chance_level = evidence.run_test(0.02, 50, 1 / 50)   # 1 of 50 at chance 1/50: p = 1 - (49/50)^50
    assert chance_level['k'] == 1 and chance_level['p_value'] == pytest.approx(1 - (49 / 50) ** 50)
    assert not chance_level['above_chance']


def test_bootstrap_intervals_are_seeded_and_degenerate_where_they_must_be():
    assert evidence.bootstrap_ci([0.4] * 5) == (0.4, 0.4)
    assert evidence.bootstrap_ci([]) is None
    assert evidence.bootstrap_ci([0.1, 0.5, 0.9]) == evidence.bootstrap_ci([0.1, 0.5, 0.9])  # the same every time
    lo, hi = evidence.bootstrap_ci([0.0, 1.0] * 10)
    assert lo < 0.5 < hi and 0.2 < lo and hi < 0.8                # the mean of 20 fair coins: about 0.5 +- 0.22
    assert evidence.difference_ci([1.0] * 5, [0.0] * 5) == (1.0, 1.0)


def test_summary_has_the_mean_and_its_interval():
    s = evidence.summary([0.2, 0.4, 0.6])
    assert s['mean'] == pytest.approx(0.4) and s['n'] == 3 and s['ci95'][0] <= 0.4 <= s['ci95'][1]
    assert evidence.summary([]) == {'n': 0}


def test_verdicts_follow_the_written_rule():
    high = [0.8, 0.7, 0.9, 0.75, 0.85]
    tests = [evidence.run_test(v, 50, 0.005) for v in high]
    assert evidence.verdict('above_chance', high, chance=0.005, tests=tests) == 'agrees'
    assert evidence.verdict('above_chance', high[:4], chance=0.005, tests=tests[:4]) == 'inconclusive'  # < 5 runs
    low = [0.0, 0.0, 0.02, 0.0, 0.0]
    assert evidence.verdict('above_chance', low, chance=0.02,
                            tests=[evidence.run_test(v, 50, 0.02) for v in low]) == 'differs'
    assert evidence.verdict('at_chance', low, chance=0.004) == 'agrees'    # the interval [0, 0.012] holds it
    assert evidence.verdict('at_chance', [0.0] * 5, chance=0.005) == 'agrees'  # below chance is no better than it
    assert evidence.verdict('at_chance', low, chance=0.004, tests=[dict(above_chance=True)]) == 'inconclusive'
    assert evidence.verdict('at_chance', high, chance=0.005) == 'differs'
    assert evidence.verdict('greater', high, low) == 'agrees'
    assert evidence.verdict('greater', low, high) == 'differs'
    assert evidence.verdict('greater', [0.5, 0.1, 0.9, 0.3, 0.7], [0.4, 0.6, 0.2, 0.8, 0.5]) == 'inconclusive'
    with pytest.raises(ValueError):
        evidence.verdict('faster', high, low)


def test_epochs_to_a_level_is_the_first_evaluation_at_or_above_it():
    epochs, values = [0, 5, 10, 15], [0.0, 0.2, 0.6, 0.9]
    assert evidence.epochs_to(epochs, values, 0.5) == 10.0
    assert evidence.epochs_to(epochs, values, 0.6) == 10.0          # at the level counts
    assert evidence.epochs_to(epochs, values, 0.0) == 0.0
    assert evidence.epochs_to(epochs, values, 0.95) == 15.0         # never: its last epoch, a lower bound
    # half the larger of the arms' mean best: bests 0.9 and 0.7 in one arm (mean 0.8), 0.6 in the other
    assert evidence.sooner_level([(epochs, values), (epochs, [0.7] * 4)], [(epochs, [0.6] * 4)]) == pytest.approx(0.4)


def test_a_learning_curve_band_is_the_mean_and_its_interval_at_shared_epochs():
    curves = [([0, 5, 10], [0.0, 0.5, 1.0]), ([0, 5, 10, 15], [0.0, 0.3, 0.9, 0.9])]
    b = evidence.band(curves)
    assert b['epochs'] == [0.0, 5.0, 10.0] and b['n'] == 2       # epoch 15: one run only
    assert b['mean'] == pytest.approx([0.0, 0.4, 0.95])
    assert b['ci95'][0][0] == b['ci95'][1][0] == 0.0 and b['ci95'][0][1] == 0.3 and b['ci95'][1][1] == 0.5
    assert evidence.band([]) is None
    summary = {'curve': [{'epoch': 0.0, 'x': 0.1}, {'epoch': 5.0}, {'epoch': 10.0, 'x': 0.7}]}
    assert evidence.learning_curve(summary, 'x') == ([0.0, 10.0], [0.1, 0.7])
    assert evidence.learning_curve({}, 'x') is None


def ramp(reach, epochs=range(0, 101, 5), top=0.9):
    """A curve that is 0 until epoch reach and top from there."""
    return list(epochs), [top if e >= reach else 0.0 for e in epochs]


def test_sooner_agrees_when_the_first_arm_gets_there_in_fewer_epochs():
    fast, slow = [ramp(r) for r in (10, 15, 10, 20, 5)], [ramp(r) for r in (40, 55, 35, 50, 45)]
    assert evidence.verdict('sooner', fast, slow) == 'agrees'
    assert evidence.verdict('sooner', slow, fast) == 'differs'
    assert evidence.verdict('sooner', fast, fast) == 'inconclusive'      # the difference's interval is [0, 0]
    assert evidence.verdict('sooner', fast[:4], slow) == 'inconclusive'  # fewer than MIN_RUNS graphs
    never = [ramp(r, top=0.9 if r < 200 else 0.0) for r in (200,) * 5]  # never gets anywhere: its last epoch
    assert evidence.verdict('sooner', fast, never) == 'agrees'


def fake_runs(first_hops, chance=0.005, held_out=50):
    return [({'data_seed': i + 1}, {'val/accuracy/first_hop': v, 'val/accuracy/path': v / 2, 'val_rows': held_out,
                                    'chance/first_hop': chance}) for i, v in enumerate(first_hops)]


def test_a_contrast_record_scores_each_claim_and_keeps_the_schema():
    from pathstar.experiments import contrasts, verdicts
    edge = next(c for c in contrasts.CONTRASTS if c.name == 'edge_directions')
    record = verdicts.contrast_record(edge, {'both directions': fake_runs([0.8, 0.7, 0.9, 0.75, 0.85]),
                                             'forward edges only': fake_runs([0.0, 0.02, 0.0, 0.0, 0.0])})
    assert [c['verdict'] for c in record['claims']] == ['agrees', 'agrees', 'agrees'] and record['verdict'] == 'agrees'
    arm = record['arms'][0]
    assert set(arm) >= {'arm', 'task', 'chance', 'runs', 'first_hop', 'path'} and arm['chance'] == 0.005
    assert arm['runs'][0]['data_seed'] == 1 and arm['runs'][0]['above_chance'] and arm['first_hop']['n'] == 5
    assert arm['first_hop']['ci95'][0] > 0.7 and arm['path']['mean'] == pytest.approx(0.4)
    few = verdicts.contrast_record(edge, {'both directions': fake_runs([0.8, 0.7, 0.9])})
    assert few['verdict'] == 'inconclusive' and 'no runs' in few['claims'][1]['why']
    flipped = verdicts.contrast_record(edge, {'both directions': fake_runs([0.0] * 5),
                                              'forward edges only': fake_runs([0.8] * 5)})
    assert flipped['verdict'] == 'differs'
    assert '| edge_directions | **agrees** |' in verdicts.verdict_table([record])


def curve_runs(reaches, chance=0.005):
    """fake_runs whose summaries carry a learning curve that jumps to 0.8 at each reach epoch."""
    runs = fake_runs([0.8] * len(reaches), chance)
    for (_, summary), reach in zip(runs, reaches):
        epochs, values = ramp(reach, top=0.8)
        summary['curve'] = [{'epoch': e, 'iter': 10 * e, 'val/accuracy/first_hop': v} for e, v in zip(epochs, values)]
    return runs


def test_the_pause_contrast_is_scored_on_learning_curves():
    from pathstar.experiments import contrasts, verdicts
    pause = next(c for c in contrasts.CONTRASTS if c.name == 'pause_tokens')
    l_arm, zero = 'l pause tokens (one per path node)', '0 pause tokens'
    runs = {l_arm: curve_runs([10, 10, 15, 5, 10]), zero: curve_runs([30, 40, 35, 30, 45]),
            '1 pause token': curve_runs([20] * 5)}
    record = verdicts.contrast_record(pause, runs)
    sooner = next(c for c in record['claims'] if c['kind'] == 'sooner')
    assert sooner['verdict'] == 'agrees' and sooner['level'] == pytest.approx(0.4)
    assert sooner['epochs_to_level'] == [[10.0, 10.0, 15.0, 5.0, 10.0], [30.0, 40.0, 35.0, 30.0, 45.0]]
    assert 'epochs to 0.400: mean 10.0 against 36.0' in sooner['why'] and record['verdict'] == 'agrees'
    arm = next(a for a in record['arms'] if a['arm'] == l_arm)
    assert arm['curve']['epochs'][:3] == [0.0, 5.0, 10.0] and arm['curve']['mean'][:3] == [0.0, 0.16, 0.64]
    assert len(arm['curve']['ci95']) == 2 and arm['curve']['n'] == 5
    assert 'sooner l pause tokens (one per path node) than 0 pause tokens: agrees' in verdicts.verdict_table([record])
    for _, summary in runs[zero][:2]:
        del summary['curve']
    missing = next(c for c in verdicts.contrast_record(pause, runs)['claims'] if c['kind'] == 'sooner')
    assert missing['verdict'] == 'inconclusive' and '2 runs have none' in missing['why']


def test_a_claim_on_a_later_hop_tests_each_run_on_that_metric():
    from pathstar.experiments import contrasts, verdicts
    in_context = next(c for c in contrasts.CONTRASTS if c.name == 'in_context')
    # Clever Hans: the first hop at its 1/2 chance, the second hop learned (teacher-forced), over 500 graphs
    clever_hans = fake_runs([0.49, 0.47, 0.51, 0.48, 0.50], chance=0.5, held_out=500)
    for _, summary in clever_hans:
        summary['val/accuracy/token_3_teacher_forced'] = 0.99
    record = verdicts.contrast_record(in_context, {'in-context, teacher-forced': clever_hans})
    claims = {(c['kind'], c['metric']): c for c in record['claims'] if c['arm'] == 'in-context, teacher-forced'}
    assert claims[('at_chance', 'val/accuracy/first_hop')]['verdict'] == 'agrees'
    later = claims[('above_chance', 'val/accuracy/token_3_teacher_forced')]
    assert later['verdict'] == 'agrees' and '5 of 5 runs above chance' in later['why']
    table = verdicts.verdict_table([record])
    assert 'above_chance in-context, teacher-forced (token_3_teacher_forced): agrees' in table
    for _, summary in clever_hans:  # 0.52 of 500 against 1/2 is no evidence: each run tested on its own metric
        summary['val/accuracy/token_3_teacher_forced'] = 0.52
    later = next(c for c in verdicts.contrast_record(in_context, {'in-context, teacher-forced': clever_hans})['claims']
                 if c['metric'] == 'val/accuracy/token_3_teacher_forced')
    assert later['verdict'] == 'inconclusive' and '0 of 5 runs above chance' in later['why']


def test_the_error_table_counts_every_runs_rows_and_marks_what_older_runs_lack():
    from pathstar.experiments import verdicts
    kinds = dict(non_node=0.0, prompt_leaf=0.0, own_path=0.5, training_leaf=0.0, other_node=0.5)
    # 100 rows, 50 with a right target 1, 25 of them with a right target 2; 75 wrong rows
    new = {'val_rows': 100, 'val/accuracy/path': 0.25, 'val/accuracy/token_1_given_prefix': 0.5,
           'val/accuracy/token_2_given_prefix': 0.5,
           **{f'val/errors/{k}': v for k, v in dict(kinds, own_path=0.2, repeat=0.4, other_node=0.4).items()}}
    # 20 rows, none with a right target 1 (its target 2 rate is 0 by convention, over no rows); 20 wrong
    old = {'val_rows': 20, 'val/accuracy/path': 0.0, 'val/accuracy/token_1_given_prefix': 0.0,
           'val/accuracy/token_2_given_prefix': 0.0,
           **{f'val/errors/{k}': v for k, v in kinds.items()}}   # before 'repeat' was a kind of its own
    text = verdicts.errors_table({'a': [({}, new), ({}, old)], 'b': [({}, old)], 'baseline': [({}, {'x': 1})]})
    rows = [line for line in text.splitlines() if line.startswith('| ') and not line.startswith('| ---')]
    assert rows[0] == ('| arm | target 1 given a right prefix | target 2 given a right prefix | wrong: non node | '
                       'wrong: prompt leaf | wrong: repeat | wrong: own path | wrong: training leaf | '
                       'wrong: other node |')
    # target 1: 50 of 120 rows; target 2: 25 of the 50; own path (75 x 0.2 + 20 x 0.5) / 95; repeat: 30 of 75
    assert rows[1] == f'| a | 0.42 | 0.50 | 0.00 | 0.00 | 0.40 | {25 / 95:.2f} | 0.00 | {40 / 95:.2f} |'
    assert rows[2] == '| b | 0.00 | - | 0.00 | 0.00 | - | 0.50 | 0.00 | 0.50 |'
    assert len(rows) == 3  # an arm without error metrics (a baseline) has no row
    assert 'first wrong token is the last target' not in text  # no run measured it
    new.update({f'val/errors/last_target/{k}': v for k, v in dict(kinds, own_path=0.0, repeat=0.8,
                                                                    other_node=0.2).items()})
    last = verdicts.errors_table({'a': [({}, new), ({}, old)]}).split('first wrong token is the last target')[1]
    # 100 rows x 0.5 with target 1 right x 0.5 of them wrong at target 2: 25 rows, 80% of them a repeat
    assert '| a | 25 | 0.00 | 0.00 | 0.80 | 0.00 | 0.00 | 0.20 |' in last
    assert verdicts.errors_table({'baseline': [({}, {'x': 1})]}) == ''
