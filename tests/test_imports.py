"""The import graph of every project module (the root's and pathstar's), imports inside functions
included: no import circle, and every import goes down the house's layers. pyproject.toml's
import-linter contracts check the package's layers; this checks the root modules too, which
import-linter cannot see."""
import ast
import os

from conftest import ROOT

SKIP = {'tests', 'bench', 'config', 'data', 'out', 'sweeps', 'wandb', 'results', '__pycache__'}
# the house, top to bottom (README's "The house"): a module may import its own layer's modules and any
# below, never one above; a name is its module or the package it starts
LAYERS = (
    ('reproduce',),
    ('run_sweep', 'analyze', 'baseline_node2vec', 'pathstar_data'),   # the other entry points
    ('train',),
    ('pathstar.experiments',),
    ('pathstar.sweeps',),
    ('pathstar.analysis', 'pathstar.training'),
    ('pathstar.validate',),                                           # the one validator
    ('pathstar.models.registry',),
    ('model', 'pathstar.models.mamba'),                               # the model families
    ('pathstar.models.base',),
    ('pathstar.data',),
    ('pathstar.graphs',),
    ('configurator', 'pathstar.tokens', 'pathstar.cli'),              # the key table, the token ids
    ('pathstar.errors', 'pathstar', 'pathstar.models'),               # (the packages' empty __init__ files)
)


def project_modules():
    mods = {}
    for folder, subs, files in os.walk(ROOT):
        top = os.path.samefile(folder, ROOT)  # data/, sweeps/ .. at the root are run outputs, not pathstar/data
        subs[:] = [d for d in subs if not (top and d in SKIP) and d != '__pycache__' and not d.startswith('.')
                   and 'venv' not in d]
        for f in files:
            if f.endswith('.py'):
                name = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].replace(os.sep, '.')
                mods[name.removesuffix('.__init__')] = os.path.join(folder, f)
    return mods


def imported(node, module, is_package):
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = module.split('.')[:len(module.split('.')) - node.level + is_package] if node.level else []
        name = '.'.join(base + ([node.module] if node.module else []))
        return [name] + [f'{name}.{a.name}' for a in node.names]
    return []


def import_graph():
    mods, graph = project_modules(), {}
    for module, path in mods.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        found = set()
        for node in ast.walk(tree):
            for name in imported(node, module, path.endswith('__init__.py')):
                while name and name not in mods:
                    name = name.rpartition('.')[0]
                if name and name != module and not module.startswith(name + '.'):
                    found.add(name)
        graph[module] = found
    return graph


def circles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_circles_are_found_by_hand():
    assert circles({'a': {'b'}, 'b': {'a'}, 'c': {'a'}}) == [{'a', 'b'}]
    assert circles({'a': {'b'}, 'b': {'c'}, 'c': set()}) == []


def test_the_graph_sees_imports_inside_functions(tmp_path):
    graph = import_graph()
    assert 'pathstar.analysis.star' in graph['train'] and 'pathstar.errors' in graph['configurator']


def test_no_import_circle_anywhere():
    assert circles(import_graph()) == []


def layer(module):
    names = [(name, i) for i, names in enumerate(LAYERS) for name in names
             if module == name or module.startswith(name + '.')]
    assert names, f"{module} is in no layer of LAYERS"
    return max(names, key=lambda pair: len(pair[0]))[1]


def test_every_import_goes_down_the_layers():
    graph = import_graph()
    for module, names in graph.items():
        if module.startswith(('tests', 'bench', 'config')):
            continue
        for name in names:
            assert layer(name) >= layer(module), f"{module} (layer {layer(module)}) imports {name} ({layer(name)})"


def test_at_most_ten_modules_at_the_root():
    root = [f for f in os.listdir(ROOT) if f.endswith('.py')]
    assert len(root) <= 10, sorted(root)


def test_no_import_hides_in_a_function_but_optional_heavy_packages():
    """An import inside a function may only be of a package that is optional or slow to import
    (README says which; torch._dynamo takes seconds); the project's own modules are imported at the top."""
    lazy_ok = {'wandb', 'optuna', 'matplotlib', 'mamba_ssm', 'psycopg', 'transformers', 'netrc', 'threading'}
    mods = project_modules()
    for module, path in mods.items():
        if module.startswith(('tests', 'bench', 'config')):
            continue
        with open(path) as f:
            tree = ast.parse(f.read())
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(fn):
                for name in imported(node, module, path.endswith('__init__.py')):
                    assert name.split('.')[0] in lazy_ok or name == 'torch._dynamo', \
                        f"{module}.{fn.name} imports {name} inside a function"


def test_the_package_never_imports_a_command_line():
    graph = import_graph()
    for module, names in graph.items():
        if module.startswith('pathstar'):
            assert not names & {'analyze', 'reproduce', 'run_sweep'}, module
