# The in-context task on G(5, 5): 5 arms per star, first-hop chance 1/5. Apply after
# config/in_context_g2_l5.py, whose model, data sizes and optimiser it keeps:
#   python3 train.py config/in_context_g2_l5.py config/in_context_g5_l5.py
# Not checked: that the paper trains G(5, 5) with these 50 node values and 200,000 graphs (the README of
# their code shows only G(2, 5)); 21 nodes fit in 50 values.
graph_d = 5
out_dir = 'out-in-context-g5-l5'
