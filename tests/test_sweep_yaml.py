"""The sweep YAML as YAML and wandb read it: the shipped files' numbers are numbers (and pass wandb's
sweep schema), numbers read as strings warn, the file checks
(a value or a key listed twice, a random/bayes sweep with nothing to vary), and the summary's names."""
import glob
import os
import re

import pytest
import sweeps  # wandb's sweep-schema validator: README's test command installs it
import yaml

from pathstar.sweeps import space as sweep_space
import train
from conftest import ROOT, cli_result, tiny_config
import run_sweep as run_sweep_script

SHIPPED = ['sweep_config.yaml', 'sweep_config_minimal.yaml'] + sorted(
    os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, 'config', '*.yaml')))
NUMBER = re.compile(r'[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?')


def guide_blocks():
    with open(os.path.join(ROOT, 'SWEEP_GUIDE.md')) as f:
        return re.findall(r'^```yaml\n(.*?)^```', f.read(), re.M | re.S)


def shipped_docs():
    """(name, the YAML as PyYAML reads it) for every shipped sweep file and the guide's yaml examples."""
    docs = []
    for name in SHIPPED:
        with open(os.path.join(ROOT, name)) as f:
            docs.append((name, yaml.safe_load(f)))
    docs += [(f'SWEEP_GUIDE.md yaml block {i + 1}', yaml.safe_load(text)) for i, text in enumerate(guide_blocks())]
    return docs


def strings(doc):
    if isinstance(doc, dict):
        for value in doc.values():
            yield from strings(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from strings(value)
    elif isinstance(doc, str):
        yield doc


def test_the_shipped_files_and_guide_examples_are_found():
    assert 'config/pause_ablation_sweep.yaml' in SHIPPED
    assert len(guide_blocks()) >= 1


@pytest.mark.parametrize('name, doc', shipped_docs(), ids=[name for name, _ in shipped_docs()])
def test_every_number_in_the_shipped_yaml_loads_as_a_number(name, doc):
    assert [s for s in strings(doc) if NUMBER.fullmatch(s.strip())] == []


@pytest.mark.parametrize('name, doc', shipped_docs(), ids=[name for name, _ in shipped_docs()])
def test_the_shipped_yaml_passes_wandbs_sweep_schema(name, doc):
    assert sweeps.schema_violations_from_proposed_config(doc) == []


def test_wandbs_sweep_schema_rejects_a_number_read_as_a_string():
    doc = yaml.safe_load("method: random\nparameters:\n"
                         "  learning_rate: {distribution: log_uniform_values, min: 1e-4, max: 1.0e-2}\n")
    assert sweeps.schema_violations_from_proposed_config(doc) != []  # so the test above can fail


@pytest.mark.parametrize('name', SHIPPED)
def test_the_shipped_files_check_without_a_warning(name, capsys):
    sweep = sweep_space.check_sweep(sweep_space.load_sweep_file(os.path.join(ROOT, name)))
    sweep_space.check_combinations(sweep['parameters'])
    assert capsys.readouterr().err == ''


def test_the_guide_examples_check_without_a_warning(capsys):
    for text in guide_blocks():
        sweep_space.check_combinations(sweep_space.check_sweep(yaml.safe_load(text))['parameters'])
    assert capsys.readouterr().err == ''


# -----------------------------------------------------------------------------
# numbers YAML read as strings: parsed all the same, with one warning line each saying how to write them

def test_a_number_read_as_a_string_warns_how_to_write_it(tmp_path, capsys):
    path = tmp_path / 'sweep.yaml'
    path.write_text("method: random\nparameters:\n"
                    "  learning_rate: {distribution: log_uniform_values, min: 1e-4, max: 1.0e-2}\n"
                    "  epochs: {values: [1e3, 2000]}\n  n_layer: {value: '2'}\n  wandb_run_name: {value: '1e3'}\n")
    sweep = sweep_space.check_sweep(sweep_space.load_sweep_file(str(path)))
    params = sweep['parameters']
    assert params['learning_rate']['min'] == 1e-4 and params['epochs']['values'] == [1000, 2000]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {path}: learning_rate min '1e-4' was read by YAML as a string; "
        f"write 1.0e-4 so YAML and wandb read a number",
        f"warning: {path}: epochs values '1e3' was read by YAML as a string; "
        f"write 1000 so YAML and wandb read a number",
        f"warning: {path}: n_layer value '2' was read by YAML as a string; write 2 so YAML and wandb read a number",
    ]  # wandb_run_name is text: '1e3' is a fine run name


def test_a_sweep_with_numbers_read_as_strings_still_runs(tmp_path):
    (tmp_path / 'sweep.yaml').write_text("method: grid\nparameters: {learning_rate: {values: [1e-3, 3e-3]}}\n")
    result = run_sweep(['--sweep_config', 'sweep.yaml', '--dry_run'], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("was read by YAML as a string; write ") == 2


@pytest.mark.parametrize('text, kind', [('1e-4', 'float'), ('3E-3', 'float'), ('1e4', 'float'), ('+2.5e3', 'float'),
                                        ('-.5e-2', 'float'), ('7.', 'float'), ('0.001', 'float'), ('1e+2', 'float'),
                                        ('1e4', 'int'), ('2.0E3', 'int'), ('12', 'int')])
def test_the_suggested_spelling_is_a_number_to_yaml(text, kind):
    written = sweep_space.yaml_number(text, kind)
    loaded = yaml.safe_load(written)
    assert type(loaded) is (int if kind == 'int' else float), written
    assert loaded == float(text)


# -----------------------------------------------------------------------------
# sweep-file mistakes: one line `error: ...` on stderr, exit 2, nothing created

BAD = {
    'value_listed_twice': ("method: grid\nparameters:\n  n_layer: {values: [1, 2, 1]}\n",
                           "error: n_layer: values lists 1 twice; list each value once"),
    'value_spelt_two_ways': ("method: grid\nparameters:\n  learning_rate: {values: [1.0e-3, 3.0e-3, 0.001]}\n",
                             "error: learning_rate: values lists 0.001 twice"),
    'top_key_twice': ("method: grid\nparameters:\n  n_layer: {values: [1, 2]}\nmethod: random\n",
                      "error: bad.yaml: key 'method' is listed twice (lines 1 and 4); YAML would keep only the last"),
    'parameter_twice': ("method: grid\nparameters:\n  n_layer: {values: [1, 2]}\n  n_head: {value: 2}\n"
                        "  n_layer: {values: [3, 4]}\n", "key 'n_layer' is listed twice (lines 3 and 5)"),
    'spec_key_twice': ("method: grid\nparameters:\n  n_layer:\n    values: [1, 2]\n    values: [3]\n",
                       "key 'values' is listed twice (lines 4 and 5)"),
    'metric_key_twice': ("method: grid\nmetric: {name: val/loss/overall, goal: minimize, goal: maximize}\n"
                         "parameters: {n_layer: {values: [1, 2]}}\n", "key 'goal' is listed twice (lines 2 and 2)"),
    'bayes_all_fixed': ("method: bayes\nmetric: {name: val/loss/overall, goal: minimize}\nparameters:\n"
                        "  n_layer: {value: 2}\n  learning_rate: {value: 1.0e-3}\n",
                        "error: parameters: a bayes sweep needs a parameter to vary"),
    'random_one_value': ("method: random\nparameters:\n  n_layer: {values: [2]}\n",
                         "error: parameters: a random sweep needs a parameter to vary"),
}


def run_sweep(args, cwd):
    """python3 run_sweep.py args in cwd (in this process: conftest.run_cli), not logged in to wandb."""
    return cli_result(run_sweep_script.main, args, cwd, dict(HOME=str(cwd)))


@pytest.mark.parametrize('case', sorted(BAD))
def test_a_sweep_file_mistake_is_one_line_and_exit_2(case, tmp_path):
    text, message = BAD[case]
    (tmp_path / 'bad.yaml').write_text(text)
    result = run_sweep(['--sweep_config', 'bad.yaml', '--backend', 'local', '--create_only'], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith('error: ') and result.stderr.count('\n') == 1, result.stderr
    assert message in result.stderr
    assert os.listdir(tmp_path) == ['bad.yaml']  # nothing created


def test_merged_keys_may_be_overridden_and_a_fixed_grid_is_fine(tmp_path):
    path = tmp_path / 'sweep.yaml'
    path.write_text("method: grid\nparameters:\n  n_layer: &layers {values: [1, 2]}\n"
                    "  n_head: {<<: *layers, values: [2, 4]}\n  epochs: {value: 10}\n")
    assert sweep_space.check_sweep(sweep_space.load_sweep_file(str(path)))['parameters']['n_head'] == {'values': [2, 4]}
    grid = sweep_space.check_sweep(yaml.safe_load("method: grid\nparameters: {n_layer: {value: 2}}\n"))
    assert sweep_space.grid_size(grid['parameters']) == 1  # one point, run once: not an error


# -----------------------------------------------------------------------------
# metric names: what train() really returns

def test_every_numeric_key_of_a_real_summary_is_a_known_metric_name(tmp_path):
    summary = train.train(tiny_config(tmp_path, geometry_interval=1))
    numeric = {k for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    l = tiny_config(tmp_path)['graph_l']
    assert numeric <= set(sweep_space.summary_metric_names(l, geometry=True))
    assert {k for k in numeric if 'geometry/' not in k} <= set(sweep_space.summary_metric_names(l))
    assert set(sweep_space.GEOMETRY_NAMES) <= numeric  # held-out and training leaves: every geometry name
    assert {'train/loss/step', 'lr', 'tokens_per_sec'} <= numeric


@pytest.mark.parametrize('name, parameters', [
    ('train/loss/step', {}), ('lr', {}), ('tokens_per_sec', {}), ('mfu', {}),
    ('geometry/laplacian_alignment', {'geometry_interval': {'value': 2}}),
    ('best/geometry/diagonal_margin', {'geometry_interval': {'values': [0, 1]}}),
])
def test_metrics_the_summary_has_are_accepted_without_a_warning(name, parameters, capsys):
    sweep_space.check_metric_name(name, parameters)
    assert capsys.readouterr().err == ''


@pytest.mark.parametrize('name, parameters, hint', [
    ('geometry/laplacian_alignment', {}, 'geometry metrics need geometry_interval > 0'),
    ('mfu', {'device': {'value': 'cpu'}}, 'mfu is measured on CUDA devices only'),
])
def test_metrics_the_summary_lacks_in_this_sweep_warn_why(name, parameters, hint, capsys):
    sweep_space.check_metric_name(name, parameters)
    err = capsys.readouterr().err
    assert err.startswith(f"warning: metric {name!r} is not a summary key") and hint in err
