"""AppState: undo/redo, regions, clipboard, dirty/title, files, recovery, recent files,
failure containment and edit latency."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import engine.core.fileformat as fileformat
from app.commands import (
    AddNode,
    Command,
    Connect,
    MoveNodes,
    SetParam,
    SetTraining,
    default_regions,
)
from app.recovery import MAX_RECENT, Recovery
from app.state import AppState, sample_names
from engine.core.fileformat import dumps, load_graph, loads, save_graph
from engine.core.graph import Edge, Graph, Node
from tests.helpers import REPO, build

LOOP = ("loop1", "body")


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    d = tmp_path / "state"
    monkeypatch.setenv("DPROG_STATE_DIR", str(d))
    return d


def mlp() -> Graph:
    return build([("x", "input", {"shape": (4,)}), ("fc", "linear", {"out_features": 8}),
                  ("act", "tanh"), ("out", "output")], ["x -> fc", "fc -> act", "act -> out"],
                 name="mlp")


def with_loop() -> Graph:
    g = mlp()
    loop = Node("loop1", "loop", pos=(0.0, 200.0), regions=default_regions("loop"))
    return Graph((*g.nodes, loop), g.edges, name=g.name)


# --- undo / redo ---------------------------------------------------------------------------


def test_undo_redo_walks_exact_graph_objects():
    s = AppState(mlp())
    graphs = [s.graph]
    for k in range(5):
        assert s.do(SetParam((), "fc", "out_features", 10 + k))
        graphs.append(s.graph)
    assert s.undo_label == "Set out_features" and s.redo_label is None
    for g in reversed(graphs[:-1]):
        assert s.undo() and s.graph is g
    assert not s.can_undo and not s.undo()
    for g in graphs[1:]:
        assert s.redo() and s.graph is g
    assert not s.can_redo and not s.redo()


def test_a_new_command_clears_redo():
    s = AppState(mlp())
    s.do(SetParam((), "fc", "out_features", 3))
    s.undo()
    assert s.can_redo
    s.do(SetParam((), "fc", "out_features", 5))
    assert not s.can_redo


def test_a_command_that_changes_nothing_records_nothing():
    s = AppState(mlp())
    g = s.graph
    assert s.do(SetParam((), "fc", "out_features", 8))
    assert s.graph is g and not s.can_undo and not s.dirty


def test_history_limit_drops_the_oldest_steps():
    s = AppState(mlp(), history_limit=3)
    for k in range(6):
        s.do(SetParam((), "fc", "out_features", 10 + k))
    undone = 0
    while s.undo():
        undone += 1
    assert undone == 3 and s.graph.node("fc").params["out_features"] == 12


def test_an_internal_error_in_a_command_is_contained():
    class Broken(Command):
        @property
        def label(self) -> str:
            return "Broken"

        def apply(self, graph: Graph) -> Graph:
            raise RuntimeError("boom")

    class NotAGraph(Command):
        def apply(self, graph: Graph):
            return "nope"

    s = AppState(mlp())
    g, version = s.graph, s.version
    for command in (Broken(), NotAGraph()):
        assert not s.do(command)
        assert s.graph is g and not s.can_undo and s.status_level == "error"
        assert "Broken" in s.status or "NotAGraph" in s.status
    assert s.version > version


def test_derived_state_follows_the_graph():
    s = AppState(mlp())
    assert s.code_error is None and "nn.Linear(in_features=4, out_features=8)" in s.code
    assert s.port_types("fc")[1]["y"].shape == ("B", 8)
    assert s.param_count("fc") == 4 * 8 + 8 and s.total_params == 40
    assert s.lines_for("fc") and all(s.code_lines[ln] == "fc" for ln in s.lines_for("fc"))
    v = s.version
    s.do(SetParam((), "fc", "out_features", 2))
    assert s.version > v
    assert "out_features=2" in s.code and s.param_count("fc") == 10
    s.do(AddNode((), "add", (0.0, 0.0), node_id="sum"))
    s.do(Connect((), ("act", "y"), ("sum", "a")))
    assert [d.code for d in s.diagnostics_for("sum")] == ["missing_input"]
    assert s.code_error and "out_features=2" in s.code       # stale code kept, flagged
    s.undo()
    s.undo()
    assert s.code_error is None


def test_a_move_keeps_the_analysis_and_the_code():
    s = AppState(mlp())
    code, analysis = s.code, s.analysis
    assert s.do(MoveNodes((), (("fc", (300.0, 40.0)),)))
    assert s.analysis is analysis and s.code is code and s.code_error is None


def test_each_document_has_its_own_analysis_cache(tmp_path):
    a, b = AppState(mlp()), AppState(mlp())
    assert a.analyses is not b.analyses
    first = a.analyses
    a.do(SetParam((), "fc", "out_features", 3))
    assert a.analyses is first and first.of(a.graph) is a.analysis   # edits share the document's
    path = tmp_path / "other.json"
    save_graph(with_loop(), path)
    assert a.open(path)
    assert a.analyses is not first   # another document, another cache


# --- selection and regions -----------------------------------------------------------------


def test_selection():
    s = AppState(mlp())
    s.select(["fc", "ghost"])
    assert s.selection == {"fc"}
    s.select(["act"], add=True)
    assert s.selection == {"fc", "act"}
    s.select(["fc"], add=True)
    assert s.selection == {"act"}
    s.clear_selection()
    assert s.selection == frozenset()
    s.do(AddNode((), "relu", (0.0, 0.0)))
    assert s.selection == {"relu1"}
    v = s.version
    s.select(["relu1"])                  # unchanged: no redraw
    assert s.version == v
    s.select_all()
    assert s.selection == {"x", "fc", "act", "out", "relu1"} and s.version > v
    assert [d.code for d in s.region_diagnostics] == []


def test_editing_inside_a_loop_body_and_undoing_from_outside():
    s = AppState(with_loop())
    start = s.graph
    assert s.enter_region("loop1", "body")
    assert s.region == LOOP and s.breadcrumbs == [("mlp", ()), ("loop1 ▸ body", LOOP)]
    assert [n.id for n in s.current_graph().nodes] == ["h", "h_next"]
    assert s.node_path("h") == "loop1/body/h"
    assert s.do(AddNode(s.region, "tanh", (100.0, 0.0)))
    assert s.selection == {"tanh1"}
    assert s.do(Connect(s.region, ("h", "y"), ("tanh1", "x")))
    assert s.do(Connect(s.region, ("tanh1", "y"), ("h_next", "x")))
    after = s.graph
    assert after.node("loop1").regions["body"].node("tanh1").type == "tanh"
    assert [n is m for n, m in zip(start.nodes, after.nodes, strict=True)] == [True] * 4 + [False]

    s.leave_region()
    assert s.region == () and s.selection == {"loop1"}
    assert s.undo()                        # undo from outside: back into the body
    assert s.region == LOOP
    assert s.undo() and s.undo() and s.graph is start and s.region == LOOP
    assert s.redo() and s.redo() and s.redo() and s.graph is after
    s.leave_region()
    s.do(Connect((), ("act", "y"), ("loop1", "h")))
    s.enter_region("loop1", "body")
    assert s.undo() and s.region == () and s.graph is after   # undo from inside


def test_region_survives_the_loop_being_deleted_and_restored():
    s = AppState(with_loop())
    s.enter_region("loop1", "body")
    s.leave_region()
    s.delete_selection()
    assert "loop1" not in s.graph
    assert not s.enter_region("loop1", "body") and s.status_level == "warning"
    s.undo()
    assert s.enter_region("loop1", "body")


def test_enter_a_nested_body_and_jump_back_by_breadcrumb():
    s = AppState(with_loop())
    s.enter_region("loop1", "body")
    s.do(AddNode(s.region, "branch", (0.0, 0.0)))
    assert s.enter_region("branch1", "else")
    assert s.region == ("loop1", "body", "branch1", "else")
    assert [text for text, _ in s.breadcrumbs] == ["mlp", "loop1 ▸ body", "branch1 ▸ else"]
    assert s.diagnostics_for("x") == [] or all(d.node == "loop1/body/branch1/else/x"
                                               for d in s.diagnostics_for("x"))
    assert s.set_region(s.breadcrumbs[1][1]) and s.region == LOOP
    s.enter_region("branch1", "then")
    s.leave_region(5)
    assert s.region == () and s.selection == {"loop1"}


# --- clipboard ------------------------------------------------------------------------------


def test_copy_paste_remaps_ids_and_keeps_edges():
    s = AppState(mlp())
    s.select(["fc", "act"])
    assert s.copy()
    assert loads(s.clipboard_text).nodes == s.clipboard[0]
    g = s.graph
    assert s.paste()
    new = s.graph.nodes[len(g.nodes):]
    assert [n.id for n in new] == ["fc1", "act1"] and s.selection == {"fc1", "act1"}
    assert Edge(("fc1", "y"), ("act1", "x")) in s.graph.edges
    assert new[0].pos == (g.node("fc").pos[0] + 30.0, g.node("fc").pos[1] + 30.0)
    assert s.paste()                      # a second paste lands further on
    assert s.graph.node("fc2").pos == (g.node("fc").pos[0] + 60.0, g.node("fc").pos[1] + 60.0)
    assert s.paste(at=(500.0, 500.0))
    assert s.graph.node("fc3").pos == (500.0, 500.0)
    assert s.undo() and s.undo() and s.undo() and s.graph is g


def test_cut_is_one_undo_step_and_paste_puts_it_back():
    s = AppState(mlp())
    g = s.graph
    s.select(["act"])
    assert s.cut() and "act" not in s.graph and s.undo_label == "Cut"
    assert Edge(("fc", "y"), ("act", "x")) not in s.graph.edges
    assert s.paste(at=g.node("act").pos)
    assert s.graph.node("act").type == "tanh"    # the id was free again, so it is kept
    s.undo()
    s.undo()
    assert s.graph is g


def test_duplicate_leaves_the_clipboard_alone():
    s = AppState(mlp())
    s.select(["fc"])
    s.copy()
    clip = s.clipboard
    s.select(["act"])
    assert s.duplicate()
    assert s.clipboard is clip and s.selection == {"act1"}
    assert not AppState(mlp()).duplicate()


def test_paste_into_a_body_and_from_text():
    s = AppState(with_loop())
    s.select(["fc", "act"])
    s.copy()
    text = s.clipboard_text
    s.enter_region("loop1", "body")
    assert s.paste()
    body = s.current_graph()
    assert {"fc", "act"} <= {n.id for n in body.nodes}
    assert Edge(("fc", "y"), ("act", "x")) in body.edges
    assert s.paste_text(text)
    assert {"fc1", "act1"} <= {n.id for n in s.current_graph().nodes}
    g = s.graph
    assert not s.paste_text("{not json") and s.graph is g and s.status_level == "warning"


def test_nothing_selected():
    s = AppState(mlp())
    g = s.graph
    assert not s.copy() and not s.cut() and not s.paste() and not s.delete_selection()
    assert s.graph is g and not s.can_undo


# --- dirty, title, files ------------------------------------------------------------------------


def test_dirty_and_title(tmp_path):
    s = AppState()
    assert s.title == "dprog — untitled" and not s.dirty
    path = tmp_path / "moons.json"
    save_graph(mlp(), path)
    assert s.open(path)
    assert s.title == "dprog — moons.json" and not s.dirty
    s.do(SetParam((), "fc", "out_features", 3))
    assert s.dirty and s.title == "dprog — moons.json •"
    s.undo()
    assert not s.dirty and s.title == "dprog — moons.json"      # back to the saved graph
    s.redo()
    assert s.save()
    assert not s.dirty
    s.undo()
    assert s.dirty                                               # now differs from the saved one
    s.redo()
    assert not s.dirty


def test_open_a_broken_file_keeps_the_document(tmp_path):
    s = AppState(mlp())
    s.do(SetParam((), "fc", "out_features", 3))
    g, version = s.graph, s.version
    bad = tmp_path / "bad.json"
    cases = {
        "broken json": '{"format": "dprog-graph", "version": 2, "nodes": [',
        "not ours": '{"hello": 1}',
        "newer": '{"format": "dprog-graph", "version": 99, "nodes": [], "edges": []}',
        "bad edge": json.dumps({"format": "dprog-graph", "version": 2, "nodes": [],
                                "edges": [{"from": ["a", "y"], "to": ["b", "x"]}]}),
    }
    for text in cases.values():
        bad.write_text(text)
        assert not s.open(bad)
        assert s.graph is g and s.can_undo and s.dirty and s.file is None
        assert s.status_level == "error" and "bad.json" in s.status
    assert not s.open(tmp_path / "missing.json") and s.graph is g
    assert not s.open(tmp_path) and s.graph is g
    assert s.version > version


def test_open_resets_history_and_region(tmp_path):
    path = tmp_path / "g.json"
    save_graph(with_loop(), path)
    s = AppState(mlp())
    s.do(SetParam((), "fc", "out_features", 3))
    assert s.open(path)
    assert not s.can_undo and not s.can_redo and s.region == ()
    s.enter_region("loop1", "body")
    assert s.open(path) and s.region == () and s.selection == frozenset()
    assert s.recent_files[0] == path.absolute()


def test_save_round_trips_and_is_atomic(tmp_path, monkeypatch):
    s = AppState(with_loop())
    s.do(SetTraining((("lr", 0.05),)))
    path = tmp_path / "out.json"
    assert not s.save() and s.dirty                  # no file yet: the view asks for one
    assert s.save(path) and not s.dirty and s.file == path
    assert load_graph(path) == s.graph
    assert path.read_text() == dumps(s.graph)
    saved = path.read_bytes()

    s.do(SetParam((), "fc", "out_features", 1))

    def crash(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(fileformat.os, "replace", crash)
    assert not s.save() and s.status_level == "error" and s.dirty
    assert path.read_bytes() == saved                # the old file is intact
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.undo()
    assert s.save() and load_graph(path) == s.graph


def test_save_to_an_unwritable_place_reports(tmp_path):
    s = AppState(mlp())
    assert not s.save(tmp_path / "no" / "such" / "dir" / "g.json")
    assert s.status_level == "error" and s.file is None


@pytest.mark.parametrize("name", sample_names())
def test_samples_open_clean_and_generate(name):
    s = AppState()
    assert s.open_sample(name), s.status
    assert s.analysis.ok, s.analysis.errors
    assert s.code_error is None and s.code
    assert s.title == f"dprog — {name} (sample)" and s.file is None and not s.dirty
    assert not s.save()                              # never overwrites the sample itself
    assert not AppState().open_sample("no_such_sample")


def test_new_resets():
    s = AppState(mlp())
    s.do(SetParam((), "fc", "out_features", 3))
    s.new()
    assert s.graph == Graph() and not s.can_undo and not s.dirty and s.file is None


# --- recovery and recent files --------------------------------------------------------------------


def test_autosave_when_dirty_and_offer_on_next_start(tmp_path, state_dir):
    path = tmp_path / "work.json"
    save_graph(mlp(), path)
    old = time.time() - 100
    os.utime(path, (old, old))
    s = AppState()
    s.open(path)
    assert not s.maybe_autosave(now=1000.0)          # clean: nothing to save
    s.do(SetParam((), "fc", "out_features", 3))
    assert s.maybe_autosave(now=1000.0)
    assert not s.maybe_autosave(now=1001.0)          # nothing changed since
    s.do(SetParam((), "fc", "out_features", 4))
    assert not s.maybe_autosave(now=1002.0)          # too soon
    assert s.maybe_autosave(now=1006.0)
    assert (state_dir / "recovery.json").is_file()
    crashed = s.graph

    # The next session (the first one "crashed": no close()).
    t = AppState()
    pending = t.pending_recovery()
    assert pending is not None and pending.file == path and pending.graph == crashed
    assert t.restore_recovery(pending)
    assert t.graph == crashed and t.file == path and t.dirty and "•" in t.title
    assert t.save() and not (state_dir / "recovery.json").exists()
    assert AppState().pending_recovery() is None


def test_recovery_not_offered_when_the_file_is_newer(tmp_path, state_dir):
    path = tmp_path / "work.json"
    save_graph(mlp(), path)
    s = AppState()
    s.open(path)
    s.do(SetParam((), "fc", "out_features", 3))
    s.maybe_autosave(now=0.0)
    later = time.time() + 100
    os.utime(path, (later, later))                   # saved elsewhere after the autosave
    assert AppState().pending_recovery() is None


def test_recovery_is_offered_whatever_the_clocks_say(tmp_path):
    # The file's mtime is in the future (a skewed clock, a network drive): what counts is
    # that the file has not changed since the autosave.
    path = tmp_path / "work.json"
    save_graph(mlp(), path)
    future = time.time() + 3600
    os.utime(path, (future, future))
    s = AppState()
    s.open(path)
    s.do(SetParam((), "fc", "out_features", 3))
    assert s.maybe_autosave(now=0.0)
    pending = AppState().pending_recovery()
    assert pending is not None and pending.graph == s.graph
    path.unlink()                                    # the file is gone: still offered
    assert AppState().pending_recovery() is not None


def test_clean_exit_and_undo_to_clean_remove_the_recovery_file(state_dir):
    s = AppState(mlp())
    s.do(SetParam((), "fc", "out_features", 3))
    assert s.maybe_autosave(now=0.0)
    s.undo()
    s.maybe_autosave(now=1.0)
    assert not (state_dir / "recovery.json").exists()
    s.redo()
    assert s.maybe_autosave(now=10.0)
    s.close()
    assert not (state_dir / "recovery.json").exists()
    assert AppState().pending_recovery() is None


def test_an_untitled_graph_is_recovered_too():
    s = AppState()
    s.do(AddNode((), "relu", (0.0, 0.0)))
    s.maybe_autosave(now=0.0)
    pending = AppState().pending_recovery()
    assert pending is not None and pending.file is None and pending.graph == s.graph
    t = AppState()
    t.discard_recovery()
    assert t.pending_recovery() is None


@pytest.mark.parametrize("junk", [b"", b"{", b"[]", b'{"format": "dprog-recovery", "graph": "{"}',
                                  b"\xff\xfe"])
def test_a_corrupt_recovery_file_is_ignored(state_dir, junk):
    state_dir.mkdir(parents=True)
    (state_dir / "recovery.json").write_bytes(junk)
    s = AppState()
    assert s.pending_recovery() is None and s.status_level == "warning"
    assert not s.restore_recovery()


def test_recent_files_are_capped_persisted_and_tolerant(tmp_path, state_dir):
    s = AppState()
    paths = []
    for k in range(MAX_RECENT + 3):
        p = tmp_path / f"g{k}.json"
        save_graph(mlp(), p)
        assert s.open(p)
        paths.append(p.absolute())
    assert s.recent_files == paths[::-1][:MAX_RECENT]
    s.open(paths[5])
    assert s.recent_files[0] == paths[5] and len(set(s.recent_files)) == MAX_RECENT
    assert AppState().recent_files == s.recent_files
    (state_dir / "recent.json").write_text("{oops")
    t = AppState()
    assert t.recent_files == [] and t.status_level == "warning"
    assert t.open(paths[0]) and t.recent_files == [paths[0]]


def test_an_unusable_state_dir_does_not_stop_the_studio(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    s = AppState(mlp(), recovery=Recovery(blocker / "state"))
    s.do(SetParam((), "fc", "out_features", 3))
    assert not s.maybe_autosave(now=0.0)
    assert s.status_level == "warning" and "autosave" in s.status
    path = tmp_path / "g.json"
    assert s.save(path) and not s.dirty and load_graph(path) == s.graph
    assert s.pending_recovery() is None


def test_default_state_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DPROG_STATE_DIR", str(tmp_path / "x"))
    assert Recovery().dir == tmp_path / "x"
    monkeypatch.delenv("DPROG_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert Recovery().dir == tmp_path / "xdg" / "dprog"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert Recovery().dir == Path.home() / ".local" / "state" / "dprog"


# --- latency ------------------------------------------------------------------------------------


def long_chain(n: int) -> Graph:
    nodes = [Node("x", "input", {"shape": (16,)})]
    edges = []
    prev = "x"
    for i in range(n - 2):
        kind = "linear" if i % 2 == 0 else "tanh"
        node_id = f"{kind}{i}"
        nodes.append(Node(node_id, kind, {"out_features": 16} if kind == "linear" else {},
                          pos=(200.0 * i, 60.0)))
        edges.append(Edge((prev, "y"), (node_id, "x")))
        prev = node_id
    nodes.append(Node("out", "output"))
    edges.append(Edge((prev, "y"), ("out", "x")))
    return Graph(tuple(nodes), tuple(edges))


def test_edits_on_a_thousand_nodes_redo_only_what_they_reach():
    """The studio's edits go through the document's caches: a width edit re-infers the three
    nodes it reaches, and a move redoes no analysis at all. (How long that takes is measured
    in bench/, row 4, not here.)"""
    s = AppState(long_chain(1000))
    assert s.analysis.ok
    cache = s.analyses._cache
    for k in range(4):
        patches, misses = cache.patches, cache.misses
        assert s.do(SetParam((), "linear500", "out_features", 17 + k % 2))
        assert cache.patches == patches + 1 and cache.misses - misses <= 3
        assert s.analysis.ok
    analysis = s.analysis
    s.do(MoveNodes((), (("linear500", (1.0, 2.0)),)))
    assert s.analysis is analysis


def test_the_graph_is_checked_against_its_loaded_dataset(tmp_path):
    """The studio loads the training data on a worker (TrainingData) and hands it to the
    state, which lists where the graph does not fit it with the analysis's diagnostics,
    following edits, until the training section names other data (issue 16)."""
    from app.training_data import TrainingData

    s = AppState(load_graph(REPO / "sample_graphs" / "moons_mlp.json"),
                 recovery=Recovery(tmp_path / "state"))
    data = TrainingData()
    data.want(s.data_key(), s.graph.training["dataset"], s.graph.training["seed"], None)
    data.join()
    s.set_training_data(data.key, data.dataset, data.error)
    assert s.dataset is data.dataset and s.data_problems == ()
    assert s.do(SetParam((), "fc3", "out_features", 3))
    (d,) = s.data_problems
    assert d.code == "data_output_shape" and d.node == "logits" and d in s.diagnostics
    assert s.undo() and s.data_problems == ()
    assert s.do(SetTraining((("dataset", {"name": "circles"}),)))
    assert s.dataset is None and s.data_problems == (), "that data is not loaded yet"
    data.want(s.data_key(), {"name": "nosuch"}, 0, None)
    data.join()
    s.set_training_data(data.key, data.dataset, data.error)
    (d,) = s.data_problems
    assert d.code == "data_error" and "nosuch" in d.message and d.severity == "warning"
