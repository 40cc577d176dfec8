# Control for config/paper_g5000_l5.py: the same run with edges in the forward direction
# only (parent -> child), so a leaf's embedding never has to predict its parent.
# Tests: the paper's claim that the reverse edges are what lets a leaf point at its arm.
# Expected: training paths are learnt, but the held-out first hop stays near chance
# (1/5000) and held-out path accuracy near 0, while the paper config reaches ~100%.
# Every other key equals the paper config, so the two runs differ in this one key
# (the data differ a little more: half the edge rows, and path_replication='auto' then repeats
# each training path 5 times instead of 10, to keep paths and edges balanced).
graph_d = 5000
graph_l = 5
graph_holdout_percentage = 0.25
num_pause_tokens = 5
use_undirected = False          # the control: parent -> child edges only
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
out_dir = 'out-g5000-l5-forward'
