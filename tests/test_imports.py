"""The import graph of every project module (the root's and pathstar's), imports inside functions
included: which modules are in an import circle. pyproject.toml's import-linter contract checks the
package's layers; this checks the root modules too, which import-linter cannot see."""
import ast
import os

from conftest import ROOT

SKIP = {'tests', 'bench', 'config', 'data', 'out', 'sweeps', 'wandb', 'results', '__pycache__'}
# the data modules' circle, which the rest of [2 of 4] breaks up; nothing may join it, and no other may form
DATA_CIRCLE = {'configurator', 'config_rules', 'graphs', 'incontext_data', 'official_files', 'pathstar_cache',
               'pathstar_data'}


def project_modules():
    mods = {}
    for folder, subs, files in os.walk(ROOT):
        subs[:] = [d for d in subs if d not in SKIP and not d.startswith('.') and 'venv' not in d]
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


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert 'pathstar.analysis.star' in graph['train']
    assert 'config_rules' in graph['configurator']


def test_no_import_circle_but_the_data_modules_one():
    assert circles(import_graph()) == [DATA_CIRCLE]


def test_the_package_never_imports_a_command_line():
    graph = import_graph()
    for module, names in graph.items():
        if module.startswith('pathstar'):
            assert not names & {'analyze', 'reproduce', 'run_sweep'}, module
