# In-context path-star on a CPU (pathstar/data/incontext.py): every row is its own random star with graph_d=2
# arms of graph_l=4 nodes, as a shuffled '[EDGE] u v' list, then '[PATH] leaf _ _' and the root..leaf
# path. Validation graphs are never training graphs. 50,000 graphs seen 10 times, 1,960 iterations of 256 rows,
# about 6 minutes on one CPU thread.
# Why 3 layers and l=4: a 2-layer model (at l=4 or 5, batch 64 or 256, lr 1e-3 to 3e-3, 2 or 4 heads, 8 epochs)
# stayed on the initial plateau with reversed targets, where each token is a lookup of the previous token's
# parent; 3 layers at l=4 leave it within 2-4 epochs (3 layers at l=5 had not by epoch 3). l=4 is the shortest
# star whose teacher-forced path has a lookup after the first hop (target 3, the child of the first hop; target
# 4 is the leaf, which the prompt names). results/in_context.md has the measured numbers.
#   python3 train.py config/in_context_cpu.py
task = 'in_context'
graph_d = 2
graph_l = 4
num_pause_tokens = 2
num_train_graphs = 50000
num_val_graphs = 500
n_layer = 3
n_head = 2
n_embd = 64
learning_rate = 1e-3  # the in-weights demo's 1e-2 is for its one graph
batch_size = 256      # more steps over the same rows than the default (min(rows, 1024)) gives
epochs = 10
eval_interval = 392   # every 2 epochs
device = 'cpu'
out_dir = 'out/in_context_cpu'
