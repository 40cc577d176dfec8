"""
The paper's contrasts (contrasts.py) and the phase diagram built from them (phase_diagram.py).
May import every layer below (sweeps, analysis, training, validate ...); the train function is handed in.
"""
