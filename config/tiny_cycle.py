# The official tiny cycle: 15 nodes in a ring (apply after config/tiny_graph.py).
graph = 'cycle'
cycle_n = 15
out_dir += '-cycle'
