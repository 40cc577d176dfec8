"""
The model families: the registry (registry.py), Mamba (mamba.py) and the interface (base.py); the GPT is model.py.
May import: torch, pathstar.errors; the registry also the family modules (model.py at the root).
"""
