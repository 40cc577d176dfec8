"""The paper's contrasts (contrasts.py) and the phase diagram built from them (phase_diagram.py)."""
