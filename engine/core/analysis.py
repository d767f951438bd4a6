"""Validation and shape inference in one pass: diagnostics, port types, parameter counts.

`analyze(graph)` walks the graph (and, recursively, every loop and branch body) in
topological order, giving every port a `TensorType` with a symbolic batch dim and every
node its parameter count. It never raises on a user's mistake: problems come back as
`Diagnostic` records. Only root causes are reported - a node whose inputs are already
broken stays quiet, so one bad block lights up once, not all the way downstream.

A region's pass (`_Region.run`) reads in four steps: check each node on its own, check the
wires and sort the nodes, infer each node's outputs from its inputs, report nodes that feed
nothing. Loops and branches look up their per-mode rules (`LOOP_RULES`, `BRANCH_RULES`) by
the names of `nodes.control`'s tables. `engine.incremental.analysis` subclasses the region
pass to replay what unchanged nodes gave before; this module knows nothing of it.

Pure: no torch.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple

from nodes import control, lookup
from nodes.control import (
    BODY_INPUT,
    BODY_OUTPUT,
    HALT,
    OUTPUT,
    OWN_WEIGHTS,
    SEQUENCE,
    STATE_IN,
    STATE_OUT,
    role,
)
from nodes.spec import BlockSpec, Param, Port
from nodes.types import BATCH, ShapeError, TensorType, fmt_shape, numel

from .graph import ID_PATTERN, MAX_EXPANDED_NODES, PATH_SEP, Edge, Function, Graph, Node

Params = Mapping[str, Any]          # a node's params, resolved
Types = Mapping[str, TensorType]    # by port (or by Body input id)

SEVERITIES = ("error", "warning", "info")
# Caps, so that whatever validates can be allocated and run on a 24 GiB machine at batch size 2
# (tests/test_fuzz_caps.py): 2 GiB of weights, at most 4 GiB of activations, and no loop nest
# that runs for hours.
MAX_PARAMETERS = 1 << 29          # in the whole model
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


def validate(graph: Graph) -> list[Diagnostic]:
    return analyze(graph).diagnostics


def analyze(graph: Graph) -> Analysis:
    """The analysis of `graph`: its diagnostics, port types, params and counts."""
    result = Analysis()
    top = _Region(graph, "", result, boundary=None)
    top.functions = FunctionTable(graph.functions)
    expanded = top.functions.expanded(graph)
    if expanded > MAX_EXPANDED_NODES:   # each call analysed at its site: refuse, don't expand
        result.diagnostics.append(Diagnostic(
            "too_large", f"the calls of this graph's functions expand to more than "
            f"{MAX_EXPANDED_NODES:,} blocks; call them fewer times or make them smaller"))
        return result
    top.run()
    _check_whole_graph(top)
    return result


def _check_whole_graph(top: _Region) -> None:
    """The checks of the model as a whole, after the main graph's pass."""
    result = top.result
    # Per-node caps hold each node; these hold their sum, reported only when no node already
    # is too large on its own (root causes only).
    if not any(d.code == "too_large" for d in result.diagnostics):
        # Every count, bodies' included, bounds the model's total and is quicker to add up.
        if sum(result.param_counts.values()) > MAX_PARAMETERS \
                and result.total_params > MAX_PARAMETERS:
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
    if "output" not in map(attrgetter("kind"), top.specs.values()):   # runs after every edit
        result.diagnostics.append(Diagnostic("no_output", "the graph has no Output block, so the "
                                             "model would return nothing"))


_NO_WIRES: Mapping[str, Edge] = {}
_NONE: Mapping[str, TensorType] = {}


class FunctionTable:
    """The main graph's functions, and what is worked out about them once per analysis:
    which call themselves (the cycle, for the diagnostic), and each one's size with every
    call expanded."""

    def __init__(self, functions: Mapping[str, Function]):
        self.functions = functions
        self.cycles: dict[str, list[str]] = {}    # function → a cycle it is on or reaches
        self.sizes: dict[str, int] = {}
        for name in functions:
            self._visit(name, [])

    def _visit(self, name: str, stack: list[str]) -> int:
        if name in self.sizes:
            return self.sizes[name]
        if name in stack:   # a cycle: every function on the stack from `name` on is on it
            cycle = [*stack[stack.index(name):], name]
            for f in stack:
                self.cycles.setdefault(f, cycle)
            return 0
        stack.append(name)
        size = 0
        for _, node in self.functions[name].body.walk():
            size += 1
            callee = node.params.get("function") if node.type == "call" else None
            if isinstance(callee, str) and callee in self.functions:
                size += self._visit(callee, stack)
                if callee in self.cycles:
                    self.cycles.setdefault(name, self.cycles[callee])
        stack.pop()
        self.sizes[name] = min(size, MAX_EXPANDED_NODES + 1)
        return self.sizes[name]


    def expanded(self, graph: Graph) -> int:
        """How many blocks of function bodies the calls in `graph` expand to (what walks and
        the analysis visit at each call), up to just past the cap."""
        total = 0
        for _, region in graph.regions(functions={}):
            for n in region.nodes:
                callee = n.params.get("function") if n.type == "call" else None
                if isinstance(callee, str):
                    total += self.sizes.get(callee, 0)
                    if total > MAX_EXPANDED_NODES:
                        break
        return total


_NO_FUNCTIONS = FunctionTable({})


class _Region:
    """The pass over one graph or body; `boundary` gives a body's inputs their types (None
    for the main graph). `run` calls the steps below in order; each is a method, so that
    `engine.incremental.analysis` can replay a step where nothing it depends on changed."""

    def __init__(self, graph: Graph, prefix: str, result: Analysis,
                 boundary: Mapping[str, TensorType | None] | None, runs: int = 1):
        self.graph, self.prefix, self.result, self.boundary = graph, prefix, result, boundary
        self.runs = runs   # how often this region runs per forward pass (loops nest multiply)
        self.specs: dict[str, BlockSpec] = {}
        self.ports: dict[str, tuple[tuple[Port, ...], tuple[Port, ...]]] = {}
        self.port_names: dict[str, tuple[frozenset[str], frozenset[str]]] = {}   # same keys
        self.outputs: dict[str, dict[str, TensorType]] = {}   # this region's part of result.outputs
        self.broken: set[str] = set()   # nodes whose outputs are unknown (already reported)
        self.results: dict[str, TensorType | None] = {}   # body_output id -> type
        # Set by whoever starts the pass (`analyze`, `sub`): the main graph's functions, and
        # the function whose body this is ("" elsewhere), which diagnostics inside it name.
        self.functions: FunctionTable = _NO_FUNCTIONS
        self.function = ""
        self.groups: dict[str, tuple[str, str, tuple]] = {}   # weight group → (call, function, types)

    # -- reporting --

    def report(self, code: str, message: str, node: str | None = None, *, port: str | None = None,
               param: str | None = None, severity: str = "error") -> None:
        path = self.prefix + node if node else (self.prefix.rstrip(PATH_SEP) or None)
        if self.function:
            message += f" (in function {self.function!r})"
        self.result.diagnostics.append(Diagnostic(code, message, path, port, param, severity))

    def title(self, node: Node) -> str:
        spec = self.specs.get(node.id)
        kind = spec.title if spec else node.type
        # A label alone may not find the node in a file or a traceback; add the id then.
        return f"{kind} {node.name!r}" + (f" ({node.id})" if node.label else "")

    # -- the pass --

    def run(self) -> dict[str, TensorType | None]:
        """Analyse the region; returns its Body outputs' types (empty for the main graph)."""
        self.check_nodes()
        incoming, order = self.wire()
        self.result.order[self.prefix] = order
        self.infer_nodes(order, incoming)
        self.check_ties()
        self.report_unused(incoming)
        return self.results

    def sub(self, node: Node, region: str, boundary: Mapping[str, TensorType | None],
            iterations: int = 1, graph: Graph | None = None,
            ) -> tuple[_Region, dict[str, TensorType | None]] | None:
        """Analyse one body (a function's, for a call: `graph` given, `region` the function's
        name); returns its pass and its result types, or None if it has errors."""
        before = len(self.result.errors)
        sub = self.body(node.regions[region] if graph is None else graph,
                        f"{self.prefix}{node.id}{PATH_SEP}{region}{PATH_SEP}",
                        boundary, self.runs * iterations)
        sub.functions = self.functions
        sub.function = region if graph is not None else self.function
        results = sub.run()
        if len(self.result.errors) > before:
            return None
        return sub, results

    def body(self, graph: Graph, prefix: str, boundary: Mapping[str, TensorType | None],
             runs: int) -> _Region:
        """The pass over a body of one of this region's nodes."""
        return _Region(graph, prefix, self.result, boundary, runs)

    def param_count(self) -> int:
        """Parameters of this region's own nodes (a loop or branch counts its bodies)."""
        counts = self.result.param_counts
        return sum(counts.get(self.prefix + n.id, 0) for n in self.graph.nodes)

    # -- step 1: each node on its own --

    def check_nodes(self) -> None:
        for node in self.graph.nodes:
            self.check_node(node)

    def check_node(self, node: Node) -> None:
        """The node's type, params and ports, into `specs`, `result.params` and `ports`."""
        spec = lookup(node.type)
        if spec is None:
            self.report("unknown_block", f"unknown block type {node.type!r}", node.id)
            self.broken.add(node.id)
            return
        self.specs[node.id] = spec
        facts = _spec_facts(spec)
        params = dict(facts.defaults)   # resolved: the defaults, overridden by the node's own values
        if node.params:
            for name, value in node.params.items():
                param = facts.params.get(name)
                if param is None:
                    # An error, not a warning: a misspelt option would silently mean the default.
                    self.report("unknown_param", f"{spec.title} has no param {name!r}"
                                + did_you_mean(name, facts.params), node.id, param=name)
                    self.broken.add(node.id)
                    params[name] = value
                else:
                    params[name] = param.coerce(value)
            for name, code, message in param_problems(spec, node):
                self.report(code, message, node.id, param=name)
                self.broken.add(node.id)
        self.result.params[self.prefix + node.id] = params
        if not self.check_placement(node, spec):
            return
        ports = facts.ports
        if spec.kind == "call":
            body = self.check_call(node, params)
            if body is None:
                self.broken.add(node.id)
                return
            ports = _port_facts(control.function_ports(body))
        elif ports is None:   # dynamic ports; fixed ones are known once per spec
            try:
                ports = _port_facts(spec.port_lists(node))
            except Exception as e:  # a dynamic port rule given nonsense params
                self.report("bad_param", f"cannot work out its ports: {e}", node.id)
                self.broken.add(node.id)
                return
        # A body input named "cond" or "count", or a state named "iterations", gives the node
        # two ports of one name: one wire then fed both, or one variable held both results.
        if ports.clash is not None:
            self.report("region_signature", f"{self.title(node)} would have two ports named "
                        f"{ports.clash!r}; rename its body's {ports.clash!r}", node.id,
                        port=ports.clash)
            self.broken.add(node.id)
            return
        self.ports[node.id] = ports.ports
        self.port_names[node.id] = ports.names

    def check_call(self, node: Node, params: Params) -> Graph | None:
        """The body of the function a Call names, once its name, weights and signature check;
        None (reported) when it has no ports to give."""
        table = self.functions
        name, weights = params["function"], params["weights"]
        if node.id in self.broken or not isinstance(name, str) or not isinstance(weights, str):
            return None   # a bad param, already reported
        if weights != OWN_WEIGHTS and not ID_PATTERN.fullmatch(weights):
            self.report("bad_param", f"weights must be {OWN_WEIGHTS!r} or a weight group name "
                        f"(letters, digits and _), not {weights!r}", node.id, param="weights")
            return None
        if name not in table.functions:
            known = table.functions
            fix = did_you_mean(name, known) if known else "; define one first (group blocks "                 "into a function)"
            self.report("unknown_function", f"{self.title(node)} calls {name!r}, which this graph "
                        f"does not define" + fix, node.id, param="function")
            return None
        if name in table.cycles:
            cycle = table.cycles[name]
            how = "calls itself" if cycle[0] == name else f"calls {cycle[0]!r}, which calls itself"
            self.report("recursion", f"function {name!r} {how} ({' → '.join(cycle)}); a function "
                        "cannot call itself: repeat with a Loop instead", node.id, param="function")
            return None
        if table.sizes.get(name, 0) > MAX_EXPANDED_NODES:
            self.report("too_large", f"function {name!r} holds more than {MAX_EXPANDED_NODES:,} "
                        "blocks with its calls expanded", node.id, param="function")
            return None
        body = table.functions[name].body
        for n in control.boundary(body, BODY_INPUT) + control.boundary(body, BODY_OUTPUT):
            admitted = control.FUNCTION_INPUT_ROLES if n.type == BODY_INPUT \
                else control.FUNCTION_OUTPUT_ROLES
            if role(n) not in admitted:
                self.report("region_signature", f"function {name!r}: its bodies take only context "
                            f"inputs and give plain outputs; {n.id!r} has role {role(n)!r}: set "
                            "it to the default", node.id)
                return None
        if not control.boundary(body, BODY_OUTPUT):
            self.report("region_signature", f"function {name!r} has no Body output, so a call "
                        "would compute nothing; add one", node.id)
            return None
        return body

    def check_placement(self, node: Node, spec: BlockSpec) -> bool:
        """Whether a structural block (input, output, body boundary, loop, branch) stands where
        it may and holds the bodies it needs; False when it gets no ports (a broken signature)."""
        in_regions = self.boundary is not None
        if spec.kind in ("input", "output") and in_regions:
            self.report("misplaced_block", f"{spec.title} belongs in the main graph; inside a body use "
                        "Body input / Body output", node.id)
            self.broken.add(node.id)
        if spec.kind in (BODY_INPUT, BODY_OUTPUT) and not in_regions:
            self.report("misplaced_block", f"{spec.title} only makes sense inside a loop, branch "
                        "or function body", node.id)
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
                if inner_spec is None or inner_spec.kind not in (BODY_INPUT, BODY_OUTPUT):
                    continue
                for name, code, message in param_problems(inner_spec, inner):
                    self.report(code, message, f"{node.id}{PATH_SEP}{rname}{PATH_SEP}{inner.id}",
                                param=name)
                    self.broken.add(node.id)
        # No ports for a broken signature: wires to and from it are not judged against it.
        return not (node.id in self.broken and spec.regions)

    # -- step 2: the wires and the order --

    def wire(self) -> tuple[dict[str, dict[str, Edge]], list[str]]:
        """Each node's incoming edges by port, and the order to infer the nodes in."""
        incoming = self.check_edges()
        return incoming, self.toposort(incoming)

    def check_edges(self) -> dict[str, dict[str, Edge]]:
        incoming: dict[str, dict[str, Edge]] = {}
        names = self.port_names
        for edge in self.graph.edges:
            (src, out), (dst, inp) = edge.src, edge.dst
            if src in names and out not in names[src][1]:
                self.report("unknown_port", f"{self.title(self.graph.node(src))} has no output {out!r}"
                            + did_you_mean(out, names[src][1]), dst, port=inp)
                self.broken.add(dst)
                continue
            if dst in names and inp not in names[dst][0]:
                self.report("unknown_port", f"{self.title(self.graph.node(dst))} has no input {inp!r}"
                            + did_you_mean(inp, names[dst][0]), dst, port=inp)
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

    # -- step 3: types, in topological order --

    def infer_nodes(self, order: list[str], incoming: Mapping[str, Mapping[str, Edge]]) -> None:
        for node_id in order:
            if node_id not in self.broken:
                self.infer(self.graph.node(node_id), incoming.get(node_id, _NO_WIRES))

    def infer(self, node: Node, incoming: Mapping[str, Edge]) -> None:
        """Everything the node gives, once the types arriving at its inputs are known."""
        types = self.input_types(node, incoming)
        if types is None:
            self.broken.add(node.id)
            return
        path = self.prefix + node.id
        self.infer_types(node, self.specs[node.id], path, self.result.params[path], types)

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

    def infer_types(self, node: Node, spec: BlockSpec, path: str, params: Params,
                    types: dict[str, TensorType]) -> None:
        """The node's output types from its input types, with what they cost."""
        self.result.inputs[path] = types
        if spec.id_inputs and not self.ids_in_range(node, spec, params, types):
            self.broken.add(node.id)
            return
        try:
            rule = _STRUCTURAL.get(spec.kind)
            outs = rule(self, node, params, types) if rule else \
                spec.infer(params, list(types.values()), list(types))
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
        self.take_outputs(node, spec, path, params, types, outs)

    def ids_in_range(self, node: Node, spec: BlockSpec, params: Params,
                     types: dict[str, TensorType]) -> bool:
        """Whether ids whose range is known (Positions' 0..n-1) stay below what bounds them at
        this block's id inputs (an Embedding's vocabulary); torch would refuse them only when
        the model runs."""
        for ids in spec.id_inputs:
            t = types.get(ids.port)
            if t is None or t.high is None:
                continue
            if ids.count_param is not None:
                bound, what = params.get(ids.count_param), ids.count_param
            else:
                port, dim = ids.count_dim
                shape = types[port].shape if port in types else ()
                bound = shape[dim] if -len(shape) <= dim < len(shape) else None
                what = f"dim {dim} of {port}"
            if isinstance(bound, int) and not isinstance(bound, bool) and t.high > bound:
                self.report("param_out_of_range", f"{self.title(node)}: its {ids.port} ids run up "
                            f"to {t.high - 1}, but {what} is {bound}, so they must stay below "
                            f"{bound}", node.id, port=ids.port,
                            param=ids.count_param)
                return False
        return True

    def take_outputs(self, node: Node, spec: BlockSpec, path: str, params: Params,
                     types: dict[str, TensorType], outs: list[TensorType]) -> None:
        """Name the node's output types by port and count what they cost, within the caps."""
        out_ports = self.ports[node.id][1]
        named: dict[str, TensorType] = {}
        sizes = []
        for p, t in zip(out_ports, outs, strict=True):
            # The batch dim stays first. Broadcasting (B,) with an unbatched (3, 1) gives (3, B),
            # and matmul of (B, K) with (B, K, N) gives (B, B, N); rules that then read the
            # symbol "B" as a size would crash, or count values wrongly.
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

    # -- step 3b: tied tensors --

    def check_ties(self) -> None:
        """Each tie joins two tensors of one shape, of blocks that name their tensors; the
        tying node then counts its parameters without the tied one."""
        for node in self.graph.nodes:
            if node.ties and node.id not in self.broken:
                for tensor, target in node.ties.items():
                    if not self.check_tie(node, tensor, target):
                        self.broken.add(node.id)
                        break

    def tensors(self, node: Node) -> Mapping[str, tuple] | None:
        """A node's learnable tensors by name and shape, None when its block does not say."""
        spec = self.specs.get(node.id)
        if spec is None or spec.tensors is None:
            return None
        path = self.prefix + node.id
        return spec.tensors(self.result.params[path], list(self.result.inputs.get(path, {}).values()))

    def check_tie(self, node: Node, tensor: str, target: tuple[str, str]) -> bool:
        other_id, other_tensor = target
        fix = "; remove the tie or"
        own = self.tensors(node)
        if own is None:
            self.report("bad_tie", f"{self.title(node)} cannot tie its tensors: only blocks that "
                        "name them (Linear, Embedding) can", node.id, param=tensor)
            return False
        if tensor not in own:
            self.report("bad_tie", f"{self.title(node)} has no tensor {tensor!r} to tie"
                        + did_you_mean(tensor, own), node.id, param=tensor)
            return False
        other = self.graph.get(other_id)
        if other is None or other_id == node.id:
            self.report("bad_tie", f"{self.title(node)} ties {tensor!r} to {other_id!r}, which is "
                        + ("itself" if other is not None else "no node of this graph"
                           + did_you_mean(other_id, self.graph._index)), node.id, param=tensor)
            return False
        if other_id in self.broken:
            return False   # its own problem is reported
        theirs = self.tensors(other)
        if theirs is None or other_tensor not in theirs:
            self.report("bad_tie", f"{self.title(node)} ties {tensor!r} to {other_id}.{other_tensor}, "
                        f"but {self.title(other)} has no such tensor"
                        + (did_you_mean(other_tensor, theirs) if theirs else ""), node.id, param=tensor)
            return False
        if other.ties:
            self.report("bad_tie", f"{self.title(node)} ties {tensor!r} to {other_id}, which ties "
                        f"tensors itself: tie both to the tensor {other_id} ties to", node.id,
                        param=tensor)
            return False
        if own[tensor] != theirs[other_tensor]:
            self.report("tie_shape", f"{self.title(node)}'s {tensor} is {own[tensor]} but "
                        f"{self.title(other)}'s {other_tensor} is {theirs[other_tensor]}{fix} give "
                        "them the same shape", node.id, param=tensor)
            return False
        path = self.prefix + node.id
        size = 1
        for d in own[tensor]:
            size *= d
        self.result.param_counts[path] = self.result.param_counts.get(path, 0) - size
        return True

    # -- step 4: what feeds nothing --

    def report_unused(self, incoming: Mapping[str, Mapping[str, Edge]]) -> None:
        used = {e.src[0] for ports in incoming.values() for e in ports.values()}
        for node in self.graph.nodes:
            spec = self.specs.get(node.id)
            if spec and spec.kind not in ("output", BODY_OUTPUT) and node.id not in used \
                    and node.id not in self.broken and self.ports.get(node.id, ((), ()))[1]:
                self.report("unused", f"{self.title(node)} feeds nothing, so it has no effect", node.id,
                            severity="info")


# --- structural blocks: their types come from the graph, not from a shape rule -------------

_StructuralRule = Callable[[_Region, Node, Params, Types], list[TensorType] | None]


def _input(r: _Region, node: Node, p: Params, types: Types) -> list[TensorType]:
    return [TensorType((BATCH, *p["shape"]), p["dtype"])]


def _output(r: _Region, node: Node, p: Params, types: Types) -> list[TensorType]:
    return []


def _body_input(r: _Region, node: Node, p: Params, types: Types) -> list[TensorType] | None:
    t = r.boundary.get(node.id)   # as the loop or branch outside hands it in
    return None if t is None else [t]


def _body_output(r: _Region, node: Node, p: Params, types: Types) -> list[TensorType]:
    r.results[node.id] = types["x"]   # the body's result: the loop or branch outside reads it
    return []


# --- loops: the checks every mode shares, then one rule per mode ---------------------------


class LoopRule:
    """What one loop mode (a row of `nodes.control.LOOP_MODES`) adds to the checks that every
    loop shares (`_infer_loop`). A hook that finds a problem reports it and returns False or
    None; the defaults find none."""

    def signature(self, p: Params, ins: list[Node], outs: list[Node]) -> str | None:
        """A problem of the body's signature that only this mode has."""
        return None

    def admits(self, r: _Region, node: Node, p: Params, types: Types) -> bool:
        """Whether the loop's connected inputs suit this mode."""
        return True

    def entering(self, r: _Region, node: Node, p: Params, ins: list[Node], boundary: Types) -> bool:
        """Whether the types entering the body (by body input id) suit this mode."""
        return True

    def iterations(self, p: Params, length: int | None) -> int:
        """The static iteration count: the body's runs, and its copies without shared weights."""
        raise NotImplementedError

    def result(self, r: _Region, node: Node, p: Params, out: Node, t: TensorType | None) -> bool:
        """Whether the type `t` leaving the body at `out` suits this mode."""
        return True

    def output(self, r: _Region, node: Node, p: Params, out: Node, t: TensorType,
               length: int | None) -> TensorType | None:
        """The loop's output type for the plain (role output) body output `out` of type `t`."""
        return t

    def extras(self, p: Params) -> list[TensorType]:
        """The types of this mode's `LoopMode.extra_outputs`."""
        return []


class _Repeat(LoopRule):
    """`count` times, or as often as a `count` input says, up to `max_iters`."""

    def iterations(self, p: Params, length: int | None) -> int:
        return p["count"] if p["count_from"] == "param" else p["max_iters"]


class _Scan(LoopRule):
    """Once per step along `dim` of the sequences; plain outputs stack the steps there."""

    def iterations(self, p: Params, length: int | None) -> int:
        return int(length)

    def output(self, r: _Region, node: Node, p: Params, out: Node, t: TensorType,
               length: int | None) -> TensorType | None:
        dim = p["dim"]
        if t.rank < dim:   # torch.stack(steps, dim) needs dim <= rank
            r.report("shape_mismatch", f"scan output {out.id!r} {t} has no dim {dim} to stack "
                     "its steps along", node.id, port=out.id)
            return None
        return t.with_shape((*t.shape[:dim], length, *t.shape[dim:]))   # the steps, stacked at dim


class _While(LoopRule):
    """Until the halt score passes the threshold, per sample or for the whole batch."""

    def signature(self, p: Params, ins: list[Node], outs: list[Node]) -> str | None:
        plain = [n for n in outs if role(n) == OUTPUT.name]
        if p["halt"] == "per_sample" and plain:
            return (f"body output {plain[-1].id!r}: a per-sample while loop returns only its states, "
                    "so each sample keeps the value of its own last step; make it a state")
        return None

    def admits(self, r: _Region, node: Node, p: Params, types: Types) -> bool:
        # A while loop counts the steps of each sample, zeros the size of a batched input.
        if not any(t.batched for t in types.values()):
            r.report("region_signature", "a while loop counts steps per sample, so it needs at least "
                     "one connected batched input", node.id)
            return False
        return True

    def entering(self, r: _Region, node: Node, p: Params, ins: list[Node], boundary: Types) -> bool:
        if p["halt"] != "per_sample":
            return True
        for n in ins:   # a per-sample while loop masks its states sample by sample
            if role(n) == STATE_IN.name and not boundary[n.id].batched:
                r.report("shape_mismatch", f"a per-sample while loop halts each sample on its own, so "
                         f"state {n.id!r} must be batched, not {boundary[n.id]}", node.id, port=n.id)
                return False
        return True

    def result(self, r: _Region, node: Node, p: Params, out: Node, t: TensorType | None) -> bool:
        if role(out) != HALT.name:
            return True
        if t.dtype != "float":   # the batch halt's .mean() refuses integer tensors
            r.report("type_mismatch", f"a halt score must be float, not {t}", node.id)
            return False
        if p["halt"] == "per_sample" and t.shape not in ((BATCH,), (BATCH, 1)):
            r.report("shape_mismatch", f"a per-sample halt score must be (B,) or (B, 1), not {t}",
                     node.id)
            return False
        return True

    def iterations(self, p: Params, length: int | None) -> int:
        return p["max_iters"]

    def extras(self, p: Params) -> list[TensorType]:
        return [TensorType((BATCH,))]   # iterations: the steps each sample took


LOOP_RULES: dict[str, LoopRule] = {"repeat": _Repeat(), "scan": _Scan(), "while": _While()}


def _infer_loop(r: _Region, node: Node, p: Params, types: Types) -> list[TensorType] | None:
    body = node.regions["body"]
    mode, rule = control.LOOP_MODES[p["mode"]], LOOP_RULES[p["mode"]]
    ins, outs = control.boundary(body, BODY_INPUT), control.boundary(body, BODY_OUTPUT)
    problems = _loop_signature(mode, rule, p, body, ins, outs)
    if problems:   # from single boundary nodes to the whole body: the last is the most basic
        r.report("region_signature", problems[-1], node.id)
        return None
    if not rule.admits(r, node, p, types):
        return None
    entering = _loop_boundary(r, node, p, ins, types)
    if entering is None or not rule.entering(r, node, p, ins, entering[0]):
        return None
    boundary, length = entering
    iterations = rule.iterations(p, length)
    if r.runs * iterations > MAX_LOOP_STEPS:
        r.report("too_large", f"its body would run {r.runs * iterations:,} times per forward pass "
                 f"(loops nested inside each other multiply), more than {MAX_LOOP_STEPS:,}", node.id)
        return None
    analysed = r.sub(node, "body", boundary, iterations)
    if analysed is None:
        return None
    sub, results = analysed
    for n in outs:
        t = results.get(n.id)
        if role(n) == STATE_OUT.name and t != boundary[n.params["state"]]:
            target = n.params["state"]
            r.report("region_signature", f"state {target!r} enters the body as {boundary[target]} "
                     f"but leaves it as {t}", node.id, port=target)
            return None
        if not rule.result(r, node, p, n, t):
            return None
    # Bodies count once when weights are shared, once per iteration otherwise.
    copies = 1 if p["share_weights"] else iterations
    r.result.param_counts[r.prefix + node.id] = sub.param_count() * copies
    # The loop's outputs, as `nodes.control.loop_ports` lists them: states, results, extras.
    out_types = [boundary[n.id] for n in ins if role(n) == STATE_IN.name]
    for n in outs:
        if role(n) == OUTPUT.name:
            t = rule.output(r, node, p, n, results[n.id], length)
            if t is None:
                return None
            out_types.append(t)
    return out_types + rule.extras(p)


def _loop_signature(mode: control.LoopMode, rule: LoopRule, p: Params, body: Graph,
                    ins: list[Node], outs: list[Node]) -> list[str]:
    """What is wrong with the body's Body inputs and outputs for this mode, in the order
    found: each boundary node's role, then the states, then what the mode needs."""
    problems = [f"body input {n.id!r} is {_NOUN.get(role(n), role(n))}, which only "
                f"{_loop_modes_with(role(n), 'inputs')} loop has"
                for n in ins if role(n) not in mode.inputs]
    states = {n.id for n in ins if role(n) == STATE_IN.name}
    updated: dict[str, str] = {}
    for n in outs:
        if role(n) not in mode.outputs:
            problems.append(f"body output {n.id!r} is {_NOUN.get(role(n), role(n))}, which only "
                            f"{_loop_modes_with(role(n), 'outputs')} loop has")
        elif role(n) == STATE_OUT.name:
            target = n.params.get("state", "")
            if target not in states:
                problems.append(f"body output {n.id!r} updates {target!r}, which is not a state "
                                "body input")
            elif target in updated:
                problems.append(f"state {target!r} is updated by both {updated[target]!r} and "
                                f"{n.id!r}")
            updated[target] = n.id
    problems += [f"state {s!r} is never updated: add a Body output with role state and state={s!r}"
                 for s in sorted(states - set(updated))]
    own = rule.signature(p, ins, outs)
    if own:
        problems.append(own)
    for name in mode.requires:
        if name in control.OUTPUT_ROLES and len(control.with_role(body, BODY_OUTPUT, name)) != 1:
            problems.append(f"a {mode.name} loop's body needs exactly one Body output with role {name}")
        if name in control.INPUT_ROLES and not control.with_role(body, BODY_INPUT, name):
            problems.append(f"a {mode.name} loop's body needs a Body input with role {name}")
    if not outs:   # the generated `= self.body(...)` would have no targets
        problems.append("the body has no Body output, so the loop would compute nothing")
    return problems


_NOUN = {SEQUENCE.name: "a sequence", HALT.name: "a halt score"}


def _loop_modes_with(role_name: str, side: str) -> str:
    """'a scan': the loop modes whose bodies admit this role on this side."""
    names = [m.name for m in control.LOOP_MODES.values() if role_name in getattr(m, side)]
    return "a " + " or ".join(names) if names else "no"


def _loop_boundary(r: _Region, node: Node, p: Params, ins: list[Node],
                   types: Types) -> tuple[dict[str, TensorType], int | None] | None:
    """The type entering the body at each Body input, and the sequences' length (None without
    sequences); None when one cannot enter."""
    dim = p["dim"]
    boundary: dict[str, TensorType] = {}
    length = None
    for n in ins:
        outer = types.get(n.id)
        kind = role(n)
        if kind == STATE_IN.name and outer is None:
            # The zeros take their batch size from a batched input (an unbatched one gave them
            # its own first dim).
            if not any(t.batched for t in types.values()):
                r.report("region_signature", f"state {n.id!r} starts at zeros, which needs at least one "
                         "connected batched input to know the batch size", node.id, port=n.id)
                return None
            outer = TensorType((BATCH, *n.params.get("shape", (16,))))
        if kind == SEQUENCE.name:
            if outer.rank <= dim:
                r.report("shape_mismatch", f"sequence {n.id!r} {fmt_shape(outer.shape)} has no dim {dim} "
                         "to scan over", node.id, port=n.id)
                return None
            if length is not None and outer.shape[dim] != length:
                r.report("shape_mismatch", f"sequences differ in length ({length} and "
                         f"{outer.shape[dim]})", node.id, port=n.id)
                return None
            length = outer.shape[dim]
            outer = outer.with_shape(outer.shape[:dim] + outer.shape[dim + 1:])   # one step: no dim
        boundary[n.id] = outer
    return boundary, length


def loop_iterations(p: Params, length: int | None) -> int:
    """The static iteration count used for per-iteration weights."""
    return LOOP_RULES[p["mode"]].iterations(p, length)


# --- branches: the checks both modes share, then one rule per mode -------------------------


class BranchRule:
    """What one branch mode (a row of `nodes.control.BRANCH_MODES`) adds to the checks every
    branch shares (`_infer_branch`); a hook that finds a problem reports it and returns False."""

    def condition(self, r: _Region, node: Node, cond: TensorType) -> bool:
        return True

    def output(self, r: _Region, node: Node, name: str, t: TensorType) -> bool:
        """Whether the type `t` that both bodies give at output `name` suits this mode."""
        return True


class _PerSample(BranchRule):
    def condition(self, r: _Region, node: Node, cond: TensorType) -> bool:
        if cond.shape not in ((BATCH,), (BATCH, 1)):
            r.report("shape_mismatch", f"a per-sample condition must be (B,) or (B, 1), not {cond}",
                     node.id, port="cond")
            return False
        return True

    def output(self, r: _Region, node: Node, name: str, t: TensorType) -> bool:
        if not t.batched:   # the mask picks samples of both results
            r.report("shape_mismatch", f"a per-sample branch mixes batched outputs; {name!r} is {t}",
                     node.id, port=name)
            return False
        return True


BRANCH_RULES: dict[str, BranchRule] = {"per_sample": _PerSample(), "hard": BranchRule()}


def _infer_branch(r: _Region, node: Node, p: Params, types: Types) -> list[TensorType] | None:
    then = node.regions["then"]
    if not _branch_signature(r, node):
        return None
    rule = BRANCH_RULES[p["mode"]]
    cond = types["cond"]
    if cond.dtype != "float":   # the hard branch's cond.mean() refuses integer tensors
        r.report("type_mismatch", f"the condition must be float, not {cond}", node.id, port="cond")
        return None
    if not rule.condition(r, node, cond):
        return None
    boundary = {n.id: types.get(n.id) for n in control.boundary(then, BODY_INPUT)}
    both = [r.sub(node, name, boundary) for name in ("then", "else")]
    if None in both:
        return None
    (sub_then, res_then), (sub_else, res_else) = both
    outs = []
    for n in control.boundary(then, BODY_OUTPUT):
        a, b = res_then.get(n.id), res_else.get(n.id)
        if a != b:
            r.report("region_signature", f"output {n.id!r} is {a} from then but {b} from else",
                     node.id, port=n.id)
            return None
        if not rule.output(r, node, n.id, a):
            return None
        outs.append(a)
    r.result.param_counts[r.prefix + node.id] = sub_then.param_count() + sub_else.param_count()
    return outs


def _branch_signature(r: _Region, node: Node) -> bool:
    """Whether both bodies take and give the same Body inputs and outputs, with the roles a
    branch admits; reports the first problem."""
    bodies = {name: node.regions[name] for name in ("then", "else")}
    sig = {name: ([n.id for n in control.boundary(g, BODY_INPUT)],
                  [n.id for n in control.boundary(g, BODY_OUTPUT)]) for name, g in bodies.items()}
    if sig["then"] != sig["else"]:
        r.report("region_signature", f"then takes {sig['then'][0]} and returns {sig['then'][1]}, but "
                 f"else takes {sig['else'][0]} and returns {sig['else'][1]}; both bodies need the same "
                 "inputs and outputs", node.id)
        return False
    for g in bodies.values():
        for n in control.boundary(g, BODY_INPUT) + control.boundary(g, BODY_OUTPUT):
            admitted = control.BRANCH_INPUT_ROLES if n.type == BODY_INPUT else control.BRANCH_OUTPUT_ROLES
            if role(n) not in admitted:
                r.report("region_signature", f"branch bodies only take context inputs and give plain "
                         f"outputs; {n.id!r} has role {role(n)!r}", node.id)
                return False
    if not sig["then"][1]:   # the generated `= self.then(...)` would have no targets
        r.report("region_signature", "the bodies have no Body output, so the branch would compute "
                 "nothing", node.id)
        return False
    return True


# --- calls: a function's body, analysed at each call site with the types arriving there ------


def _infer_call(r: _Region, node: Node, p: Params, types: Types) -> list[TensorType] | None:
    name, weights = p["function"], p["weights"]
    body = r.functions.functions[name].body
    key = tuple((k, t.shape, t.dtype) for k, t in types.items())
    if weights != OWN_WEIGHTS:
        # One module runs every call of a group, so the calls must build it alike. A group
        # belongs to the graph or body it is written in.
        first = r.groups.setdefault(weights, (node.id, name, key))
        if first[1] != name:
            r.report("weight_group", f"weight group {weights!r} runs function {first[1]!r} at "
                     f"{first[0]!r} but {name!r} here; one group holds one function's weights: "
                     "use another group name or own weights", node.id, param="weights")
            return None
        if first[2] != key:
            r.report("weight_group", f"the calls {first[0]!r} and {node.id!r} share weight group "
                     f"{weights!r} but take different inputs "
                     f"({', '.join(str(t) for t in types.values())} here), so one module cannot "
                     "serve both: match their inputs or give one its own weights", node.id,
                     param="weights")
            return None
    boundary = {n.id: types.get(n.id) for n in control.boundary(body, BODY_INPUT)}
    analysed = r.sub(node, name, boundary, graph=body)
    if analysed is None:
        return None
    sub, results = analysed
    shared_before = weights != OWN_WEIGHTS and r.groups[weights][0] != node.id
    # A group's weights count once, at its first call.
    r.result.param_counts[r.prefix + node.id] = 0 if shared_before else sub.param_count()
    return [results[n.id] for n in control.boundary(body, BODY_OUTPUT)]


_STRUCTURAL: dict[str, _StructuralRule] = {
    "input": _input, "output": _output, BODY_INPUT: _body_input, BODY_OUTPUT: _body_output,
    "loop": _infer_loop, "branch": _infer_branch, "call": _infer_call,
}


# --- params and ports of a spec, worked out once -------------------------------------------


class PortFacts(NamedTuple):
    ports: tuple[tuple[Port, ...], tuple[Port, ...]]   # (inputs, outputs)
    names: tuple[frozenset[str], frozenset[str]]       # their names
    clash: str | None                                  # the first name used twice on a side


@dataclass(frozen=True)
class _SpecFacts:
    spec: BlockSpec   # kept, so that an id reused after a throwaway spec died is not mistaken for it
    params: dict[str, Param]   # by name; the first of a name wins
    defaults: dict[str, Any]
    ports: PortFacts | None    # None for dynamic ports


# Specs are long-lived constants, and each is asked for its facts once per node.
_SPEC_FACTS: dict[int, _SpecFacts] = {}


def _spec_facts(spec: BlockSpec) -> _SpecFacts:
    facts = _SPEC_FACTS.get(id(spec))
    if facts is None or facts.spec is not spec:
        facts = _SpecFacts(spec, {p.name: p for p in reversed(spec.params)}, spec.defaults(),
                           None if spec.ports is not None else _port_facts((spec.inputs, spec.outputs)))
        _SPEC_FACTS[id(spec)] = facts
    return facts


def _port_facts(ports: tuple[tuple[Port, ...], tuple[Port, ...]]) -> PortFacts:
    clash = None
    for side in ports:
        names = [port.name for port in side]
        clash = next((n for n in names if names.count(n) > 1), None)
        if clash is not None:
            break
    return PortFacts(ports, (frozenset(p.name for p in ports[0]), frozenset(p.name for p in ports[1])),
                     clash)


def param_problems(spec: BlockSpec, node: Node):
    """(param, code, message) for each param of `node` its spec refuses; unknown ones are skipped."""
    by_name = _spec_facts(spec).params
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


def did_you_mean(name: str, known: Any) -> str:
    """"; did you mean 'padding'?" when a known name is close to `name`, else a list of the
    known names (short), so a diagnostic about a misspelling says what to write instead."""
    names = sorted(known)
    close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    if not names:
        return " (it has none)"
    shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
    return f" (it has {shown})"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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


# The code generator reads a body's signature through these names.
boundary_nodes = control.boundary


def call_sites(graph: Graph, name: str) -> list[str]:
    """The paths of every Call of function `name`, in walk order (calls inside function bodies
    included, once per place they are expanded): where its body's analysis lives."""
    return [path for path, node in graph.walk()
            if node.type == "call" and node.params.get("function") == name]


def function_diagnostics(analysis: Analysis, graph: Graph, name: str) -> list[Diagnostic]:
    """The diagnostics inside function `name`'s body, from all its calls, with their node
    made relative to the body (`down1/double_conv/conv_a` → `conv_a`; a nested body keeps its
    path inside) and each told once: what a view of the body itself shows. The calls' own
    diagnostics stay with the calls."""
    seen: dict[tuple, Diagnostic] = {}
    for site in call_sites(graph, name):
        inside = f"{site}{PATH_SEP}{name}{PATH_SEP}"
        for d in analysis.diagnostics:
            if d.node is not None and d.node.startswith(inside):
                here = Diagnostic(d.code, d.message, d.node[len(inside):], d.port, d.param,
                                  d.severity)
                seen.setdefault((here.code, here.node, here.port, here.param, here.message), here)
    return list(seen.values())
