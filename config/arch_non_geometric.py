# Architecture control: the official code's --weight_init_mode=non_geometric: the output head, and so
# the tied token embedding, starts from N(0, 1) instead of N(0, 0.02); nothing else changes.
# (Untied, only the output head is re-drawn, as in the official code.) Apply after another config, e.g.
#   python3 train.py config/official_g5000_l5.py config/arch_non_geometric.py
# Tests whether a large random initial embedding, far from any graph geometry, still lets the model
# learn the held-out paths (and whether the geometry metrics rise as they do from a small init).
weight_init = 'non_geometric'
out_dir += '-non_geometric'  # out_dir comes from the configs applied before this one
