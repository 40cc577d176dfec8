"""Two reproduce.py processes sharing a checkout share its trials, and Ctrl-C in the middle of one leaves
runs that the next call finishes, at a toy size (forked children inherit the toy scale)."""
import multiprocessing
import os
import signal
import time

import pytest

import reproduce
from pathstar.experiments import contrasts

TINY = dict(graph_d=8, graph_l=3, graph_holdout_percentage=0.25, n_layer=1, n_head=2, n_embd=16, epochs=30,
            eval_interval=1000, log_interval=1000, eval_samples=4, device='cpu')
ARGS = ['--quick', '--only', 'edge_directions']  # two arms, one graph each


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    scale = contrasts.Scale('toy', (1, 2), (TINY,), ('config/in_context_cpu.py', dict(
        graph_l=3, n_embd=16, num_train_graphs=16, num_val_graphs=8, epochs=1, eval_interval=1000, eval_samples=4)),
        'results/quick')
    monkeypatch.setitem(contrasts.SCALES, 'quick', scale)
    return tmp_path


def finished_runs(root):
    return sorted(d for d, _, files in os.walk(root / 'sweeps') if 'summary.json' in files)


def started_runs(root):
    return [d for d, _, files in os.walk(root / 'sweeps') if '.lock' in files]


def run(args):
    os._exit(reproduce.stoppable(args) or 0)  # what `python3 reproduce.py` runs


def test_two_processes_on_one_checkout_train_each_run_once(toy):
    fork = multiprocessing.get_context('fork')
    agents = [fork.Process(target=run, args=(ARGS,)) for _ in range(2)]
    for agent in agents:
        agent.start()
    for agent in agents:
        agent.join(timeout=600)
    assert [agent.exitcode for agent in agents] == [0, 0]
    assert len(finished_runs(toy)) == 4  # 2 arms x 2 graphs, none twice
    assert (toy / 'results' / 'quick' / 'edge_directions.md').read_text().count('| 2/2 |') == 2


def test_ctrl_c_in_the_middle_leaves_runs_the_next_call_finishes(toy):
    agent = multiprocessing.get_context('fork').Process(target=run, args=(ARGS,))
    agent.start()
    deadline = time.time() + 300
    while not started_runs(toy):  # a trial has claimed its out_dir: training is under way
        assert time.time() < deadline and agent.is_alive()
        time.sleep(0.05)
    os.kill(agent.pid, signal.SIGINT)
    agent.join(timeout=120)
    assert agent.exitcode in (128 + signal.SIGINT, 0)  # 0: its last run had just finished
    assert reproduce.main(ARGS) == 0
    assert len(finished_runs(toy)) == 4
    assert (toy / 'results' / 'quick' / 'edge_directions.md').read_text().count('| 2/2 |') == 2
