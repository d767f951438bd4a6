"""The code generator: graph → ordered program → Python source.

One generator serves everything: the module the studio and trainer run is the `exec` of
exactly the text `export_python` writes. The source has one line per node (loops and
branches a few), names taken from node labels or ids made into legal, unique identifiers,
literal constructor kwargs, and shape comments.

Read top to bottom: the generated file's parts (`ClassCode`, `Generated`), the `Generator`
that walks each region in topological order, a node's lines (`NodeContext`, and one emitter
per emission kind of `nodes.spec.EMIT_KINDS`), loops (one emitter per row of
`nodes.control.LOOP_MODES`), branches (one per row of `BRANCH_MODES`), then the file itself
and the markers in its forward lines.

Typed and traceable: forward methods are annotated (tensors in, a tensor or a tuple of tensors
out; a module call's result is declared a tensor), so exports pass `mypy --strict`. Control
flow that ends early or picks one body for the batch (a while loop, a repeat counting from
the data, a hard branch) tests `_traced()`, a function written into the file: eager code
keeps its `break` and `if`, traced code (torch.compile, torch.export, ...) runs every step
masked and calls `torch.cond`, with the same outputs (`TRACED`).

Safety: no string from a graph file is pasted into code. Names, literals and comment text
come only from `engine.core.naming`; templates are the specs' own text (an Expression's is
re-emitted from its checked syntax tree).

With `tap=True` the generator also writes `<Class>_forward(self, tap, ...)` functions whose
bodies are the same lines with every edge read wrapped in `tap(k, value)`: the trainer's
gradient-flow probe runs those on sampled steps against the very same module instance.

`engine.incremental.codegen.CodeCache` regenerates edited graphs faster by overriding two
methods of `Generator` (`main_class`, `node_lines`); the text is the same either way.

Pure: no torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from nodes import control, lookup
from nodes.control import BODY_INPUT, BODY_OUTPUT, boundary, role, with_role
from nodes.spec import BlockSpec
from nodes.types import TensorType

from .analysis import Analysis, GraphError, analyze, loop_iterations
from .graph import PATH_SEP, Edge, Function, Graph, Node
from .naming import MODULE_DICT_ATTRIBUTES, Namer, call_name, class_name, literal, safe_text

INDENT = "    "
_EMPTY: Mapping = {}


# --- what a generation makes ----------------------------------------------------------------


@dataclass(slots=True)   # a generation makes one or two per node
class Line:
    text: str
    node: str | None = None   # node path, for tracebacks and the studio's code highlight
    in_class: bool = False    # an init line that declares an attribute's type in the class body


@dataclass
class ClassCode:
    name: str
    doc: str
    args: list[str]
    arg_comments: list[str]
    init: list[Line] = field(default_factory=list)
    body: list[Line] = field(default_factory=list)
    returns: int = 0   # how many tensors forward returns


@dataclass
class Generated:
    source: str
    class_name: str
    line_nodes: dict[int, str]          # 1-based line number → node path
    edge_keys: list[str]                # tap index → edge key ("loop1/body/fc.y->act.x")
    body_classes: list[str]
    # node path → dotted attribute of the module (or Parameter) holding its weights, from the
    # top-level module: "fc1", "loop1/body/fc" → "loop1.fc". A loop without shared weights
    # holds an nn.ModuleList there, one body per iteration ("loop1" → loop1[0], loop1[1], ...).
    node_modules: dict[str, str] = field(default_factory=dict)


def export_python(graph: Graph, analysis: Analysis | None = None) -> str:
    """The standalone `model.py` for this graph; it imports only torch."""
    return generate(graph, analysis).source


def generate(graph: Graph, analysis: Analysis | None = None, *, tap: bool = False) -> Generated:
    """Raises GraphError when the graph has error diagnostics."""
    return Generator(analysis or analyze(graph), tap).generate(graph)


# --- the generator ----------------------------------------------------------------------------


@dataclass
class Scope:
    """One class being written: its region's wires, and the names and variables given so far."""

    prefix: str                              # the region's path prefix ("" for the model)
    code: ClassCode
    names: Namer     # locals and submodule attributes share one namespace: one name per node
    vars: dict[tuple[str, str], str]         # (node id, output port) → variable
    incoming: dict[str, dict[str, Edge]]     # node id → input port → wire
    consumed: set[tuple[str, str]]           # (node id, port) pairs some wire reads
    results: dict[str, str] = field(default_factory=dict)   # output node id → its variable
    groups: dict[str, str] = field(default_factory=dict)    # weight group → its attribute
    # Module paths held in nn.ModuleDicts (`features`, `features.0`) → whether a container
    held: dict[str, bool] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)   # a path's first part → attribute


class Generator:
    """One generation: the classes of a graph (bodies first, the model last), and what is
    named or numbered across all of them."""

    def __init__(self, analysis: Analysis, tap: bool):
        self.analysis = analysis
        self.tap = tap
        self.class_names: set[str] = set()
        self.classes: list[ClassCode] = []
        self.edge_keys: list[str] = []           # tap number → edge key
        self.edge_numbers: dict[str, int] = {}   # edge key → tap number
        self.uses_functional = False             # whether some line calls F.*
        self.attrs: dict[str, str] = {}          # node path → attribute on its own class
        self.region_attrs: dict[str, str] = {}   # region prefix → body attribute on the parent
        self.functions: Mapping[str, Function] = {}
        # A function's class for the input types of a call: (function, types) → (class, the
        # prefix of the call it was written for). Calls with the same types share the class.
        self.function_classes: dict[tuple, tuple[str, str, int, int]] = {}
        # (function, its class's code without comments) → that class, as above
        self.function_texts: dict[tuple[str, str], tuple[str, str, int, int]] = {}

    def generate(self, graph: Graph) -> Generated:
        """Raises GraphError when the graph has error diagnostics."""
        if not self.analysis.ok:
            raise GraphError(self.analysis.errors)
        self.functions = graph.functions
        name = class_name(graph.name, self.class_names)
        doc = f"The graph {safe_text(graph.name)}: {self.analysis.total_params:,} parameters."
        return render(self, graph, self.main_class(graph, name, doc))

    def main_class(self, graph: Graph, name: str, doc: str) -> ClassCode:
        """The model's class (its bodies' classes are written first, as they come)."""
        return self.emit_class(graph, self.scope(graph, "", name, doc))

    def scope(self, graph: Graph, prefix: str, name: str, doc: str) -> Scope:
        """A class for `graph` with its forward's arguments (the graph's inputs) named."""
        names = Namer()
        vars_: dict[tuple[str, str], str] = {}
        args, arg_comments = [], []
        entry = "body_input" if prefix else "input"
        for n in graph.nodes:
            if lookup(n.type).kind == entry:
                arg = names(n.name, "x")
                vars_[(n.id, "y")] = arg
                args.append(arg)
                arg_comments.append(f"{arg}: {self.out_types(prefix, n)[0]}")
        incoming: dict[str, dict[str, Edge]] = {}
        consumed = set()
        for e in graph.edges:
            incoming.setdefault(e.dst[0], {})[e.dst[1]] = e
            consumed.add(e.src)
        return Scope(prefix, ClassCode(name, doc, args, arg_comments), names, vars_, incoming,
                     consumed)

    def emit_class(self, graph: Graph, scope: Scope) -> ClassCode:
        """Each node's lines in topological order, then the `return` of the outputs."""
        for node_id in self.analysis.order[scope.prefix]:
            node = graph.node(node_id)
            spec = lookup(node.type)
            if spec.kind not in ("input", "body_input"):
                self.node_lines(scope, node, spec)
        for node in graph.nodes:   # ties, once both modules exist
            for tensor, (other, other_tensor) in node.ties.items():
                scope.code.init.append(Line(
                    f"{attribute(self.attrs[scope.prefix + node.id])}.{tensor} = "
                    f"{attribute(self.attrs[scope.prefix + other])}.{other_tensor}  # tied: one tensor",
                    scope.prefix + node.id))
        # Results in the order the outputs were placed, which is the order callers unpack.
        results = [scope.results[n.id] for n in graph.nodes if n.id in scope.results]
        code = scope.code
        code.returns = len(results)
        if results:
            code.body.append(Line(f"return {', '.join(results)}"))
        self.classes.append(code)
        return code

    def node_lines(self, scope: Scope, node: Node, spec: BlockSpec) -> None:
        """A node's lines, added to its class (an output's variable to the scope's results)."""
        ctx = NodeContext(self, scope, node, spec)
        if spec.kind in ("output", "body_output"):
            scope.results[node.id] = ctx.use("x")
        else:
            ctx.emit()

    def out_types(self, prefix: str, node: Node) -> list[TensorType]:
        return list(self.analysis.outputs.get(prefix + node.id, {}).values())

    def edge_index(self, prefix: str, edge: Edge) -> int:
        """The tap number of an edge; reading an edge twice (say, in a loop) taps it twice."""
        key = prefix + edge.key
        if key not in self.edge_numbers:
            self.edge_numbers[key] = len(self.edge_keys)
            self.edge_keys.append(key)
        return self.edge_numbers[key]


# --- a node's lines ---------------------------------------------------------------------------


def tap_marker(number: int, var: str) -> str:
    """A read of wire `number` holding `var`: `var`, or `tap(number, var)` in tapped code."""
    return f"\x00tap{number}:{var}\x00"


def shape_comment(types: list[TensorType]) -> str:
    return "  # " + ", ".join(map(_type_text, types)) if types else ""


_TYPE_TEXT: dict[tuple, str] = {}


def _type_text(t: TensorType) -> str:
    """`str(t)`, remembered: shape comments repeat the same few types over and over."""
    key = (t.shape, t.dtype)
    try:
        text = _TYPE_TEXT.get(key)
    except TypeError:   # an unhashable shape: format it every time
        return str(t)
    if text is None:
        if len(_TYPE_TEXT) > 4096:
            _TYPE_TEXT.clear()
        text = _TYPE_TEXT[key] = str(t)
    return text


# A label naming a module path: an identifier, then one or more parts (`features.0`)
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+")


def is_module_path(label: str) -> bool:
    return _MODULE_PATH.fullmatch(label) is not None


def attribute(path: str) -> str:
    """The expression reading a module's dotted attribute: `self.features["0"]` for
    `features.0`, whose first part is an attribute and the rest nn.ModuleDict keys."""
    head, *rest = path.split(".")
    return f"self.{head}" + "".join(f'["{part}"]' for part in rest)


class NodeContext:
    """Writes the lines of one node. Everything it asks of its class - a fresh name (`name`),
    the expression reading an input (`use`, `var`) - goes through the three methods of that
    name, which the code cache overrides to record or to answer as before."""

    def __init__(self, gen: Generator, scope: Scope, node: Node, spec: BlockSpec):
        self.gen, self.scope, self.node, self.spec = gen, scope, node, spec
        self.code, self.prefix = scope.code, scope.prefix
        self.incoming = scope.incoming.get(node.id, _EMPTY)   # input port → wire
        self.path = path = scope.prefix + node.id
        analysis = gen.analysis
        self.params = analysis.params[path]
        self.in_types = analysis.inputs.get(path, _EMPTY)
        self.out_ports = analysis.outputs.get(path, _EMPTY)   # port → type, in port order
        self.out_types = list(self.out_ports.values())

    def name(self, text: str, fallback: str = "v") -> str:
        """A fresh identifier in this class, made from `text`."""
        return self.scope.names(text, fallback)

    def module_path(self) -> str | None:
        """Where a node labelled with a module path (`features.0`, as imported from an
        nn.Sequential) keeps its module: at that path, in nn.ModuleDicts declared as needed,
        so that its weights keep the original's state_dict keys. None for any other label,
        or where the path is taken; the module then gets a fresh attribute of its own."""
        label = self.node.name
        if not is_module_path(label):
            return None
        head, *rest = label.split(".")
        if any(part.startswith("_") or part in MODULE_DICT_ATTRIBUTES for part in rest):
            return None   # a key nn.ModuleDict refuses (`training`, `keys`)
        held = self.scope.held
        attr = self.scope.containers.get(head)
        paths = [f"{attr}.{'.'.join(rest[:i])}" for i in range(1, len(rest) + 1)] if attr else []
        if paths and (paths[-1] in held or any(held.get(p) is False for p in paths[:-1])):
            return None   # two nodes with one path, or a path under another module
        if attr is None:
            attr = self.scope.containers[head] = self.name(head, "modules")
            held[attr] = True
            self.init(f"self.{attr} = nn.ModuleDict()")
        path = attr
        for part in rest[:-1]:
            path = f"{path}.{part}"
            if path not in held:
                held[path] = True
                self.init(f"{attribute(path)} = nn.ModuleDict()")
        path = f"{path}.{rest[-1]}"
        held[path] = False
        return path

    def use(self, port: str) -> str:
        """The expression reading input `port`: its variable, marked for an optional tap."""
        edge = self.incoming[port]
        return tap_marker(self.gen.edge_index(self.prefix, edge), self.scope.vars[edge.src])

    def var(self, port: str) -> str:
        """The plain variable behind input `port`, for reading its shape or device only."""
        return self.scope.vars[self.incoming[port].src]

    def line(self, text: str, types: list[TensorType] | None = None) -> None:
        self.code.body.append(Line(text + shape_comment(types or []), self.path))

    def init(self, text: str, *, in_class: bool = False) -> None:
        """A line of `__init__`, or with `in_class` a declaration in the class body."""
        self.code.init.append(Line(text, self.path, in_class))

    def outputs(self, ports: list[str] | None = None, *, qualify: bool = False) -> list[str]:
        """Variables for the node's outputs: its name, or name_port when it has several."""
        ports = ports if ports is not None else list(self.out_ports)
        single = len(ports) == 1 and not qualify
        out = []
        for port in ports:
            var = self.name(self.node.name if single else f"{self.node.name}_{port}", self.node.type)
            self.scope.vars[(self.node.id, port)] = var
            out.append(var)
        return out

    def fill(self, types: list[TensorType], args: Mapping, inputs: Mapping[str, str] = _EMPTY) -> str:
        """The spec's template with its `{arg}` placeholders as literals and its `{port}` ones
        as the input reads."""
        template = self.spec.template
        if callable(template):
            template = template(self.params, types)
        values = {k: literal(v) for k, v in args.items()} if args else {}
        values.update(inputs)
        return template.format_map(values)

    def emit(self) -> None:
        """The node's lines: a loop or branch by its kind, any other block by its spec's `emit`."""
        kind = self.spec.kind
        (CONTROL_EMITTERS[kind] if kind in CONTROL_EMITTERS else EMITTERS[self.spec.emit])(self)


def emit_call(ctx: NodeContext) -> None:
    """`y = <call>`: the spec's module, function or template applied to the inputs (and to
    the tensor the spec holds, if any); then the outputs the spec's `finish` rewrites."""
    spec, p = ctx.spec, ctx.params
    types = list(ctx.in_types.values())
    outs = ctx.outputs()
    inputs = {port: ctx.use(port) for port in ctx.in_types}   # in port order
    arg_values = spec.args(p, types)   # once: the template and its placeholders share it
    held = _held(ctx, types, arg_values)
    if held is not None:
        inputs["held"] = held
    call = None   # without a template: the module or function called on the inputs
    if spec.module:
        # The submodule takes its first output's name (its state dict keys say so, in run
        # folders too); a call whose result unpacks (an LSTM layer's y, h and c) is named
        # after its node.
        attr = ctx.module_path() or (ctx.name(ctx.node.name, ctx.node.type) if spec.unpack
                                     else outs[0])
        kwargs = ", ".join(f"{k}={literal(v)}" for k, v in spec.init(p, types).items())
        ctx.init(f"{attribute(attr)} = {call_name(spec.module)}({kwargs})")
        ctx.gen.attrs[ctx.path] = attr
        call = f"{attribute(attr)}({', '.join(inputs.values())})"
        inputs["self"] = attribute(attr)
    elif spec.function:
        name = call_name(spec.function)
        ctx.gen.uses_functional |= name.startswith("F.")
        args = [*inputs.values(), *(f"{k}={literal(v)}" for k, v in arg_values.items())]
        call = f"{name}({', '.join(args)})"
    if spec.template or call is None:
        call = ctx.fill(types, arg_values, inputs)
    out_vars = dict(zip(ctx.out_ports, outs, strict=True))
    targets = spec.unpack.format_map(out_vars) if spec.unpack else ", ".join(outs)
    finished = [port for port in ctx.out_ports if port in spec.finish]
    if spec.module:
        # A module call is typed Any; annotations keep what the forward returns a tensor for
        # the type checker (mypy --strict flags returning Any).
        if len(outs) == 1 and not spec.unpack and not finished:
            ctx.line(f"{outs[0]}: torch.Tensor = {call}", ctx.out_types)
            return
        declare(ctx, outs, ctx.out_types)
        ctx.line(f"{targets} = {call}")
    else:
        ctx.line(f"{targets} = {call}", [t for port, t in ctx.out_ports.items() if port not in finished])
    if finished:
        ctx.line(f"{', '.join(out_vars[port] for port in finished)} = "
                 + ", ".join(spec.finish[port].format_map(out_vars) for port in finished),
                 [ctx.out_ports[port] for port in finished])


def _held(ctx: NodeContext, types: list[TensorType], args: Mapping) -> str | None:
    """The attribute of the tensor a call reads (registered in __init__), or None."""
    held = ctx.spec.held
    if held is None:
        return None
    template = held.template(ctx.params, types) if callable(held.template) else held.template
    if template is None:   # this node needs none (a rule said so)
        return None
    attr = ctx.name(f"{ctx.node.name}_{held.name}", held.name)
    value = template.format_map({k: literal(v) for k, v in args.items()})
    ctx.init(f"self.register_buffer({attr!r}, {value}, persistent=False)")
    return f"self.{attr}"


def declare(ctx: NodeContext, names: list[str], types: list[TensorType] | None = None) -> None:
    """`name: torch.Tensor` lines, with their shapes if given, for variables that a tuple
    unpack or an if/else assigns from a call typed Any."""
    for k, name in enumerate(names):
        ctx.line(f"{name}: torch.Tensor", [types[k]] if types else None)


def _tensor(ctx: NodeContext) -> tuple[str, str]:
    """(attribute, expression) of a tensor the module holds: the spec's template."""
    attr = ctx.outputs()[0]
    types = list(ctx.in_types.values())
    return attr, ctx.fill(types, ctx.spec.args(ctx.params, types))


def emit_buffer(ctx: NodeContext) -> None:
    """A fixed tensor built once; not persistent, so no checkpoint or state dict holds it."""
    attr, value = _tensor(ctx)
    ctx.init(f"{attr}: torch.Tensor", in_class=True)   # what `self.<attr>` reads, for mypy
    ctx.init(f"self.register_buffer({attr!r}, {value}, persistent=False)")
    ctx.line(f"{attr} = self.{attr}", ctx.out_types)


def emit_parameter(ctx: NodeContext) -> None:
    """A learnable tensor, starting at the template's value."""
    attr, value = _tensor(ctx)
    ctx.init(f"self.{attr} = nn.Parameter({value})")
    ctx.gen.attrs[ctx.path] = attr
    ctx.line(f"{attr} = self.{attr}", ctx.out_types)


# One emitter per row of nodes.spec.EMIT_KINDS.
EMITTERS: dict[str, Callable[[NodeContext], None]] = {
    "call": emit_call, "buffer": emit_buffer, "parameter": emit_parameter,
}


# --- bodies -----------------------------------------------------------------------------------


def _emit_body(ctx: NodeContext, region: str, doc: str, attr_text: str) -> tuple[str, str]:
    """Write the body's class; returns (class name, attribute holding its module)."""
    body = ctx.node.regions[region]
    gen = ctx.gen
    cls = class_name(f"{ctx.node.name} {region}", gen.class_names)
    prefix = f"{ctx.path}{PATH_SEP}{region}{PATH_SEP}"
    gen.emit_class(body, gen.scope(body, prefix, cls, doc))
    attr = ctx.name(attr_text, ctx.node.type)
    gen.region_attrs[prefix] = attr
    return cls, attr


def _body_call(cls: str, module: str, args: list[str], shift: int = 0) -> str:
    """The call of a body's module; `shift` moves the wire numbers its tapped code reads (a
    function's class serving a later call: see `emit_function_call`)."""
    shifted = f"+{shift}" if shift else ""
    return f"\x00body:{cls}{shifted}:{module}\x00({', '.join(args)})"


def _split_call(call: str) -> tuple[str, str]:
    """A `_body_call`'s callee (its marker) and its arguments' text."""
    at = call.index("\x00(") + 1   # the body marker's end; an argument's tap marker never
    return call[:at], call[at + 1:-1]   # precedes a parenthesis


def per_sample_view(var: str, t: TensorType) -> str:
    """A (B,) or (B, 1) per-sample score as (B,)."""
    return var if t.rank == 1 else f"{var}.squeeze(1)"


def mask_for(var: str, rank: int) -> str:
    """A (B,) mask indexed to broadcast over a rank-`rank` tensor: m[:, None, None]."""
    return var if rank <= 1 else f"{var}[:, {', '.join(['None'] * (rank - 1))}]"


# --- loops ------------------------------------------------------------------------------------


class LoopEmitter:
    """Writes one Loop node. This base writes what every mode shares: the body's class (one,
    or one per iteration without shared weights), the states carried from one iteration to the
    next, and the call of the body. What a mode changes are the hooks below; each row of
    `nodes.control.LOOP_MODES` has its subclass in `LOOP_EMITTERS`."""

    def __init__(self, ctx: NodeContext):
        self.ctx, self.p, self.node = ctx, ctx.params, ctx.node
        self.body = ctx.node.regions["body"]
        self.shared: bool = self.p["share_weights"]
        # The step number: which body runs without shared weights; what a masked step reads.
        self.loop_var = "i" if not self.shared or self.indexed() else "_"

    def masked(self) -> bool:
        """Whether the loop can end early. Eager code then leaves the loop as soon as it may;
        traced code (see `_traced` in the generated file) runs all `max_iters` steps with the
        finished ones masked, which gives the same outputs."""
        return False

    def indexed(self) -> bool:
        """Whether the lines inside the loop read the step number `i`."""
        return False

    # -- what a mode says --

    def what(self) -> str:
        """What the loop does, for its comment and its body's docstring."""
        raise NotImplementedError

    def iterations(self) -> int:
        """How many bodies the loop holds without shared weights."""
        return loop_iterations(self.p, None)

    def argument(self, n: Node, role_name: str) -> str:
        """The body's argument for body input `n` of a role only some modes have."""
        raise ValueError(f"a {self.p['mode']} loop has no body input role {role_name!r}")

    def target(self, n: Node, role_name: str) -> str:
        """Where body output `n` goes each iteration: a state's next value to the state, a
        result to the loop's output (what the last iteration gave is what the loop gives)."""
        if role_name == control.STATE_OUT.name:
            return self.out_vars[n.params["state"]]
        if role_name == control.OUTPUT.name:
            return self.out_vars[n.id]
        raise ValueError(f"a {self.p['mode']} loop has no body output role {role_name!r}")

    def before(self) -> None:
        """Lines before the loop's head."""

    def declared(self) -> list[str]:
        """Variables the loop assigns only from its body's results, declared as tensors before
        it (a body call is typed Any)."""
        return [self.out_vars[n.id] for n in with_role(self.body, BODY_OUTPUT, control.OUTPUT.name)]

    def head(self) -> None:
        """The `for` line."""
        self.ctx.line(f"for {self.loop_var} in range({self.iterations()}):")

    def step(self) -> None:
        """Lines inside the loop, after the body's call."""

    def after(self) -> None:
        """Lines after the loop."""

    # -- what every mode shares --

    def emit(self) -> None:
        ctx, node = self.ctx, self.node
        what = self.what()
        cls, attr = _emit_body(ctx, "body", f"One iteration of loop {safe_text(node.name)}: {what}.",
                               node.name)
        ctx.init(f"self.{attr} = {cls}()" if self.shared else
                 f"self.{attr} = nn.ModuleList({cls}() for _ in range({self.iterations()}))")
        module = f"self.{attr}" if self.shared else f"self.{attr}[i]"
        ctx.line(f"# {safe_text(node.name)}: {what}")
        self.out_types = ctx.out_ports   # port → type
        self.out_vars = dict(zip(ctx.out_ports, ctx.outputs(list(ctx.out_ports), qualify=True),
                                 strict=True))
        self._find_batch()
        args = [self._argument(n) for n in boundary(self.body, BODY_INPUT)]
        self.targets = [self.target(n, role(n)) for n in boundary(self.body, BODY_OUTPUT)]
        declared = self.declared()
        if self.masked():   # a masked result reads its last value: it needs one to start with
            for var in declared:
                ctx.line(f"{var} = torch.empty(0)  # until the first step, which always counts")
        else:
            declare(ctx, declared, [self.out_types[p] for p in self.out_vars
                                    if self.out_vars[p] in declared])
        self.before()
        self.head()
        ctx.line(f"{INDENT}{', '.join(self.targets)} = {_body_call(cls, module, args)}")
        self.step()
        self.after()

    def _find_batch(self) -> None:
        """The input whose batch size, device and dtype new zeros take: a batched float one
        where there is one (an unbatched input, or long token ids, would give the wrong size
        or dtype). The analysis guarantees a batched input where zeros are needed."""
        in_types = self.ctx.in_types
        batched = [k for k, t in in_types.items() if t.batched]
        ref = next((k for k in batched if in_types[k].dtype == "float"), batched[0] if batched else None)
        self.batch = self.ctx.var(ref) if ref else None
        self.zeros_dtype = "" if ref is None or in_types[ref].dtype == "float" else ", dtype=torch.float"

    def zeros(self, dims: str) -> str:
        """New zeros of the batch's size followed by `dims` (text such as ", 4, 5")."""
        return f"{self.batch}.new_zeros({self.batch}.shape[0]{dims}{self.zeros_dtype})"

    def masked_target(self, n: Node, role_name: str) -> str | None:
        """A masked mode's body result goes to a fresh variable first: a state's next value to
        `<state>_next`, a plain result to `<result>_t`; None for other roles."""
        if role_name == control.STATE_OUT.name:
            return self.ctx.name(f"{self.out_vars[n.params['state']]}_next")
        if role_name == control.OUTPUT.name:
            return self.ctx.name(f"{self.out_vars[n.id]}_t")
        return None

    def keep_masked(self, mask: str, step_mask: str, *, per_sample: bool) -> None:
        """Lines inside the loop that take a step's results where the step counts: a state's
        next value under `mask` (per sample, broadcast to the state's rank, or one for the
        batch), a plain result under `step_mask` (whether the step counts for anyone)."""
        ctx = self.ctx
        for n, target in zip(boundary(self.body, BODY_OUTPUT), self.targets, strict=True):
            if role(n) == control.STATE_OUT.name:
                state = n.params["state"]
                var = self.out_vars[state]
                where = mask_for(mask, self.out_types[state].rank) if per_sample else mask
                ctx.line(f"{INDENT}{var} = torch.where({where}, {target}, {var})"
                         + ("  # halted samples keep theirs" if per_sample else ""))
            elif role(n) == control.OUTPUT.name:
                var = self.out_vars[n.id]
                ctx.line(f"{INDENT}{var} = {target} if i == 0 else torch.where({step_mask}, "
                         f"{target}, {var})")

    def _argument(self, n: Node) -> str:
        """The body's argument for body input `n`: a context as it is, a state starting from
        its input or, unwired, from zeros."""
        ctx, role_name = self.ctx, role(n)
        if role_name == control.CONTEXT.name:
            return ctx.use(n.id)
        if role_name != control.STATE_IN.name:
            return self.argument(n, role_name)
        var, t = self.out_vars[n.id], self.out_types[n.id]
        if n.id in ctx.incoming:
            ctx.line(f"{var} = {ctx.use(n.id)}", [t])
        else:
            ctx.line(f"{var} = {self.zeros(', ' + ', '.join(str(d) for d in t.shape[1:]))}", [t])
        return var


class _Repeat(LoopEmitter):
    """`count` times, from the param or (its batch max) from the `count` input. A count from
    the data is masked: eager code runs `count` steps, traced code `max_iters`, the steps past
    the count keeping what they had."""

    def what(self) -> str:
        return f"repeat {self.p['count']} times" if self.p["count_from"] == "param" \
            else "repeat count times"

    def masked(self) -> bool:
        return self.p["count_from"] != "param"

    def indexed(self) -> bool:
        return self.masked()

    def target(self, n: Node, role_name: str) -> str:
        return (self.masked() and self.masked_target(n, role_name)) or super().target(n, role_name)

    def head(self) -> None:
        if not self.masked():
            return super().head()
        ctx, most = self.ctx, self.p["max_iters"]
        self.count = ctx.name(f"{self.node.name}_count", "count")
        # nan_to_num: a NaN count runs once, like any count below 1; .long() truncates as int().
        ctx.line(f"{self.count} = {ctx.use('count')}.max().nan_to_num(1.0).clamp(1, {most}).long()"
                 "  # ()")
        ctx.line(f"for i in range({most} if _traced() else int({self.count})):")

    def step(self) -> None:
        if self.masked():
            live = self.ctx.name(f"{self.node.name}_live", "live")
            self.ctx.line(f"{INDENT}{live} = {self.count} > i  # () whether this step counts")
            self.keep_masked(live, live, per_sample=False)


class _Scan(LoopEmitter):
    """Once per step of the sequence inputs, unbound along `dim`; each plain result is
    collected step by step and stacked along that dim."""

    def __init__(self, ctx: NodeContext):
        super().__init__(ctx)
        self.dim = self.p["dim"]
        self.sequences: list[tuple[str, str]] = []        # (step variable, the sequence unbound)
        self.collected: list[tuple[str, str, str]] = []   # (list variable, output port, step result)

    def what(self) -> str:
        return f"scan over dim {self.dim}"

    def iterations(self) -> int:
        length = None
        for n in with_role(self.body, BODY_INPUT, control.SEQUENCE.name):
            length = self.ctx.in_types[n.id].shape[self.dim]
        return loop_iterations(self.p, length)

    def argument(self, n: Node, role_name: str) -> str:
        if role_name != control.SEQUENCE.name:
            return super().argument(n, role_name)
        step = self.ctx.name(n.name, "x_t")
        self.sequences.append((step, f"{self.ctx.use(n.id)}.unbind({self.dim})"))
        return step

    def target(self, n: Node, role_name: str) -> str:
        if role_name != control.OUTPUT.name:
            return super().target(n, role_name)
        var = self.out_vars[n.id]
        step = self.ctx.name(f"{var}_t")
        self.collected.append((self.ctx.name(f"{var}_steps"), n.id, step))
        return step

    def declared(self) -> list[str]:
        return []   # the results are stacked from lists after the loop

    def before(self) -> None:
        for list_var, _, _ in self.collected:
            self.ctx.line(f"{list_var}: list[torch.Tensor] = []")

    def head(self) -> None:
        steps = ", ".join(s for s, _ in self.sequences)
        source = self.sequences[0][1] if len(self.sequences) == 1 else \
            f"zip({', '.join(e for _, e in self.sequences)}, strict=True)"
        self.ctx.line(f"for {steps} in {source}:" if self.shared else
                      f"for i, {steps} in enumerate({source}):" if len(self.sequences) == 1 else
                      f"for i, ({steps}) in enumerate({source}):")

    def step(self) -> None:
        for list_var, _, step in self.collected:
            self.ctx.line(f"{INDENT}{list_var}.append({step})")

    def after(self) -> None:
        for list_var, port, _ in self.collected:
            self.ctx.line(f"{self.out_vars[port]} = torch.stack({list_var}, dim={self.dim})",
                          [self.out_types[port]])


class _While(LoopEmitter):
    """At most `max_iters` times, until the halt score exceeds the threshold: for the batch
    mean, or per sample (a halted sample keeps its states; the loop ends when all halted).
    Eager code leaves the loop once everything halted; traced code runs every step, masked."""

    def __init__(self, ctx: NodeContext):
        super().__init__(ctx)
        self.per_sample = self.p["halt"] == "per_sample"
        self.threshold = literal(self.p["threshold"])

    def what(self) -> str:
        return f"while not halted, at most {self.p['max_iters']} times"

    def masked(self) -> bool:
        return True

    def indexed(self) -> bool:   # a plain result is masked from the second step on
        return bool(with_role(self.body, BODY_OUTPUT, control.OUTPUT.name))

    def target(self, n: Node, role_name: str) -> str:
        if role_name == control.HALT.name:
            self.halt_node = n
            self.halt = self.ctx.name(f"{self.node.name}_halt", "halt")
            return self.halt
        return self.masked_target(n, role_name) or super().target(n, role_name)

    def before(self) -> None:
        ctx = self.ctx
        # The step count is kept only when some wire reads it.
        self.counted = (self.node.id, "iterations") in ctx.scope.consumed
        if self.counted:
            self.it = self.out_vars["iterations"]
            ctx.line(f"{self.it} = {self.zeros('')}", [self.out_types["iterations"]])
        self.running = ctx.name(f"{self.node.name}_running", "running")
        if self.per_sample:
            ctx.line(f"{self.running} = {self.batch}.new_ones({self.batch}.shape[0], "
                     "dtype=torch.bool)  # samples not yet halted")
            return
        # On the device of some input (any will do); a loop without inputs runs on the CPU.
        ref = self.batch or next((ctx.var(port) for port in ctx.in_types if port in ctx.incoming),
                                 None)
        ones = f"{ref}.new_ones((), " if ref else "torch.ones((), "
        ctx.line(f"{self.running} = {ones}dtype=torch.bool)  # the batch has not halted")

    def step(self) -> None:
        ctx, running = self.ctx, self.running
        self.keep_masked(running, f"{running}.any()" if self.per_sample else running,
                         per_sample=self.per_sample)
        if self.counted:
            ctx.line(f"{INDENT}{self.it} = {self.it} + {running}")
        if self.per_sample:
            halt_type = ctx.gen.analysis.inputs[
                f"{ctx.path}{PATH_SEP}body{PATH_SEP}{self.halt_node.id}"]["x"]
            ctx.line(f"{INDENT}{running} = {running} & ({per_sample_view(self.halt, halt_type)} "
                     f"<= {self.threshold})")
            ctx.line(f"{INDENT}if not _traced() and not {running}.any():  # all halted")
        else:
            ctx.line(f"{INDENT}{running} = {running} & ~({self.halt}.mean() > {self.threshold})")
            ctx.line(f"{INDENT}if not _traced() and not {running}:")
        ctx.line(f"{INDENT * 2}break")


# One emitter per row of nodes.control.LOOP_MODES, by mode name.
LOOP_EMITTERS: dict[str, type[LoopEmitter]] = {
    control.REPEAT.name: _Repeat, control.SCAN.name: _Scan, control.WHILE.name: _While,
}


def emit_loop(ctx: NodeContext) -> None:
    LOOP_EMITTERS[ctx.params["mode"]](ctx).emit()


# --- branches ---------------------------------------------------------------------------------


def emit_branch(ctx: NodeContext) -> None:
    """A Branch: both bodies' classes, then the lines of its mode (BRANCH_EMITTERS)."""
    p, node = ctx.params, ctx.node
    name = safe_text(node.name)
    then_cls, then_attr = _emit_body(ctx, "then", f"Branch {name}, taken where the condition "
                                     f"exceeds {p['threshold']!r}.", f"{node.name}_then")
    else_cls, else_attr = _emit_body(ctx, "else", f"Branch {name}, taken elsewhere.",
                                     f"{node.name}_else")
    ctx.init(f"self.{then_attr} = {then_cls}()")
    ctx.init(f"self.{else_attr} = {else_cls}()")
    args = [ctx.use(n.id) for n in boundary(node.regions["then"], BODY_INPUT)]
    cond = ctx.use("cond")
    outs = ctx.outputs()
    BRANCH_EMITTERS[p["mode"]](ctx, cond, _body_call(then_cls, f"self.{then_attr}", args),
                               _body_call(else_cls, f"self.{else_attr}", args), outs)


def _hard_branch(ctx: NodeContext, cond: str, then_call: str, else_call: str,
                 outs: list[str]) -> None:
    """One body for the whole batch, chosen by the batch mean of the condition: a Python `if`
    in eager code, `torch.cond` in traced code (both bodies kept, one run). torch.cond admits
    no output that aliases an input (a body may pass its input through), hence the copies."""
    take = ctx.name(f"{ctx.node.name}_take_then", "take_then")
    ctx.line(f"{take} = {cond}.mean() > {literal(ctx.params['threshold'])}"
             "  # () the whole batch takes then")
    declare(ctx, outs, ctx.out_types)
    targets = ", ".join(outs)
    then_body, args = _split_call(then_call)
    else_body, _ = _split_call(else_call)
    copied = "{}(*a).clone()" if len(outs) == 1 else "tuple(t.clone() for t in {}(*a))"
    operands = f"({args},)" if args and "," not in args else f"({args})"
    ctx.line("if _traced():  # traced: torch.cond, so the program keeps both bodies")
    ctx.line(f"{INDENT}{targets} = torch.cond({take}, lambda *a: {copied.format(then_body)}, "
             f"lambda *a: {copied.format(else_body)}, {operands})")
    ctx.line(f"elif {take}:")
    ctx.line(f"{INDENT}{targets} = {then_call}")
    ctx.line("else:")
    ctx.line(f"{INDENT}{targets} = {else_call}")


def _per_sample_branch(ctx: NodeContext, cond: str, then_call: str, else_call: str,
                       outs: list[str]) -> None:
    mask = ctx.name(f"{ctx.node.name}_mask", "mask")
    cond = per_sample_view(cond, ctx.in_types["cond"])
    ctx.line(f"{mask} = {cond} > {literal(ctx.params['threshold'])}  # (B,) which samples take then")
    then_vars = [ctx.name(f"then_{v}") for v in outs]
    else_vars = [ctx.name(f"else_{v}") for v in outs]
    ctx.line(f"{', '.join(then_vars)} = {then_call}")
    ctx.line(f"{', '.join(else_vars)} = {else_call}")
    for var, a, b, t in zip(outs, then_vars, else_vars, ctx.out_types, strict=True):
        ctx.line(f"{var} = torch.where({mask_for(mask, t.rank)}, {a}, {b})", [t])


# One emitter per row of nodes.control.BRANCH_MODES, by mode name.
BRANCH_EMITTERS: dict[str, Callable[[NodeContext, str, str, str, list[str]], None]] = {
    control.HARD.name: _hard_branch, control.PER_SAMPLE.name: _per_sample_branch,
}

# --- calls of functions -------------------------------------------------------------------


def emit_function_call(ctx: NodeContext) -> None:
    """A Call: its function's class (written once per function and input types), the module
    running it - the call's own, or its weight group's, one per group in this class - and
    the call of that module."""
    p, node, gen = ctx.params, ctx.node, ctx.gen
    body = gen.functions[p["function"]].body
    prefix = f"{ctx.path}{PATH_SEP}{p['function']}{PATH_SEP}"
    cls, shift = _function_class(ctx, prefix)
    weights = p["weights"]
    if weights == control.OWN_WEIGHTS:
        attr = ctx.module_path() or ctx.name(node.name, "call")
        ctx.init(f"{attribute(attr)} = {cls}()")
    else:
        attr = ctx.scope.groups.get(weights)
        if attr is None:
            attr = ctx.scope.groups[weights] = ctx.name(weights, "group")
            ctx.init(f"self.{attr} = {cls}()  # weight group {safe_text(weights)}, shared by its calls")
    gen.region_attrs[prefix] = attr
    args = [ctx.use(n.id) for n in boundary(body, BODY_INPUT)]
    outs = ctx.outputs(qualify=True)   # `enc1_y`: the call's own name holds its module
    call = _body_call(cls, attribute(attr), args, shift)
    if len(outs) == 1:   # a module call is typed Any: the annotation keeps forward's typed
        ctx.line(f"{outs[0]}: torch.Tensor = {call}", ctx.out_types)
        return
    declare(ctx, outs, ctx.out_types)
    ctx.line(f"{', '.join(outs)} = {call}")


def _function_class(ctx: NodeContext, prefix: str) -> tuple[str, int]:
    """The class of this Call's function for its input types, written now if it is new, and
    the shift of its wire numbers from the call the class was written for."""
    gen, name = ctx.gen, ctx.params["function"]
    function = gen.functions[name]
    key = (name, tuple((port, t.shape, t.dtype) for port, t in ctx.in_types.items()))
    made = gen.function_classes.get(key)
    if made is None:
        cls = class_name(name, gen.class_names)
        doc = f"Function {safe_text(name)}" + (f": {safe_text(function.doc, 160)}"
                                               if function.doc else ".")
        start, classes = len(gen.edge_keys), len(gen.classes)
        code = gen.emit_class(function.body, gen.scope(function.body, prefix, cls, doc))
        made = (cls, prefix, start, len(gen.edge_keys))
        gen.function_classes[key] = made
        # Inputs that differ only where no constructor looks (a double conv at 8×8 and at
        # 4×4) give the same code: that class serves, its shape comments its first call's.
        # Only a class written alone is compared (none of its bodies' classes came new).
        text = _code_text(code, start) if len(gen.classes) == classes + 1 else None
        twin = gen.function_texts.get((name, text)) if text is not None else None
        if twin is None:
            if text is not None:
                gen.function_texts[(name, text)] = made
            return cls, 0
        gen.classes.pop()
        gen.class_names.discard(cls)
        gen.function_classes[key] = twin
        return twin[0], start - twin[2]
    # The same class serves this call: its nodes' attributes are those of the first call,
    # and its wires get numbers of their own, in the same order, so that tapped code
    # (numbering as for the first call) is shifted to this call's wires.
    cls, first, start, end = made
    for table in (gen.attrs, gen.region_attrs):
        table.update({prefix + k[len(first):]: v for k, v in list(table.items())
                      if k.startswith(first)})
    shift = len(gen.edge_keys) - start
    for k in range(start, end):
        here = prefix + gen.edge_keys[k][len(first):]
        gen.edge_numbers[here] = len(gen.edge_keys)
        gen.edge_keys.append(here)
    return cls, shift


def _code_text(code: ClassCode, start: int) -> str:
    """A class's code as behaviour sees it: its lines without comments, wire numbers counted
    from `start` (the first wire it reads), so two calls' classes compare equal when they
    would run alike."""
    def plain(text: str) -> str:
        text = _TAP.sub(lambda m: f"\x00tap{int(m.group(1)) - start}:{m.group(2)}\x00", text)
        text = _BODY_CALL.sub(lambda m: f"\x00body:{m.group(1)}+{int(m.group(2) or 0) - start}:"
                              f"{m.group(3)}\x00(", text)
        return text.split("  # ", 1)[0]

    return "\n".join([*(plain(ln.text) for ln in code.init), "", *(plain(ln.text) for ln in code.body)])


# Blocks whose kind is control flow; every other block emits by its spec's `emit`.
CONTROL_EMITTERS: dict[str, Callable[[NodeContext], None]] = {
    "loop": emit_loop, "branch": emit_branch, "call": emit_function_call,
}


# --- the file ---------------------------------------------------------------------------------


def render(gen: Generator, graph: Graph, top: ClassCode) -> Generated:
    """The file: a header, the imports the code needs, every class, the tapped functions."""
    # The file as two parallel lists, text and node path per line (None: no node). The
    # forward lines still hold their markers; each part of the file renders them at once.
    texts: list[str] = []
    nodes: list[str | None] = []

    def add(*lines: str) -> None:
        texts.extend(lines)
        nodes.extend([None] * len(lines))

    add(f"# Generated by dprog from the graph {safe_text(graph.name)!s}; "
        "edit the graph, not this file.",
        f'"""{top.name}: a model built in dprog, in plain PyTorch."""', "")
    header = len(texts)   # the imports go here once we know which names the code reads
    add("", f'__all__ = ["{top.name}"]')
    if any("_traced()" in ln.text for cls in gen.classes for ln in cls.body):
        add("", "", *TRACED.splitlines())
    for cls in gen.classes:
        add("", "", f"class {cls.name}(nn.Module):")
        if cls.doc:
            add(f'{INDENT}"""{cls.doc}"""', "")
        declarations = [ln for ln in cls.init if ln.in_class]
        if declarations:
            texts.extend([INDENT + ln.text for ln in declarations])
            nodes.extend([ln.node for ln in declarations])
            add("")
        add(f"{INDENT}def __init__(self) -> None:", f"{INDENT * 2}super().__init__()")
        init = [ln for ln in cls.init if not ln.in_class]
        texts.extend([INDENT * 2 + ln.text for ln in init])
        nodes.extend([ln.node for ln in init])
        args = "".join(f", {a}: torch.Tensor" for a in cls.args)
        add("", f"{INDENT}def forward(self{args}) -> {_returns(cls.returns)}:")
        _forward_into(cls, 2, texts, nodes)
    plain = len(texts)   # the tapped functions follow
    if gen.tap and any(m.group(2) for cls in gen.classes for ln in cls.body
                       for m in _BODY_CALL.finditer(ln.text)):
        add("", "", *SHIFTED.splitlines())
    if gen.tap:
        for cls in gen.classes:
            add("", "", f"def {cls.name}_forward(self, tap{''.join(', ' + a for a in cls.args)}):")
            _forward_into(cls, 1, texts, nodes)
    imports = _imports(gen)
    text = "\n".join([*texts[:header], *imports, *texts[header:plain]]) + "\n"
    text = _render_markers(text, tap=False)
    if plain < len(texts):
        text += _render_markers("\n".join(texts[plain:]) + "\n", tap=True)
    nodes[header:header] = [None] * len(imports)
    line_nodes = {i: node for i, node in enumerate(nodes, 1) if node}
    return Generated(text, top.name, line_nodes, gen.edge_keys,
                     [c.name for c in gen.classes[:-1]], _node_modules(gen))


# The switch between eager and traced control flow, written into files that have some. Eager
# code keeps its early exits (a while loop's break saves the steps left once all halted) and
# Python `if`s; traced code must hold the control flow itself, not the one path the example
# inputs took, and the masked loops and torch.cond it gets instead give the same outputs.
TRACED = '''\
def _traced() -> bool:
    """Whether torch.compile, torch.export (and so the ONNX exporter), torch.jit.trace or a
    torch.func transform runs this code. Loops then run all their steps, the finished ones
    masked, and hard branches become torch.cond: the same outputs, with no step or branch
    decided by the inputs used for tracing."""
    return (torch.compiler.is_compiling() or torch._C._is_tracing()
            or torch._C._are_functorch_transforms_active())'''


def _returns(n: int) -> str:
    """A forward's return annotation for `n` tensors."""
    return "None" if n == 0 else "torch.Tensor" if n == 1 else \
        f"tuple[{', '.join(['torch.Tensor'] * n)}]"


def _imports(gen: Generator) -> list[str]:
    # torch is always read: the forward methods' annotations name torch.Tensor.
    imports = ["import torch"]
    if gen.uses_functional:
        imports.append("import torch.nn.functional as F")
    imports.append("from torch import nn")
    return imports


def _forward_into(cls: ClassCode, depth: int, texts: list[str], nodes: list[str | None]) -> None:
    """The forward body's lines, markers and all, appended to `texts` and their node paths
    to `nodes`."""
    indent = INDENT * depth
    for c in cls.arg_comments:
        texts.append(indent + "# " + safe_text(c, 120))
        nodes.append(None)
    texts.extend([indent + ln.text for ln in cls.body])
    nodes.extend([ln.node for ln in cls.body])


def _node_modules(gen: Generator) -> dict[str, str]:
    """Each recorded attribute, prefixed by the body attributes of its enclosing regions."""
    dotted: dict[str, str] = {"": ""}   # region prefix → its body's dotted path and a dot

    def region_path(prefix: str) -> str:
        # "a/body/b/then/" is the "b/then/" region inside "a/body/"
        if prefix not in dotted:
            parent = "".join(part + PATH_SEP for part in prefix.split(PATH_SEP)[:-3])
            dotted[prefix] = f"{region_path(parent)}{gen.region_attrs[prefix]}."
        return dotted[prefix]

    return {path: region_path(path[: path.rfind(PATH_SEP) + 1]) + attr
            for path, attr in gen.attrs.items()}


# Placeholders the node emitters write in forward lines: `\x00hidden:shown\x00`, rendered
#   plain:  \x00tapK:var\x00 → var         \x00body:C:M\x00( → M(
#   tapped: \x00tapK:var\x00 → tap(K, var)  \x00body:C:M\x00( → C_forward(M, tap,
# where K numbers the wire, C is a body's class and M the module attribute running it. A
# function's class serving a later call reads wires shifted by D: \x00body:C+D:M\x00( →
# C_forward(M, _shifted(tap, D),
_TAP = re.compile(r"\x00tap(\d+):([A-Za-z_][A-Za-z0-9_]*)\x00")
_BODY_CALL = re.compile(r"\x00body:([A-Za-z_][A-Za-z0-9_]*)(?:\+(\d+))?:([^\x00]+)\x00\(")
SHIFTED = '''\
def _shifted(tap, shift):
    """The tap of a function's class at a later call: its wires are numbered `shift` on."""
    return lambda k, value: tap(k + shift, value)'''


def _tapped_body_call(match: re.Match) -> str:
    cls, shift, module = match.groups()
    return f"{cls}_forward({module}, {f'_shifted(tap, {shift})' if shift else 'tap'}, "


def _render_markers(text: str, tap: bool) -> str:
    """`text` with all its markers rendered."""
    if tap:
        return _BODY_CALL.sub(_tapped_body_call, _TAP.sub(r"tap(\1, \2)", text))
    # The markers are the generator's own, so the odd parts of a split are exactly their
    # insides; the plain rendering keeps what follows the last colon (M holds none).
    parts = text.split("\x00")
    parts[1::2] = [inside.rpartition(":")[2] for inside in parts[1::2]]
    return "".join(parts)
