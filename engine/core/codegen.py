"""The code generator: graph → ordered program → Python source.

One generator serves everything: the module the studio and trainer run is the `exec` of
exactly the text `export_python` writes. The source has one line per node (loops and
branches a few), names taken from node labels or ids made into legal, unique identifiers,
literal constructor kwargs, and shape comments.

Safety: no string from a graph file is pasted into code. Names are reduced to
`[a-z0-9_]` identifiers; values arrive only as `repr` of params already validated against
their specs (numbers, booleans, tuples of ints, fixed choices); Expression text is
re-emitted from its checked syntax tree; text that reaches comments or docstrings is
reduced to harmless printable characters.

With `tap=True` the generator also writes `<Class>_forward(self, tap, ...)` functions whose
bodies are the same lines with every edge read wrapped in `tap(k, value)`: the trainer's
gradient-flow probe runs those on sampled steps against the very same module instance.

Pure: no torch.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodes import expression, lookup
from nodes.spec import BlockSpec
from nodes.types import TensorType

from ..incremental.memo import NodeMemo  # moving: the caches leave the core (issue 11)
from .analysis import Analysis, GraphError, analyze, boundary_nodes, loop_iterations
from .graph import PATH_SEP, Edge, Graph, Node

INDENT = "    "

# Attributes every nn.Module already has; a submodule must never shadow one.
# (tests/test_codegen.py checks this list against torch's nn.Module.)
MODULE_ATTRIBUTES = frozenset(["T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu", "zero_grad"])
RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | {
    "torch", "nn", "F", "self", "tap", "i",
    # pycodestyle's ambiguous names (E741/E742): a label "l" or a graph named "I" made the
    # exported file fail ruff.
    "l", "O", "I"} | MODULE_ATTRIBUTES


class Namer:
    """Legal, unique, non-shadowing identifiers from arbitrary text."""

    def __init__(self, taken: set[str] | None = None):
        self.taken = set(RESERVED) | (taken or set())

    def __call__(self, text: str, fallback: str = "v") -> str:
        base = _base_name(str(text), fallback)
        name, i = base, 2
        while name in self.taken:
            name = f"{base}_{i}"
            i += 1
        self.taken.add(name)
        return name

    def would_give(self, calls: list[tuple[str, str]]) -> list[str]:
        """The names these calls would return, one after another, without taking them."""
        extra: set[str] = set()
        out = []
        for text, fallback in calls:
            base = _base_name(str(text), fallback)
            name, i = base, 2
            while name in self.taken or name in extra:
                name = f"{base}_{i}"
                i += 1
            extra.add(name)
            out.append(name)
        return out


@functools.lru_cache(maxsize=8192)   # a pure function of its text, asked once per node
def _base_name(text: str, fallback: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40].rstrip("_")
    base = base or fallback
    if base[0].isdigit():
        base = f"{fallback}_{base}"
    return base


def class_name(text: str, taken: set[str]) -> str:
    words = re.findall(r"[A-Za-z0-9]+", str(text))
    name = "".join(w[:1].upper() + w[1:] for w in words)[:60] or "Model"
    if name[0].isdigit():
        name = "Model" + name
    base, i = name, 2
    while name in taken or name in RESERVED:
        name = f"{base}{i}"
        i += 1
    taken.add(name)
    return name


def safe_text(text: str, limit: int = 80) -> str:
    """Text for comments and docstrings: printable ASCII without quotes or backslashes."""
    cleaned = "".join(c if (" " <= c <= "~" and c not in "\\\"'`") else "?" for c in str(text))
    return cleaned[:limit]


def literal(value: Any) -> str:
    """The repr of a validated param value; refuses anything that is not a plain literal."""
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and not any(c in value for c in "\"\\\n\r"):
        return f'"{value}"'   # the house style's quotes; anything unusual falls through to repr
    if isinstance(value, tuple | list):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if isinstance(value, tuple) and len(value) == 1 else (
            f"({inner})" if isinstance(value, tuple) else f"[{inner}]")
    raise TypeError(f"not a literal: {type(value).__name__}")


@functools.lru_cache(maxsize=1024)
def call_name(qualified: str) -> str:
    """`torch.nn.functional.relu` → `F.relu`, `torch.nn.Linear` → `nn.Linear`."""
    for prefix, short in (("torch.nn.functional.", "F."), ("torch.nn.", "nn.")):
        if qualified.startswith(prefix):
            return short + qualified[len(prefix):]
    return qualified


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


def per_sample_view(var: str, t: TensorType) -> str:
    """A (B,) or (B, 1) per-sample score as (B,)."""
    return var if t.rank == 1 else f"{var}.squeeze(1)"


def mask_for(var: str, rank: int) -> str:
    """A (B,) mask indexed to broadcast over a rank-`rank` tensor: m[:, None, None]."""
    return var if rank <= 1 else f"{var}[:, {', '.join(['None'] * (rank - 1))}]"


@dataclass(slots=True)   # a generation makes one or two per node
class Line:
    text: str
    node: str | None = None   # node path, for tracebacks and the studio's code highlight


@dataclass
class ClassCode:
    name: str
    doc: str
    args: list[str]
    arg_comments: list[str]
    init: list[Line] = field(default_factory=list)
    body: list[Line] = field(default_factory=list)


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


def generate(graph: Graph, analysis: Analysis | None = None, *, tap: bool = False,
             cache: CodeCache | None = None) -> Generated:
    """Raises GraphError when the graph has error diagnostics. With a `cache` kept across the
    edits of one document, the lines of nodes generated before are reused when everything they
    depend on is as it was (see CodeCache); the text is the same either way."""
    analysis = analysis or analyze(graph)
    if not analysis.ok:
        raise GraphError(analysis.errors)
    gen = _Generator(analysis, tap, cache)
    name = class_name(graph.name, gen.class_names)
    doc = f"The graph {safe_text(graph.name)}: {analysis.total_params:,} parameters."
    top = gen.patch(graph, name, doc) if cache is not None else None
    if top is None:
        top = gen.emit_class(graph, "", name, top=True, doc=doc)
    generated = gen.render(graph, top)
    if cache is not None:
        cache._end(patched=gen.main is not None and gen.main.patched)
        if gen.main is not None:
            cache._main[tap] = gen.main.finish(gen)
    return generated


class CodeCache(NodeMemo):
    """The lines each node gave in earlier generations, for regenerating an edited graph.

    A node's lines depend on the node (its type, params, name), its input and output types,
    the variables it reads, the names it is given and the tap numbers of its wires. Graphs
    share unchanged `Node` objects, so for the same object, in the same region, with the same
    types, the generator asks the namer and the wire numbering what they *would* give; when
    that matches the last generation, the recorded lines are reused and those names and
    numbers taken, exactly as emitting would have. Loops and branches (whose bodies are
    classes of their own) are always emitted; the nodes inside them are reused like any other.
    Entries are kept for the nodes of the last two generations. One cache per document.

    Before any of that, a main class whose graph kept its ids, wires and order is patched
    (`_Generator.patch`): only the nodes whose analysis changed are visited.
    """

    def __init__(self) -> None:
        super().__init__()
        self._main: dict[bool, _MainCode] = {}   # by `tap`: the last generation of a main class

    def _entry(self, node: Node) -> list:
        """[node, recorded effect or None] for this node object."""
        key = id(node)
        entry = self._new.get(key)
        if entry is None:
            entry = self._new[key] = self._earlier(node) or [node, None]
        return entry


_ALWAYS_EMITTED = ("loop", "branch")   # bodies are classes of their own: never replayed whole
_EMPTY: Mapping = {}


class _MainCode:
    """A main class's generation, node by node: what `_Generator.patch` starts from to
    generate the next version of the graph, and the generator's state once it was done."""

    def __init__(self, gen: _Generator, graph: Graph, incoming: dict[str, dict[str, Edge]],
                 consumed: set[tuple[str, str]], previous: _MainCode | None = None):
        self.graph, self.order = graph, gen.analysis.order[""]
        self.incoming, self.consumed = incoming, consumed
        self.patched = False
        # node id → (node, params, input types, output types): what its lines were made from
        self.seen: dict[str, tuple] = dict(previous.seen) if previous else {}
        # node id → (init lines, forward lines), for every node but the inputs, in this order:
        self.emitted: list[str] = previous.emitted if previous else []
        self.lines: dict[str, tuple[list[Line], list[Line]]] = dict(previous.lines) if previous else {}
        # node id → (names asked for, names given, ports read, what reading them gave)
        self.asked: dict[str, tuple] = dict(previous.asked) if previous else {}
        self.functional: set[str] = set(previous.functional) if previous else set()   # F.* users
        self.tail: list[Line] = previous.tail if previous else []   # the `return` line
        self.code: ClassCode | None = None

    def saw(self, gen: _Generator, node: Node) -> None:
        analysis, node_id = gen.analysis, node.id
        self.seen[node_id] = (node, analysis.params.get(node_id), analysis.inputs.get(node_id),
                              analysis.outputs.get(node_id))

    def made(self, gen: _Generator, node: Node, init: list[Line], body: list[Line]) -> None:
        """`node`'s lines in a generation node by node (`gen.uses_functional`: whether just
        they set it)."""
        self.emitted.append(node.id)
        self.lines[node.id] = (init, body)
        if gen.uses_functional:
            self.functional.add(node.id)
        effect = gen.memo._entry(node)[1]   # recorded by `emit_memo`, or replayed as recorded
        if effect is not None and effect[0] == "":
            self.asked[node.id] = effect[5:9]

    def changed(self, analysis: Analysis, graph: Graph) -> list[Node] | None:
        """The nodes not made from the very same things as last time; None if one is new."""
        params, inputs, outputs = analysis.params.get, analysis.inputs.get, analysis.outputs.get
        seen = self.seen
        out = []
        for node in graph.nodes:
            node_id = node.id
            was = seen.get(node_id)
            if was is None:
                return None
            if was[0] is not node or was[1] is not params(node_id) or \
                    was[2] is not inputs(node_id) or was[3] is not outputs(node_id):
                out.append(node)
        return out

    def redo(self, gen: _Generator, node: Node) -> bool:
        """Bring a changed node's part up to date; False when only a generation node by node
        can: an input (the arguments), a loop or branch (body classes), a node that asks for
        other names or reads other ports."""
        spec = lookup(node.type)
        if spec is None or spec.kind in ("input", *_ALWAYS_EMITTED):
            return False
        self.saw(gen, node)
        if spec.kind == "output":
            return True   # it reads the same wire: the same `return` line
        gen.attrs.pop(node.id, None)
        return self.emit_again(gen, node, spec)

    def emit_again(self, gen: _Generator, node: Node, spec: BlockSpec) -> bool:
        """Emit `node` again, handing it the names and reads it got last time; False when it
        asks for other names or reads other ports."""
        asked = self.asked.get(node.id)
        if asked is None:
            return False
        again = _AskedAgain(*asked)
        code = ClassCode("", "", [], [])
        ctx = _NodeContext(gen, code, node, spec, "", self.incoming.get(node.id, _EMPTY), {},
                           again, self.consumed)
        ctx.use, ctx.var = again.use, again.var
        functional, gen.uses_functional = gen.uses_functional, False
        try:
            ctx.emit()
        except _AskedOtherwise:
            return False
        finally:
            emitted_functional, gen.uses_functional = gen.uses_functional, functional
        if not again.finished():
            return False
        self.lines[node.id] = (code.init, code.body)
        if emitted_functional:
            self.functional.add(node.id)
        else:
            self.functional.discard(node.id)
        return True

    def finish(self, gen: _Generator) -> _MainCode:
        """Note the generator's state at the end of the generation; returns self."""
        self.classes, self.class_names = gen.classes, frozenset(gen.class_names)
        self.edge_keys, self.edge_numbers = tuple(gen.edge_keys), gen.edge_numbers
        self.attrs, self.region_attrs = gen.attrs, gen.region_attrs
        return self


class _AskedOtherwise(Exception):
    """A node emitted again asked for a name, or read a port, other than last time."""


class _AskedAgain:
    """The namer and port readers for a node emitted again: each answers what it answered
    last time, provided it is asked the same thing in the same place."""

    def __init__(self, calls: list, names: list[str], reads: list, markers: list[str]):
        self.calls, self.names, self.reads, self.markers = calls, names, reads, markers
        self.asked = self.read = 0

    def __call__(self, text: str, fallback: str = "v") -> str:
        k = self.asked
        if k >= len(self.calls) or self.calls[k] != (text, fallback):
            raise _AskedOtherwise
        self.asked += 1
        return self.names[k]

    def _read(self, kind: str, port: str) -> str:
        k = self.read
        if k >= len(self.reads) or self.reads[k] != (kind, port):
            raise _AskedOtherwise
        self.read += 1
        return self.markers[k]

    def use(self, port: str) -> str:
        return self._read("use", port)

    def var(self, port: str) -> str:
        return self._read("var", port)

    def finished(self) -> bool:
        return self.asked == len(self.calls) and self.read == len(self.reads)


class _Generator:
    def __init__(self, analysis: Analysis, tap: bool, memo: CodeCache | None = None):
        self.analysis = analysis
        self.tap = tap
        self.memo = memo
        self.class_names: set[str] = set()
        self.classes: list[ClassCode] = []   # bodies first, the model last
        self.edge_keys: list[str] = []
        self.edge_numbers: dict[str, int] = {}
        self.uses_functional = False
        self.attrs: dict[str, str] = {}          # node path → attribute on its own class
        self.region_attrs: dict[str, str] = {}   # region prefix → body attribute on the parent
        self.main: _MainCode | None = None       # the main class, node by node, with a cache

    # -- classes --

    def emit_class(self, graph: Graph, prefix: str, name: str, *, top: bool,
                   doc: str = "") -> ClassCode:
        names = Namer()
        vars_: dict[tuple[str, str], str] = {}   # (node id, output port) → variable
        args, arg_comments = [], []
        specs = {n.id: lookup(n.type) for n in graph.nodes}
        entry = "input" if top else "body_input"
        for n in graph.nodes:
            if specs[n.id].kind == entry:
                arg = names(n.name, "x")
                vars_[(n.id, "y")] = arg
                args.append(arg)
                arg_comments.append(f"{arg}: {self.out_types(prefix, n)[0]}")
        code = ClassCode(name, doc, args, arg_comments)
        attrs = names  # submodule attributes share the namespace with locals: one name per node
        incoming: dict[str, dict[str, Edge]] = {}
        consumed = set()
        for e in graph.edges:
            incoming.setdefault(e.dst[0], {})[e.dst[1]] = e
            consumed.add(e.src)
        results: dict[str, str] = {}
        main = self.main = _MainCode(self, graph, incoming, consumed) \
            if top and self.memo is not None else None
        for node_id in self.analysis.order[prefix]:
            node = graph.node(node_id)
            spec = specs[node_id]
            if main is not None:
                main.saw(self, node)
            if spec.kind in ("input", "body_input"):
                continue
            ports = incoming.get(node_id, _EMPTY)
            if main is None:
                self.node_lines(node, spec, prefix, ports, vars_, attrs, consumed, code, results)
                continue
            init, body, functional = len(code.init), len(code.body), self.uses_functional
            self.uses_functional = False
            self.node_lines(node, spec, prefix, ports, vars_, attrs, consumed, code, results)
            main.made(self, node, code.init[init:], code.body[body:])
            self.uses_functional |= functional
        # Results in the order the outputs were placed, which is the order callers unpack.
        results = [results[n.id] for n in graph.nodes if n.id in results]
        end = len(code.body)
        if len(results) == 1:
            code.body.append(Line(f"return {results[0]}"))
        elif results:
            code.body.append(Line(f"return {', '.join(results)}"))
        if main is not None:
            main.code, main.tail = code, code.body[end:]
        self.classes.append(code)
        return code

    def node_lines(self, node: Node, spec: BlockSpec, prefix: str, ports: Mapping[str, Edge],
                   vars_: dict[tuple[str, str], str], names: Namer, consumed: set[tuple[str, str]],
                   code: ClassCode, results: dict[str, str]) -> None:
        """A node's lines, added to `code` (its result variable to `results` for an output)."""
        memo = self.memo
        if memo is not None and spec.kind not in _ALWAYS_EMITTED and \
                self.replay(node, prefix, ports, vars_, names, code):
            return
        ctx = _NodeContext(self, code, node, spec, prefix, ports, vars_, names, consumed)
        if spec.kind in ("output", "body_output"):
            results[node.id] = ctx.use("x")
        elif memo is not None and spec.kind not in _ALWAYS_EMITTED:
            self.emit_memo(ctx)
        else:
            ctx.emit()

    def patch(self, graph: Graph, name: str, doc: str) -> ClassCode | None:
        """The main class by patching the cache's last generation of a version of this graph
        with the same ids, wires and order: the nodes whose analysis is not the very same (an
        analysis built with an AnalysisCache hands back the same dicts for untouched nodes)
        are emitted again, with the names and wire numbers they took last time, which they must
        ask for again in the same order. Everything else - the other nodes' lines, the body
        classes, names and wire numbers - is as it was. None (having changed nothing) when
        that does not apply (a changed input, loop or branch, many changes, a node that now
        names or reads differently); then the class is generated node by node.

        Why: regenerating a 1,000-node graph after one edit used to cost ~20 ms even with each
        unchanged node's lines replayed; a patch costs the edited nodes and a few copies."""
        was = self.memo._main.get(self.tap)
        if was is None:
            return None
        order = self.analysis.order[""]
        old = was.graph
        if graph.edges is not old.edges or graph.name != old.name \
                or len(graph.nodes) != len(old.nodes) or (order is not was.order and order != was.order):
            return None
        changed = was.changed(self.analysis, graph)
        if changed is None or len(changed) * 4 > len(graph.nodes):
            return None
        main = _MainCode(self, graph, was.incoming, was.consumed, previous=was)
        self.attrs = dict(was.attrs)
        if not all(main.redo(self, node) for node in changed):
            self.attrs = {}
            return None
        main.patched = True
        self.main = main
        code = ClassCode(name, doc, was.code.args, was.code.arg_comments,
                         [ln for node_id in main.emitted for ln in main.lines[node_id][0]],
                         [ln for node_id in main.emitted for ln in main.lines[node_id][1]])
        code.body.extend(was.tail)
        main.code = code
        self.classes = [*was.classes[:-1], code]
        self.class_names = set(was.class_names)
        self.edge_keys, self.edge_numbers = list(was.edge_keys), was.edge_numbers
        self.region_attrs = was.region_attrs
        self.uses_functional = bool(main.functional)
        self.memo.patches += 1
        self.memo.hits += len(graph.nodes) - len(changed)
        return code

    def replay(self, node: Node, prefix: str, incoming: Mapping[str, Edge],
               vars_: dict[tuple[str, str], str], names: Namer, code: ClassCode) -> bool:
        """The lines `node` gave last time, taken again (names, wire numbers and all) when
        everything they were made from is as it was; False (having changed nothing) if not."""
        effect = self.memo._entry(node)[1]
        if effect is None:
            return False
        (at, ins, in_types, outs_seen, out_types, name_calls, taken, reads, markers, init, body,
         attr, functional, outs) = effect
        if at != prefix:
            return False
        path = prefix + node.id
        # An analysis built with an AnalysisCache hands back the very same dicts for a node
        # whose inputs did not change: identity first, equality when that fails.
        now_ins = self.analysis.inputs.get(path, _EMPTY)
        if now_ins is not ins and tuple(now_ins.items()) != in_types:
            return False
        now_outs = self.analysis.outputs.get(path, _EMPTY)
        if now_outs is not outs_seen and tuple(now_outs.values()) != out_types:
            return False
        if names.would_give(name_calls) != taken:
            return False
        numbers = self._would_read(prefix, incoming, vars_, reads)
        if numbers != markers:
            return False
        self.memo.hits += 1
        names.taken.update(taken)
        for kind, port in reads:
            if kind == "use":
                self.edge_index(prefix, incoming[port])   # numbers its wire, as emitting would
        for key, var in outs:
            vars_[key] = var
        code.init.extend(init)
        code.body.extend(body)
        if attr is not None:
            self.attrs[path] = attr
        self.uses_functional |= functional
        return True

    def emit_memo(self, ctx: _NodeContext) -> None:
        """`ctx.emit()`, recording what its lines were made from, for `replay`."""
        memo = self.memo
        entry = memo._entry(ctx.node)
        memo.misses += 1
        # Emit, recording what the lines were made from.
        name_calls, names, reads, markers = [], [], [], []
        namer, use, var = ctx.names, ctx.use, ctx.var

        class Recording:
            def __call__(self, text: str, fallback: str = "v") -> str:
                name = namer(text, fallback)
                name_calls.append((text, fallback))
                names.append(name)
                return name

            def __getattr__(self, item: str):
                return getattr(namer, item)

        def recorded(kind: str, fn):
            def read(port: str) -> str:
                text = fn(port)
                reads.append((kind, port))
                markers.append(text)
                return text
            return read

        ctx.names, ctx.use, ctx.var = Recording(), recorded("use", use), recorded("var", var)
        n_init, n_body = len(ctx.code.init), len(ctx.code.body)
        functional, self.uses_functional = self.uses_functional, False
        try:
            ctx.emit()
        finally:
            ctx.names, ctx.use, ctx.var = namer, use, var
            functional, self.uses_functional = self.uses_functional, functional or self.uses_functional
        ins = self.analysis.inputs.get(ctx.path, _EMPTY)
        ports = self.analysis.outputs.get(ctx.path, _EMPTY)
        entry[1] = (ctx.prefix, ins, tuple(ins.items()), ports, tuple(ports.values()), name_calls,
                    names, reads, markers, ctx.code.init[n_init:], ctx.code.body[n_body:],
                    self.attrs.get(ctx.path), functional,
                    [((ctx.node.id, p), ctx.vars[(ctx.node.id, p)]) for p in ports
                     if (ctx.node.id, p) in ctx.vars])

    def _would_read(self, prefix: str, incoming: Mapping[str, Edge],
                    vars_: dict[tuple[str, str], str], reads: list[tuple[str, str]]
                    ) -> list[str] | None:
        """What `use`/`var` of these ports would return now, numbering nothing."""
        out, fresh = [], {}
        for kind, port in reads:
            edge = incoming.get(port)
            var = vars_.get(edge.src) if edge is not None else None
            if var is None:
                return None
            if kind == "var":
                out.append(var)
                continue
            key = prefix + edge.key
            number = self.edge_numbers.get(key)
            if number is None:
                number = fresh.setdefault(key, len(self.edge_keys) + len(fresh))
            out.append(f"\x00tap{number}:{var}\x00")
        return out

    def out_types(self, prefix: str, node: Node) -> list[TensorType]:
        return list(self.analysis.outputs.get(prefix + node.id, {}).values())

    def edge_index(self, prefix: str, edge: Edge) -> int:
        """The tap number of an edge; reading an edge twice (say, in a loop) taps it twice."""
        key = prefix + edge.key
        if key not in self.edge_numbers:
            self.edge_numbers[key] = len(self.edge_keys)
            self.edge_keys.append(key)
        return self.edge_numbers[key]

    # -- the file --

    def render(self, graph: Graph, top: ClassCode) -> Generated:
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
        for cls in self.classes:
            add("", "", f"class {cls.name}(nn.Module):")
            if cls.doc:
                add(f'{INDENT}"""{cls.doc}"""', "")
            add(f"{INDENT}def __init__(self):", f"{INDENT * 2}super().__init__()")
            indent = INDENT * 2
            texts.extend([indent + ln.text for ln in cls.init])
            nodes.extend([ln.node for ln in cls.init])
            add("", f"{INDENT}def forward(self{''.join(', ' + a for a in cls.args)}):")
            self._forward_into(cls, 2, texts, nodes)
        plain = len(texts)   # the tapped functions follow
        if self.tap:
            for cls in self.classes:
                add("", "", f"def {cls.name}_forward(self, tap{''.join(', ' + a for a in cls.args)}):")
                self._forward_into(cls, 1, texts, nodes)
        # `import torch` only when the code reads `torch`: a model of nn modules and F.* calls
        # alone (say Linear -> GELU) would otherwise export an unused import (ruff F401).
        code = "\n".join([ln.text for cls in self.classes for lines in (cls.init, cls.body)
                          for ln in lines])
        imports = ["import torch"] if _reads_torch(code) else []
        if self.uses_functional:
            imports.append("import torch.nn.functional as F")
        imports.append("from torch import nn")
        text = "\n".join([*texts[:header], *imports, *texts[header:plain]]) + "\n"
        text = _render_markers(text, tap=False)
        if plain < len(texts):
            text += _render_markers("\n".join(texts[plain:]) + "\n", tap=True)
        nodes[header:header] = [None] * len(imports)
        line_nodes = {i: node for i, node in enumerate(nodes, 1) if node}
        return Generated(text, top.name, line_nodes, self.edge_keys,
                         [c.name for c in self.classes[:-1]], self.node_modules())

    def node_modules(self) -> dict[str, str]:
        """Each recorded attribute, prefixed by the body attributes of its enclosing regions."""
        dotted: dict[str, str] = {"": ""}   # region prefix → its body's dotted path and a dot

        def region_path(prefix: str) -> str:
            # "a/body/b/then/" is the "b/then/" region inside "a/body/"
            if prefix not in dotted:
                parent = "".join(part + PATH_SEP for part in prefix.split(PATH_SEP)[:-3])
                dotted[prefix] = f"{region_path(parent)}{self.region_attrs[prefix]}."
            return dotted[prefix]

        return {path: region_path(path[: path.rfind(PATH_SEP) + 1]) + attr
                for path, attr in self.attrs.items()}

    def _forward_into(self, cls: ClassCode, depth: int, texts: list[str],
                      nodes: list[str | None]) -> None:
        """The forward body's lines, markers and all, appended to `texts` and their node paths
        to `nodes`."""
        indent = INDENT * depth
        for c in cls.arg_comments:
            texts.append(indent + "# " + safe_text(c, 120))
            nodes.append(None)
        texts.extend([indent + ln.text for ln in cls.body])
        nodes.extend([ln.node for ln in cls.body])


def _reads_torch(code: str) -> bool:
    """Whether generated code reads `torch` in some line's code. That code never holds a `#`
    (its only strings are names), so what follows one is a comment, whose words don't count."""
    at = code.find("torch.")
    while at >= 0:
        line_start = code.rfind("\n", 0, at) + 1
        part_of_a_name = at > 0 and _NAME_OR_DOT.match(code[at - 1])   # x.torch., mytorch.
        if not part_of_a_name and "#" not in code[line_start:at]:
            return True
        at = code.find("torch.", at + 1)
    return False


_NAME_OR_DOT = re.compile(r"[\w.]")

# Placeholders the node emitters write in forward lines: `\x00hidden:shown\x00`, rendered
#   plain:  \x00tapK:var\x00 → var         \x00body:C:M\x00( → M(
#   tapped: \x00tapK:var\x00 → tap(K, var)  \x00body:C:M\x00( → C_forward(M, tap,
# where K numbers the wire, C is a body's class and M the module attribute running it.
_TAP = re.compile(r"\x00tap(\d+):([A-Za-z_][A-Za-z0-9_]*)\x00")
_BODY_CALL = re.compile(r"\x00body:([A-Za-z_][A-Za-z0-9_]*):([^\x00]+)\x00\(")


def _render_markers(text: str, tap: bool) -> str:
    """`text` with all its markers rendered."""
    if tap:
        return _BODY_CALL.sub(r"\1_forward(\2, tap, ", _TAP.sub(r"tap(\1, \2)", text))
    # The markers are the generator's own, so the odd parts of a split are exactly their
    # insides; the plain rendering keeps what follows the last colon (M holds none).
    parts = text.split("\x00")
    parts[1::2] = [inside.rpartition(":")[2] for inside in parts[1::2]]
    return "".join(parts)


class _NodeContext:
    """Emits the lines of one node."""

    def __init__(self, gen: _Generator, code: ClassCode, node: Node, spec: BlockSpec, prefix: str,
                 incoming: Mapping[str, Edge], vars_: dict[tuple[str, str], str], names: Namer,
                 consumed: set[tuple[str, str]]):
        self.gen, self.code, self.node, self.spec, self.prefix = gen, code, node, spec, prefix
        self.incoming, self.vars, self.names = incoming, vars_, names
        self.consumed = consumed   # (node id, port) pairs some wire reads
        self.path = path = prefix + node.id
        analysis = gen.analysis
        self.params = analysis.params[path]
        self.in_types = analysis.inputs.get(path, _EMPTY)
        self.out_ports = analysis.outputs.get(path, _EMPTY)   # port → type, in port order
        self.out_types = list(self.out_ports.values())

    def use(self, port: str) -> str:
        """The expression reading input `port`: its variable, marked for an optional tap."""
        edge = self.incoming[port]
        var = self.vars[edge.src]
        return f"\x00tap{self.gen.edge_index(self.prefix, edge)}:{var}\x00"

    def var(self, port: str) -> str:
        """The plain variable behind input `port`, for reading its shape or device only."""
        return self.vars[self.incoming[port].src]

    def line(self, text: str, types: list[TensorType] | None = None) -> None:
        self.code.body.append(Line(text + shape_comment(types or []), self.path))

    def init(self, text: str) -> None:
        self.code.init.append(Line(text, self.path))

    def outputs(self, ports: list[str] | None = None, *, qualify: bool = False) -> list[str]:
        """Variables for the node's outputs: its name, or name_port when it has several."""
        ports = ports if ports is not None else list(self.out_ports)
        single = len(ports) == 1 and not qualify
        out = []
        for port in ports:
            var = self.names(self.node.name if single else f"{self.node.name}_{port}", self.node.type)
            self.vars[(self.node.id, port)] = var
            out.append(var)
        return out

    def emit(self) -> None:
        kind = self.spec.kind
        if kind == "loop":
            _emit_loop(self)
        elif kind == "branch":
            _emit_branch(self)
        elif self.node.type == "constant":
            attr = self.outputs()[0]
            p = self.params
            self.init(f"self.register_buffer({attr!r}, torch.full({literal(tuple(p['shape']))}, "
                      f"{literal(p['value'])}), persistent=False)")
            self.line(f"{attr} = self.{attr}", self.out_types)
        elif self.node.type == "parameter":
            attr = self.outputs()[0]
            p = self.params
            shape = literal(tuple(p["shape"]))
            start = {"zeros": f"torch.zeros({shape})", "ones": f"torch.ones({shape})",
                     "normal": f"torch.randn({shape}) * {literal(p['scale'])}",
                     "uniform": f"(torch.rand({shape}) * 2 - 1) * {literal(p['scale'])}"}[p["init"]]
            self.init(f"self.{attr} = nn.Parameter({start})")
            self.gen.attrs[self.path] = attr
            self.line(f"{attr} = self.{attr}", self.out_types)
        else:
            self.emit_op()

    def emit_op(self) -> None:
        spec, p = self.spec, self.params
        types = list(self.in_types.values())
        outs = self.outputs()
        inputs = {port: self.use(port) for port in self.in_types}   # in port order
        arg_values = spec.args(p, types)   # once: the template and its placeholders share it
        if self.node.type == "expression":
            names = tuple("abcd"[: p["inputs"]])
            self.line(f"{', '.join(outs)} = "
                      + expression.render(p["expr"], names, {k: inputs[k] for k in names}),
                      self.out_types)
            return
        call = None   # without a template: the module or function called on the inputs
        if spec.module:
            attr = outs[0]
            kwargs = ", ".join(f"{k}={literal(v)}" for k, v in spec.init(p, types).items())
            self.init(f"self.{attr} = {call_name(spec.module)}({kwargs})")
            self.gen.attrs[self.path] = attr
            call = f"self.{attr}({', '.join(inputs.values())})"
            inputs["self"] = f"self.{attr}"
        elif spec.function:
            name = call_name(spec.function)
            self.gen.uses_functional |= name.startswith("F.")
            args = [*inputs.values(), *(f"{k}={literal(v)}" for k, v in arg_values.items())]
            call = f"{name}({', '.join(args)})"
        template = spec.template
        if template or call is None:
            if callable(template):
                template = template(p, types)
            values = {k: literal(v) for k, v in arg_values.items()} if arg_values else {}
            values.update(inputs)
            call = template.format_map(values)
        self.line(f"{', '.join(outs)} = {call}", self.out_types)


def _body_call(ctx: _NodeContext, cls: str, module: str, args: list[str]) -> str:
    return f"\x00body:{cls}:{module}\x00({', '.join(args)})"


def _emit_body(ctx: _NodeContext, region: str, doc: str) -> tuple[str, str]:
    """Generate the body's class; returns (class name, attribute holding its module)."""
    body = ctx.node.regions[region]
    cls = class_name(f"{ctx.node.name} {region}", ctx.gen.class_names)
    prefix = f"{ctx.path}{PATH_SEP}{region}{PATH_SEP}"
    ctx.gen.emit_class(body, prefix, cls, top=False, doc=doc)
    attr = ctx.names(f"{ctx.node.name}_{region}" if ctx.spec.kind == "branch" else ctx.node.name,
                     ctx.node.type)
    ctx.gen.region_attrs[prefix] = attr
    return cls, attr


def _role(node: Node, default: str) -> str:
    return node.params.get("role", default)


def _emit_loop(ctx: _NodeContext) -> None:
    p, node = ctx.params, ctx.node
    mode = p["mode"]
    body = node.regions["body"]
    ins = boundary_nodes(body, "body_input")
    outs = boundary_nodes(body, "body_output")
    length = None
    seq_dim = p["dim"]
    for n in ins:
        if _role(n, "context") == "sequence":
            length = ctx.in_types[n.id].shape[seq_dim]
    what = {"repeat": f"repeat {p['count']} times" if p["count_from"] == "param"
            else "repeat count times", "scan": f"scan over dim {seq_dim}",
            "while": f"while not halted, at most {p['max_iters']} times"}[mode]
    cls, attr = _emit_body(ctx, "body", f"One iteration of loop {safe_text(node.name)}: {what}.")
    n_iter = loop_iterations(p, length)
    shared = p["share_weights"]
    if shared:
        ctx.init(f"self.{attr} = {cls}()")
    else:
        ctx.init(f"self.{attr} = nn.ModuleList({cls}() for _ in range({n_iter}))")
    module = f"self.{attr}" if shared else f"self.{attr}[i]"
    loop_var = "_" if shared else "i"

    ctx.line(f"# {safe_text(node.name)}: {what}")
    out_ports = [port for port in ctx.gen.analysis.outputs[ctx.path]]
    out_vars = dict(zip(out_ports, ctx.outputs(out_ports, qualify=True), strict=True))
    out_types = ctx.gen.analysis.outputs[ctx.path]
    # Zeros (initial states, step counts) take the batch size, device and dtype of a batched
    # float input; the first input could be unbatched or hold long token ids, and its zeros
    # then had the wrong size or dtype. The analysis guarantees a batched input where needed.
    batched = [k for k, t in ctx.in_types.items() if t.batched]
    ref = next((k for k in batched if ctx.in_types[k].dtype == "float"), batched[0] if batched else None)
    batch_ref = ctx.var(ref) if ref else None
    zeros_dtype = "" if ref is None or ctx.in_types[ref].dtype == "float" else ", dtype=torch.float"

    call_args: list[str] = []
    sequences: list[tuple[str, str]] = []   # (per-step variable, sequence expression)
    for n in ins:
        role = _role(n, "context")
        if role == "state":
            var = out_vars[n.id]
            if n.id in ctx.incoming:
                ctx.line(f"{var} = {ctx.use(n.id)}", [out_types[n.id]])
            else:
                dims = ", ".join(str(d) for d in out_types[n.id].shape[1:])
                ctx.line(f"{var} = {batch_ref}.new_zeros({batch_ref}.shape[0], {dims}{zeros_dtype})",
                         [out_types[n.id]])
            call_args.append(var)
        elif role == "sequence":
            step = ctx.names(n.name, "x_t")
            sequences.append((step, f"{ctx.use(n.id)}.unbind({seq_dim})"))
            call_args.append(step)
        else:
            call_args.append(ctx.use(n.id))

    targets: list[str] = []
    collected: list[tuple[str, str]] = []   # (list variable, output variable)
    halt_var = None
    per_sample = mode == "while" and p["halt"] == "per_sample"
    for n in outs:
        role = _role(n, "output")
        if role == "state":
            state_var = out_vars[n.params["state"]]
            targets.append(ctx.names(f"{state_var}_next") if per_sample else state_var)
        elif role == "halt":
            halt_var = ctx.names(f"{node.name}_halt", "halt")
            targets.append(halt_var)
        elif mode == "scan":
            step_out = ctx.names(f"{out_vars[n.id]}_t")
            collected.append((ctx.names(f"{out_vars[n.id]}_steps"), out_vars[n.id]))
            targets.append(step_out)
        else:
            targets.append(out_vars[n.id])
    for list_var, _ in collected:
        ctx.line(f"{list_var} = []")
    # Count iterations only when someone reads the count.
    counted = mode == "while" and (node.id, "iterations") in ctx.consumed
    if counted:
        it = out_vars["iterations"]
        ctx.line(f"{it} = {batch_ref}.new_zeros({batch_ref}.shape[0]{zeros_dtype})",
                 [out_types["iterations"]])
    if per_sample:
        running = ctx.names(f"{node.name}_running", "running")
        ctx.line(f"{running} = {batch_ref}.new_ones({batch_ref}.shape[0], dtype=torch.bool)"
                 "  # samples not yet halted")

    call = _body_call(ctx, cls, module, call_args)
    if mode == "scan":
        steps = [s for s, _ in sequences]
        source = sequences[0][1] if len(sequences) == 1 else \
            f"zip({', '.join(e for _, e in sequences)}, strict=True)"
        head = ", ".join(steps)
        ctx.line(f"for i, {head} in enumerate({source}):" if not shared and len(steps) == 1 else
                 f"for i, ({head}) in enumerate({source}):" if not shared else f"for {head} in {source}:")
    elif mode == "repeat" and p["count_from"] == "input":
        count = ctx.names(f"{node.name}_count", "count")
        # nan_to_num: a NaN count made int() raise; it now runs once, like any count below 1.
        ctx.line(f"{count} = int({ctx.use('count')}.max().nan_to_num(1.0).clamp(1, {p['max_iters']}))")
        ctx.line(f"for {loop_var} in range({count}):")
    else:
        ctx.line(f"for {loop_var} in range({n_iter if mode == 'repeat' else p['max_iters']}):")
    ctx.line(f"{INDENT}{', '.join(targets)} = {call}")
    # Only a scan collects its plain outputs step by step; repeat and while keep the last one
    # (zipping `collected` with them raised ValueError for every such loop with an output).
    plain = [t for t, n in zip(targets, outs, strict=True) if _role(n, "output") == "output"]
    for (list_var, _), target in zip(collected, plain if mode == "scan" else [], strict=True):
        ctx.line(f"{INDENT}{list_var}.append({target})")
    if mode == "while":
        if per_sample:
            for n, target in zip(outs, targets, strict=True):
                if _role(n, "output") == "state":
                    state_var = out_vars[n.params["state"]]
                    rank = out_types[n.params["state"]].rank
                    ctx.line(f"{INDENT}{state_var} = torch.where({mask_for(running, rank)}, {target}, "
                             f"{state_var})  # halted samples keep theirs")
            if counted:
                ctx.line(f"{INDENT}{it} = {it} + {running}")
            halt_node = next(n for n in outs if _role(n, "output") == "halt")
            halt = per_sample_view(halt_var, ctx.gen.analysis.inputs[
                f"{ctx.path}{PATH_SEP}body{PATH_SEP}{halt_node.id}"]["x"])
            ctx.line(f"{INDENT}{running} = {running} & ({halt} <= {literal(p['threshold'])})")
            ctx.line(f"{INDENT}if not {running}.any():")
            ctx.line(f"{INDENT * 2}break")
        else:
            if counted:
                ctx.line(f"{INDENT}{it} = {it} + 1")
            ctx.line(f"{INDENT}if {halt_var}.mean() > {literal(p['threshold'])}:")
            ctx.line(f"{INDENT * 2}break")
    for list_var, var in collected:
        ctx.line(f"{var} = torch.stack({list_var}, dim={seq_dim})", [out_types[
            next(port for port, v in out_vars.items() if v == var)]])


def _emit_branch(ctx: _NodeContext) -> None:
    p, node = ctx.params, ctx.node
    then_cls, then_attr = _emit_body(ctx, "then", f"Branch {safe_text(node.name)}, taken where the "
                                     f"condition exceeds {p['threshold']!r}.")
    else_cls, else_attr = _emit_body(ctx, "else", f"Branch {safe_text(node.name)}, taken elsewhere.")
    ctx.init(f"self.{then_attr} = {then_cls}()")
    ctx.init(f"self.{else_attr} = {else_cls}()")
    args = [ctx.use(n.id) for n in boundary_nodes(node.regions["then"], "body_input")]
    cond = ctx.use("cond")
    outs = ctx.outputs()
    out_types = ctx.out_types
    threshold = literal(p["threshold"])
    then_call = _body_call(ctx, then_cls, f"self.{then_attr}", args)
    else_call = _body_call(ctx, else_cls, f"self.{else_attr}", args)
    if p["mode"] == "hard":
        # One conditional expression, not an if/else statement: the exported file must pass
        # ruff with this repo's rules, and SIM108 flags an if/else that only assigns.
        ctx.line(f"{', '.join(outs)} = {then_call} if {cond}.mean() > {threshold} else {else_call}"
                 "  # one body for the whole batch")
        return
    mask = ctx.names(f"{node.name}_mask", "mask")
    cond = per_sample_view(cond, ctx.in_types["cond"])
    ctx.line(f"{mask} = {cond} > {threshold}  # (B,) which samples take then")
    then_vars = [ctx.names(f"then_{v}") for v in outs]
    else_vars = [ctx.names(f"else_{v}") for v in outs]
    ctx.line(f"{', '.join(then_vars)} = {then_call}")
    ctx.line(f"{', '.join(else_vars)} = {else_call}")
    for var, a, b, t in zip(outs, then_vars, else_vars, out_types, strict=True):
        ctx.line(f"{var} = torch.where({mask_for(mask, t.rank)}, {a}, {b})", [t])

