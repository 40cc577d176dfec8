# Architecture control: the official code's "feedforward" model (label feedforward_plain): no attention,
# each block one Linear(d, d) with no activation (--use_mlp_only_blocks), no residual connections
# (--no-use_residual_connections), no LayerNorm (--no-use_layer_norm) and no position table
# (--no-use_positional_encoding). Embeddings and head stay tied. Apply after another config, e.g.
#   python3 train.py config/official_g5000_l5.py config/arch_mlp_only.py
# Tests how much of the task a per-token linear map of the embeddings learns: a bigram model at best,
# so the first hop of a path stays near chance.
use_attention = False
use_mlp_only_blocks = True
use_residual = False
use_layer_norm = False
use_positional_encoding = False
out_dir += '-mlp_only'  # out_dir comes from the configs applied before this one
