"""
The official code's dataset files: one path-star graph as the in-weights star builder of
Geometric_Memory (data/build_in_weights_datasets.py) writes it, three text files in one folder:

    star_deg_{d}_deg_tree_1_path_{l}_nodes_{N}_sd_00_fb_11_selfedge_0_pretrain.txt
        u=v                     one directed edge a line: every edge parent=child, then every
                                edge child=parent in the same order (fb_11); or parent=child only (fb_10)
    ..._train_{n}.txt           leaf=root,n2,..,leaf    the n training paths
    ..._test_{m}.txt            leaf=root,n2,..,leaf    the m held-out paths

Node ids are the plain integers of the files, from range(N). read() checks a folder's three files to
the last line and returns the graph (the data_import key); write() writes one of our graphs so
(pathstar_data.py --export_official DIR). A fault is a UserError of one line naming the
file, the line and what is wrong.
"""
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from pathstar.errors import UserError, require
from pathstar.graphs.common import holdout_count, resolve_vocab

KINDS = ('pretrain', 'train', 'test')
FILE_NAME = re.compile(r'(?P<stem>.+)_(?:(?P<pretrain>pretrain)|train_(?P<train>\d+)|test_(?P<test>\d+))\.txt')
PATTERNS = dict(pretrain='*_pretrain.txt', train='*_train_<n>.txt', test='*_test_<m>.txt')
# the fields of a name's stem that read() uses or refuses
NAME_FIELDS = dict(star_deg=r'star_deg_(\d+)', deg_tree=r'deg_tree_(\d+)', path=r'path_(\d+)', nodes=r'nodes_(\d+)',
                   sd=r'sd_(\d)(\d)', fb=r'fb_(\d)(\d)', selfedge=r'selfedge_(\d+)')
MEMO_SIZE = 8   # read() keeps this many parsed folders, keyed by the files' names, sizes and mtimes


def fail(where, what, line=None):
    at = f"{where}, line {line}" if line else where
    raise UserError(f"data_import: {at}: {what}")


@dataclass(frozen=True)
class OfficialGraph:
    files: dict             # kind ('pretrain', 'train', 'test') -> the file's path
    paths: np.ndarray       # (d, l) int64 official ids root..leaf of every arm, the arms sorted by their first hop
    held_out: np.ndarray    # the sorted arms whose paths are in the test file
    vocab_size: int         # N: nodes_N of the names, else the largest id + 1
    undirected: bool        # every edge listed both ways (fb_11), else parent=child only (fb_10)
    digest: str             # sha256 of the three files' bytes

    @property
    def d(self):
        return self.paths.shape[0]

    @property
    def l(self):  # noqa: E743 (the paper's name for the path length)
        return self.paths.shape[1]

    def config_keys(self):
        """The graph keys these files decide, with the file each comes from."""
        pretrain, test = self.files['pretrain'], self.files['test']
        return dict(graph_d=(self.d, pretrain), graph_l=(self.l, pretrain),
                    graph_vocab_size=(self.vocab_size, pretrain), use_undirected=(self.undirected, pretrain),
                    graph_holdout_percentage=(len(self.held_out) / self.d, test))


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
    """The name's variants that pathstar cannot train: star-trees, self-edges, the root in the prompt."""
    if fields.get('deg_tree', '1') != '1':
        fail(path, f"deg_tree_{fields['deg_tree']}: star-trees (deg_tree > 1) are not supported; pathstar trains "
                   f"path-stars (deg_tree_1)")
    if fields.get('selfedge', '0') != '0':
        fail(path, f"selfedge_{fields['selfedge']}: self-edges are not supported; use the selfedge_0 files")
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


def is_id(text):
    return text.isdigit()  # ASCII only (read_lines): no sign, no spaces, not empty


def check_range(path, ids, vocab, line_no):
    for node in ids:
        if vocab is not None and node >= vocab:
            fail(path, f"node id {node} is out of range({vocab}) (nodes_{vocab} in the file names)", line_no)


def parse_edges(path, lines, vocab):
    """{(u, v): line number} of the pretrain file's edges, each line checked."""
    if not lines:
        fail(path, "no edges")
    edges = {}
    for i, line in enumerate(lines, 1):
        u, sep, v = line.partition('=')
        if not (sep and is_id(u) and is_id(v)):
            fail(path, f"expected an edge u=v of two node ids, got {line!r}", i)
        u, v = int(u), int(v)
        check_range(path, (u, v), vocab, i)
        if u == v:
            fail(path, f"{u}={v} is a self-edge; self-edges are not supported", i)
        if (u, v) in edges:
            fail(path, f"{u}={v} repeats line {edges[(u, v)]}", i)
        edges[(u, v)] = i
    return edges


def find_root(path, nbrs):
    """The star's root: its one node of more than 2 neighbours, or, with 2 arms, the middle of the path."""
    branching = sorted((sorted(lines.values())[2], node) for node, lines in nbrs.items() if len(lines) > 2)
    if len(branching) > 1:
        (_, a), (line, b) = branching[:2]
        fail(path, f"nodes {a} and {b} both have more than 2 neighbours; a path-star has one root", line)
    if branching:
        return branching[0][1]
    ends = sorted(node for node, lines in nbrs.items() if len(lines) == 1)
    if not ends:
        fail(path, "the edges form a cycle, not a path-star", max(max(lines.values()) for lines in nbrs.values()))
    order, prev = [ends[0]], None
    while True:
        step = [node for node in nbrs[order[-1]] if node != prev]
        if not step:
            break
        prev = order[-1]
        order.append(step[0])
    if len(order) < len(nbrs):
        stray = min(min(lines.values()) for node, lines in nbrs.items() if node not in set(order))
        fail(path, f"the edges are not connected: this one is not on the path from {order[0]} to {order[-1]}", stray)
    if len(order) % 2 == 0:
        fail(path, f"the edges make one path of {len(order)} nodes, which has no middle node to be the root of two "
                   f"equal arms")
    return order[len(order) // 2]


def parse_star(path, edges):
    """(root, arms, parent) of the star the edges make: arms are lists of nodes below the root, sorted by
    their first node, and parent maps every node but the root to its parent."""
    nbrs = {}  # node -> {neighbour: first line listing the edge}
    for (u, v), i in edges.items():
        nbrs.setdefault(u, {}).setdefault(v, i)
        nbrs.setdefault(v, {}).setdefault(u, i)
    root = find_root(path, nbrs)
    parent, arms = {root: None}, []
    for first in sorted(nbrs[root]):
        arm, prev = [first], root
        parent[first] = root
        while True:
            step = [node for node in nbrs[arm[-1]] if node != prev]
            if not step:
                break
            node = step[0]  # find_root saw to it that no node but the root has more than 2 neighbours
            if node in parent:
                fail(path, f"the edge {arm[-1]}-{node} closes a cycle; a path-star has none", nbrs[arm[-1]][node])
            parent[node], prev = arm[-1], arm[-1]
            arm.append(node)
        arms.append(arm)
    stray = [min(lines.values()) for node, lines in nbrs.items() if node not in parent]
    if stray:
        fail(path, f"this edge is not connected to the root {root}'s arms", min(stray))
    lengths = Counter(len(arm) for arm in arms)
    usual = lengths.most_common(1)[0][0]
    for arm in arms:
        if len(arm) != usual:
            fail(path, f"the arm through {arm[0]} has {len(arm)} nodes below the root {root}, most arms have {usual}; "
                       f"a path-star's arms are equally long", nbrs[root][arm[0]])
    return root, arms, parent


def edge_direction(path, edges, root, parent, fields):
    """True when every edge is listed both ways, False when all are parent=child; anything else is refused."""
    one_way = [(i, u, v) for (u, v), i in edges.items() if (v, u) not in edges]
    if not one_way:
        undirected = True
    elif len(one_way) < len(edges):
        i, u, v = min(one_way)
        fail(path, f"{u}={v} has no reverse {v}={u}, though other edges are listed both ways; list every edge both "
                   f"ways (fb_11) or parent=child only (fb_10)", i)
    else:
        backwards = [(i, u, v) for (u, v), i in edges.items() if parent[v] != u]
        if backwards:
            i, u, v = min(backwards)
            fail(path, f"{u}={v} points towards the root {root}; edges listed one way must go parent=child (fb_10)", i)
        undirected = False
    said = fields.get('fb')
    if said == '11' and not undirected:
        fail(path, "the name says fb_11 (every edge both ways) but the file lists each edge parent=child only")
    if said == '10' and undirected:
        fail(path, "the name says fb_10 (edges parent=child only) but the file lists every edge both ways")
    return undirected


def parse_paths(path, lines, star, vocab, leaves):
    """The arm of each path line, in order; leaves ({leaf: 'file line k'}) gains this file's leaves."""
    root, arms, parent = star
    l = len(arms[0]) + 1
    arm_of = {arm[0]: index for index, arm in enumerate(arms)}
    found = []
    for i, line in enumerate(lines, 1):
        prompt, sep, target = line.partition('=')
        nodes = target.split(',')
        if not sep or not all(is_id(node) for node in nodes):
            fail(path, f"expected a path leaf=root,..,leaf of node ids, got {line!r}", i)
        if ',' in prompt and all(is_id(node) for node in prompt.split(',')):
            fail(path, f"the prompt {prompt} holds the root as well as the leaf (sd_1x); that is not supported", i)
        if not is_id(prompt):
            fail(path, f"expected a path leaf=root,..,leaf of node ids, got {line!r}", i)
        prompt, nodes = int(prompt), [int(node) for node in nodes]
        check_range(path, [prompt, *nodes], vocab, i)
        if nodes[0] != root:
            fail(path, f"the path starts at {nodes[0]}, not at the root {root} of the pretrain file's star", i)
        if len(nodes) != l:
            fail(path, f"the path has {len(nodes)} nodes; the pretrain file's root-to-leaf paths have {l}", i)
        for a, b in zip(nodes, nodes[1:]):
            if b not in parent:
                fail(path, f"{b} is not a node of the pretrain file's star", i)
            if parent[b] != a:
                fail(path, f"{a} to {b} is not a step from parent to child along the pretrain file's edges", i)
        if prompt != nodes[-1]:
            fail(path, f"the prompt {prompt} is not the path's leaf {nodes[-1]}", i)
        if nodes[-1] in leaves:
            fail(path, f"leaf {nodes[-1]} already has a path ({leaves[nodes[-1]]})", i)
        leaves[nodes[-1]] = f"{os.path.basename(path)} line {i}"
        found.append(arm_of[nodes[1]])
    return found


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

    edges = parse_edges(pretrain, contents['pretrain'], vocab)
    star = root, arms, parent = parse_star(pretrain, edges)
    undirected = edge_direction(pretrain, edges, root, parent, fields)
    d, l = len(arms), len(arms[0]) + 1
    for field, value in (('star_deg', d), ('path', l)):
        if field in fields and int(fields[field]) != value:
            fail(pretrain, f"the name says {field}_{fields[field]} but the edges make a star of {d} arms with "
                           f"{l} nodes on a root-to-leaf path")

    leaves = {}
    arm_lists = {}
    for kind in ('train', 'test'):
        arm_lists[kind] = parse_paths(files[kind], contents[kind], star, vocab, leaves)
        check_count(files[kind], kind, contents[kind])
    if not arm_lists['train']:
        fail(files['train'], "no training paths; pathstar trains at least one")
    if len(leaves) < d:
        missing = next(arm[-1] for arm in arms if arm[-1] not in leaves)
        fail(files['test'], f"the arm to leaf {missing} has no path in the train or test file; the {d} arms need "
                            f"{d} paths, the files hold {len(arm_lists['train'])} + {len(arm_lists['test'])}")
    paths = np.array([[root, *arm] for arm in arms], np.int64)
    return OfficialGraph(files=dict(files), paths=paths, held_out=np.array(sorted(arm_lists['test']), np.int64),
                         vocab_size=vocab if vocab is not None else int(paths.max()) + 1, undirected=undirected,
                         digest=digest.hexdigest())


# -----------------------------------------------------------------------------
# writing

def official_ids(labels):
    """(ids, note): node labels as the official code numbers nodes, a permutation of range(node count). Labels
    drawn from a larger range are replaced by their ranks (note says so), else kept (note is None)."""
    n = labels.size - labels.shape[0] + 1
    if int(labels.max()) == n - 1:  # n distinct labels below n: already a permutation
        return labels, None
    ranks = np.searchsorted(np.unique(labels), labels)
    return ranks, (f"node labels relabelled to their ranks 0..{n - 1} (the official files number the {n:,} nodes "
                   f"from 0; these labels come from a larger range)")


def file_texts(ids, held_out, undirected):
    """{file name: text} of the three files for a graph of (d, l) official ids root..leaf, held_out the
    arms in the test file. The edges go as the official builder writes them: sorted parent=child, then each
    reversed in the same order (undirected only)."""
    d, l = ids.shape
    parents, children = ids[:, :-1].ravel(), ids[:, 1:].ravel()
    order = np.lexsort((children, parents))
    forward = list(zip(parents[order].tolist(), children[order].tolist()))
    pretrain = [f"{u}={v}" for u, v in forward] + ([f"{v}={u}" for u, v in forward] if undirected else [])
    test = set(np.asarray(held_out).tolist())

    def path_lines(arms):
        return [f"{row[-1]}=" + ','.join(map(str, row)) for row in ids[arms].tolist()]

    train_lines = path_lines([a for a in range(d) if a not in test])
    test_lines = path_lines(sorted(test))
    stem = (f"star_deg_{d}_deg_tree_1_path_{l}_nodes_{ids.size - d + 1}_sd_00_fb_{'11' if undirected else '10'}"
            f"_selfedge_0")
    return {f"{stem}_pretrain.txt": pretrain, f"{stem}_train_{len(train_lines)}.txt": train_lines,
            f"{stem}_test_{len(test_lines)}.txt": test_lines}


def write(folder, labels, held_out, undirected):
    """Write a graph ((d, l) node labels root..leaf of every arm, the held-out arms) into folder as the
    official code's three files, each atomically; a file already there is refused (UserError) before
    anything is written. Returns the lines to print."""
    ids, note = official_ids(np.asarray(labels, np.int64))
    texts = file_texts(ids, held_out, undirected)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"export_official: {folder} is a file, not a folder")
    for name in texts:
        target = os.path.join(folder, name)
        if os.path.lexists(target):
            raise UserError(f"export_official: {target} exists already; delete it or export to "
                                         f"another folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(f"export_official: cannot make the folder {folder}: "
                                     f"{e.strerror or type(e).__name__}") from None
    printed = [note] if note else []
    for name, lines in texts.items():
        target = os.path.join(folder, name)
        write_new(target, ''.join(line + '\n' for line in lines))
        printed.append(f"wrote {target} ({len(lines):,} line{'' if len(lines) == 1 else 's'})")
    return printed


def write_new(target, text):
    """Write text to a temp name, then link it into place: target appears whole, and is never replaced."""
    temp = f"{target}.tmp-{os.getpid()}"
    try:
        with open(temp, 'w', encoding='ascii', newline='\n') as f:
            f.write(text)
        try:
            os.link(temp, target)  # fails if target appeared meanwhile
        except FileExistsError:
            raise UserError(f"export_official: {target} exists already; delete it or export to "
                                         f"another folder") from None
        except OSError:  # a file system without hard links
            if os.path.lexists(target):
                raise UserError(f"export_official: {target} exists already") from None
            os.rename(temp, target)
    except OSError as e:
        raise UserError(f"export_official: cannot write {target}: "
                                     f"{e.strerror or type(e).__name__}") from None
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)


def apply_graph_keys(cfg, overrides):
    """data_import: graph_d, graph_l, graph_vocab_size, graph_holdout_percentage and use_undirected come
    from the official files (read() checks them), and path_replication is 1 (each training
    path once) unless set. A key set explicitly to another value is an error naming both and the file."""
    graph = read(cfg['data_import'])
    d, l, held_out = graph.d, graph.l, len(graph.held_out)
    nodes = d * (l - 1) + 1
    same = dict(graph_vocab_size=lambda v: resolve_vocab(v, nodes) == graph.vocab_size,  # '1max' is N here
                graph_holdout_percentage=lambda p: holdout_count(d, p, cfg['graph_builder']) == held_out)
    for key, (value, source) in graph.config_keys().items():
        if key in overrides and not same.get(key, lambda v: v == value)(cfg[key]):
            held = f" ({held_out} of {d} paths held out)" if key == 'graph_holdout_percentage' else ''
            raise UserError(f"{key}: data_import's {source} makes {key}={value!r}{held}, but "
                                         f"{key}={cfg[key]!r} was set; leave {key} out when importing")
        cfg[key] = value
    if 'path_replication' not in overrides:
        cfg['path_replication'] = 1
    got = holdout_count(d, cfg['graph_holdout_percentage'], cfg['graph_builder'])
    require(got == held_out, f"graph_holdout_percentage: {held_out}/{d} of data_import's "
                                          f"{graph.files['test']} rounds back to {got} held-out paths here, "
                                          f"not {held_out}")
