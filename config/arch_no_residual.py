# Architecture control: blocks without skip connections, x = attn(ln_1(x)) and then mlp(ln_2(x)) (official --no-
# use_residual_connections).
# Apply after another config, e.g.
#   python3 train.py config/official.py config/official_g5000_l5.py config/arch_no_residual.py
use_residual = False
out_dir += '-no_residual'  # out_dir comes from the configs applied before this one
