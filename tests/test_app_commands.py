"""The studio's edit commands: each applies purely, undoes exactly, and refuses bad edits
with a reason; auto-layout; and the layering rule (app model imports no torch/dearpygui)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from app.commands import (
    AddNode,
    AutoLayout,
    Batch,
    CommandRejected,
    Connect,
    Disconnect,
    InsertOnWire,
    MoveNodes,
    Paste,
    RemoveNodes,
    RenameGraph,
    SetLabel,
    SetParam,
    SetTraining,
    default_regions,
    same_structure,
)
from app.layout import columns, layered_positions, layers
from app.recovery import Recovery
from app.state import AppState
from engine.core.analysis import analyze
from engine.core.fileformat import MAX_REGION_DEPTH, dumps, loads
from engine.core.graph import ID_PATTERN, Edge, Graph, Node
from tests.helpers import REPO, build, chain

LOOP = ("loop1", "body")


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DPROG_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def base_graph() -> Graph:
    """x(4) -> fc(8) -> act -> out, plus a loop whose state input is fed by act."""
    g = build([("x", "input", {"shape": (4,)}), ("fc", "linear", {"out_features": 8}),
               ("act", "tanh"), ("out", "output"), ("cat", "concat", {"inputs": 3}),
               ("loop1", "loop", {}, default_regions("loop"))],
              ["x -> fc", "fc -> act", "act -> out", "act -> cat.x0", "act -> cat.x1",
               "act -> cat.x2", "act -> loop1.h"])
    return g


def reject(command, graph: Graph) -> CommandRejected:
    with pytest.raises(CommandRejected) as info:
        command.apply(graph)
    assert str(info.value)
    return info.value


# --- every command applies, and undo restores the exact graph --------------------------------

COMMANDS = {
    "add": AddNode((), "linear", (10.0, 20.0), {"out_features": 3}),
    "add_in_body": AddNode(LOOP, "tanh", (100.0, 0.0)),
    "add_loop": AddNode((), "loop", (0.0, 300.0)),
    "add_branch": AddNode((), "branch", (0.0, 300.0)),
    "remove": RemoveNodes((), frozenset({"act"})),
    "move": MoveNodes((), (("fc", (5.0, 6.0)), ("act", (7.0, 8.0)))),
    "connect_replace": Connect((), ("x", "y"), ("cat", "x1")),
    "disconnect": Disconnect((), Edge(("act", "y"), ("out", "x"))),
    "set_param": SetParam((), "fc", "out_features", 12),
    "set_param_in_body": SetParam(LOOP, "h", "shape", [8]),
    "set_label": SetLabel((), "fc", "hidden"),
    "paste": Paste((), (Node("fc", "linear", {"out_features": 2}), Node("act", "relu")),
                   (Edge(("fc", "y"), ("act", "x")),), (50.0, 50.0)),
    "set_training": SetTraining((("lr", 0.5), ("epochs", 3))),
    "rename": RenameGraph("tiny"),
    "layout": AutoLayout(()),
    "batch": Batch((AddNode((), "relu", (0.0, 0.0), node_id="r"), Connect((), ("fc", "y"), ("r", "x"))),
                   "Add ReLU after fc"),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_applies_and_undoes_exactly(name, tmp_path):
    state = AppState(base_graph(), recovery=Recovery(tmp_path))
    start = state.graph
    command = COMMANDS[name]
    assert isinstance(command.label, str) and command.label
    new = command.apply(start)
    assert new is not start and new != start
    assert loads(dumps(new)) == new           # valid data: it saves and loads back equal
    analyze(new)                                # and analyses without raising
    assert command.apply(start) == new          # pure: the same input gives the same output
    assert state.do(command), state.status
    assert state.graph == new
    assert state.undo_label == command.label
    assert state.undo() and state.graph is start
    assert state.redo() and state.graph == new
    assert state.undo() and state.graph is start and not state.dirty


def test_unchanged_nodes_are_shared():
    g = base_graph()
    new = SetParam((), "fc", "out_features", 9).apply(g)
    assert [a is b for a, b in zip(g.nodes, new.nodes, strict=True)] == [
        n.id != "fc" for n in g.nodes]
    inner = AddNode(LOOP, "tanh", (0.0, 0.0)).apply(g)
    assert all(a is b for a, b in zip(g.nodes, inner.nodes, strict=True) if a.id != "loop1")
    assert inner.node("loop1").regions["body"].nodes[0] is g.node("loop1").regions["body"].nodes[0]


def test_no_op_commands_return_the_same_graph():
    g = base_graph()
    assert MoveNodes((), (("fc", g.node("fc").pos),)).apply(g) is g
    assert SetParam((), "fc", "out_features", 8).apply(g) is g
    assert Connect((), ("fc", "y"), ("act", "x")).apply(g) is g
    assert SetLabel((), "fc", "").apply(g) is g
    assert RenameGraph(g.name).apply(g) is g


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "code"), [
    (AddNode((), "no_such_block", (0.0, 0.0)), "unknown_block"),
    (AddNode((), "linear", (0.0, 0.0), {"out_features": 0}), "bad_param"),
    (AddNode((), "linear", (0.0, 0.0), {"nope": 1}), "bad_param"),
    (AddNode((), "linear", (math.nan, 0.0)), "bad_value"),
    (AddNode((), "linear", (0.0, 0.0), node_id="fc"), "bad_id"),
    (AddNode((), "linear", (0.0, 0.0), node_id="9lives"), "bad_id"),
    (AddNode((), "linear", (0.0, 0.0), node_id="x" * 65), "bad_id"),
    (AddNode(("nope", "body"), "linear", (0.0, 0.0)), "no_such_region"),
    (AddNode(("loop1",), "linear", (0.0, 0.0)), "no_such_region"),
    (RemoveNodes((), frozenset({"ghost"})), "nothing"),
    (MoveNodes((), (("fc", (math.inf, 0.0)),)), "bad_value"),
    (MoveNodes((), (("ghost", (0.0, 0.0)),)), "nothing"),
    (Connect((), ("fc", "nope"), ("act", "x")), "unknown_port"),
    (Connect((), ("fc", "y"), ("act", "nope")), "unknown_port"),
    (Connect((), ("ghost", "y"), ("act", "x")), "no_such_node"),
    (Connect((), ("act", "y"), ("fc", "x")), "cycle"),
    (Connect((), ("act", "y"), ("act", "x")), "cycle"),
    (Connect((), ("act", "y"), ("x", "nope")), "unknown_port"),
    (Disconnect((), Edge(("x", "y"), ("act", "x"))), "no_such_edge"),
    (SetParam((), "fc", "out_features", -3), "bad_param"),
    (SetParam((), "fc", "out_features", 2.5), "bad_param"),
    (SetParam((), "fc", "out_features", True), "bad_param"),
    (SetParam((), "fc", "out_features", 10**9), "bad_param"),
    (SetParam((), "fc", "bias", "yes"), "bad_param"),
    (SetParam((), "x", "shape", [0]), "bad_param"),
    (SetParam((), "x", "shape", "4"), "bad_param"),
    (SetParam((), "x", "dtype", "complex"), "bad_param"),
    (SetParam((), "ghost", "p", 1), "no_such_node"),
    (SetLabel((), "fc", "x" * 201), "bad_value"),
    (SetTraining((("lr", -1.0),)), "bad_value"),
    (SetTraining((("optimizer", "magic"),)), "bad_value"),
    (SetTraining((("momentum", 5.0),)), "bad_value"),       # passes TrainingConfig; the schema refuses
    (SetTraining((("no_such_setting", 1),)), "bad_value"),
    (SetTraining((("lr", math.nan),)), "bad_value"),
    (RenameGraph(""), "bad_value"),
    (RenameGraph("n" * 201), "bad_value"),
    (Paste((), (), (), (0.0, 0.0)), "nothing"),
    (Batch((AddNode((), "relu", (0.0, 0.0)), SetParam((), "fc", "out_features", 0)), "two"), "bad_param"),
])
def test_refusals_have_a_reason_and_record_nothing(command, code, tmp_path):
    g = base_graph()
    assert reject(command, g).code == code
    state = AppState(g, recovery=Recovery(tmp_path))
    version = state.version
    assert not state.do(command)
    assert state.graph is g and not state.can_undo and not state.dirty
    assert state.status_level == "warning" and state.status
    assert state.version > version   # the status changed, so views redraw it


def test_connect_refuses_a_shape_mismatch_with_the_diagnostic_code():
    g = build([("x", "input", {"shape": (4,)}), ("fc", "linear", {"out_features": 8}),
               ("sum", "add"), ("out", "output")],
              ["x -> fc", "fc -> sum.a", "sum -> out"])
    e = reject(Connect((), ("x", "y"), ("sum", "b")), g)
    assert e.code == "shape_mismatch" and "(B, 8)" in str(e) and "(B, 4)" in str(e)
    assert Connect((), ("fc", "y"), ("sum", "b")).apply(g) != g


def test_connect_refuses_a_dtype_mismatch():
    g = build([("ids", "input", {"shape": (3,), "dtype": "long"}), ("fc", "linear")], [])
    assert reject(Connect((), ("ids", "y"), ("fc", "x")), g).code == "type_mismatch"


def test_connect_replaces_the_wire_into_a_taken_input():
    g = base_graph()
    new = Connect((), ("x", "y"), ("cat", "x0")).apply(g)
    assert Edge(("x", "y"), ("cat", "x0")) in new.edges
    assert Edge(("act", "y"), ("cat", "x0")) not in new.edges
    assert len(new.edges) == len(g.edges)


def test_connect_allows_wiring_into_a_node_that_already_has_errors_elsewhere():
    # A wire that merely leaves a pre-existing problem in place is not refused.
    g = build([("x", "input", {"shape": (4,)}), ("y", "input", {"shape": (5,)}), ("sum", "add"),
               ("out", "output")], ["x -> sum.a", "y -> sum.b", "sum -> out"])
    assert analyze(g).errors
    g2 = Connect((), ("x", "y"), ("sum", "b")).apply(g)
    assert not analyze(g2).errors


# --- loops, branches and bodies -----------------------------------------------------------


def test_a_fresh_loop_is_valid_once_connected():
    g = build([("x", "input", {"shape": (16,)}), ("out", "output")])
    g = AddNode((), "loop", (200.0, 0.0)).apply(g)
    assert [n.id for n in g.nodes] == ["x", "out", "loop1"]
    g = Connect((), ("x", "y"), ("loop1", "h")).apply(g)
    g = Connect((), ("loop1", "h"), ("out", "x")).apply(g)
    analysis = analyze(g)
    assert analysis.ok, analysis.errors
    assert analysis.outputs["loop1"]["h"].shape == ("B", 16)


def test_a_fresh_branch_is_valid_once_connected():
    g = build([("x", "input", {"shape": (4,)}), ("c", "input", {"shape": (1,)}), ("out", "output")])
    g = AddNode((), "branch", (200.0, 0.0)).apply(g)
    for src, dst in ((("c", "y"), ("branch1", "cond")), (("x", "y"), ("branch1", "x")),
                     (("branch1", "y"), ("out", "x"))):
        g = Connect((), src, dst).apply(g)
    assert analyze(g).ok, analyze(g).errors


def test_editing_a_body_removes_outer_wires_to_ports_that_vanish():
    g = base_graph()
    assert Edge(("act", "y"), ("loop1", "h")) in g.edges
    g2 = RemoveNodes(LOOP, frozenset({"h"})).apply(g)
    assert Edge(("act", "y"), ("loop1", "h")) not in g2.edges
    assert len(g2.edges) == len(g.edges) - 1


def test_a_param_that_removes_ports_removes_their_wires():
    g = base_graph()
    g2 = SetParam((), "cat", "inputs", 2).apply(g)
    assert Edge(("act", "y"), ("cat", "x2")) not in g2.edges
    assert Edge(("act", "y"), ("cat", "x1")) in g2.edges
    # Loop modes: "while" adds an `iterations` output; leaving it drops the wire from it.
    g3 = SetParam((), "loop1", "mode", "while").apply(g)
    g3 = AddNode((), "output", (0.0, 0.0), node_id="it").apply(g3)
    g3 = replace_edges(g3, Edge(("loop1", "iterations"), ("it", "x")))
    g4 = SetParam((), "loop1", "mode", "repeat").apply(g3)
    assert Edge(("loop1", "iterations"), ("it", "x")) not in g4.edges


def replace_edges(g: Graph, *edges: Edge) -> Graph:
    return Graph(g.nodes, (*g.edges, *edges), name=g.name, training=g.training)


def test_regions_may_not_nest_deeper_than_the_file_format_allows():
    g = Graph()
    region: tuple[str, ...] = ()
    for _ in range(MAX_REGION_DEPTH):
        g = AddNode(region, "loop", (0.0, 0.0), node_id="l").apply(g)
        region = (*region, "l", "body")
    assert loads(dumps(g)) == g
    assert reject(AddNode(region, "loop", (0.0, 0.0)), g).code == "too_deep"
    assert reject(AddNode(region, "branch", (0.0, 0.0)), g).code == "too_deep"
    g2 = AddNode(region, "linear", (0.0, 0.0)).apply(g)      # plain blocks are fine there
    loop = g.node("l")
    assert reject(Paste(("l", "body"), (loop,), (), (0.0, 0.0)), g).code == "too_deep"
    assert loads(dumps(g2)) == g2


# --- paste ----------------------------------------------------------------------------------


def test_paste_remaps_clashing_ids_and_keeps_only_internal_edges():
    g = base_graph()
    nodes = (g.node("fc"), g.node("act"), Node("new", "relu"))
    edges = (Edge(("fc", "y"), ("act", "x")), Edge(("x", "y"), ("fc", "x")))
    g2 = Paste((), nodes, edges, (10.0, 0.0)).apply(g)
    added = g2.nodes[len(g.nodes):]
    assert [n.id for n in added] == ["fc1", "act1", "new"]
    assert added[0].params == g.node("fc").params
    assert added[0].pos == (g.node("fc").pos[0] + 10.0, g.node("fc").pos[1])
    assert g2.edges[len(g.edges):] == (Edge(("fc1", "y"), ("act1", "x")),)
    assert all(ID_PATTERN.fullmatch(n.id) for n in g2.nodes)


def test_paste_of_a_body_output_follows_its_renamed_state_input():
    body = default_regions("loop")["body"]
    g = base_graph()
    g2 = Paste(LOOP, body.nodes, body.edges, (0.0, 100.0)).apply(g)
    inner = g2.node("loop1").regions["body"]
    assert [n.id for n in inner.nodes] == ["h", "h_next", "h1", "h_next1"]
    assert inner.node("h_next1").params["state"] == "h1"
    assert Edge(("h1", "y"), ("h_next1", "x")) in inner.edges


def test_paste_keeps_long_ids_legal():
    long_id = "a" * 64
    g = Graph((Node(long_id, "relu"),))
    g2 = Paste((), (Node(long_id, "relu"),), (), (0.0, 0.0)).apply(g)
    assert all(ID_PATTERN.fullmatch(n.id) for n in g2.nodes) and len(g2.nodes) == 2


# --- training, names -------------------------------------------------------------------------


def test_set_training_merges_and_none_restores_the_default():
    g = base_graph()
    g2 = SetTraining((("lr", 0.1), ("dataset", {"name": "spirals"}))).apply(g)
    assert g2.training == {"lr": 0.1, "dataset": {"name": "spirals"}}
    g3 = SetTraining((("lr", None),)).apply(g2)
    assert g3.training == {"dataset": {"name": "spirals"}}
    assert loads(dumps(g3)) == g3


# --- layout ---------------------------------------------------------------------------------


def test_layout_layers_by_longest_path_left_to_right():
    g = build([("x", "input"), ("a", "relu"), ("b", "relu"), ("c", "relu"), ("sum", "add"),
               ("out", "output")],
              ["x -> a", "a -> b", "b -> c", "x -> sum.a", "c -> sum.b", "sum -> out"])
    depth = layers(g)
    assert depth == {"x": 0, "a": 1, "b": 2, "c": 3, "sum": 4, "out": 5}
    pos = layered_positions(g)
    for e in g.edges:
        assert pos[e.src[0]][0] < pos[e.dst[0]][0]
    assert layered_positions(g) == pos          # deterministic


def test_layout_orders_columns_to_remove_a_crossing():
    # Two parallel chains drawn crossed: a1 is placed below b1 although it follows a0.
    nodes = (Node("a0", "input", pos=(0, 0)), Node("b0", "input", pos=(0, 100)),
             Node("b1", "relu", pos=(200, 0)), Node("a1", "relu", pos=(200, 100)))
    g = Graph(nodes, (Edge(("a0", "y"), ("a1", "x")), Edge(("b0", "y"), ("b1", "x"))))
    assert columns(g) == [["a0", "b0"], ["a1", "b1"]]


def test_layout_survives_a_cycle():
    g = build([("a", "relu"), ("b", "relu"), ("c", "relu")], ["a -> b", "b -> c", "c -> a"])
    pos = layered_positions(g)
    assert set(pos) == {"a", "b", "c"}
    assert len({p for p in pos.values()}) == 3


def test_auto_layout_command_on_a_body():
    g = MoveNodes(LOOP, (("h", (900.0, 900.0)),)).apply(base_graph())
    g2 = AutoLayout(LOOP).apply(g)
    inner = g2.node("loop1").regions["body"]
    assert inner.node("h").pos == (40.0, 60.0) and inner.node("h_next").pos == (240.0, 60.0)
    assert same_structure(g, g2) and g2 != g
    assert AutoLayout(LOOP).apply(g2) is g2     # already laid out: nothing to do


def test_same_structure_ignores_positions_and_training_only():
    g = base_graph()
    assert same_structure(g, MoveNodes((), (("fc", (1.0, 2.0)),)).apply(g))
    assert same_structure(g, SetTraining((("lr", 0.2),)).apply(g))
    assert same_structure(g, MoveNodes(LOOP, (("h", (1.0, 2.0)),)).apply(g))
    assert not same_structure(g, SetLabel((), "fc", "z").apply(g))
    assert not same_structure(g, SetParam(LOOP, "h", "shape", [3]).apply(g))
    assert not same_structure(g, RenameGraph("other").apply(g))


def test_chain_helper_layout_is_a_straight_row():
    g = chain(("x", "input"), ("a", "relu"), ("out", "output"))
    pos = layered_positions(g)
    assert len({y for _, y in pos.values()}) == 1


# --- layering: the app model imports neither torch nor dearpygui --------------------------


def test_app_model_imports_neither_torch_nor_dearpygui(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['dearpygui'] = None\n"
        "sys.modules['dearpygui.dearpygui'] = None\n"
        "import app, app.state, app.commands, app.layout, app.recovery\n"
        "s = app.state.AppState(recovery=app.recovery.Recovery(sys.argv[1]))\n"
        "s.open_sample('rnn_scan')\n"
        "assert s.code and s.code_error is None, s.code_error\n"
        "assert not any(m == 'torch' or m.startswith(('torch.', 'dearpygui'))\n"
        "               for m, v in sys.modules.items() if v is not None)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_connect_lets_a_loop_with_a_broken_body_be_wired_so_its_errors_show():
    # The body maps the 16-wide state to 3 features: the body's mistake, not the wire's.
    g = build([("x", "input", {"shape": (16,)}), ("out", "output")])
    g = AddNode((), "loop", (200.0, 0.0)).apply(g)
    g = AddNode(LOOP, "linear", (100.0, 0.0), {"out_features": 3}, node_id="fc").apply(g)
    g = Connect(LOOP, ("h", "y"), ("fc", "x")).apply(g)
    g = Connect(LOOP, ("fc", "y"), ("h_next", "x")).apply(g)
    g = Connect((), ("x", "y"), ("loop1", "h")).apply(g)
    assert ("region_signature", "loop1") in [(d.code, d.node) for d in analyze(g).errors]


def test_connect_refuses_a_sequence_without_a_dim_to_scan():
    g = build([("x", "input", {"shape": (4,)})])
    g = AddNode((), "loop", (200.0, 0.0), {"mode": "scan"}).apply(g)
    g = AddNode(LOOP, "body_input", (0.0, 100.0), {"role": "sequence"}, node_id="x_t").apply(g)
    g = SetParam((), "loop1", "dim", 2).apply(g)
    assert reject(Connect((), ("x", "y"), ("loop1", "x_t")), g).code == "shape_mismatch"


def test_moves_and_training_really_do_not_change_analysis_or_code(samples):
    """Guards the shortcut in AppState.do: a same_structure edit keeps analysis and code."""
    from engine.core.codegen import generate

    for name, g in samples.items():
        moved = AutoLayout(()).apply(MoveNodes((), tuple((n.id, (n.pos[0] + 7, -n.pos[1]))
                                                         for n in g.nodes)).apply(g))
        moved = SetTraining((("lr", 0.123), ("epochs", 1), ("optimizer", "sgd"))).apply(moved)
        assert same_structure(g, moved) and moved != g, name
        a, b = analyze(g), analyze(moved)
        assert a == b, name
        if a.ok:
            assert generate(g, a).source == generate(moved, b).source, name


def test_body_nodes_never_take_the_owners_structural_port_names():
    g = AddNode((), "branch", (0.0, 0.0)).apply(base_graph())
    then = ("branch1", "then")
    assert reject(AddNode(then, "body_input", (0.0, 0.0), node_id="cond"), g).code == "bad_id"
    assert reject(AddNode(LOOP, "body_input", (0.0, 0.0), node_id="iterations"), g).code == "bad_id"
    g2 = Paste(then, (Node("cond", "body_input"),), (), (0.0, 0.0)).apply(g)
    assert "cond" not in g2.node("branch1").regions["then"]
    assert "cond1" in g2.node("branch1").regions["then"]
    g3 = Paste(LOOP, (Node("count", "relu"),), (), (0.0, 0.0)).apply(g)
    assert "count1" in g3.node("loop1").regions["body"]
    assert AddNode((), "relu", (0.0, 0.0), node_id="cond").apply(g)   # fine at the top level


def test_layout_gives_big_blocks_room():
    """With the blocks' drawn sizes, a column as wide as a block with a long problem line
    pushes the next one right, and a tall block pushes the one below it down, so no two
    blocks overlap (issue 16)."""
    from app.layout import GAP, SPACING

    g = build([("x", "input", {"shape": [2]}), ("a", "linear", {}), ("c", "linear", {}),
               ("b", "tanh", {})], ["x -> a", "x -> c", "a -> b"])
    plain = layered_positions(g)
    sizes = {"x": (90.0, 60.0), "a": (320.0, 200.0), "c": (120.0, 60.0), "b": (90.0, 60.0)}
    roomy = layered_positions(g, sizes=sizes)
    assert roomy["x"] == plain["x"]
    assert roomy["b"][0] - roomy["a"][0] == 320.0 + GAP[0] > SPACING[0]
    top, below = sorted(("a", "c"), key=lambda i: roomy[i][1])
    assert roomy[below][1] - roomy[top][1] >= sizes[top][1] + GAP[1]
    assert AutoLayout((), tuple(sizes.items())).apply(g).node("b").pos == roomy["b"]


def test_insert_on_wire_puts_a_block_between_the_ends():
    g = build([("x", "input", {"shape": [4]}), ("fc", "linear", {"out_features": 3})], ["x -> fc"])
    wire = g.edges[0]
    new = InsertOnWire((), wire, "relu", (100.0, 0.0)).apply(g)
    assert {(e.src, e.dst) for e in new.edges} == {(("x", "y"), ("relu1", "x")),
                                                   (("relu1", "y"), ("fc", "x"))}
    assert new.node("relu1").pos == (100.0, 0.0)
    with pytest.raises(CommandRejected) as refused:   # Conv2d does not take (B, 4)
        InsertOnWire((), wire, "conv2d", (100.0, 0.0)).apply(g)
    assert refused.value.code == "shape_mismatch"
    with pytest.raises(CommandRejected) as gone:
        InsertOnWire((), Edge(("x", "y"), ("fc", "nope")), "relu", (0.0, 0.0)).apply(g)
    assert gone.value.code == "no_such_edge"
    with pytest.raises(CommandRejected) as no_ports:   # an Input has no input to wire
        InsertOnWire((), wire, "input", (0.0, 0.0)).apply(g)
    assert no_ports.value.code == "unknown_port"


def test_refusals_name_the_fix():
    """A wrong port lists the right ones, a typo'd block type gets its nearest name, and a
    wire refused for its width suggests the Linear that would match (issue 16)."""
    g = build([("x", "input", {"shape": [2]}), ("fc", "linear", {"out_features": 16}),
               ("add", "add", {})], ["x -> fc", "fc -> add.a"])
    with pytest.raises(CommandRejected) as port:
        Connect((), ("x", "yy"), ("fc", "x")).apply(g)
    assert port.value.code == "unknown_port"
    assert "did you mean 'y'?" in str(port.value) and "its outputs are y" in str(port.value)
    with pytest.raises(CommandRejected) as port:
        Connect((), ("x", "y"), ("add", "c")).apply(g)
    assert "its inputs are a, b" in str(port.value)
    with pytest.raises(CommandRejected) as block:
        AddNode((), "ReLu", (0.0, 0.0)).apply(g)
    assert block.value.code == "unknown_block" and "did you mean 'relu'?" in str(block.value)
    with pytest.raises(CommandRejected) as wire:
        Connect((), ("x", "y"), ("add", "b")).apply(g)
    assert wire.value.code == "shape_mismatch"
    assert "a Linear with out_features=16 on this wire" in str(wire.value)
