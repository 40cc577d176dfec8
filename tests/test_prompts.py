"""
Prompt and target variants of the path rows (path_target, root_in_prompt, teacherless), the metrics
every variant shares, and edge_all (teacher-forced over every edge row).

The rows are checked on a hand-made graph, G(2, 3) with node labels
    root 0, arm A: 0 -> 1 -> 2 (leaf 2), arm B: 0 -> 3 -> 4 (leaf 4),
arm B held out, one pause token.
"""
import math

import numpy as np
import pytest
import torch

from pathstar.training import evaluate
import pathstar_data as ps
from pathstar.data import slots as pathstar_rows
from pathstar.sweeps import space as sweep_space
import train
from conftest import tiny_config
from configurator import UserError
from pathstar.tokens import NODE_OFFSET
from conftest import checked
from pathstar.data import inweights
from pathstar.data import cache as pc
from pathstar import tokens
from pathstar import validate

HAND = dict(graph_d=2, graph_l=3, graph_holdout_percentage=0.5, num_pause_tokens=1, path_replication=1)
HAND_PATHS = np.array([[0, 1, 2], [0, 3, 4]]) + NODE_OFFSET
VARIANTS = [dict(), dict(path_target='first_hop'), dict(path_target='reversed'), dict(root_in_prompt=True),
            dict(root_in_prompt=True, path_target='first_hop'), dict(teacherless=True),
            dict(teacherless=True, path_target='reversed', root_in_prompt=True)]
VARIANT_IDS = ['full', 'first_hop', 'reversed', 'root', 'root_first_hop', 'teacherless', 'teacherless_reversed_root']


def hand_data(**overrides):
    """The hand-made graph's rows, built by the real row code (fill_rows) around a given graph."""
    cfg = inweights.data_config(checked({**HAND, **overrides}))
    paths, held_out, edges, nodes = inweights.star_parts(HAND_PATHS.copy(), np.array([1]))
    meta = inweights.make_meta(cfg, paths, held_out)
    arrays = {}
    for split in ('train', 'val'):
        shape = (meta[f'num_{split}_rows'], meta['row_len'])
        arrays[f'{split}_rows'] = np.zeros(shape, meta['dtype'])
        arrays[f'{split}_mask'] = np.zeros(shape, np.bool_)
    inweights.fill_rows(arrays, meta, edges, nodes)
    return pc.PathStarData(**arrays, meta=meta, path='')


def decoded(data):
    n_edges = data.meta['num_edge_rows']
    decode = tokens.decode
    return ([decode(r) for r in data.train_rows[:n_edges]], [decode(r) for r in data.train_rows[n_edges:]],
            [tokens.decode(r) for r in data.val_rows])


EDGES = ['[EDGE] > n0 n1', '[EDGE] > n1 n2', '[EDGE] > n0 n3', '[EDGE] > n3 n4',
         '[EDGE] < n1 n0', '[EDGE] < n2 n1', '[EDGE] < n3 n0', '[EDGE] < n4 n3']


# -----------------------------------------------------------------------------
# the rows

@pytest.mark.parametrize('overrides, train_path, val_path', [
    (dict(), '[PATH] n2 _ n0 n1 n2', '[PATH] n4 _ n0 n3 n4'),
    (dict(path_target='first_hop'), '[PATH] n2 _ n1', '[PATH] n4 _ n3'),
    (dict(path_target='reversed'), '[PATH] n2 _ n2 n1 n0', '[PATH] n4 _ n4 n3 n0'),
    (dict(root_in_prompt=True), '[PATH] n0 n2 _ n0 n1 n2', '[PATH] n0 n4 _ n0 n3 n4'),
    (dict(root_in_prompt=True, path_target='first_hop'), '[PATH] n0 n2 _ n1', '[PATH] n0 n4 _ n3'),
    (dict(root_in_prompt=True, path_target='reversed'), '[PATH] n0 n2 _ n2 n1 n0', '[PATH] n0 n4 _ n4 n3 n0'),
    (dict(teacherless=True), '[PATH] n2 _ n0 n1 n2', '[PATH] n4 _ n0 n3 n4'),  # the stored rows are the same
    (dict(use_task_tokens=False, num_pause_tokens=2, path_target='reversed'), 'n2 _ _ n2 n1 n0', 'n4 _ _ n4 n3 n0'),
])
def test_each_variant_writes_the_rows_it_promises(overrides, train_path, val_path):
    edges, train_paths, val_paths = decoded(hand_data(**overrides))
    task = overrides.get('use_task_tokens', True)
    assert edges == (EDGES if task else [e.replace('[EDGE] ', '') for e in EDGES])  # edge rows never change
    assert train_paths == [train_path] and val_paths == [val_path]


@pytest.mark.parametrize('overrides, prompt_len, targets, first_hop', [
    (dict(), 3, [0, 1, 2], 1),
    (dict(path_target='first_hop'), 3, [1], 0),
    (dict(path_target='reversed'), 3, [2, 1, 0], 1),
    (dict(root_in_prompt=True), 4, [0, 1, 2], 1),
    (dict(graph_l=4, graph_d=2, path_target='reversed'), 3, [3, 2, 1, 0], 2),  # n1 is target 3 of leaf n2 n1 root
])
def test_meta_says_where_the_targets_and_the_first_hop_are(overrides, prompt_len, targets, first_hop):
    _, meta = inweights.build_arrays(checked({**HAND, **overrides}))
    assert meta['path_prompt_len'] == prompt_len
    assert meta['path_target_nodes'] == targets and meta['first_hop_slot'] == first_hop
    assert meta['row_len'] == prompt_len + len(targets)
    assert targets[first_hop] == 1  # the first hop is depth 1 on the path


@pytest.mark.parametrize('overrides', VARIANTS, ids=VARIANT_IDS)
def test_drawn_graphs_get_the_same_layout_as_the_hand_made_one(overrides):
    """On a real draw, every path row is its prompt followed by the promised nodes of its own path."""
    cfg = checked(dict(graph_d=5, graph_l=4, graph_holdout_percentage=0.4, **overrides))
    arrays, meta = inweights.build_arrays(cfg)
    cfg, paths, start = meta['config'], meta['paths'], meta['path_prompt_len']
    n_edges = meta['num_edge_rows']
    splits = ((arrays['train_rows'][n_edges:], meta['train_arms']), (arrays['val_rows'], meta['holdout_arms']))
    for rows, arms in splits:
        for row, arm in zip(rows, np.tile(arms, len(rows) // len(arms))):
            path = paths[arm]
            prompt = [tokens.PATH] + ([path[0]] if cfg['root_in_prompt'] else []) + [path[-1]] + [tokens.PAUSE] * 3
            assert row.tolist() == prompt + path[meta['path_target_nodes']].tolist()
    assert meta['row_len'] == start + len(meta['path_target_nodes'])


@pytest.mark.parametrize('overrides, path_mask', [
    (dict(), [3, 4, 5]),
    (dict(path_target='first_hop'), [3]),
    (dict(path_target='reversed'), [3, 4, 5]),
    (dict(root_in_prompt=True), [4, 5, 6]),
    (dict(root_in_prompt=True, path_target='first_hop'), [4]),
    (dict(teacherless=True), [3, 4, 5]),
])
def test_masks_mark_the_targets_after_the_prompt_and_the_edge_ends(overrides, path_mask):
    data = hand_data(**overrides)
    n_edges = data.meta['num_edge_rows']
    assert all(np.flatnonzero(m).tolist() == [3] for m in data.train_mask[:n_edges])  # '[EDGE] > u v': v
    assert np.flatnonzero(data.train_mask[n_edges]).tolist() == path_mask
    assert np.flatnonzero(data.val_mask[0]).tolist() == path_mask


def n(k):
    return NODE_OFFSET + k


@pytest.mark.parametrize('overrides, x, pos, tgt', [
    (dict(), ['[PATH]', 'n2', '_', 'n0', 'n1'], [2, 3, 4], [n(0), n(1), n(2)]),
    (dict(path_target='first_hop'), ['[PATH]', 'n2', '_'], [2], [n(1)]),
    (dict(path_target='reversed'), ['[PATH]', 'n2', '_', 'n2', 'n1'], [2, 3, 4], [n(2), n(1), n(0)]),
    (dict(root_in_prompt=True), ['[PATH]', 'n0', 'n2', '_', 'n0', 'n1'], [3, 4, 5], [n(0), n(1), n(2)]),
    (dict(teacherless=True), ['[PATH]', 'n2', '_', '$', '$'], [2, 3, 4], [n(0), n(1), n(2)]),
    (dict(teacherless=True, path_target='reversed'), ['[PATH]', 'n2', '_', '$', '$'], [2, 3, 4],
     [n(2), n(1), n(0)]),
    (dict(path_loss='first_hop'), ['[PATH]', 'n2', '_', 'n0', 'n1'], [2, 3, 4], [-1, n(1), -1]),
])
def test_training_inputs_and_loss_positions_of_each_variant(overrides, x, pos, tgt):
    path_loss = overrides.pop('path_loss', 'full')
    data = hand_data(**overrides)
    t = pathstar_rows.training_targets(data, path_loss, 'cpu')
    n_edges = data.meta['num_edge_rows']
    assert tokens.decode(t.x[n_edges]).split() == x
    assert t.pos[n_edges].tolist() == pos and t.tgt[n_edges].tolist() == tgt
    # the edge rows keep their inputs, their one target, and its position
    assert tokens.decode(t.x[0]).split()[:3] == ['[EDGE]', '>', 'n0'] and t.tgt[0].tolist()[0] == n(1)
    assert t.pos[0].tolist()[0] == 2 and (t.tgt[:n_edges, 1:] == -1).all()


def test_teacherless_inputs_carry_no_path_token_after_the_prompt():
    data = hand_data(teacherless=True, root_in_prompt=True)
    t = pathstar_rows.training_targets(data, 'full', 'cpu')
    n_edges, start = data.meta['num_edge_rows'], data.meta['path_prompt_len']
    assert (t.x[n_edges:, start:] == tokens.DUMMY).all()
    assert tokens.TOKEN_TEXT[tokens.DUMMY] == '$' and tokens.DUMMY < NODE_OFFSET  # a special: no node label moves


# -----------------------------------------------------------------------------
# the config rules

@pytest.mark.parametrize('overrides, message', [
    (dict(path_target='first_hop', teacherless=True), "teacherless: has no effect with path_target='first_hop'"),
    (dict(path_target='first_hop', path_loss='first_hop'), "path_loss: 'first_hop' has no effect with "
                                                           "path_target='first_hop'"),
    (dict(path_target='reversed', path_loss='first_hop'), "path_loss: 'first_hop' keeps target 2 of a root..leaf "
                                                          "row, so it needs path_target='full', got "
                                                          "path_target='reversed'"),
    (dict(path_target='backwards'), 'path_target: expected one of full, first_hop, reversed'),
    (dict(teacherless='maybe'), 'teacherless: expected true/false'),
])
def test_combinations_that_make_no_sense_are_one_line_errors(overrides, message):
    with pytest.raises(UserError) as e:
        validate.build_config(overrides)
    assert message in str(e.value) and '\n' not in str(e.value)


@pytest.mark.parametrize('overrides', [
    dict(path_target='first_hop', root_in_prompt=True), dict(path_target='reversed', teacherless=True),
    dict(teacherless=True, path_loss='first_hop'), dict(root_in_prompt=True, teacherless=True),
])
def test_combinations_that_make_sense_pass(overrides):
    assert validate.build_config(overrides)['path_target'] == overrides.get('path_target', 'full')


def test_the_variants_are_data_keys_and_change_the_cache_folder(tmp_path):
    from pathstar.data import cache as pathstar_cache
    folders = {pathstar_cache.cache_dir(checked({**HAND, 'data_dir': str(tmp_path), **v})) for v in VARIANTS}
    assert len(folders) == len(VARIANTS)
    assert {'path_target', 'root_in_prompt', 'teacherless'} <= set(inweights.DATA_KEYS)


# -----------------------------------------------------------------------------
# evaluation

class Table(torch.nn.Module):
    """A fake model for hand-checked scores: the logits after input token t are `score` at answer[t]
    (zero elsewhere), whatever came before. It counts its forward passes and the rows they held."""

    def __init__(self, vocab_size, block_size, answer, score=5.0):
        super().__init__()
        self.config = type('Config', (), dict(vocab_size=vocab_size, block_size=block_size))
        self.answer = answer
        self.score = score
        self.calls = []

    def hidden(self, idx):
        self.calls.append(tuple(idx.shape))
        return idx

    def forward(self, idx, targets=None, label_smoothing=0.0, positions=None, weights=None):
        last = self.hidden(idx)
        if positions is not None:
            last = torch.gather(last, 1, positions)
        logits = torch.zeros(*last.shape, self.config.vocab_size)
        for token, answer in self.answer.items():
            logits[..., answer] += self.score * (last == token)
        return logits, None


def table_loss(right, vocab_size, score=5.0):
    """Cross-entropy of a Table logit row: score at one token, 0 at the others."""
    log_z = math.log(math.exp(score) + vocab_size - 1)
    return log_z - score if right else log_z


def test_edge_all_scores_every_edge_row_even_those_with_several_answers():
    """The hand-made graph's 8 edge rows, scored by a model that answers from the source node alone:
    '> n0 ?' has two right answers (n1, n3), so one of those two rows is wrong whatever the model says."""
    data = hand_data()
    meta = data.meta
    rows = data.train_rows[:meta['num_edge_rows'], :meta['edge_row_len']]
    # the Table sees only the last input token: the source u. '< u ?' and '> u ?' share it here, so
    # give every u the answer of its forward row where it has one (u = n1: '> n1 n2' right, '< n1 n0' wrong)
    answer = {n(0): n(1), n(1): n(2), n(3): n(4), n(2): n(1), n(4): n(3)}
    model = Table(meta['vocab_size'], meta['row_len'] - 1, answer)
    right = [True, True, False, True, False, True, False, True]  # in the order of EDGES
    answers = pathstar_rows.edge_answers(rows, meta)
    assert answers.tolist() == [2, 1, 2, 1, 1, 1, 1, 1]  # '> n0 ?' answers n1 and n3
    got = evaluate.score_all_edges(model, rows, answers, 'cpu', torch.no_grad())
    assert got['train/accuracy/edge_all'] == pytest.approx(5 / 8)
    assert got['train/accuracy/edge_all_recall'] == pytest.approx(5 / 8)  # '> n0 n3' ties with every other token
    want = np.mean([table_loss(r, meta['vocab_size']) for r in right])
    assert got['train/loss/edge_all'] == pytest.approx(want, rel=1e-6)
    assert model.calls == [(8, 3)]  # one chunk: every row at edge length

    model.calls.clear()
    chunked = evaluate.score_all_edges(model, rows, answers, 'cpu', torch.no_grad(),
                                       logits_budget=3 * meta['vocab_size'])
    assert chunked == pytest.approx(got) and [c[0] for c in model.calls] == [3, 3, 2]


def test_edge_all_is_part_of_every_evaluation_next_to_the_edge_sample(tmp_path):
    data = ps.load_or_build(tiny_config(tmp_path), verbose=False)
    ev = pathstar_rows.eval_sets(data, 1024, 0, 'cpu')
    assert len(ev.all_edges) == data.meta['num_edge_rows'] > len(ev.edges.x)  # the root's rows are not sampled
    assert ev.all_edges.shape[1] == data.meta['edge_row_len']


def paths_model(data):
    from model import GPT, GPTConfig
    torch.manual_seed(0)
    meta = data.meta
    return GPT(GPTConfig(vocab_size=meta['vocab_size'], block_size=meta['row_len'] - 1, n_layer=1, n_head=2,
                         n_embd=16))


def test_a_teacherless_model_is_scored_by_one_forward_pass_and_its_argmax(tmp_path):
    data = ps.load_or_build(tiny_config(tmp_path, graph_d=8, teacherless=True, path_target='reversed'), verbose=False)
    meta = data.meta
    model = paths_model(data)
    calls, real = [], model.hidden
    model.hidden = lambda idx: calls.append(tuple(idx.shape)) or real(idx)
    ev = pathstar_rows.eval_sets(data, 1024, 0, 'cpu')
    start, l, hop = meta['path_prompt_len'], meta['l'], meta['first_hop_slot']
    loss, correct, first_hop_tf = evaluate.score_paths(model, ev.val_paths, start, l, 'cpu', torch.no_grad(),
                                                       first_hop_slot=hop, dummy=tokens.DUMMY)
    assert calls == [(len(ev.val_paths), meta['row_len'] - 1)]  # one pass, no generation

    x = torch.from_numpy(ev.val_paths[:, :-1].astype(np.int64))
    x[:, start:] = tokens.DUMMY
    with torch.no_grad():
        logits, _ = model(x)
    logits = logits[:, start - 1:start - 1 + l]
    truth = torch.from_numpy(ev.val_paths[:, start:start + l].astype(np.int64))
    assert torch.equal(correct, logits.argmax(-1) == truth)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits.transpose(1, 2), truth, reduction='none'),
                          atol=1e-6)
    assert torch.equal(first_hop_tf, correct[:, hop])  # the one pass is also the 'teacher-forced' one

    calls.clear()
    evaluate.score_paths(model, ev.val_paths, start, l, 'cpu', torch.no_grad(), first_hop_slot=hop)
    assert len(calls) == 1 + l  # the same rows read as a model with teacher forcing: a pass, then l steps


def test_path_metrics_put_the_first_hop_where_the_variant_has_it():
    loss = torch.tensor([[0.5, 1.0, 2.0], [0.5, 1.0, 2.0]])
    correct = torch.tensor([[True, False, True], [True, True, True]])
    full = evaluate.path_metrics('val', loss, correct, torch.tensor([True, False]))
    assert full['val/accuracy/first_hop'] == full['val/accuracy/token_2'] == 0.5
    reversed_ = evaluate.path_metrics('val', loss, correct, torch.tensor([True, False]), first_hop_slot=1)
    assert reversed_['val/accuracy/first_hop'] == 0.5 and reversed_['val/accuracy/path'] == 0.5
    one = evaluate.path_metrics('val', loss[:, :1], correct[:, :1], torch.tensor([True, True]), first_hop_slot=0)
    assert one['val/accuracy/first_hop'] == one['val/accuracy/token_1'] == 1.0 and 'val/accuracy/token_2' not in one
    assert evaluate.best_key({**one, 'val/accuracy/first_hop': 0.25}) == (1.0, 0.25)


# -----------------------------------------------------------------------------
# whole runs: every variant trains, and its summary has exactly the names the sweep checks know

@pytest.mark.parametrize('overrides', VARIANTS[1:], ids=VARIANT_IDS[1:])
def test_a_tiny_run_of_each_variant_finishes_with_the_shared_metric_names(tmp_path, overrides, capsys):
    summary = train.train(tiny_config(tmp_path, epochs=4, eval_interval=2, **overrides))
    numeric = {k for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    names = sweep_space.summary_metric_names(3, path_target=overrides.get('path_target', 'full'))
    assert numeric == set(names)
    out = capsys.readouterr().out
    assert 'held-out first hop: final' in out and '   path    hop' in out
    if overrides.get('path_target') == 'first_hop':
        assert 'val/accuracy/token_2' not in summary and 'tok2' not in out
        assert summary['val/accuracy/first_hop'] == summary['val/accuracy/token_1'] == summary['val/accuracy/path']
    if overrides.get('path_target') == 'reversed':  # the first hop n1 is target 2 of leaf n1 root
        assert summary['val/accuracy/first_hop'] == summary['val/accuracy/token_2']


def test_print_eval_and_summary_show_the_first_hop_of_a_one_target_run(capsys):
    metrics = {'train/loss/overall': 1.0, 'train/accuracy/token_1': 0.5, 'train/accuracy/path': 0.5,
               'train/accuracy/first_hop': 0.5, 'val/loss/overall': 2.0, 'val/accuracy/token_1': 0.25,
               'val/accuracy/path': 0.25, 'val/accuracy/first_hop': 0.25, 'train/accuracy/edge_all': 0.75}
    evaluate.print_eval(metrics, 10, 1.0, 5, 0.1)
    evaluate.print_summary({**metrics, 'best/val/accuracy/first_hop': 0.3, 'chance/first_hop': 0.1,
                            'wall_time_s': 1.0, 'iter': 10, 'epoch': 1.0})
    out = capsys.readouterr().out
    assert '  val        0.250  0.250  0.250' in out and 'all-edge acc 0.750' in out
    assert 'held-out first hop: final 0.250, best 0.300 (chance 0.100)' in out


@pytest.mark.parametrize('variant', [dict(path_target='reversed'), dict(path_target='first_hop', root_in_prompt=True),
                                     dict(teacherless=True)])
def test_analyze_scores_the_first_hop_where_each_variant_predicts_it(tmp_path, variant):
    from pathstar.analysis import star
    from model import GPT, GPTConfig
    cfg = tiny_config(tmp_path, epochs=30, graph_d=8, graph_holdout_percentage=0.5, **variant)
    summary = train.train(cfg)
    ckpt = torch.load(tmp_path / 'out' / 'ckpt.pt', weights_only=True)
    model = GPT(GPTConfig(**ckpt['model_args']))
    model.load_state_dict(ckpt['model'])
    meta = ps.load_or_build(cfg, verbose=False).meta
    assert star.model_first_hop_accuracy(model, meta) == summary['val/accuracy/first_hop_teacher_forced']
