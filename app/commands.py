"""Edits as values: each command is a small frozen dataclass with a pure `apply(graph)`.

`apply` takes the whole (top-level) graph and returns a new one; commands that edit a loop
or branch body carry the body's `region` path (`()` is the main graph, `("loop1", "body")`
the body of `loop1`) and rebuild the parents, sharing every node they did not touch. A
command that cannot be done raises `CommandRejected` with a reason for the status bar; it
never half-applies, because it never mutates anything.

Guarantees, for every command here:
- the result is valid *data*: `Graph` invariants hold, every value passes its `Param.check`,
  positions are finite, names/labels fit the file schema, regions nest no deeper than the
  file format allows - so the result always saves and loads back equal. Modelling mistakes
  (a missing input, an unused block) stay allowed and show up as diagnostics.
- wires into ports that an edit makes disappear (a loop body loses a Body input, a Concat
  gets fewer inputs, a loop leaves "while" mode) are removed in the same step.
- pure: no dearpygui, no torch, no I/O.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from engine.core.analysis import Analysis, Diagnostic
from engine.core.config import TrainingConfig
from engine.core.fileformat import MAX_REGION_DEPTH, SCHEMA_PATH
from engine.core.functionlib import add_functions
from engine.core.graph import (
    FUNCTION,
    ID_PATTERN,
    PATH_SEP,
    Edge,
    Function,
    Graph,
    Node,
    replace_node,
    set_function,
)
from engine.incremental.analysis import AnalysisCache
from nodes import REGISTRY, lookup
from nodes.control import BODY_INPUT, BODY_OUTPUT, OWN_WEIGHTS, function_ports
from nodes.spec import BlockSpec

Region = tuple[str, ...]
Pos = tuple[float, float]

MAX_LABEL = 200       # graph.schema.json: node label and graph name


class CommandRejected(Exception):
    """The command cannot be done; `str(e)` is the reason, worded for the status bar.

    `code` is a stable machine-readable reason for tests and views: "cycle", a diagnostic
    code such as "shape_mismatch"/"type_mismatch" for a refused wire, "bad_param",
    "unknown_port", "unknown_block", "no_such_node", "no_such_region", "bad_id", "bad_value",
    "too_deep", "no_such_edge", "nothing" (nothing to delete/move/paste), or "rejected".
    """

    def __init__(self, message: str, code: str = "rejected"):
        super().__init__(message)
        self.code = code


# --- analysis, one cache per document ----------------------------------------------------


class Analyses:
    """One document's analyses: the last few graphs' results by identity, over an
    `AnalysisCache` that redoes only the nodes an edit changed.

    Graphs are immutable values, so an analysis never goes stale. `AppState` and `Connect`
    share one: a connect analyses the graph before and after, and the state's refresh then
    reuses the "after" analysis instead of running it a third time. Main thread only; treat
    the returned analyses as read-only (they share values).
    """

    KEPT = 4

    def __init__(self) -> None:
        self._recent: list[tuple[Graph, Analysis]] = []
        self._cache = AnalysisCache()

    def of(self, graph: Graph) -> Analysis:
        for g, a in self._recent:
            if g is graph:
                return a
        result = self._cache.analyze(graph)
        self.remember(graph, result)
        return result

    def remember(self, graph: Graph, analysis: Analysis) -> None:
        """`analysis` is known to describe `graph` (see same_structure)."""
        if not any(g is graph for g, _ in self._recent):
            self._recent.insert(0, (graph, analysis))
            del self._recent[self.KEPT:]


def same_structure(a: Graph, b: Graph) -> bool:
    """Whether `a` and `b` differ at most in node positions and training settings - the two
    things neither the analysis nor the generated code depends on - so a move keeps both."""
    if a is b:
        return True
    if a.name != b.name or a.edges != b.edges or len(a.nodes) != len(b.nodes) \
            or a.functions != b.functions:
        return False
    for m, n in zip(a.nodes, b.nodes, strict=True):
        if m is n:
            continue
        if (m.id, m.type, m.label) != (n.id, n.type, n.label) or m.params != n.params \
                or m.regions.keys() != n.regions.keys() or m.ties != n.ties:
            return False
        if not all(same_structure(m.regions[k], n.regions[k]) for k in m.regions):
            return False
    return True


# --- helpers ---------------------------------------------------------------------------------


def region_graph(graph: Graph, region: Region) -> Graph:
    """The graph at `region`, or CommandRejected if that body no longer exists."""
    try:
        return graph.region_at(region)
    except (KeyError, ValueError, AttributeError):
        raise CommandRejected("that loop or branch body no longer exists", "no_such_region") from None


def region_prefix(region: Region) -> str:
    """The analysis path prefix of a region: `()` → "", `("loop1", "body")` → "loop1/body/"."""
    return "".join(part + PATH_SEP for part in region)


def _ports(node: Node, functions: Mapping[str, Any] | None = None,
           ) -> tuple[set[str], set[str]] | None:
    """The node's input and output port names; a Call's from its function in `functions`
    (the main graph's), None when they cannot be known."""
    spec = lookup(node.type)
    if spec is None:
        return None
    if spec.kind == "call":
        function = (functions or {}).get(node.params.get("function"))
        if function is None:
            return None
        ins, outs = function_ports(function.body)
        return {p.name for p in ins}, {p.name for p in outs}
    try:
        ins, outs = spec.port_lists(node)
    except Exception:  # a dynamic port rule given nonsense params: analysis reports it
        return None
    return {p.name for p in ins}, {p.name for p in outs}


def _prune_vanished(graph: Graph, old: Node, new: Node,
                    functions: Mapping[str, Any] | None = None) -> Graph:
    """Drop wires into/out of ports `old` had and `new` lacks (same node id)."""
    if old is new:
        return graph
    before, after = _ports(old, functions), _ports(new, functions)
    if before is None or after is None:
        return graph
    gone_in, gone_out = before[0] - after[0], before[1] - after[1]
    if not gone_in and not gone_out:
        return graph
    kept = tuple(e for e in graph.edges
                 if not (e.dst[0] == new.id and e.dst[1] in gone_in)
                 and not (e.src[0] == new.id and e.src[1] in gone_out))
    return replace(graph, edges=kept)


def edit_in(graph: Graph, region: Region, edit: Callable[[Graph], Graph]) -> Graph:
    """Apply `edit` to the graph at `region`, rebuilding the parents (unchanged nodes shared).

    Like `engine.core.graph.edit_region`, plus: a missing region is a CommandRejected, and when the
    edit changes a loop/branch node's ports (its body gained or lost a Body input/output),
    the outer wires to ports that vanished are removed.
    """
    if not region:
        return edit(graph)
    if len(region) % 2:
        raise CommandRejected(f"bad region path {region!r}", "no_such_region")
    node_id, name, *rest = region
    if node_id == FUNCTION:   # a function's body: every call of it changes with it
        function = graph.functions.get(name)
        if function is None:
            raise CommandRejected(f"there is no function {name!r}", "no_such_region")
        new_body = edit_in(function.body, tuple(rest), edit)
        if new_body is function.body:
            return graph
        graph = set_function(graph, name, replace(function, body=new_body))
        return prune_calls(graph, name, function.body, new_body)
    node = graph.get(node_id)
    if node is None or name not in node.regions:
        raise CommandRejected("that loop or branch body no longer exists", "no_such_region")
    body = node.regions[name]
    new_body = edit_in(body, tuple(rest), edit)
    if new_body is body:
        return graph
    new_node = replace(node, regions={**node.regions, name: new_body})
    return _prune_vanished(replace_node(graph, new_node), node, new_node)


def prune_calls(graph: Graph, name: str, old_body: Graph, new_body: Graph) -> Graph:
    """Drop the wires into and out of ports that the calls of function `name` lost when its
    body went from `old_body` to `new_body` (a Body input or output deleted or renamed),
    wherever those calls are: the main graph, bodies, other functions."""
    old_in, old_out = (set(p.name for p in side) for side in function_ports(old_body))
    new_in, new_out = (set(p.name for p in side) for side in function_ports(new_body))
    gone_in, gone_out = old_in - new_in, old_out - new_out
    if not gone_in and not gone_out:
        return graph

    def prune(g: Graph) -> Graph:
        calls = {n.id for n in g.nodes if n.type == "call" and n.params.get("function") == name}
        kept = tuple(e for e in g.edges if not (e.dst[0] in calls and e.dst[1] in gone_in)
                     and not (e.src[0] in calls and e.src[1] in gone_out))
        nodes = tuple(replace(n, regions={k: prune(r) for k, r in n.regions.items()})
                      if n.regions else n for n in g.nodes)
        if len(kept) == len(g.edges) and all(a.regions == b.regions for a, b in
                                             zip(nodes, g.nodes, strict=True)):
            return g
        return replace(g, nodes=nodes, edges=kept)

    graph = prune(graph)
    return replace(graph, functions={k: replace(f, body=prune(f.body))
                                     for k, f in graph.functions.items()})


def _spec(type_: str) -> BlockSpec:
    spec = lookup(type_)
    if spec is None:
        raise CommandRejected(f"unknown block type {type_!r}" + did_you_mean(type_, REGISTRY),
                              "unknown_block")
    return spec


def did_you_mean(word: Any, known: Iterable[str]) -> str:
    """" (did you mean 'relu'?)" for the known name nearest `word` (case aside), else ""."""
    if not isinstance(word, str):
        return ""
    names = {k.lower(): k for k in known}
    if word.lower() in names:
        return f" (did you mean {names[word.lower()]!r}?)"
    close = difflib.get_close_matches(word.lower(), names, n=1, cutoff=0.6)
    return f" (did you mean {names[close[0]]!r}?)" if close else ""


def _no_port(node: Node, io: str, port: str, ports: Iterable[str]) -> CommandRejected:
    """An unknown port: the ports there are, and the nearest one."""
    ports = sorted(ports)
    kind = "output" if io == "out" else "input"
    listed = f"; its {kind}s are {', '.join(ports)}" if ports else f"; it has no {kind}s"
    return CommandRejected(f"{_title(node)} has no {kind} {port!r}" + did_you_mean(port, ports)
                           + listed, "unknown_port")


def _node(graph: Graph, node_id: str) -> Node:
    node = graph.get(node_id)
    if node is None:
        raise CommandRejected(f"there is no block {node_id!r} here", "no_such_node")
    return node


def _title(node: Node) -> str:
    spec = lookup(node.type)
    return f"{spec.title if spec else node.type} {node.name!r}"


MAX_COORD = 1e7   # canvas coordinates beyond this are a bug or a runaway drag


def _check_pos(pos: Any) -> Pos:
    """A finite, in-range position rounded to 0.1, the precision files keep (so a graph
    edited here saves and loads back equal)."""
    try:
        x, y = (float(v) for v in pos)
    except (TypeError, ValueError):
        raise CommandRejected(f"a position must be two numbers, not {pos!r}", "bad_value") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise CommandRejected("a position must be finite", "bad_value")
    if abs(x) > MAX_COORD or abs(y) > MAX_COORD:
        raise CommandRejected("that position is too far off the canvas", "bad_value")
    return (round(x, 1), round(y, 1))


def check_param(spec: BlockSpec, name: str, value: Any) -> Any:
    """The canonical form of `value` for param `name`, or CommandRejected naming the problem."""
    param = spec.param(name)
    if param is None:
        raise CommandRejected(f"{spec.title} has no param {name!r}", "bad_param")
    problem = param.check(value) or param.kind_row.cap(value)
    if problem:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise CommandRejected(f"{spec.title}: {name} {problem} (got {shown})", "bad_param")
    return param.coerce(value)


def _depth(graph: Graph) -> int:
    """How many levels of regions nest below this graph (0: none)."""
    return max((1 + _depth(r) for n in graph.nodes for r in n.regions.values()), default=0)


def _check_depth(region: Region, nodes: Iterable[Node]) -> None:
    here = len(region) // 2
    deepest = max((1 + _depth(r) for n in nodes for r in n.regions.values()), default=0)
    if here + deepest > MAX_REGION_DEPTH:
        raise CommandRejected(f"bodies may nest at most {MAX_REGION_DEPTH} deep", "too_deep")


# Port names a loop or branch has besides those its bodies' boundary nodes give it. A body
# node with one of these ids would share that port (the analysis does not flag it), so
# commands never create one.
STRUCTURAL_PORTS = {"loop": frozenset({"count", "iterations"}), "branch": frozenset({"cond"})}


def reserved_ids(graph: Graph, region: Region) -> frozenset[str]:
    """Ids a new node in `region` must not take: its owner's structural port names."""
    if not region:
        return frozenset()
    region_graph(graph, region)   # CommandRejected unless the region exists
    owner = graph.region_at(region[:-2]).get(region[-2])
    spec = lookup(owner.type) if owner is not None else None
    return STRUCTURAL_PORTS.get(spec.kind, frozenset()) if spec is not None else frozenset()


def _id_stem(node_id: str) -> str:
    return re.sub(r"\d+$", "", node_id) or "node"


def _check_label(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise CommandRejected(f"{what} must be text", "bad_value")
    if len(text) > MAX_LABEL:
        raise CommandRejected(f"{what} may be at most {MAX_LABEL} characters", "bad_value")
    return text


# --- default bodies for new loops and branches ------------------------------------------------


def default_regions(type_: str) -> dict[str, Graph]:
    """Bodies a freshly added loop or branch starts with, so it is valid once connected.

    Loop: a state Body input `h` (shape (16,)) wired straight to a Body output `h_next`
    that updates it. Branch: `then` and `else` each pass a Body input `x` to a Body output `y`.
    """
    spec = lookup(type_)
    if spec is None or not spec.regions:
        return {}
    if spec.kind == "loop":
        body = Graph(nodes=(Node("h", "body_input", {"role": "state", "shape": (16,)}, pos=(40.0, 60.0)),
                            Node("h_next", "body_output", {"role": "state", "state": "h"},
                                 pos=(240.0, 60.0))),
                     edges=(Edge(("h", "y"), ("h_next", "x")),))
        return {name: body for name in spec.regions}
    passthrough = Graph(nodes=(Node("x", "body_input", {"role": "context"}, pos=(40.0, 60.0)),
                               Node("y", "body_output", {"role": "output"}, pos=(240.0, 60.0))),
                        edges=(Edge(("x", "y"), ("y", "x")),))
    return {name: passthrough for name in spec.regions}


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """Base of all edits. `apply(graph)` is pure: it returns a new graph or raises
    CommandRejected; it never mutates. `label` names it for menus ("Undo Add Linear")."""

    @property
    def label(self) -> str:
        return type(self).__name__

    def apply(self, graph: Graph) -> Graph:
        raise NotImplementedError

    def apply_in(self, graph: Graph, analyses: Analyses) -> Graph:
        """`apply`, with the document's analyses at hand for a command that judges its result
        (`AppState.do` calls this)."""
        return self.apply(graph)


@dataclass(frozen=True)
class AddNode(Command):
    """Add a block of `type` at `pos` in `region`.

    The id is `node_id` if given (it must be a free, legal id), else a fresh one from the
    type (`linear1`, `linear2`, ...). `params` are checked against the spec. Loops and
    branches get the default bodies of `default_regions`.
    """

    region: Region
    type: str
    pos: Pos
    params: Mapping[str, Any] | None = None
    node_id: str | None = None

    @property
    def label(self) -> str:
        spec = lookup(self.type)
        return f"Add {spec.title if spec else self.type}"

    def apply(self, graph: Graph) -> Graph:
        spec = _spec(self.type)
        pos = _check_pos(self.pos)
        params = {name: check_param(spec, name, v) for name, v in (self.params or {}).items()}
        regions = default_regions(spec.type)
        _check_depth(self.region, [Node("n", spec.type, regions=regions)])
        reserved = reserved_ids(graph, self.region)

        def edit(g: Graph) -> Graph:
            if self.node_id is None:
                node_id = g.fresh_id(spec.type)
            else:
                node_id = self.node_id
                if not isinstance(node_id, str) or not ID_PATTERN.fullmatch(node_id):
                    raise CommandRejected(f"{node_id!r} is not a valid id: use 1-64 letters, "
                                          "digits or _, not starting with a digit", "bad_id")
                if node_id in g:
                    raise CommandRejected(f"there already is a block {node_id!r} here", "bad_id")
                if node_id in reserved:
                    raise CommandRejected(f"{node_id!r} is the name of a port of this body's "
                                          "loop or branch; choose another id", "bad_id")
            node = Node(node_id, spec.type, params, pos=pos, regions=regions)
            return replace(g, nodes=(*g.nodes, node))

        return edit_in(graph, self.region, edit)


@dataclass(frozen=True)
class RemoveNodes(Command):
    """Delete blocks and every wire touching them. Ids not in the region are ignored;
    rejected when none of them is there."""

    region: Region
    ids: frozenset[str]

    @property
    def label(self) -> str:
        return "Delete block" if len(self.ids) == 1 else f"Delete {len(self.ids)} blocks"

    def apply(self, graph: Graph) -> Graph:
        def edit(g: Graph) -> Graph:
            gone = {i for i in self.ids if i in g}
            if not gone:
                raise CommandRejected("nothing to delete", "nothing")
            return replace(g, nodes=tuple(n for n in g.nodes if n.id not in gone),
                           edges=tuple(e for e in g.edges
                                       if e.src[0] not in gone and e.dst[0] not in gone))

        return edit_in(graph, self.region, edit)


@dataclass(frozen=True)
class MoveNodes(Command):
    """Set block positions: `((id, (x, y)), ...)`. One drag is one command. Unknown ids are
    ignored; rejected when none is there or a position is not finite."""

    region: Region
    positions: tuple[tuple[str, Pos], ...]

    @property
    def label(self) -> str:
        return "Move block" if len(self.positions) == 1 else f"Move {len(self.positions)} blocks"

    def apply(self, graph: Graph) -> Graph:
        wanted = {node_id: _check_pos(pos) for node_id, pos in self.positions}

        def edit(g: Graph) -> Graph:
            if not any(i in g for i in wanted):
                raise CommandRejected("nothing to move", "nothing")
            nodes = tuple(replace(n, pos=wanted[n.id]) if n.id in wanted and n.pos != wanted[n.id]
                          else n for n in g.nodes)
            if all(a is b for a, b in zip(nodes, g.nodes, strict=True)):
                return g
            return replace(g, nodes=nodes)

        return edit_in(graph, self.region, edit)


def _reaches(graph: Graph, start: str, goal: str) -> bool:
    """Is there a path of wires from `start` to `goal`?"""
    consumers: dict[str, set[str]] = {}
    for e in graph.edges:
        consumers.setdefault(e.src[0], set()).add(e.dst[0])
    seen, stack = {start}, [start]
    while stack:
        node_id = stack.pop()
        if node_id == goal:
            return True
        for nxt in consumers.get(node_id, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


# Errors a wire itself causes: its tensor does not fit the input. Other errors that show up
# once a block gets its inputs - a loop body's own mistakes, a while loop without a halt
# output, a kernel larger than the input - are the block's, not the wire's, and stay visible
# as diagnostics; refusing the wire for them would hide them (a body is only analysed once
# the loop's inputs are wired).
WIRE_ERRORS = frozenset({"shape_mismatch", "type_mismatch", "too_large"})


def _errors_at(analysis: Analysis, path: str) -> list[Diagnostic]:
    return [d for d in analysis.diagnostics
            if d.severity == "error" and d.code in WIRE_ERRORS and d.node == path]


def _key(d: Diagnostic) -> tuple:
    return (d.code, d.node, d.port, d.param, d.message)


@dataclass(frozen=True)
class Connect(Command):
    """Wire output `src = (node, port)` to input `dst = (node, port)` in `region`.

    An input takes one wire, so an existing wire into `dst` is replaced. Rejected, with the
    reason, when a port does not exist, when the wire would close a cycle, or when it gives
    the target block a new shape/dtype error: `analyze` runs before and after, and a
    `WIRE_ERRORS` diagnostic on the target node that was not there before refuses the wire
    (`CommandRejected.code` is the diagnostic's code). Other new errors are left to show as
    diagnostics (see WIRE_ERRORS).
    """

    region: Region
    src: tuple[str, str]
    dst: tuple[str, str]

    @property
    def label(self) -> str:
        return f"Connect {self.src[0]}.{self.src[1]} → {self.dst[0]}.{self.dst[1]}"

    def apply(self, graph: Graph) -> Graph:
        return self.apply_in(graph, Analyses())

    def apply_in(self, graph: Graph, analyses: Analyses) -> Graph:
        g = region_graph(graph, self.region)
        (src_id, out), (dst_id, inp) = self.src, self.dst
        src, dst = _node(g, src_id), _node(g, dst_id)
        src_ports, dst_ports = _ports(src, graph.functions), _ports(dst, graph.functions)
        if src_ports is None or out not in src_ports[1]:
            raise _no_port(src, "out", out, src_ports[1] if src_ports else ())
        if dst_ports is None or inp not in dst_ports[0]:
            raise _no_port(dst, "in", inp, dst_ports[0] if dst_ports else ())
        edge = Edge((src_id, out), (dst_id, inp))
        if edge in g.edges:
            return graph
        if src_id == dst_id or _reaches(g, dst_id, src_id):
            raise CommandRejected(f"wiring {src.name}.{out} → {dst.name}.{inp} would make a cycle; "
                                  "use a Loop block for recurrence", "cycle")

        def edit(r: Graph) -> Graph:
            kept = tuple(e for e in r.edges if e.dst != edge.dst)
            return replace(r, edges=(*kept, edge))

        new = edit_in(graph, self.region, edit)
        path = region_prefix(self.region) + dst_id
        before = {_key(d) for d in _errors_at(analyses.of(graph), path)}
        fresh = [d for d in _errors_at(analyses.of(new), path) if _key(d) not in before]
        if fresh:
            hint = _width_hint(analyses.of(graph), g, self.region, self.src, self.dst) \
                if fresh[0].code == "shape_mismatch" else ""
            raise CommandRejected(f"can't wire {src.name}.{out} → {dst.name}.{inp}: "
                                  f"{fresh[0].message}{hint}", fresh[0].code)
        return new


def _width_hint(analysis: Analysis, g: Graph, region: Region, src: tuple[str, str],
                dst: tuple[str, str]) -> str:
    """When a refused wire carries (…, n) into a block whose other inputs carry (…, m), the
    same but for the last dim: "; a Linear with out_features=m on this wire would match"."""
    prefix = region_prefix(region)
    carried = analysis.outputs.get(prefix + src[0], {}).get(src[1])
    if carried is None or not carried.shape:
        return ""
    widths = set()
    for e in g.edges:
        if e.dst[0] == dst[0] and e.dst != dst:
            other = analysis.outputs.get(prefix + e.src[0], {}).get(e.src[1])
            if other is not None and len(other.shape) == len(carried.shape) \
                    and other.shape[:-1] == carried.shape[:-1] and other.shape[-1] != carried.shape[-1]:
                widths.add(other.shape[-1])
    if len(widths) != 1 or not isinstance(width := widths.pop(), int):
        return ""
    return f"; a Linear with out_features={width} on this wire would match the widths"


@dataclass(frozen=True)
class Disconnect(Command):
    """Remove one wire; rejected if it is not there."""

    region: Region
    edge: Edge

    @property
    def label(self) -> str:
        return f"Disconnect {self.edge}"

    def apply(self, graph: Graph) -> Graph:
        def edit(g: Graph) -> Graph:
            if self.edge not in g.edges:
                raise CommandRejected("that wire is no longer there", "no_such_edge")
            return replace(g, edges=tuple(e for e in g.edges if e != self.edge))

        return edit_in(graph, self.region, edit)


@dataclass(frozen=True)
class InsertOnWire(Command):
    """Put a new block of `type` at `pos` on the wire `edge`: the wire's source feeds the
    block's first input, and its first output feeds the wire's old target; one undo step.
    Rejected, with the reason, when the wire is gone, the block has no input or output, or
    either new wire is refused (shapes that do not fit: see `Connect`)."""

    region: Region
    edge: Edge
    type: str
    pos: Pos

    @property
    def label(self) -> str:
        spec = lookup(self.type)
        return f"Insert {spec.title if spec else self.type}"

    def apply(self, graph: Graph) -> Graph:
        return self.apply_in(graph, Analyses())

    def apply_in(self, graph: Graph, analyses: Analyses) -> Graph:
        g = region_graph(graph, self.region)
        if self.edge not in g.edges:
            raise CommandRejected("that wire is no longer there", "no_such_edge")
        spec = _spec(self.type)
        node_id = g.fresh_id(spec.type)
        ins, outs = spec.port_lists(Node(node_id, spec.type, regions=default_regions(spec.type)))
        if not ins or not outs:
            raise CommandRejected(f"{spec.title} has no input and output to put on a wire",
                                  "unknown_port")
        first_in, first_out = ins[0].name, outs[0].name
        steps = (Disconnect(self.region, self.edge),
                 AddNode(self.region, spec.type, self.pos, node_id=node_id),
                 Connect(self.region, self.edge.src, (node_id, first_in)),
                 Connect(self.region, (node_id, first_out), self.edge.dst))
        return Batch(steps, label=self.label).apply_in(graph, analyses)


@dataclass(frozen=True)
class SetParam(Command):
    """Set one param of one block; rejected when `Param.check` refuses the value (the reason
    names the param and its range). Wires to ports the new value removes are dropped."""

    region: Region
    node_id: str
    name: str
    value: Any

    @property
    def label(self) -> str:
        return f"Set {self.name}"

    def apply(self, graph: Graph) -> Graph:
        def edit(g: Graph) -> Graph:
            node = _node(g, self.node_id)
            value = check_param(_spec(node.type), self.name, self.value)
            if self.name in node.params and node.params[self.name] == value \
                    and type(node.params[self.name]) is type(value):
                return g
            new = replace(node, params={**node.params, self.name: value})
            return _prune_vanished(replace_node(g, new), node, new, graph.functions)

        return edit_in(graph, self.region, edit)


@dataclass(frozen=True, init=False)
class SetLabel(Command):
    """Set a block's display label ("" clears it); at most 200 characters.

    Built as `SetLabel(region, node_id, label)`; the text is stored as `.text`, because
    `.label` is every command's menu name ("Rename block").
    """

    region: Region
    node_id: str
    text: str

    def __init__(self, region: Region, node_id: str, label: str) -> None:
        object.__setattr__(self, "region", region)
        object.__setattr__(self, "node_id", node_id)
        object.__setattr__(self, "text", label)

    @property
    def label(self) -> str:
        return "Rename block"

    def apply(self, graph: Graph) -> Graph:
        text = _check_label(self.text, "a label")

        def edit(g: Graph) -> Graph:
            node = _node(g, self.node_id)
            if node.label == text:
                return g
            return replace_node(g, replace(node, label=text))

        return edit_in(graph, self.region, edit)


def _fresh_id(stem: str, taken: set[str]) -> str:
    stem = stem[:48]
    i = 1
    while f"{stem}{i}" in taken:
        i += 1
    return f"{stem}{i}"


def remap_ids(taken: Graph, nodes: Iterable[Node], edges: Iterable[Edge],
              offset: Pos = (0.0, 0.0), reserved: Iterable[str] = ()
              ) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    """Copies of `nodes` with ids unused in `taken` (and among themselves), moved by `offset`;
    only the `edges` between two of them, renamed to match. Ids that are free keep their
    name; clashing ones get the next number of their stem (`fc1` → `fc2`). A Body output's
    `state` param that names a copied Body input follows the rename. A repeated id in
    `nodes` is copied once. `reserved` ids count as taken."""
    used = {n.id for n in taken.nodes} | set(reserved)
    mapping: dict[str, str] = {}
    out_nodes: list[Node] = []
    for n in nodes:
        if n.id in mapping:
            continue
        new_id = _fresh_id(_id_stem(n.id), used) if n.id in used else n.id
        mapping[n.id] = new_id
        used.add(new_id)
        out_nodes.append(n)
    out_nodes = [replace(n, id=mapping[n.id], params=_follow_state(n, mapping),
                         pos=_check_pos((n.pos[0] + offset[0], n.pos[1] + offset[1])))
                 for n in out_nodes]
    out_edges = (Edge((mapping[e.src[0]], e.src[1]), (mapping[e.dst[0]], e.dst[1]))
                 for e in edges if e.src[0] in mapping and e.dst[0] in mapping)
    return tuple(out_nodes), tuple(dict.fromkeys(out_edges))


def _follow_state(node: Node, mapping: Mapping[str, str]) -> Mapping[str, Any]:
    target = node.params.get("state")
    if node.type == BODY_OUTPUT and isinstance(target, str) and target in mapping:
        return {**node.params, "state": mapping[target]}
    return node.params


@dataclass(frozen=True)
class Paste(Command):
    """Insert copies of `nodes` (with the `edges` among them) into `region`, moved by
    `offset` (positions rounded to 0.1, like all positions commands write). Ids that clash get fresh ones (`fc` → `fc1`); edges to nodes outside the
    pasted set are dropped. Bodies of pasted loops/branches come along unchanged."""

    region: Region
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...] = ()
    offset: Pos = (0.0, 0.0)

    @property
    def label(self) -> str:
        return "Paste block" if len(self.nodes) == 1 else f"Paste {len(self.nodes)} blocks"

    def apply(self, graph: Graph) -> Graph:
        if not self.nodes:
            raise CommandRejected("nothing to paste", "nothing")
        offset = _check_pos(self.offset)
        _check_depth(self.region, self.nodes)
        reserved = reserved_ids(graph, self.region)

        def edit(g: Graph) -> Graph:
            nodes, edges = remap_ids(g, self.nodes, self.edges, offset, reserved)
            return replace(g, nodes=(*g.nodes, *nodes), edges=(*g.edges, *edges))

        return edit_in(graph, self.region, edit)


@cache
def _training_validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/training"})


def check_training(training: Mapping[str, Any]) -> None:
    """CommandRejected unless `training` passes both TrainingConfig and the file schema."""
    try:
        TrainingConfig.from_mapping(training)
    except (TypeError, ValueError) as e:
        raise CommandRejected(str(e), "bad_value") from None
    try:
        json.dumps(training, allow_nan=False)
    except (TypeError, ValueError):
        raise CommandRejected("training settings must be plain, finite JSON values", "bad_value") from None
    error = next(iter(_training_validator().iter_errors(dict(training))), None)
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "training"
        raise CommandRejected(f"{where}: {error.message}", "bad_value")


@dataclass(frozen=True)
class SetTraining(Command):
    """Change training settings: `((key, value), ...)`; a value of None removes the key (so
    the default applies). The result is checked with TrainingConfig.from_mapping and the
    file schema."""

    changes: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        keys = [k for k, _ in self.changes]
        return f"Set {keys[0]}" if len(keys) == 1 else "Change training settings"

    def apply(self, graph: Graph) -> Graph:
        training = dict(graph.training)
        for key, value in self.changes:
            if value is None:
                training.pop(key, None)
            else:
                training[key] = dict(value) if isinstance(value, Mapping) else value
        check_training(training)
        if training == dict(graph.training):
            return graph
        return replace(graph, training=training)


@dataclass(frozen=True)
class RenameGraph(Command):
    """Rename the model (the generated class is named after it); 1-200 characters."""

    name: str

    @property
    def label(self) -> str:
        return "Rename model"

    def apply(self, graph: Graph) -> Graph:
        name = _check_label(self.name, "the model name")
        if not name.strip():
            raise CommandRejected("the model name cannot be empty", "bad_value")
        return graph if name == graph.name else replace(graph, name=name)


@dataclass(frozen=True)
class AutoLayout(Command):
    """Lay the region out left to right by depth (see app.layout); `sizes` are the blocks'
    drawn sizes `((node id, (width, height)), ...)`, so big blocks get the room they need."""

    region: Region = ()
    sizes: tuple[tuple[str, tuple[float, float]], ...] = ()

    @property
    def label(self) -> str:
        return "Auto-layout"

    def apply(self, graph: Graph) -> Graph:
        from .layout import layered_positions

        g = region_graph(graph, self.region)
        if not g.nodes:
            raise CommandRejected("nothing to lay out", "nothing")
        positions = layered_positions(g, sizes=dict(self.sizes))
        return MoveNodes(self.region, tuple(positions.items())).apply(graph)


@dataclass(frozen=True)
class Batch(Command):
    """Several commands as one undo step; if any is rejected, the whole batch is."""

    commands: tuple[Command, ...]
    label: str = "Edit"  # type: ignore[assignment]  # a field here, a property elsewhere

    def apply(self, graph: Graph) -> Graph:
        return self.apply_in(graph, Analyses())

    def apply_in(self, graph: Graph, analyses: Analyses) -> Graph:
        for command in self.commands:
            graph = command.apply_in(graph, analyses)
        return graph


# --- functions ------------------------------------------------------------------------------------
# A function's body is edited with the ordinary commands at region (FUNCTION, name): every call
# changes with it, and wires to ports its calls lost go in the same step (`edit_in`).

_BOUNDARY_KINDS = frozenset({"input", "output", BODY_INPUT, BODY_OUTPUT})


def _fresh(stem: str, taken: set[str]) -> str:
    """`stem` made a legal id not in `taken` (which it joins): `x`, then `x2`, `x3`, ..."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", stem)[:60] or "v"
    if not stem[0].isalpha() and stem[0] != "_":
        stem = "v" + stem
    name, i = stem, 2
    while name in taken:
        name, i = f"{stem}{i}", i + 1
    taken.add(name)
    return name


def _function_name(graph: Graph, name: str | None, stem: str) -> str:
    if name is None:
        return graph.fresh_function_name(stem)
    if not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
        raise CommandRejected(f"{name!r} is not a valid function name: use 1-64 letters, digits "
                              "or _, not starting with a digit", "bad_id")
    if name in graph.functions:
        raise CommandRejected(f"there already is a function {name!r}", "bad_id")
    return name


@dataclass(frozen=True)
class GroupIntoFunction(Command):
    """Make the selected blocks of `region` a new function and put one Call (own weights) in
    their place. Each distinct value wired into the selection from outside becomes a Body
    input, each value wired out of it a Body output, in wire order; with one of either it is
    named `x` or `y`. Inputs, Outputs and body boundaries stay outside; a tie may not cross
    the selection's edge."""

    region: Region
    ids: frozenset[str]
    name: str | None = None

    @property
    def label(self) -> str:
        return "Group into function"

    def apply(self, graph: Graph) -> Graph:
        g = region_graph(graph, self.region)
        chosen = [n for n in g.nodes if n.id in self.ids]
        if not chosen:
            raise CommandRejected("select the blocks to group first", "nothing")
        for n in chosen:
            spec = lookup(n.type)
            if spec is not None and spec.kind in _BOUNDARY_KINDS:
                raise CommandRejected(f"{_title(n)} stays outside a function: group the blocks "
                                      "between the inputs and outputs", "rejected")
        inside = {n.id for n in chosen}
        for n in g.nodes:
            for tensor, (other, _) in n.ties.items():
                if (n.id in inside) != (other in inside):
                    raise CommandRejected(f"{_title(n)} ties its {tensor} across the selection; "
                                          "select both blocks or remove the tie", "rejected")
        name = _function_name(graph, self.name, "function")
        taken = set(inside)
        entering = [e for e in g.edges if e.dst[0] in inside and e.src[0] not in inside]
        leaving = [e for e in g.edges if e.src[0] in inside and e.dst[0] not in inside]
        if not leaving:
            raise CommandRejected("nothing outside reads the selection, so the function would "
                                  "compute nothing", "nothing")
        sources = list(dict.fromkeys(e.src for e in entering))      # outside values, in order
        results = list(dict.fromkeys(e.src for e in leaving))       # inside values, in order

        def port(src: tuple[str, str], single: str) -> str:
            return _fresh(single if single else src[0] if src[1] == "y" else f"{src[0]}_{src[1]}",
                          taken)

        in_ids = {src: port(src, "x" if len(sources) == 1 else "") for src in sources}
        out_ids = {src: port(src, "y" if len(results) == 1 else "") for src in results}
        xs = [n.pos[0] for n in chosen]
        ys = [n.pos[1] for n in chosen]
        left, right, top = min(xs) - 220.0, max(xs) + 220.0, min(ys)
        body_nodes = [Node(in_ids[src], BODY_INPUT, pos=_check_pos((left, top + 90.0 * i)))
                      for i, src in enumerate(sources)]
        body_nodes += chosen
        body_nodes += [Node(out_ids[src], BODY_OUTPUT, pos=_check_pos((right, top + 90.0 * i)))
                       for i, src in enumerate(results)]
        body_edges = [e for e in g.edges if e.src[0] in inside and e.dst[0] in inside]
        body_edges += [Edge((in_ids[e.src], "y"), e.dst) for e in entering]
        body_edges += [Edge(src, (out_ids[src], "x")) for src in results]
        body = Graph(tuple(body_nodes), tuple(body_edges))
        _check_depth((FUNCTION, name), body.nodes)

        call_id = g.fresh_id(name)
        call = Node(call_id, "call", {"function": name, "weights": OWN_WEIGHTS},
                    pos=_check_pos((sum(xs) / len(xs), sum(ys) / len(ys))))

        def edit(r: Graph) -> Graph:
            kept = [e for e in r.edges if e.src[0] not in inside and e.dst[0] not in inside]
            kept += [Edge(src, (call_id, in_ids[src])) for src in sources]
            kept += [Edge((call_id, out_ids[e.src]), e.dst) for e in leaving]
            nodes = []
            for n in r.nodes:   # the call takes the place of the first chosen block
                if n.id == chosen[0].id:
                    nodes.append(call)
                elif n.id not in inside:
                    nodes.append(n)
            return replace(r, nodes=tuple(nodes), edges=tuple(kept))

        graph = set_function(graph, name, Function(body, title=name))
        return edit_in(graph, self.region, edit)


@dataclass(frozen=True)
class Ungroup(Command):
    """Put the body of the function that Call `node_id` runs in its place (the function
    stays, for its other calls). Blocks keep their ids where free, else get fresh ones;
    a Body input's wires come from what fed the call, a Body output's go where the call's
    went. An inlined call that shared a weight group gets weights of its own."""

    region: Region
    node_id: str

    @property
    def label(self) -> str:
        return "Ungroup"

    def apply(self, graph: Graph) -> Graph:
        g = region_graph(graph, self.region)
        call = _node(g, self.node_id)
        if call.type != "call":
            raise CommandRejected(f"{_title(call)} is not a Call", "rejected")
        function = graph.functions.get(call.params.get("function"))
        if function is None:
            raise CommandRejected(f"{_title(call)} calls no function this graph defines",
                                  "rejected")
        body = function.body
        kinds = {n.id: n.type for n in body.nodes}
        inner = [n for n in body.nodes if n.type not in (BODY_INPUT, BODY_OUTPUT)]
        _check_depth(self.region, inner)
        taken = {n.id for n in g.nodes if n.id != call.id} | set(reserved_ids(graph, self.region))
        ids = {n.id: _fresh(n.id if n.id not in taken else f"{call.id}_{n.id}", taken)
               for n in inner}
        xs = [n.pos[0] for n in inner] or [0.0]
        ys = [n.pos[1] for n in inner] or [0.0]
        dx, dy = call.pos[0] - sum(xs) / len(xs), call.pos[1] - sum(ys) / len(ys)
        placed = [replace(n, id=ids[n.id], pos=_check_pos((n.pos[0] + dx, n.pos[1] + dy)),
                          ties={k: (ids.get(t[0], t[0]), t[1]) for k, t in n.ties.items()})
                  for n in inner]
        fed = {e.dst[1]: e.src for e in g.edges if e.dst[0] == call.id}     # input → outer source
        reads: dict[str, list] = {}                                        # output → outer targets
        for e in g.edges:
            if e.src[0] == call.id:
                reads.setdefault(e.src[1], []).append(e.dst)
        edges = [e for e in g.edges if call.id not in (e.src[0], e.dst[0])]
        for e in body.edges:
            src_kind, dst_kind = kinds.get(e.src[0]), kinds.get(e.dst[0])
            if src_kind == BODY_INPUT:
                if e.src[0] not in fed:
                    continue   # nothing fed that input: the wire has nothing to carry
                srcs = [fed[e.src[0]]]
            else:
                srcs = [(ids[e.src[0]], e.src[1])]
            dsts = reads.get(e.dst[0], []) if dst_kind == BODY_OUTPUT else [(ids[e.dst[0]], e.dst[1])]
            edges += [Edge(s, d) for s in srcs for d in dsts]

        def edit(r: Graph) -> Graph:
            nodes = []
            for n in r.nodes:
                nodes.extend(placed if n.id == call.id else [n])
            return replace(r, nodes=tuple(nodes), edges=tuple(edges))

        return edit_in(graph, self.region, edit)


@dataclass(frozen=True)
class MakeCopy(Command):
    """Detach Call `node_id` from its function: it calls a new copy (named `name`, or after
    the original), with weights of its own, so editing one no longer changes the other."""

    region: Region
    node_id: str
    name: str | None = None

    @property
    def label(self) -> str:
        return "Make a copy"

    def apply(self, graph: Graph) -> Graph:
        call = _node(region_graph(graph, self.region), self.node_id)
        original = call.params.get("function")
        if call.type != "call" or original not in graph.functions:
            raise CommandRejected(f"{_title(call)} is not a Call of a function this graph defines",
                                  "rejected")
        name = _function_name(graph, self.name, original)
        function = graph.functions[original]
        graph = set_function(graph, name, replace(function, title=f"{function.title or original} "
                                                  "(copy)"[:MAX_LABEL]))
        new = replace(call, params={**call.params, "function": name, "weights": OWN_WEIGHTS})
        return edit_in(graph, self.region, lambda r: replace_node(r, new))


@dataclass(frozen=True)
class SetFunctionInfo(Command):
    """Set a function's title, doc and palette category (None keeps one as it is)."""

    name: str
    title: str | None = None
    doc: str | None = None
    category: str | None = None

    @property
    def label(self) -> str:
        return "Describe function"

    def apply(self, graph: Graph) -> Graph:
        function = graph.functions.get(self.name)
        if function is None:
            raise CommandRejected(f"there is no function {self.name!r}", "no_such_region")
        changes = {}
        for field_name, limit in (("title", MAX_LABEL), ("doc", 4096), ("category", 64)):
            value = getattr(self, field_name)
            if value is not None:
                if not isinstance(value, str) or len(value) > limit:
                    raise CommandRejected(f"a function's {field_name} must be text of at most "
                                          f"{limit} characters", "bad_value")
                changes[field_name] = value
        new = replace(function, **changes)
        return graph if new == function else set_function(graph, self.name, new)


# --- a user's block library (File › Import functions…, the palette's functions) ---------------


@dataclass(frozen=True)
class AddCall(Command):
    """Add a Call of the graph's function `function` at `pos` in `region` (the palette and
    quick-add entry of a function). Its id comes from the function's name (`double_conv1`);
    `weights` is "own" or a weight group's name."""

    region: Region
    function: str
    pos: Pos
    weights: str = OWN_WEIGHTS

    @property
    def label(self) -> str:
        return f"Add call of {self.function}"

    def apply(self, graph: Graph) -> Graph:
        if not isinstance(self.function, str) or self.function not in graph.functions:
            raise CommandRejected(f"this graph defines no function {self.function!r}",
                                  "unknown_function")
        g = region_graph(graph, self.region)
        taken = {n.id for n in g.nodes} | set(reserved_ids(graph, self.region))
        node_id = g.fresh_id(self.function)
        stem, i = node_id[:-1], 1
        while node_id in taken:
            i += 1
            node_id = f"{stem}{i}"
        return AddNode(self.region, "call", self.pos,
                       {"function": self.function, "weights": self.weights},
                       node_id).apply(graph)


@dataclass(frozen=True)
class ImportFunctions(Command):
    """Add a library file's functions (`engine.core.functionlib.load_library`) to the graph
    in one undo step. A name the graph already defines is refused, naming every clash
    (`on_clash="refuse"`), or the newcomer is renamed and the calls inside the imported
    bodies follow (`on_clash="rename"`). `source` names the file in messages."""

    functions: Mapping[str, Function]
    on_clash: str = "refuse"
    source: str = "library"

    @property
    def label(self) -> str:
        n = len(self.functions)
        return f"Import {n} function{'' if n == 1 else 's'}"

    def apply(self, graph: Graph) -> Graph:
        if not self.functions:
            raise CommandRejected(f"{self.source} holds no functions", "nothing")
        try:
            new, _ = add_functions(graph, self.functions, on_clash=self.on_clash,
                                   source=self.source)
        except ValueError as e:
            raise CommandRejected(str(e), "name_clash") from None
        return new

    def clashes(self, graph: Graph) -> list[str]:
        """The names of the library that `graph` already defines."""
        return sorted(set(self.functions) & set(graph.functions))
