# In-context path-star on a CPU (pathstar/data/incontext.py): every row is its own random star with graph_d=2
# arms of graph_l=5 nodes, as a shuffled '[EDGE] u v' list, then '[PATH] leaf _ _' and the root..leaf
# path. Validation graphs are never training graphs. 1,200 iterations, about 4.5 minutes on 2 cores.
#   python3 train.py config/in_context_cpu.py
task = 'in_context'
graph_d = 2
graph_l = 5
num_pause_tokens = 2
num_train_graphs = 4000
num_val_graphs = 500
n_layer = 2
n_head = 2
n_embd = 64
learning_rate = 1e-3  # the in-weights demo's 1e-2 is for its one graph
epochs = 300
eval_interval = 300
device = 'cpu'
out_dir = 'out/in_context_cpu'
