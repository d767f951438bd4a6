"""A user's block library without a window: a Call of a function added from the palette
(`AddCall`), and a library file's functions imported in one undo step (`ImportFunctions`),
refused on a name clash unless renaming is asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.commands import AddCall, ImportFunctions
from app.state import AppState
from engine.core.analysis import analyze
from engine.core.fileformat import GraphFileError, load_graph
from engine.core.functionlib import export_library, load_library
from engine.core.graph import FUNCTION

SAMPLES = Path(__file__).resolve().parents[1] / "sample_graphs"


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DPROG_STATE_DIR", str(tmp_path / "state"))


def calls(graph, name: str) -> list[str]:
    return [n.id for n in graph.nodes if n.type == "call" and n.params.get("function") == name]


def test_add_call_places_a_call_with_its_own_weights_named_after_the_function():
    state = AppState(load_graph(SAMPLES / "unet.json"))
    before = state.graph
    assert state.do(AddCall((), "double_conv", (100.0, 50.0)))
    (new,) = set(calls(state.graph, "double_conv")) - set(calls(before, "double_conv"))
    node = state.graph.node(new)
    assert new.startswith("double_conv") and node.pos == (100.0, 50.0)
    assert node.params == {"function": "double_conv", "weights": "own"}
    assert state.selection == {new} and state.undo_label == "Add call of double_conv"
    assert state.undo() and state.graph is before


def test_add_call_inside_a_function_body_and_of_an_unknown_function():
    state = AppState(load_graph(SAMPLES / "gpt_blocks.json"))
    before = state.graph
    assert not state.do(AddCall((), "nope", (0.0, 0.0)))
    assert state.graph is before and "nope" in state.status
    # a call in another function's body is allowed (recursion is the analysis's to report)
    assert state.do(AddCall((FUNCTION, "block"), "block", (0.0, 0.0)))
    assert any(d.code == "recursion" for d in analyze(state.graph).diagnostics)


def test_import_functions_is_one_undo_step(tmp_path):
    unet = load_graph(SAMPLES / "unet.json")
    lib = export_library(unet, ["double_conv"], tmp_path / "mine")
    assert lib.name == "mine.dprog-lib.json"
    state = AppState(load_graph(SAMPLES / "moons_mlp.json"))
    before, steps = state.graph, len(state._undo)
    assert state.do(ImportFunctions(load_library(lib), source=lib.name))
    assert state.graph.functions["double_conv"] == unet.functions["double_conv"]
    assert len(state._undo) == steps + 1 and state.undo_label == "Import 1 function"
    assert state.graph.nodes == before.nodes
    assert state.undo() and state.graph is before
    assert state.redo() and "double_conv" in state.graph.functions


def test_import_clash_is_refused_naming_it_or_renamed(tmp_path):
    unet = load_graph(SAMPLES / "unet.json")
    lib = export_library(unet, ["double_conv"], tmp_path / "mine.dprog-lib.json")
    state = AppState(unet)
    command = ImportFunctions(load_library(lib), source=lib.name)
    assert command.clashes(state.graph) == ["double_conv"]
    assert not state.do(command)
    assert state.graph is unet and "double_conv" in state.status and "mine" in state.status
    assert state.do(ImportFunctions(load_library(lib), on_clash="rename", source=lib.name))
    assert set(state.graph.functions) == {"double_conv", "double_conv2"}
    assert state.undo() and state.graph is unet


def test_a_hostile_library_is_refused_with_its_place(tmp_path):
    bad = tmp_path / "bad.dprog-lib.json"
    bad.write_text('{"format": "dprog-lib", "version": 1, "functions": {"f": {"graph": 3}}}')
    with pytest.raises(GraphFileError, match=r"bad\.dprog-lib\.json.*\$\.functions"):
        load_library(bad)
    bad.write_text('{"format": "dprog", "version": 1}')
    with pytest.raises(GraphFileError, match=r"\$\.format"):
        load_library(bad)


def test_palette_search_and_labels_of_functions():
    from app.views.palette import function_label, ranked_functions

    functions = dict(load_graph(SAMPLES / "unet.json").functions)
    f = functions["double_conv"]
    assert ranked_functions("", functions) == ["double_conv"]
    assert ranked_functions("double", functions) == ["double_conv"]
    assert ranked_functions("u-net", functions) == ["double_conv"]        # its category
    assert ranked_functions("batchnorm relu", functions) == ["double_conv"]   # its doc
    assert ranked_functions("linear", functions) == []
    assert function_label("double_conv", f, functions) == "ƒ Double conv"
    functions["double_conv2"] = f   # imported renamed: same title, so the names tell them apart
    assert function_label("double_conv2", f, functions) == "ƒ Double conv (double_conv2)"
