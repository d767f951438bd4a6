"""Hostile strings in every string field of a graph file never become code.

For each field and each payload, either the loader or validation refuses it cleanly, or the
generated source compiles, holds nothing of the payload outside comments and docstrings
(and there only reduced to harmless characters), runs, and never triggers the sentinels
the payloads try to reach.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import re
import tokenize
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import build, import_file, kitchen_sink

import engine
from engine.core.fileformat import GraphFileError, dumps, load_graph, loads
from engine.core.graph import Graph, Node, edit_region, set_param
from nodes import REGISTRY, expression

MARKER = "dprog_pwned_marker"
PAYLOADS = [
    "__import__('os').system('touch dprog_pwned_marker')",
    "__import__('builtins').__dict__.__setitem__('DPROG_PWNED', 1)",
    'x"""; __import__("builtins").DPROG_PWNED = 1; """',
    "x'''; __import__('builtins').DPROG_PWNED = 1; '''",
    "ends in a backslash \\",
    "two\nlines\n__import__('os').system('touch dprog_pwned_marker')",
    "carriage\rreturn = __import__('os')",
    "line\u2028separator\u2029paragraph",
    "vertical\x0btab\x0cform feed\x1cfile sep\x85nel",
    "{__import__('os').system('touch dprog_pwned_marker')}",
    "{0} {x!r} {{}} %s %(name)s",
    "# comment'\"",
    "\x00tap0:os\x00 \x00body:self:X\x00(",
    "self",
    "torch",
    "class",
    "__class__",
    "F",
    "nn",
    "ｅｘｅｃ",
    "𝔢𝔳𝔞𝔩",
    "caf\u00e9 \U0001f600",
    "",
    "   ",
    "9leading digit",
    "a" * 300,
]
DUNDER_ATTRIBUTES_ALLOWED = {"__init__"}
# builtins that could run or reach anything; the generator reserves these names
FORBIDDEN_NAMES = {"__import__", "eval", "exec", "compile", "open", "getattr", "setattr", "globals",
                   "locals", "vars", "breakpoint", "__builtins__", "input", "print"}


@pytest.fixture(autouse=True)
def sentinels(tmp_path, monkeypatch):
    """Run each test in an empty directory; afterwards no payload may have left its mark."""
    monkeypatch.chdir(tmp_path)
    yield
    assert not (tmp_path / MARKER).exists(), "a payload ran a shell command"
    assert not hasattr(builtins, "DPROG_PWNED"), "a payload ran Python code"


def relabel(graph: Graph, label: str) -> Graph:
    """Every node, in every region, labelled `label`."""
    return replace(graph, nodes=tuple(
        replace(n, label=label, regions={k: relabel(r, label) for k, r in n.regions.items()})
        for n in graph.nodes))


def docstring_positions(tree: ast.AST) -> set[tuple[int, int]]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.add((first.lineno, first.col_offset))
    return found


SAFE_TEXT = re.compile(r"[ -~]*")          # printable ASCII
UNSAFE_IN_TEXT = set("\\'\"`")


def check_source(source: str, payload: str) -> None:
    """The generated text is plain, and nothing of `payload` is code."""
    assert all(c == "\n" or " " <= c <= "~" for c in source), "control or non-ASCII characters"
    tree = ast.parse(source)
    docstrings = docstring_positions(tree)
    code = []   # the source without its comments and docstrings
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME:
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tok.string), tok
        elif tok.type == tokenize.COMMENT:
            assert not UNSAFE_IN_TEXT & set(tok.string), tok.string
            continue
        elif tok.type == tokenize.STRING:
            if tok.start in docstrings:
                inner = tok.string[3:-3]
                assert tok.string[:3] == tok.string[-3:] == '"""' and not UNSAFE_IN_TEXT & set(inner)
                continue
            # the only other strings are names and fixed choices
            assert re.fullmatch(r"""(['"])[A-Za-z0-9_]*\1""", tok.string), tok.string
        code.append(tok.string)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert node.id not in FORBIDDEN_NAMES, node.id
        elif isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__") or node.attr in DUNDER_ATTRIBUTES_ALLOWED, node.attr
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert all(n.split(".")[0] == "torch" for n in names)
    if re.search(r"[^A-Za-z0-9_ ]", payload) and len(payload) > 2:
        assert payload not in " ".join(code)


def run_both_ways(graph: Graph, payload: str, tmp_path: Path) -> None:
    """compile_graph and the exported file both build, check clean and run."""
    source = engine.export_python(graph)
    check_source(source, payload)
    compile(source, "model.py", "exec")
    torch.manual_seed(0)
    model = engine.compile_graph(graph)
    inputs = engine.example_inputs(graph, 2, generator=torch.Generator().manual_seed(0))
    expected = model(*inputs)
    path = tmp_path / "model.py"
    path.write_text(source, encoding="utf-8")
    module = import_file(path, "dprog_hostile_export")
    exported = getattr(module, module.__all__[0])()
    exported.load_state_dict(model.state_dict())
    got = exported(*inputs)
    for a, b in zip(expected if isinstance(expected, tuple) else (expected,),
                    got if isinstance(got, tuple) else (got,), strict=True):
        assert torch.equal(a, b)


def through_a_file(graph: Graph) -> Graph | None:
    """The graph after a trip through its file format; None when the loader refuses it.
    (In memory: test_engine_fileformat covers the files themselves.)"""
    try:
        loaded = loads(dumps(graph), "hostile.json")
    except GraphFileError as e:
        assert str(e).startswith("hostile.json: ")
        return None
    assert loaded == graph
    return loaded


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_labels_and_graph_name(payload, tmp_path):
    graph = replace(relabel(kitchen_sink(), payload), name=payload,
                    training={"dataset": {"name": payload[:64], "note": payload}})
    loaded = through_a_file(graph)
    if loaded is None:
        assert len(payload) > 200   # only the overlong one may be refused
        graph = replace(relabel(kitchen_sink(), payload[:200]), name=payload[:200])
        loaded = through_a_file(graph)
    assert engine.validate(loaded) == []
    run_both_ways(loaded, payload, tmp_path)


@pytest.mark.parametrize("payload", [p for p in PAYLOADS
                                     if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", p)])
def test_hostile_node_ids_are_refused(payload, tmp_path):
    doc = json.loads(Path(__file__).resolve().parents[1].joinpath(
        "sample_graphs", "moons_mlp.json").read_text())
    doc["nodes"][1]["id"] = payload
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(GraphFileError, match=re.escape(str(path))):
        load_graph(path)
    with pytest.raises(ValueError):
        Node(payload, "linear")


def test_identifier_ids_that_shadow_things():
    """Ids are identifiers, but they may name builtins, keywords and generated names."""
    ids = ["self", "torch", "nn", "F", "tap", "i", "_", "__init__", "__class__", "forward",
           "super", "None", "class", "lambda", "print", "exec", "type", "match", "training",
           "parameters", "__builtins__", "__all__", "x_t", "route_mask", "then_route"]
    nodes = [("inp", "input", {"shape": [2]})] + [(i, "linear", {"out_features": 2}) for i in ids]
    graph = build([*nodes, ("out", "output")],
                  [f"{a[0]} -> {b[0]}" for a, b in zip(nodes, [*nodes[1:], ("out",)], strict=True)])
    assert engine.validate(graph) == []
    run_both_ways(graph, "", Path.cwd())
    model = engine.compile_graph(graph)
    assert sum(p.numel() for p in model.parameters()) == 6 * len(ids)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_string_and_choice_params(payload, tmp_path):
    base = kitchen_sink()
    edits = [
        (["think", "body"], "mix", "expr", "bad_expression"),
        (["scan", "body"], "total_next", "state", None),   # region_signature or bad_param
        (["route", "then"], "act", "approximate", "bad_param"),
        (["scan", "body"], "x_t", "role", "bad_param"),
        ([], "think", "mode", "bad_param"),
        ([], "route", "mode", "bad_param"),
        ([], "x", "dtype", "bad_param"),
    ]
    everything = base
    for region, node_id, name, _ in edits:
        everything = edit_region(everything, region,
                                 lambda r, n=node_id, k=name: set_param(r, n, k, payload))
    through_a_file(everything)   # the loader takes any short string; it must not choke
    for region, node_id, name, code in edits:
        loaded = edit_region(base, region, lambda r, n=node_id, k=name: set_param(r, n, k, payload))
        found = [d for d in engine.validate(loaded) if d.severity == "error"]
        if found:
            assert code is None or found[0].code == code, [str(d) for d in found]
            assert len(found) == 1, [str(d) for d in found]
            with pytest.raises(engine.GraphError):
                engine.export_python(loaded)
        else:   # a payload that happens to be a valid value must still generate safe code
            run_both_ways(loaded, payload, tmp_path)


@pytest.mark.parametrize("payload", PAYLOADS[:3] + PAYLOADS[5:13:2] + PAYLOADS[19:21])
def test_hostile_param_names_from_python(payload, tmp_path):
    """Param names the file format would refuse, set through the Python API instead."""
    graph = set_param(kitchen_sink(), "f", payload, payload)
    diags = engine.validate(graph)
    assert [(d.code, d.severity) for d in diags] == [("unknown_param", "error")]
    assert "\n" not in diags[0].message and "\u2028" not in diags[0].message
    with pytest.raises(engine.GraphError):
        engine.export_python(graph)


REFUSED_EXPRESSIONS = [
    "a.__class__", "a.__class__.__bases__[0].__subclasses__()", "torch.tanh.__self__",
    "torch.sigmoid(a).__class__", "__import__('os').system('touch dprog_pwned_marker')",
    "__import__", "lambda: a", "(lambda q: q)(a)", "a[0]", "a[:, 0]", "[q for q in a]",
    "sum(q for q in a)", "{q: q for q in a}", "(q := a)", "9**9**9**9", "a * 9**9**9**9",
    "a + 10 ** 400", "a + 1e400", "a + 2 ** 1000", "1 / 0 + a", "a + (-8) ** 0.5",
    "a * " * 150 + "a", "a +" * 300 + " a", "(" * 300 + "a" + ")" * 300,
    "getattr(a, 'x')", "a if b else a", "a and b", "not a", "~a", "a @ b", "'str'",
    # comparisons and masks: allowed, but not every way
    "a < b < a", "a is b", "a in b", "a is not b", "1 < 2", "~1", "1 & a", "(a < b) + 1",
    "-(a > b)", "(a > b) < (b > a)", "a & b", "a | (a < b)", "torch.where(a, a, b)",
    "torch.where(1, a, b)", "torch.where(a < b, a)", "torch.where(a < b, 0, 1) ** 2",
    "torch.sigmoid(a < b)", "torch.where(a < b, a, 'x')", "torch.where(a < b, a, b).abs()",
    "a ^ b", "a // b", "a << b", "(a > 0) * b", "a > 0 if b else a",
    "b'x'", "f'{a}'", "1j * a", "True * a", "None", "...", "torch.exp(a, out=b)",
    "torch.clamp(a, min=b)", "torch.clamp(a, **{})", "torch.tanh(*a)",
    "torch.nn.functional.relu(a)", "torch.maximum(a, 0)", "torch.sigmoid(2)",
    "torch.clamp(a, min=1, min=2)", "a; b", "a\nb", "import os", "x = a", "z", "torch",
    "torch.sigmoid", "print(a)", "eval('a')", "", "   ", "#",
]


@pytest.mark.parametrize("text", REFUSED_EXPRESSIONS)
def test_expression_refusals(text):
    graph = build([("x", "input", {"shape": [3]}), ("y2", "input", {"shape": [3]}),
                   ("f", "expression", {"expr": text, "inputs": 2}), ("out", "output")],
                  ["x -> f.a", "y2 -> f.b", "f -> out"])
    found = engine.validate(graph)
    if len(text) > 500:
        assert [(d.code, d.param) for d in found] == [("param_out_of_range", "expr")] or \
               [d.code for d in found] == ["bad_param"]
    else:
        assert [(d.code, d.node, d.param) for d in found] == [("bad_expression", "f", "expr")], \
            [str(d) for d in found]
    with pytest.raises(expression.ExpressionError):   # in the grammar, or in its dtypes
        tree = expression.parse(text, ("a", "b"))
        expression.result_dtype(tree, {"a": "float", "b": "float"})


@pytest.mark.parametrize("text, check", [
    ("a + b", lambda a, b: a + b),
    ("a * torch.sigmoid(b) + 0.5", lambda a, b: a * torch.sigmoid(b) + 0.5),
    ("torch.clamp(a, min=-1, max=1.5) - b ** 2", lambda a, b: torch.clamp(a, -1, 1.5) - b ** 2),
    ("torch.maximum(a, b) % 2 / 3", lambda a, b: torch.maximum(a, b) % 2 / 3),
    ("-a + +b * 2 ** 0.5", lambda a, b: -a + b * 2 ** 0.5),
    ("(a\n+ b)  # comment", lambda a, b: a + b),
    ("a \\\n + b", lambda a, b: a + b),
    ("  a*b  ", lambda a, b: a * b),
    ("torch.where(a > b, a, 0.0)", lambda a, b: torch.where(a > b, a, 0.0)),
    ("torch.where((a > 0) & ~(b < 0), torch.abs(a), b) + torch.max(a, b)",
     lambda a, b: torch.where((a > 0) & ~(b < 0), torch.abs(a), b) + torch.max(a, b)),
    ("torch.min(a, b) * torch.clamp(b, max=0.5)", lambda a, b: torch.min(a, b) * b.clamp(max=0.5)),
    ("torch.where((a <= b) | (a == b), 1, 2.5)", lambda a, b: torch.where((a <= b) | (a == b), 1, 2.5)),
])
def test_accepted_expressions_are_re_emitted(text, check, tmp_path):
    graph = build([("x", "input", {"shape": [3]}), ("y2", "input", {"shape": [3]}),
                   ("f", "expression", {"expr": text}), ("out", "output")],
                  ["x -> f.a", "y2 -> f.b", "f -> out"])
    assert engine.validate(graph) == []
    run_both_ways(graph, text, tmp_path)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(engine.compile_graph(graph)(a, b), check(a, b))
    assert "#" not in engine.export_python(graph).split("f = ")[1].split("  #")[0]


def test_string_params_have_length_limits():
    for spec in REGISTRY.values():
        for p in spec.params:
            if p.kind == "string":
                assert p.max_len <= 1000 and p.check("x" * (p.max_len + 1))
