# Recipe ablation: staged training, the first half of the epochs on edge rows alone, the
# second half on path rows alone, instead of shuffling edges and paths together.
# Apply after another config, e.g.
#   python3 train.py config/paper_g5000_l5.py config/staged.py
# Tests the paper's report that staged training (edges first, then paths) is unstable.
# Expected: a less reliable held-out accuracy than the interleaved run (rising late, or
# collapsing, or varying across seeds); compare several seeds before concluding anything.
recipe = 'staged'
staged_edge_frac = 0.5
out_dir += '-staged'  # out_dir comes from the configs applied before this one
