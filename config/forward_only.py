# Control: edges in the forward direction only (parent -> child), so a leaf's embedding
# never has to predict its parent. Apply after another config, e.g.
#   python3 train.py config/paper_g5000_l5.py config/forward_only.py
# Tests the paper's claim that the reverse edges are what lets a leaf point at its arm.
# Expected: training paths are learnt, but the held-out first hop stays near chance and
# held-out path accuracy near 0. The data differ a little more than this key: half the
# edge rows, so path_replication='auto' repeats each training path half as often.
use_undirected = False
out_dir += '-forward'  # out_dir comes from the configs applied before this one
