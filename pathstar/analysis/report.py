"""
The geometry report of a trained model on any graph family (geometry.py does the maths):
its node embeddings' spectrum, similarity and Fiedler plots, and the memorisation dynamics,

    associative  the model's own top-k next tokens after '[EDGE] (>) u' hold the edge's v
    geometric    u's k nearest nodes by embedding dot product hold v

tracked over training (out_dir/geometry/history.json, one point per geometry evaluation) as the
official code's --track_embedding_evolution does. How much of the edge memory the nearest-neighbour
rule explains, and when, is the question the paper asks of the tiny graphs.

train.py calls log() every geometry_interval evaluations; analyze.py calls report() on a checkpoint.
The star also keeps analyze.py's closed-form metrics, which stay fast at d = 10^4; these dense
(n x n) ones are computed up to MAX_NODES nodes.
"""
import json
import os

import numpy as np
import torch

from pathstar import graphs
from pathstar.data import inweights
from pathstar.analysis import geometry as graph_geometry

MAX_NODES = 4096   # dense n x n similarity and eigendecomposition up to here
FORWARD_ROWS = 4096  # edge prompts per forward pass


def node_embedding(model, graph):
    """(n, C) float64 rows of the (input) token embedding for the graph's nodes."""
    emb = model.transformer.wte.weight.detach().float().cpu().numpy()
    return graph_geometry.node_embeddings(emb, graph).astype(np.float64)


@torch.no_grad()
def associative_recovery(model, edge_rows, k):
    """Fraction of edge rows (n, edge length) whose last token is among the model's top k after the
    prompt before it (teacher-forced, as the official notebooks' associative top-k)."""
    if not len(edge_rows):
        return float('nan')
    model.eval()
    device = next(model.parameters()).device
    hits = 0
    for start in range(0, len(edge_rows), FORWARD_ROWS):
        rows = torch.from_numpy(np.asarray(edge_rows[start:start + FORWARD_ROWS], np.int64)).to(device)
        logits, _ = model(rows[:, :-1], positions=torch.full((len(rows), 1), rows.size(1) - 2, device=device))
        top = logits[:, 0].topk(k, dim=-1).indices
        hits += int((top == rows[:, -1:]).any(dim=1).sum())
    return hits / len(edge_rows)


def history_path(out_dir):
    return os.path.join(out_dir, 'history.json')


def read_history(out_dir, before):
    """The points recorded so far, those before step `before` (a resumed run redoes the later ones)."""
    try:
        with open(history_path(out_dir)) as f:
            return [h for h in json.load(f) if h['step'] < before]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return []


def report(model, cfg, out_dir, title, edge_rows, step=None, history=None, name='graph'):
    """Metrics of the model's node embedding on cfg's graph (graph_geometry.graph_metrics, plus
    geometry/associative_topk_edge_recovery) and the PNGs of graph_geometry.write_report in out_dir.
    With step, this evaluation's point joins history and the dynamics plot. Returns (metrics, pngs,
    history); ({}, {}, history) for graphs over MAX_NODES nodes."""
    graph = graphs.build(cfg)
    if graph.n > MAX_NODES:
        return {}, {}, history
    emb, self_edges = node_embedding(model, graph), cfg['add_self_edges']
    k = max(1, min(graph_geometry.TOP_K, graph.n - 1))
    associative = associative_recovery(model, edge_rows, k)
    if step is not None:
        geometric = graph_geometry.graph_metrics(emb, graph, top_k=k, self_edges=self_edges)
        history = (history or []) + [dict(step=step, associative=associative,
                                          geometric=geometric['geometry/topk_edge_recovery'],
                                          spectral_low_mass=geometric['geometry/spectral_low_mass'])]
    metrics, pngs = graph_geometry.write_report(emb, graph, out_dir, title, name=name, self_edges=self_edges,
                                                history=history, top_k=k)
    metrics['geometry/associative_topk_edge_recovery'] = associative
    return metrics, pngs, history


def log(model, cfg, step, edge_rows, title):
    """During training: report() into out_dir/geometry/ (graph_*.png, redrawn each time), the
    history kept in history.json. Returns the metrics."""
    out_dir = os.path.join(cfg['out_dir'], 'geometry')
    os.makedirs(out_dir, exist_ok=True)
    metrics, _, history = report(model, cfg, out_dir, title, edge_rows, step=step,
                                 history=read_history(out_dir, step))
    if metrics:
        tmp = f'{history_path(out_dir)}.tmp-{os.getpid()}'
        with open(tmp, 'w') as f:
            json.dump(history, f)
        os.replace(tmp, history_path(out_dir))
    return metrics


def of_checkpoint(model, cfg, meta, out_dir, title):
    """analyze.py's part: report() on a checkpoint's graph (its edge rows built in memory), the PNGs
    named graph_*; ({}, {}) for graphs over MAX_NODES nodes."""
    if meta['num_nodes'] > MAX_NODES:
        return {}, {}
    dcfg = inweights.data_config(cfg)
    arrays, _ = inweights.build_arrays(dcfg)
    edge_rows = arrays['train_rows'][:meta['num_edge_rows'], :meta['edge_row_len']]
    metrics, pngs, _ = report(model, dcfg, out_dir, title, edge_rows)
    return metrics, {f'graph_{name}': path for name, path in pngs.items()}
