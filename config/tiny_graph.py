# The official tiny-graph study's transformer (its manifests: 1 layer, 1 head, width 32, LR 1e-2,
# 500 epochs of full batches, no weight decay or warmup, seed 7, edges both ways without
# direction markers, a task token). It trains edges only: apply a family after it, e.g.
#   python3 train.py config/tiny_graph.py config/tiny_grid.py
# Each family's run takes well under a minute on a 2-core CPU. The geometry report (spectrum,
# similarity, Fiedler vector, associative vs geometric edge recovery) is logged every other
# evaluation into out_dir/geometry/; compare it with
#   python3 baseline_node2vec.py config/tiny_graph.py config/tiny_grid.py
n_layer = 1
n_head = 1
n_embd = 32
learning_rate = 1e-2
min_lr = 1e-4
weight_decay = 0.0
warmup_frac = 0.0
epochs = 500
use_directional_tokens = False
seed = 7
eval_interval = 50
log_interval = 100
geometry_interval = 2
out_dir = 'out-tiny'
