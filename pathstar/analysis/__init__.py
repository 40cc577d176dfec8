"""
Geometry diagnostics, in layers: plots.py (shared helpers) < geometry.py (dense maths on any graph)
< node2vec.py (the official baseline's embedding) < report.py (any family's report) < star.py (the
star's metrics, and the hook train.py calls).
May import: pathstar.models, pathstar.data, pathstar.graphs and below; never training, sweeps or experiments.
"""
