"""Where held-out paths go wrong (evaluate.first_error_kinds, path_errors), on rows worked by hand."""
import pytest
import torch

from pathstar.training import evaluate

OFF = 7  # node k is token 7 + k


def t(*rows):
    return torch.tensor(rows, dtype=torch.int64)


def test_each_wrong_row_is_named_by_its_first_wrong_token():
    truth = t([10, 11, 12, 13], [10, 14, 15, 16], [10, 17, 18, 19], [10, 20, 21, 22], [10, 23, 24, 25],
              [10, 26, 27, 28], [10, 31, 32, 33], [10, 34, 35, 36])
    generated = t([10, 11, 12, 13],      # right
                  [10, 14, 3, 16],       # a PATH token: non_node
                  [10, 19, 18, 19],      # jumps to the prompt's own leaf
                  [10, 20, 20, 22],      # the node it just reached, again
                  [10, 23, 24, 40],      # a training path's leaf
                  [10, 30, 27, 28],      # some other node
                  [10, 31, 32, 32],      # the leaf missed: the node before it again (the leaf's neighbour)
                  [10, 34, 10, 36])      # back to the root: its own path, in the wrong place
    leaf = truth[:, -1]
    kinds = evaluate.first_error_kinds(generated, truth, leaf, OFF, training_leaves=t(40, 41))
    names = [evaluate.ERROR_KINDS[k] if k >= 0 else 'right' for k in kinds.tolist()]
    assert names == ['right', 'non_node', 'prompt_leaf', 'repeat', 'training_leaf', 'other_node', 'repeat',
                     'own_path']


def test_a_wrong_root_slot_is_never_a_repeat():
    kinds = evaluate.first_error_kinds(t([11, 11, 12]), t([10, 11, 12]), t(12), OFF, training_leaves=t(40))
    assert evaluate.ERROR_KINDS[kinds.item()] == 'own_path'


def test_error_metrics_condition_on_a_right_prefix_and_split_the_wrong_rows():
    correct = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=torch.bool)
    tf_correct = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=torch.bool)
    kinds = torch.tensor([-1, 1, 5, 1])
    m = evaluate.path_errors('val', correct, tf_correct, kinds)
    assert m['val/accuracy/token_1_given_prefix'] == pytest.approx(3 / 4)
    assert m['val/accuracy/token_2_given_prefix'] == pytest.approx(2 / 3)   # rows 0-2 had token 1 right
    assert m['val/accuracy/token_3_given_prefix'] == pytest.approx(1 / 2)   # rows 0-1 had tokens 1-2 right
    assert m['val/accuracy/token_3_teacher_forced'] == pytest.approx(3 / 4)
    assert m['val/errors/prompt_leaf'] == pytest.approx(2 / 3) and m['val/errors/other_node'] == pytest.approx(1 / 3)
    assert sum(m[f'val/errors/{k}'] for k in evaluate.ERROR_KINDS) == pytest.approx(1)
    # row 1 alone first goes wrong at the last target (row 3 at the first, row 2 at the second)
    assert m['val/errors/last_target/prompt_leaf'] == 1
    assert sum(m[f'val/errors/last_target/{k}'] for k in evaluate.ERROR_KINDS) == 1


def test_the_keys_are_the_same_when_no_row_is_wrong_or_none_got_far():
    correct = torch.tensor([[0, 1], [0, 1]], dtype=torch.bool)
    m = evaluate.path_errors('val', correct, correct, torch.tensor([2, 2]))
    assert m['val/accuracy/token_2_given_prefix'] == 0  # no row got token 1 right
    right = evaluate.path_errors('val', correct | True, correct, torch.tensor([-1, -1]))
    assert set(right) == set(m) and all(right[f'val/errors/{k}'] == 0 for k in evaluate.ERROR_KINDS)
    assert all(right[f'val/errors/last_target/{k}'] == 0 for k in evaluate.ERROR_KINDS)
