"""Code generation that reuses earlier generations: `CodeCache`, one per document.

A node's lines depend on the node (its type, params, name), its region, its input and output
types, the names it is given and the wires it reads (their variables and tap numbers). Graphs
share unchanged `Node` objects, so for the same object in the same region with the same types,
the lines it gave last time are right again provided the namer and the wire numbering would
give what they gave then. Two paths use that, both subclassing the plain `Generator`:

- node by node (`node_lines`): each node's lines are replayed from its `NodeCode` record
  when everything it was made from is as it was, else emitted and recorded;
- a patch (`main_class`): when the main graph kept its ids, wires and order, the last
  generation's main class is copied and only the nodes whose analysis changed are emitted
  again, each answered the names and wire reads it was given last time.

Loops and branches, whose bodies are classes of their own, are always emitted (the nodes in
their bodies are replayed like any other). Whatever the path, the result equals a fresh
`engine.core.codegen.generate` (tests/test_engine_caches.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.core.analysis import Analysis
from engine.core.codegen import (
    ClassCode,
    Generated,
    Generator,
    Line,
    NodeContext,
    Scope,
    generate,
    tap_marker,
)
from engine.core.graph import Edge, Graph, Node
from engine.core.naming import Namer
from nodes import lookup
from nodes.spec import BlockSpec

from .memo import NodeMemo

_EMPTY: Mapping = {}
_ALWAYS_EMITTED = ("loop", "branch")      # bodies are classes of their own: never replayed whole
_RESULTS = ("output", "body_output")      # no lines of their own: a variable the return reads


# --- the records --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asked:
    """What a node asked of its class while it was emitted, and what it was given."""

    calls: tuple[tuple[str, str], ...]   # (text, fallback) per name asked for
    names: tuple[str, ...]               # the names given
    reads: tuple[tuple[str, str], ...]   # ("use" or "var", input port) per wire read
    markers: tuple[str, ...]             # what each read gave


@dataclass(frozen=True, slots=True)
class NodeCode:
    """A node's lines and what they were made from (besides the node itself)."""

    prefix: str                      # the region
    inputs: Mapping                  # the analysis's input types (port → type) ...
    input_types: tuple               # ... and their items, for when the dict is a new one
    outputs: Mapping                 # likewise the output types
    output_types: tuple
    asked: Asked
    init: tuple[Line, ...]
    body: tuple[Line, ...]
    attribute: str | None            # the attribute holding its weights, if any
    functional: bool                 # whether its lines call F.*
    out_vars: tuple[tuple[str, str], ...]   # (output port, variable)


@dataclass(frozen=True, slots=True)
class _Part:
    """The lines of a main-class node that has no NodeCode (a loop, branch or output), or that
    a patch emitted again."""

    init: tuple[Line, ...]
    body: tuple[Line, ...]
    functional: bool
    asked: Asked | None = None   # None: it cannot be emitted again alone


class CodeCache(NodeMemo):
    """The code each node gave in the last two generations of one document's graphs.

    `generate` gives exactly what `engine.core.codegen.generate` gives, faster: `hits` counts
    nodes reused, `misses` nodes emitted and recorded, `patches` generations that patched the
    last one. One cache per document, used from one thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self._main: dict[bool, _MainCode] = {}   # by `tap`: the last generation's main class

    def generate(self, graph: Graph, analysis: Analysis, *, tap: bool = False) -> Generated:
        """The code of `graph`; raises GraphError when the graph has error diagnostics."""
        if self._full_pass_for(graph):
            return generate(graph, analysis, tap=tap)
        gen = _CachedGenerator(analysis, tap, self)
        generated = gen.generate(graph)
        self._end(patched=gen.main.patched)
        self._main[tap] = gen.main.finish(gen)
        return generated

    def _forget(self) -> None:
        self._main = {}

    def _entry(self, node: Node) -> list:
        """[node, its NodeCode or None] for this node object."""
        key = id(node)
        entry = self._new.get(key)
        if entry is None:
            entry = self._new[key] = self._earlier(node) or [node, None]
        return entry


class _MainCode:
    """A main class's generation, node by node: what a patch starts from to generate the next
    version of the graph, and the generator's state once it was done."""

    def __init__(self, graph: Graph, analysis: Analysis, incoming: dict[str, dict[str, Edge]],
                 consumed: set[tuple[str, str]], previous: _MainCode | None = None):
        self.graph, self.order = graph, analysis.order[""]
        self.incoming, self.consumed = incoming, consumed
        self.patched = previous is not None
        # Per node of `graph`, in its order, what its lines were made from: the node and its
        # params, input types and output types in the analysis (a patch updates what it redoes).
        params, inputs, outputs = analysis.params.get, analysis.inputs.get, analysis.outputs.get
        self.seen: list[tuple[Node, Mapping | None, Mapping | None, Mapping | None]] = \
            list(previous.seen) if previous else \
            [(n, params(n.id), inputs(n.id), outputs(n.id)) for n in graph.nodes]
        # node id → its lines, for every node but the inputs, in the class's order:
        self.emitted: list[str] = previous.emitted if previous else []
        self.parts: dict[str, NodeCode | _Part] = dict(previous.parts) if previous else {}
        self.functional: set[str] = set(previous.functional) if previous else set()   # F.* users
        self.tail: list[Line] = previous.tail if previous else []   # the `return` line
        self.code: ClassCode | None = None
        self._body_lines = 0

    def made(self, node_id: str, part: NodeCode | _Part) -> None:
        self.emitted.append(node_id)
        self.parts[node_id] = part
        if part.functional:
            self.functional.add(node_id)
        self._body_lines += len(part.body)

    def ended(self, code: ClassCode) -> None:
        """The class is written: what follows the nodes' lines is its `return`."""
        self.code, self.tail = code, code.body[self._body_lines:]

    def changed(self, analysis: Analysis, graph: Graph) -> list[int] | None:
        """Where in `graph.nodes` the nodes are not made from the very same things as last
        time; None unless the graph has the same node ids in the same places."""
        params, inputs, outputs = analysis.params.get, analysis.inputs.get, analysis.outputs.get
        out = []
        for i, (node, (was, p, ins, outs)) in enumerate(zip(graph.nodes, self.seen, strict=True)):
            if was is not node:
                if was.id != node.id:
                    return None
                out.append(i)
            elif p is not params(node.id) or ins is not inputs(node.id) or outs is not outputs(node.id):
                out.append(i)
        return out

    def saw(self, analysis: Analysis, node: Node, i: int) -> None:
        """Node `i` of the graph is now made from these."""
        node_id = node.id
        self.seen[i] = (node, analysis.params.get(node_id), analysis.inputs.get(node_id),
                        analysis.outputs.get(node_id))

    def finish(self, gen: Generator) -> _MainCode:
        """Note the generator's state at the end of the generation; returns self."""
        self.classes, self.class_names = gen.classes, frozenset(gen.class_names)
        self.edge_keys, self.edge_numbers = tuple(gen.edge_keys), gen.edge_numbers
        self.attrs, self.region_attrs = gen.attrs, gen.region_attrs
        return self


class _CachedGenerator(Generator):
    """A generation that reuses what the cache holds."""

    def __init__(self, analysis: Analysis, tap: bool, cache: CodeCache):
        super().__init__(analysis, tap)
        self.cache = cache
        self.main: _MainCode | None = None

    def main_class(self, graph: Graph, name: str, doc: str) -> ClassCode:
        """The last generation's main class patched where it can be, else written node by node."""
        was = self.cache._main.get(self.tap)
        code = self.patch(was, graph, name, doc) if was is not None else None
        if code is None:
            scope = self.scope(graph, "", name, doc)
            self.main = _MainCode(graph, self.analysis, scope.incoming, scope.consumed)
            code = self.emit_class(graph, scope)
            self.main.ended(code)
        return code

    def node_lines(self, scope: Scope, node: Node, spec: BlockSpec) -> None:
        """Replayed, or emitted and recorded; a main-class node's lines noted for patches."""
        before, self.uses_functional = self.uses_functional, False
        if spec.kind in _ALWAYS_EMITTED or spec.kind in _RESULTS:
            code = scope.code
            n_init, n_body = len(code.init), len(code.body)
            super().node_lines(scope, node, spec)
            part: NodeCode | _Part = _Part(tuple(code.init[n_init:]), tuple(code.body[n_body:]),
                                           self.uses_functional)
        else:
            entry = self.cache._entry(node)
            part = entry[1]
            if not self.replay(part, scope, node):
                part = entry[1] = self.record(scope, node, spec)
        self.uses_functional = before or self.uses_functional
        if not scope.prefix and self.main is not None:
            self.main.made(node.id, part)

    def replay(self, record: NodeCode | None, scope: Scope, node: Node) -> bool:
        """The lines `node` gave last time, taken again (names, wire numbers and all) when
        everything they were made from is as it was; False (having changed nothing) if not."""
        if record is None or record.prefix != scope.prefix:
            return False
        path = scope.prefix + node.id
        # An analysis built with an AnalysisCache hands back the very same dicts for a node
        # whose inputs did not change: identity first, equality when that fails.
        ins = self.analysis.inputs.get(path, _EMPTY)
        if ins is not record.inputs and tuple(ins.items()) != record.input_types:
            return False
        outs = self.analysis.outputs.get(path, _EMPTY)
        if outs is not record.outputs and tuple(outs.values()) != record.output_types:
            return False
        asked = record.asked
        incoming = scope.incoming.get(node.id, _EMPTY)
        if scope.names.would_give(asked.calls) != asked.names or \
                self._would_read(scope, incoming, asked.reads) != asked.markers:
            return False
        self.cache.hits += 1
        scope.names.taken.update(asked.names)
        for kind, port in asked.reads:
            if kind == "use":
                self.edge_index(scope.prefix, incoming[port])   # numbers it, as emitting would
        for port, var in record.out_vars:
            scope.vars[(node.id, port)] = var
        scope.code.init.extend(record.init)
        scope.code.body.extend(record.body)
        if record.attribute is not None:
            self.attrs[path] = record.attribute
        self.uses_functional |= record.functional
        return True

    def _would_read(self, scope: Scope, incoming: Mapping[str, Edge],
                    reads: tuple[tuple[str, str], ...]) -> tuple[str, ...] | None:
        """What `use`/`var` of these ports would return now, numbering nothing."""
        out, fresh = [], {}
        for kind, port in reads:
            edge = incoming.get(port)
            var = scope.vars.get(edge.src) if edge is not None else None
            if var is None:
                return None
            if kind == "var":
                out.append(var)
                continue
            key = scope.prefix + edge.key
            number = self.edge_numbers.get(key)
            if number is None:
                number = fresh.setdefault(key, len(self.edge_keys) + len(fresh))
            out.append(tap_marker(number, var))
        return tuple(out)

    def record(self, scope: Scope, node: Node, spec: BlockSpec) -> NodeCode:
        """Emit `node`, noting what its lines were made from, for `replay`."""
        self.cache.misses += 1
        code = scope.code
        n_init, n_body = len(code.init), len(code.body)
        ctx = _Recording(self, scope, node, spec)
        ctx.emit()
        ins = self.analysis.inputs.get(ctx.path, _EMPTY)
        outs = self.analysis.outputs.get(ctx.path, _EMPTY)
        return NodeCode(scope.prefix, ins, tuple(ins.items()), outs, tuple(outs.values()),
                        ctx.asked(), tuple(code.init[n_init:]), tuple(code.body[n_body:]),
                        self.attrs.get(ctx.path), self.uses_functional,
                        tuple((p, scope.vars[(node.id, p)]) for p in outs if (node.id, p) in scope.vars))

    # -- patching --

    def patch(self, was: _MainCode, graph: Graph, name: str, doc: str) -> ClassCode | None:
        """The main class by patching the last generation of a version of this graph with the
        same ids, wires and order: the nodes whose analysis is not the very same (an analysis
        built with an AnalysisCache hands back the same dicts for untouched nodes) are emitted
        again, with the names and wire numbers they took last time, which they must ask for
        again in the same order. Everything else - the other nodes' lines, the body classes,
        names and wire numbers - is as it was. None (having changed nothing) when that does
        not apply (a changed input, loop or branch, many changes, a node that now names or
        reads differently); then the class is generated node by node. A patch costs the
        edited nodes and a few copies, where node by node costs every node."""
        order, old = self.analysis.order[""], was.graph
        if graph.edges is not old.edges or graph.name != old.name \
                or len(graph.nodes) != len(old.nodes) or (order is not was.order and order != was.order):
            return None
        changed = was.changed(self.analysis, graph)
        if changed is None or len(changed) * 4 > len(graph.nodes):
            return None
        main = _MainCode(graph, self.analysis, was.incoming, was.consumed, previous=was)
        self.attrs = dict(was.attrs)
        if not all(self.redo(main, i, graph.nodes[i]) for i in changed):
            self.attrs = {}
            return None
        self.main = main
        code = ClassCode(name, doc, was.code.args, was.code.arg_comments,
                         [ln for node_id in main.emitted for ln in main.parts[node_id].init],
                         [ln for node_id in main.emitted for ln in main.parts[node_id].body],
                         was.code.returns)
        code.body.extend(was.tail)
        main.code = code
        self.classes = [*was.classes[:-1], code]
        self.class_names = set(was.class_names)
        self.edge_keys, self.edge_numbers = list(was.edge_keys), was.edge_numbers
        self.region_attrs = was.region_attrs
        self.uses_functional = bool(main.functional)
        self.cache.patches += 1
        self.cache.hits += len(graph.nodes) - len(changed)
        return code

    def redo(self, main: _MainCode, i: int, node: Node) -> bool:
        """Bring a changed node's part up to date; False when only a generation node by node
        can: an input (the arguments), a loop or branch (body classes), a node that asks for
        other names or reads other ports."""
        spec = lookup(node.type)
        if spec is None or spec.kind in ("input", *_ALWAYS_EMITTED):
            return False
        main.saw(self.analysis, node, i)
        if spec.kind == "output":
            return True   # it reads the same wire: the same `return` line
        self.attrs.pop(node.id, None)
        part = main.parts.get(node.id)
        if part is None or part.asked is None:
            return False
        scope = Scope("", ClassCode("", "", [], []), Namer(), {}, main.incoming, main.consumed)
        ctx = _Answered(self, scope, node, spec, part.asked)
        before, self.uses_functional = self.uses_functional, False
        try:
            ctx.emit()
        except _AskedOtherwise:
            return False
        finally:
            functional, self.uses_functional = self.uses_functional, before
        if not ctx.finished():
            return False
        main.parts[node.id] = _Part(tuple(scope.code.init), tuple(scope.code.body), functional,
                                    part.asked)
        if functional:
            main.functional.add(node.id)
        else:
            main.functional.discard(node.id)
        return True


# --- the contexts that record and answer ---------------------------------------------------


class _Recording(NodeContext):
    """Emits a node, noting each name it asks for and each wire it reads."""

    def __init__(self, gen: Generator, scope: Scope, node: Node, spec: BlockSpec):
        super().__init__(gen, scope, node, spec)
        self.calls: list[tuple[str, str]] = []
        self.given: list[str] = []
        self.reads: list[tuple[str, str]] = []
        self.markers: list[str] = []

    def name(self, text: str, fallback: str = "v") -> str:
        name = super().name(text, fallback)
        self.calls.append((text, fallback))
        self.given.append(name)
        return name

    def use(self, port: str) -> str:
        return self._read("use", port, super().use(port))

    def var(self, port: str) -> str:
        return self._read("var", port, super().var(port))

    def _read(self, kind: str, port: str, text: str) -> str:
        self.reads.append((kind, port))
        self.markers.append(text)
        return text

    def asked(self) -> Asked:
        return Asked(tuple(self.calls), tuple(self.given), tuple(self.reads), tuple(self.markers))


class _AskedOtherwise(Exception):
    """A node emitted again asked for a name, or read a port, other than last time."""


class _Answered(NodeContext):
    """Emits a node again, answering each name and wire read it asks for as last time,
    provided it asks the same things in the same order."""

    def __init__(self, gen: Generator, scope: Scope, node: Node, spec: BlockSpec, asked: Asked):
        super().__init__(gen, scope, node, spec)
        self.asked = asked
        self.n_names = self.n_reads = 0

    def name(self, text: str, fallback: str = "v") -> str:
        k, asked = self.n_names, self.asked
        if k >= len(asked.calls) or asked.calls[k] != (text, fallback):
            raise _AskedOtherwise
        self.n_names += 1
        return asked.names[k]

    def use(self, port: str) -> str:
        return self._read("use", port)

    def var(self, port: str) -> str:
        return self._read("var", port)

    def _read(self, kind: str, port: str) -> str:
        k, asked = self.n_reads, self.asked
        if k >= len(asked.reads) or asked.reads[k] != (kind, port):
            raise _AskedOtherwise
        self.n_reads += 1
        return asked.markers[k]

    def finished(self) -> bool:
        return self.n_names == len(self.asked.calls) and self.n_reads == len(self.asked.reads)
