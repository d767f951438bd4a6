"""Validation: one test per diagnostic code, root causes only, paths into regions, and
`validate` never raising, whatever the params hold."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import REPO, build, chain, codes, errors, linear_body

from engine import Diagnostic, analyze, validate
from engine.core.graph import Edge, Function, Graph, edit_region, set_param, set_tie
from nodes import REGISTRY

X2 = ("x", "input", {"shape": [2]})
OUT = ("y", "output")


def only_error(graph) -> Diagnostic:
    """The graph's single error (root causes only: nothing downstream may add another)."""
    found = errors(validate(graph))
    assert len(found) == 1, [str(d) for d in found]
    return found[0]


def emitted_codes() -> set[str]:
    """Every diagnostic code the engine and the block library can emit, found in their source."""
    found = set(re.findall(r'report\("([a-z_]+)"', (REPO / "engine/core/analysis.py").read_text()))
    for path in (REPO / "nodes").glob("*.py"):
        found |= set(re.findall(r'code="([a-z_]+)"', path.read_text()))
    return found | {"no_output", "shape_mismatch"}   # the latter is ShapeError's default


# code -> a graph that has exactly that problem, and where it is reported (node, port, param)
def bodies_differ():
    other = build([("x", "body_input"), ("fc", "linear"), ("z", "body_output")],
                  ["x -> fc", "fc -> z"])
    return build([X2, ("c", "select", {"index": 0}),
                  ("br", "branch", {}, {"then": linear_body(2), "else": other}), OUT],
                 ["x -> c", "c -> br.cond", "x -> br.x", "br.y -> y"])


def state_loop(mode="repeat", outputs=(("h_next", "body_output", {"role": "state", "state": "h"}),),
               wires=("h -> fc", "fc -> h_next"), **params):
    body = build([("h", "body_input", {"role": "state", "shape": [2]}),
                  ("fc", "linear", {"out_features": 2}), *outputs], wires)
    return build([X2, ("loop", "loop", {"mode": mode, **params}, {"body": body}), OUT],
                 ["x -> loop.h", "loop.h -> y"])


def calls(*calls: tuple[str, str, str], width: int = 2, body=None) -> Graph:
    """x (width) feeding each call (id, function, weights) in turn; `block` is Linear(2) unless
    `body` gives another."""
    specs = [("x", "input", {"shape": [width]})]
    specs += [(cid, "call", {"function": f, "weights": w}) for cid, f, w in calls]
    wires = [f"{a} -> {b}" for a, b in zip(["x", *(c[0] for c in calls)], [c[0] for c in calls],
                                           strict=False)]
    return build([*specs, OUT], [*wires, f"{calls[-1][0]} -> y"],
                 functions={"block": Function(body or linear_body(2))})


def recursive():
    inner = build([("x", "body_input"), ("again", "call", {"function": "block"}),
                   ("z", "body_output")], ["x -> again", "again -> z"])
    return calls(("c", "block", "own"), body=inner)


def tied(head_out: int, target=("wte", "weight")) -> Graph:
    graph = build([("ids", "input", {"shape": [3], "dtype": "long"}),
                   ("wte", "embedding", {"num_embeddings": 5, "embedding_dim": 2}),
                   ("head", "linear", {"out_features": head_out, "bias": False}), OUT],
                  ["ids -> wte", "wte -> head", "head -> y"])
    return set_tie(graph, "head", "weight", target)


CASES = {
    "tie_shape": (tied(4), "head", None, "weight"),
    "bad_tie": (tied(5, ("wte", "bias")), "head", None, "weight"),
    "unknown_function": (calls(("c", "blok", "own")), "c", None, "function"),
    "recursion": (recursive(), "c", None, "function"),
    "weight_group": (calls(("c1", "block", "g"), ("fc", "block", "own"), ("c2", "block", "g"),
                           width=3), "c2", None, "weights"),
    "unknown_block": (chain(X2, ("fc", "linear"), ("mystery", "frobnicate"), ("fc2", "linear"), OUT),
                      "mystery", None, None),
    "missing_input": (build([X2, ("plus", "add"), OUT], ["x -> plus.a", "plus -> y"]),
                      "plus", "b", None),
    "duplicate_input": (Graph((*chain(X2, ("fc", "linear"), OUT).nodes,),
                              (Edge(("x", "y"), ("fc", "x")), Edge(("x", "y"), ("fc", "x")),
                               Edge(("fc", "y"), ("y", "x")))), "fc", "x", None),
    "unknown_port": (build([X2, ("fc", "linear"), OUT], ["x -> fc", "x -> fc.z", "fc -> y"]),
                     "fc", "z", None),
    "cycle": (build([X2, ("plus", "add"), ("fc", "linear", {"out_features": 2}), ("act", "relu"), OUT],
                    ["x -> plus.a", "fc -> plus.b", "plus -> fc", "fc -> act", "act -> y"]),
              "plus", None, None),
    "shape_mismatch": (build([X2, ("fc", "linear", {"out_features": 3}), ("plus", "add"),
                              ("act", "relu"), OUT],
                             ["x -> fc", "fc -> plus.a", "x -> plus.b", "plus -> act", "act -> y"]),
                       "plus", None, None),
    "type_mismatch": (chain(("ids", "input", {"shape": [4], "dtype": "long"}), ("fc", "linear"), OUT),
                      "fc", "x", None),
    "param_out_of_range": (chain(X2, ("fc", "linear", {"out_features": 0}), ("act", "relu"), OUT),
                           "fc", None, "out_features"),
    "bad_param": (chain(X2, ("fc", "linear", {"out_features": "16"}), ("act", "relu"), OUT),
                  "fc", None, "out_features"),
    "region_signature": (bodies_differ(), "br", None, None),
    "misplaced_block": (build([X2, ("inside", "body_input"), ("fc", "linear"), OUT],
                              ["inside -> fc", "fc -> y"]), "inside", None, None),
    "too_large": (chain(("x", "input", {"shape": [4096]}), ("fc", "linear", {"out_features": 1 << 20}),
                        ("act", "relu"), OUT), "fc", None, None),
    "bad_expression": (build([X2, ("f", "expression", {"expr": "a.__class__", "inputs": 1}),
                              ("act", "relu"), OUT], ["x -> f.a", "f -> act", "act -> y"]),
                       "f", None, "expr"),
}


def test_every_emitted_code_has_a_case():
    assert emitted_codes() == set(CASES) | {"unknown_param", "unused", "no_output"}


@pytest.mark.parametrize("code", sorted(CASES))
def test_error_code(code):
    graph, node, port, param = CASES[code]
    d = only_error(graph)
    assert (d.code, d.node) == (code, node), str(d)
    if port is not None:
        assert d.port == port
    if param is not None:
        assert d.param == param
    assert d.message and str(d)


def test_shape_mismatch_message_names_both_shapes_and_the_node():
    d = only_error(CASES["shape_mismatch"][0])
    assert "(B, 3)" in d.message and "(B, 2)" in d.message and "plus" in d.message


def test_labelled_node_is_still_named_by_id():
    graph = CASES["shape_mismatch"][0]
    graph = replace(graph, nodes=tuple(replace(n, label="Skip!") if n.id == "plus" else n
                                       for n in graph.nodes))
    d = only_error(graph)
    assert "plus" in d.message and "Skip!" in d.message


def test_param_out_of_range_from_a_shape_rule():
    d = only_error(chain(("x", "input", {"shape": [3]}), ("pick", "select", {"index": 5}), OUT))
    assert (d.code, d.param) == ("param_out_of_range", "index")


def test_unknown_param_is_an_error_naming_what_exists():
    """A misspelt option would silently mean the default, so it stops the graph; the message
    says what it has."""
    graph = chain(X2, ("fc", "linear", {"colour": "red"}), OUT)
    diags = validate(graph)
    assert [(d.code, d.severity, d.param) for d in diags] == [("unknown_param", "error", "colour")]
    assert "bias" in diags[0].message and "out_features" in diags[0].message
    assert not analyze(graph).ok


@pytest.mark.parametrize("name, hint", [("out_feature", "out_features"), ("Bias", "bias"),
                                        ("out_featurs", "out_features")])
def test_a_misspelt_param_gets_did_you_mean(name, hint):
    graph = chain(X2, ("fc", "linear", {name: 3}), OUT)
    (d,) = validate(graph)
    assert (d.code, d.severity, d.node, d.param) == ("unknown_param", "error", "fc", name)
    assert f"did you mean {hint!r}?" in d.message


def test_a_torch_option_a_block_lacks_is_refused_not_ignored():
    """The issue's trap: `is_causal` on MultiheadAttention validated and ran unmasked."""
    graph = build([("s", "input", {"shape": [5, 4]}),
                   ("att", "multihead_attention", {"is_causal": True}), OUT],
                  ["s -> att.q", "s -> att.k", "s -> att.v", "att -> y"])
    (d,) = validate(graph)
    assert (d.code, d.param) == ("unknown_param", "is_causal")
    assert "did you mean 'causal'?" in d.message


def test_a_misspelt_port_gets_did_you_mean():
    graph = build([X2, ("fc", "linear"), ("both", "add"), OUT],
                  ["x -> fc", "fc -> both.a", "x -> both.bb", "both -> y"])
    codes_ = [(d.code, d.port) for d in validate(graph)]
    assert ("unknown_port", "bb") in codes_
    d = next(d for d in validate(graph) if d.code == "unknown_port")
    assert "did you mean 'b'?" in d.message


def test_unused_is_info():
    graph = build([X2, ("fc", "linear"), ("spare", "relu"), OUT], ["x -> fc", "x -> spare", "fc -> y"])
    assert [(d.code, d.severity, d.node) for d in validate(graph)] == [("unused", "info", "spare")]


def test_no_output():
    graph = chain(X2, ("fc", "linear"))
    assert "no_output" in codes(validate(graph))
    assert [d.node for d in validate(graph) if d.code == "no_output"] == [None]


def test_empty_graph_only_lacks_an_output():
    assert codes(validate(Graph())) == ["no_output"]


@pytest.mark.parametrize("case", ["branch_bodies_differ", "state_never_updated", "while_without_halt",
                                  "scan_without_sequence", "missing_body", "update_unknown_state",
                                  "halt_outside_while", "per_sample_while_output",
                                  "branch_state_role", "state_changes_shape"])
def test_region_signature(case):
    if case == "branch_bodies_differ":
        graph = bodies_differ()
    elif case == "state_never_updated":
        graph = state_loop(outputs=(("out", "body_output", {"role": "output"}),),
                           wires=("h -> fc", "fc -> out"))
    elif case == "while_without_halt":
        graph = state_loop(mode="while")
    elif case == "scan_without_sequence":
        graph = state_loop(mode="scan")
    elif case == "missing_body":
        graph = build([X2, ("loop", "loop"), OUT], ["loop.h -> y"])
    elif case == "update_unknown_state":
        graph = state_loop(outputs=(("h_next", "body_output", {"role": "state", "state": "h"}),
                                    ("g_next", "body_output", {"role": "state", "state": "g"})),
                           wires=("h -> fc", "fc -> h_next", "fc -> g_next"))
    elif case == "halt_outside_while":
        graph = state_loop(outputs=(("h_next", "body_output", {"role": "state", "state": "h"}),
                                    ("halt", "body_output", {"role": "halt"})),
                           wires=("h -> fc", "fc -> h_next", "fc -> halt"))
    elif case == "per_sample_while_output":
        graph = state_loop(mode="while",
                           outputs=(("h_next", "body_output", {"role": "state", "state": "h"}),
                                    ("halt", "body_output", {"role": "halt"}),
                                    ("out", "body_output", {"role": "output"})),
                           wires=("h -> fc", "fc -> h_next", "fc -> halt", "fc -> out"))
    elif case == "branch_state_role":
        body = build([("x", "body_input", {"role": "state"}), ("fc", "linear", {"out_features": 2}),
                      ("y", "body_output")], ["x -> fc", "fc -> y"])
        graph = build([X2, ("c", "select", {"index": 0}),
                       ("br", "branch", {}, {"then": body, "else": body}), OUT],
                      ["x -> c", "c -> br.cond", "x -> br.x", "br.y -> y"])
    else:   # a state that enters as (B, 2) and leaves as (B, 3)
        graph = state_loop()
        graph = edit_region(graph, ["loop", "body"], lambda r: set_param(r, "fc", "out_features", 3))
    d = only_error(graph)
    assert d.code == "region_signature", str(d)
    assert d.node in ("loop", "br"), str(d)


@pytest.mark.parametrize("case", ["branch_cond", "loop_count", "loop_iterations"])
def test_body_names_that_clash_with_the_nodes_own_ports(case):
    if case == "branch_cond":
        body = build([("cond", "body_input"), ("fc", "linear", {"out_features": 2}),
                      ("y", "body_output")], ["cond -> fc", "fc -> y"])
        graph = build([X2, ("c", "select", {"index": 0}),
                       ("node", "branch", {}, {"then": body, "else": body}), OUT],
                      ["x -> c", "c -> node.cond", "node.y -> y"])
    else:
        name = "count" if case == "loop_count" else "iterations"
        outputs = [("h2", "body_output", {"role": "state", "state": name})]
        wires = [f"{name} -> fc", "fc -> h2"]
        if case == "loop_iterations":
            outputs.append(("halt", "body_output", {"role": "halt"}))
            wires.append("fc -> halt")
        body = build([(name, "body_input", {"role": "state", "shape": [1]}),
                      ("fc", "linear", {"out_features": 1}), *outputs], wires)
        params = {"count_from": "input"} if case == "loop_count" else {"mode": "while"}
        graph = build([("x", "input", {"shape": [1]}), ("node", "loop", params, {"body": body}),
                       OUT], [f"x -> node.{name}", f"node.{name} -> y"])
    d = only_error(graph)
    assert (d.code, d.node) == ("region_signature", "node"), str(d)


def test_scan_over_a_missing_dim_is_a_shape_mismatch(samples):
    graph = set_param(samples["rnn_scan"], "rnn", "dim", 3)   # seq is (B, 10, 2)
    d = only_error(graph)
    assert (d.code, d.node, d.port) == ("shape_mismatch", "rnn", "x_t")


def test_per_sample_branch_needs_a_per_sample_condition():
    graph = build([X2, ("br", "branch", {}, {"then": linear_body(2), "else": linear_body(2)}), OUT],
                  ["x -> br.cond", "x -> br.x", "br.y -> y"])
    d = only_error(graph)
    assert (d.code, d.node, d.port) == ("shape_mismatch", "br", "cond")


def test_misplaced_blocks_inside_a_body():
    body = build([("x", "body_input"), ("fc", "linear"), ("inner", "input"), ("y", "body_output")],
                 ["x -> fc", "fc -> y"])
    graph = build([X2, ("c", "select", {"index": 0}),
                   ("br", "branch", {}, {"then": body, "else": body}), OUT],
                  ["x -> c", "c -> br.cond", "x -> br.x", "br.y -> y"])
    diags = errors(validate(graph))
    assert {(d.code, d.node) for d in diags} == {("misplaced_block", "br/then/inner"),
                                                 ("misplaced_block", "br/else/inner")}


def test_too_large_activation():
    d = only_error(chain(("x", "input", {"shape": [1 << 15, 1 << 14]}), ("act", "relu"), OUT))
    assert (d.code, d.node) == ("too_large", "x")


# --- root causes only ----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["unknown_block", "bad_param", "param_out_of_range", "cycle",
                                  "shape_mismatch", "type_mismatch", "bad_expression"])
def test_downstream_nodes_stay_quiet(code):
    graph, node, _, _ = CASES[code]
    diags = validate(graph)
    assert [d.node for d in diags] == [node], [str(d) for d in diags]


def test_errors_inside_a_body_carry_their_path_and_stay_inside(samples):
    graph = edit_region(samples["rnn_scan"], ["rnn", "body"],
                        lambda r: set_param(r, "from_state", "out_features", 31))
    diags = validate(graph)
    assert [(d.code, d.node) for d in diags] == [("shape_mismatch", "rnn/body/mix")]


def test_nested_region_paths():
    inner = build([("x", "body_input"), ("fc", "linear", {"out_features": "wide"}),
                   ("y", "body_output")], ["x -> fc", "fc -> y"])
    outer = build([("x", "body_input"), ("c", "select", {"index": 0}),
                   ("br", "branch", {}, {"then": inner, "else": linear_body(16)}),
                   ("y", "body_output")], ["x -> c", "c -> br.cond", "x -> br.x", "br.y -> y"])
    graph = build([X2, ("c", "select", {"index": 1}),
                   ("top", "branch", {}, {"then": outer, "else": linear_body(16)}), OUT],
                  ["x -> c", "c -> top.cond", "x -> top.x", "top.y -> y"])
    d = only_error(graph)
    assert (d.code, d.node, d.param) == ("bad_param", "top/then/br/then/fc", "out_features")


@pytest.mark.parametrize("name, value, code", [("role", 3, "bad_param"), ("shape", 5, "bad_param"),
                                               ("shape", [0], "param_out_of_range")])
def test_bad_boundary_params_are_the_root_cause(samples, name, value, code):
    graph = edit_region(samples["rnn_scan"], ["rnn", "body"], lambda r: set_param(r, "h", name, value))
    assert [(d.code, d.node, d.param) for d in validate(graph)] == [(code, "rnn/body/h", name)]


# --- validate never raises -------------------------------------------------------------------

GARBAGE = [None, 0, -1, 1.5, float("nan"), float("inf"), 10**400, -(10**30), True, "", "x\n",
           "state", "sequence", "while", [], [1, 2], [-1, -1], [[1]], [0.5], {"a": 1}, object()]


def mutations(graph: Graph):
    """(path, graph with one param of one node set to garbage), for every node and param."""
    for path, node in graph.walk():
        *region, node_id = path.split("/")
        spec = REGISTRY.get(node.type)
        names = [p.name for p in spec.params] if spec else []
        for name in [*names, "bogus"]:
            for value in GARBAGE:
                yield path, edit_region(graph, region,
                                        lambda r, n=node_id, k=name, v=value: set_param(r, n, k, v))


@pytest.mark.parametrize("name", ["rnn_scan", "adaptive_depth", "gated_branch", "attention"])
def test_validate_never_raises_on_garbage_params(samples, name):
    seen = 0
    for _, graph in mutations(samples[name]):
        analysis = analyze(graph)
        assert all(isinstance(d, Diagnostic) for d in analysis.diagnostics)
        seen += 1
    assert seen > 100


def test_validate_never_raises_when_every_param_is_garbage(samples):
    for graph in samples.values():
        for value in GARBAGE:
            def scramble(g, v=value):
                return replace(g, nodes=tuple(
                    replace(n, params={k: v for k in [*n.params, "role", "shape", "state", "mode"]},
                            regions={k: scramble(r) for k, r in n.regions.items()})
                    for n in g.nodes))
            diags = validate(scramble(graph))
            assert errors(diags), value


def test_sample_graphs_are_clean(samples):
    for name, graph in samples.items():
        assert validate(graph) == [], name


def test_samples_on_disk_are_what_the_script_writes():
    # tools/make_samples.py is the source of sample_graphs/; a hand edit would drift from it.
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_samples", REPO / "tools/make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from engine.core.fileformat import dumps

    for name, make in module.SAMPLES.items():
        assert dumps(make()) == Path(REPO / "sample_graphs" / f"{name}.json").read_text(), name
