# Architecture control: no position table, so only causal attention tells positions apart (official --no-
# use_positional_encoding).
# Apply after another config, e.g.
#   python3 train.py config/official.py config/official_g5000_l5.py config/arch_no_positional_encoding.py
use_positional_encoding = False
out_dir += '-no_positional_encoding'  # out_dir comes from the configs applied before this one
