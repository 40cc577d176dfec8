# The in-context path-star task as Bachmann & Nagarajan train it from scratch ("The pitfalls of
# next-token prediction", ICML 2024, arXiv 2403.06963), on G(2, 5): every row its own star with 2 arms
# of 5 nodes, labels from 50 values. A GPU run.
# Checked against the from-scratch command in the README of their code (gregorbachmann/next-token-failures):
# degree 2, path 5, 50 node values, 200,000 training and 20,000 test graphs, a GPT of 6 layers x 384 with
# 6 heads, batch 256, learning rate 1e-4.
# Their prompt '/ root leaf =' names the root, hence root_in_prompt and no pause tokens here.
# Not checked (the README does not give them): their number of epochs, weight decay, dropout and learning-
# rate schedule; these are this repo's defaults, and 100 epochs (78,200 iterations) is our choice.
# Variants apply after this file, e.g.
#   python3 train.py config/in_context_g2_l5.py config/teacherless.py
#   python3 train.py config/in_context_g2_l5.py config/in_context_g5_l5.py
# Expected (the paper): teacher-forced, held-out paths at about chance (first hop ~1/2) while every later
# token is right (the Clever Hans cheat); teacherless or reversed targets do better.
task = 'in_context'
graph_d = 2
graph_l = 5
graph_vocab_size = 50
root_in_prompt = True
num_pause_tokens = 0
num_train_graphs = 200000
num_val_graphs = 20000
n_layer = 6
n_head = 6
n_embd = 384
batch_size = 256
learning_rate = 1e-4
min_lr = 1e-5
epochs = 100
eval_interval = 2000
log_interval = 200
out_dir = 'out-in-context-g2-l5'
