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
        evidence.verdict('sooner', high, low)


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
