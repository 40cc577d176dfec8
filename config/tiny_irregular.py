# The official tiny irregular graph: its fixed 16-node, 20-edge graph (a 12-node ring with two
# chords beside a complete graph on 4 nodes; apply after config/tiny_graph.py).
# graph_builder='pathstar' draws a random connected graph of irregular_n nodes and irregular_edges edges instead.
graph = 'irregular'
graph_builder = 'official'
irregular_n = 16
irregular_edges = 20
out_dir += '-irregular'
