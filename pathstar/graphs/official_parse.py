"""
The line-by-line checks of the official code's files (official.py finds and names them): the edge
lines, the path-star or star-tree they make, their direction, the self-edges and the path lines.
Each fault is a UserError of one line naming the file, the line and what is wrong.
"""
import os
from collections import Counter

from pathstar.errors import UserError
from pathstar.tokens import MAX_VOCAB_SIZE, NODE_OFFSET


def fail(where, what, line=None):
    at = f"{where}, line {line}" if line else where
    raise UserError(f"data_import: {at}: {what}")


def is_id(text):
    return text.isdigit()  # ASCII only (read_lines): no sign, no spaces, not empty


MAX_ID = MAX_VOCAB_SIZE - NODE_OFFSET - 1  # the largest id whose token id fits in uint32


def check_range(path, ids, vocab, line_no):
    for node in ids:
        if vocab is not None and node >= vocab:
            fail(path, f"node id {node} is out of range({vocab}) (nodes_{vocab} in the file names)", line_no)
        if node > MAX_ID:
            fail(path, f"node id {node} is too large: pathstar stores token ids as uint32, so ids go up to "
                       f"{MAX_ID:,}", line_no)


def parse_edges(path, lines, vocab, self_edges):
    """({(u, v): line number} of the pretrain file's edges, {v: line number} of its self-edges v=v), each
    line checked; self-edges only in selfedge_1 files."""
    if not lines:
        fail(path, "no edges")
    edges, loops = {}, {}
    for i, line in enumerate(lines, 1):
        u, sep, v = line.partition('=')
        if not (sep and is_id(u) and is_id(v)):
            fail(path, f"expected an edge u=v of two node ids, got {line!r}", i)
        u, v = int(u), int(v)
        check_range(path, (u, v), vocab, i)
        if u == v and not self_edges:
            fail(path, f"{u}={v} is a self-edge, but the name does not say selfedge_1", i)
        key, seen = (u, loops) if u == v else ((u, v), edges)
        if key in seen:
            once = "; the official builder lists each self-edge once" if u == v else ''
            fail(path, f"{u}={v} repeats line {seen[key]}{once}", i)
        seen[key] = i
    if not edges:
        fail(path, "no edges but self-edges")
    return edges, loops


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
    nbrs = neighbours(edges)
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


def neighbours(edges):
    """node -> {neighbour: the first line listing their edge}."""
    nbrs = {}
    for (u, v), i in edges.items():
        nbrs.setdefault(u, {}).setdefault(v, i)
        nbrs.setdefault(v, {}).setdefault(u, i)
    return nbrs


def tree_root(path, nbrs):
    """A star-tree's root: the one node left when its leaves are cut off, layer by layer (its leaves are
    all equally deep, and the root has 2 or more children)."""
    degree, removed = {node: len(lines) for node, lines in nbrs.items()}, set()
    layer = [node for node, deg in degree.items() if deg == 1]
    while len(nbrs) - len(removed) > 2 and layer:
        removed.update(layer)
        cut, layer = layer, []
        for node in cut:
            for v in nbrs[node]:
                degree[v] -= 1
                if degree[v] == 1 and v not in removed:
                    layer.append(v)
    core = [node for node in nbrs if node not in removed]
    if not core:
        fail(path, "the edges are not one connected tree")
    if len(core) > 1:
        line = min((i for node in core for v, i in nbrs[node].items() if v not in removed), default=None)
        fail(path, "the edges close a cycle; a star-tree has none" if len(core) > 2 else
                   f"the leaves are not all equally deep below one root: nodes {core[0]} and {core[1]} are both the "
                   f"middle of the tree", line)
    return core[0]


def parse_tree(path, edges, k):
    """(root, paths, parent) of the star-tree the edges make (deg_tree_k): paths are lists of nodes below
    the root, one per leaf, in sorted order, and parent maps every node but the root to its parent."""
    nbrs = neighbours(edges)
    root = tree_root(path, nbrs)
    parent, paths = {root: None}, []
    todo = [[root]]
    while todo:
        branch = todo.pop()
        node = branch[-1]
        children = sorted((v for v in nbrs[node] if v != parent[node]), reverse=True)
        for v in children:
            if v in parent:
                fail(path, f"the edge {node}-{v} closes a cycle; a star-tree has none", nbrs[node][v])
            parent[v] = node
        if not children:
            if paths and len(branch) != len(paths[0]) + 1:
                fail(path, f"leaf {node} is at depth {len(branch) - 1} below the root {root}, leaf {paths[0][-1]} at "
                           f"depth {len(paths[0])}; a star-tree's leaves are equally deep", nbrs[node][parent[node]])
            paths.append(branch[1:])
        elif node != root and len(children) != k:
            fail(path, f"node {node} has {len(children)} children, but deg_tree_{k} in the name says {k}",
                 nbrs[node][parent[node]])
        todo.extend(branch + [v] for v in children)
    stray = [min(lines.values()) for node, lines in nbrs.items() if node not in parent]
    if stray:
        fail(path, f"this edge is not connected to the root {root}'s subtrees", min(stray))
    return root, paths, parent


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
    """The path (index into star's) of each path line, in order; leaves ({leaf: 'file line k'}) gains this
    file's leaves."""
    root, below, parent = star
    l = len(below[0]) + 1
    index_of = {nodes[-1]: index for index, nodes in enumerate(below)}
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
        found.append(index_of[nodes[-1]])
    return found


def check_self_edges(path, loops, parent):
    """selfedge_1: one v=v for every node of the graph, and for no other id."""
    stray = [(i, v) for v, i in loops.items() if v not in parent]
    if stray:
        i, v = min(stray)
        fail(path, f"{v}={v} is the self-edge of {v}, which is no node of the graph; pathstar adds self-edges to "
                   f"the graph's nodes only", i)
    missing = [v for v in parent if v not in loops]
    if missing:
        fail(path, f"node {min(missing)} has no self-edge {min(missing)}={min(missing)}, though the name says "
                   f"selfedge_1 (one for every node)")
