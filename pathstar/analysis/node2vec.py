"""
The "Node2Vec" baseline of the official notebooks (baseline_node2vec.py is its command line): a node
embedding trained only to predict each node's graph neighbours. Not random walks: as in the official
code, one tied embedding E (n, dim), N(0, 1) init, trained full batch with plain SGD (E -= lr * grad) on
    loss = sum over nodes u with a neighbour of  mean over neighbours v of  -log softmax(E[u] @ E.T)[v]
(the softmax over all nodes; neighbours both ways; with add_self_edges a node is its own neighbour).
"""
import numpy as np
import torch

from pathstar.analysis import geometry as graph_geometry

EPOCHS, DIM, LR, SEED, INTERVAL = 10000, 100, 0.01, 7, 25  # the official notebooks' values
SMALL = 512  # nodes up to which one thread is fastest


class Diverged(RuntimeError):
    """The loss became NaN or infinite: the step size is too large. One line for the user, exit code 1."""


def neighbour_weights(n, edges, self_edges=False):
    """(n, n) float: row u is 1/deg(u) on u's neighbours (a mean over them), 0 for an isolated u."""
    a = graph_geometry.adjacency(n, edges)
    if self_edges:
        np.fill_diagonal(a, 1.0)
    degree = a.sum(axis=1, keepdims=True)
    return torch.from_numpy(a / np.maximum(degree, 1.0)).float()


def node2vec_loss(emb, weights):
    """The summed per-node mean of -log p(neighbour | node), all nodes at once."""
    return -(weights * torch.log_softmax(emb @ emb.T, dim=1)).sum()


def node2vec_grad(emb, weights):
    """(loss, d loss / d emb) in closed form, 3x faster than autograd on these tiny matrices. With
    logits S = E E^T: dL/dS = softmax(S) * rowsum(W) - W, and S is E twice: grad = (G + G^T) E."""
    logp = torch.log_softmax(emb @ emb.T, dim=1)
    g = logp.exp() * weights.sum(dim=1, keepdim=True) - weights
    return -(weights * logp).sum(), (g + g.T) @ emb


def geometric_recovery(emb, directed, k, self_edges):
    w = emb.double().numpy()
    return graph_geometry.topk_edge_recovery(w @ w.T, directed, k, allow_self=self_edges)


def train_node2vec(graph, epochs=EPOCHS, dim=DIM, lr=LR, seed=SEED, self_edges=False, interval=INTERVAL,
                   top_k=graph_geometry.TOP_K):
    """(embedding (n, dim) float64 numpy, history [dict(step, geometric, loss)]). Deterministic:
    the init comes from its own generator seeded with seed, not the global one (the same numbers
    as torch.manual_seed(seed); nn.Embedding(n, dim))."""
    n = graph.n
    weights = neighbour_weights(n, graph.edges, self_edges)
    directed = graph_geometry.directed_edges(n, graph.edges, self_edges)
    k = max(1, min(top_k, n - 1))
    threads = torch.get_num_threads()
    if n <= SMALL:  # threads only add overhead on tiny matrices (20x slower on a busy machine)
        torch.set_num_threads(1)
    try:
        emb = torch.empty(n, dim).normal_(generator=torch.Generator().manual_seed(seed))
        history = []
        for epoch in range(epochs + 1):
            loss, grad = node2vec_grad(emb, weights)
            if epoch % interval == 0 or epoch == epochs:
                if not np.isfinite(loss.item()):  # before the geometry, which a NaN embedding breaks
                    raise Diverged(f"the Node2Vec loss became {loss.item()} by epoch {epoch}: it diverged; lower "
                                   f"--n2v_lr (now {lr:g})")
                history.append(dict(step=epoch, geometric=geometric_recovery(emb, directed, k, self_edges),
                                    loss=loss.item()))
            if epoch < epochs:  # the last pass only measures
                emb -= lr * grad
    finally:
        torch.set_num_threads(threads)
    return emb.double().numpy(), history
