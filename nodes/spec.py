"""Block specs: one small declarative record per block type.

A `BlockSpec` says everything the rest of dprog needs to know about a block:
its ports, its typed params (the studio builds its inspector widgets from these),
its shape rule, and how it becomes torch code (`emit`, one of `EMIT_KINDS`): a
`torch.nn` class or a function named by its qualified name (this package never
imports torch), an expression template, or a tensor the module holds. Constructor
kwargs such as `in_features` are computed from the params and the inferred input
types, so users never type them.

Templates are trusted text written in this package, or (the Expression block) text
re-emitted from a syntax tree checked against an allow-list. The code generator fills
their `{placeholders}` only with generated identifiers and `repr`s of validated
literals; nothing from a graph file is ever pasted into code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .types import ShapeError, TensorType

ParamValues = Mapping[str, Any]
InTypes = Sequence[TensorType]

PARAM_KINDS = ("int", "float", "bool", "choice", "shape", "string")


@dataclass(frozen=True)
class Param:
    """A typed, documented block parameter with a default and (for numbers) a range."""

    name: str
    kind: str
    default: Any
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    max_len: int = 256          # strings, and the number of dims in a shape
    allow_negative_one: bool = False  # shapes: Reshape's "infer this dim"

    def check(self, value: Any) -> str | None:
        """Return why `value` is not acceptable for this param, or None when it is."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return "must be an integer"
            return self._check_range(value)
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return "must be a number"
            # An int too big for a float (a 400-digit JSON number) is as unusable as inf;
            # math.isfinite would raise OverflowError on it.
            if (isinstance(value, int) and abs(value) > 1 << 1000) or \
                    (isinstance(value, float) and not math.isfinite(value)):
                return "must be a finite number"
            return self._check_range(value)
        if self.kind == "choice":
            if value not in self.choices:
                return "must be one of " + ", ".join(repr(c) for c in self.choices)
            return None
        if self.kind == "string":
            if not isinstance(value, str):
                return "must be a string"
            return None if len(value) <= self.max_len else f"is longer than {self.max_len} characters"
        if self.kind == "shape":
            if not isinstance(value, list | tuple) or len(value) > self.max_len:
                return f"must be a list of at most {self.max_len} positive integers"
            for d in value:
                if isinstance(d, bool) or not isinstance(d, int):
                    return "must be a list of integers"
                if not (d >= 1 or (d == -1 and self.allow_negative_one)) or d > 1 << 24:
                    return f"has a dim {d} outside 1..{1 << 24}"
            if self.allow_negative_one and list(value).count(-1) > 1:
                return "may infer (-1) at most one dim"
            return None
        return f"has unknown kind {self.kind!r}"

    def _check_range(self, value: float) -> str | None:
        if self.min is not None and value < self.min:
            return f"must be at least {self.min:g}"
        if self.max is not None and value > self.max:
            return f"must be at most {self.max:g}"
        return None

    def coerce(self, value: Any) -> Any:
        """The canonical in-memory form: shapes are tuples, ints given as floats stay ints."""
        if self.kind == "shape" and isinstance(value, list | tuple):
            return tuple(value)
        if self.kind == "float" and isinstance(value, int) and not isinstance(value, bool) \
                and abs(value) <= 1 << 1000:   # bigger ints stay as they are (and fail check)
            return float(value)
        return value


def Int(name: str, default: int, doc: str = "", *, min: int | None = None,
        max: int | None = None) -> Param:
    return Param(name, "int", default, doc, min=min, max=max)


def Float(name: str, default: float, doc: str = "", *, min: float | None = None,
          max: float | None = None) -> Param:
    return Param(name, "float", float(default), doc, min=min, max=max)


def Bool(name: str, default: bool, doc: str = "") -> Param:
    return Param(name, "bool", default, doc)


def Choice(name: str, default: str, choices: Sequence[str], doc: str = "") -> Param:
    return Param(name, "choice", default, doc, choices=tuple(choices))


def ShapeParam(name: str, default: Sequence[int], doc: str = "", *, max_dims: int = 8,
               allow_negative_one: bool = False) -> Param:
    return Param(name, "shape", tuple(default), doc, max_len=max_dims,
                 allow_negative_one=allow_negative_one)


def String(name: str, default: str, doc: str = "", *, max_len: int = 256) -> Param:
    return Param(name, "string", default, doc, max_len=max_len)


@dataclass(frozen=True)
class Port:
    name: str
    doc: str = ""
    optional: bool = False


ShapeRule = Callable[[ParamValues, InTypes], Sequence[TensorType]]
KwargsRule = Callable[[ParamValues, InTypes], Mapping[str, Any]]
TemplateRule = Callable[[ParamValues, InTypes], str]   # a template chosen by params and types
PortsRule = Callable[[Any], tuple[tuple[Port, ...], tuple[Port, ...]]]


def _no_kwargs(p: ParamValues, s: InTypes) -> Mapping[str, Any]:
    return {}


# How a block of kind "op" becomes code: `BlockSpec.emit` names a row, and the code generator
# has one emitter per row (`engine.core.codegen.EMITTERS`). A new block of any of these kinds
# is one spec in library.py; the generator never learns its name.
EMIT_KINDS: dict[str, str] = {
    "call": "one forward line `y = ...`: the `module`, `function` or `template` (see BlockSpec)",
    "buffer": "a fixed tensor built once in __init__ by `template` (a non-persistent buffer) "
              "and read in forward",
    "parameter": "a learnable tensor whose initial value is `template`, held in an nn.Parameter "
                 "and read in forward",
}


@dataclass(frozen=True)
class BlockSpec:
    """Everything dprog knows about one block type.

    How the block becomes code:
    - `kind` "input"/"output"/"loop"/"branch"/"body_input"/"body_output": the code generator
      handles these structurally (loops and branches by their mode, see `nodes.control`);
    - otherwise `emit` (a key of `EMIT_KINDS`). For "call", in order of precedence:
      - `module`: a submodule `self.<name> = <module>(**init(p, s))`, called as
        `template` (default `{self}({inputs})`);
      - `function`: `<function>(<inputs>, **args(p, s))`;
      - `template`: an expression with `{port}` and `{arg}` placeholders.
      For "buffer" and "parameter", `template` is the tensor's expression, with `{arg}`
      placeholders only.
    `template` is text, or a function of the params and input types that returns it; `{arg}`
    placeholders take the `repr`s of `args(p, s)`.
    """

    type: str
    title: str
    category: str
    doc: str
    shape: ShapeRule
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = (Port("y"),)
    params: tuple[Param, ...] = ()
    kind: str = "op"
    module: str | None = None
    init: KwargsRule = _no_kwargs
    function: str | None = None
    args: KwargsRule = _no_kwargs
    template: str | TemplateRule | None = None
    emit: str = "call"                      # a key of EMIT_KINDS
    ports: PortsRule | None = None          # dynamic ports, from the node (params, regions)
    count: Callable[[ParamValues, InTypes], int] | None = None  # learnable parameters
    # Multiply-adds per sample, for the analysis's compute cap (None: about one per output
    # value). Blocks whose work grows faster than their output say so here.
    macs: Callable[[ParamValues, InTypes], int] | None = None
    input_dtypes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    regions: tuple[str, ...] = ()           # names of the sub-graphs a node of this type holds
    loss: bool = False
    legacy_types: tuple[str, ...] = ()

    def param(self, name: str) -> Param | None:
        for p in self.params:
            if p.name == name:
                return p
        return None

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def port_lists(self, node: Any) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
        """(inputs, outputs) of this block for one node; dynamic blocks ask the node."""
        if self.ports is not None:
            return self.ports(node)
        return self.inputs, self.outputs

    def infer(self, params: ParamValues, inputs: InTypes, ports: Sequence[str]) -> list[TensorType]:
        """Run the shape rule after checking the input dtypes this block accepts."""
        dtypes = self.input_dtypes
        for port, t in zip(ports, inputs, strict=True):
            allowed = dtypes[port] if port in dtypes else dtypes.get("*", ("float",))
            if t.dtype not in allowed:
                raise ShapeError(f"expects {' or '.join(allowed)} values but gets {t.dtype}",
                                 port=port, code="type_mismatch")
        return list(self.shape(params, inputs))
