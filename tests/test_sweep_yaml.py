"""The sweep YAML as YAML and wandb read it: the shipped files' numbers are numbers (and pass wandb's
sweep schema where the sweeps package is installed), and numbers read as strings warn."""
import glob
import os
import re
import subprocess
import sys

import pytest
import yaml

import sweep_space
from conftest import ROOT

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
    sweeps = pytest.importorskip('sweeps', reason="wandb's sweep schema validator is in the sweeps package "
                                                  "(pip install --no-deps sweeps jsonref)")
    assert sweeps.schema_violations_from_proposed_config(doc) == []


def test_wandbs_sweep_schema_rejects_a_number_read_as_a_string():
    sweeps = pytest.importorskip('sweeps', reason="wandb's sweep schema validator is in the sweeps package")
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
    assert sweep['parameters']['learning_rate']['min'] == 1e-4 and sweep['parameters']['epochs']['values'] == [1000, 2000]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {path}: learning_rate min '1e-4' was read by YAML as a string; "
        f"write 1.0e-4 so YAML and wandb read a number",
        f"warning: {path}: epochs values '1e3' was read by YAML as a string; write 1000 so YAML and wandb read a number",
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


def run_sweep(args, cwd):
    env = dict(os.environ, HOME=str(cwd), OMP_NUM_THREADS='1')
    env.pop('WANDB_API_KEY', None)
    return subprocess.run([sys.executable, os.path.join(ROOT, 'run_sweep.py'), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
