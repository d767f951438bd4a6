"""Block params and their kinds: one row per kind of param, as ComfyUI's V3 schema has one class per type.

A `Param` is a typed, documented block parameter. Its `kind` names a row of `PARAM_KINDS`,
and that row is everything dprog knows about the kind:

- `check`: why a value is not acceptable (the message a diagnostic or a refused edit shows);
- `coerce`: the canonical in-memory form (shapes are tuples, whole floats are floats);
- `widget`: what the inspector builds for it, as data (`Widget`); `app/views` turns that into
  Dear PyGui calls, `to_widget`/`from_widget` convert between a value and what the widget holds;
- `summary`: the short text a node shows on the canvas;
- `cap`: the studio's hard limit on a value's size, beyond the param's own;
- `to_json`/`from_json`: how a value is written to and read from a graph file.

The kinds: int, float, bool, choice, shape (a per-sample shape) and string, and floats (a
list of numbers: a Parameter's initial values). Adding a kind means adding one class here and
its constructor. Pure: no torch, no GUI.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

# The commands' hard caps, whatever a spec allows: a file or a script can hand them anything.
MAX_STRING_CHARS = 1000
MAX_SHAPE_DIMS = 16
MAX_DIM = 1 << 24
MAX_FLOATS = 4096   # numbers in one list param (graph.schema.json allows as many)
HUGE_INT = 1 << 1000   # bigger than any float: such an int fails `check` and is never coerced


@dataclass(frozen=True)
class Widget:
    """The inspector's control for a param, as data.

    `control` is one of "int" (a number box; `min`/`max` is its range), "float" (a number box
    shown with `format`), "checkbox", "combo" (one of `choices`) or "text" (a text box,
    with `hint` as its placeholder)."""

    control: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    hint: str = ""
    format: str = ""


@dataclass(frozen=True)
class Param:
    """A typed, documented block parameter with a default and (for numbers) a range."""

    name: str
    kind: str                   # a key of PARAM_KINDS
    default: Any
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    max_len: int = 256          # strings, and the number of dims in a shape
    allow_negative_one: bool = False  # shapes: Reshape's "infer this dim"
    # (file version, default before it) when the default changed in that version of the graph
    # file format: the migration to it writes the old default into nodes that left it out,
    # so older files keep their meaning.
    former_default: tuple[int, Any] | None = None

    @property
    def kind_row(self) -> ParamKind:
        """This param's row of `PARAM_KINDS`."""
        return PARAM_KINDS[self.kind]

    def check(self, value: Any) -> str | None:
        """Return why `value` is not acceptable for this param, or None when it is."""
        row = PARAM_KINDS.get(self.kind)
        return f"has unknown kind {self.kind!r}" if row is None else row.check(self, value)

    def coerce(self, value: Any) -> Any:
        """The canonical in-memory form: shapes are tuples, ints given as floats stay ints."""
        row = PARAM_KINDS.get(self.kind)
        return value if row is None else row.coerce(value)

    def range_check(self, value: float) -> str | None:
        if self.min is not None and value < self.min:
            return f"must be at least {self.min:g}"
        if self.max is not None and value > self.max:
            return f"must be at most {self.max:g}"
        return None


class ParamKind:
    """One row of the kind table. The defaults suit a kind held as a plain JSON value."""

    name: ClassVar[str]

    def check(self, p: Param, value: Any) -> str | None:
        raise NotImplementedError

    def coerce(self, value: Any) -> Any:
        return value

    def widget(self, p: Param) -> Widget:
        return Widget("text")

    def to_widget(self, value: Any) -> Any:
        return str(value)

    def from_widget(self, raw: Any) -> Any:
        """The value a widget's content stands for; ValueError (with a reason) when none."""
        return raw

    def text(self, value: Any) -> str:
        """The value in a sentence or a tooltip."""
        return str(value)

    def summary(self, value: Any) -> str:
        """The value as a node on the canvas shows it: short (an empty shape is a scalar's)."""
        if isinstance(value, tuple):
            return "×".join(map(str, value)) if value else "()"
        return str(value)

    def cap(self, value: Any) -> str | None:
        """Why the value is beyond the studio's hard limits, for a value `check` accepted."""
        return None

    def to_json(self, value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    def from_json(self, value: Any) -> Any:
        # Read as written: a wrong value must reach the analysis as it is, to be reported.
        return value


class IntKind(ParamKind):
    name = "int"

    def check(self, p: Param, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        return p.range_check(value)

    def widget(self, p: Param) -> Widget:
        return Widget("int", min=p.min, max=p.max)

    def to_widget(self, value: Any) -> Any:
        return int(value)


class FloatKind(ParamKind):
    name = "float"

    def check(self, p: Param, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        # An int too big for a float (a 400-digit JSON number) is as unusable as inf;
        # math.isfinite would raise OverflowError on it.
        if (isinstance(value, int) and abs(value) > HUGE_INT) or \
                (isinstance(value, float) and not math.isfinite(value)):
            return "must be a finite number"
        return p.range_check(value)

    def coerce(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= HUGE_INT:
            return float(value)
        return value

    def widget(self, p: Param) -> Widget:
        return Widget("float", min=p.min, max=p.max, format="%.6g")

    def to_widget(self, value: Any) -> Any:
        return float(value)

    def summary(self, value: Any) -> str:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return f"{value:g}" if number else super().summary(value)


class BoolKind(ParamKind):
    name = "bool"

    def check(self, p: Param, value: Any) -> str | None:
        return None if isinstance(value, bool) else "must be true or false"

    def widget(self, p: Param) -> Widget:
        return Widget("checkbox")

    def to_widget(self, value: Any) -> Any:
        return bool(value)


class ChoiceKind(ParamKind):
    name = "choice"

    def check(self, p: Param, value: Any) -> str | None:
        if value not in p.choices:
            return "must be one of " + ", ".join(repr(c) for c in p.choices)
        return None

    def widget(self, p: Param) -> Widget:
        return Widget("combo", choices=p.choices)


class StringKind(ParamKind):
    name = "string"
    SUMMARY_CHARS = 18

    def check(self, p: Param, value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        return None if len(value) <= p.max_len else f"is longer than {p.max_len} characters"

    def summary(self, value: Any) -> str:
        text = super().summary(value)
        return text if len(text) <= self.SUMMARY_CHARS else text[: self.SUMMARY_CHARS - 1] + "…"

    def cap(self, value: Any) -> str | None:
        return f"is longer than {MAX_STRING_CHARS} characters" if len(value) > MAX_STRING_CHARS \
            else None


class ShapeKind(ParamKind):
    """A per-sample shape: a list of positive ints in files and widgets, a tuple in memory."""

    name = "shape"

    def check(self, p: Param, value: Any) -> str | None:
        if not isinstance(value, list | tuple) or len(value) > p.max_len:
            return f"must be a list of at most {p.max_len} positive integers"
        for d in value:
            if isinstance(d, bool) or not isinstance(d, int):
                return "must be a list of integers"
            if not (d >= 1 or (d == -1 and p.allow_negative_one)) or d > MAX_DIM:
                return f"has a dim {d} outside 1..{MAX_DIM}"
        if p.allow_negative_one and list(value).count(-1) > 1:
            return "may infer (-1) at most one dim"
        return None

    def coerce(self, value: Any) -> Any:
        return tuple(value) if isinstance(value, list | tuple) else value

    def widget(self, p: Param) -> Widget:
        return Widget("text", hint="e.g. 1, 28, 28")

    def to_widget(self, value: Any) -> Any:
        return format_shape(value)

    def from_widget(self, raw: Any) -> Any:
        return parse_shape(raw)

    def text(self, value: Any) -> str:
        return format_shape(value)

    def cap(self, value: Any) -> str | None:
        return f"may have at most {MAX_SHAPE_DIMS} dims" if len(value) > MAX_SHAPE_DIMS else None

    def from_json(self, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value


class FloatsKind(ParamKind):
    """A list of finite numbers (a Parameter's initial values): a list in files and a text box
    of comma-separated numbers in the inspector, a tuple of floats in memory."""

    name = "floats"
    SUMMARY_VALUES = 3

    def check(self, p: Param, value: Any) -> str | None:
        if not isinstance(value, list | tuple) or len(value) > p.max_len:
            return f"must be a list of at most {p.max_len} numbers"
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int | float):
                return "must be a list of numbers"
            if (isinstance(v, int) and abs(v) > HUGE_INT) or \
                    (isinstance(v, float) and not math.isfinite(v)):
                return "must hold finite numbers only"
            problem = p.range_check(v)
            if problem:
                return f"has a value {v!r} that {problem}"
        return None

    def coerce(self, value: Any) -> Any:
        if isinstance(value, list | tuple) and all(
                isinstance(v, int | float) and not isinstance(v, bool) and abs(v) <= HUGE_INT
                for v in value):
            return tuple(float(v) for v in value)
        return value

    def widget(self, p: Param) -> Widget:
        return Widget("text", hint="e.g. 0.5, -1, 2")

    def to_widget(self, value: Any) -> Any:
        return format_numbers(value)

    def from_widget(self, raw: Any) -> Any:
        return parse_numbers(raw)

    def text(self, value: Any) -> str:
        return format_numbers(value)

    def summary(self, value: Any) -> str:
        if not isinstance(value, list | tuple):
            return str(value)
        shown = ", ".join(f"{v:g}" if isinstance(v, int | float) else str(v)
                          for v in value[: self.SUMMARY_VALUES])
        return f"[{shown}{', …' if len(value) > self.SUMMARY_VALUES else ''}]"

    def cap(self, value: Any) -> str | None:
        return f"may hold at most {MAX_FLOATS} numbers" if len(value) > MAX_FLOATS else None

    def from_json(self, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value


PARAM_KINDS: dict[str, ParamKind] = {row.name: row for row in (
    IntKind(), FloatKind(), BoolKind(), ChoiceKind(), ShapeKind(), StringKind(), FloatsKind())}


_AS_HELD = ParamKind()   # a value no param of its block names: written and read as it is held


def to_json(param: Param | None, value: Any) -> Any:
    """`value` as a graph file stores it: its kind's JSON form (tuples as lists)."""
    return PARAM_KINDS.get(param.kind, _AS_HELD).to_json(value) if param else _AS_HELD.to_json(value)


def from_json(param: Param | None, value: Any) -> Any:
    """A value read from a graph file, in memory as its kind holds it; unchecked, so a wrong
    value reaches the analysis as written."""
    return PARAM_KINDS.get(param.kind, _AS_HELD).from_json(value) if param else value


def parse_shape(text: str) -> list[int]:
    """"2, 3", "[2, 3]", "(2,3)" or "2x3" → [2, 3]; ValueError with a reason otherwise."""
    inner = text.strip().strip("[]()").strip()
    if not inner:
        return []
    parts = [p for p in re.split(r"[\s,x×]+", inner) if p]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{text!r} is not a list of integers, e.g. 1, 28, 28") from None


def parse_numbers(text: str) -> list[float]:
    """"0.5, -1, 2" or "[0.5 -1 2]" → [0.5, -1.0, 2.0]; ValueError with a reason otherwise."""
    inner = str(text).strip().strip("[]()").strip()
    parts = [p for p in re.split(r"[\s,]+", inner) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"{text!r} is not a list of numbers, e.g. 0.5, -1, 2") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{text!r} holds a number that is not finite")
    return values


def format_numbers(value: Any) -> str:
    """A list of numbers as its text box shows it: "0.5, -1, 2"."""
    if not isinstance(value, list | tuple):
        return str(value)
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)


def format_shape(value: Any) -> str:
    """A shape as its text box shows it: "1, 28, 28"."""
    return ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)


# --- the constructors the block library writes ------------------------------------------------


def Int(name: str, default: int, doc: str = "", *, min: int | None = None,
        max: int | None = None, former_default: tuple[int, int] | None = None) -> Param:
    return Param(name, IntKind.name, default, doc, min=min, max=max,
                 former_default=former_default)


def Float(name: str, default: float, doc: str = "", *, min: float | None = None,
          max: float | None = None) -> Param:
    return Param(name, FloatKind.name, float(default), doc, min=min, max=max)


def Bool(name: str, default: bool, doc: str = "") -> Param:
    return Param(name, BoolKind.name, default, doc)


def Choice(name: str, default: str, choices: Sequence[str], doc: str = "") -> Param:
    return Param(name, ChoiceKind.name, default, doc, choices=tuple(choices))


def ShapeParam(name: str, default: Sequence[int], doc: str = "", *, max_dims: int = 8,
               allow_negative_one: bool = False) -> Param:
    return Param(name, ShapeKind.name, tuple(default), doc, max_len=max_dims,
                 allow_negative_one=allow_negative_one)


def String(name: str, default: str, doc: str = "", *, max_len: int = 256) -> Param:
    return Param(name, StringKind.name, default, doc, max_len=max_len)


def Floats(name: str, default: Sequence[float], doc: str = "", *, max_len: int = MAX_FLOATS,
           min: float | None = None, max: float | None = None) -> Param:
    return Param(name, FloatsKind.name, tuple(float(v) for v in default), doc, min=min, max=max,
                 max_len=max_len)
