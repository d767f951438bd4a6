"""Param kinds are a table: one row per kind holds its check, its canonical form, its widget,
its text on a node and its JSON form; the library, the inspector, the editor, the commands
and the file format all read that row."""

from __future__ import annotations

import json

import pytest

from engine.core.fileformat import graph_to_document, loads
from engine.core.graph import Graph, Node
from nodes import BLOCKS
from nodes.params import (
    MAX_SHAPE_DIMS,
    MAX_STRING_CHARS,
    PARAM_KINDS,
    Bool,
    Choice,
    Float,
    Int,
    ParamKind,
    ShapeParam,
    String,
    Widget,
    from_json,
    to_json,
)

CONTROLS = {"int", "float", "checkbox", "combo", "text"}   # what the inspector can build
ALL_PARAMS = [(spec.type, p) for spec in BLOCKS for p in spec.params]


def test_every_kind_is_one_row_with_its_name():
    assert set(PARAM_KINDS) == {"int", "float", "bool", "choice", "shape", "string", "floats"}
    for name, row in PARAM_KINDS.items():
        assert isinstance(row, ParamKind) and row.name == name


@pytest.mark.parametrize("type_, param", ALL_PARAMS, ids=[f"{t}.{p.name}" for t, p in ALL_PARAMS])
def test_every_library_param_reads_its_row(type_, param):
    row = param.kind_row
    assert row is PARAM_KINDS[param.kind]
    assert param.check(param.default) is None and row.cap(param.default) is None
    assert row.coerce(param.default) == param.default   # defaults are held canonically
    widget = row.widget(param)
    assert isinstance(widget, Widget) and widget.control in CONTROLS
    if widget.control == "combo":
        assert widget.choices == param.choices and param.default in widget.choices
    # Through a file and back, and through the widget and back, a value stays itself.
    stored = json.loads(json.dumps(to_json(param, param.default)))
    assert param.coerce(from_json(param, stored)) == param.default
    assert param.coerce(row.from_widget(row.to_widget(param.default))) == param.default
    assert isinstance(row.summary(param.default), str)


CASES = [
    # (param, value, check message or None, canonical form)
    (Int("n", 1, min=1, max=9), 3, None, 3),
    (Int("n", 1, min=1, max=9), 0, "must be at least 1", 0),
    (Int("n", 1, min=1, max=9), True, "must be an integer", True),
    (Float("f", 0.5, min=0.0, max=1.0), 1, None, 1.0),
    (Float("f", 0.5), float("inf"), "must be a finite number", float("inf")),
    (Float("f", 0.5), "x", "must be a number", "x"),
    (Bool("b", True), 1, "must be true or false", 1),
    (Choice("c", "a", ("a", "b")), "z", "must be one of 'a', 'b'", "z"),
    (String("s", "", max_len=3), "abcd", "is longer than 3 characters", "abcd"),
    (ShapeParam("shape", (2,)), [1, 28, 28], None, (1, 28, 28)),
    (ShapeParam("shape", (2,)), [0], f"has a dim 0 outside 1..{1 << 24}", (0,)),
    (ShapeParam("shape", (-1,), allow_negative_one=True), [-1, -1], "may infer (-1) at most one dim",
     (-1, -1)),
]


@pytest.mark.parametrize("param, value, message, canonical", CASES)
def test_check_and_canonical_form(param, value, message, canonical):
    assert param.check(value) == message
    assert param.coerce(value) == canonical and type(param.coerce(value)) is type(canonical)


def test_widgets_describe_what_the_inspector_builds():
    assert Int("n", 1, min=1, max=9).kind_row.widget(Int("n", 1, min=1, max=9)) == \
        Widget("int", min=1, max=9)
    shape = ShapeParam("shape", (2,))
    assert shape.kind_row.widget(shape) == Widget("text", hint="e.g. 1, 28, 28")
    assert shape.kind_row.to_widget((1, 28, 28)) == "1, 28, 28"
    assert shape.kind_row.from_widget("[2 x 3]") == [2, 3]
    with pytest.raises(ValueError, match="not a list of integers"):
        shape.kind_row.from_widget("two")
    assert Bool("b", True).kind_row.widget(Bool("b", True)).control == "checkbox"


def test_node_summaries():
    assert PARAM_KINDS["float"].summary(0.10000) == "0.1"
    assert PARAM_KINDS["float"].summary("oops") == "oops"   # a wrong value from a file
    assert PARAM_KINDS["shape"].summary((1, 28, 28)) == "1×28×28"
    assert PARAM_KINDS["string"].summary("a * torch.sigmoid(b) + c") == "a * torch.sigmoid…"


def test_the_commands_hard_caps():
    assert PARAM_KINDS["string"].cap("x" * MAX_STRING_CHARS) is None
    assert PARAM_KINDS["string"].cap("x" * (MAX_STRING_CHARS + 1)) == \
        f"is longer than {MAX_STRING_CHARS} characters"
    assert PARAM_KINDS["shape"].cap((1,) * (MAX_SHAPE_DIMS + 1)) == \
        f"may have at most {MAX_SHAPE_DIMS} dims"
    assert PARAM_KINDS["int"].cap(10 ** 9) is None


def test_files_store_each_kind_in_its_json_form():
    graph = Graph(nodes=(Node("x", "input", {"shape": (1, 28, 28), "dtype": "long"}),
                         Node("d", "dropout", {"p": 0.25}),
                         Node("odd", "dropout", {"p": 0.25, "extra": (1, 2)}),   # no such param
                         Node("ghost", "no_such_block", {"shape": (3,)})))
    doc = graph_to_document(graph)
    params = {n["id"]: n["params"] for n in doc["nodes"]}
    assert params == {"x": {"dtype": "long", "shape": [1, 28, 28]}, "d": {"p": 0.25},
                      "odd": {"extra": [1, 2], "p": 0.25}, "ghost": {"shape": [3]}}
    back = loads(json.dumps(doc))
    assert back.node("x").params["shape"] == (1, 28, 28)
    assert back.node("ghost").params["shape"] == (3,)
