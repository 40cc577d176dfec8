# The paper's recipe on G(10^4, 10): 9-hop paths on a 90,001-node graph, the model
# widened to 12 x 784 as in the paper (8 heads of 98). Apply after the paper config:
#   python3 train.py config/paper_g5000_l5.py config/g10000_l10.py
# Expected: held-out path accuracy approaches 100%, more slowly than G(10^4, 6)
# (~3.6e5 training rows, ~350 iterations per epoch on a GPU).
graph_d = 10000
graph_l = 10
num_pause_tokens = 10
n_embd = 784
out_dir = 'out-g10000-l10'
