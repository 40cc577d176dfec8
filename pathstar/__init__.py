"""
pathstar: the library behind the root's scripts (train.py, run_sweep.py, analyze.py, reproduce.py, ...).

Layers, top to bottom; a module imports only from layers below its own (pyproject.toml's import-linter
contract checks it, and tests/test_arch.py checks that no project module is in an import circle):

    pathstar.experiments   the paper's contrasts and the phase diagram (reproduce.py's library)
    pathstar.analysis      geometry diagnostics: the star's metrics and plots, every family's report
    pathstar.cli           the one-line-error argument parser every command line shares
    pathstar.errors        UserError

The data, model, training and sweep modules still sit at the root; issue [2 of 4] moves them here.
"""
