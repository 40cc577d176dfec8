"""
Geometry diagnostics, in layers: plots.py (shared helpers) < geometry.py (dense maths on any graph)
< report.py (any family's report) < star.py (the star's metrics, and the hook train.py calls).
"""
