# The official recipe on G(5000, 5), one of the three graphs checked in to the official repo
# (data/datasets/in_weights_graphs; its builder remakes them with --random_seed 0). Apply after it:
#   python3 train.py config/official.py config/official_g5000_l5.py
graph_d = 5000
graph_l = 5
out_dir = 'out-official-g5000-l5'
