"""
Checking a whole config: check(cfg) is the one authority over whether a config can run.

Each rule is a function registered with @rule(keys...) that names every key it reads, so
the sweep checker knows which swept values it must combine (sweep_space.check_combinations),
and a test holds each rule to its declared keys. A broken rule raises UserError, one line
that names the key. Nothing here builds data or imports torch; whether this machine has the
device or dtype is device.py's separate question. configurator.py re-exports what callers use.

The project modules a rule needs (pathstar_data, configurator) are imported inside it: they
import this module at their top.
"""
import math
import os
import re
from typing import NamedTuple

from pathstar.errors import UserError


AUTO_BATCH_ROWS = 1024   # batch_size='auto' = min(training rows, this)
RULES = []               # (keys a rule reads, the rule)


def rule(*keys):
    def register(fn):
        RULES.append((keys, fn))
        return fn
    return register


def require(ok, message):
    if not ok:
        raise UserError(message)


def check(cfg):
    """Raise UserError (one line naming the key) unless every rule holds; return cfg."""
    for _, fn in RULES:
        fn(cfg)
    return cfg


# one-key bounds, as (smallest allowed value, key...)
AT_LEAST = ((2, 'graph_d', 'graph_l'),
            (1, 'n_layer', 'n_head', 'n_embd', 'epochs', 'gradient_accumulation_steps', 'eval_interval',
             'log_interval', 'eval_samples', 'edge_batch_size', 'edge_epochs', 'num_train_graphs',
             'num_val_graphs'),
            (1, 'mamba_d_state', 'mamba_d_conv', 'mamba_expand'),
            (0, 'num_pause_tokens', 'max_iters', 'geometry_interval', 'seed', 'data_seed', 'weight_decay',
             'grad_clip', 'checkpoint_interval', 'warmup_iters', 'edge_warmup_iters'))
BELOW_ONE = ('graph_holdout_percentage', 'dropout', 'label_smoothing', 'beta1', 'beta2')  # in [0, 1)


def bound_rule(key, low):
    rule(key)(lambda cfg: require(cfg[key] >= low, f"{key}: must be >= {low}, got {cfg[key]}"))


def unit_rule(key):
    rule(key)(lambda cfg: require(0 <= cfg[key] < 1, f"{key}: must be in [0, 1), got {cfg[key]}"))


for low, *keys in AT_LEAST:
    for key in keys:
        bound_rule(key, low)
for key in BELOW_ONE:
    unit_rule(key)
for key in ('batch_size', 'path_replication'):  # configurator.AUTO_OR_INT
    rule(key)(lambda cfg, key=key: require(cfg[key] == 'auto' or cfg[key] >= 1,
                                           f"{key}: must be 'auto' or an int >= 1, got {cfg[key]}"))


@rule('seed')
def seed_fits(cfg):  # torch seeds take 64 bits; train.epoch_order multiplies the seed
    require(cfg['seed'] < 2 ** 32, f"seed: must be < 2**32, got {cfg['seed']}")


@rule('learning_rate', 'min_lr')
def lr_range(cfg):
    require(cfg['learning_rate'] > 0, f"learning_rate: must be > 0, got {cfg['learning_rate']}")
    require(0 <= cfg['min_lr'] <= cfg['learning_rate'],
            f"min_lr: must be in [0, learning_rate={cfg['learning_rate']}], got {cfg['min_lr']}")


@rule('edge_learning_rate', 'edge_min_lr')
def edge_lr_range(cfg):
    require(cfg['edge_learning_rate'] > 0, f"edge_learning_rate: must be > 0, got {cfg['edge_learning_rate']}")
    require(0 <= cfg['edge_min_lr'] <= cfg['edge_learning_rate'],
            f"edge_min_lr: must be in [0, edge_learning_rate={cfg['edge_learning_rate']}], got {cfg['edge_min_lr']}")


@rule('edge_checkpoint', 'recipe')
def edge_checkpoint_needs_two_stages(cfg):
    require(not cfg['edge_checkpoint'] or cfg['recipe'] == 'two_stage',
            f"edge_checkpoint: only recipe='two_stage' has an edge stage to skip, got recipe={cfg['recipe']!r}")


@rule('edge_checkpoint')
def edge_checkpoint_is_a_file(cfg):  # checked with the config, before any dataset is built or out_dir made
    path = cfg['edge_checkpoint']
    if not path or os.path.isfile(path):
        return
    if os.path.isdir(path):
        raise UserError(f"edge_checkpoint: {path} is a folder; name the edges.pt inside it")
    if os.path.islink(path):
        raise UserError(f"edge_checkpoint: {path} is a symlink to {os.readlink(path)}, which does not exist")
    raise UserError(f"edge_checkpoint: {path} does not exist")


@rule('warmup_frac', 'lr_decay_frac')
def schedule_fractions(cfg):
    require(0 <= cfg['warmup_frac'] <= cfg['lr_decay_frac'] <= 1,
            f"warmup_frac, lr_decay_frac: need 0 <= warmup_frac <= lr_decay_frac <= 1, "
            f"got {cfg['warmup_frac']}, {cfg['lr_decay_frac']}")


@rule('model_type', 'use_attention', 'use_mlp_only_blocks', 'use_residual', 'use_positional_encoding')
def gpt_only_controls(cfg):  # a Mamba block has no attention, MLP, residual or position table to take away
    import configurator
    if cfg['model_type'] == 'mamba':
        for key in ('use_attention', 'use_mlp_only_blocks', 'use_residual', 'use_positional_encoding'):
            default = configurator.DEFAULTS[key]
            require(cfg[key] == default, f"{key}: applies to model_type='gpt' only (a Mamba block has no "
                                         f"attention, MLP, residual or position table); leave it at {default!r}")


@rule('n_embd', 'n_head', 'model_type', 'use_attention')
def heads_divide_width(cfg):  # Mamba, and a GPT without attention, have no heads to divide the width among
    require(cfg['model_type'] == 'mamba' or not cfg['use_attention'] or cfg['n_embd'] % cfg['n_head'] == 0,
            f"n_embd: must be divisible by n_head, got n_embd={cfg['n_embd']}, n_head={cfg['n_head']}")


# No rule rejects a combination of the architecture keys: each one still trains. n_layer >= 1 and every
# block keeps a weight matrix (its MLP, or the Linear(d, d) of use_mlp_only_blocks), so even with
# freeze_token_embeddings something is left to train; the controls that cannot solve the task (no
# attention, no positions) are the point of running them.


@rule('device')
def device_name(cfg):
    dev = cfg['device']
    require(dev in ('auto', 'cpu', 'mps', 'cuda') or re.fullmatch(r'cuda:\d+', dev),
            f"device: expected auto, cpu, cuda, cuda:N or mps, got {dev!r}")


@rule('dtype', 'device')
def dtype_runs_on_device(cfg):  # autocast to half precision runs on CUDA only: it would silently be fp32
    require(cfg['dtype'] in ('auto', 'float32') or cfg['device'] in ('auto', 'cuda') or
            cfg['device'].startswith('cuda:'), f"dtype: {cfg['dtype']} needs a CUDA device, got "
                                               f"device={cfg['device']!r}; use dtype=auto or float32")


@rule('wandb_project')
def wandb_project_name(cfg):  # wandb refuses these when the run starts, after the data is built
    name = cfg['wandb_project']
    bad = sorted(set(name) & set('/\\#?%:'))
    require(0 < len(name) <= 128 and not bad, f"wandb_project: {name!r} is not a wandb project name (at most 128 "
                                              f"characters, none of / \\ # ? % :)")


# -----------------------------------------------------------------------------
# the graph families (graphs.py builds them; the counts and rules are here, known before any build)

GRAPH_KEYS = ('graph', 'graph_d', 'graph_l', 'star_subtree_degree', 'subtree_holdout', 'grid_rows', 'grid_cols',
              'cycle_n', 'irregular_n', 'irregular_edges', 'graph_holdout_percentage', 'graph_builder')
FAMILY_KEYS = dict(star=('graph_d', 'graph_l'), star_tree=('graph_d', 'graph_l', 'star_subtree_degree',
                                                          'subtree_holdout'),
                   grid=('grid_rows', 'grid_cols'), cycle=('cycle_n',), irregular=('irregular_n', 'irregular_edges'))
MAX_GRAPH_NODES = 2 ** 31  # node indices are int64, but a graph this big would not fit in memory anyway


class GraphSizes(NamedTuple):
    nodes: int
    edges: int      # undirected, self-edges not counted
    paths: int      # root->leaf paths of the path task (0: edges only)
    held_out: int   # of those paths, never trained


def holdout_count(d, percentage, builder='pathstar'):
    """How many of d paths (or subtrees) are held out: d * percentage rounded half up (0.05 of 10 is 1);
    the official builder trains int(d * (1 - percentage)) of them and holds out the rest."""
    if builder == 'official':
        return d - int(d * round(1 - percentage, 12))  # round: 1 - 0.25 is the 0.75 the official code is given
    return int(d * percentage + 0.5 + 1e-9)  # the 1e-9 keeps 0.05 * 10 = 0.4999.. from rounding down


def graph_sizes(cfg):
    """GraphSizes of cfg's graph, from its GRAPH_KEYS alone."""
    family, d, l, p = cfg['graph'], cfg['graph_d'], cfg['graph_l'], cfg['graph_holdout_percentage']
    if family == 'star':
        return GraphSizes(d * (l - 1) + 1, d * (l - 1), d, holdout_count(d, p, cfg['graph_builder']))
    if family == 'star_tree':
        k = cfg['star_subtree_degree']
        nodes = 1 + d * (k ** (l - 1) - 1) // (k - 1) if k > 1 else d * (l - 1) + 1
        leaves = d * k ** (l - 2)
        held = holdout_count(d, p) * k ** (l - 2) if cfg['subtree_holdout'] else holdout_count(leaves, p)
        return GraphSizes(nodes, nodes - 1, leaves, held)
    if family == 'grid':
        r, c = cfg['grid_rows'], cfg['grid_cols']
        return GraphSizes(r * c, r * (c - 1) + c * (r - 1), 0, 0)
    if family == 'cycle':
        return GraphSizes(cfg['cycle_n'], cfg['cycle_n'], 0, 0)
    return GraphSizes(cfg['irregular_n'], cfg['irregular_edges'], 0, 0)


@rule(*GRAPH_KEYS)
def family_keys_apply(cfg):  # a size key of another family would be silently ignored
    import configurator
    own = FAMILY_KEYS[cfg['graph']]
    for family, keys in FAMILY_KEYS.items():
        for key in keys:
            default = configurator.DEFAULTS[key]
            require(key in own or cfg[key] == default,
                    f"{key}: applies to graph={family!r}{' and star_tree' if family == 'star' else ''}, not "
                    f"graph={cfg['graph']!r}; leave it at {default!r}")


@rule(*GRAPH_KEYS)
def family_sizes(cfg):
    family = cfg['graph']
    if family == 'star_tree':
        require(cfg['star_subtree_degree'] >= 2, f"star_subtree_degree: must be >= 2 (1 is graph='star'), got "
                                                 f"{cfg['star_subtree_degree']}")
    elif family == 'grid':
        require(min(cfg['grid_rows'], cfg['grid_cols']) >= 1 and cfg['grid_rows'] * cfg['grid_cols'] >= 2,
                f"grid_rows, grid_cols: must be >= 1 with at least 2 nodes, got {cfg['grid_rows']} x "
                f"{cfg['grid_cols']}")
    elif family == 'cycle':
        require(cfg['cycle_n'] >= 3, f"cycle_n: must be >= 3, got {cfg['cycle_n']}")
    elif family == 'irregular':
        n, m = cfg['irregular_n'], cfg['irregular_edges']
        require(n >= 2, f"irregular_n: must be >= 2, got {n}")
        require(n - 1 <= m <= n * (n - 1) // 2, f"irregular_edges: a connected graph on {n} nodes has "
                                                 f"{n - 1}..{n * (n - 1) // 2} edges, got {m}")
    if family in ('star', 'star_tree'):
        require(graph_sizes(cfg).nodes <= MAX_GRAPH_NODES, f"graph_d: the graph would have "
                                                           f"{graph_sizes(cfg).nodes:,} nodes, more than "
                                                           f"{MAX_GRAPH_NODES:,}")


@rule('graph', 'graph_builder', 'data_import', 'irregular_n', 'irregular_edges')
def official_families(cfg):
    family = cfg['graph']
    require(not cfg['data_import'] or family == 'star',
            f"data_import: the official files hold a star; use graph='star', got {family!r}")
    if cfg['graph_builder'] == 'official':
        require(family in ('star', 'irregular'), f"graph_builder: 'official' draws the star or the official "
                                                 f"irregular graph; use 'pathstar' with graph={family!r}")
        require(family != 'irregular' or (cfg['irregular_n'], cfg['irregular_edges']) == (16, 20),
                "graph_builder: the official irregular graph has irregular_n=16 and irregular_edges=20")


@rule('graph', 'recipe', 'task')
def edge_only_families(cfg):
    family = cfg['graph']
    if family in ('star', 'star_tree'):
        return
    require(cfg['recipe'] == 'interleaved', f"recipe: {cfg['recipe']!r} needs path rows, and graph={family!r} "
                                            f"trains edges only; use 'interleaved'")
    require(cfg['task'] == 'in_weights', f"task: 'in_context' draws a star per row; use graph='star', "
                                         f"got {family!r}")


@rule(*GRAPH_KEYS, 'graph_vocab_size')
def vocab_holds_the_graph(cfg):
    n = graph_sizes(cfg).nodes
    v = resolve_vocab(cfg['graph_vocab_size'], n)
    if cfg['graph'] == 'star':
        d, l = cfg['graph_d'], cfg['graph_l']
        require(v >= n, f"graph_vocab_size: vocab_size must be >= d * (l-1) + 1 = {d} * {l - 1} + 1 = {n}, got {v}")
    require(v >= n, f"graph_vocab_size: must be >= the graph's {n} nodes, got {v}")
    import pathstar_data
    limit = pathstar_data.MAX_VOCAB_SIZE - pathstar_data.NODE_OFFSET  # else token ids wrap around in uint32
    require(v <= limit, f"graph_vocab_size: must be <= {limit} (token ids are stored as uint32), got {v}")


@rule(*GRAPH_KEYS)
def holdout_rounds_to_some_leaves(cfg):
    if cfg['graph'] not in ('star', 'star_tree'):  # no path rows: nothing to hold out
        return
    sizes, p = graph_sizes(cfg), cfg['graph_holdout_percentage']
    if cfg['graph'] == 'star':
        whole, what = f"graph_d={cfg['graph_d']}", 'leaves'
    elif cfg['subtree_holdout']:
        whole, what = f"graph_d={cfg['graph_d']} subtrees", 'subtrees'
    else:
        whole, what = f"{sizes.paths} star_tree leaves", 'leaves'
    n = cfg['graph_d'] if cfg['graph'] == 'star' or cfg['subtree_holdout'] else sizes.paths
    held = sizes.held_out // (sizes.paths // n)
    require(p == 0 or held > 0, f"graph_holdout_percentage: {p:g} of {whole} rounds to 0 held-out {what}; "
                                f"use >= {three_digits(0.5 / n, up=True):g} or 0")
    require(held < n, f"graph_holdout_percentage: {p:g} of {whole} rounds to {held} held-out {what}, leaving no "
                      f"training path; use < {three_digits(1 - 0.5 / n, up=False):g}")


@rule('recipe', 'staged_edge_frac', 'epochs')
def stages_not_empty(cfg):
    if cfg['recipe'] == 'staged':
        edge_epochs = staged_edge_epochs(cfg)
        require(0 < edge_epochs < cfg['epochs'],
                f"staged_edge_frac: {cfg['staged_edge_frac']} of epochs={cfg['epochs']} leaves an empty stage "
                f"({edge_epochs} edge epochs); need 0 < round(staged_edge_frac * epochs) < epochs")


@rule('batch_size', *GRAPH_KEYS, 'add_self_edges', 'use_undirected', 'path_replication', 'recipe',
      'edge_batch_size', 'task', 'num_train_graphs')
def batch_fits_the_rows(cfg):
    if cfg['task'] == 'in_context':  # one row per training graph
        n = cfg['num_train_graphs']
        require(cfg['batch_size'] == 'auto' or cfg['batch_size'] <= n,
                f"batch_size: {cfg['batch_size']} is more than the {n} training graphs; use 'auto' or <= {n}")
        return
    import pathstar_data
    counts = pathstar_data.row_counts(cfg)
    n_rows, what = counts.train_rows, 'training rows'
    if cfg['recipe'] == 'two_stage':  # each stage's batch against its own rows
        n_rows, what = counts.train_rows - counts.edge_rows, 'training path rows'
        require(cfg['edge_batch_size'] <= counts.edge_rows, f"edge_batch_size: {cfg['edge_batch_size']} is more "
                                                            f"than the {counts.edge_rows} edge rows; use <= "
                                                            f"{counts.edge_rows}")
    if cfg['batch_size'] != 'auto':
        require(cfg['batch_size'] <= n_rows, f"batch_size: {cfg['batch_size']} is more than the {n_rows} {what}; "
                                             f"use 'auto' or <= {n_rows}")


@rule('task', 'geometry_interval')
def in_context_has_no_geometry(cfg):
    require(cfg['task'] != 'in_context' or cfg['geometry_interval'] == 0,
            "geometry_interval: the geometry diagnostics read one fixed graph, so task='in_context' needs 0")


@rule('task', 'recipe')
def in_context_is_interleaved(cfg):
    require(cfg['task'] != 'in_context' or cfg['recipe'] == 'interleaved',
            f"recipe: {cfg['recipe']!r} trains edge rows apart, and task='in_context' has none; use 'interleaved'")


@rule('task', 'graph_builder', 'data_import')
def in_context_draws_its_own_graphs(cfg):
    if cfg['task'] == 'in_context':
        require(not cfg['data_import'], "data_import: its files hold one graph, and task='in_context' draws a "
                                        "graph per row; leave it ''")
        require(cfg['graph_builder'] == 'pathstar',
                "graph_builder: 'official' builds one graph; task='in_context' needs 'pathstar'")


# the in-weights keys an in-context row has no use for, and why: set to anything but their default,
# they would silently change nothing
IN_WEIGHTS_ONLY = dict(
    use_undirected="an in-context row lists each edge once, parent first",
    use_directional_tokens="an in-context row marks its edges with [EDGE] alone",
    use_task_tokens="an in-context row always has its [EDGE] and [PATH] markers",
    graph_holdout_percentage="in-context validation holds out whole graphs, num_val_graphs of them, not arms",
    path_replication="each in-context graph is one row; num_train_graphs sets how many",
)


@rule('task', *IN_WEIGHTS_ONLY)
def in_context_ignores_in_weights_keys(cfg):
    if cfg['task'] == 'in_context':
        import configurator
        for key, why in IN_WEIGHTS_ONLY.items():
            default = configurator.DEFAULTS[key]
            require(cfg[key] == default, f"{key}: applies to task='in_weights' only, not task='in_context' ({why}); "
                                         f"leave it at {default!r}, got {cfg[key]!r}")


@rule('path_target', 'teacherless')
def teacherless_has_inputs_to_replace(cfg):
    require(not (cfg['teacherless'] and cfg['path_target'] == 'first_hop'),
            "teacherless: has no effect with path_target='first_hop' (its one target follows the prompt, so no "
            "path input is left to replace); drop one")


@rule('path_loss', 'path_target')
def first_hop_loss_needs_full_rows(cfg):
    if cfg['path_loss'] != 'first_hop' or cfg['path_target'] == 'full':
        return
    if cfg['path_target'] == 'first_hop':
        raise UserError("path_loss: 'first_hop' has no effect with path_target='first_hop' (the row's one target "
                        "is the first hop already); drop path_loss")
    raise UserError(f"path_loss: 'first_hop' keeps target 2 of a root..leaf row, so it needs path_target='full', "
                    f"got path_target={cfg['path_target']!r}")


def staged_edge_epochs(cfg):
    """recipe='staged': the epochs spent on edge rows alone, before the path rows."""
    return round(cfg['staged_edge_frac'] * cfg['epochs'])


def batch_rows(cfg, n_rows):
    """batch_size as a number of rows ('auto' = all rows up to AUTO_BATCH_ROWS)."""
    return min(n_rows, AUTO_BATCH_ROWS) if cfg['batch_size'] == 'auto' else cfg['batch_size']


def num_nodes(d, l):
    """Nodes of the star with d arms of l - 1 nodes (graph_sizes covers every family)."""
    return d * (l - 1) + 1


def resolve_vocab(vocab, nodes):
    """graph_vocab_size as an int ('2max' -> 2 x the graph's nodes)."""
    if isinstance(vocab, str):
        return int(vocab[:-3]) * nodes
    return vocab


def three_digits(x, up):
    """x rounded up or down to 3 significant digits, so advice in an error is both short and right."""
    scale = 10.0 ** (2 - math.floor(math.log10(x)))
    step = math.ceil if up else math.floor
    return step(round(x * scale, 6)) / scale
