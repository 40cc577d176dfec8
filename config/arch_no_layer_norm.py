# Architecture control: no LayerNorm anywhere: ln_1, ln_2 and the final one removed (official --no-
# use_layer_norm).
# Apply after another config, e.g.
#   python3 train.py config/official.py config/official_g5000_l5.py config/arch_no_layer_norm.py
use_layer_norm = False
out_dir += '-no_layer_norm'  # out_dir comes from the configs applied before this one
