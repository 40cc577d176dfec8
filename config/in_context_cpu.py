# In-context path-star on a CPU (pathstar/data/incontext.py): every row is its own random star with graph_d=2
# arms of graph_l=5 nodes, as a shuffled '[EDGE] u v' list, then '[PATH] leaf _ _' and the root..leaf
# path. Validation graphs are never training graphs. 50,000 graphs seen 8 times, 1,568 iterations of 256 rows:
# enough for the teacher-forced model to learn every later hop (the Clever Hans signature: its first hop
# stays at the 1/2 chance); results/in_context.md has the measured numbers.
#   python3 train.py config/in_context_cpu.py
task = 'in_context'
graph_d = 2
graph_l = 5
num_pause_tokens = 2
num_train_graphs = 50000
num_val_graphs = 500
n_layer = 2
n_head = 2
n_embd = 64
learning_rate = 1e-3  # the in-weights demo's 1e-2 is for its one graph
batch_size = 256      # more steps over the same rows than the default (min(rows, 1024)) gives
epochs = 8
eval_interval = 392   # every 2 epochs
device = 'cpu'
out_dir = 'out/in_context_cpu'
