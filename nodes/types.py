"""Tensor types as the shape rules see them: a shape with a symbolic batch dim, and a dtype.

Pure data, no torch. A shape is a tuple of dims; each dim is an `int` or the symbol
`BATCH` ("B"), so `(B, 16)` reads like the comments in generated code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

BATCH = "B"
Dim = int | str
Shape = tuple[Dim, ...]
DTYPES = ("float", "long", "bool")


class ShapeError(Exception):
    """Raised by a shape rule when its inputs don't fit; the engine turns it into a Diagnostic.

    `port` names the offending input port and `param` the offending param, when known.
    """

    def __init__(self, message: str, *, port: str | None = None, param: str | None = None,
                 code: str = "shape_mismatch"):
        super().__init__(message)
        self.message = message
        self.port = port
        self.param = param
        self.code = code


@dataclass(frozen=True)
class TensorType:
    shape: Shape
    dtype: str = "float"
    # For integers known to lie in 0..high-1 (Positions' 0..n-1): what the checks of id
    # inputs compare with their bound. None when unknown; a new shape forgets it (a slice of
    # the positions would keep an overestimate), and it is no part of a type's identity.
    high: int | None = field(default=None, compare=False)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def batched(self) -> bool:
        return bool(self.shape) and self.shape[0] == BATCH

    def with_shape(self, shape: Sequence[Dim]) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def __str__(self) -> str:
        text = fmt_shape(self.shape)
        return text if self.dtype == "float" else f"{text} {self.dtype}"


def fmt_shape(shape: Sequence[Dim]) -> str:
    """Render a shape the way Python prints a tuple: `(B, 16)`, `(B,)`, `()`."""
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def numel(shape: Sequence[Dim]) -> int:
    """Elements per batch item: the product of the concrete dims."""
    n = 1
    for d in shape:
        if d != BATCH:
            n *= int(d)
    return n


def norm_dim(dim: int, rank: int, *, param: str = "dim") -> int:
    """A possibly negative dim as a non-negative index, or a ShapeError naming the param."""
    if not -rank <= dim < rank:
        raise ShapeError(f"{param}={dim} is out of range for a tensor of rank {rank}",
                         param=param, code="param_out_of_range")
    return dim % rank


def broadcast(*shapes: Sequence[Dim]) -> Shape:
    """Numpy/torch broadcasting of shapes; the batch symbol broadcasts like a dim > 1."""
    if shapes and all(s == shapes[0] for s in shapes):   # the common case: nothing to stretch
        return tuple(shapes[0])
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeError("shapes " + " and ".join(fmt_shape(s) for s in shapes)
                             + " do not broadcast together")
        out.append(dims.pop() if dims else 1)
    return tuple(out)
