# G(5000, 5) with the paper's settings (arXiv 2510.26745): 12 layers x 384, 8 heads,
# 5 pause tokens, edges in both directions, 75% of paths trained, AdamW wd 0.01,
# peak LR 5e-5 with warmup and cosine decay, no dropout or label smoothing.
# A GPU run: the paper trains for thousands of epochs.
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
out_dir = 'out-g5000-l5'
