# A star-tree: a root with 3 children, each the root of a binary tree, so each of the 12 root->leaf
# paths has 4 nodes (the official star_deg_3_deg_tree_2_path_4 graph, 22 nodes); whole subtrees held out
# (the official --split_subtree_holdout). Apply after config/tiny_graph.py.
graph = 'star_tree'
graph_d = 3
graph_l = 4
star_subtree_degree = 2
subtree_holdout = True
graph_holdout_percentage = 0.34
out_dir += '-star-tree'
