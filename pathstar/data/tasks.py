"""
The tasks, one module each, and their registry TASKS (the key `task`):

    in_weights   one fixed graph: its edges and training paths are the rows (inweights.py)
    in_context   every row carries its own random star (incontext.py)

A task module provides data_config(cfg), meta_scalars(cfg), build_arrays(cfg), folder_name(dcfg),
layouts(meta), SAVED (the meta arrays the cache keeps as files), SIZE_KEY and SMALLER (the key a dataset
too big for memory is blamed on, and the advice), summary(data) and check(cfg) (its rules, raising
UserError). Adding a task is one module and one line here, plus its keys in configurator.py.
"""
from pathstar.data import incontext, inweights
from pathstar.errors import UserError

TASKS = {'in_weights': inweights, 'in_context': incontext}
TASK_READS = tuple(dict.fromkeys(k for t in TASKS.values() for k in t.READS))  # what the tasks' checks read


def task(cfg):
    """The module of cfg's task (in_weights when cfg names none); an unknown one is a UserError."""
    name = cfg.get('task', 'in_weights')
    if name not in TASKS:
        raise UserError(f"task: expected one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name]
