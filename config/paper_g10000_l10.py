# G(10^4, 10) with the paper's settings (arXiv 2510.26745): 12 layers x 784 (the paper
# widens the model for this graph), 8 heads of 98, 10 pause tokens, edges in both
# directions, 75% of paths trained, AdamW wd 0.01, peak LR 5e-5 with warmup and cosine
# decay, no dropout or label smoothing.
# Tests: the longest paths: 9 hops, of which only the first is hard, from a 90,001-node graph.
# Expected: held-out path accuracy approaches 100%, more slowly than G(10^4, 6).
# A GPU run: ~3.6e5 training rows, ~350 iters per epoch.
graph_d = 10000
graph_l = 10
graph_holdout_percentage = 0.25
num_pause_tokens = 10
use_undirected = True
use_directional_tokens = True
n_layer = 12
n_head = 8
n_embd = 784
dropout = 0.0
label_smoothing = 0.0
learning_rate = 5e-5
min_lr = 5e-6
weight_decay = 0.01
batch_size = 1024
epochs = 5000
eval_interval = 1000
log_interval = 200
out_dir = 'out-g10000-l10'
