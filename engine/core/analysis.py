"""Validation and shape inference in one pass: diagnostics, port types, parameter counts.

`analyze(graph)` walks the graph (and, recursively, every loop and branch body) in
topological order, giving every port a `TensorType` with a symbolic batch dim and every
node its parameter count. It never raises on a user's mistake: problems come back as
`Diagnostic` records. Only root causes are reported - a node whose inputs are already
broken stays quiet, so one bad block lights up once, not all the way downstream.

Pure: no torch.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodes import lookup
from nodes.spec import BlockSpec, Param, Port
from nodes.types import BATCH, ShapeError, TensorType, fmt_shape, numel

from ..incremental.memo import NodeMemo  # moving: the caches leave the core (issue 11)
from .graph import PATH_SEP, Edge, Graph, Node

SEVERITIES = ("error", "warning", "info")
# Caps, so that whatever validates can be allocated and run on a 24 GiB machine at batch size 2
# (tests/test_fuzz_caps.py): 2 GiB of weights, at most 4 GiB of activations, and no loop nest
# that runs for hours.
MAX_PARAMETERS = 1 << 29          # in the whole model (was 1 << 30 per node: ten such nodes fit)
MAX_ACTIVATION_VALUES = 1 << 28   # values per sample in one tensor
MAX_TOTAL_ACTIVATIONS = 1 << 29   # values per sample in all tensors, loop iterations included
MAX_LOOP_STEPS = 100_000          # body runs per forward pass, nested loops multiplied
MAX_MACS = 1 << 32                # multiply-adds per sample (ResNet-50 needs 4.1e9): seconds


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    node: str | None = None       # a path for nodes inside regions: "loop1/body/fc"
    port: str | None = None
    param: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = self.node or "graph"
        if self.port:
            where += f".{self.port}"
        if self.param:
            where += f" ({self.param})"
        return f"{self.severity}: {where}: {self.message} [{self.code}]"


class GraphError(ValueError):
    """The graph has error diagnostics, so it cannot be compiled."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        shown = "; ".join(str(d) for d in diagnostics[:5])
        more = f" (and {len(diagnostics) - 5} more)" if len(diagnostics) > 5 else ""
        super().__init__(f"the graph has errors: {shown}{more}")


@dataclass
class Analysis:
    """What the engine knows about a graph, keyed by node path."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    outputs: dict[str, dict[str, TensorType]] = field(default_factory=dict)
    inputs: dict[str, dict[str, TensorType]] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)   # resolved, with defaults
    param_counts: dict[str, int] = field(default_factory=dict)
    order: dict[str, list[str]] = field(default_factory=dict)         # region prefix -> node ids
    # Values per sample in all node outputs, each counted once per run of its region: autograd
    # keeps every iteration's activations for the backward pass.
    activation_values: int = 0
    macs: int = 0   # multiply-adds per sample in a forward pass, loop iterations included

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def total_params(self) -> int:
        # Region totals already include their bodies; count only top-level nodes.
        return sum(c for path, c in self.param_counts.items() if PATH_SEP not in path)


class AnalysisCache(NodeMemo):
    """What each node gave in earlier analyses, so that re-analysing an edited graph redoes
    only the nodes that changed (`analyze(graph, cache)`).

    Graphs are values that share their unchanged `Node` objects, so a node that is the same
    object, in the same kind of place (main graph or a body), has the same diagnostics, params
    and ports as before; and given the same input types (and loop runs), the same output types,
    counts and diagnostics. Those are replayed instead of worked out again. Loop, branch and
    body boundary nodes, whose results depend on more than their inputs, are always analysed
    (the nodes inside their bodies are replayed like any other).

    Before any of that, an edit that kept the main graph's node ids and wires is patched
    (`_Region.patch`): only the changed nodes and what their new outputs reach are visited.

    Entries are kept for the nodes of the last two graphs analysed, so going back and forth
    between two versions (undo, redo, a command that analyses before and after) stays cheap.
    One cache per document, used from one thread; treat the analyses it helps build as
    read-only, since they share values.
    """

    # hits: nodes replayed (checks and inferences counted apart); misses: inferences worked out

    def __init__(self) -> None:
        super().__init__()
        self._main: _MainRecord | None = None   # the last full or patched pass of a main graph
        self._wirings: dict[str, tuple] = {}    # region prefix → its wiring (see `_wiring`)
        self._new_wiring: dict[str, tuple] = {}

    def _begin(self) -> AnalysisCache:
        self._new = {}
        self._new_wiring = {}
        return self

    def _end(self, patched: bool = False) -> None:
        super()._end(patched)
        # After a patch, bodies it did not visit keep their wirings too.
        self._wirings = {**self._wirings, **self._new_wiring} if patched else self._new_wiring

    # A region's wiring (incoming edges per node, topological order) depends only on its edges
    # and its nodes' ids, ports and brokenness; an edit of params leaves the edges tuple the
    # same object. Remembered only when checking the wires reported nothing.

    def _wiring(self, region: _Region) -> tuple | None:
        record = self._wirings.get(region.prefix)
        if record is None:
            return None
        edges, ids, names, broken, incoming, order = record
        graph = region.graph
        if edges is not graph.edges or broken != region.broken or names != region.port_names \
                or ids != tuple(n.id for n in graph.nodes):
            return None
        self._new_wiring[region.prefix] = record
        return incoming, order

    def _remember_wiring(self, region: _Region, incoming: dict, order: list[str]) -> None:
        self._new_wiring[region.prefix] = (
            region.graph.edges, tuple(n.id for n in region.graph.nodes), dict(region.port_names),
            set(region.broken), incoming, order)

    def _entry(self, node: Node, in_regions: bool) -> list:
        """[node, in_regions, check effect, infer key, infer effect] for this node object."""
        key = id(node)
        entry = self._new.get(key)
        if entry is None:
            entry = self._earlier(node)
            if entry is None or entry[1] != in_regions:
                entry = [node, in_regions, None, None, None]
            self._new[key] = entry
        elif entry[1] != in_regions:   # one node object in two kinds of place: keep it simple
            entry[2] = entry[3] = entry[4] = None
            entry[1] = in_regions
        return entry


# What `_Region._infer_memo` records of a node's inference: the counters it adds to and the
# per-path entries it sets, read off `Analysis` itself so that new fields are covered.
_MISSING = object()
_COUNTERS = tuple(name for name, value in vars(Analysis()).items() if isinstance(value, int))
_BY_PATH = tuple(name for name, value in vars(Analysis()).items()
                 if isinstance(value, dict) and name != "order")
_INFERRED = tuple(name for name in _BY_PATH if name != "params")   # params come from the checks
_NOT_MEMOISED = ("loop", "branch", "body_input", "body_output")
_NO_WIRES: Mapping[str, Edge] = {}


class _MainRecord:
    """A main graph's pass, node by node: what `_Region.patch` starts from to analyse the next
    version of the graph. Holds the region as it ended (its specs, ports, outputs, broken
    nodes), the result, and per node the diagnostics of its check and of its inference and
    the counts its inference added; the wiring when it checked clean."""

    def __init__(self, region: _Region, previous: _MainRecord | None = None) -> None:
        """A record of `region`'s pass: empty, or a copy of `previous` for a patch to change."""
        self.region = region   # its graph and result, and how its tables ended
        p = previous
        self.check_broken: set[str] = set(p.check_broken) if p else set()
        self.check_diags: dict[str, tuple[Diagnostic, ...]] = dict(p.check_diags) if p else {}
        self.infer_diags: dict[str, tuple[Diagnostic, ...]] = dict(p.infer_diags) if p else {}
        self.deltas: dict[str, tuple] = dict(p.deltas) if p else {}
        self.unused: tuple[Diagnostic, ...] = p.unused if p else ()
        self.incoming: dict[str, dict[str, Edge]] | None = p and p.incoming
        self.order: list[str] | None = p and p.order
        # Worked out when first patched, then handed on: the same ids and wires keep them.
        self._maps = p._worked_out() if p else None

    def _worked_out(self) -> tuple[dict, dict, dict]:
        if self._maps is None:
            consumers: dict[str, list[str]] = {}
            for dst, ports in self.incoming.items():
                for src in {e.src[0] for e in ports.values()}:
                    consumers.setdefault(src, []).append(dst)
            self._maps = ({n: i for i, n in enumerate(self.order)}, consumers,
                          {n.id: i for i, n in enumerate(self.region.graph.nodes)})
        return self._maps

    def position(self) -> dict[str, int]:
        """Node id → its place in the topological order."""
        return self._worked_out()[0]

    def consumers(self) -> dict[str, list[str]]:
        """Node id → the nodes its outputs are wired to."""
        return self._worked_out()[1]

    def index(self) -> dict[str, int]:
        """Node id → its place in the graph's node list."""
        return self._worked_out()[2]


def validate(graph: Graph) -> list[Diagnostic]:
    return analyze(graph).diagnostics


def analyze(graph: Graph, cache: AnalysisCache | None = None) -> Analysis:
    """The analysis of `graph`. With a `cache` kept across the edits of one document, nodes
    seen before (the same `Node` object, in the same place, with the same input types) are not
    analysed again: what they gave last time is replayed. The result is the same either way."""
    result = Analysis()
    memo = cache._begin() if cache is not None else None
    top = _Region(graph, "", result, boundary=None, memo=memo)
    patched = memo is not None and memo._main is not None and top.patch(memo._main)
    if not patched:
        top.run()
    if cache is not None:
        cache._end(patched)
    # Per-node caps hold each node; these hold their sum, reported only when no node already
    # is too large on its own (root causes only).
    if not any(d.code == "too_large" for d in result.diagnostics):
        if result.total_params > MAX_PARAMETERS:
            result.diagnostics.append(Diagnostic(
                "too_large", f"the model has {result.total_params:,} parameters "
                f"(~{result.total_params * 4 / 2**30:.1f} GiB), more than the "
                f"{MAX_PARAMETERS:,} dprog allocates"))
        if result.macs > MAX_MACS:
            result.diagnostics.append(Diagnostic(
                "too_large", f"a forward pass takes about {result.macs:,} multiply-adds per sample, "
                f"more than the {MAX_MACS:,} dprog runs (attention over long sequences and big "
                "convolutions grow fastest)"))
        if result.activation_values > MAX_TOTAL_ACTIVATIONS:
            result.diagnostics.append(Diagnostic(
                "too_large", f"a forward pass keeps {result.activation_values:,} values per sample "
                f"(~{result.activation_values * 4 / 2**30:.1f} GiB at batch size 1), more than the "
                f"{MAX_TOTAL_ACTIVATIONS:,} dprog allocates; use smaller layers or fewer iterations"))
    if not any(spec.kind == "output" for spec in top.specs.values()):
        result.diagnostics.append(Diagnostic("no_output", "the graph has no Output block, so the "
                                             "model would return nothing"))
    return result


# Per spec, worked out once: its params by name, its defaults, and for a spec with fixed ports
# their names and whether two share one. Specs are long-lived constants; the entry keeps the
# spec itself, so an id reused after a test's throwaway spec died cannot be mistaken for it.
_SPEC_INFO: dict[int, tuple] = {}


def _spec_info(spec: BlockSpec) -> tuple:
    info = _SPEC_INFO.get(id(spec))
    if info is None or info[-1] is not spec:
        by_name = {p.name: p for p in reversed(spec.params)}   # the first of a name wins
        ports = None if spec.ports is not None else _port_facts((spec.inputs, spec.outputs))
        info = (by_name, spec.defaults(), ports, spec)
        _SPEC_INFO[id(spec)] = info
    return info


def _port_facts(ports: tuple[tuple[Port, ...], tuple[Port, ...]]) -> tuple:
    """(ports, (input names, output names), the first name used twice on a side or None)."""
    clash = None
    for side in ports:
        names = [port.name for port in side]
        clash = next((n for n in names if names.count(n) > 1), None)
        if clash is not None:
            break
    return ports, (frozenset(p.name for p in ports[0]), frozenset(p.name for p in ports[1])), clash


_NONE: Mapping[str, TensorType] = {}


def _sources(ports: Mapping[str, Edge] | None) -> int:
    """How many distinct nodes feed these input ports."""
    if not ports:
        return 0
    if len(ports) == 1:
        return 1
    return len({e.src[0] for e in ports.values()})
_NUMELS: dict[tuple, int] = {}


def _numel(shape: tuple) -> int:
    """`numel(shape)`, remembered: a graph has few distinct shapes and asks for each often."""
    try:
        n = _NUMELS.get(shape)
    except TypeError:   # an unhashable shape from a faulty rule: no memory, same answer
        return numel(shape)
    if n is None:
        if len(_NUMELS) > 4096:
            _NUMELS.clear()
        n = _NUMELS[shape] = numel(shape)
    return n


class _Region:
    """Analysis of one graph or region; `boundary` gives body inputs their types."""

    def __init__(self, graph: Graph, prefix: str, result: Analysis,
                 boundary: Mapping[str, TensorType | None] | None, runs: int = 1,
                 memo: AnalysisCache | None = None):
        self.graph, self.prefix, self.result, self.boundary = graph, prefix, result, boundary
        self.runs = runs   # how often this region runs per forward pass (loops nest multiply)
        self.memo = memo
        self._entries: dict[str, list] = {}   # node id → its cache entry, while memo is on
        self.specs: dict[str, BlockSpec] = {}
        self.ports: dict[str, tuple[tuple[Port, ...], tuple[Port, ...]]] = {}
        self.port_names: dict[str, tuple[frozenset[str], frozenset[str]]] = {}   # same keys
        self.outputs: dict[str, dict[str, TensorType]] = {}   # this region's part of result.outputs
        self.broken: set[str] = set()   # nodes whose outputs are unknown (already reported)
        self.results: dict[str, TensorType | None] = {}   # body_output id -> type

    # -- reporting --

    def report(self, code: str, message: str, node: str | None = None, *, port: str | None = None,
               param: str | None = None, severity: str = "error") -> None:
        path = self.prefix + node if node else (self.prefix.rstrip(PATH_SEP) or None)
        self.result.diagnostics.append(Diagnostic(code, message, path, port, param, severity))

    def title(self, node: Node) -> str:
        spec = self.specs.get(node.id)
        kind = spec.title if spec else node.type
        # A label alone may not find the node in a file or a traceback; add the id then.
        return f"{kind} {node.name!r}" + (f" ({node.id})" if node.label else "")

    # -- the pass --

    def run(self) -> dict[str, TensorType | None]:
        memo, diags = self.memo, self.result.diagnostics
        # The main graph's pass is recorded node by node, for the next version to patch.
        record = _MainRecord(self) if memo is not None and not self.prefix else None
        check = self.check_node if memo is None else self._check_node_memo
        for node in self.graph.nodes:
            start = len(diags)
            check(node)
            if record is not None and len(diags) > start:
                record.check_diags[node.id] = tuple(diags[start:])
        if record is not None:
            record.check_broken = set(self.broken)
        reused = memo._wiring(self) if memo is not None else None
        if reused is not None:   # same wires, same ports: same incoming edges, same order
            incoming, order = reused
        else:
            before = (len(diags), len(self.broken))
            incoming = self.check_edges()
            order = self.toposort(incoming)
            if memo is not None and before == (len(diags), len(self.broken)):
                memo._remember_wiring(self, incoming, order)
                reused = incoming, order
        self.result.order[self.prefix] = order
        for node_id in order:
            if node_id not in self.broken:
                if record is None:
                    self.infer(self.graph.node(node_id), incoming.get(node_id, _NO_WIRES))
                else:
                    self._infer_recorded(self.graph.node(node_id), incoming, record)
        start = len(diags)
        self.report_unused(incoming)
        if record is not None:
            record.unused = tuple(diags[start:])
            if reused is not None:   # patching needs wires that checked clean
                record.incoming, record.order = incoming, order
            memo._main = record
        return self.results

    def _infer_recorded(self, node: Node, incoming: Mapping[str, Mapping[str, Edge]],
                        record: _MainRecord) -> None:
        """`infer`, noting in `record` the diagnostics (its bodies' included) and the counts
        it added."""
        result = self.result
        start = len(result.diagnostics)
        before = [getattr(result, name) for name in _COUNTERS]
        self.infer(node, incoming.get(node.id, _NO_WIRES))
        if len(result.diagnostics) > start:
            record.infer_diags[node.id] = tuple(result.diagnostics[start:])
        deltas = tuple((name, getattr(result, name) - was)
                       for name, was in zip(_COUNTERS, before, strict=True)
                       if getattr(result, name) != was)
        if deltas:
            record.deltas[node.id] = deltas

    def patch(self, record: _MainRecord) -> bool:
        """Analyse this main graph by patching `record`, the pass of an earlier version with
        the same node ids and the same wires: redo the nodes that changed, then, in
        topological order, those whose input types or brokenness changed with them. The rest
        gave what they gave before. False, having added nothing, when that does not apply
        (different wires or ids, wires that had problems, many changes, a node whose ports
        changed); then `run` walks the whole graph. The result is the same either way.

        Why: an edit of one param in a 1,000-node graph used to cost a walk over every node,
        ~15 ms even with each node's work replayed; a patch costs about as many nodes as the
        edit reaches (two or three for a width), plus a few dict copies."""
        graph, old = self.graph, record.region.graph
        if record.order is None or graph.edges is not old.edges \
                or len(graph.nodes) != len(old.nodes):
            return False
        pairs = [(was, now) for was, now in zip(old.nodes, graph.nodes, strict=True) if now is not was]
        if len(pairs) * 4 > len(graph.nodes) or any(now.id != was.id for was, now in pairs):
            return False   # many changes, or ids in new places (the node order counts)
        changed = [now for _, now in pairs]
        new = _MainRecord(self, record)   # what `record` holds, node by node, to be patched
        checked = self._recheck(changed, record, new)
        if checked is None:
            return False
        # Everything as the last pass left it, but for what the changed nodes' checks gave.
        was, before, result = record.region, record.region.result, self.result
        for name in _BY_PATH:
            getattr(result, name).update(getattr(before, name))
        result.order.update(before.order)
        for name in _COUNTERS:
            setattr(result, name, getattr(before, name))
        for node in changed:
            result.params.pop(node.id, None)
        result.params.update(checked.params)
        self.outputs = dict(was.outputs)
        # Re-infer in topological order from the changed nodes, as far as their outputs change.
        position, consumers, incoming = record.position(), record.consumers(), record.incoming
        queue = [position[node.id] for node in changed]
        heapq.heapify(queue)
        queued = set(queue)
        while queue:
            node_id = record.order[heapq.heappop(queue)]
            node = graph.node(node_id)
            self._forget(node_id, bool(node.regions or old.node(node_id).regions), new)
            if node_id not in new.check_broken:
                self.broken.discard(node_id)
                self._infer_recorded(node, incoming, new)
            if self.outputs.get(node_id) != was.outputs.get(node_id) or \
                    (node_id in self.broken) != (node_id in was.broken):
                for consumer in consumers.get(node_id, ()):
                    if position[consumer] not in queued:
                        queued.add(position[consumer])
                        heapq.heappush(queue, position[consumer])
        # "Feeds nothing" depends on the wires (the same), brokenness and the node's kind.
        changed_ids = {node.id for node in changed}
        if self.broken == was.broken and not any(d.node in changed_ids for d in record.unused) \
                and all(self.specs.get(n) is was.specs.get(n) for n in changed_ids):
            new.unused = record.unused
        else:
            start = len(result.diagnostics)
            self.report_unused(incoming)
            new.unused = tuple(result.diagnostics[start:])
        # The diagnostics in the order a full pass reports them: checks in node order, then
        # inferences in topological order, then unused nodes.
        index = record.index()
        result.diagnostics[:] = [
            *(d for n in sorted(new.check_diags, key=index.__getitem__) for d in new.check_diags[n]),
            *(d for n in sorted(new.infer_diags, key=position.__getitem__) for d in new.infer_diags[n]),
            *new.unused]
        self.memo._main = new
        self.memo.hits += len(graph.nodes) - len(changed) + len(record.order) - len(queued)
        self.memo.patches += 1
        return True

    def _recheck(self, nodes: list[Node], record: _MainRecord, new: _MainRecord) -> Analysis | None:
        """Check `nodes` again on this region's tables as `record` left them, noting in `new`
        what the checks gave. Their params and diagnostics go to the `Analysis` returned, kept
        apart until the patch knows the wires hold: None when a node's ports changed (its wires
        may now be judged differently), with the tables left empty for `run`."""
        was = record.region
        self.specs, self.ports, self.port_names = dict(was.specs), dict(was.ports), dict(was.port_names)
        self.broken = set(was.broken)
        result, checked = self.result, Analysis()
        self.result = checked
        try:
            for node in nodes:
                for table in (self.specs, self.ports, self.port_names):
                    table.pop(node.id, None)
                self.broken.discard(node.id)
                new.check_broken.discard(node.id)
                new.check_diags.pop(node.id, None)
                start = len(checked.diagnostics)
                self.check_node(node)
                if len(checked.diagnostics) > start:
                    new.check_diags[node.id] = tuple(checked.diagnostics[start:])
                if node.id in self.broken:
                    new.check_broken.add(node.id)
                if self.port_names.get(node.id) != was.port_names.get(node.id):
                    self.specs, self.ports, self.port_names, self.broken = {}, {}, {}, set()
                    return None
        finally:
            self.result = result
        return checked

    def _forget(self, node_id: str, has_bodies: bool, record: _MainRecord) -> None:
        """Take back what the last pass's inference of `node_id` added (its bodies' included)."""
        result = self.result
        self.outputs.pop(node_id, None)
        for name in _INFERRED:
            getattr(result, name).pop(node_id, None)
        record.infer_diags.pop(node_id, None)
        for name, delta in record.deltas.pop(node_id, ()):
            setattr(result, name, getattr(result, name) - delta)
        if has_bodies:   # everything under "node_id/": written while its bodies were analysed
            inside = node_id + PATH_SEP
            for table in (*(getattr(result, name) for name in _BY_PATH), result.order):
                for path in [p for p in table if p.startswith(inside)]:
                    del table[path]

    def check_node(self, node: Node) -> None:
        spec = lookup(node.type)
        if spec is None:
            self.report("unknown_block", f"unknown block type {node.type!r}", node.id)
            self.broken.add(node.id)
            return
        self.specs[node.id] = spec
        by_name, defaults, facts, _ = _spec_info(spec)
        params = dict(defaults)   # resolved: the defaults, overridden by the node's own values
        if node.params:
            for name, value in node.params.items():
                param = by_name.get(name)
                if param is None:
                    self.report("unknown_param", f"{spec.title} has no param {name!r}; it is ignored",
                                node.id, param=name, severity="warning")
                    params[name] = value
                else:
                    params[name] = param.coerce(value)
            for name, code, message in param_problems(spec, node):
                self.report(code, message, node.id, param=name)
                self.broken.add(node.id)
        self.result.params[self.prefix + node.id] = params
        if not self.check_placement(node, spec):
            return
        if facts is None:   # dynamic ports; fixed ones are known once per spec
            try:
                facts = _port_facts(spec.port_lists(node))
            except Exception as e:  # a dynamic port rule given nonsense params
                self.report("bad_param", f"cannot work out its ports: {e}", node.id)
                self.broken.add(node.id)
                return
        ports, names, clash = facts
        # A body input named "cond" or "count", or a state named "iterations", gives the node
        # two ports of one name: one wire then fed both, or one variable held both results.
        if clash is not None:
            self.report("region_signature", f"{self.title(node)} would have two ports named "
                        f"{clash!r}; rename its body's {clash!r}", node.id, port=clash)
            self.broken.add(node.id)
            return
        self.ports[node.id] = ports
        self.port_names[node.id] = names

    def check_placement(self, node: Node, spec: BlockSpec) -> bool:
        """Whether a structural block (input, output, body boundary, loop, branch) stands where
        it may and holds the bodies it needs; False when it gets no ports (a broken signature)."""
        in_regions = self.boundary is not None
        if spec.kind in ("input", "output") and in_regions:
            self.report("misplaced_block", f"{spec.title} belongs in the main graph; inside a body use "
                        "Body input / Body output", node.id)
            self.broken.add(node.id)
        if spec.kind in ("body_input", "body_output") and not in_regions:
            self.report("misplaced_block", f"{spec.title} only makes sense inside a loop or branch "
                        "body", node.id)
            self.broken.add(node.id)
        for name in spec.regions:
            if name not in node.regions:
                self.report("region_signature", f"{self.title(node)} has no {name!r} body", node.id)
                self.broken.add(node.id)
        # The body inputs and outputs of a loop or branch give it its ports and types, so their
        # params (role, state, shape) are checked here, before anything relies on them: a bad one
        # is the root cause, not the missing ports or odd shapes it would cause out here.
        for rname in spec.regions:
            for inner in getattr(node.regions.get(rname), "nodes", ()):
                inner_spec = lookup(inner.type)
                if inner_spec is None or inner_spec.kind not in ("body_input", "body_output"):
                    continue
                for name, code, message in param_problems(inner_spec, inner):
                    self.report(code, message, f"{node.id}{PATH_SEP}{rname}{PATH_SEP}{inner.id}",
                                param=name)
                    self.broken.add(node.id)
        # No ports for a broken signature: wires to and from it are not judged against it.
        return not (node.id in self.broken and spec.regions)

    def check_edges(self) -> dict[str, dict[str, Edge]]:
        incoming: dict[str, dict[str, Edge]] = {}
        names = self.port_names
        for edge in self.graph.edges:
            (src, out), (dst, inp) = edge.src, edge.dst
            if src in names and out not in names[src][1]:
                self.report("unknown_port", f"{self.title(self.graph.node(src))} has no output {out!r}",
                            dst, port=inp)
                self.broken.add(dst)
                continue
            if dst in names and inp not in names[dst][0]:
                self.report("unknown_port", f"{self.title(self.graph.node(dst))} has no input {inp!r}",
                            dst, port=inp)
                continue
            ports = incoming.setdefault(dst, {})
            if inp in ports:
                self.report("duplicate_input", f"input {inp!r} is wired twice (from {ports[inp].src[0]} "
                            f"and {src}); an input takes one wire", dst, port=inp)
                self.broken.add(dst)
                continue
            ports[inp] = edge
        return incoming

    def toposort(self, incoming: Mapping[str, Mapping[str, Edge]]) -> list[str]:
        """Kahn's algorithm, ties broken by insertion order so generated code is stable."""
        position = {n.id: i for i, n in enumerate(self.graph.nodes)}
        # Nodes are mostly added after what feeds them. When every wire runs forward in
        # insertion order, that order is the answer: Kahn's algorithm, always taking the
        # earliest ready node, would give it too.
        if all(position[e.src[0]] < position[dst] for dst, ports in incoming.items()
               for e in ports.values()):
            return list(position)
        pending = {n.id: _sources(incoming.get(n.id)) for n in self.graph.nodes}
        consumers: dict[str, set[str]] = {}
        for dst, ports in incoming.items():
            for e in ports.values():
                consumers.setdefault(e.src[0], set()).add(dst)
        ready = [(position[i], i) for i, n in pending.items() if n == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, node_id = heapq.heappop(ready)
            order.append(node_id)
            for dst in consumers.get(node_id, ()):
                pending[dst] -= 1
                if pending[dst] == 0:
                    heapq.heappush(ready, (position[dst], dst))
        if len(order) < len(self.graph.nodes):
            stuck = [n.id for n in self.graph.nodes if pending[n.id] > 0]
            # Report the cycle once, on its first node; nodes downstream of it stay quiet.
            self.report("cycle", "wires form a cycle through " + " → ".join(stuck[:6])
                        + (" …" if len(stuck) > 6 else "") + "; use a Loop block for recurrence",
                        stuck[0])
            self.broken.update(stuck)
            order += stuck
        return order

    def input_types(self, node: Node, incoming: Mapping[str, Edge]) -> dict[str, TensorType] | None:
        """Types arriving at each connected input, or None when an upstream node is broken."""
        types: dict[str, TensorType] = {}
        missing = []
        for port in self.ports[node.id][0]:
            edge = incoming.get(port.name)
            if edge is None:
                if not port.optional:
                    missing.append(port.name)
                continue
            src, out = edge.src
            if src in self.broken:
                return None
            t = self.outputs.get(src, _NONE).get(out)
            if t is None:
                return None
            types[port.name] = t
        if missing:
            self.report("missing_input", f"{self.title(node)} needs input "
                        + ", ".join(repr(m) for m in missing), node.id, port=missing[0])
            return None
        return types

    def infer(self, node: Node, incoming: Mapping[str, Edge]) -> None:
        spec = self.specs[node.id]
        path = self.prefix + node.id
        params = self.result.params[path]
        types = self.input_types(node, incoming)
        if types is None:
            self.broken.add(node.id)
            return
        if self.memo is not None and spec.kind not in _NOT_MEMOISED:
            self._infer_memo(node, spec, path, params, types)
        else:
            self.infer_types(node, spec, path, params, types)

    def infer_types(self, node: Node, spec: BlockSpec, path: str, params: Mapping[str, Any],
                    types: dict[str, TensorType]) -> None:
        """Everything a node gives once its input types are known."""
        self.result.inputs[path] = types
        try:
            outs = self.outputs_of(node, spec, params, types)
        except ShapeError as e:
            # Shape rules don't know the node; say which one, so the message stands on its own.
            self.report(e.code, f"{self.title(node)}: {e.message}", node.id, port=e.port,
                        param=e.param)
            self.broken.add(node.id)
            return
        except (ArithmeticError, ValueError, TypeError, KeyError, IndexError) as e:
            self.report("shape_mismatch", f"{spec.title} cannot take these inputs "
                        f"({', '.join(map(str, types.values()))}): {e}", node.id)
            self.broken.add(node.id)
            return
        if outs is None:
            self.broken.add(node.id)
            return
        out_ports = self.ports[node.id][1]
        if len(outs) != len(out_ports):   # a spec whose port rule and shape rule disagree
            self.report("shape_mismatch", f"{self.title(node)}: gives {len(outs)} results for "
                        f"{len(out_ports)} output ports", node.id)
            self.broken.add(node.id)
            return
        named: dict[str, TensorType] = {}
        sizes = []
        for p, t in zip(out_ports, outs, strict=True):
            # The batch dim stays first. Broadcasting (B,) with an unbatched (3, 1) gives (3, B),
            # and matmul of (B, K) with (B, K, N) gives (B, B, N); rules that then read the
            # symbol "B" as a size crashed, or counted values wrongly.
            if BATCH in t.shape[1:]:
                self.report("shape_mismatch", f"{self.title(node)}: output {p.name} would be "
                            f"{fmt_shape(t.shape)}, with the batch dim moved off the front", node.id,
                            port=p.name)
                self.broken.add(node.id)
                return
            named[p.name] = t
            sizes.append(_numel(t.shape))
        result = self.result
        self.outputs[node.id] = result.outputs[path] = named
        in_types = list(types.values())
        total = sum(sizes)
        result.activation_values += total * self.runs
        # Compute, so a valid graph cannot keep a forward pass busy for hours (attention over a
        # million steps, a wide convolution on a big image).
        values = total
        for t in in_types:
            values += _numel(t.shape)
        macs = spec.macs(params, in_types) if spec.macs else values
        result.macs += max(macs, values) * self.runs
        if max(sizes, default=0) > MAX_ACTIVATION_VALUES:
            for p, t, size in zip(out_ports, outs, sizes, strict=True):
                if size > MAX_ACTIVATION_VALUES:
                    self.report("too_large", f"output {p.name} {fmt_shape(t.shape)} holds "
                                f"{size:,} values per sample; refusing to allocate it", node.id,
                                port=p.name)
                    self.broken.add(node.id)
        if spec.count is not None and path not in result.param_counts:
            result.param_counts[path] = spec.count(params, in_types)
        count = result.param_counts.get(path, 0)
        if count > MAX_PARAMETERS:
            self.report("too_large", f"{count:,} parameters (~{count * 4 / 2**30:.1f} GiB); refusing to "
                        "allocate them", node.id)
            self.broken.add(node.id)

    def outputs_of(self, node: Node, spec: BlockSpec, params: Mapping[str, Any],
                   types: Mapping[str, TensorType]) -> list[TensorType] | None:
        kind = spec.kind
        if kind == "input":
            return [TensorType((BATCH, *params["shape"]), params["dtype"])]
        if kind == "output":
            return []
        if kind == "body_output":
            self.results[node.id] = types["x"]
            return []
        if kind == "body_input":
            t = self.boundary.get(node.id)
            return None if t is None else [t]
        if kind == "loop":
            return _infer_loop(self, node, params, types)
        if kind == "branch":
            return _infer_branch(self, node, params, types)
        return spec.infer(params, list(types.values()), list(types))

    def report_unused(self, incoming: Mapping[str, Mapping[str, Edge]]) -> None:
        used = {e.src[0] for ports in incoming.values() for e in ports.values()}
        for node in self.graph.nodes:
            spec = self.specs.get(node.id)
            if spec and spec.kind not in ("output", "body_output") and node.id not in used \
                    and node.id not in self.broken and self.ports.get(node.id, ((), ()))[1]:
                self.report("unused", f"{self.title(node)} feeds nothing, so it has no effect", node.id,
                            severity="info")

    # -- replaying what a node gave before (see AnalysisCache) --

    def _check_node_memo(self, node: Node) -> None:
        entry = self._entries[node.id] = self.memo._entry(node, self.boundary is not None)
        if entry[2] is None:
            path = self.prefix + node.id
            before = len(self.result.diagnostics)
            self.check_node(node)
            diags = self._relative(before)
            if diags is not None:
                entry[2] = (diags, node.id in self.broken, self.specs.get(node.id),
                            self.result.params.get(path, _MISSING), self.ports.get(node.id),
                            self.port_names.get(node.id))
            return
        self.memo.hits += 1
        diags, broken, spec, params, ports, names = entry[2]
        if diags or broken:
            self._replay(node, diags, broken)
        if spec is not None:
            self.specs[node.id] = spec
        if params is not _MISSING:
            self.result.params[self.prefix + node.id] = params
        if ports is not None:
            self.ports[node.id] = ports
            self.port_names[node.id] = names

    def _infer_memo(self, node: Node, spec: BlockSpec, path: str, params: Mapping[str, Any],
                    types: dict[str, TensorType]) -> None:
        memo = self.memo
        entry = self._entries.get(node.id) or memo._entry(node, self.boundary is not None)
        key = (tuple(types.items()), self.runs)
        if entry[3] is not None and entry[3] == key:
            memo.hits += 1
            diags, broken, counters, entries, local = entry[4]
            if diags or broken:
                self._replay(node, diags, broken)
            result = self.result
            for name, delta in counters:
                setattr(result, name, getattr(result, name) + delta)
            for name, value in entries:
                getattr(result, name)[path] = value
            if local is not None:
                self.outputs[node.id] = local
            return
        memo.misses += 1
        result = self.result
        before = len(result.diagnostics)
        counters = [(name, getattr(result, name)) for name in _COUNTERS]
        entries = [(name, getattr(result, name).get(path, _MISSING)) for name in _BY_PATH]
        self.infer_types(node, spec, path, params, types)
        diags = self._relative(before)
        if diags is None:
            entry[3] = entry[4] = None
            return
        entry[3] = key
        entry[4] = (diags, node.id in self.broken,
                    tuple((name, getattr(result, name) - was) for name, was in counters
                          if getattr(result, name) != was),
                    tuple((name, value) for name, was in entries
                          if (value := getattr(result, name).get(path, _MISSING)) is not was
                          and value is not _MISSING),
                    self.outputs.get(node.id))

    def _relative(self, start: int) -> tuple | None:
        """The diagnostics reported since `start`, with node paths relative to this region
        (None if one is about something else, which is then not remembered)."""
        prefix, n = self.prefix, len(self.prefix)
        new = self.result.diagnostics[start:]
        if any(d.node is None or not d.node.startswith(prefix) for d in new):
            return None
        return tuple((d.code, d.message, d.node[n:], d.port, d.param, d.severity) for d in new)

    def _replay(self, node: Node, diags: tuple, broken: bool) -> None:
        for code, message, rel, port, param, severity in diags:
            self.result.diagnostics.append(Diagnostic(code, message, self.prefix + rel, port, param,
                                                      severity))
        if broken:
            self.broken.add(node.id)

    def param_count(self) -> int:
        """Parameters of this region's own nodes (a loop or branch counts its bodies)."""
        counts = self.result.param_counts
        return sum(counts.get(self.prefix + n.id, 0) for n in self.graph.nodes)

    def sub(self, node: Node, region: str, boundary: Mapping[str, TensorType | None],
            iterations: int = 1):
        """Analyse one body; returns its result types, or None if it has errors."""
        before = len(self.result.errors)
        sub = _Region(node.regions[region], f"{self.prefix}{node.id}{PATH_SEP}{region}{PATH_SEP}",
                      self.result, boundary, self.runs * iterations, self.memo)
        results = sub.run()
        if len(self.result.errors) > before:
            return None
        return sub, results


def param_problems(spec: BlockSpec, node: Node):
    """(param, code, message) for each param of `node` its spec refuses; unknown ones are skipped."""
    by_name = _spec_info(spec)[0]
    for name, value in node.params.items():
        param = by_name.get(name)
        problem = _check(param, value) if param is not None else None
        if problem:
            code = "param_out_of_range" if problem.startswith(("must be at", "has a dim")) \
                else "bad_param"
            yield name, code, f"{name} {problem} (got {_short_repr(value)})"


_CHECKS: dict[tuple, tuple] = {}


def _check(param: Param, value: Any) -> str | None:
    """`param.check(value)`, remembered for plain values: the same few values (a width of 16,
    "relu", a shape) are checked over and over. The key holds the value's type, and a shape's
    dims are all exact ints, so values that compare equal but check differently (1, 1.0 and
    True) never share an entry."""
    kind = type(value)
    if not (kind in (int, float, str, bool) or value is None
            or (kind is tuple and all(type(d) is int for d in value))):
        return param.check(value)
    key = (id(param), kind, value)
    hit = _CHECKS.get(key)
    if hit is not None and hit[0] is param:
        return hit[1]
    problem = param.check(value)
    if len(_CHECKS) > 8192:
        _CHECKS.clear()
    _CHECKS[key] = (param, problem)
    return problem


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def boundary_nodes(region: Graph, kind: str) -> list[Node]:
    return [n for n in region.nodes if n.type == kind]


def _role(node: Node, default: str) -> str:
    role = node.params.get("role", default)
    return role if isinstance(role, str) else default


def _infer_loop(r: _Region, node: Node, p: Mapping[str, Any], types: Mapping[str, TensorType]):
    body = node.regions["body"]
    mode = p["mode"]
    ins = boundary_nodes(body, "body_input")
    outs = boundary_nodes(body, "body_output")
    states = {n.id for n in ins if _role(n, "context") == "state"}
    bad = None
    for n in ins:
        if _role(n, "context") == "sequence" and mode != "scan":
            bad = f"body input {n.id!r} is a sequence, which only a scan loop has"
    updated: dict[str, str] = {}
    for n in outs:
        role = _role(n, "output")
        if role == "state":
            target = n.params.get("state", "")
            if target not in states:
                bad = f"body output {n.id!r} updates {target!r}, which is not a state body input"
            elif target in updated:
                bad = f"state {target!r} is updated by both {updated[target]!r} and {n.id!r}"
            updated[target] = n.id
        elif role == "halt" and mode != "while":
            bad = f"body output {n.id!r} is a halt score, which only a while loop has"
    for s in sorted(states - set(updated)):
        bad = f"state {s!r} is never updated: add a Body output with role state and state={s!r}"
    if mode == "while" and p["halt"] == "per_sample":
        for n in outs:
            if _role(n, "output") == "output":
                bad = (f"body output {n.id!r}: a per-sample while loop returns only its states, so each "
                       "sample keeps the value of its own last step; make it a state")
    halts = [n for n in outs if _role(n, "output") == "halt"]
    if mode == "while" and len(halts) != 1:
        bad = "a while loop's body needs exactly one Body output with role halt"
    if not any(_role(n, "context") == "sequence" for n in ins) and mode == "scan":
        bad = "a scan loop's body needs a Body input with role sequence"
    if not outs:   # the generated `= self.body(...)` with no targets was a SyntaxError
        bad = "the body has no Body output, so the loop would compute nothing"
    if bad:
        r.report("region_signature", bad, node.id)
        return None

    # A while loop counts the steps of each sample, zeros the size of a batched input.
    if mode == "while" and not any(t.batched for t in types.values()):
        r.report("region_signature", "a while loop counts steps per sample, so it needs at least "
                 "one connected batched input", node.id)
        return None
    dim = p["dim"]
    boundary: dict[str, TensorType | None] = {}
    length = None
    for n in ins:
        outer = types.get(n.id)
        role = _role(n, "context")
        if role == "state" and outer is None:
            # The zeros take their batch size from a batched input (an unbatched one gave them
            # its own first dim).
            if not any(t.batched for t in types.values()):
                r.report("region_signature", f"state {n.id!r} starts at zeros, which needs at least one "
                         "connected batched input to know the batch size", node.id, port=n.id)
                return None
            shape = n.params.get("shape", (16,))
            outer = TensorType((BATCH, *shape))
        if role == "sequence":
            if outer.rank <= dim:
                r.report("shape_mismatch", f"sequence {n.id!r} {fmt_shape(outer.shape)} has no dim {dim} "
                         "to scan over", node.id, port=n.id)
                return None
            if length is not None and outer.shape[dim] != length:
                r.report("shape_mismatch", f"sequences differ in length ({length} and "
                         f"{outer.shape[dim]})", node.id, port=n.id)
                return None
            length = outer.shape[dim]
            outer = outer.with_shape(outer.shape[:dim] + outer.shape[dim + 1:])
        # A per-sample while loop masks its states sample by sample.
        if mode == "while" and p["halt"] == "per_sample" and role == "state" and not outer.batched:
            r.report("shape_mismatch", f"a per-sample while loop halts each sample on its own, so "
                     f"state {n.id!r} must be batched, not {outer}", node.id, port=n.id)
            return None
        boundary[n.id] = outer
    iterations = loop_iterations(p, length)
    if r.runs * iterations > MAX_LOOP_STEPS:
        r.report("too_large", f"its body would run {r.runs * iterations:,} times per forward pass "
                 f"(loops nested inside each other multiply), more than {MAX_LOOP_STEPS:,}", node.id)
        return None
    analysed = r.sub(node, "body", boundary, iterations)
    if analysed is None:
        return None
    sub, results = analysed
    for n in outs:
        if _role(n, "output") == "state":
            target = n.params["state"]
            if results.get(n.id) != boundary[target]:
                r.report("region_signature", f"state {target!r} enters the body as "
                         f"{boundary[target]} but leaves it as {results.get(n.id)}", node.id, port=target)
                return None
        if _role(n, "output") == "halt" and results[n.id].dtype != "float":
            r.report("type_mismatch", f"a halt score must be float, not {results[n.id]}", node.id)
            return None   # the batch halt's .mean() refuses integer tensors
        if _role(n, "output") == "halt" and p["halt"] == "per_sample":
            t = results[n.id]
            if t.shape not in ((BATCH,), (BATCH, 1)):
                r.report("shape_mismatch", f"a per-sample halt score must be (B,) or (B, 1), not {t}",
                         node.id)
                return None
    # Bodies count once when weights are shared, once per iteration otherwise.
    body_count = sub.param_count()
    r.result.param_counts[r.prefix + node.id] = body_count * (1 if p["share_weights"] else
                                                              loop_iterations(p, length))
    out_types: list[TensorType] = [boundary[n.id] for n in ins if _role(n, "context") == "state"]
    for n in outs:
        if _role(n, "output") == "output":
            t = results[n.id]
            if mode == "scan":
                if t.rank < dim:   # torch.stack(steps, dim) needs dim <= rank
                    r.report("shape_mismatch", f"scan output {n.id!r} {t} has no dim {dim} to stack "
                             "its steps along", node.id, port=n.id)
                    return None
                t = t.with_shape((*t.shape[:dim], length, *t.shape[dim:]))
            out_types.append(t)
    if mode == "while":
        out_types.append(TensorType((BATCH,)))
    return out_types


def loop_iterations(p: Mapping[str, Any], length: int | None) -> int:
    """The static iteration count used for per-iteration weights."""
    if p["mode"] == "scan":
        return int(length)
    if p["mode"] == "repeat" and p["count_from"] == "param":
        return p["count"]
    return p["max_iters"]


def _infer_branch(r: _Region, node: Node, p: Mapping[str, Any], types: Mapping[str, TensorType]):
    then, other = node.regions["then"], node.regions["else"]
    sig = {name: ([n.id for n in boundary_nodes(g, "body_input")],
                  [n.id for n in boundary_nodes(g, "body_output")]) for name, g in
           (("then", then), ("else", other))}
    if sig["then"] != sig["else"]:
        r.report("region_signature", f"then takes {sig['then'][0]} and returns {sig['then'][1]}, but "
                 f"else takes {sig['else'][0]} and returns {sig['else'][1]}; both bodies need the same "
                 "inputs and outputs", node.id)
        return None
    for g in (then, other):
        for n in boundary_nodes(g, "body_input") + boundary_nodes(g, "body_output"):
            role = _role(n, "context" if n.type == "body_input" else "output")
            if role not in ("context", "output"):
                r.report("region_signature", f"branch bodies only take context inputs and give plain "
                         f"outputs; {n.id!r} has role {role!r}", node.id)
                return None
    if not sig["then"][1]:   # the generated `= self.then(...)` with no targets was a SyntaxError
        r.report("region_signature", "the bodies have no Body output, so the branch would compute "
                 "nothing", node.id)
        return None
    cond = types["cond"]
    if cond.dtype != "float":   # the hard branch's cond.mean() refuses integer tensors
        r.report("type_mismatch", f"the condition must be float, not {cond}", node.id, port="cond")
        return None
    if p["mode"] == "per_sample" and cond.shape not in ((BATCH,), (BATCH, 1)):
        r.report("shape_mismatch", f"a per-sample condition must be (B,) or (B, 1), not {cond}",
                 node.id, port="cond")
        return None
    boundary = {n.id: types.get(n.id) for n in boundary_nodes(then, "body_input")}
    both = [r.sub(node, name, boundary) for name in ("then", "else")]
    if None in both:
        return None
    (sub_then, res_then), (sub_else, res_else) = both
    outs = []
    for n in boundary_nodes(then, "body_output"):
        a, b = res_then.get(n.id), res_else.get(n.id)
        if a != b:
            r.report("region_signature", f"output {n.id!r} is {a} from then but {b} from else",
                     node.id, port=n.id)
            return None
        if p["mode"] == "per_sample" and not a.batched:
            r.report("shape_mismatch", f"a per-sample branch mixes batched outputs; {n.id!r} is {a}",
                     node.id, port=n.id)
            return None
        outs.append(a)
    r.result.param_counts[r.prefix + node.id] = sub_then.param_count() + sub_else.param_count()
    return outs
