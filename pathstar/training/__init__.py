"""
The graph-free side of a run: training recipes, metrics, checkpoints and the device; none imports another.
May import: pathstar.validate and everything below it, configurator; never sweeps, experiments or the root's scripts.
"""
