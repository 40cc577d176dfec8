# Architecture control: the official code's Mamba model in place of the GPT (official --model_family mamba;
# mamba_d_state, mamba_d_conv, mamba_expand at their official defaults).
# Apply after another config, e.g.
#   python3 train.py config/official.py config/official_g5000_l5.py config/arch_mamba.py
model_type = 'mamba'
out_dir += '-mamba'  # out_dir comes from the configs applied before this one
bias = True  # the official Mamba blocks' LayerNorm has a bias (the GPT's LayerNorms follow the same key)
gelu, init = 'exact', 'nanogpt'  # back at their defaults: they are the GPT's, and a Mamba run refuses others
