# G(10^4, 6) with the paper's settings (arXiv 2510.26745): 12 layers x 384, 8 heads,
# 6 pause tokens, edges in both directions, 75% of paths trained, AdamW wd 0.01,
# peak LR 5e-5 with warmup and cosine decay, no dropout or label smoothing.
# Tests: does the geometric solution scale to 10^4 arms (first-hop chance 1e-4)?
# Expected: held-out path accuracy climbs to near 100% (the paper reports up to 100%),
# after a few thousand epochs. A GPU run: ~2e5 training rows, ~200 iters per epoch.
graph_d = 10000
graph_l = 6
graph_holdout_percentage = 0.25
num_pause_tokens = 6
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
out_dir = 'out-g10000-l6'
