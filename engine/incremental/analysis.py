"""The incremental analysis: `AnalysisCache().analyze(graph)` gives exactly what
`engine.core.analysis.analyze(graph)` gives, redoing only what an edit reached.

Graphs are values that share their unchanged `Node` objects. A node that is the same object,
in the same kind of place (main graph or a body), checks as before (`NodeCheck`: its
diagnostics, params and ports); given the same input types and runs, it infers as before
(`NodeInference`: its output types, counts and diagnostics). `_MemoRegion`, the core's region
pass with those two steps replayed, works out only what it has no record of. Loop, branch and
body boundary nodes, whose results depend on more than their inputs, are always inferred (the
nodes inside their bodies are replayed like any other). A region whose edges, node ids, ports
and broken nodes are as before keeps its `Wiring`.

Before any of that, an edit that kept the main graph's node ids and wires patches the last
main pass (`MainPass`, `_MainRegion.patch`): only the changed nodes and what their new outputs
reach are visited. tests/test_engine_caches.py proves that every path equals a fresh pass.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from nodes.control import BODY_INPUT, BODY_OUTPUT
from nodes.spec import BlockSpec, Port
from nodes.types import TensorType

from ..core.analysis import Analysis, Diagnostic, _check_whole_graph, _Region, analyze
from ..core.graph import PATH_SEP, Edge, Graph, Node
from .memo import NodeMemo

# What a node's inference adds to an `Analysis`: to its counters, and an entry per node path
# in its tables; read off `Analysis` itself, so that new fields are covered.
_MISSING = object()
_COUNTERS = tuple(name for name, value in vars(Analysis()).items() if isinstance(value, int))
_BY_PATH = tuple(name for name, value in vars(Analysis()).items()
                 if isinstance(value, dict) and name != "order")
_INFERRED = tuple(name for name in _BY_PATH if name != "params")   # params come from the checks
_ALWAYS_INFERRED = ("loop", "branch", BODY_INPUT, BODY_OUTPUT)
_NO_WIRES: Mapping[str, Edge] = {}

Ports = tuple[tuple[Port, ...], tuple[Port, ...]]
Diagnostics = tuple[Diagnostic, ...]


@dataclass(frozen=True, slots=True)
class NodeCheck:
    """What checking one node gave. Diagnostics name nodes relative to the region."""

    diagnostics: Diagnostics
    broken: bool
    spec: BlockSpec | None
    params: dict[str, Any] | None   # resolved, as in `Analysis.params`
    ports: Ports | None
    port_names: tuple[frozenset[str], frozenset[str]] | None


@dataclass(frozen=True, slots=True)
class NodeInference:
    """What inferring one node gave, for the input types and runs in `key`. Diagnostics name
    nodes relative to the region."""

    key: tuple   # ((port, TensorType), ...), runs
    diagnostics: Diagnostics
    broken: bool
    counters: tuple[tuple[str, int], ...]   # Analysis counter → what it added
    entries: tuple[tuple[str, Any], ...]    # Analysis table → the value it set at the node's path
    outputs: dict[str, TensorType] | None   # by port


@dataclass(slots=True)
class _Memory:
    """A node object's check and inference, from the kind of place it was analysed in."""

    in_regions: bool
    check: NodeCheck | None = None
    inference: NodeInference | None = None


@dataclass(frozen=True, eq=False)
class Wiring:
    """A region's wires as they checked clean: incoming edges per node and the topological
    order. Both depend only on the edges, the node ids, their ports and which nodes are
    broken; an edit of params leaves the edges tuple the same object."""

    edges: tuple[Edge, ...]
    ids: tuple[str, ...]
    port_names: dict[str, tuple[frozenset[str], frozenset[str]]]
    broken: frozenset[str]
    incoming: dict[str, dict[str, Edge]]
    order: list[str]

    def fits(self, region: _Region) -> bool:
        graph = region.graph
        return self.edges is graph.edges and self.broken == region.broken \
            and self.port_names == region.port_names and self.ids == tuple(n.id for n in graph.nodes)

    # What a patch walks by, worked out when first asked and kept while the wires are.

    @cached_property
    def position(self) -> dict[str, int]:
        """Node id → its place in the topological order."""
        return {n: i for i, n in enumerate(self.order)}

    @cached_property
    def consumers(self) -> dict[str, list[str]]:
        """Node id → the nodes its outputs are wired to."""
        consumers: dict[str, list[str]] = {}
        for dst, ports in self.incoming.items():
            for src in {e.src[0] for e in ports.values()}:
                consumers.setdefault(src, []).append(dst)
        return consumers

    @cached_property
    def index(self) -> dict[str, int]:
        """Node id → its place in the graph's node list."""
        return {n: i for i, n in enumerate(self.ids)}


@dataclass(frozen=True, eq=False)
class MainPass:
    """A main graph's pass, node by node: what `_MainRegion.patch` starts from to analyse the
    next version of the graph."""

    region: _MainRegion   # its graph and result, and its tables (specs, ports, outputs, broken)
    checks: dict[str, Diagnostics]       # node id → what its check reported, where anything
    check_broken: frozenset[str]         # the nodes their checks broke
    inferences: dict[str, Diagnostics]   # node id → what its inference reported, bodies included
    deltas: dict[str, tuple[tuple[str, int], ...]]   # node id → what its inference counted
    unused: Diagnostics                  # "feeds nothing"
    wiring: Wiring | None                # when the wires checked clean; a patch needs them


class AnalysisCache(NodeMemo):
    """What each node gave in the last analyses of one document's graphs, so that analysing
    an edited graph redoes only the nodes that changed.

    Records are kept for the nodes of the last two graphs analysed, so going back and forth
    between two versions (undo, redo, a command that analyses before and after) stays cheap.
    One cache per document, used from one thread; treat the analyses it helps build as
    read-only, since they share values.
    """

    # hits: nodes replayed (checks and inferences counted apart); misses: inferences worked out

    def __init__(self) -> None:
        super().__init__()
        self._main: MainPass | None = None   # the last full or patched pass of a main graph
        self._wirings: dict[str, Wiring] = {}   # region prefix → its wiring
        self._new_wirings: dict[str, Wiring] = {}

    def analyze(self, graph: Graph) -> Analysis:
        """`engine.core.analysis.analyze(graph)`, with what earlier graphs gave replayed."""
        if self._full_pass_for(graph):
            return analyze(graph)
        result = Analysis()
        self._new, self._new_wirings = {}, {}
        top = _MainRegion(graph, result, self)
        patched = self._main is not None and top.patch(self._main)
        if not patched:
            top.run()
        self._end(patched)
        _check_whole_graph(top)
        return result

    def _forget(self) -> None:
        self._main, self._wirings, self._new_wirings = None, {}, {}

    def _end(self, patched: bool = False) -> None:
        super()._end(patched)
        # After a patch, bodies it did not visit keep their wirings too.
        self._wirings = {**self._wirings, **self._new_wirings} if patched else self._new_wirings

    def memory(self, node: Node, in_regions: bool) -> _Memory:
        """This node object's memory (an entry of `NodeMemo`: [node, memory])."""
        key = id(node)
        entry = self._new.get(key)
        if entry is None:
            entry = self._earlier(node)
            if entry is None or entry[1].in_regions != in_regions:
                entry = [node, _Memory(in_regions)]
            self._new[key] = entry
        elif entry[1].in_regions != in_regions:   # one object in two kinds of place: start over
            entry[1] = _Memory(in_regions)
        return entry[1]

    def wiring(self, region: _Region) -> Wiring | None:
        """The region's wiring from the last pass, if it still fits."""
        wiring = self._wirings.get(region.prefix)
        if wiring is None or not wiring.fits(region):
            return None
        self._new_wirings[region.prefix] = wiring
        return wiring

    def remember_wiring(self, region: _Region, incoming: dict[str, dict[str, Edge]],
                        order: list[str]) -> Wiring:
        wiring = self._new_wirings[region.prefix] = Wiring(
            region.graph.edges, tuple(n.id for n in region.graph.nodes), dict(region.port_names),
            frozenset(region.broken), incoming, order)
        return wiring


class _MemoRegion(_Region):
    """The core's region pass, replaying each node's check and inference where it has a
    record of them, and recording them where it has none."""

    def __init__(self, graph: Graph, prefix: str, result: Analysis,
                 boundary: Mapping[str, TensorType | None] | None, runs: int,
                 memo: AnalysisCache):
        super().__init__(graph, prefix, result, boundary, runs)
        self.memo = memo
        self.memories: dict[str, _Memory] = {}   # node id → its memory, once checked
        self.wiring: Wiring | None = None   # this pass's wiring, when it checked clean

    def body(self, graph: Graph, prefix: str, boundary: Mapping[str, TensorType | None],
             runs: int) -> _Region:
        return _MemoRegion(graph, prefix, self.result, boundary, runs, self.memo)

    def check_node(self, node: Node) -> None:
        memory = self.memories[node.id] = self.memo.memory(node, self.boundary is not None)
        check = memory.check
        if check is None:
            start = len(self.result.diagnostics)
            super().check_node(node)
            memory.check = self._check_record(node, start)
            return
        self.memo.hits += 1
        if check.diagnostics or check.broken:
            self._replay(node.id, check.diagnostics, check.broken)
        if check.spec is not None:
            self.specs[node.id] = check.spec
        if check.params is not None:
            self.result.params[self.prefix + node.id] = check.params
        if check.ports is not None:
            self.ports[node.id] = check.ports
            self.port_names[node.id] = check.port_names

    def _check_record(self, node: Node, start: int) -> NodeCheck | None:
        diagnostics = self._relative(start)
        if diagnostics is None:
            return None
        return NodeCheck(diagnostics, node.id in self.broken, self.specs.get(node.id),
                         self.result.params.get(self.prefix + node.id), self.ports.get(node.id),
                         self.port_names.get(node.id))

    def wire(self) -> tuple[dict[str, dict[str, Edge]], list[str]]:
        wiring = self.memo.wiring(self)
        if wiring is None:
            diagnostics = self.result.diagnostics
            before = (len(diagnostics), len(self.broken))
            incoming, order = super().wire()
            if before != (len(diagnostics), len(self.broken)):
                return incoming, order   # not remembered: its problems are reported each pass
            wiring = self.memo.remember_wiring(self, incoming, order)
        self.wiring = wiring
        return wiring.incoming, wiring.order

    def infer_types(self, node: Node, spec: BlockSpec, path: str, params: Mapping[str, Any],
                    types: dict[str, TensorType]) -> None:
        if spec.kind in _ALWAYS_INFERRED:
            super().infer_types(node, spec, path, params, types)
            return
        memory = self.memories.get(node.id) or self.memo.memory(node, self.boundary is not None)
        key = (tuple(types.items()), self.runs)
        known = memory.inference
        if known is not None and known.key == key:
            self.memo.hits += 1
            if known.diagnostics or known.broken:
                self._replay(node.id, known.diagnostics, known.broken)
            result = self.result
            for name, delta in known.counters:
                setattr(result, name, getattr(result, name) + delta)
            for name, value in known.entries:
                getattr(result, name)[path] = value
            if known.outputs is not None:
                self.outputs[node.id] = known.outputs
            return
        self.memo.misses += 1
        memory.inference = self._infer_recorded(node, spec, path, params, types, key)

    def _infer_recorded(self, node: Node, spec: BlockSpec, path: str, params: Mapping[str, Any],
                        types: dict[str, TensorType], key: tuple) -> NodeInference | None:
        """The core's inference of the node, and the record of what it gave."""
        result = self.result
        start = len(result.diagnostics)
        counters = [(name, getattr(result, name)) for name in _COUNTERS]
        entries = [(name, getattr(result, name).get(path, _MISSING)) for name in _BY_PATH]
        super().infer_types(node, spec, path, params, types)
        diagnostics = self._relative(start)
        if diagnostics is None:
            return None
        return NodeInference(
            key, diagnostics, node.id in self.broken,
            tuple((name, getattr(result, name) - was) for name, was in counters
                  if getattr(result, name) != was),
            tuple((name, value) for name, was in entries
                  if (value := getattr(result, name).get(path, _MISSING)) is not was
                  and value is not _MISSING),
            self.outputs.get(node.id))

    def _relative(self, start: int) -> Diagnostics | None:
        """The diagnostics reported since `start`, with node paths relative to this region
        (None if one is about something else, which is then not remembered)."""
        prefix, n = self.prefix, len(self.prefix)
        new = self.result.diagnostics[start:]
        if any(d.node is None or not d.node.startswith(prefix) for d in new):
            return None
        if not n:
            return tuple(new)
        return tuple(Diagnostic(d.code, d.message, d.node[n:], d.port, d.param, d.severity)
                     for d in new)

    def _replay(self, node_id: str, diagnostics: Diagnostics, broken: bool) -> None:
        if diagnostics:
            prefix = self.prefix
            self.result.diagnostics.extend(
                (Diagnostic(d.code, d.message, prefix + d.node, d.port, d.param, d.severity)
                 for d in diagnostics) if prefix else diagnostics)
        if broken:
            self.broken.add(node_id)


class _MainRegion(_MemoRegion):
    """The pass over a main graph, recorded node by node (`MainPass`), so that the next
    version of the graph can patch it instead of walking every node."""

    def __init__(self, graph: Graph, result: Analysis, memo: AnalysisCache):
        super().__init__(graph, "", result, None, 1, memo)
        self._carry(None)

    def _carry(self, last: MainPass | None) -> None:
        """Start this pass's records: empty, or as `last` left them, for a patch to change."""
        self.checks = dict(last.checks) if last else {}
        self.check_broken = set(last.check_broken) if last else set()
        self.inferences = dict(last.inferences) if last else {}
        self.deltas = dict(last.deltas) if last else {}
        self.unused = last.unused if last else ()
        self.wiring = last.wiring if last else None

    def _record(self) -> MainPass:
        return MainPass(self, self.checks, frozenset(self.check_broken), self.inferences,
                        self.deltas, self.unused, self.wiring)

    def run(self) -> dict[str, TensorType | None]:
        self._carry(None)
        results = super().run()
        self.memo._main = self._record()
        return results

    # -- the steps of the core's pass, noting what each node gave --

    def check_nodes(self) -> None:
        diagnostics = self.result.diagnostics
        for node in self.graph.nodes:
            start = len(diagnostics)
            self.check_node(node)
            if len(diagnostics) > start:
                self.checks[node.id] = tuple(diagnostics[start:])
        self.check_broken = set(self.broken)

    def infer_nodes(self, order: list[str], incoming: Mapping[str, Mapping[str, Edge]]) -> None:
        for node_id in order:
            if node_id not in self.broken:
                self._infer_noted(self.graph.node(node_id), incoming.get(node_id, _NO_WIRES))

    def _infer_noted(self, node: Node, incoming: Mapping[str, Edge]) -> None:
        """The core's `infer`, noting the diagnostics (its bodies' included) and counts."""
        result = self.result
        start = len(result.diagnostics)
        before = [getattr(result, name) for name in _COUNTERS]
        self.infer(node, incoming)
        if len(result.diagnostics) > start:
            self.inferences[node.id] = tuple(result.diagnostics[start:])
        deltas = tuple((name, getattr(result, name) - was)
                       for name, was in zip(_COUNTERS, before, strict=True)
                       if getattr(result, name) != was)
        if deltas:
            self.deltas[node.id] = deltas

    def report_unused(self, incoming: Mapping[str, Mapping[str, Edge]]) -> None:
        start = len(self.result.diagnostics)
        super().report_unused(incoming)
        self.unused = tuple(self.result.diagnostics[start:])

    # -- the patch --

    def patch(self, last: MainPass) -> bool:
        """Analyse this main graph by patching `last`, the pass of an earlier version with the
        same node ids and the same wires: redo the nodes that changed, then, in topological
        order, those whose input types or brokenness changed with them. The rest gave what
        they gave before. False, having added nothing, when that does not apply (different
        wires or ids, wires that had problems, many changes, a node whose ports changed);
        then `run` walks the whole graph. The result is the same either way.

        An edit of one param in a 1,000-node graph then costs about as many nodes as the edit
        reaches (two or three for a width) and a few dict copies, not a walk over every node."""
        changed = self._changed_since(last)
        if changed is None:
            return False
        self._carry(last)
        checked = self._recheck(changed, last.region)
        if checked is None:
            return False
        self._restore(last.region, checked, changed)
        reached = self._reinfer(changed, last)
        self._report_unused_again(changed, last)
        self._order_diagnostics()
        self.memo._main = self._record()
        self.memo.hits += len(self.graph.nodes) - len(changed) + len(self.wiring.order) - reached
        self.memo.patches += 1
        return True

    def _changed_since(self, last: MainPass) -> list[Node] | None:
        """The nodes that are new objects, when `last` can be patched with them."""
        graph, old = self.graph, last.region.graph
        if last.wiring is None or graph.edges is not old.edges or len(graph.nodes) != len(old.nodes):
            return None
        pairs = [(was, now) for was, now in zip(old.nodes, graph.nodes, strict=True) if now is not was]
        if len(pairs) * 4 > len(graph.nodes) or any(now.id != was.id for was, now in pairs):
            return None   # many changes, or ids in new places (the node order counts)
        return [now for _, now in pairs]

    def _recheck(self, nodes: list[Node], was: _Region) -> Analysis | None:
        """Check `nodes` again on the tables as `was` left them. Their params and diagnostics go
        to the `Analysis` returned, kept apart until the patch knows the wires hold: None when
        a node's ports changed (its wires may now be judged differently), with the tables left
        empty for `run`."""
        self.specs, self.ports, self.port_names = dict(was.specs), dict(was.ports), dict(was.port_names)
        self.broken = set(was.broken)
        result, checked = self.result, Analysis()
        self.result = checked
        try:
            for node in nodes:
                for table in (self.specs, self.ports, self.port_names):
                    table.pop(node.id, None)
                self.broken.discard(node.id)
                self.check_broken.discard(node.id)
                self.checks.pop(node.id, None)
                start = len(checked.diagnostics)
                self.check_node(node)
                if len(checked.diagnostics) > start:
                    self.checks[node.id] = tuple(checked.diagnostics[start:])
                if node.id in self.broken:
                    self.check_broken.add(node.id)
                if self.port_names.get(node.id) != was.port_names.get(node.id):
                    self.specs, self.ports, self.port_names, self.broken = {}, {}, {}, set()
                    return None
        finally:
            self.result = result
        return checked

    def _restore(self, was: _Region, checked: Analysis, changed: list[Node]) -> None:
        """Everything as the last pass left it, but for what the changed nodes' checks gave."""
        before, result = was.result, self.result
        for name in _BY_PATH:
            getattr(result, name).update(getattr(before, name))
        result.order.update(before.order)
        for name in _COUNTERS:
            setattr(result, name, getattr(before, name))
        for node in changed:
            result.params.pop(node.id, None)
        result.params.update(checked.params)
        self.outputs = dict(was.outputs)

    def _reinfer(self, changed: list[Node], last: MainPass) -> int:
        """Infer again, in topological order, the changed nodes and those their changed outputs
        reach; returns how many nodes were visited."""
        graph, was, wiring = self.graph, last.region, last.wiring
        position, consumers, incoming = wiring.position, wiring.consumers, wiring.incoming
        queue = [position[node.id] for node in changed]
        heapq.heapify(queue)
        queued = set(queue)
        while queue:
            node_id = wiring.order[heapq.heappop(queue)]
            node = graph.node(node_id)
            self._forget(node_id, bool(node.regions or was.graph.node(node_id).regions))
            if node_id not in self.check_broken:
                self.broken.discard(node_id)
                self._infer_noted(node, incoming.get(node_id, _NO_WIRES))
            if self.outputs.get(node_id) != was.outputs.get(node_id) or \
                    (node_id in self.broken) != (node_id in was.broken):
                for consumer in consumers.get(node_id, ()):
                    if position[consumer] not in queued:
                        queued.add(position[consumer])
                        heapq.heappush(queue, position[consumer])
        return len(queued)

    def _forget(self, node_id: str, has_bodies: bool) -> None:
        """Take back what the last pass's inference of `node_id` added (its bodies' included)."""
        result = self.result
        self.outputs.pop(node_id, None)
        for name in _INFERRED:
            getattr(result, name).pop(node_id, None)
        self.inferences.pop(node_id, None)
        for name, delta in self.deltas.pop(node_id, ()):
            setattr(result, name, getattr(result, name) - delta)
        if has_bodies:   # everything under "node_id/": written while its bodies were analysed
            inside = node_id + PATH_SEP
            for table in (*(getattr(result, name) for name in _BY_PATH), result.order):
                for path in [p for p in table if p.startswith(inside)]:
                    del table[path]

    def _report_unused_again(self, changed: list[Node], last: MainPass) -> None:
        """"Feeds nothing" depends on the wires (the same), brokenness and the node's kind."""
        was = last.region
        ids = {node.id for node in changed}
        if self.broken == was.broken and not any(d.node in ids for d in last.unused) \
                and all(self.specs.get(n) is was.specs.get(n) for n in ids):
            self.unused = last.unused
        else:
            self.report_unused(last.wiring.incoming)

    def _order_diagnostics(self) -> None:
        """The diagnostics in the order a full pass reports them: checks in node order, then
        inferences in topological order, then unused nodes."""
        index, position = self.wiring.index, self.wiring.position
        self.result.diagnostics[:] = [
            *(d for n in sorted(self.checks, key=index.__getitem__) for d in self.checks[n]),
            *(d for n in sorted(self.inferences, key=position.__getitem__)
              for d in self.inferences[n]),
            *self.unused]
