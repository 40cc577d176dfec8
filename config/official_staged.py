# The official code's staged recipe (--training_recipe staged_full_path), after config/official.py:
#   python3 train.py config/official.py config/official_g5000_l5.py config/official_staged.py
# Two runs in one: the edges alone (edge_* keys: lr 1e-2 to 1e-3, batch 16384, 2500 epochs, 500 warmup
# steps), then the training paths alone with a fresh AdamW and schedule (lr 5e-4 to 5e-5, batch 2048,
# 10000 epochs, 1000 warmup steps). The edge stage's model is saved as out_dir/edges.pt; later runs can
# start from it with --edge_checkpoint=.../edges.pt and train only the path stage (the official
# --skip_edge_memorization --edge_memorization_checkpoint_path).
recipe = 'two_stage'
out_dir += '-staged'  # out_dir comes from the configs applied before this one
