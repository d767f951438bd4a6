"""The function commands (issue 12), without a window: group a selection into a function,
ungroup a call, make a copy, edit a function's body (every call changes); each one undo step."""

from __future__ import annotations

import pytest
import torch

import engine
from app.commands import (
    AddNode,
    CommandRejected,
    Connect,
    GroupIntoFunction,
    MakeCopy,
    RemoveNodes,
    SetFunctionInfo,
    SetParam,
    Ungroup,
)
from app.state import AppState
from engine.core.analysis import analyze
from engine.core.fileformat import dumps, loads
from engine.core.graph import FUNCTION, Graph, set_tie
from tests.helpers import build


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DPROG_STATE_DIR", str(tmp_path / "state"))


def mlp() -> Graph:
    """x(4) -> fc1 -> act1 -> fc2 -> act2 -> head -> out, and a skip x -> plus <- act2."""
    return build([("x", "input", {"shape": [4]}), ("fc1", "linear", {"out_features": 8}),
                  ("act1", "relu"), ("fc2", "linear", {"out_features": 4}), ("act2", "relu"),
                  ("plus", "add"), ("head", "linear", {"out_features": 2}), ("out", "output")],
                 ["x -> fc1", "fc1 -> act1", "act1 -> fc2", "fc2 -> act2", "act2 -> plus.a",
                  "x -> plus.b", "plus -> head", "head -> out"], name="mlp")


def outputs(graph: Graph, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    model = engine.compile_graph(graph)
    return model(*engine.example_inputs(graph, 3, generator=torch.Generator().manual_seed(1)))


def test_group_into_function_keeps_the_model_and_undoes_in_one_step():
    state = AppState(mlp())
    before = state.graph
    assert state.do(GroupIntoFunction((), frozenset({"fc1", "act1", "fc2", "act2"}), "block"))
    g = state.graph
    assert set(g.functions) == {"block"}
    call = g.node("block1")
    assert call.params == {"function": "block", "weights": "own"}
    assert {n.id for n in g.nodes} == {"x", "block1", "plus", "head", "out"}
    body = g.functions["block"].body
    assert [n.id for n in body.nodes if n.type == "body_input"] == ["x"]
    assert [n.id for n in body.nodes if n.type == "body_output"] == ["y"]
    a = analyze(g)
    assert a.ok, [str(d) for d in a.diagnostics]
    assert a.total_params == analyze(before).total_params
    assert outputs(g).shape == outputs(before).shape == (3, 2)
    assert loads(dumps(g)) == g
    assert state.undo() and state.graph is before
    assert state.redo() and state.graph == g


def test_ungroup_inlines_the_call_back():
    state = AppState(mlp())
    state.do(GroupIntoFunction((), frozenset({"fc1", "act1", "fc2", "act2"}), "block"))
    grouped = state.graph
    assert state.do(Ungroup((), "block1"))
    g = state.graph
    assert {n.id for n in g.nodes} == {n.id for n in mlp().nodes}
    assert set(g.edges) == set(mlp().edges)
    assert "block" in g.functions   # the definition stays for other calls
    assert state.undo() and state.graph is grouped


def test_several_values_in_and_out_become_the_signature():
    state = AppState(mlp())
    assert state.do(GroupIntoFunction((), frozenset({"act2", "plus"})))
    g = state.graph
    (name,) = g.functions
    body = g.functions[name].body
    ins = [n.id for n in body.nodes if n.type == "body_input"]
    assert ins == ["fc2", "x"] and [n.id for n in body.nodes if n.type == "body_output"] == ["y"]
    assert analyze(g).ok
    assert torch.equal(outputs(g), outputs(mlp()))   # same weights: same seed, same order


def test_editing_a_function_body_changes_every_call():
    graph = mlp()
    state = AppState(graph)
    state.do(GroupIntoFunction((), frozenset({"fc2", "act2"}), "block"))
    # a second call of it, fed by the first
    assert state.do(AddNode((), "call", (500.0, 0.0), {"function": "block"}, node_id="again"))
    region = (FUNCTION, "block")
    assert state.do(SetParam(region, "fc2", "out_features", 8))
    g = state.graph
    assert g.functions["block"].body.node("fc2").params["out_features"] == 8
    assert state.do(Connect((), ("block1", "y"), ("again", "x")))
    a = analyze(state.graph)
    assert a.outputs["block1"]["y"].shape == a.outputs["again"]["y"].shape == ("B", 8)
    # deleting the body's output removes the wires from that port at every call, in one step
    steps = len(state._undo)
    assert state.do(RemoveNodes(region, frozenset({"y"})))
    assert not [e for e in state.graph.edges if e.src[0] in ("block1", "again")]
    assert len(state._undo) == steps + 1
    assert state.undo() and state.graph.functions["block"].body == g.functions["block"].body


def test_make_a_copy_detaches_one_call():
    state = AppState(mlp())
    state.do(GroupIntoFunction((), frozenset({"fc2", "act2"}), "block"))
    state.do(SetParam((), "block1", "weights", "shared"))
    assert state.do(MakeCopy((), "block1"))
    g = state.graph
    assert g.node("block1").params == {"function": "block2", "weights": "own"}
    assert g.functions["block2"].body == g.functions["block"].body
    assert g.functions["block2"].title == "block (copy)"
    state.do(SetParam((FUNCTION, "block2"), "fc2", "out_features", 5))
    assert state.graph.functions["block"].body.node("fc2").params["out_features"] == 4
    assert state.undo() and state.undo() and "block2" not in state.graph.functions


def test_function_info_is_one_undoable_step():
    state = AppState(mlp())
    state.do(GroupIntoFunction((), frozenset({"fc2", "act2"}), "block"))
    assert state.do(SetFunctionInfo("block", title="Block", doc="two layers", category="Mine"))
    f = state.graph.functions["block"]
    assert (f.title, f.doc, f.category) == ("Block", "two layers", "Mine")
    assert state.undo() and state.graph.functions["block"].doc == ""


@pytest.mark.parametrize("ids, code", [
    (set(), "nothing"),
    ({"x", "fc1"}, "rejected"),          # an Input stays outside
    ({"head"}, "rejected"),              # tied across the selection
    ({"out"}, "rejected"),
])
def test_group_refusals(ids, code):
    graph = set_tie(build([("ids", "input", {"shape": [3], "dtype": "long"}),
                           ("wte", "embedding", {"num_embeddings": 5, "embedding_dim": 2}),
                           ("head", "linear", {"out_features": 5, "bias": False}), ("out", "output")],
                          ["ids -> wte", "wte -> head", "head -> out"]), "head", "weight",
                    ("wte", "weight"))
    graph = mlp() if code == "nothing" or "x" in ids else graph
    with pytest.raises(CommandRejected) as info:
        GroupIntoFunction((), frozenset(ids)).apply(graph)
    assert info.value.code == code


def test_a_function_name_in_use_or_illegal_is_refused():
    state = AppState(mlp())
    state.do(GroupIntoFunction((), frozenset({"fc2"}), "block"))
    for bad in ("block", "9 lives"):
        with pytest.raises(CommandRejected) as info:
            GroupIntoFunction((), frozenset({"act2"}), bad).apply(state.graph)
        assert info.value.code == "bad_id"


def test_grouping_inside_a_loop_body_puts_the_call_there():
    from app.commands import default_regions

    loop_body = build([("h", "body_input", {"role": "state", "shape": [4]}),
                       ("fc", "linear", {"out_features": 4}), ("act", "tanh"),
                       ("h_next", "body_output", {"role": "state", "state": "h"})],
                      ["h -> fc", "fc -> act", "act -> h_next"])
    assert default_regions("loop")
    graph = build([("x", "input", {"shape": [4]}), ("loop", "loop", {}, {"body": loop_body}),
                   ("out", "output")], ["x -> loop.h", "loop.h -> out"])
    state = AppState(graph)
    assert state.do(GroupIntoFunction(("loop", "body"), frozenset({"fc", "act"}), "step"))
    body = state.graph.node("loop").regions["body"]
    assert [n.type for n in body.nodes] == ["body_input", "call", "body_output"]
    assert analyze(state.graph).ok
    assert torch.equal(outputs(state.graph), outputs(graph))
