"""
The official code's dataset files: one graph as the in-weights star builder of Geometric_Memory
(data/build_in_weights_datasets.py) writes it, three text files in one folder:

    star_deg_{d}_deg_tree_{k}_path_{l}_nodes_{N}_sd_00_fb_11_selfedge_{0|1}_pretrain.txt
        u=v                     one directed edge a line: every edge parent=child sorted, then every
                                edge child=parent in the same order (fb_11); or parent=child only (fb_10);
                                then v=v for every node v (selfedge_1)
    ..._train_{n}.txt           leaf=root,n2,..,leaf    the n training paths
    ..._test_{m}.txt            leaf=root,n2,..,leaf    the m held-out paths

deg_tree_1 is the path-star (graph='star'); deg_tree_k > 1 a star-tree (graph='star_tree'): the root's
d children each root a full k-ary tree, one path per leaf, path_l counting the root as our graph_l does.
Node ids are the plain integers of the files, from range(N). read() checks a folder's three files to
the last line and returns the graph (the data_import key); write() writes one of our graphs so
(pathstar_data.py --export_official DIR), all three files or none. A fault is a UserError of one line
naming the file, the line and what is wrong.
"""
import hashlib
import os
import re
from dataclasses import dataclass

import numpy as np

from pathstar.errors import UserError, require
from pathstar.graphs.common import holdout_count, resolve_vocab
from pathstar.graphs.official_parse import (check_self_edges, edge_direction, fail, parse_edges, parse_paths,
                                            parse_star, parse_tree)

KINDS = ('pretrain', 'train', 'test')
FILE_NAME = re.compile(r'(?P<stem>.+)_(?:(?P<pretrain>pretrain)|train_(?P<train>\d+)|test_(?P<test>\d+))\.txt')
PATTERNS = dict(pretrain='*_pretrain.txt', train='*_train_<n>.txt', test='*_test_<m>.txt')
# the fields of a name's stem that read() uses or refuses
NAME_FIELDS = dict(star_deg=r'star_deg_(\d+)', deg_tree=r'deg_tree_(\d+)', path=r'path_(\d+)', nodes=r'nodes_(\d+)',
                   sd=r'sd_(\d)(\d)', fb=r'fb_(\d)(\d)', selfedge=r'selfedge_(\d+)')
MEMO_SIZE = 8   # read() keeps this many parsed folders, keyed by the files' names, sizes and mtimes


@dataclass(frozen=True)
class OfficialGraph:
    files: dict             # kind ('pretrain', 'train', 'test') -> the file's path
    paths: np.ndarray       # (P, l) int64 official ids root..leaf of every path, sorted (so arm by arm)
    held_out: np.ndarray    # the sorted paths whose lines are in the test file
    vocab_size: int         # N: nodes_N of the names, else the largest id + 1
    undirected: bool        # every edge listed both ways (fb_11), else parent=child only (fb_10)
    digest: str             # sha256 of the three files' bytes
    subtree_degree: int = 1  # k of deg_tree_k: 1 is the path-star, else a star-tree
    self_edges: bool = False  # v=v for every node (selfedge_1)

    @property
    def l(self):  # noqa: E743 (the paper's name for the path length)
        return self.paths.shape[1]

    @property
    def per_arm(self):
        """Paths (leaves) below each of the root's children."""
        return self.subtree_degree ** (self.l - 2)

    @property
    def d(self):
        return self.paths.shape[0] // self.per_arm

    @property
    def nodes(self):
        return 1 + self.d * sum(self.subtree_degree ** j for j in range(self.l - 1))

    def whole_subtrees(self):
        """Whether the held-out paths are every leaf of some of the root's children (subtree_holdout)."""
        counts = np.bincount(self.held_out // self.per_arm, minlength=self.d)
        return self.subtree_degree > 1 and len(self.held_out) > 0 and set(counts.tolist()) <= {0, self.per_arm}

    def config_keys(self):
        """The graph keys these files decide, with the file each comes from."""
        pretrain, test = self.files['pretrain'], self.files['test']
        tree = self.subtree_degree > 1
        keys = dict(graph=('star_tree' if tree else 'star', pretrain), graph_d=(self.d, pretrain),
                    graph_l=(self.l, pretrain))
        if tree:
            keys.update(star_subtree_degree=(self.subtree_degree, pretrain),
                        subtree_holdout=(self.whole_subtrees(), test))
        return dict(keys, graph_vocab_size=(self.vocab_size, pretrain), use_undirected=(self.undirected, pretrain),
                    add_self_edges=(self.self_edges, pretrain),
                    graph_holdout_percentage=(len(self.held_out) / len(self.paths), test))

    def held_count(self, percentage, subtree_holdout, builder):
        """The held-out paths that percentage makes here, as the star or star_tree family counts them."""
        if self.subtree_degree == 1:
            return holdout_count(self.d, percentage, builder)
        if subtree_holdout:
            return holdout_count(self.d, percentage) * self.per_arm
        return holdout_count(len(self.paths), percentage)

    def edges_and_nodes(self):
        """((E, 2) parent, child ids and (n,) ids of every node): the root, then arm by arm, each arm
        breadth first, as pathstar/graphs numbers a star and a star-tree."""
        l, k = self.l, self.subtree_degree
        arms = self.paths.reshape(self.d, self.per_arm, l)  # sorted paths: an arm's leaves are adjacent
        # the node at depth j of a full k-ary subtree changes every k^(l-1-j) leaves
        child = np.concatenate([arms[:, ::k ** (l - 1 - j), j] for j in range(1, l)], 1).ravel()
        parent = np.concatenate([arms[:, ::k ** (l - 1 - j), j - 1] for j in range(1, l)], 1).ravel()
        return np.stack((parent, child), 1), np.concatenate([self.paths[:1, 0], child])


# -----------------------------------------------------------------------------
# reading

_memo = {}


def read(folder):
    """The graph in folder's three official files, every line checked (UserError otherwise).

    Parsed once per version of the files: a later call with the files unchanged (names, sizes,
    modification times) costs a directory listing.
    """
    files = find_files(folder)
    try:
        stamps = tuple((path, os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in files.values())
    except OSError as e:
        fail(folder, f"cannot read it ({e.strerror or type(e).__name__})")
    key = (os.path.abspath(folder), stamps)
    if key not in _memo:
        if len(_memo) >= MEMO_SIZE:
            _memo.clear()
        _memo[key] = parse_files(files)
    return _memo[key]


def find_files(folder):
    """{kind: path} of the one file of each kind in folder; the three names must share their stem."""
    if not os.path.exists(folder):
        fail(folder, "no such folder")
    if not os.path.isdir(folder):
        fail(folder, "is a file; give the folder that holds the official *_pretrain.txt, *_train_<n>.txt and "
                     "*_test_<m>.txt")
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        fail(folder, f"cannot read it ({e.strerror or type(e).__name__})")
    found = {kind: [] for kind in KINDS}
    for name in names:
        match = FILE_NAME.fullmatch(name)
        if match:
            found[next(kind for kind in KINDS if match.group(kind) is not None)].append((name, match['stem']))
    for kind in KINDS:
        if not found[kind]:
            fail(folder, f"no {PATTERNS[kind]} file (an official graph is three files named *_pretrain.txt, "
                         f"*_train_<n>.txt and *_test_<m>.txt)")
        if len(found[kind]) > 1:
            fail(folder, f"{len(found[kind])} {PATTERNS[kind]} files ({', '.join(n for n, _ in found[kind])}); "
                         f"put each graph's three files in a folder of their own")
    stems = {found[kind][0][1] for kind in KINDS}
    if len(stems) > 1:
        fail(folder, f"the names of {', '.join(found[kind][0][0] for kind in KINDS)} differ before their "
                     f"_pretrain/_train_<n>/_test_<m>; the three files of one graph share the rest of the name")
    files = {kind: os.path.join(folder, found[kind][0][0]) for kind in KINDS}
    for path in files.values():
        if not os.path.isfile(path):
            fail(path, "is not a file")
    return files


def name_fields(path):
    """{field: digits} of the fields in a file's name (star_deg_5 -> star_deg: '5', fb_11 -> fb: '11')."""
    stem = FILE_NAME.fullmatch(os.path.basename(path))['stem']
    fields = {}
    for field, pattern in NAME_FIELDS.items():
        match = re.search(rf'(?:^|_){pattern}(?=_|$)', stem)
        if match:
            fields[field] = ''.join(match.groups())
    return fields


def check_supported(path, fields):
    """The name's variants that pathstar cannot train: the root in the prompt, no forward edges."""
    if fields.get('deg_tree', '1') == '0':
        fail(path, "deg_tree_0: a subtree degree is 1 (a path-star) or more (a star-tree)")
    if fields.get('selfedge', '0') not in ('0', '1'):
        fail(path, f"selfedge_{fields['selfedge']}: expected selfedge_0 or selfedge_1")
    if fields.get('sd', '00')[0] != '0':
        fail(path, f"sd_{fields['sd']}: paths prompted with the root as well as the leaf (sd_1x) are not "
                   f"supported; use the sd_0x files")
    if fields.get('fb') in ('00', '01'):
        fail(path, f"fb_{fields['fb']}: " + ("no edges" if fields['fb'] == '00' else
                                              "backward edges only (child=parent) are not supported"))


def read_lines(path):
    """(the file's bytes, its lines); a final newline ends the last line."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        fail(path, f"cannot read it ({e.strerror or type(e).__name__})")
    try:
        text = data.decode('ascii')
    except UnicodeDecodeError as e:
        fail(path, "not plain text: the files hold digits, '=', ',' and newlines", data.count(b'\n', 0, e.start) + 1)
    lines = text.split('\n')
    if lines[-1] == '':
        lines.pop()
    return data, lines


def check_count(path, kind, lines):
    said = int(FILE_NAME.fullmatch(os.path.basename(path))[kind])
    if len(lines) > said:
        fail(path, f"path {said + 1} of {len(lines)}, but the file name says {kind}_{said}", said + 1)
    if len(lines) < said:
        fail(path, f"the file ends after {len(lines)} paths, but its name says {kind}_{said}", len(lines) or None)


def parse_files(files):
    """The OfficialGraph of three files found by find_files, every line and the structure checked."""
    pretrain = files['pretrain']
    fields = name_fields(pretrain)
    check_supported(pretrain, fields)
    vocab = int(fields['nodes']) if 'nodes' in fields else None
    digest = hashlib.sha256()
    contents = {}
    for kind in KINDS:
        data, contents[kind] = read_lines(files[kind])
        digest.update(f"{kind} {len(data)}\n".encode())
        digest.update(data)

    self_edges, k = fields.get('selfedge') == '1', int(fields.get('deg_tree', '1'))
    edges, loops = parse_edges(pretrain, contents['pretrain'], vocab, self_edges)
    star = root, below, parent = parse_star(pretrain, edges) if k == 1 else parse_tree(pretrain, edges, k)
    undirected = edge_direction(pretrain, edges, root, parent, fields)
    d, l = len({nodes[0] for nodes in below}), len(below[0]) + 1
    for field, value in (('star_deg', d), ('path', l)):
        if field in fields and int(fields[field]) != value:
            fail(pretrain, f"the name says {field}_{fields[field]} but the edges make a star{'-tree' if k > 1 else ''} "
                           f"of {d} {'arms' if k == 1 else 'subtrees'} with {l} nodes on a root-to-leaf path")
    if self_edges:
        check_self_edges(pretrain, loops, parent)

    leaves = {}
    found = {}
    for kind in ('train', 'test'):
        found[kind] = parse_paths(files[kind], contents[kind], star, vocab, leaves)
        check_count(files[kind], kind, contents[kind])
    if not found['train']:
        fail(files['train'], "no training paths; pathstar trains at least one")
    if len(leaves) < len(below):
        missing = next(nodes[-1] for nodes in below if nodes[-1] not in leaves)
        what = 'arms' if k == 1 else 'leaves'
        fail(files['test'], f"the {what[:-1] if k == 1 else 'branch'} to leaf {missing} has no path in the train or "
                            f"test file; the {len(below)} {what} need {len(below)} paths, the files hold "
                            f"{len(found['train'])} + {len(found['test'])}")
    paths = np.array([[root, *nodes] for nodes in below], np.int64)
    return OfficialGraph(files=dict(files), paths=paths, held_out=np.array(sorted(found['test']), np.int64),
                         vocab_size=vocab if vocab is not None else int(paths.max()) + 1, undirected=undirected,
                         digest=digest.hexdigest(), subtree_degree=k, self_edges=self_edges)


# -----------------------------------------------------------------------------
# writing

def official_ids(labels):
    """(ids, note): node labels as the official code numbers nodes, a permutation of range(node count). Labels
    drawn from a larger range are replaced by their ranks (note says so), else kept (note is None)."""
    distinct = np.unique(labels)
    n = len(distinct)
    if int(distinct[-1]) == n - 1:  # n distinct labels below n: already a permutation
        return labels, None
    return np.searchsorted(distinct, labels), (f"node labels relabelled to their ranks 0..{n - 1} (the official "
                                               f"files number the {n:,} nodes from 0; these labels come from a "
                                               f"larger range)")


def file_texts(ids, held_out, undirected, subtree_degree=1, self_edges=False):
    """{file name: lines} of the three files for a graph of (P, l) official ids root..leaf, held_out the
    paths in the test file, as the official builder names and writes them: the edges sorted parent=child,
    then each reversed in the same order (undirected), then v=v for every node v (self_edges)."""
    paths, l = ids.shape
    parents, children = ids[:, :-1].ravel(), ids[:, 1:].ravel()
    _, first = np.unique(children, return_index=True)  # a tree: each child's one parent, once
    parents, children = parents[first], children[first]
    order = np.lexsort((children, parents))
    forward = list(zip(parents[order].tolist(), children[order].tolist()))
    n = len(forward) + 1
    pretrain = ([f"{u}={v}" for u, v in forward] + ([f"{v}={u}" for u, v in forward] if undirected else [])
                + ([f"{v}={v}" for v in range(n)] if self_edges else []))
    test = set(np.asarray(held_out).tolist())

    def path_lines(rows):
        return [f"{row[-1]}=" + ','.join(map(str, row)) for row in ids[rows].tolist()]

    train_lines = path_lines([p for p in range(paths) if p not in test])
    test_lines = path_lines(sorted(test))
    d = paths // subtree_degree ** (l - 2)  # the root's children
    stem = (f"star_deg_{d}_deg_tree_{subtree_degree}_path_{l}_nodes_{n}_sd_00_fb_{'11' if undirected else '10'}"
            f"_selfedge_{int(self_edges)}")
    return {f"{stem}_pretrain.txt": pretrain, f"{stem}_train_{len(train_lines)}.txt": train_lines,
            f"{stem}_test_{len(test_lines)}.txt": test_lines}


def write(folder, labels, held_out, undirected, subtree_degree=1, self_edges=False):
    """Write a graph ((P, l) node labels root..leaf of every path, the held-out paths) into folder as the
    official code's three files, all three or none. A file already there, or another graph's files in
    folder, is refused (UserError) before anything is written. Returns the lines to print."""
    ids, note = official_ids(np.asarray(labels, np.int64))
    texts = file_texts(ids, held_out, undirected, subtree_degree, self_edges)
    check_target(folder, texts)
    made = not os.path.exists(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(f"export_official: cannot make the folder {folder}: {e.strerror or type(e).__name__}") from None
    try:
        place_all(folder, texts)
    except UserError:
        if made:
            try:
                os.rmdir(folder)  # only if empty: nothing of ours is left in it
            except OSError:
                pass
        raise
    return ([note] if note else []) + [f"wrote {os.path.join(folder, name)} ({len(lines):,} "
                                       f"line{'' if len(lines) == 1 else 's'})" for name, lines in texts.items()]


def check_target(folder, texts):
    """The export's folder holds none of its files and no other graph's (data_import reads one a folder)."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"export_official: {folder} is a file, not a folder")
    for name in texts:
        if os.path.lexists(os.path.join(folder, name)):
            raise UserError(f"export_official: {os.path.join(folder, name)} exists already; delete it or export to "
                            f"another folder")
    try:
        others = sorted(name for name in os.listdir(folder) if FILE_NAME.fullmatch(name)) if os.path.isdir(
            folder) else []
    except OSError as e:
        raise UserError(f"export_official: cannot read the folder {folder}: {e.strerror or type(e).__name__}") from None
    if others:
        raise UserError(f"export_official: {folder} holds another graph's official files ({others[0]}); data_import "
                        f"reads one graph a folder, so export to another folder")


def place_all(folder, texts):
    """Write every file to a temp name beside its target, then link each into place; on any failure remove
    what was placed and every temp file, so the folder gains all the files or none."""
    temps, placed = [], []
    try:
        for name, lines in texts.items():
            temp = os.path.join(folder, f"{name}.tmp-{os.getpid()}")
            with open(temp, 'w', encoding='ascii', newline='\n') as f:
                temps.append(temp)
                f.write(''.join(line + '\n' for line in lines))
        for temp, name in zip(temps, texts):
            link_new(temp, os.path.join(folder, name))
            placed.append(os.path.join(folder, name))
    except OSError as e:
        for target in placed:
            os.unlink(target)
        raise UserError(f"export_official: cannot write {e.filename or folder}: {e.strerror or type(e).__name__}; "
                        f"nothing was written") from None
    except UserError:
        for target in placed:
            os.unlink(target)
        raise
    finally:
        for temp in temps:
            if os.path.lexists(temp):
                os.unlink(temp)


def link_new(temp, target):
    """Link temp to target, which must not exist: a file that appeared meanwhile is never replaced."""
    try:
        os.link(temp, target)
    except FileExistsError:
        raise UserError(f"export_official: {target} exists already; delete it or export to another folder; "
                        f"nothing was written") from None
    except OSError:  # a file system without hard links
        if os.path.lexists(target):
            raise UserError(f"export_official: {target} exists already; nothing was written") from None
        os.rename(temp, target)


# -----------------------------------------------------------------------------
# the config keys of data_import

KEEP_GIVEN = ('subtree_holdout', 'add_self_edges')  # an explicit value these files allow stays as given


def agrees(graph, cfg, key, value):
    """Whether cfg's explicitly set key may stand beside the files' value for it."""
    given = cfg[key]
    if key == 'graph_vocab_size':  # '1max' is N here
        return resolve_vocab(given, graph.nodes) == value
    if key == 'graph_holdout_percentage':
        return graph.held_count(given, cfg['subtree_holdout'], cfg['graph_builder']) == len(graph.held_out)
    if key == 'subtree_holdout':  # single leaves may happen to fill whole subtrees
        return given == value or not given
    if key == 'add_self_edges':  # self-edge rows on top of a selfedge_0 graph, as without data_import
        return given == value or given
    return given == value


def apply_graph_keys(cfg, overrides):
    """data_import: graph (star for deg_tree_1, else star_tree), graph_d, graph_l, star_subtree_degree,
    subtree_holdout, graph_vocab_size, use_undirected, add_self_edges and graph_holdout_percentage come
    from the official files (read() checks them), and path_replication is 1 (each training path once)
    unless set. A key set explicitly to a value the files contradict is an error naming both and the file."""
    graph = read(cfg['data_import'])
    held, paths = len(graph.held_out), len(graph.paths)
    for key, (value, source) in graph.config_keys().items():
        if key not in overrides:
            cfg[key] = value
        elif not agrees(graph, cfg, key, value):
            also = f" ({held} of {paths} paths held out)" if key == 'graph_holdout_percentage' else ''
            raise UserError(f"{key}: data_import's {source} makes {key}={value!r}{also}, but {key}={cfg[key]!r} was "
                            f"set; leave {key} out when importing")
        elif key not in KEEP_GIVEN:
            cfg[key] = value
    if 'path_replication' not in overrides:
        cfg['path_replication'] = 1
    got = graph.held_count(cfg['graph_holdout_percentage'], cfg['subtree_holdout'], cfg['graph_builder'])
    require(got == held, f"graph_holdout_percentage: {held}/{paths} of data_import's {graph.files['test']} rounds "
                         f"back to {got} held-out paths here, not {held}")
