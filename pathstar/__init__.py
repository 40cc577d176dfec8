"""
pathstar: the library behind the root's scripts (train.py, run_sweep.py, reproduce.py, analyze.py, ...).

Layers, top to bottom; a module imports its own layer and those below, never one above (pyproject.toml's
import-linter contracts check the package, tests/test_imports.py the whole house with the root's modules):

    experiments   the paper's contrasts and the phase diagram (reproduce.py's library)
    sweeps        the sweep YAML, the local optuna backend and its storage (run_sweep.py's library)
    analysis      geometry diagnostics and the Node2Vec baseline | training: recipes, metrics, checkpoints, device
    validate      build_config and check: the one validator, run once per run
    models        the model registry, Mamba, the interface (model.py, the GPT, sits at the root)
    data          the dataset cache, the task registry, in-weights and in-context rows, target slots
    graphs        the graph family registry, one module per family, the official code's files
    tokens, cli   token ids; the one-line-error argument parser (configurator.py, the key table, is here too)
    errors        UserError
"""
