"""
The datasets: the cache (cache.py) over the task registry (tasks.py) and each task's rows; slots.py reads them.
May import: pathstar.graphs, pathstar.tokens, pathstar.errors, configurator (the key table); never the validator,
the models or anything above: a data function takes a checked config and never checks it again.
"""
