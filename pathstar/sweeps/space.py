"""
The sweep YAML (wandb's format), read and checked before anything is created.

    from pathstar.sweeps import space
    sweep = space.check_sweep(space.load_sweep_file('sweep_config.yaml'))
    space.check_combinations(sweep['parameters'])   # every combination a rule of validate.check reads

A checked sweep is a plain dict: method, metric ({name, goal} or None) and parameters,
each one of {'value': v}, {'values': [...]} or {'distribution': d, 'min': a, 'max': b},
with every value parsed to the type of its train.py key (YAML reads 1e-3 as a string).
Nothing here touches the disk; every value and combination is checked by pathstar/validate.py, the one
validator a run uses too.
"""
import difflib
import itertools
import math
import os
import re
import sys

import yaml

import configurator
from configurator import DEFAULTS
from pathstar import graphs, validate
from pathstar.errors import UserError
from pathstar.models import registry as models
from pathstar.training.evaluate import ERROR_KINDS

METHODS = ('grid', 'random', 'bayes')
GOALS = ('minimize', 'maximize')
DISTRIBUTIONS = ('uniform', 'int_uniform', 'log_uniform_values', 'categorical')
TOP_KEYS = ('program', 'method', 'metric', 'parameters', 'early_terminate', 'name', 'description')
RUNNER_KEYS = ('out_dir', 'init_from')  # set per trial by the runner, never swept
MAX_GRID = 10_000  # every grid point is queued in the study when the sweep is created
NUMBER = re.compile(r'[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?')  # a decimal number written as text


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key listed twice in one mapping, at any depth (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        lines = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == 'tag:yaml.org,2002:merge':
                continue  # merged (<<) keys may be overridden on purpose; complex keys fail later
            key, line = self.construct_object(key_node), key_node.start_mark.line + 1
            if key in lines:
                raise UserError(f"{self.name}: key {key!r} is listed twice (lines {lines[key]} and {line}); "
                                  f"YAML would keep only the last, so remove one")
            lines[key] = line
        return super().construct_mapping(node, deep=deep)


def safe_load_unique(stream):
    """yaml.safe_load, but a key listed twice is an error (what yaml.load(stream, UniqueKeyLoader) does)."""
    loader = UniqueKeyLoader(stream)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class SweepFile(dict):
    """The file's top-level mapping, remembering its path for check_sweep's warnings."""
    path = None


def load_sweep_file(path):
    if not os.path.exists(path):
        raise UserError(f"sweep config not found: {path}")
    try:
        with open(path) as f:
            raw = safe_load_unique(f)
    except OSError as e:
        raise UserError(f"cannot read sweep config {path}: {e.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, 'problem_mark', None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ''
        raise UserError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping with method, metric and parameters, got {type(raw).__name__}")
    raw = SweepFile(raw)
    raw.path = path
    return raw


def check_sweep(raw):
    """The YAML dict -> a normalised sweep: every value parsed to its key's type. Raises UserError."""
    for key in raw:
        if key not in TOP_KEYS:
            close = difflib.get_close_matches(str(key), TOP_KEYS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"expected {', '.join(TOP_KEYS)}"
            raise UserError(f"unknown sweep key {key!r}; {hint}")
    method = raw.get('method')
    if method not in METHODS:
        raise UserError(f"method: expected grid, random or bayes, got {method!r}")
    metric = check_metric(raw.get('metric'), method)
    params = raw.get('parameters')
    if not isinstance(params, dict) or not params:
        raise UserError("parameters: expected a mapping of train.py keys, "
                          "e.g. learning_rate: {values: [1.0e-3, 3.0e-3]}")
    parameters = {str(name): check_parameter(str(name), spec, method) for name, spec in params.items()}
    if method != 'grid' and not any(varies(spec) for spec in parameters.values()):  # grid runs its one point once
        raise UserError(f"parameters: a {method} sweep needs a parameter to vary (values with two or more "
                          f"entries, or a distribution); with every one fixed each trial is the same run")
    if method == 'grid' and grid_size(parameters) > MAX_GRID:
        raise UserError(f"parameters: the grid has {grid_size(parameters):,} points, more than {MAX_GRID:,}; "
                          f"use method random or bayes")
    if metric is not None:
        check_metric_name(metric['name'], parameters)
    sweep = dict(method=method, metric=metric, parameters=parameters)
    sweep.update({key: str(raw[key]) for key in ('name', 'description') if key in raw})
    if 'early_terminate' in raw:  # for wandb only; the local backend runs every trial to the end
        if not isinstance(raw['early_terminate'], dict):
            raise UserError(f"early_terminate: expected a mapping such as {{type: hyperband, min_iter: 3}}, "
                              f"got {raw['early_terminate']!r}")
        sweep['early_terminate'] = raw['early_terminate']
    warn_string_numbers(params, getattr(raw, 'path', None))  # only for a file that passed, so errors stay one line
    warn_unused_keys(parameters)
    return sweep


def warn_unused_keys(parameters):
    """A key a model family ignores (Mamba's n_head), swept where model_type can be that family, repeats runs."""
    types = candidates(parameters.get('model_type', {'value': DEFAULTS['model_type']}))
    for name in types:
        for key in getattr(models.MODELS.get(name), 'UNUSED', ()):
            if varies(parameters.get(key, {})):
                print(f"warning: {key} is swept but ignored where model_type={name!r} (those trials repeat each "
                      f"other)")


def varies(spec):
    return 'distribution' in spec or len(spec.get('values', ())) > 1


def warn_string_numbers(params, path):
    """A number YAML read as a string (PyYAML reads 1e-4 so: YAML 1.1 floats need a dot and a signed
    exponent) is parsed here, but wandb gets the string and its schema rejects it as a min or max."""
    where = f"{path}: " if path else ''
    for name, spec in params.items():
        if name not in DEFAULTS or not key_kind(name) or not isinstance(spec, dict):
            continue
        for field, given in spec.items():
            for text in (given if field == 'values' and isinstance(given, list) else [given]):
                if isinstance(text, str) and NUMBER.fullmatch(text.strip()):
                    print(f"warning: {where}{name} {field} {text!r} was read by YAML as a string; "
                          f"write {yaml_number(text, key_kind(name))} so YAML and wandb read a number",
                          file=sys.stderr)


def yaml_number(text, kind):
    """text as YAML 1.1 reads a number: 1e-4 -> 1.0e-4, 2E3 -> 2.0e+3, and 1e4 -> 10000 for an int key."""
    if kind == 'int' and float(text).is_integer():
        return str(int(float(text)))
    mantissa, _, exponent = text.strip().lower().partition('e')
    sign = mantissa[0] if mantissa[0] in '+-' else ''
    whole, _, fraction = mantissa.lstrip('+-').partition('.')
    mantissa = f"{sign}{whole or '0'}.{fraction or '0'}"
    if not exponent:
        return mantissa
    return f"{mantissa}e{exponent if exponent[0] in '+-' else '+' + exponent}"


def check_metric(metric, method):
    if metric is None:
        if method == 'bayes':
            raise UserError("metric: bayes needs a metric to optimise, e.g. {name: val/loss/overall, goal: minimize}")
        return None  # grid and random can run without one; the trials then have no objective
    if not isinstance(metric, dict) or set(metric) - {'name', 'goal'}:
        raise UserError(f"metric: expected a mapping with name and goal, got {metric!r}")
    name, goal = metric.get('name'), metric.get('goal')
    if not isinstance(name, str) or not name.strip():
        raise UserError("metric: needs a name, e.g. val/loss/overall")
    if goal not in GOALS:
        raise UserError(f"metric: goal must be minimize or maximize, got {goal!r}")
    return dict(name=name.strip(), goal=goal)


GEOMETRY_NAMES = ['geometry/diagonal_margin', 'geometry/nearest_first_hop_accuracy', 'geometry/train_diagonal_margin',
                  'geometry/train_nearest_first_hop_accuracy', 'geometry/laplacian_alignment',
                  'geometry/laplacian_alignment_random', 'geometry/laplacian_alignment_ratio', 'geometry/laplacian_k']
# graph_report's, on graphs up to its MAX_NODES nodes (every family; a star has both sets)
GRAPH_GEOMETRY_NAMES = [f'geometry/{name}' for name in (
    'spectral_low_mass', 'spectral_low_mass_random', 'spectral_low_mass_ratio', 'spectral_k', 'topk_edge_recovery',
    'topk_edge_recovery_random', 'topk_k', 'nearest_neighbour_edge_accuracy',
    'nearest_neighbour_edge_accuracy_random', 'associative_topk_edge_recovery')]


def summary_metric_names(l, geometry=False, gpu=False, path_target='full'):
    """Numeric keys of train()'s summary for paths of l nodes (see evaluate.path_metrics and train.train):
    the last evaluation, its best/ copy, the last log line, and run facts. token_i counts the targets of a
    path row: l, or 1 for path_target='first_hop'. geometry: geometry_interval > 0 adds
    analyze.geometry_metrics; gpu: mfu, which the log line has only on a CUDA device."""
    n = 1 if path_target == 'first_hop' else l
    names = []
    for split in ('train', 'val'):
        names += [f'{split}/loss/overall', f'{split}/accuracy/path', f'{split}/accuracy/first_hop',
                  f'{split}/accuracy/first_hop_teacher_forced']
        names += [f'{split}/{kind}/token_{i}' for kind in ('loss', 'accuracy') for i in range(1, n + 1)]
        names += [f'{split}/accuracy/token_{i}_{how}' for how in ('teacher_forced', 'given_prefix')
                  for i in range(1, n + 1)]
        names += [f'{split}/errors/{where}{kind}' for where in ('', 'last_target/') for kind in ERROR_KINDS]
    names += ['train/loss/edge', 'train/accuracy/edge', 'train/loss/edge_all', 'train/accuracy/edge_all',
              'train/accuracy/edge_all_recall']
    names += GEOMETRY_NAMES + GRAPH_GEOMETRY_NAMES if geometry else []
    names += [f'best/{name}' for name in names]
    names += ['train/loss/step', 'lr', 'tokens_per_sec'] + (['mfu'] if gpu else [])
    return names + ['chance/first_hop', 'wall_time_s', 'iter', 'max_iters', 'epoch', 'params', 'train_rows',
                    'val_rows']


def check_metric_name(name, parameters):
    """A val/ metric needs held-out paths (an error). An unknown name is only a warning: train.py
    may report metrics this list does not know, and a trial without the metric fails on its own."""
    def values(key):
        return candidates(parameters.get(key, {'value': DEFAULTS[key]}))
    edge_only = sorted(g for g in set(values('graph')) if g in graphs.GRAPHS and not graphs.GRAPHS[g].HAS_PATHS)
    if name.startswith(('val/', 'best/val/')) and edge_only:
        raise UserError(f"metric: {name} is measured on held-out paths, but graph={edge_only[0]!r} trains edges "
                        f"only; use train/accuracy/edge_all_recall")
    if name.startswith(('val/', 'best/val/')) and 0 in values('graph_holdout_percentage'):
        raise UserError(f"metric: {name} is measured on held-out paths, but graph_holdout_percentage=0 "
                          f"holds none out")
    geometry = max(values('geometry_interval')) > 0
    gpu = any(str(device).startswith(('auto', 'cuda')) for device in values('device'))
    known = [name for target in values('path_target')
             for name in summary_metric_names(max(values('graph_l')), geometry, gpu, target)]
    if name not in known:
        close = [k for k in known if k.startswith(name)][:3] or difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ''
        if name.startswith(('geometry/', 'best/geometry/')) and not geometry:
            hint = "geometry metrics need geometry_interval > 0; "
        elif name == 'mfu':
            hint = "mfu is measured on CUDA devices only; "
        print(f"warning: metric {name!r} is not a summary key train() is known to return; {hint}"
              f"a trial whose summary lacks it fails", file=sys.stderr)


def key_kind(name):
    """'int' or 'float' for the keys a distribution can sample, else None."""
    default = DEFAULTS[name]
    if name in configurator.CHOICES or isinstance(default, bool):
        return None
    if name in configurator.AUTO_OR_INT or name == 'graph_vocab_size' or isinstance(default, int):
        return 'int'
    return 'float' if isinstance(default, float) else None


def check_parameter(name, spec, method):
    """One parameter -> {'value': v}, {'values': [...]} or {'distribution': d, 'min': a, 'max': b}, parsed."""
    if name not in DEFAULTS:
        raise UserError(f"parameters: {configurator.unknown_key_message(name)}")
    if name in RUNNER_KEYS:
        raise UserError(f"{name}: the sweep runner sets it for each trial; remove it from parameters")
    if not isinstance(spec, dict):
        raise UserError(f"{name}: expected {{value: x}}, {{values: [...]}} or {{distribution: ..., min: ..., "
                          f"max: ...}}, got {spec!r}")
    keys = set(spec)
    if keys == {'value'}:
        return dict(value=configurator.parse_value(name, spec['value']))
    if keys == {'values'} or (keys == {'values', 'distribution'} and spec['distribution'] == 'categorical'):
        values = spec['values']
        if not isinstance(values, list) or not values:
            raise UserError(f"{name}: values must be a non-empty list, got {values!r}")
        return dict(values=check_unique(name, [configurator.parse_value(name, v) for v in values]))
    if 'distribution' in keys:
        return check_distribution(name, spec, method)
    raise UserError(f"{name}: expected one of value, values or distribution, got keys {', '.join(map(str, keys))}")


def check_unique(name, values):
    """A value listed twice (maybe spelt two ways, 1e-3 and 0.001) would run its grid points twice."""
    for i, v in enumerate(values):
        if v in values[:i]:
            raise UserError(f"{name}: values lists {format_value(v)} twice; list each value once")
    return values


def check_distribution(name, spec, method):
    dist = spec['distribution']
    if dist not in DISTRIBUTIONS:
        raise UserError(f"{name}: distribution must be one of {', '.join(DISTRIBUTIONS)}, got {dist!r}")
    if dist == 'categorical':
        raise UserError(f"{name}: distribution categorical takes values: [...] and nothing else")
    if method == 'grid':
        raise UserError(f"{name}: grid search needs discrete values (value or values), not distribution {dist}")
    if set(spec) != {'distribution', 'min', 'max'}:
        raise UserError(f"{name}: distribution {dist} takes min and max, got keys {', '.join(map(str, spec))}")
    kind = key_kind(name)
    if dist == 'int_uniform':
        if kind is None:
            raise UserError(f"{name}: is not numeric; use values: [...]")
        lo, hi = configurator.parse_int(name, spec['min']), configurator.parse_int(name, spec['max'])
    else:
        if kind != 'float':
            advice = 'takes integers; use int_uniform' if kind else 'is not numeric; use values: [...]'
            raise UserError(f"{name}: {advice}")
        lo, hi = configurator.parse_float(name, spec['min']), configurator.parse_float(name, spec['max'])
    if not lo < hi:
        raise UserError(f"{name}: min must be less than max, got min={lo:g}, max={hi:g}")
    if dist == 'log_uniform_values' and lo <= 0:
        raise UserError(f"{name}: log_uniform_values needs min > 0, got {lo:g}")
    return dict(distribution=dist, min=lo, max=hi)


def candidates(spec):
    """The values of a parameter worth checking: all of a list, the ends of a range. Every
    rule is monotone in each key except n_embd % n_head, which two neighbours expose."""
    if 'value' in spec:
        return [spec['value']]
    if 'values' in spec:
        return spec['values']
    if spec['distribution'] == 'int_uniform':
        return sorted({spec['min'], spec['min'] + 1, spec['max']})
    return [spec['min'], spec['max']]


def linked_groups(names):
    """The sweep's keys split into groups that configurator's rules read together: any two keys
    that share a rule, directly or through other keys, are in one group."""
    group_of = {name: {name} for name in names}
    for keys, _ in validate.RULES:
        joined = [group_of[k] for k in keys if k in group_of]
        merged = set().union(*joined) if joined else set()
        for name in merged:
            group_of[name] = merged
    groups = {id(g): g for g in group_of.values()}.values()
    return [sorted(g, key=names.index) for g in groups]


def check_combinations(parameters):
    """Every combination of the values of keys that validate.check reads together (the rest
    of the config at the sweep's values, a swept key at its first one, the others at their defaults),
    so no trial can fail a rule the checker knows. Returns how many configs were checked."""
    fixed = {name: candidates(spec)[0] for name, spec in parameters.items()}
    checked = 0
    for group in linked_groups(list(parameters)):
        for combo in itertools.product(*(candidates(parameters[key]) for key in group)):
            check_config(fixed, dict(zip(group, combo)))
            checked += 1
    return checked


def check_config(fixed, values):
    try:
        validate.build_config({**fixed, **values})
    except UserError as e:
        combo = ', '.join(f"{k}={format_value(v)}" for k, v in values.items())
        raise UserError(f"{e} (in the combination {combo})") from None


def swept(parameters):
    return {name: spec for name, spec in parameters.items() if 'value' not in spec}


def grid_size(parameters):
    return math.prod(len(spec.get('values', [0])) for spec in parameters.values())


def grid_points(parameters):
    names = list(swept(parameters))
    for combo in itertools.product(*(parameters[name]['values'] for name in names)):
        yield dict(zip(names, combo))


def format_value(v):
    if isinstance(v, bool):
        return str(v).lower()  # as YAML writes it
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def print_table(header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in [header, *rows]:
        print('  '.join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


def print_plan(sweep, path, checked):
    parameters = sweep['parameters']
    metric = sweep['metric']
    size = f"{grid_size(parameters):,} grid points" if sweep['method'] == 'grid' else \
        "unbounded (trials are drawn until --count runs out or the agents stop)"
    print(f"sweep config: {path} (valid)")
    print(f"method:       {sweep['method']}")
    print(f"metric:       {metric['name']} ({metric['goal']})" if metric else "metric:       none (no objective)")
    print(f"trials:       {size}")
    print(f"checked:      {checked} configs (each value, and the combinations of keys that constrain each other)")
    rows = []
    for name, spec in parameters.items():
        if 'distribution' in spec:
            form, shown = spec['distribution'], f"[{format_value(spec['min'])}, {format_value(spec['max'])}]"
        else:
            form = 'value' if 'value' in spec else 'values'
            shown = ', '.join(format_value(v) for v in candidates(spec))
        rows.append((name, form, shown, format_value(DEFAULTS[name])))
    print_table(('parameter', 'form', 'values', 'default'), rows)
    print("dry run: nothing was created")
