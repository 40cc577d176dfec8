"""
Sweeps: the sweep YAML checked (space.py), the local optuna backend (local.py) and its storage (storage.py).
May import: pathstar.training, pathstar.validate and below; the train function is handed in, never imported.
"""
