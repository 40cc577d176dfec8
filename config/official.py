# The official code's in-weights star recipe (Shahriarnz14/Geometric_Memory, in_weights/config.py
# defaults, --training_recipe mixed_full_path), key for key. Give the graph after it:
#   python3 train.py config/official.py --graph_d=5000 --graph_l=5
# or use official_g5000_l5.py, official_g10000_l6.py, official_g10000_l10.py; add config/official_staged.py
# for its staged recipe. config/paper_g5000_l5.py holds the values the paper's text states instead.
#
# Where we still differ from the official code (named, not hidden):
# - batches: each of our mini-batches holds edge and path rows in proportion (every row once an
#   epoch, the loss the mean over targets, as there); the official DataLoader shuffles them together
#   uniformly, so its batches vary in their mix;
# - evaluation: every eval_interval iterations (below: about every 10 epochs at G(5000,5)); the
#   official code evaluates every epoch, on the held-out paths only;
# - seeds: ours are seeded (seed below); the official training is not seeded at all;
# - token ids: our 6 special tokens come before the node ids, the official ones after them (a
#   relabelling of the vocabulary: same model, a different random draw at init);
# - small graphs: batch_size above the training rows is an error here (the official DataLoader takes
#   them all); pass --batch_size (and --edge_batch_size for the staged recipe) below graph_d of ~2000.

# the graph, as the official builder writes it (data/build_in_weights_datasets.py defaults)
graph_builder = 'official'      # node ids a permutation of range(N) and held-out leaves as its builder draws them
data_seed = 0                   # its --random_seed
graph_vocab_size = '1max'       # exactly N node labels (--total_nodes derived)
graph_holdout_percentage = 0.25  # --train_split_ratio 0.75: d - int(0.75 d) leaves held out
use_undirected = True           # --add_forward_edges --add_backward_edges (fb_11)
use_directional_tokens = False  # edge rows [EDGE] u v in both directions, no > / < marker
use_task_tokens = True          # [EDGE] / [PATH] first (it drops them with --exclude_task_token_in_prefix)
num_pause_tokens = 1            # --path_prefix_pause_token_count
path_replication = 1            # each training path once an epoch

# the model: 12 x 384, 8 heads, biases on, tanh GELU, its init
n_layer = 12
n_head = 8
n_embd = 384
dropout = 0.0
bias = True
gelu = 'tanh'
init = 'official'

# the optimiser: torch's AdamW defaults but weight decay 0.01 on every parameter, no clipping
learning_rate = 5e-4            # --path_finetuning_learning_rate
min_lr = 5e-5                   # cosine to lr / 10
warmup_iters = 1000             # --path_finetuning_warmup_steps, ramping from 0
lr_decay_frac = 1.0             # the cosine ends at the last step
decay_lr = True
beta1 = 0.9
beta2 = 0.999
weight_decay = 0.01
decay_params = 'all'
grad_clip = 0.0
label_smoothing = 0.0

# length and batches
batch_size = 2048               # --path_finetuning_batch_size
epochs = 10000                  # --path_finetuning_epochs
recipe = 'interleaved'          # mixed_full_path: edges and training paths shuffled together

# its staged recipe's edge stage (used by config/official_staged.py)
edge_learning_rate = 1e-2       # --edge_memorization_learning_rate
edge_min_lr = 1e-3
edge_warmup_iters = 500
edge_batch_size = 16384
edge_epochs = 2500

eval_interval = 200
log_interval = 100
out_dir = 'out-official'
