"""Functions (issue 12): definitions in the graph file, Call blocks with own or shared
weights, per-call-site shapes, functions calling functions, and the code they become."""

from __future__ import annotations

import itertools
import json
import subprocess
from dataclasses import replace

import pytest
import torch
from helpers import REPO, build, codes, errors, import_file
from test_engine_blocks import check_runs
from test_engine_export import ruff_command, run_and_grad

import engine
from engine import analyze, validate
from engine.core.codegen import generate
from engine.core.fileformat import GraphFileError, dumps, loads
from engine.core.functionlib import export_library, import_library, load_library
from engine.core.graph import Function, Graph, set_function, set_param, set_tie
from engine.runtime.compiler import compile_class, tapped_forward
from engine.runtime.gradflow import graph_edge_keys

X = ("x", "input", {"shape": [4]})
OUT = ("out", "output")


def mlp_body(width: int = 8) -> Graph:
    """x -> Linear(width) -> ReLU -> y."""
    return build([("x", "body_input"), ("fc", "linear", {"out_features": width}), ("act", "relu"),
                  ("y", "body_output")], ["x -> fc", "fc -> act", "act -> y"])


def two_calls(first: str = "own", second: str = "own", *, width_in: int = 4) -> Graph:
    """x -> c1 -> c2 -> out, both calls of `block` (Linear(8), ReLU)."""
    return build([("x", "input", {"shape": [width_in]}),
                  ("c1", "call", {"function": "block", "weights": first}),
                  ("c2", "call", {"function": "block", "weights": second}), OUT],
                 ["x -> c1", "c1 -> c2", "c2 -> out"], name="two_calls",
                 functions={"block": Function(mlp_body(), title="MLP block", doc="Linear, ReLU")})


def shared_twice() -> Graph:
    """The siamese shape: two inputs of one width through one shared encoder, added."""
    return build([("a", "input", {"shape": [4]}), ("b", "input", {"shape": [4]}),
                  ("ea", "call", {"function": "enc", "weights": "encoder"}),
                  ("eb", "call", {"function": "enc", "weights": "encoder"}),
                  ("sum", "add"), OUT],
                 ["a -> ea", "b -> eb", "ea -> sum.a", "eb -> sum.b", "sum -> out"],
                 name="shared", functions={"enc": Function(mlp_body(6))})


def nested() -> Graph:
    """A function calling another twice with own weights, inside a loop body, plus a
    weightless function used at two widths."""
    pair = build([("x", "body_input"), ("p1", "call", {"function": "block"}),
                  ("p2", "call", {"function": "block"}), ("y", "body_output")],
                 ["x -> p1", "p1 -> p2", "p2 -> y"])
    double = build([("x", "body_input"), ("twice", "add"), ("y", "body_output")],
                   ["x -> twice.a", "x -> twice.b", "twice -> y"])
    loop_body = build([("h", "body_input", {"role": "state", "shape": [8]}),
                       ("inner", "call", {"function": "pair"}),
                       ("h_next", "body_output", {"role": "state", "state": "h"})],
                      ["h -> inner", "inner -> h_next"])
    return build([X, ("d4", "call", {"function": "double"}),
                  ("fc", "linear", {"out_features": 8}),
                  ("loop", "loop", {"count": 2}, {"body": loop_body}),
                  ("d8", "call", {"function": "double"}), OUT],
                 ["x -> d4", "d4 -> fc", "fc -> loop.h", "loop.h -> d8", "d8 -> out"],
                 name="nested", functions={"block": Function(mlp_body()), "pair": Function(pair),
                                           "double": Function(double, doc="x + x")})


GRAPHS = {"two_calls": two_calls, "grouped": lambda: two_calls("g", "g", width_in=8),
          "shared": shared_twice, "nested": nested, "tied": lambda: tied_lm()}


# --- the file format -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_functions_round_trip_through_the_file(name):
    graph = GRAPHS[name]()
    text = dumps(graph)
    assert json.loads(text)["version"] == 4
    again = loads(text)
    assert again == graph
    assert dumps(again) == text


def test_a_graph_without_functions_keeps_version_3():
    graph = build([X, ("fc", "linear"), OUT], ["x -> fc", "fc -> out"])
    doc = json.loads(dumps(graph))
    assert doc["version"] == 3 and "functions" not in doc
    assert loads(dumps(graph)) == graph


@pytest.mark.parametrize("where, bad", [
    ("function", {"shared_with": "x"}),          # a misspelt or invented key
    ("top", {"shared_with": "x"}),
    ("name", None),
])
def test_unknown_keys_and_bad_names_are_refused_with_their_place(where, bad):
    doc = json.loads(dumps(two_calls()))
    if where == "function":
        doc["functions"]["block"].update(bad)
        place = "$.functions.block"
    elif where == "top":
        doc.update(bad)
        place = "$"
    else:
        doc["functions"]["9 lives"] = doc["functions"]["block"]
        place = "$.functions"
    with pytest.raises(GraphFileError) as info:
        loads(json.dumps(doc), "bad.json")
    assert place in str(info.value) and "bad.json" in str(info.value)


def test_nodes_in_function_bodies_count_towards_the_file_limits():
    doc = json.loads(dumps(two_calls()))
    body = doc["functions"]["block"]["graph"]
    body["nodes"] += [{"id": f"n{i}", "type": "relu"} for i in range(20_001)]
    with pytest.raises(GraphFileError, match="nodes and wires"):
        loads(json.dumps(doc))


# --- analysis ----------------------------------------------------------------------------


def test_a_call_takes_its_ports_and_shapes_from_its_function_per_call_site():
    a = analyze(nested())
    assert a.ok, [str(d) for d in a.diagnostics]
    assert a.outputs["d4"]["y"].shape == ("B", 4)     # one weightless function, two widths
    assert a.outputs["d8"]["y"].shape == ("B", 8)
    assert "loop/body/inner/pair/p1/block/fc" in a.outputs   # paths name call and function


def test_own_weights_count_per_call_and_a_group_counts_once():
    assert analyze(two_calls()).total_params == (4 * 8 + 8) + (8 * 8 + 8)
    assert analyze(two_calls("g", "g", width_in=8)).total_params == 8 * 8 + 8
    assert analyze(shared_twice()).total_params == 4 * 6 + 6


def test_a_group_whose_calls_need_different_shapes_is_refused_naming_both():
    (d,) = errors(validate(two_calls("g", "g")))
    assert (d.code, d.node, d.param) == ("weight_group", "c2", "weights")
    assert "'c1'" in d.message and "own weights" in d.message


def test_a_group_of_two_functions_is_refused():
    graph = set_param(two_calls("g", "g", width_in=8), "c2", "function", "other")
    graph = set_function(graph, "other", Function(mlp_body()))
    assert codes(errors(validate(graph))) == ["weight_group"]


def test_mutual_recursion_is_refused_naming_the_cycle():
    ping = build([("x", "body_input"), ("c", "call", {"function": "pong"}), ("y", "body_output")],
                 ["x -> c", "c -> y"])
    pong = build([("x", "body_input"), ("c", "call", {"function": "ping"}), ("y", "body_output")],
                 ["x -> c", "c -> y"])
    graph = build([X, ("start", "call", {"function": "ping"}), OUT], ["x -> start", "start -> out"],
                  functions={"ping": Function(ping), "pong": Function(pong)})
    (d,) = errors(validate(graph))
    assert (d.code, d.node) == ("recursion", "start")
    assert "ping → pong → ping" in d.message


def test_an_unknown_function_is_named_with_the_fix():
    graph = build([X, ("c", "call", {"function": "blok"}), OUT], ["x -> c", "c -> out"],
                  functions={"block": Function(mlp_body())})
    (d,) = errors(validate(graph))
    assert d.code == "unknown_function" and "did you mean 'block'" in d.message
    graph = build([X, ("c", "call", {"function": "block"}), OUT], ["x -> c", "c -> out"])
    (d,) = errors(validate(graph))
    assert d.code == "unknown_function" and "define" in d.message


def test_a_problem_inside_a_body_names_the_function_and_the_node():
    bad = build([("x", "body_input"), ("fc", "linear", {"out_featurs": 3}), ("y", "body_output")],
                ["x -> fc", "fc -> y"])
    graph = build([X, ("c", "call", {"function": "block"}), OUT], ["x -> c", "c -> out"],
                  functions={"block": Function(bad)})
    (d,) = errors(validate(graph))
    assert (d.code, d.node) == ("unknown_param", "c/block/fc")
    assert "in function 'block'" in d.message


def test_a_weight_group_name_must_be_an_identifier():
    (d,) = errors(validate(two_calls("own", "not a name")))
    assert (d.code, d.param) == ("bad_param", "weights")


def test_exponential_call_nests_are_refused_not_expanded():
    functions = {"f0": Function(mlp_body(2))}
    for i in range(1, 20):   # each calls the one before twice: 2**19 expanded calls
        functions[f"f{i}"] = Function(build(
            [("x", "body_input"), ("a", "call", {"function": f"f{i - 1}"}),
             ("b", "call", {"function": f"f{i - 1}"}), ("y", "body_output")],
            ["x -> a", "a -> b", "b -> y"]))
    graph = build([("x", "input", {"shape": [2]}), ("c", "call", {"function": "f19"}), OUT],
                  ["x -> c", "c -> out"], functions=functions)
    assert codes(errors(validate(graph))) == ["too_large"]


# --- code ----------------------------------------------------------------------------------


def test_each_function_is_one_class_and_a_group_one_attribute():
    source = generate(shared_twice()).source
    assert source.count("class Enc(nn.Module)") == 1
    assert source.count("self.encoder = Enc()") == 1
    assert "self.encoder(a)" in source and "self.encoder(b)" in source
    model = engine.compile_graph(shared_twice())
    assert list(model.state_dict()) == ["encoder.fc.weight", "encoder.fc.bias"]
    own = engine.compile_graph(two_calls())
    assert list(own.state_dict()) == ["c1.fc.weight", "c1.fc.bias", "c2.fc.weight", "c2.fc.bias"]


def test_calls_with_the_same_input_types_share_one_class():
    graph = two_calls(width_in=8)
    source = generate(graph).source
    assert source.count("(nn.Module)") == 2   # Block, and the model
    assert "self.c1 = Block()" in source and "self.c2 = Block()" in source


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_functions_compile_run_and_count_their_parameters(name):
    check_runs(GRAPHS[name]())


def test_shared_encoder_matches_a_hand_written_twin():
    torch.manual_seed(0)
    model = engine.compile_graph(shared_twice())
    fc = torch.nn.Linear(4, 6)
    fc.load_state_dict({"weight": model.state_dict()["encoder.fc.weight"],
                        "bias": model.state_dict()["encoder.fc.bias"]})
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(model(a, b), torch.relu(fc(a)) + torch.relu(fc(b)))


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_exported_functions_match_the_compiled_module_and_pass_ruff(name, tmp_path):
    graph = GRAPHS[name]()
    path = tmp_path / f"{name}.py"
    path.write_text(engine.export_python(graph), encoding="utf-8")
    cls = getattr(module := import_file(path, f"dprog_test_fn_{name}"), module.__all__[0])
    torch.manual_seed(0)
    compiled = engine.compile_graph(graph)
    exported = cls()
    assert list(exported.state_dict()) == list(compiled.state_dict())
    exported.load_state_dict(compiled.state_dict())
    inputs = engine.example_inputs(graph, 5, generator=torch.Generator().manual_seed(0))
    (out_a,), grads_a = run_and_grad(compiled, inputs)
    (out_b,), grads_b = run_and_grad(exported, inputs)
    assert torch.equal(out_a, out_b)
    assert grads_a.keys() == grads_b.keys()
    for key in grads_a:
        assert torch.equal(grads_a[key], grads_b[key]), key
    lint = subprocess.run([*ruff_command(), "check", "--no-cache", "--isolated", "--select",
                           "E,F,W,I,B,UP", "--line-length", "120", str(path)],
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_node_modules_name_each_call_sites_weights():
    gen = generate(nested())
    assert gen.node_modules["fc"] == "fc"
    assert gen.node_modules["loop/body/inner/pair/p1/block/fc"] == "loop.inner.p1.fc"
    shared = generate(shared_twice())
    assert shared.node_modules["ea/enc/fc"] == shared.node_modules["eb/enc/fc"] == "encoder.fc"


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_tapped_code_reads_each_call_sites_own_wires(name):
    """One class serves calls with the same input types; its tapped code still reports each
    call's wires under that call's keys (the gradient-flow view per call site)."""
    graph = GRAPHS[name]()
    compiled = compile_class(graph, tap=True)
    assert set(compiled.generated.edge_keys) == set(graph_edge_keys(graph))
    module = compiled.cls()
    seen: dict[str, torch.Tensor] = {}

    def tap(k, value):
        seen.setdefault(compiled.generated.edge_keys[k], value)
        return value

    inputs = engine.example_inputs(graph, 3, generator=torch.Generator().manual_seed(0))
    out = tapped_forward(compiled)(module, tap, *inputs)
    assert torch.equal(out, module(*inputs))
    assert set(seen) == set(graph_edge_keys(graph))
    if name == "two_calls":   # what enters c2's body is what c1 gave
        assert torch.equal(seen["c2/block/x.y->fc.x"], seen["c1.y->c2.x"])
        assert not torch.equal(seen["c2/block/fc.y->act.x"], seen["c1/block/fc.y->act.x"])


# --- ties ----------------------------------------------------------------------------------


def tied_lm(vocab: int = 11, width: int = 6, head_out: int | None = None) -> Graph:
    """ids -> Embedding -> Linear head, the head's weight tied to the embedding's."""
    graph = build([("ids", "input", {"shape": [5], "dtype": "long"}),
                   ("wte", "embedding", {"num_embeddings": vocab, "embedding_dim": width}),
                   ("head", "linear", {"out_features": head_out or vocab, "bias": False}), OUT],
                  ["ids -> wte", "wte -> head", "head -> out"], name="tied")
    return set_tie(graph, "head", "weight", ("wte", "weight"))


def test_a_tie_is_one_tensor_counted_once_and_written_as_an_assignment():
    graph = tied_lm()
    assert analyze(graph).total_params == 11 * 6
    source = generate(graph).source
    assert "self.head.weight = self.wte.weight  # tied: one tensor" in source
    model = engine.compile_graph(graph)
    assert model.head.weight is model.wte.weight
    assert sum(p.numel() for p in model.parameters()) == 11 * 6
    again = loads(dumps(graph))
    assert again == graph and json.loads(dumps(graph))["nodes"][2]["ties"] == {"weight": ["wte", "weight"]}


@pytest.mark.parametrize("change, code", [
    (dict(head_out=7), "tie_shape"),
    ("missing_node", "bad_tie"),
    ("bad_tensor", "bad_tie"),
    ("untieable", "bad_tie"),
])
def test_a_bad_tie_is_refused_naming_both_nodes(change, code):
    if isinstance(change, dict):
        graph = tied_lm(**change)
    elif change == "missing_node":
        graph = set_tie(tied_lm(), "head", "weight", ("wtf", "weight"))
    elif change == "bad_tensor":
        graph = set_tie(set_tie(tied_lm(), "head", "weight", None), "head", "wieght", ("wte", "weight"))
    else:
        graph = set_tie(build([X, ("act", "relu"), ("fc", "linear"), OUT],
                              ["x -> act", "act -> fc", "fc -> out"]), "act", "weight", ("fc", "weight"))
    (d,) = errors(validate(graph))
    assert d.code == code, str(d)
    if code == "tie_shape":
        assert "head" in d.message and "wte" in d.message and "same shape" in d.message


def test_tied_export_matches_the_compiled_module(tmp_path):
    graph = tied_lm()
    path = tmp_path / "tied.py"
    path.write_text(engine.export_python(graph), encoding="utf-8")
    module = import_file(path, "dprog_test_fn_tied")
    exported = getattr(module, module.__all__[0])()
    compiled = engine.compile_graph(graph)
    exported.load_state_dict(compiled.state_dict())
    assert exported.head.weight is exported.wte.weight
    ids = torch.randint(0, 11, (3, 5))
    assert torch.equal(exported(ids), compiled(ids))


# --- library files ---------------------------------------------------------------------------


def test_a_library_holds_the_chosen_functions_and_what_they_call(tmp_path):
    graph = nested()
    path = export_library(graph, ["pair"], tmp_path / "mine")
    assert path.name == "mine.dprog-lib.json"
    functions = load_library(path)
    assert sorted(functions) == ["block", "pair"]
    assert functions["pair"] == graph.functions["pair"]
    # into a graph without them: the same graph back
    bare = replace(graph, functions={"double": graph.functions["double"]})
    again, names = import_library(bare, path)
    assert again == graph and names == {"block": "block", "pair": "pair"}


def test_importing_a_name_in_use_is_refused_or_renamed_with_the_calls_following(tmp_path):
    graph = nested()
    path = export_library(graph, ["pair"], tmp_path / "mine")
    with pytest.raises(ValueError, match=r"already defines 'block', 'pair'.*renaming"):
        import_library(graph, path)
    renamed, names = import_library(graph, path, on_clash="rename")
    assert names == {"block": "block2", "pair": "pair2"}
    calls = {n.id: n.params["function"] for n in renamed.functions["pair2"].body.nodes
             if n.type == "call"}
    assert calls == {"p1": "block2", "p2": "block2"}
    assert renamed.functions["pair"] is graph.functions["pair"]   # the graph's own untouched
    with pytest.raises(ValueError, match="on_clash"):
        import_library(graph, path, on_clash="merge")


@pytest.mark.parametrize("doc, place", [
    ({"format": "dprog-graph", "version": 1, "functions": {}}, "$.format"),
    ({"format": "dprog-lib", "version": 2, "functions": {}}, "$.version"),
    ({"format": "dprog-lib", "version": 1, "functions": {}, "code": "import os"}, "unknown key"),
    ({"format": "dprog-lib", "version": 1, "functions": []}, "$.functions"),
    ({"format": "dprog-lib", "version": 1,
      "functions": {"f": {"graph": {"nodes": [], "edges": []}, "exec": "x"}}}, "$.functions.f"),
    ({"format": "dprog-lib", "version": 1,
      "functions": {"f": {"graph": {"nodes": [{"id": "a b", "type": "relu"}], "edges": []}}}},
     "$.functions.f.graph.nodes[0]"),
])
def test_a_bad_library_is_refused_naming_the_place(doc, place, tmp_path):
    path = tmp_path / "bad.dprog-lib.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(GraphFileError) as info:
        load_library(path)
    assert str(info.value).startswith(str(path)) and place in str(info.value)


def test_broken_json_in_a_library_names_line_and_column(tmp_path):
    path = tmp_path / "bad.dprog-lib.json"
    path.write_text('{"format": "dprog-lib",\n "version": 1,,}', encoding="utf-8")
    with pytest.raises(GraphFileError, match="line 2"):
        load_library(path)


def test_many_calls_that_expand_past_the_cap_are_refused():
    specs = [("x", "input", {"shape": [2]})]
    specs += [(f"c{i}", "call", {"function": "block"}) for i in range(5001)]
    wires = [f"{a[0]} -> {b[0]}" for a, b in itertools.pairwise(specs)]
    graph = build([*specs, OUT], [*wires, "c5000 -> out"], functions={"block": Function(mlp_body(2))})
    assert codes(errors(validate(graph))) == ["too_large"]   # 5,001 calls × 4 blocks > 20,000
    small = build([*specs[:50], OUT], [*wires[:49], "c48 -> out"],
                  functions={"block": Function(mlp_body(2))})
    assert validate(small) == []


def test_the_module_cap_counts_calls_in_unshared_loops():
    from engine.core.limits import MAX_MODULES, module_limit

    body = build([("h", "body_input", {"role": "state", "shape": [2]}),
                  ("c", "call", {"function": "many"}),
                  ("h_next", "body_output", {"role": "state", "state": "h"})],
                 ["h -> c", "c -> h_next"])
    many = build([("x", "body_input"), *[(f"fc{i}", "linear", {"out_features": 2}) for i in range(8)],
                  ("y", "body_output")],
                 ["x -> fc0", *[f"fc{i} -> fc{i + 1}" for i in range(7)], "fc7 -> y"])
    graph = build([("x", "input", {"shape": [2]}),
                   ("loop", "loop", {"count": 10_000, "share_weights": False}, {"body": body}),
                   OUT], ["x -> loop.h", "loop.h -> out"], functions={"many": Function(many)})
    analysis = analyze(graph)
    assert analysis.ok
    problem = module_limit(graph, analysis)
    assert problem is not None and problem.node == "loop" and MAX_MODULES < 10_000 * 9


def test_calls_whose_code_comes_out_the_same_share_a_class():
    """A weightless function at two widths is one class; so is a conv at two image sizes.
    Each call still reports its own wires (see the tapped test above)."""
    source = generate(nested()).source
    assert source.count("class Double") == 1
    assert "self.d4 = Double()" in source and "self.d8 = Double()" in source
    unet = engine.load_graph(REPO / "sample_graphs" / "unet.json")
    classes = [line for line in generate(unet).source.splitlines() if line.startswith("class ")]
    assert len(classes) == 4   # in_channels 1, 16 and 32, and the model


def test_a_function_body_view_gets_its_diagnostics_once_relative_to_the_body():
    from engine.core.analysis import call_sites, function_diagnostics

    bad = build([("x", "body_input"), ("fc", "linear", {"out_featurs": 3}), ("y", "body_output")],
                ["x -> fc", "fc -> y"])
    graph = set_function(two_calls(), "block", Function(bad))
    assert call_sites(graph, "block") == ["c1", "c2"]
    (d,) = function_diagnostics(analyze(graph), graph, "block")
    assert (d.code, d.node, d.param) == ("unknown_param", "fc", "out_featurs")
    assert call_sites(nested(), "block") == ["loop/body/inner/pair/p1", "loop/body/inner/pair/p2"]
    assert function_diagnostics(analyze(nested()), nested(), "block") == []
