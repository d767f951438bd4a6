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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

# Params are defined next door, one row per kind; specs are written with these constructors.
from .params import (  # noqa: F401
    PARAM_KINDS,
    Bool,
    Choice,
    Float,
    Floats,
    Int,
    Param,
    ParamKind,
    ShapeParam,
    String,
    Widget,
)
from .types import ShapeError, TensorType

ParamValues = Mapping[str, Any]
InTypes = Sequence[TensorType]


@dataclass(frozen=True)
class Port:
    name: str
    doc: str = ""
    optional: bool = False


ShapeRule = Callable[[ParamValues, InTypes], Sequence[TensorType]]
KwargsRule = Callable[[ParamValues, InTypes], Mapping[str, Any]]
TemplateRule = Callable[[ParamValues, InTypes], str]   # a template chosen by params and types
HeldRule = Callable[[ParamValues, InTypes], str | None]   # None: no tensor needed this time
PortsRule = Callable[[Any], tuple[tuple[Port, ...], tuple[Port, ...]]]


@dataclass(frozen=True)
class IdInput:
    """An input that takes integer ids (token ids, class indices) and the count n that bounds
    them, ids running 0..n-1: the value of param `count_param`, or dim `count_dim[1]` of input
    `count_dim[0]`'s inferred shape. Random example inputs stay below every such n."""

    port: str
    count_param: str | None = None
    count_dim: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        if (self.count_param is None) == (self.count_dim is None):
            raise ValueError(f"id input {self.port!r}: give count_param or count_dim, not both")


@dataclass(frozen=True)
class Held:
    """A fixed tensor a "call" block's line reads as `{held}`: built once in __init__ by
    `template` (`{arg}` placeholders) and kept as a non-persistent buffer, so it moves with the
    module to its device and no state dict holds it (a causal mask; the shape that noise is
    drawn like when no input gives one). `template` may be a rule that returns None when this
    node needs no tensor."""

    name: str                        # the attribute is `<node>_<name>`
    template: str | HeldRule


def _no_kwargs(p: ParamValues, s: InTypes) -> Mapping[str, Any]:
    return {}


# How a block of kind "op" becomes code: `BlockSpec.emit` names a row, and the code generator
# has one emitter per row (`engine.core.codegen.EMITTERS`). A new block of any of these kinds
# is one spec in library.py; the generator never learns its name.
EMIT_KINDS: dict[str, str] = {
    "call": "one forward line `y = ...`: the `module`, `function` or `template` (see BlockSpec), "
            "and a second when `finish` rewrites some outputs",
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
    held: Held | None = None
    unpack: str | None = None
    finish: Mapping[str, str] = field(default_factory=dict)
    ports: PortsRule | None = None          # dynamic ports, from the node (params, regions)
    ports_doc: tuple[str, str] | None = None   # what dynamic inputs and outputs are, for people
    count: Callable[[ParamValues, InTypes], int] | None = None  # learnable parameters
    # The module's learnable tensors by attribute name and shape, for the blocks whose tensors
    # may be tied to another node's (`Node.ties`): an LM head's weight to an embedding's.
    tensors: Callable[[ParamValues, InTypes], Mapping[str, tuple[int, ...]]] | None = None
    # Multiply-adds per sample, for the analysis's compute cap (None: about one per output
    # value). Blocks whose work grows faster than their output say so here.
    macs: Callable[[ParamValues, InTypes], int] | None = None
    input_dtypes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    regions: tuple[str, ...] = ()           # names of the sub-graphs a node of this type holds
    loss: bool = False
    # What training and its instruments need to know. `id_inputs`: inputs of integer ids and
    # what bounds them. `dead_units`: outputs whose exact zeros mean dead units (ReLU's), that
    # gradient flow counts. `skips_weights(params)`: whether a step may leave some of the
    # block's weights without a gradient (distributed training must then look for them).
    id_inputs: tuple[IdInput, ...] = ()
    # Inputs whose values must lie in [0, 1] (BCE's probabilities), which torch checks only
    # when the model runs: random example inputs of a graph holding such a block are uniform
    # in [0, 1), and a refusal there at run time is the data's fault, not the graph's.
    unit_inputs: tuple[str, ...] = ()
    dead_units: tuple[str, ...] = ()
    skips_weights: Callable[[ParamValues], bool] | None = None
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


def port_text(spec: BlockSpec) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(inputs, outputs) as (name, doc) pairs for people: what `dprog blocks` and the palette
    show. Dynamic ports are those of a block with default params, or the spec's `ports_doc`
    when they come from more than params (a loop's, from its body)."""
    if spec.ports_doc is not None:
        return [("…", spec.ports_doc[0])], [("…", spec.ports_doc[1])]
    try:
        inputs, outputs = spec.port_lists(SimpleNamespace(params=spec.defaults(), regions={}))
    except Exception:   # a dynamic rule that needs more than defaults: say nothing wrong
        return [], []

    def doc(port: Port) -> str:
        return port.doc or "any shape"

    return [(p.name, doc(p)) for p in inputs], [(p.name, doc(p)) for p in outputs]
