"""Two reproduce.py processes sharing a checkout share its trials, and Ctrl-C in the middle of one leaves
runs that the next call finishes, at a toy size. Each agent is its own interpreter (a fresh process,
as a user starts it), never a fork of the test's, which holds torch's thread pools."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARGS = ['--quick', '--only', 'edge_directions']  # two arms, one graph each
# reproduce.py with its quick scale shrunk to a toy: two graphs of 13 nodes, 30 epochs of a 16-wide GPT
AGENT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import reproduce
from pathstar.experiments import contrasts
tiny = dict(graph_d=8, graph_l=3, graph_holdout_percentage=0.25, n_layer=1, n_head=2, n_embd=16, epochs=30,
            eval_interval=1000, log_interval=1000, eval_samples=4, device='cpu')
contrasts.SCALES['quick'] = contrasts.Scale('toy', (1, 2), (tiny,), ('config/in_context_cpu.py', dict(
    graph_l=3, n_embd=16, num_train_graphs=16, batch_size='auto', num_val_graphs=8, epochs=1, eval_interval=1000,
    eval_samples=4)),
    'results/quick')
sys.exit(reproduce.stoppable(sys.argv[1:]))
"""


@pytest.fixture
def toy(tmp_path):
    (tmp_path / 'agent.py').write_text(AGENT)
    return tmp_path


def start(root):
    env = dict(os.environ, OMP_NUM_THREADS='1', WANDB_MODE='offline')
    return subprocess.Popen([sys.executable, 'agent.py', *ARGS], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(agent, timeout):
    try:
        _, err = agent.communicate(timeout=timeout)
    finally:
        agent.kill()  # a no-op once it has ended; never leave an agent behind the test
    return agent.returncode, err


def finished_runs(root):
    return sorted(d for d, _, files in os.walk(root / 'sweeps') if 'summary.json' in files)


def started_runs(root):
    return [d for d, _, files in os.walk(root / 'sweeps') if '.lock' in files]


def test_two_processes_on_one_checkout_train_each_run_once(toy):
    agents = [start(toy) for _ in range(2)]
    results = [finish(agent, 300) for agent in agents]
    assert [code for code, _ in results] == [0, 0], results
    assert len(finished_runs(toy)) == 4  # 2 arms x 2 graphs, none twice
    assert (toy / 'results' / 'quick' / 'edge_directions.md').read_text().count('| 2/2 |') == 2


def test_ctrl_c_in_the_middle_leaves_runs_the_next_call_finishes(toy):
    agent = start(toy)
    deadline = time.time() + 120
    while not started_runs(toy):  # a trial has claimed its out_dir: training is under way
        if time.time() > deadline or agent.poll() is not None:
            pytest.fail(f'no trial started: {finish(agent, 1)}')
        time.sleep(0.05)
    agent.send_signal(signal.SIGINT)
    code, err = finish(agent, 60)
    assert code in (128 + signal.SIGINT, 0), err  # 0: its last run had just finished
    code, err = finish(start(toy), 300)
    assert code == 0, err
    assert len(finished_runs(toy)) == 4
    assert (toy / 'results' / 'quick' / 'edge_directions.md').read_text().count('| 2/2 |') == 2
