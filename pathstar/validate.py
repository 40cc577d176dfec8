"""
The one validator: build_config(overrides) builds a config from the key table (configurator.py)
and checks it once; check(cfg) is the one authority over whether a config can run. Entry points
build the config here and pass it down: the data, model and training layers never parse or check
it again.

Each rule is a function registered with @rule(keys...) that names every key it reads, so
the sweep checker knows which swept values it must combine (sweeps/space.check_combinations),
and a test holds each rule to its declared keys. A broken rule raises UserError, one line
that names the key. A family's own rules live in its module (graphs/, data/tasks.py, models/),
reached through its registry. Whether this machine has the device or dtype is
training/device.py's separate question.
"""
import math
import os
import re

import configurator
from pathstar import graphs
from pathstar.data import cache, inweights, tasks
from pathstar.data.incontext import IN_CONTEXT_KEYS
from pathstar.errors import UserError, require
from pathstar.graphs import official
from pathstar.graphs.common import resolve_vocab
from pathstar.models import registry as models
from pathstar.tokens import MAX_VOCAB_SIZE, NODE_OFFSET


AUTO_BATCH_ROWS = 1024   # batch_size='auto' = min(training rows, this)
RULES = []               # (keys a rule reads, the rule)


def rule(*keys):
    def register(fn):
        RULES.append((keys, fn))
        return fn
    return register


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


@rule('model_type', *models.MODEL_KEYS)
def model_keys(cfg):  # a family's own rules, and the keys it has no use for left at their defaults
    family = models.family(cfg)
    for key, why in family.NOT_APPLICABLE.items():
        default = configurator.DEFAULTS[key]
        users = ' and '.join(repr(name) for name, f in models.MODELS.items() if key not in f.NOT_APPLICABLE)
        require(cfg[key] == default, f"{key}: applies to model_type={users} only, not {cfg['model_type']!r} "
                                     f"({why}); leave it at {default!r}")
    family.check(cfg)


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
# the graph families (graphs/: each family's module holds its keys, sizes and own rules)

GRAPH_KEYS = graphs.GRAPH_KEYS


@rule(*GRAPH_KEYS)
def family_keys_apply(cfg):  # a size key of another family would be silently ignored
    own = graphs.family(cfg).KEYS
    for name, family in graphs.GRAPHS.items():
        for key in family.KEYS:
            default = configurator.DEFAULTS[key]
            users = [n for n, f in graphs.GRAPHS.items() if key in f.KEYS]
            require(key in own or cfg[key] == default,
                    f"{key}: applies to graph={' and '.join(map(repr, users))}, not graph={cfg['graph']!r}; "
                    f"leave it at {default!r}")


@rule(*GRAPH_KEYS)
def family_sizes(cfg):
    graphs.family(cfg).check(cfg)


@rule('graph', 'graph_builder', 'data_import')
def official_families(cfg):
    family = graphs.family(cfg)
    importers = [name for name, f in graphs.GRAPHS.items() if f.IMPORTS]
    require(not cfg['data_import'] or family.IMPORTS,
            f"data_import: the official files hold a {' or '.join(importers)}; got graph={cfg['graph']!r}")
    require(cfg['graph_builder'] in family.BUILDERS,
            f"graph_builder: {cfg['graph_builder']!r} does not build graph={cfg['graph']!r}; use "
            f"{' or '.join(map(repr, family.BUILDERS))}")


@rule('graph', 'recipe')
def edge_only_families(cfg):
    require(graphs.family(cfg).HAS_PATHS or cfg['recipe'] == 'interleaved',
            f"recipe: {cfg['recipe']!r} needs path rows, and graph={cfg['graph']!r} trains edges only; use "
            f"'interleaved'")


# the keys that shape path rows: a family without paths would ignore them
PATH_KEYS = ('num_pause_tokens', 'graph_holdout_percentage', 'path_target', 'root_in_prompt', 'teacherless',
             'path_loss', 'path_replication')


@rule('graph', *PATH_KEYS)
def path_keys_need_paths(cfg):
    if graphs.family(cfg).HAS_PATHS:
        return
    for key in PATH_KEYS:
        default = configurator.DEFAULTS[key]
        require(cfg[key] == default, f"{key}: shapes path rows, and graph={cfg['graph']!r} trains edges only; "
                                     f"leave it at {default!r}")


@rule(*GRAPH_KEYS, 'graph_vocab_size')
def vocab_holds_the_graph(cfg):
    n = graphs.graph_sizes(cfg).nodes
    v = resolve_vocab(cfg['graph_vocab_size'], n)
    require(v >= n, f"graph_vocab_size: vocab_size must be >= {graphs.family(cfg).nodes_formula(cfg)} = {n}, "
                    f"got {v}")
    limit = MAX_VOCAB_SIZE - NODE_OFFSET  # else token ids wrap around in uint32
    require(v <= limit, f"graph_vocab_size: must be <= {limit} (token ids are stored as uint32), got {v}")


@rule(*GRAPH_KEYS)
def holdout_rounds_to_some_leaves(cfg):
    family = graphs.family(cfg)
    if not family.HAS_PATHS:  # no path rows: nothing to hold out
        return
    what, n, whole = family.holdout_units(cfg)
    sizes, p = graphs.graph_sizes(cfg), cfg['graph_holdout_percentage']
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
    counts = inweights.row_counts(cfg)
    n_rows, what = counts.train_rows, 'training rows'
    if cfg['recipe'] == 'two_stage':  # each stage's batch against its own rows
        n_rows, what = counts.train_rows - counts.edge_rows, 'training path rows'
        require(cfg['edge_batch_size'] <= counts.edge_rows, f"edge_batch_size: {cfg['edge_batch_size']} is more "
                                                            f"than the {counts.edge_rows} edge rows; use <= "
                                                            f"{counts.edge_rows}")
    if cfg['batch_size'] != 'auto':
        require(cfg['batch_size'] <= n_rows, f"batch_size: {cfg['batch_size']} is more than the {n_rows} {what}; "
                                             f"use 'auto' or <= {n_rows}")


@rule(*inweights.DATA_KEYS, *IN_CONTEXT_KEYS)
def dataset_fits_in_memory(cfg):  # the one estimate (cache.memory_need), before anything is built
    cache.check_memory(cfg)


@rule(*GRAPH_KEYS, 'graph_vocab_size', 'n_embd', 'data_import')
def embedding_fits_in_memory(cfg):  # after the dataset's rule: a too-big graph is named by its rows first
    """The token embedding alone, in float32, must fit in this machine's memory (the model is built on the
    CPU): else the first allocation fails, far from the cause."""
    v = resolve_vocab(cfg['graph_vocab_size'], graphs.graph_sizes(cfg).nodes) + NODE_OFFSET
    need, have = 4 * v * cfg['n_embd'], os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    source = f" (set by data_import's files in {cfg['data_import']})" if cfg['data_import'] else ''
    require(need <= have, f"graph_vocab_size: {v - NODE_OFFSET:,}{source} labels make a {v:,} x {cfg['n_embd']} "
                          f"embedding of {need / 2 ** 30:,.1f} GiB, more than this machine's {have / 2 ** 30:.1f} GiB "
                          f"of memory; use fewer labels (renumber the files' ids) or a smaller n_embd")


@rule('task', *tasks.TASK_READS)
def task_rules(cfg):
    tasks.task(cfg).check(cfg)


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


def three_digits(x, up):
    """x rounded up or down to 3 significant digits, so advice in an error is both short and right."""
    scale = 10.0 ** (2 - math.floor(math.log10(x)))
    step = math.ceil if up else math.floor
    return step(round(x * scale, 6)) / scale


# -----------------------------------------------------------------------------
# building the config: once per run, by the entry point

def build_config(overrides=None):
    """The defaults <- overrides (a dict of raw values), every value parsed, then the graph keys of
    data_import's files, then checked: the config the whole run uses."""
    cfg = dict(configurator.DEFAULTS)
    for key, value in (overrides or {}).items():
        cfg[key] = configurator.parse_value(key, value)
    if cfg['data_import']:
        official.apply_graph_keys(cfg, overrides or {})
    return check(cfg)


def parse_args(argv):
    """argv (config files and --key=value) -> a whole checked config dict."""
    return build_config(configurator.parse_overrides(argv))
