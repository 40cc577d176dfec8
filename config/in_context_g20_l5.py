# The in-context task on G(20, 5): 20 arms per star (81 nodes, 80 edges: rows of 247 tokens), first-hop
# chance 1/20. Apply after config/in_context_g2_l5.py, whose model and optimiser it keeps:
#   python3 train.py config/in_context_g2_l5.py config/in_context_g20_l5.py
# 81 nodes do not fit in 50 labels, so 100. Not checked: the paper's label count and training-set size
# for this graph (the README of their code shows only G(2, 5)).
graph_d = 20
graph_vocab_size = 100
out_dir = 'out-in-context-g20-l5'
