# Architecture control: the official code's "associative" model (--freeze_token_embeddings): the token
# embedding, the output head and the position table keep their initial values; only the blocks train.
# Apply after another config, e.g.
#   python3 train.py config/official_g5000_l5.py config/arch_frozen_embeddings.py
# Tests whether the embeddings must move into a graph-shaped geometry for the task to be solved: the
# geometry metrics stay at their random values by construction; compare val/accuracy/path with the
# unfrozen run.
freeze_token_embeddings = True
out_dir += '-frozen_embeddings'  # out_dir comes from the configs applied before this one
