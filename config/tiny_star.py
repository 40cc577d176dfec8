# The official tiny star: 4 arms, paths of 5 nodes, 17 nodes (apply after config/tiny_graph.py).
# Unlike the official tiny study, which trains this star's edges alone, a star here is the
# path-star task: 3 training paths ride along, and 1 (25%) is held out.
graph = 'star'
graph_d = 4
graph_l = 5
out_dir += '-star'
