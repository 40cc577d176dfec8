"""
The key table: every config key with its default and what it does, in one flat block, and the
typed parser that turns config files and --key=value overrides into values (pathstar/validate.py
checks the whole config: build_config, parse_args). It sits at the bottom of the house: it imports
nothing of the project's but pathstar.errors, so every layer may read DEFAULTS.

    python3 train.py                                  # the defaults below
    python3 train.py --graph_d=100 --n_layer=4        # overrides
    python3 train.py config/paper_g5000_l5.py --epochs=200

A config file is the user's own Python (as in nanoGPT): it runs in a namespace
of its own and only the names it assigns that are config keys are taken.
Override values are parsed, never evaluated.
"""
import ast
import difflib
import math
import os
import re
import runpy
import sys
import traceback

from pathstar.errors import UserError

# -----------------------------------------------------------------------------
# defaults: the CPU demo, chosen from the phase diagram (results/phase_diagram.md): a graph with enough training
# leaves that a small model plans most of the 50 held-out paths from memory, in a few minutes on a 2-core CPU
DEFAULTS = dict(
    # the graph (the dataset is cached per distinct set of these keys)
    task='in_weights',           # 'in_context': each row carries its own random star (pathstar/data/incontext.py)
    num_train_graphs=20000,      # in_context: training rows, one random graph each
    num_val_graphs=1000,         # in_context: validation rows, graphs unlike every training graph
    graph='star',                # the family (pathstar/graphs/): 'star_tree', or edges only: grid, cycle, irregular
    graph_d=200,                 # arms of the star; chance for the first hop is 1/graph_d
    star_subtree_degree=2,       # star_tree: children of every node below the root's graph_d children
    subtree_holdout=False,       # star_tree: hold out whole subtrees, not single leaves (--split_subtree_holdout)
    grid_rows=4,                 # grid: rows...
    grid_cols=4,                 # ...and columns
    cycle_n=15,                  # cycle: nodes in the ring
    irregular_n=16,              # irregular: nodes...
    irregular_edges=20,          # ...and edges, a random connected graph seeded by data_seed
    add_self_edges=False,        # also train '[EDGE] > v v' for every node v (the official --add_self_edges)
    graph_l=5,                   # nodes on a root->leaf path, root and leaf included
    graph_vocab_size='2max',     # node ids drawn from range(V): an int, or 'Nmax' = N x node count
    graph_holdout_percentage=0.25,  # fraction of leaves whose paths are never trained (validation)
    graph_builder='pathstar',    # 'official': node ids and held-out leaves exactly as the official code's builder
    num_pause_tokens=3,          # PAUSE tokens between the leaf and the root in a path row
    use_undirected=True,         # edges in both directions (the paper: forward-only fails)
    use_directional_tokens=True,  # mark edge rows with '>' (parent->child) or '<'
    use_task_tokens=True,        # start rows with [EDGE] or [PATH]
    path_target='full',          # path row targets: 'full' root..leaf; 'first_hop' only the hop after the root
                                 # (official hardest token); 'reversed' leaf..root (--reverse_path_targets)
    root_in_prompt=False,        # prompt '[PATH] root leaf PAUSE..' (--include_start_node_in_path_finetuning)
    teacherless=False,           # path inputs after the prompt are '$' dummies (--use_teacherless_inputs)
    path_replication='auto',     # 'auto' balances path rows against edge rows, or an int >= 1
    data_seed=1337,              # seeds node labels and the held-out leaves
    data_dir='data',             # dataset cache, one folder per parameter set
    data_import='',              # a folder of the official code's files of one graph: its keys come from them
    # the model
    model_type='gpt',            # 'mamba': Mamba(LayerNorm(x)) blocks as the official code's; n_head unused
    mamba_d_state=16,            # mamba: SSM state size per channel (--mamba_state_dimension)
    mamba_d_conv=4,              # mamba: causal convolution width (--mamba_convolution_kernel)
    mamba_expand=2,              # mamba: inner width = mamba_expand x n_embd (--mamba_expand_factor)
    n_layer=2,
    n_head=4,
    n_embd=128,
    dropout=0.0,
    bias=False,                  # bias in Linear and LayerNorm layers
    gelu='exact',                # 'tanh': the MLP's GELU as the tanh approximation (the official code's)
    init='nanogpt',              # 'official': position table N(0, 1), no depth-scaled residual init
    use_attention=True,          # False: blocks without attention, x + mlp(ln(x)) (--no-use_attention)
    use_mlp_only_blocks=False,   # one Linear(d, d) per block, no activation, for the GELU MLP (--use_mlp_only_blocks)
    use_residual=True,           # False: no skip connections (--use_residual_connections)
    use_layer_norm=True,         # False: no LayerNorm anywhere (--use_layer_norm)
    use_positional_encoding=True,  # False: no position table (--use_positional_encoding)
    tie_embeddings=True,         # False: separate input embedding and output head (--tie_input_output_embeddings)
    freeze_token_embeddings=False,  # token embedding, head and position table never train (--freeze_token_embeddings)
    weight_init='default',       # 'non_geometric': output head (so a tied embedding) ~ N(0, 1) (--weight_init_mode)
    # the optimiser (AdamW)
    learning_rate=1e-2,          # peak learning rate (1e-3 memorises the training paths and plans few others)
    label_smoothing=0.0,         # training loss only; evaluation never smooths
    weight_decay=0.01,
    beta1=0.9,
    beta2=0.98,
    grad_clip=1.0,               # 0.0 disables clipping
    decay_params='matrices',     # weight decay on 'matrices' (>= 2-D: weights, embeddings) or 'all' parameters
    # the learning-rate schedule: linear warmup, cosine decay, then flat at min_lr
    decay_lr=True,
    warmup_frac=0.05,            # fraction of all iterations spent warming up
    warmup_iters=0,              # > 0: this many iterations instead, ramping from 0 as the official code does
    lr_decay_frac=1.0,           # cosine reaches min_lr at this fraction of the iterations
    min_lr=1e-5,
    # training length and batches
    epochs=100,                  # one epoch = one shuffled pass over the training rows
    batch_size='auto',           # rows per micro-batch: 'auto' = min(training rows, 1024), or an int
    gradient_accumulation_steps=1,
    max_iters=0,                 # 0 = run all epochs; > 0 stops there (smoke tests, benchmarks)
    seed=1337,                   # model init, shuffling, dropout
    # the training recipe (the variants the paper compares)
    recipe='interleaved',        # 'interleaved': edges and paths shuffled together; 'staged': edges, then paths;
                                 # 'two_stage': edges, then paths, each with its own AdamW and schedule
    staged_edge_frac=0.5,        # staged: the fraction of epochs spent on edge rows alone
    edge_learning_rate=1e-2,     # two_stage, the edge stage: peak learning rate,
    edge_min_lr=1e-3,            # ...its floor,
    edge_warmup_iters=500,       # ...warmup iterations (from 0),
    edge_batch_size=16384,       # ...rows per micro-batch,
    edge_epochs=2500,            # ...and epochs; the path stage uses the keys above
    edge_checkpoint='',          # two_stage: the edges.pt of an earlier run: skip the edge stage, start from it
    path_loss='full',            # 'full': every path token; 'first_hop': only the hard first hop after the root
    # evaluation and logging
    eval_interval=100,           # iterations between evaluations (the last one is always evaluated)
    log_interval=100,            # iterations between console lines
    eval_samples=1024,           # training paths/edges scored at each eval (all held-out paths are)
    eval_only=False,             # evaluate the initial (or resumed) model and stop
    geometry_interval=0,         # every N-th eval also logs embedding-geometry diagnostics (analyze.py); 0 = off
    # checkpoints
    out_dir='out',
    init_from='scratch',         # 'scratch' or 'resume' (from out_dir/ckpt.pt)
    overwrite_out_dir=False,     # a new run from scratch may replace an earlier run's files in out_dir
    checkpoint_interval=0,       # iterations between resume checkpoints (out_dir/ckpt.pt); 0 = at every eval
    # system
    device='auto',               # 'auto' = cuda, then mps, then cpu; or e.g. 'cuda:1'
    dtype='auto',                # 'auto' = bfloat16 where supported, float16 on older GPUs, float32 on CPU
    compile='auto',              # torch.compile: 'auto' = on for CUDA only
    compile_mode='default',      # 'reduce-overhead' = CUDA graphs, for small launch-bound models; or 'max-autotune'
    # wandb
    wandb_log=False,
    wandb_project='pathstar',
    wandb_entity='',             # '' = your default entity
    wandb_run_name='',           # '' = built from the key parameters
    wandb_mode='auto',           # 'auto' = online when logged in, else offline
)

# keys whose value is one of a fixed set; the rest are typed by their default (the family keys graph,
# task and model_type name an entry of their registry: pathstar/validate.py checks them)
CHOICES = dict(
    init_from=('scratch', 'resume'),
    dtype=('auto', 'float32', 'bfloat16', 'float16'),
    compile=('auto', True, False),
    compile_mode=('default', 'reduce-overhead', 'max-autotune'),
    wandb_mode=('auto', 'online', 'offline', 'disabled'),
    recipe=('interleaved', 'staged', 'two_stage'),
    decay_params=('matrices', 'all'),
    gelu=('exact', 'tanh'),
    init=('nanogpt', 'official'),
    weight_init=('default', 'non_geometric'),
    graph_builder=('pathstar', 'official'),
    path_loss=('full', 'first_hop'),
    path_target=('full', 'first_hop', 'reversed'),
)
AUTO_OR_INT = ('batch_size', 'path_replication')  # 'auto' or an int >= 1
EMPTY_OK = ('wandb_entity', 'wandb_run_name', 'edge_checkpoint', 'data_import')  # '' means none / choose for me



# -----------------------------------------------------------------------------
# parsing one value

def parse_bool(key, text):
    if isinstance(text, bool):
        return text
    low = str(text).strip().lower()
    if low in ('true', '1'):  # README's one rule for booleans, in files, flags and sweeps alike
        return True
    if low in ('false', '0'):
        return False
    raise UserError(f"{key}: expected true/false (or 1/0), got {text!r}")


def parse_int(key, text):
    if isinstance(text, bool):
        raise UserError(f"{key}: expected an integer, got {text!r}")
    if isinstance(text, int):
        return text
    if isinstance(text, float):
        if text.is_integer():
            return int(text)
        raise UserError(f"{key}: expected an integer, got {text!r}")
    s = str(text).strip()
    if re.fullmatch(r'[+-]?\d+', s):
        return int(s)
    try:  # allow 1e4, not 2.5
        f = float(s)
    except ValueError:
        raise UserError(f"{key}: expected an integer, got {text!r}") from None
    if math.isfinite(f) and f.is_integer():
        return int(f)
    raise UserError(f"{key}: expected an integer, got {text!r}")


def parse_float(key, text):
    if isinstance(text, bool):
        raise UserError(f"{key}: expected a number, got {text!r}")
    try:
        value = float(text)  # YAML gives '1e-3' as a string: float() reads it
    except (TypeError, ValueError):
        raise UserError(f"{key}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise UserError(f"{key}: must be a finite number, got {text!r}")
    return value


def parse_vocab(key, text):
    """An int, or 'Nmax' meaning N times the number of nodes."""
    if isinstance(text, str) and text.strip().lower().endswith('max'):
        n = text.strip()[:-3]
        if not re.fullmatch(r'\d+', n) or int(n) < 1:
            raise UserError(f"{key}: expected an int or 'Nmax' with N >= 1 (e.g. '2max'), got {text!r}")
        return f"{int(n)}max"
    return parse_int(key, text)


def parse_value(key, text):
    """Parse one override (a string from the command line, or a YAML/Python value)."""
    if key not in DEFAULTS:
        raise UserError(unknown_key_message(key))
    if text is None or (isinstance(text, str) and text.strip() == ''):
        if key in EMPTY_OK:
            return ''
        raise UserError(f"{key}: empty value")
    if key in CHOICES:
        allowed = CHOICES[key]
        if True in allowed:  # 'auto' or a bool
            if str(text).strip().lower() == 'auto':
                return 'auto'
            return parse_bool(key, text)
        if text in allowed:
            return text
        raise UserError(f"{key}: expected one of {', '.join(map(str, allowed))}, got {text!r}")
    if key in AUTO_OR_INT:
        if isinstance(text, str) and text.strip().lower() == 'auto':
            return 'auto'
        return parse_int(key, text)
    if key == 'graph_vocab_size':
        return parse_vocab(key, text)
    default = DEFAULTS[key]
    if isinstance(default, bool):
        return parse_bool(key, text)
    if isinstance(default, int):
        return parse_int(key, text)
    if isinstance(default, float):
        return parse_float(key, text)
    return str(text)


def unknown_key_message(key):
    close = difflib.get_close_matches(key, DEFAULTS, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see configurator.py for the keys"
    return f"unknown config key {key!r}{hint}"


# -----------------------------------------------------------------------------
# wandb_mode='auto' (here, not in train.py, so the sweep runner decides without importing torch)

def logged_in_to_wandb():
    if os.environ.get('WANDB_API_KEY'):
        return True
    try:
        import netrc
        return netrc.netrc().authenticators('api.wandb.ai') is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(cfg):
    if cfg['wandb_mode'] != 'auto':
        return cfg['wandb_mode']
    return os.environ.get('WANDB_MODE') or ('online' if logged_in_to_wandb() else 'offline')


# -----------------------------------------------------------------------------
# building a config from files and the command line

def load_config_file(path, so_far=None):
    """Run a config file in a namespace of its own that starts with the config so far (so a
    variant can say out_dir += '-staged'); return the config keys it assigns."""
    if not os.path.isfile(path):
        raise UserError(f"config file not found: {path}")
    try:
        with open(path, 'rb') as f:
            tree = ast.parse(f.read(), path)
        namespace = runpy.run_path(path, init_globals=dict(so_far or DEFAULTS), run_name='__config__')
    except SyntaxError as e:
        raise UserError(f"{path}, line {e.lineno}: {e.msg} (a config file is Python)") from None
    except SystemExit:  # else a config file could end the run with exit code 0, having trained nothing
        raise UserError(f"{path}: a config file may not exit (it called sys.exit or exit)") from None
    except Exception as e:  # the user's own code failed: say where, in one line
        lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == path]
        message = ' '.join(str(e).split())
        raise UserError(f"{path}, line {lines[-1] if lines else '?'}: {type(e).__name__}: {message}") from None
    assigned = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    values = {}
    for name in sorted(assigned & set(namespace)):
        value = namespace[name]
        if name.startswith('_') or callable(value) or type(value).__name__ == 'module':
            continue
        if name not in DEFAULTS:
            raise UserError(f"{path}: {unknown_key_message(name)}")
        values[name] = value
    return values


HELP_FLAGS = ('-h', '--help')


def help_text(prog, extra=''):
    """--help: the usage line, then DEFAULTS as this file writes it (every key with its default and
    comment, in its groups), read from the source so the two never disagree."""
    with open(__file__) as f:
        src = f.read()
    start = src.index('DEFAULTS = dict(\n') + len('DEFAULTS = dict(\n')
    lines = [f"usage: python3 {prog} [config/<name>.py ...] [--key=value ...]{extra}",
             "Config files and --key=value overrides apply in order; every key, its default and what it does:"]
    for line in src[start:src.index('\n)\n', start)].splitlines():
        text = line.strip()
        if text.startswith('#') and len(line) - len(line.lstrip()) <= 4:  # a group's heading
            lines += ['', text.lstrip('# ') + ':']
        elif text.startswith('#'):  # a comment continued from the line above
            lines.append(' ' * 32 + text)
        elif text:
            key, _, rest = text.partition('=')
            value, _, comment = rest.partition('#')
            option = f"  --{key}={value.strip().rstrip(',').strip(chr(39))}"  # 'in_weights' -> in_weights
            lines.append(f"{option.ljust(31)} # {comment.strip()}" if comment else option)
    return '\n'.join(lines)


def parse_overrides(argv):
    """argv like ['config/x.py', 'config/variant.py', '--graph_d=100'] -> the keys they set, parsed,
    each config file and override applied in order (a resumed run needs to know what was asked for)."""
    cfg, overrides = dict(DEFAULTS), {}
    for arg in argv:
        if arg.startswith('--'):
            key, sep, value = arg[2:].partition('=')
            if not sep:
                raise UserError(f"expected --key=value, got {arg!r}")
            values = {key: value}
        else:
            values = load_config_file(arg, cfg)
        for key, value in values.items():
            cfg[key] = overrides[key] = parse_value(key, value)
    return overrides


def exit_on_user_error(main):
    """Run main(); a UserError becomes one line on stderr and exit code 2."""
    try:
        return main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:  # the reader went away (python3 pathstar_data.py | head): not our error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
