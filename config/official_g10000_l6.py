# The official recipe on G(10000, 6), one of the three graphs checked in to the official repo
# (data/datasets/in_weights_graphs; its builder remakes them with --random_seed 0). Apply after it:
#   python3 train.py config/official.py config/official_g10000_l6.py
graph_d = 10000
graph_l = 6
out_dir = 'out-official-g10000-l6'
