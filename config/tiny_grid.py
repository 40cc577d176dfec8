# The official tiny grid: 4 x 4 nodes, 24 edges (apply after config/tiny_graph.py).
graph = 'grid'
grid_rows = 4
grid_cols = 4
out_dir += '-grid'
