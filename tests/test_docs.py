"""Numbers the docs quote come from the committed results files that the quoting text names: a
results table in README is a copy of a table in results/, the demo block is the default seed's row of
results/phase_diagram.md, and the run counts and times are what results/reproduction.md records."""
import glob
import os
import re

import yaml

from conftest import ROOT


def read(path):
    with open(os.path.join(ROOT, path), encoding='utf-8') as f:
        return f.read()


README = read('README.md')
RESULTS = {os.path.relpath(p, ROOT): read(p) for p in glob.glob(os.path.join(ROOT, 'results', '**', '*.md'),
                                                                 recursive=True)}


def plain(line):
    return re.sub(r'\s+', ' ', line.replace('**', '')).strip()


def result_rows(text):
    """Table rows holding a measured value: a mean ± sd, or a verdict."""
    return [line for line in text.splitlines() if line.startswith('|')
            and ('±' in line or re.search(r'\| \*\*(agrees|differs|inconclusive)\*\* \|', line))]


def test_every_results_row_in_readme_is_a_row_of_a_committed_results_file():
    committed = {plain(line) for text in RESULTS.values() for line in text.splitlines()}
    rows = result_rows(README)
    assert len(rows) > 20  # the phase diagram, the reproduction and geometry tables
    stale = [row for row in rows if plain(row) not in committed]
    assert not stale, f"README rows no results file holds (rerun the command, then copy its table): {stale[:3]}"


def demo_rows():
    """{seed: (final first hop, best first hop, path, wall s)} of the demo table in results/phase_diagram.md."""
    text = RESULTS[os.path.join('results', 'phase_diagram.md')]
    block = text.split('the defaults (device=cpu):')[1].split('\n\n')[1]
    rows = re.findall(r'\| (\d+) \| ([\d.]+) \(([\d.]+)\) \| ([\d.]+) \| (\d+) s \|', block)
    return {int(seed): (float(a), float(b), float(p), int(w)) for seed, a, b, p, w in rows}


def test_the_demo_block_is_the_default_seeds_row_of_the_phase_diagram():
    block = README.split('```text\n', 1)[1].split('```', 1)[0]
    final, best = map(float, re.search(r'held-out first hop: final ([\d.]+), best ([\d.]+)', block).groups())
    path = float(re.search(r'held-out path: +final ([\d.]+)', block).group(1))
    wall = float(re.search(r'done in ([\d.]+)s', block).group(1))
    import configurator
    assert demo_rows()[configurator.DEFAULTS['seed']][:3] == (final, best, path)
    assert round(wall) == demo_rows()[configurator.DEFAULTS['seed']][3]


def test_the_five_seed_spread_quoted_beside_the_demo_is_its_table():
    quoted = re.search(r'it got ((?:\d+%, )+\d+% and \d+%) of the held-out first hops', README).group(1)
    percents = [int(p) for p in re.findall(r'(\d+)%', quoted)]
    assert percents == [round(100 * row[0]) for _, row in sorted(demo_rows().items())]


def test_the_reproductions_run_count_and_time_are_what_its_table_records():
    text = RESULTS[os.path.join('results', 'reproduction.md')]
    runs, minutes = re.search(r'(\d+) distinct runs .*?, ([\d.]+) min of training', text).groups()
    assert re.search(rf'\b{runs} runs took {minutes} minutes of training', README)


def test_the_phase_diagrams_run_count_and_time_are_what_its_table_records():
    text = RESULTS[os.path.join('results', 'phase_diagram.md')]
    minutes, runs = re.search(r'Wall time: ([\d.]+) min for (\d+) runs', text).groups()
    quoted = re.search(r'The (\d+) runs took (\d+) minutes of training', README)
    assert quoted and quoted.group(1) == runs and int(quoted.group(2)) == round(float(minutes))


def test_the_sweep_guides_sample_output_is_the_committed_run_of_the_minimal_config():
    guide = read('SWEEP_GUIDE.md')
    block = guide.split('**No wandb account.**', 1)[1].split('```text\n', 1)[1].split('```', 1)[0]
    committed = read(os.path.join('results', 'sweep_config_minimal.txt')).splitlines()
    assert committed[0] == '# python3 run_sweep.py --sweep_config sweep_config_minimal.yaml --project pathstar_sweep'
    assert block.splitlines() == [line for line in committed if not line.startswith('# ')]
    table = [line.split() for line in block.splitlines() if line.split()[1:2] == ['FINISHED']]
    swept = yaml.safe_load(read('sweep_config_minimal.yaml'))['parameters']
    # the table's learning rates and weight decays are the grid the file sweeps, each pair once
    assert sorted((float(t[3]), float(t[4])) for t in table) == sorted(
        (lr, wd) for lr in swept['learning_rate']['values'] for wd in swept['weight_decay']['values'])


def test_sample_configs_quote_no_timings_that_no_run_backs():
    for path in ('sweep_config.yaml', 'sweep_config_minimal.yaml'):
        comments = ' '.join(line for line in read(path).splitlines() if line.lstrip().startswith('#'))
        assert not re.search(r'\d+\s*(s|sec|seconds|min|minutes)\b', comments), path
        yaml.safe_load(read(path))
