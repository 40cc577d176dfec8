# The paper's recipe on G(10^4, 6): does the geometric solution scale to 10^4 arms
# (first-hop chance 1e-4)? Apply after the paper config:
#   python3 train.py config/paper_g5000_l5.py config/g10000_l6.py
# Expected: held-out path accuracy climbs to near 100% after a few thousand epochs
# (~2e5 training rows, ~200 iterations per epoch on a GPU).
graph_d = 10000
graph_l = 6
num_pause_tokens = 6
out_dir = 'out-g10000-l6'
