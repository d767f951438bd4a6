"""Open an existing `nn.Module` as an editable dprog graph (issue 14, first slice).

    imported = import_module(model, example_inputs)     # Imported: .graph, .keys
    compiled = compile_graph(imported.graph)
    compiled.load_state_dict(imported.state_dict(model.state_dict()), strict=True)
    from_torch(model, example_inputs) -> Graph            # the graph alone

**Tracing: torch.fx, not torch.export.** `fx.symbolic_trace` keeps every leaf `nn` module
as one `call_module` node named by its path in the module hierarchy (`features.0`), with the
module object at hand, so a Conv2d's attributes become a conv2d block's params and its
weights keep their state_dict keys. torch.export lowers everything to aten ops
(`aten.convolution`, `aten._native_batch_norm_legit`), losing the modules, the hierarchy and
the attribute values the blocks are made of. fx needs no example inputs to trace; they are
used afterwards to read shapes (fx's ShapeProp) and to check the import numerically.

**Recognition is a table** (`nodes.recognise.RECOGNISE`, pure data beside the block specs):
one row per block and torch form, naming the params' sources. Values a block cannot express
(`padding_mode="reflect"`, BatchNorm's `eps=1e-3`, a non-square kernel) are refused, never
changed: `ImportRefused` names the op, its source line and what to do. So is data-dependent
control flow that fx cannot trace (`if x.sum() > 0`), and any op with no row.

**The module hierarchy becomes functions.** fx inlines user-defined submodules, but each
fx node records the modules it ran in (`nn_module_stack`); the flat graph is regrouped by
them. Each call of a user-defined module becomes a Call node named after the submodule
(`h0`), of a function named after its class (`transformer_block`); instances whose bodies
come out equal share the function, and a class used with different settings gets one
function per variant (dprog functions have no parameters). One instance called twice is a
weight group named after it. torch's own containers (`nn.Sequential`) are not functions.
`flat=True` inlines everything instead.

**Weights and names.** A node's id is its module path within its scope made legal (`fc1`
stays `fc1`; `features.0` becomes `features_0`, as ids cannot hold dots or start with a
digit). A module under a container keeps its path as the node's label (`features.0`), and
the code generator holds a node so labelled at that path, in nn.ModuleDicts
(`self.features["0"]`). So the compiled module has the model's own state_dict keys, and
`load_state_dict(model.state_dict(), strict=True)` works as it is. The one exception is an
attribute name the generator lowercases (`self.Proj` becomes `proj`): `Imported.keys`
(original key → compiled key) records the renaming and `Imported.state_dict` applies it.
Every import is checked before it is returned: the keys and shapes must equal the compiled
module's, and the compiled module loaded with the original weights must give the
original's outputs in eval mode.

Tied parameters of Linear/Embedding blocks in one scope become `Node.ties`. A leaf layer with
weights called twice outside a shared user-defined module is refused.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import math
import operator
import re
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from nodes import lookup
from nodes.expression import FUNCTIONS as EXPRESSION_FUNCTIONS
from nodes.expression import MAX_CONSTANT, input_names
from nodes.recognise import EXPRESSIONS, RECOGNISE, Recognise

from ..core.analysis import analyze
from ..core.graph import ID_PATTERN, Edge, Function, Graph, Node
from ..core.naming import snake_case


class ImportRefused(Exception):
    """The module cannot be imported faithfully; the message says what, where and what to do."""


@dataclass(frozen=True)
class Imported:
    graph: Graph
    keys: dict[str, str] = field(default_factory=dict)   # original state_dict key → compiled key

    def state_dict(self, original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The original module's state_dict under the compiled module's keys."""
        return {self.keys[k]: v for k, v in original.items()}

    @property
    def same_keys(self) -> bool:
        return all(k == v for k, v in self.keys.items())


def from_torch(module: nn.Module, example_inputs: Any) -> Graph:
    """The module as a dprog graph; see `import_module`, which also gives the key map."""
    return import_module(module, example_inputs).graph


# --- the recognition table, resolved against torch ----------------------------------------------


def _resolve(dotted: str) -> Any:
    mod, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(mod), name)


_ROWS: dict[Any, Recognise] | None = None


def _rows() -> dict[Any, Recognise]:
    """Module classes and functions (by identity) and method names → their row."""
    global _ROWS
    if _ROWS is None:
        rows: dict[Any, Recognise] = {}
        for row in RECOGNISE:
            for target in row.targets:
                kind, _, name = target.partition(":")
                key = ("method", name) if kind == "method" else _resolve(name)
                rows[key] = row
        _ROWS = rows
    return _ROWS


def _fresh_id(text: str, taken: set[str]) -> str:
    """A node id from `text` (a module path, an fx name), legal and not in `taken` (which it
    joins): `features.0` → `features_0`, `0` → `m_0`."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_") or "n"
    base = ("m_" + base if not (base[0].isalpha() or base[0] == "_") else base)[:56]
    name, i = base, 2
    while name in taken or not ID_PATTERN.fullmatch(name):
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


class _Batch:
    """The batch size in a traced shape: known only when the model runs."""

    def __repr__(self) -> str:
        return "B"


BATCH_SIZE = _Batch()
# Arithmetic on numbers read from shapes (`C // n_head`, `x.size(-1) ** -0.5`): a number
_NUMBER_OPS = {op: op for op in (operator.floordiv, operator.mul, operator.add, operator.sub,
                                 operator.truediv, operator.pow, operator.neg)}


@dataclass(frozen=True)
class _Device:
    tensor: fx.Node   # `x.device`: where torch.arange puts its positions


_EXPRESSIONS: dict[Any, str] | None = None


def _expression_formula(node: fx.Node, args: list) -> Callable[[Callable], str] | None:
    """How to write this fx node as an Expression's formula, given a function that writes
    each operand; None when the Expression block cannot express it."""
    global _EXPRESSIONS
    if _EXPRESSIONS is None:
        _EXPRESSIONS = {("method", t.partition(":")[2]) if t.startswith("method:")
                        else _resolve(t.partition(":")[2]): f for t, f in EXPRESSIONS.items()}
    key = ("method", node.target) if node.op == "call_method" else node.target
    template = _EXPRESSIONS.get(key) if not node.kwargs else None
    if template is not None:
        # An operator's negative constant is bracketed: (-2.0) ** a, not -(2.0 ** a).
        return lambda operand: template.format(*(
            f"({text})" if text.startswith("-") else text for text in map(operand, args)))
    name = node.target if node.op == "call_method" else (
        node.target.__name__ if getattr(torch, getattr(node.target, "__name__", ""), None)
        is node.target else None)
    if name not in EXPRESSION_FUNCTIONS:
        return None
    count, keywords, _ = EXPRESSION_FUNCTIONS[name]
    if len(args) != count or set(node.kwargs) - set(keywords):
        return None
    return lambda operand: f"torch.{name}(" + ", ".join(
        [*(operand(a) for a in args),
         *(f"{k}={operand(v)}" for k, v in node.kwargs.items() if v is not None)]) + ")"


def _number(value: Any) -> str:
    """A constant operand as the formula writes it; TypeError for anything else."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float) and math.isfinite(value) and abs(value) <= MAX_CONSTANT:
        return repr(value)
    raise TypeError(f"not a number: {value!r}")


def _square(v: Any) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, tuple | list) and v and all(isinstance(x, int) and x == v[0] for x in v):
        return v[0]
    raise ValueError(f"{v!r} is not one int (dprog's blocks take square sizes)")


def _one_dim(v: Any) -> int:
    if isinstance(v, tuple | list) and len(v) == 1:
        v = v[0]
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise ValueError(f"{v!r} is not one dim (the block reduces over one dim; None means all)")


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return (v[0], v[1])
    raise ValueError(f"{v!r} is not an int or a pair of ints")


HOW = {
    "value": lambda v: v,
    "square": _square,
    "present": lambda v: v is not None,
    "pair": _pair,
    "rank": lambda v: len(v),
    "or0": lambda v: 0 if v is None else _square(v),
    "int": lambda v: _one_dim(v),
    "scale": lambda v: 0.0 if v is None else float(v),
}


# --- where an op came from ----------------------------------------------------------------------


def _where(node: fx.Node | None = None, tb: Any = None) -> str:
    """The user's source line: fx's stack trace of a node, or a traceback's last frame outside
    torch."""
    torch_dir = str(Path(torch.__file__).parent)
    frames: list[tuple[str, int, str]] = []
    if node is not None:
        lines = (node.stack_trace or "").splitlines()
        for i, line in enumerate(lines):
            m = re.match(r'\s*File "([^"]+)", line (\d+)', line)
            if m:
                code = lines[i + 1].strip() if i + 1 < len(lines) else ""
                frames.append((m.group(1), int(m.group(2)), code))
    elif tb is not None:
        frames = [(f.filename, f.lineno or 0, (f.line or "").strip())
                  for f in traceback.extract_tb(tb)]
    mine = [f for f in frames if not f[0].startswith(torch_dir) and f[0] != __file__]
    if not mine:
        return ""
    filename, lineno, code = mine[-1]
    return f" at {filename}:{lineno}" + (f" ({code})" if code else "")


def _op_name(node: fx.Node, root: nn.Module) -> str:
    if node.op == "call_module":
        sub = root.get_submodule(node.target)
        return f"module {node.target!r} ({type(sub).__module__}.{type(sub).__qualname__})"
    if node.op == "call_method":
        return f"method .{node.target}()"
    if node.op == "get_attr":
        return f"tensor attribute {node.target!r}"
    t = node.target
    return f"function {getattr(t, '__module__', '') or ''}.{getattr(t, '__name__', t)}".replace(
        "_operator.", "operator.")


# --- the import ---------------------------------------------------------------------------------


class _Importer:
    def __init__(self, root: nn.Module, gm: fx.GraphModule):
        self.root, self.gm = root, gm
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.src: dict[fx.Node, tuple[str, str]] = {}   # fx value → (node id, port)
        self.ids: set[str] = set()
        self.paths: dict[str, str] = {}                # node id → module path
        self.called: set[str] = set()
        self.repeated: list[ImportRefused] = []        # a weight-holding leaf called again
        self.shared_leaves: list[fx.Node] = []
        self.owner: dict[str, tuple[tuple[str, str, type], ...]] = {}   # node id → its modules
        self.hint: dict[str, tuple[bool, str]] = {}    # node id → (a module?, path or fx name)
        self.unusable: dict[fx.Node, ImportRefused] = {}   # refused items, raised when used
        self.tuples: dict[fx.Node, tuple[str, tuple[str | None, ...]]] = {}   # tuple results
        # Plain values the trace computes from shapes (`B, T, C = x.size()`, `x.device`), known
        # now: the batch size stays symbolic (BATCH_SIZE), as it is only known when run.
        self.values: dict[fx.Node, Any] = {}
        self.buffers: dict[fx.Node, torch.Tensor] = {}   # tensors read with get_attr

    def fresh(self, text: str) -> str:
        return _fresh_id(text, self.ids)

    def refuse(self, node: fx.Node, why: str, todo: str) -> ImportRefused:
        return ImportRefused(f"{_op_name(node, self.root)}{_where(node)}: {why}; {todo}")

    def run(self) -> None:
        for node in self.gm.graph.nodes:
            before = len(self.nodes)
            try:
                getattr(self, f"on_{node.op}")(node)
            except ImportRefused:
                raise
            except Exception as e:   # a form no rule foresaw: refused, never a traceback
                raise self.refuse(node, f"could not be read ({type(e).__name__}: {e})",
                                  "write it another way, or please report this model") from None
            for n in self.nodes[before:]:
                self.owner[n.id] = _owners(node)
                # a module or a parameter keeps its path's name in its scope (`conv1`, a
                # LayerNorm class's `weight`); an op, its fx name (`add`)
                held = node.op in ("call_module", "get_attr")
                self.hint[n.id] = (held, node.target if held else node.name)

    def on_placeholder(self, node: fx.Node) -> None:
        meta = node.meta.get("tensor_meta")
        if meta is None:
            raise ImportRefused(f"input {node.name!r}: give an example tensor for it")
        dtype = "float" if meta.dtype.is_floating_point else "long"
        nid = self.fresh(node.name)
        self.nodes.append(Node(nid, "input", {"shape": tuple(meta.shape[1:]), "dtype": dtype}))
        self.src[node] = (nid, "y")

    def on_get_attr(self, node: fx.Node) -> None:
        """A learnable tensor read in forward() (`x * self.scale`) is a Parameter block: its
        value comes with the weights, its init only matters for a fresh model."""
        owner, _, name = node.target.rpartition(".")
        module = self.root.get_submodule(owner)
        tensor = getattr(module, name, None)
        if (isinstance(tensor, torch.Tensor) and not isinstance(tensor, nn.Parameter)
                and name in module._non_persistent_buffers_set and tensor.is_floating_point()
                and tensor.numel() and bool((tensor == tensor.flatten()[0]).all())):
            # A buffer filled with one value, kept out of the state_dict: a Constant block.
            self.add(node, "constant", {"shape": tuple(tensor.shape),
                                        "value": float(tensor.flatten()[0])}, {},
                     name=node.target)
            return
        if not isinstance(tensor, nn.Parameter):
            # Refused where it is used, unless a block holds it (an attention's causal mask).
            self.buffers[node] = tensor
            self.unusable[node] = self.refuse(
                node, "a buffer or constant tensor read directly in forward() has no block yet",
                "make it an nn.Parameter, or compute it from inputs")
            return
        if node.target in self.called:
            raise self.refuse(node, "this parameter is read more than once",
                              "read it once and reuse the value")
        self.called.add(node.target)
        nid = self.fresh(node.target)
        self.paths[nid] = node.target
        self.nodes.append(Node(nid, "parameter", {"shape": tuple(tensor.shape), "init": "zeros"}))
        self.src[node] = (nid, "y")

    def on_output(self, node: fx.Node) -> None:
        outs = node.args[0]
        outs = list(outs) if isinstance(outs, tuple | list) else [outs]
        for i, value in enumerate(outs):
            nid = self.fresh("y" if len(outs) == 1 else f"y{i}")
            self.nodes.append(Node(nid, "output"))
            self.wire(node, value, nid, "x")

    def wire(self, node: fx.Node, value: Any, nid: str, port: str) -> None:
        if value in self.unusable:
            raise self.unusable[value]
        if not isinstance(value, fx.Node) or value not in self.src:
            raise self.refuse(node, f"input {port!r} is {value!r}, not a tensor from the model",
                              "dprog wires tensors only; a constant operand needs an Expression "
                              "block, drawn by hand for now")
        self.edges.append(Edge(self.src[value], (nid, port)))

    def on_call_module(self, node: fx.Node) -> None:
        sub = self.root.get_submodule(node.target)
        row = _rows().get(type(sub))
        if row is None:
            raise self.refuse(node, "no dprog block for this module",
                              "replace it by supported layers, or write it as plain torch "
                              "functions that have blocks (`dprog blocks` lists them)")
        stateful = bool(sub.state_dict())
        if node.target in self.called and stateful:
            # Allowed only inside a shared user-defined module (a weight group); checked once
            # the calls are known.
            self.repeated.append(self.refuse(
                node, "this module instance is called more than once (shared weights); "
                "dprog shares weights between calls of a function (a weight group), so only "
                "a shared user-defined module can be imported", "wrap the shared layers in a "
                "small nn.Module of their own and call that twice"))
            self.shared_leaves.append(node)
        self.called.add(node.target)
        nid = self.fresh(node.target)
        if stateful:   # a stateless module (ReLU) may be called again: one node per call
            self.paths[nid] = node.target
        self.call(node, row, list(node.args), sub, nid)

    def read(self, node: fx.Node, name: str, value: Any, how: str) -> Any:
        try:
            return HOW[how](value)
        except (ValueError, TypeError) as e:
            raise self.refuse(node, f"{name}: {e}", "change it, or leave the model in PyTorch") from None

    def on_call_function(self, node: fx.Node) -> None:
        if self.shape_value(node):
            return
        if node.target is operator.getitem:
            return self.getitem(node)
        if node.target is torch.arange:
            return self.arange(node)
        if node.target is torch.split:
            return self.split(node)
        if node.target is F.layer_norm:
            return self.layer_norm(node)
        row = _rows().get(node.target) if callable(node.target) else None
        if not self.expression(node, row) and not self.reduce_dims(node, row):
            self.call(node, row, self.known(list(node.args)))

    def on_call_method(self, node: fx.Node) -> None:
        if self.shape_value(node):
            return
        reshaper = getattr(self, f"method_{node.target}", None)
        if reshaper is not None:
            return reshaper(node)
        row = _rows().get(("method", node.target))
        if not self.expression(node, row) and not self.reduce_dims(node, row):
            self.call(node, row, self.known(list(node.args)))

    # -- shapes: what `x.size()` gives, and the methods that reshape -----------------------------

    def known(self, args: Any) -> Any:
        """`args` with each value already known in place of its fx node."""
        if isinstance(args, tuple | list):
            return type(args)(self.known(a) for a in args)
        if isinstance(args, dict):
            return {k: self.known(v) for k, v in args.items()}
        if isinstance(args, slice):
            return slice(self.known(args.start), self.known(args.stop), self.known(args.step))
        return self.values.get(args, args) if isinstance(args, fx.Node) else args

    def meta_shape(self, node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise self.refuse(node, "gives no single tensor", "return one tensor here")
        return tuple(meta.shape)

    def shape_value(self, node: fx.Node) -> bool:
        """`x.size()`, `x.shape`, `x.size(1)`, `x.device`, an item of a size, and integer
        arithmetic on them: known values, no block. The batch size stays BATCH_SIZE."""
        args = self.known(list(node.args))
        if not args:
            return False
        if node.op == "call_method" and node.target == "size" and isinstance(args[0], fx.Node) \
                and args[0] in self.src:
            size = self.meta_shape(args[0]) if args[0].op == "get_attr" else (
                BATCH_SIZE, *self.meta_shape(args[0])[1:])
            self.values[node] = size[args[1]] if len(args) > 1 else size
            return True
        if node.target is getattr and isinstance(args[0], fx.Node) and args[0] in self.src \
                and args[1] in ("shape", "device"):
            if args[1] == "device":
                self.values[node] = _Device(args[0])
            elif args[0].op == "get_attr":   # a parameter's shape has no batch dim
                self.values[node] = self.meta_shape(args[0])
            else:
                self.values[node] = (BATCH_SIZE, *self.meta_shape(args[0])[1:])
            return True
        if node.target is operator.getitem and isinstance(args[0], tuple):
            self.values[node] = args[0][args[1]]
            return True
        if node.target in _NUMBER_OPS and all(isinstance(a, int | float)
                                              and not isinstance(a, bool) for a in args):
            self.values[node] = _NUMBER_OPS[node.target](*args)
            return True
        return False

    def alias(self, node: fx.Node, value: Any) -> None:
        if value not in self.src:
            raise self.refuse(node, "works on a value dprog cannot wire", "apply it to a tensor")
        self.src[node] = self.src[value]

    def add(self, node: fx.Node, block: str, params: dict, inputs: dict[str, Any],
            name: str | None = None) -> str:
        """A block for `node` (one of several, in a chain: the last one added gives its
        value), its params as given but the defaults, each input port wired from an fx
        value or from a (node id, port) output already made. Returns its id."""
        spec = lookup(block)
        nid = self.fresh(name or node.name)
        self.nodes.append(Node(nid, block, {k: v for k, v in params.items()
                                            if spec.param(k) is None or v != spec.param(k).default}))
        for port, value in inputs.items():
            if isinstance(value, tuple):
                self.edges.append(Edge(value, (nid, port)))
            else:
                self.wire(node, value, nid, port)
        self.src[node] = (nid, spec.outputs[0].name if spec.outputs else "y")
        return nid

    def reshape_to_meta(self, node: fx.Node) -> None:
        """A reshape that keeps the batch dim first: a Reshape to the traced per-sample shape."""
        x = node.args[0]
        before, after = self.meta_shape(x), self.meta_shape(node)
        if after[:1] != before[:1]:
            raise self.refuse(node, f"reshapes {before} into {after}, across the batch dim",
                              "keep the batch dim first and whole (x.view(B, …))")
        self.add(node, "reshape", {"shape": after[1:]}, {"x": x})

    def method_contiguous(self, node: fx.Node) -> None:
        self.alias(node, node.args[0])

    def method_view(self, node: fx.Node) -> None:
        sizes = self.known(list(node.args[1:]))
        if len(sizes) == 1 and isinstance(sizes[0], tuple | list):
            sizes = list(sizes[0])
        per_sample = math.prod(self.meta_shape(node.args[0])[1:])
        batch = sizes[:1] == [BATCH_SIZE] or (   # x.view(B, …), or x.reshape(-1, …) that is B
            sizes[:1] == [-1] and all(isinstance(v, int) and v > 0 for v in sizes[1:])
            and math.prod(sizes[1:]) == per_sample)
        if not batch or not all(isinstance(v, int) and not isinstance(v, bool)
                                for v in sizes[1:]):
            raise self.refuse(node, f"reshapes to {sizes!r}: dprog keeps the batch dim first",
                              "write the batch as x.size(0) (x.view(B, T, …)), the rest as ints")
        self.reshape_to_meta(node)

    method_reshape = method_view

    def method_unsqueeze(self, node: fx.Node) -> None:
        rank = len(self.meta_shape(node.args[0]))
        dim = self.known(node.args[1] if len(node.args) > 1 else node.kwargs.get("dim"))
        if not isinstance(dim, int) or dim % (rank + 1) == 0:
            raise self.refuse(node, "adds a dim before the batch", "add dims after the batch")
        self.reshape_to_meta(node)

    def method_squeeze(self, node: fx.Node) -> None:
        # Which dims squeeze() drops depends on the sizes, the batch's included: only an
        # explicit dim after the batch is the same reshape at every batch size.
        rank = len(self.meta_shape(node.args[0]))
        dim = self.known(node.args[1] if len(node.args) > 1 else node.kwargs.get("dim"))
        if not isinstance(dim, int) or dim % rank == 0:
            raise self.refuse(node, "squeezes without naming a dim after the batch",
                              "name the dim: x.squeeze(1)")
        self.reshape_to_meta(node)

    def method_transpose(self, node: fx.Node) -> None:
        rank = len(self.meta_shape(node.args[0]))
        dims = self.known([*node.args[1:3], *(node.kwargs[k] for k in ("dim0", "dim1")
                                               if k in node.kwargs)])
        if len(dims) != 2 or not all(isinstance(d, int) for d in dims):
            raise self.refuse(node, "swaps dims it does not name as ints",
                              "write x.transpose(1, 2)")
        order = list(range(rank))
        a, b = (d % rank for d in dims)
        order[a], order[b] = order[b], order[a]
        self.permute_to(node, order, "swaps the batch dim")

    def method_permute(self, node: fx.Node) -> None:
        rank = len(self.meta_shape(node.args[0]))
        dims = self.known(list(node.args[1:]))
        if len(dims) == 1 and isinstance(dims[0], tuple | list):
            dims = list(dims[0])
        self.permute_to(node, [d % rank for d in dims])

    def method_movedim(self, node: fx.Node) -> None:
        rank = len(self.meta_shape(node.args[0]))
        source, destination = self.known(list(node.args[1:3]))
        if not isinstance(source, int) or not isinstance(destination, int):
            raise self.refuse(node, "moves several dims", "move one dim at a time")
        order = list(range(rank))
        order.insert(destination % rank, order.pop(source % rank))
        self.permute_to(node, order)

    def permute_to(self, node: fx.Node, order: list[int],
                   why: str = "moves the batch dim") -> None:
        """A reordering of all the dims (the batch's included) that keeps the batch first:
        a Permute block over the others."""
        if order[:1] != [0]:
            raise self.refuse(node, why, "keep the batch dim first")
        self.add(node, "permute", {"dims": tuple(order[1:])}, {"x": node.args[0]})

    def method_split(self, node: fx.Node) -> None:
        self.split(node)

    def split(self, node: fx.Node) -> None:
        """`x.split(n, dim)` and torch.split(x, sizes, dim): a Split block, its pieces by item."""
        args = self.known(list(node.args))
        kwargs = self.known(dict(node.kwargs))
        x = args[0]
        size = args[1] if len(args) > 1 else kwargs.get("split_size_or_sections",
                                                        kwargs.get("split_size"))
        dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
        one = isinstance(size, int) and size > 0
        several = isinstance(size, tuple | list) and all(isinstance(v, int) and v > 0
                                                         for v in size)
        if not (one or several) or not isinstance(dim, int):
            raise self.refuse(node, "splits by sizes it does not give as ints",
                              "write x.split(n, dim) or torch.split(x, [a, b], dim)")
        shape = self.meta_shape(x)
        dim %= len(shape)
        if dim == 0:
            raise self.refuse(node, "splits the batch", "split a dim after the batch")
        total = shape[dim]
        sections = [size] * (total // size) + ([total % size] if total % size else []) \
            if isinstance(size, int) else list(size)
        nid = self.add(node, "split", {"sections": tuple(sections), "dim": dim}, {"x": x})
        self.tuples[node] = (nid, tuple(f"y{i}" for i in range(len(sections))))

    def layer_norm(self, node: fx.Node) -> None:
        """F.layer_norm(x, shape, weight, bias, eps), as nanoGPT's own LayerNorm class calls
        it with its parameters: a LayerNorm block without its own affine, then Mul and Add
        blocks applying the weight and bias, whose Parameter blocks keep their keys."""
        names = ("input", "normalized_shape", "weight", "bias", "eps")
        bound = dict(zip(names, self.known(list(node.args)), strict=False))
        bound.update(self.known(dict(node.kwargs)))
        shape, eps = bound.get("normalized_shape"), bound.get("eps", 1e-5)
        if not isinstance(shape, tuple | list) or not shape or eps != 1e-5:
            raise self.refuse(node, f"normalizes over {shape!r} with eps={eps!r}; the LayerNorm "
                              "block normalizes over the last dims with eps=1e-05",
                              "use eps=1e-5, or leave this part in PyTorch")
        self.add(node, "layer_norm", {"dims": len(shape), "affine": False},
                 {"x": bound["input"]})
        # × weight, + bias: the blocks its export's `y * weight + bias` imports back as
        for key, block in (("weight", "mul"), ("bias", "add")):
            if bound.get(key) is not None:
                self.add(node, block, {}, {"a": self.src[node], "b": bound[key]},
                         name=f"{node.name}_{key}")

    def arange(self, node: fx.Node) -> None:
        """torch.arange(n, device=x.device) with n one of x's sizes: a Positions block."""
        args, kwargs = self.known(list(node.args)), self.known(dict(node.kwargs))
        device = kwargs.get("device")
        dtype = kwargs.get("dtype", torch.long)
        if len(args) == 2 and args[0] == 0:   # arange(0, n)
            args = args[1:]
        if len(args) != 1 or not isinstance(device, _Device) \
                or dtype not in (torch.long, torch.float):
            raise self.refuse(node, "positions are made from the tensor they count along",
                              "write torch.arange(n, device=x.device), n one of x's sizes")
        shape = self.meta_shape(device.tensor)
        dims = [d for d in range(1, len(shape)) if shape[d] == args[0]]
        if not dims:
            raise self.refuse(node, f"counts to {args[0]}, which is none of the sizes of the "
                              "tensor whose device it names", "count along one of its dims")
        self.add(node, "positions", {"dim": dims[0],
                                     "dtype": "float" if dtype == torch.float else "long"},
                 {"x": device.tensor})

    def reduce_dims(self, node: fx.Node, row: Recognise | None) -> bool:
        """`x.mean([2, 3])` (global average pooling as a mean), for a block that reduces one
        dim (a row reading its `dim` one int at a time): one block per dim, the last dim
        first, so that the others keep their index. False when it is not that."""
        dim_param = next((p for p in row.params if p[0] == "dim" and p[2] == "int"), None) \
            if row is not None else None
        args, kwargs = self.known(list(node.args)), self.known(dict(node.kwargs))
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        if dim_param is None or not isinstance(dims, tuple | list) or len(dims) < 2 \
                or not all(isinstance(d, int) for d in dims):
            return False
        keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
        rank = len(self.meta_shape(args[0]))
        dims = sorted({d % rank for d in dims}, reverse=True)
        if 0 in dims or set(kwargs) - {"dim", "keepdim"} or len(args) > 3:
            raise self.refuse(node, "reduces over the batch dim, or with options its block "
                              "does not take", "reduce over dims after the batch")
        port, value = lookup(row.block).inputs[0].name, args[0]
        for d in dims:   # the last dim first: the earlier ones keep their index
            self.add(node, row.block, {"dim": d, "keepdim": bool(keepdim)}, {port: value})
            value = self.src[node]
        return True

    def expression(self, node: fx.Node, row: Recognise | None) -> bool:
        """An elementwise op no row takes as it is written - a constant operand (`x + 1`,
        `side > 0.0`), or a function only the Expression block has (`torch.cos`) - as an
        Expression block. False when it is not one (the row, or the refusal, follows)."""
        args = self.known(list(node.args))   # sizes read from shapes are numbers here
        if row is not None and all(isinstance(a, fx.Node) for a in args[: len(row.inputs)]):
            return False
        formula = _expression_formula(node, args)
        if formula is None:
            return False
        names: dict[fx.Node, str] = {}

        def operand(value: Any) -> str:
            if isinstance(value, fx.Node):
                return names.setdefault(value, input_names(len(names) + 1)[-1])
            return _number(value)

        try:
            text = formula(operand)
        except (TypeError, ValueError):   # an operand that is neither a tensor nor a number
            return False
        self.add(node, "expression", {"expr": text, "inputs": len(names)},
                 {name: value for value, name in names.items()})
        return True

    def call(self, node: fx.Node, row: Recognise | None, args: list, sub: nn.Module | None = None,
             nid: str | None = None) -> None:
        if row is None:
            raise self.refuse(node, "no dprog block for this op",
                              "rewrite it with ops that have blocks (`dprog blocks` lists them), "
                              "or leave this part in PyTorch")
        ports = row.inputs
        if ports == ("*x",):   # torch.cat([a, b], dim): a list of tensors, one port each
            first = args[0] if args else None
            if not isinstance(first, list | tuple):
                raise self.refuse(node, "expects a list of tensors", "pass them as a list")
            ports, args = tuple(f"x{i}" for i in range(len(first))), [*first, *args[1:]]
        wired, rest = args[: len(ports)], args[len(ports):]
        if len(wired) < len(ports) or len(rest) > len(row.args):
            raise self.refuse(node, "unexpected arguments", "call it with tensors and named "
                              "options as torch documents it")
        bound = {name: default for name, default in row.args}
        bound.update({name: v for (name, _), v in zip(row.args, rest, strict=False)})
        for k, v in node.kwargs.items():
            if k not in bound:
                raise self.refuse(node, f"argument {k}={v!r} has no param in its block",
                                  "leave it at its default")
            bound[k] = v
        causal = self.causal_mask(row, bound)
        for k, v in bound.items():
            if isinstance(v, fx.Node):
                raise self.unusable.get(v) or self.refuse(node, f"argument {k} is a computed value",
                                                          "make it a constant")
        # A module's settings are its attributes; a function's (and a module call's), its args.
        def source(name: str) -> Any:
            return getattr(sub, name) if sub is not None and hasattr(sub, name) else bound[name]

        values = {p: self.read(node, name, source(name), how) for p, name, how in row.params}
        if causal is not None:
            values[causal] = True
        if row.inputs == ("*x",):
            values["inputs"] = len(ports)
        for name, want in row.fixed:
            have = source(name) if (sub is not None and hasattr(sub, name)) or name in bound else want
            if (have is not None) if want is None else (have is None or have != want):
                raise self.refuse(node, f"{name}={have!r}, but the {row.block} block only does "
                                  f"{name}={want!r}", f"use {name}={want!r}, or leave this part "
                                  "in PyTorch")
        nid = nid or self.fresh(node.name)
        spec = lookup(row.block)
        params = {k: v for k, v in values.items() if spec.param(k) is not None
                  and v != spec.param(k).default}
        # A module under a container (`features.0`) is labelled with its path: the code
        # generator holds it there, so its state_dict keys stay the original's.
        label = node.target if sub is not None and "." in node.target else ""
        self.nodes.append(Node(nid, row.block, params, label=label))
        for port, value in zip(ports, wired, strict=True):
            self.wire(node, value, nid, port)
        if row.returns:
            self.tuples[node] = (nid, row.returns)
        else:
            self.src[node] = (nid, spec.outputs[0].name)

    def causal_mask(self, row: Recognise, bound: dict[str, Any]) -> str | None:
        """The block param a causal mask buffer (True, or -inf, above the diagonal) passed
        with is_causal=True turns on, by the row's `causal` (nn.MultiheadAttention's); the
        block makes that mask itself. Clears both arguments in `bound` then."""
        if not row.causal:
            return None
        mask_arg, flag_arg, param = row.causal
        mask = bound.get(mask_arg)
        if bound.get(flag_arg) is not True or not isinstance(mask, fx.Node) \
                or mask not in self.buffers:
            return None
        t = self.buffers[mask]
        n = t.shape[-1] if t.dim() == 2 else 0
        above = torch.ones(n, n, dtype=torch.bool).triu(1)
        if t.shape != (n, n) or not (
                torch.equal(t, above) if t.dtype == torch.bool else
                t.is_floating_point() and torch.equal(t == float("-inf"), above)
                and bool((t[~above] == 0).all())):
            return None
        bound[mask_arg], bound[flag_arg] = None, False
        return param

    def getitem(self, node: fx.Node) -> None:
        """`out, h = gru(x)` and `attn(q, k, v)[0]`: an item of a block's tuple; and
        `x[:, -1]`, `x[:, a:b]`: Select and Slice."""
        value, index = node.args[0], self.known(node.args[1])
        if value in self.unusable:
            self.unusable[node] = self.unusable[value]
            return
        if value in self.tuples:
            nid, ports = self.tuples[value]
            port = ports[index] if isinstance(index, int) and 0 <= index < len(ports) else None
            if port is None:   # refused only once something uses it (`out, _ = gru(x)` is fine)
                self.unusable[node] = self.refuse(node, f"item {index!r} of {nid}'s result: dprog's block gives "
                                  "its other results in its own layout (batch first)",
                                  "use the first item (the sequence of outputs, e.g. out[:, -1])")
                return
            self.src[node] = (nid, port)
            return
        items = index if isinstance(index, tuple) else (index,)
        lead = 0
        while lead < len(items) - 1 and items[lead] == slice(None):
            lead += 1
        last = items[lead] if lead == len(items) - 1 else None
        if lead >= 1 and isinstance(last, int):
            block, values = "select", {"dim": lead, "index": last}
        elif lead >= 1 and isinstance(last, slice) and all(
                v is None or isinstance(v, int) for v in (last.start, last.stop, last.step)) \
                and last.stop is not None:
            block, values = "slice", {"dim": lead, "start": last.start or 0, "stop": last.stop,
                                      "step": last.step or 1}
        elif items and items[0] == slice(None) and all(i is None or i == slice(None)
                                                       for i in items):
            return self.reshape_to_meta(node)   # x[:, None]: a new dim of size 1
        else:
            raise self.refuse(node, f"indexing with {index!r} has no block (Select and Slice "
                              "take one int or one range along one dim after the batch)",
                              "index one dim at a time")
        self.add(node, block, values, {"x": value})


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _owners(node: fx.Node) -> tuple[tuple[str, str, type], ...]:
    """The user-defined modules whose forward() produced this fx node, outermost first, as
    (call key, module path, class): containers (an nn.Sequential, or a subclass such as
    torchvision's Conv2dNormActivation) are not functions, as their children's names (`0`)
    cannot be attributes of a class; a leaf module is not its own owner. The key tells two
    calls of one instance apart."""
    stack = list((node.meta.get("nn_module_stack") or {}).items())
    if node.op == "call_module" and stack and stack[-1][1][0] == node.target:
        stack.pop()
    return tuple((key, path, cls) for key, (path, cls) in stack
                 if isinstance(cls, type) and not cls.__module__.startswith("torch.")
                 and not issubclass(cls, _CONTAINERS))


@dataclass
class _Scope:
    """One scope being laid out: the model's (path "") or one module call's body."""

    path: str                                      # its module path
    ids: set[str] = field(default_factory=set)
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    local: dict[str, str] = field(default_factory=dict)       # direct member → its id here
    resolved: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    inputs: list[tuple[str, str]] = field(default_factory=list)   # sources from outside
    entries: list[Node] = field(default_factory=list)         # their Body inputs, first
    sites: dict[str, str] = field(default_factory=dict)       # flat id → its path in here

    def fresh(self, text: str) -> str:
        return _fresh_id(text, self.ids)

    def rel(self, module_path: str) -> str:
        return module_path[len(self.path) + 1:] if self.path else module_path

    def label(self, module_path: str) -> str:
        """A module path under a container (`features.0`) as its node's label, which the
        code generator holds it at; "" for an attribute of the scope's own class."""
        rel = self.rel(module_path)
        return rel if "." in rel else ""

    def source(self, src: tuple[str, str]) -> tuple[str, str]:
        """Where this scope reads a flat source: a node of its own, or a Body input."""
        if src[0] in self.local:
            return (self.local[src[0]], src[1])
        if src not in self.resolved:
            bid = self.fresh("x")
            self.entries.append(Node(bid, "body_input"))
            self.inputs.append(src)
            self.resolved[src] = (bid, "y")
        return self.resolved[src]


class _Structurer:
    """The flat graph regrouped by module: each call of a user-defined module becomes a Call
    of a function whose body is that module's part of the graph. Instances whose bodies come
    out equal (same class, same settings) share one function; a class used with different
    settings gets one function per variant (dprog functions have no parameters)."""

    def __init__(self, imp: _Importer, ties: dict[str, dict[str, tuple[str, str]]]):
        self.node = {n.id: n for n in imp.nodes}
        self.owner, self.hint, self.ties = imp.owner, imp.hint, ties
        self.into: dict[str, list[Edge]] = {}
        self.consumers: dict[tuple[str, str], set[str]] = {}
        for e in imp.edges:
            self.into.setdefault(e.dst[0], []).append(e)
            self.consumers.setdefault(e.src, set()).add(e.dst[0])
        self.produced: dict[str, list[tuple[str, str]]] = {}
        for src in sorted(self.consumers):
            self.produced.setdefault(src[0], []).append(src)
        # module path → its calls' keys: a path called twice is a shared instance (a group)
        self.calls: dict[str, set[str]] = {}
        for chain in self.owner.values():
            for key, path, _ in chain:
                self.calls.setdefault(path, set()).add(key)
        for leaf, refusal in zip(imp.shared_leaves, imp.repeated, strict=True):
            if not any(len(self.calls[path]) > 1 for _, path, _ in _owners(leaf)):
                raise refusal
        self.functions: dict[str, Function] = {}
        self.variants: dict[Any, str] = {}            # a body's canonical form → function name
        self.group_functions: dict[str, str] = {}     # shared module path → its function
        self.groups_named: dict[str, str] = {}        # shared module path → its group's name
        self.names: set[str] = set()

    def scope(self, members: list[str], depth: int, path: str, outputs: list[tuple[str, str]]):
        """(nodes, edges, inputs, body output ids, sites) of one scope: the root (depth 0) or
        one module call. `inputs`: the flat sources it reads from outside, one Body input each
        (ids in `nodes`, in the same order); `sites`: flat node id → its path in this scope."""
        scope = _Scope(path)
        groups: dict[str, list[str]] = {}   # a call of a module one level down → its members
        items: list[tuple[str, str]] = []   # ("node", flat id) or ("call", call key), in order
        for fid in members:
            chain = self.owner[fid]
            if len(chain) <= depth:
                items.append(("node", fid))
                continue
            key = chain[depth][0]
            if key not in groups:
                groups[key] = []
                items.append(("call", key))
            groups[key].append(fid)
        for kind, what in items:
            if kind == "node":
                self.place_node(scope, what)
            else:
                self.place_call(scope, groups[what], depth)
        outs = []
        for src in outputs:
            yid = scope.fresh("y")
            scope.nodes.append(Node(yid, "body_output"))
            scope.edges.append(Edge(scope.source(src), (yid, "x")))
            outs.append(yid)
        return scope.entries + scope.nodes, scope.edges, scope.inputs, outs, scope.sites

    def place_node(self, scope: _Scope, fid: str) -> None:
        """A block of this scope itself: a module keeps its name (`conv1`, or its path under
        a container, `features.0`, as its label), an op its fx name (`add`)."""
        n = self.node[fid]
        is_module, hint = self.hint[fid]
        lid = scope.fresh(scope.rel(hint) if is_module else re.sub(r"_\d+$", "", hint))
        scope.local[fid] = scope.sites[fid] = lid
        ties = {}
        for tensor, (target, ttensor) in self.ties.get(fid, {}).items():
            if target not in scope.local:
                raise ImportRefused(f"module {hint!r}: its {tensor} is tied to a tensor in "
                                    "another module; ties across module boundaries are not "
                                    "imported yet")
            ties[tensor] = (scope.local[target], ttensor)
        label = scope.label(hint) if is_module else ""
        scope.nodes.append(Node(lid, n.type, n.params, label=label, ties=ties))
        for e in self.into.get(fid, []):
            scope.edges.append(Edge(scope.source(e.src), (lid, e.dst[1])))

    def place_call(self, scope: _Scope, group: list[str], depth: int) -> None:
        """One call of a module one level down: its body becomes (or reuses) a function, and
        the call a Call block; a shared instance's calls, a weight group."""
        inside = set(group)
        _, path, cls = self.owner[group[0]][depth]
        needed = [src for fid in group for src in self.produced.get(fid, [])
                  if any(d not in inside for d in self.consumers[src])]
        body_nodes, body_edges, body_inputs, body_outputs, body_sites = self.scope(
            group, depth + 1, path, needed)
        fname = self.function(cls, body_nodes, body_edges)
        cid = scope.fresh(scope.rel(path))
        params = {"function": fname}
        if len(self.calls[path]) > 1:   # one instance called again: a weight group
            if self.group_functions.setdefault(path, fname) != fname:
                raise ImportRefused(
                    f"module {path!r} is called {len(self.calls[path])} times, but its calls "
                    "do not trace alike (one of them gets the same tensor for two arguments, "
                    "say), and a weight group needs one body for all its calls; pass each call "
                    "distinct tensors, or give each call its own module")
            name = re.sub(r"[^A-Za-z0-9_]", "_", scope.rel(path))
            params["weights"] = self.groups_named.setdefault(
                path, name if name[0].isalpha() else f"m_{name}")
        scope.nodes.append(Node(cid, "call", params, label=scope.label(path)))
        for src, bnode in zip(body_inputs, [n.id for n in body_nodes if n.type == "body_input"],
                              strict=True):   # the call's ports, as the body orders them
            scope.edges.append(Edge(scope.source(src), (cid, bnode)))
        for src, yid in zip(needed, body_outputs, strict=True):
            scope.resolved[src] = (cid, yid)
        for fid, site in body_sites.items():
            scope.sites[fid] = f"{cid}/{fname}/{site}"

    def function(self, cls: type, nodes: list[Node], edges: list[Edge]) -> str:
        canonical = (cls, tuple((n.id, n.type, tuple(sorted(n.params.items())),
                                 tuple(sorted(n.ties.items()))) for n in nodes),
                     tuple((e.src, e.dst) for e in edges))
        if canonical not in self.variants:
            base = _snake(cls.__name__)
            name, i = base, 2
            while name in self.names:
                name, i = f"{base}_{i}", i + 1
            self.names.add(name)
            self.variants[canonical] = name
            body = Graph(tuple(_layout(nodes, edges)), tuple(edges), name=name)
            self.functions[name] = Function(body, title=cls.__name__,
                                            doc=_safe_doc(cls), category="Imported")
        return self.variants[canonical]


def _safe_doc(cls: type) -> str:
    """The class docstring's first line: text shown to people, never code."""
    doc = (cls.__doc__ or "").strip().splitlines()
    return doc[0][:200] if doc else f"{cls.__name__}, imported from {cls.__module__}"


def _layout(nodes: list[Node], edges: list[Edge]) -> list[Node]:
    """Columns by longest path from the inputs, rows in trace order: readable left to right.
    Each column is as wide as its widest node's title (`layer1.0 · ƒ basic_block »`)."""
    depth: dict[str, int] = {}
    into: dict[str, list[str]] = {}
    for e in edges:
        into.setdefault(e.dst[0], []).append(e.src[0])
    for n in nodes:   # trace order is topological
        depth[n.id] = 1 + max((depth[s] for s in into.get(n.id, [])), default=-1)
    widths: dict[int, float] = {}
    for n in nodes:
        kind = f"ƒ {n.params['function']} »" if n.type == "call" else lookup(n.type).title
        title = f"{n.name} · {kind}"
        widths[depth[n.id]] = max(widths.get(depth[n.id], 0.0), 150.0, 30.0 + 7.5 * len(title))
    x = [40.0]
    for d in range(max(widths, default=0)):
        x.append(x[-1] + widths[d] + 40.0)
    rows: dict[int, int] = {}
    out = []
    for n in nodes:
        d = depth[n.id]
        r = rows[d] = rows.get(d, -1) + 1
        out.append(Node(n.id, n.type, n.params, (x[d], 120.0 + 110.0 * r),
                        n.label, n.regions, n.ties))
    return out


def _snake(name: str) -> str:
    return snake_case(name) or "model"


@contextlib.contextmanager
def _modes_kept(module: nn.Module) -> Iterator[None]:
    """Put `module` in training or eval mode inside; every submodule's own mode is back
    afterwards (a user's model may hold some in eval on purpose)."""
    modes = {m: m.training for m in module.modules()}
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def _trace(module: nn.Module) -> fx.GraphModule:
    try:
        tracer = fx.Tracer()
        tracer.record_stack_traces = True   # each node's source line, for the refusals
        return fx.GraphModule(module, tracer.trace(module))
    except Exception as e:   # fx raises TraceError, or its proxy's own errors, from user code
        text = str(e)
        if "control flow" in text or "bool" in text or "iterate" in text or "len(" in text:
            raise ImportRefused(f"data-dependent Python control flow{_where(tb=e.__traceback__)}: "
                                "torch.fx traces without values, so a branch or loop on a "
                                "tensor's value cannot be captured; express it with torch.where, "
                                "or make it depend on the model's settings only") from None
        raise ImportRefused(f"torch.fx cannot trace this model{_where(tb=e.__traceback__)}: "
                            f"{type(e).__name__}: {text}") from None


def _trace_in_both_modes(module: nn.Module) -> fx.GraphModule:
    """The eval-mode trace, once the training-mode one is known to take the same path: a
    forward that branches on `self.training` would otherwise be imported in one mode only
    (a VAE's sampling dropped, say), which is worse than a refusal. Blocks that switch by
    themselves (Dropout, BatchNorm) trace alike in both modes."""
    with _modes_kept(module):
        trained = _trace(module.train())
        evaluated = _trace(module.eval())
    for a, b in itertools.zip_longest(trained.graph.nodes, evaluated.graph.nodes):
        if a is None or b is None or (a.op, a.target) != (b.op, b.target):
            raise ImportRefused(
                f"forward() takes another path while training than in eval mode"
                f"{_where(a if a is not None else b)}: a trace keeps one path, so the graph "
                "would compute what the model does in one mode only; use blocks that switch by "
                "themselves (Dropout, BatchNorm), not `if self.training`")
        if _settings(a) != _settings(b):
            raise ImportRefused(
                f"forward() passes other settings while training than in eval mode{_where(a)} "
                f"({_settings(a)} against {_settings(b)}; `p if self.training else 0`, say): "
                "a block has one setting for both; use that block's own switch (Dropout), or "
                "one value, such as dropout 0, to import")
    return evaluated


def _settings(node: fx.Node) -> tuple:
    """A traced call's arguments, tensors by name: what a block's params come from (equal
    when ==, so 0 and 0.0 agree). F.dropout's `training=self.training` is the one that may
    follow the mode, as the Dropout block follows it by itself."""
    def plain(v: Any) -> Any:
        if isinstance(v, fx.Node):
            return f"%{v.name}"
        if isinstance(v, tuple | list):
            return tuple(plain(x) for x in v)
        if isinstance(v, slice):
            return ("slice", plain(v.start), plain(v.stop), plain(v.step))
        if isinstance(v, dict):
            return tuple(sorted((k, plain(x)) for k, x in v.items()))
        return v

    return plain(node.args), tuple(sorted((k, plain(v)) for k, v in node.kwargs.items()
                                          if k != "training"))


def import_module(module: nn.Module, example_inputs: Any, name: str | None = None, *,
                  flat: bool = False) -> Imported:
    """Trace `module` with torch.fx and map it onto dprog blocks; check the result.

    `example_inputs` is a tensor or a tuple of them, one per forward() argument, batched.
    Each call of a user-defined submodule becomes a Call of a function (its class); `flat`
    inlines them all instead. Raises ImportRefused with a clear message for whatever cannot
    be imported faithfully."""
    inputs = tuple(example_inputs) if isinstance(example_inputs, tuple | list) else (example_inputs,)
    gm = _trace_in_both_modes(module)
    try:
        # The model first: an example that does not fit fails there, not inside ShapeProp
        # (which prints a traceback before it raises); its stderr is kept off the terminal.
        with _modes_kept(module), torch.no_grad():
            expected = module.eval()(*inputs)
            with contextlib.redirect_stderr(io.StringIO()):
                ShapeProp(gm).propagate(*inputs)
    except Exception as e:   # the example does not fit the model: say so in one line
        shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
        cause = e.__cause__ or e   # ShapeProp wraps the model's own error
        first = next((ln for ln in str(cause).splitlines() if ln.strip()), "")
        raise ImportRefused(f"forward() failed on example inputs of shape {shapes} "
                            f"({type(cause).__name__}: {first[:200]}); give the shapes the "
                            "model expects, batch first") from None
    imp = _Importer(module, gm)
    imp.run()
    ties = _ties(imp.nodes, module, imp.paths)
    if flat and imp.repeated:
        raise imp.repeated[0]
    if flat:
        graph = Graph(tuple(_layout([Node(n.id, n.type, n.params, label=n.label,
                                          ties=ties.get(n.id, {}))
                                     for n in imp.nodes], imp.edges)), tuple(imp.edges),
                      name=_snake(name or type(module).__name__))
        sites = {nid: nid for nid in imp.paths}
    else:
        structure = _Structurer(imp, ties)
        nodes, edges, _, _, sites = structure.scope([n.id for n in imp.nodes], 0, "", [])
        graph = Graph(tuple(_layout(nodes, edges)), tuple(edges),
                      name=_snake(name or type(module).__name__), functions=structure.functions)
    analysis = analyze(graph)
    if not analysis.ok:
        problems = "; ".join(f"{d.node}: {d.message}" for d in analysis.diagnostics
                             if d.severity == "error")
        raise ImportRefused(f"the imported graph is not valid: {problems}")
    return _check(graph, analysis, module, {sites[nid]: path for nid, path in imp.paths.items()},
                  inputs, expected)


def _parameter_at(module: nn.Module, path: str) -> nn.Parameter | None:
    """The bare nn.Parameter at this path (`gain`, `enc.scale`), or None for a module."""
    owner, _, name = path.rpartition(".")
    value = getattr(module.get_submodule(owner), name, None)
    return value if isinstance(value, nn.Parameter) else None


def _ties(nodes: list[Node], module: nn.Module, paths: dict[str, str]
          ) -> dict[str, dict[str, tuple[str, str]]]:
    """A parameter shared by two modules becomes a tie from the later node to the first."""
    first: dict[int, tuple[str, str]] = {}
    out = {}
    seen: set[str] = set()
    for n in nodes:
        ties = {}
        if n.id in paths and paths[n.id] not in seen:   # a shared module's later call: no tie
            seen.add(paths[n.id])
            bare = _parameter_at(module, paths[n.id])
            if bare is not None:   # a bare nn.Parameter: the tensor itself, named ""
                tensors = [("", bare)]
            else:
                tensors = list(module.get_submodule(paths[n.id]).named_parameters(recurse=False))
            for tname, p in tensors:
                if id(p) in first:
                    spec = lookup(n.type)
                    if spec.tensors is None or not first[id(p)][1]:
                        raise ImportRefused(f"module {paths[n.id]!r}: its {tname} is "
                                            f"{paths[first[id(p)][0]]}'s; a {spec.title} "
                                            "block cannot tie tensors yet")
                    ties[tname] = first[id(p)]
                else:
                    first[id(p)] = (n.id, tname)
        if ties:
            out[n.id] = ties
    return out


def _check(graph: Graph, analysis: Any, module: nn.Module, paths: dict[str, str],  # site → path
           inputs: Sequence[torch.Tensor], expected: Any) -> Imported:
    """Rename the original's keys, and prove the import: same keys and shapes, same outputs."""
    from .compiler import compile_class

    compiled = compile_class(graph, analysis)
    attrs = compiled.generated.node_modules
    keys: dict[str, str] = {}
    for nid, path in paths.items():
        if _parameter_at(module, path) is not None:
            keys[path] = attrs[nid]   # a Parameter block: the tensor itself
            continue
        for k in module.get_submodule(path).state_dict():
            keys[f"{path}.{k}"] = f"{attrs[nid]}.{k}"
    original = module.state_dict()
    unused = sorted(set(original) - set(keys))
    if unused:
        raise ImportRefused(f"tensors the forward pass never uses: {', '.join(unused[:5])}"
                            f"{' …' if len(unused) > 5 else ''}; the imported graph would drop "
                            "them, so strict loading fails; delete those modules first")
    rebuilt = compiled.cls()
    mine = rebuilt.state_dict()
    renamed = {keys[k]: v for k, v in original.items()}
    bad = sorted(k for k in set(mine) | set(renamed)
                 if k not in mine or k not in renamed or mine[k].shape != renamed[k].shape)
    if bad:
        raise ImportRefused(f"the imported graph's tensors differ from the model's at {bad[0]}"
                            " (a setting its block does not take?); please report this model")
    rebuilt.load_state_dict(renamed, strict=True)
    rebuilt.eval()
    with torch.no_grad():
        got = rebuilt(*inputs)
    flat_e = expected if isinstance(expected, tuple | list) else (expected,)
    flat_g = got if isinstance(got, tuple | list) else (got,)
    if len(flat_e) != len(flat_g) or not all(
            torch.allclose(a, b, atol=1e-5, rtol=1e-4, equal_nan=True)
            for a, b in zip(flat_e, flat_g, strict=True)):
        raise ImportRefused("the imported graph computes different values from the model "
                            "in eval mode; please report this model")
    return Imported(graph, keys)


__all__ = ["ImportRefused", "Imported", "from_torch", "import_module"]
