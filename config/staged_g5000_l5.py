# Recipe ablation for config/paper_g5000_l5.py: the same run, but staged: the first half
# of the epochs trains edge rows alone, the second half path rows alone (recipe = 'staged',
# implemented in train.py), instead of shuffling edges and paths together.
# Tests: the paper's report that staged training (edges first, then paths) is unstable.
# Expected: a less reliable held-out accuracy than the interleaved paper run (rising late, or
# collapsing, or varying across seeds); compare several seeds before concluding anything.
# Every other key equals the paper config, so the two runs differ in the recipe only.
graph_d = 5000
graph_l = 5
graph_holdout_percentage = 0.25
num_pause_tokens = 5
use_undirected = True
use_directional_tokens = True
n_layer = 12
n_head = 8
n_embd = 384
dropout = 0.0
label_smoothing = 0.0
learning_rate = 5e-5
min_lr = 5e-6
weight_decay = 0.01
batch_size = 1024
epochs = 5000
eval_interval = 1000
log_interval = 200
recipe = 'staged'               # the ablation: edges alone, then paths alone
staged_edge_frac = 0.5
out_dir = 'out-g5000-l5-staged'
