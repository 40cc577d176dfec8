# Architecture control: blocks without attention, x + mlp(ln_1(x)) (no ln_2). Each position then sees
# only its own token (and its position), so nothing can carry the leaf of the prompt to the path.
# Matches the official code's --no-use_attention. Apply after another config, e.g.
#   python3 train.py config/official_g5000_l5.py config/arch_no_attention.py
# Expected: edges are learned (an edge row's target follows from the token before it), held-out
# and trained paths stay near chance 1/graph_d for the first hop.
use_attention = False
out_dir += '-no_attention'  # out_dir comes from the configs applied before this one
