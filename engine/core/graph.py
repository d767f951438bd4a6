"""The graph model: frozen values, and edits that return new graphs.

A `Graph` holds nodes (in insertion order) and edges between `(node, port)` pairs. Loop and
branch nodes hold sub-graphs, their regions. The main graph may also define named
`Function`s (a body with Body inputs and outputs, like a loop's), which Call nodes place. Every edit is a pure function returning a new
`Graph` that shares the unchanged `Node` objects, so "unchanged" means "the same object":
undo is a stack of old graphs, and views find what changed by identity.

Pure data: no torch, no dearpygui. Invariants are checked when values are built: ids are
short identifier-like strings, unique within their graph, and edges only join nodes of
their own graph. Everything else a user can get wrong (unknown blocks, cycles, shapes) is
left to `validate`, which reports it as diagnostics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
PATH_SEP = "/"
# A region path's first pair (FUNCTION, name) leads into function `name`'s body: no node id
# can be "@", so it never means a node.
FUNCTION = "@"
# Calls are expanded once per call site, so functions calling functions multiply: a graph may
# expand to at most this many nodes (the analysis refuses more; walks stop entering calls).
MAX_EXPANDED_NODES = 20_000


def check_id(node_id: object) -> str:
    if not isinstance(node_id, str) or not ID_PATTERN.fullmatch(node_id):
        raise ValueError(f"node id {node_id!r} must be 1-64 letters, digits or _, not starting "
                         "with a digit")
    return node_id


def _freeze(value: Any) -> Any:
    """Lists become tuples so params can't be changed behind a graph's back."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    pos: tuple[float, float] = (0.0, 0.0)
    label: str = ""
    regions: Mapping[str, Graph] = field(default_factory=dict)
    # Learnable tensors this node shares with another node of its graph: own tensor name →
    # (node id, that node's tensor name), e.g. {"weight": ("wte", "weight")} for an LM head
    # reusing the token embedding. Validated by the analysis; written as a plain assignment.
    ties: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_id(self.id)
        object.__setattr__(self, "params", {k: _freeze(v) for k, v in self.params.items()})
        object.__setattr__(self, "pos", (float(self.pos[0]), float(self.pos[1])))
        object.__setattr__(self, "regions", dict(self.regions))
        object.__setattr__(self, "ties", {str(k): (str(v[0]), str(v[1])) for k, v in self.ties.items()})

    @property
    def name(self) -> str:
        """What people call this node: its label if it has one, else its id."""
        return self.label or self.id


@dataclass(frozen=True)
class Edge:
    src: tuple[str, str]  # (node id, output port)
    dst: tuple[str, str]  # (node id, input port)

    def __post_init__(self) -> None:
        object.__setattr__(self, "src", (str(self.src[0]), str(self.src[1])))
        object.__setattr__(self, "dst", (str(self.dst[0]), str(self.dst[1])))

    def __str__(self) -> str:
        return f"{self.src[0]}.{self.src[1]} -> {self.dst[0]}.{self.dst[1]}"

    @property
    def key(self) -> str:
        """A stable text key, e.g. for metrics files: `fc1.y->act1.x`; inside a body the key
        is prefixed by the body's path, `loop1/body/fc.y->act.x`."""
        return f"{self.src[0]}.{self.src[1]}->{self.dst[0]}.{self.dst[1]}"


def source_node(edge_key: str) -> str:
    """The path of the node an edge key leaves: `loop1/body/fc.y->act.x` → `loop1/body/fc`."""
    src = edge_key.split("->")[0]
    prefix = src[: src.rfind(PATH_SEP) + 1]
    return prefix + src[len(prefix):].split(".")[0]


def source_port(edge_key: str) -> str:
    """The output port an edge key leaves: `loop1/body/fc.y->act.x` → `y`."""
    src = edge_key.split("->")[0]
    return src[src.rfind(PATH_SEP) + 1:].split(".", 1)[1]


@dataclass(frozen=True)
class Function:
    """A named sub-graph users define once and place many times with Call nodes. Its
    signature is its body's Body inputs and outputs, in node order; `category` files it in
    the palette ("" for the default, "Functions")."""

    body: Graph
    title: str = ""
    doc: str = ""
    category: str = ""


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    name: str = "model"
    training: Mapping[str, Any] = field(default_factory=dict)
    # Only the main graph defines functions (name → Function); a body's stays empty, and a
    # Call anywhere names a function of the main graph.
    functions: Mapping[str, Function] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "edges", tuple(self.edges))
        object.__setattr__(self, "functions", dict(self.functions))
        for fname in self.functions:
            if not isinstance(fname, str) or not ID_PATTERN.fullmatch(fname):
                raise ValueError(f"function name {fname!r} must be 1-64 letters, digits or _, "
                                 "not starting with a digit")
        # Every edit makes a new graph, so these checks run in comprehensions and set
        # operations; the loops that name the culprit run only when one fails.
        index = {n.id: n for n in self.nodes}
        if len(index) != len(self.nodes):
            seen: set[str] = set()
            for n in self.nodes:
                if n.id in seen:
                    raise ValueError(f"node id {n.id!r} is used twice")
                seen.add(n.id)
        ends = {e.src[0] for e in self.edges}
        ends.update([e.dst[0] for e in self.edges])
        if not ends <= index.keys():
            for e in self.edges:
                for end, (nid, _) in (("source", e.src), ("target", e.dst)):
                    if nid not in index:
                        raise ValueError(f"edge {e} has unknown {end} node {nid!r}")
        object.__setattr__(self, "_index", index)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index

    def node(self, node_id: str) -> Node:
        return self._index[node_id]

    def get(self, node_id: str) -> Node | None:
        return self._index.get(node_id)

    def incoming(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.dst[0] == node_id]

    def outgoing(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.src[0] == node_id]

    def fresh_id(self, stem: str) -> str:
        """An unused id like `linear3`, numbered after the existing ones with this stem."""
        stem = re.sub(r"[^A-Za-z0-9_]", "_", stem)[:48] or "node"
        if not stem[0].isalpha() and stem[0] != "_":
            stem = "n" + stem
        i = 1
        while f"{stem}{i}" in self._index:
            i += 1
        return f"{stem}{i}"

    # --- paths into regions ----------------------------------------------------------

    def region_at(self, path: Iterable[str]) -> Graph:
        """The graph at `path`, a sequence alternating node id and region name; a path
        starting (FUNCTION, name) is in the body of function `name` (main graph only)."""
        graph = self
        parts = list(path)
        for node_id, region in zip(parts[::2], parts[1::2], strict=True):
            graph = self.functions[region].body if node_id == FUNCTION and graph is self \
                else graph.node(node_id).regions[region]
        return graph

    def fresh_function_name(self, stem: str) -> str:
        """An unused function name: `stem` itself when free, else `stem2`, `stem3`, ..."""
        stem = re.sub(r"[^A-Za-z0-9_]", "_", stem)[:48] or "function"
        if not stem[0].isalpha() and stem[0] != "_":
            stem = "f" + stem
        if stem not in self.functions:
            return stem
        i = 2
        while f"{stem}{i}" in self.functions:
            i += 1
        return f"{stem}{i}"

    def walk(self, prefix: str = ""):
        """Yield (path, node) for every node, regions included, paths like `loop1/body/fc`;
        in the main graph also every node of a function's body at each call, paths like
        `enc1/double_conv/conv` (call id, function name, node id)."""
        for region_prefix, region in self.regions(prefix):
            for n in region.nodes:
                yield region_prefix + n.id, n

    def regions(self, prefix: str = "", functions: Mapping[str, Function] | None = None):
        """Yield (path prefix, graph) for this graph and every body inside it: loop and branch
        bodies, and each call's function body (named by `functions`, by default the main
        graph's; `{}` enters none).

        A function that calls itself is not entered again, and calls stop being entered once
        MAX_EXPANDED_NODES nodes were: the analysis refuses such graphs, and no walk over a
        file may take for ever."""
        budget = [MAX_EXPANDED_NODES]
        functions = self.functions if functions is None else functions
        yield from self._regions(prefix, functions, (), budget)

    def _regions(self, prefix: str, functions: Mapping[str, Function], calling: tuple[str, ...],
                 budget: list[int]):
        yield prefix, self
        for n in self.nodes:
            for rname, region in n.regions.items():
                yield from region._regions(f"{prefix}{n.id}{PATH_SEP}{rname}{PATH_SEP}",
                                           functions, calling, budget)
            callee = n.params.get("function") if n.type == "call" else None
            if isinstance(callee, str) and callee in functions and callee not in calling:
                body = functions[callee].body
                budget[0] -= len(body.nodes)
                if budget[0] >= 0:
                    yield from body._regions(f"{prefix}{n.id}{PATH_SEP}{callee}{PATH_SEP}",
                                             functions, (*calling, callee), budget)


# --- edits: each returns a new graph -------------------------------------------------


def add_node(graph: Graph, node: Node) -> Graph:
    return replace(graph, nodes=(*graph.nodes, node))


def remove_nodes(graph: Graph, ids: Iterable[str]) -> Graph:
    gone = set(ids)
    return replace(graph, nodes=tuple(n for n in graph.nodes if n.id not in gone),
                   edges=tuple(e for e in graph.edges if e.src[0] not in gone and e.dst[0] not in gone))


def replace_node(graph: Graph, node: Node) -> Graph:
    """Swap in a new version of the node with the same id; other nodes stay the same objects."""
    if node.id not in graph:
        raise KeyError(node.id)
    return replace(graph, nodes=tuple(node if n.id == node.id else n for n in graph.nodes))


def update_node(graph: Graph, node_id: str, **changes: Any) -> Graph:
    return replace_node(graph, replace(graph.node(node_id), **changes))


def set_param(graph: Graph, node_id: str, name: str, value: Any) -> Graph:
    node = graph.node(node_id)
    return replace_node(graph, replace(node, params={**node.params, name: value}))


def move_nodes(graph: Graph, positions: Mapping[str, tuple[float, float]]) -> Graph:
    return replace(graph, nodes=tuple(replace(n, pos=positions[n.id]) if n.id in positions else n
                                      for n in graph.nodes))


def connect(graph: Graph, src: tuple[str, str], dst: tuple[str, str]) -> Graph:
    """Add an edge; an input port takes one edge, so an existing edge into `dst` is replaced."""
    kept = tuple(e for e in graph.edges if e.dst != tuple(dst))
    return replace(graph, edges=(*kept, Edge(src, dst)))


def disconnect(graph: Graph, edge: Edge) -> Graph:
    return replace(graph, edges=tuple(e for e in graph.edges if e != edge))


def set_region(graph: Graph, node_id: str, region: str, body: Graph) -> Graph:
    node = graph.node(node_id)
    return replace_node(graph, replace(node, regions={**node.regions, region: body}))


def edit_region(graph: Graph, path: list[str], edit) -> Graph:
    """Apply `edit(region) -> region` to the region at `path`, rebuilding the parents."""
    if not path:
        return edit(graph)
    node_id, region, *rest = path
    if node_id == FUNCTION:
        return edit_function(graph, region, rest, edit)
    inner = graph.node(node_id).regions[region]
    return set_region(graph, node_id, region, edit_region(inner, rest, edit))


def set_training(graph: Graph, training: Mapping[str, Any]) -> Graph:
    return replace(graph, training=dict(training))


def rename_graph(graph: Graph, name: str) -> Graph:
    return replace(graph, name=name)


# --- functions -------------------------------------------------------------------------


def set_function(graph: Graph, name: str, function: Function) -> Graph:
    """Define or redefine function `name`: every Call naming it changes with it."""
    return replace(graph, functions={**graph.functions, name: function})


def remove_function(graph: Graph, name: str) -> Graph:
    return replace(graph, functions={k: f for k, f in graph.functions.items() if k != name})


def edit_function(graph: Graph, name: str, path: list[str], edit) -> Graph:
    """Apply `edit(region) -> region` to the region at `path` inside function `name`'s body."""
    fn = graph.functions[name]
    return set_function(graph, name, replace(fn, body=edit_region(fn.body, path, edit)))


def set_tie(graph: Graph, node_id: str, tensor: str, target: tuple[str, str] | None) -> Graph:
    """Tie the node's `tensor` to `target` (node id, tensor name), or untie it with None."""
    node = graph.node(node_id)
    ties = {k: v for k, v in node.ties.items() if k != tensor}
    if target is not None:
        ties[tensor] = target
    return replace_node(graph, replace(node, ties=ties))
