"""Graph files: round trips, atomic saves, migration from version 1, and clear refusals that
name the file and the place for everything the loader cannot take."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import REPO, SAMPLE_NAMES, build

import engine
from engine.core.fileformat import VERSION, GraphFileError, dumps, load_graph, loads, save_graph
from engine.core.graph import Edge, Graph, Node

GOLDEN = REPO / "tests" / "golden"


def document(name: str = "moons_mlp") -> dict:
    return json.loads((REPO / "sample_graphs" / f"{name}.json").read_text(encoding="utf-8"))


def refusal(doc_or_text, tmp_path: Path, name: str = "bad.json") -> str:
    """The message load_graph gives for this document (or raw text), checked to name the file."""
    path = tmp_path / name
    text = doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GraphFileError) as info:
        load_graph(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_round_trip_is_stable(name, tmp_path):
    original = REPO / "sample_graphs" / f"{name}.json"
    graph = load_graph(original)
    first = tmp_path / "first.json"
    save_graph(graph, first)
    again = load_graph(first)
    assert again == graph
    second = tmp_path / "second.json"
    save_graph(again, second)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == original.read_bytes()   # the samples were written by save_graph


def test_key_order_is_fixed_whatever_the_insertion_order():
    a = Node("fc", "linear", {"out_features": 3, "bias": False}, pos=(1.26, 2))
    b = Node("fc", "linear", {"bias": False, "out_features": 3}, pos=(1.26, 2))
    ga = Graph((a,), training={"seed": 1, "lr": 0.1, "dataset": {"noise": 0.1, "name": "moons"}})
    gb = Graph((b,), training={"dataset": {"name": "moons", "noise": 0.1}, "lr": 0.1, "seed": 1})
    assert dumps(ga) == dumps(gb)
    doc = json.loads(dumps(ga))
    assert list(doc) == ["format", "version", "name", "nodes", "edges", "training"]
    assert list(doc["nodes"][0]) == ["id", "type", "pos", "params"]
    assert list(doc["nodes"][0]["params"]) == ["bias", "out_features"]
    assert list(doc["training"]) == ["dataset", "lr", "seed"]
    assert doc["nodes"][0]["pos"] == [1.3, 2.0]


def test_unicode_labels_and_names_round_trip(tmp_path):
    graph = Graph((Node("x", "input", {"shape": [2]}, label="Eingabe \u00fc \u2028 \U0001f600"),),
                  name="mod\u00e8le \"quoted\"\n")
    save_graph(graph, tmp_path / "u.json")
    assert load_graph(tmp_path / "u.json") == graph


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, samples, monkeypatch):
    path = tmp_path / "model.json"
    save_graph(samples["moons_mlp"], path)
    save_graph(samples["rnn_scan"], path)
    assert sorted(os.listdir(tmp_path)) == ["model.json"]
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk on fire"):
        save_graph(samples["moons_mlp"], path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.json"]


def expected_v1_graph() -> Graph:
    body = Graph(
        (Node("h", "body_input", {"role": "state", "shape": [5]}),
         Node("x_t", "body_input", {"role": "sequence"}, pos=(0, 100)),
         Node("cell", "rnn_cell", {"hidden_size": 5}, pos=(200, 50)),
         Node("h_next", "body_output", {"role": "state", "state": "h"}, pos=(400, 50))),
        (Edge(("x_t", "y"), ("cell", "x")), Edge(("h", "y"), ("cell", "h")),
         Edge(("cell", "h"), ("h_next", "x"))))
    return Graph(
        (Node("seq", "input", {"shape": [4, 2]}, pos=(10, 20)),
         Node("proj", "linear", {"out_features": 3}, pos=(200, 0)),
         Node("rnn", "loop", {"mode": "scan"}, pos=(400, 20.5), label="Recurrence",
              regions={"body": body}),
         Node("out", "output", pos=(0, 5))),
        (Edge(("seq", "y"), ("proj", "x")), Edge(("proj", "y"), ("rnn", "x_t")),
         Edge(("rnn", "h"), ("out", "x"))),
        name="legacy scan",
        training={"lr": 0.01, "batch_size": 8, "dataset": {"name": "adding", "length": 4}})


def test_version_1_file_is_migrated(tmp_path):
    graph = load_graph(GOLDEN / "v1_graph.json")
    assert graph == expected_v1_graph()
    assert engine.validate(graph) == []
    save_graph(graph, tmp_path / "v3.json")
    doc = json.loads((tmp_path / "v3.json").read_text())
    assert doc["version"] == 3 and "train" not in doc and doc["training"]["lr"] == 0.01
    assert doc["nodes"][1]["type"] == "linear"
    assert load_graph(tmp_path / "v3.json") == graph


def test_legacy_dense_loads_as_linear(tmp_path):
    doc = document()
    doc["nodes"][1]["type"] = "dense"
    path = tmp_path / "dense.json"
    path.write_text(json.dumps(doc))
    graph = load_graph(path)
    assert graph.node("fc1").type == "linear"
    assert graph == load_graph(REPO / "sample_graphs" / "moons_mlp.json")
    assert engine.export_python(graph) == engine.export_python(
        load_graph(REPO / "sample_graphs" / "moons_mlp.json"))


def test_newer_version_is_refused(tmp_path):
    doc = document()
    doc["version"] = VERSION + 1
    message = refusal(doc, tmp_path)
    assert "$.version" in message and str(VERSION + 1) in message


def conv_file(version: int, params: dict, type_: str = "conv2d") -> dict:
    """An image through one convolution, as a file of `version` writes it."""
    return {"format": "dprog-graph", "version": version, "name": "conv",
            "nodes": [{"id": "image", "type": "input", "params": {"shape": [1, 8, 8]}},
                      {"id": "conv", "type": type_, "params": params},
                      {"id": "out", "type": "output", "params": {}}],
            "edges": [{"from": ["image", "y"], "to": ["conv", "x"]},
                      {"from": ["conv", "y"], "to": ["out", "x"]}]}


@pytest.mark.parametrize("type_", ["conv1d", "conv2d"])
def test_version_2_convolutions_keep_their_padding(tmp_path, type_):
    """Version 3 took torch's default padding 0; a version-2 file that left padding out meant
    1, and the migration writes that, so the file means what it meant (shapes, parameters)."""
    params = {"out_channels": 4, "kernel_size": 3}
    doc = conv_file(2, params, type_)
    if type_ == "conv1d":
        doc["nodes"][0]["params"]["shape"] = [1, 8]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    graph = load_graph(path)
    assert graph.node("conv").params == {**params, "padding": 1}
    out = engine.analyze(graph).inputs["out"]["x"].shape
    assert out[-1] == 8   # 3×3 with padding 1 keeps the size; padding 0 would give 6
    save_graph(graph, tmp_path / "new.json")
    assert json.loads((tmp_path / "new.json").read_text())["nodes"][1]["params"]["padding"] == 1


def test_migration_keeps_a_written_padding_and_new_files_use_torchs_default(tmp_path):
    old = conv_file(2, {"out_channels": 4, "kernel_size": 3, "padding": 0})
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert load_graph(tmp_path / "old.json").node("conv").params["padding"] == 0
    new = conv_file(3, {"out_channels": 4, "kernel_size": 3})
    (tmp_path / "new.json").write_text(json.dumps(new))
    graph = load_graph(tmp_path / "new.json")
    assert "padding" not in graph.node("conv").params
    assert engine.analyze(graph).inputs["out"]["x"].shape == ("B", 4, 6, 6)
    # LeNet's first layer as a person writes it from torch's docs: 5×5, no padding given.
    lenet = conv_file(3, {"out_channels": 6, "kernel_size": 5})
    lenet["nodes"][0]["params"]["shape"] = [1, 32, 32]
    (tmp_path / "lenet.json").write_text(json.dumps(lenet))
    assert engine.analyze(load_graph(tmp_path / "lenet.json")).inputs["out"]["x"].shape == \
        ("B", 6, 28, 28)


def test_migration_reaches_into_bodies(tmp_path):
    doc = conv_file(2, {"out_channels": 1, "kernel_size": 3})
    body = {"nodes": [{"id": "x", "type": "body_input", "params": {"role": "context"}},
                      {"id": "c", "type": "conv2d", "params": {"out_channels": 1}},
                      {"id": "y", "type": "body_output", "params": {}}],
            "edges": [{"from": ["x", "y"], "to": ["c", "x"]}, {"from": ["c", "y"], "to": ["y", "x"]}]}
    doc["nodes"].insert(2, {"id": "loop", "type": "loop", "params": {"count": 2},
                            "regions": {"body": body}})
    doc["edges"] = [{"from": ["image", "y"], "to": ["conv", "x"]},
                    {"from": ["conv", "y"], "to": ["loop", "x"]},
                    {"from": ["loop", "y"], "to": ["out", "x"]}]
    (tmp_path / "loop.json").write_text(json.dumps(doc))
    graph = load_graph(tmp_path / "loop.json")
    assert graph.node("loop").regions["body"].node("c").params["padding"] == 1
    assert engine.validate(graph) == []


@pytest.mark.parametrize("version", [0, -1, 1.5, "2", True, None])
def test_unknown_version_is_refused(tmp_path, version):
    doc = document()
    doc["version"] = version
    assert "$.version" in refusal(doc, tmp_path)


@pytest.mark.parametrize("fmt", ["dprog-graph2", None, 7])
def test_unknown_format_is_refused(tmp_path, fmt):
    doc = document()
    doc["format"] = fmt
    assert "$.format" in refusal(doc, tmp_path)


@pytest.mark.parametrize("text", ["[1, 2]", '"graph"', "null", "12"])
def test_non_object_document_is_refused(tmp_path, text):
    assert "$" in refusal(text, tmp_path)


def test_truncated_json_names_line_and_column(tmp_path):
    text = (REPO / "sample_graphs" / "moons_mlp.json").read_text()
    cut = text[: text.index('"fc2"') + 3]
    message = refusal(cut, tmp_path)
    line = cut.count("\n") + 1
    assert f"line {line}" in message and "column" in message


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(tmp_path, literal):
    text = json.dumps(document()).replace('"out_features": 16', f'"out_features": {literal}', 1)
    assert literal in text
    refusal(text, tmp_path)


@pytest.mark.parametrize("mutate, place", [
    (lambda d: d["nodes"][1].__setitem__("id", "1fc"), "$.nodes[1].id"),
    (lambda d: d["nodes"][1].__setitem__("id", "fc 1"), "$.nodes[1].id"),
    (lambda d: d["nodes"][1].__setitem__("id", "fc1\n"), "$.nodes[1].id"),
    (lambda d: d["nodes"][1].__setitem__("id", "x" * 65), "$.nodes[1].id"),
    (lambda d: d["nodes"][2].pop("type"), "$.nodes[2]"),
    (lambda d: d["nodes"][2].__setitem__("pos", [1]), "$.nodes[2].pos"),
    (lambda d: d["nodes"][2].__setitem__("pos", [10**400, 0]), "$.nodes[2]"),
    (lambda d: d["nodes"][2].__setitem__("colour", "red"), "$.nodes[2]"),
    (lambda d: d["nodes"][1]["params"].__setitem__("out_features", {"a": 1}),
     "$.nodes[1].params.out_features"),
    (lambda d: d["edges"][0].__setitem__("from", ["x"]), "$.edges[0].from"),
    (lambda d: d["edges"][0].__setitem__("to", ["fc1", "x\n"]), "$.edges[0].to[1]"),
    (lambda d: d["training"].__setitem__("lr", -1), "$.training.lr"),
    (lambda d: d["training"].__setitem__("optimiser", "adam"), "$.training"),
    (lambda d: d.__setitem__("name", 5), "$.name"),
    (lambda d: d.__setitem__("extra", 5), "$"),
    (lambda d: d["training"]["dataset"].__setitem__("evil\nkey\u2028", [1]),
     '$.training.dataset["evil\\nkey\\u2028"]'),
])
def test_schema_violations_name_the_place(tmp_path, mutate, place):
    doc = document()
    mutate(doc)
    message = refusal(doc, tmp_path)
    assert f": {place}" in message, message


def test_duplicate_ids_are_refused_with_the_place(tmp_path):
    doc = document()
    doc["nodes"][2]["id"] = "fc1"
    message = refusal(doc, tmp_path)
    assert "$" in message and "'fc1'" in message
    with pytest.raises(ValueError):   # GraphFileError is a ValueError
        loads(json.dumps(doc))


def test_dangling_edges_are_refused_with_the_place(tmp_path):
    doc = document()
    doc["edges"].append({"from": ["ghost", "y"], "to": ["fc1", "x"]})
    assert "'ghost'" in refusal(doc, tmp_path)


def test_problems_inside_regions_name_the_region(tmp_path):
    doc = document("rnn_scan")
    doc["nodes"][1]["regions"]["body"]["edges"].append({"from": ["ghost", "y"], "to": ["mix", "a"]})
    message = refusal(doc, tmp_path)
    assert "$.nodes[1].regions.body" in message and "'ghost'" in message
    doc = document("rnn_scan")
    doc["nodes"][1]["regions"]["body"]["nodes"][0]["id"] = "h-1"
    assert "$.nodes[1].regions.body.nodes[0].id" in refusal(doc, tmp_path)


def test_deep_nesting_is_refused(tmp_path):
    assert "nested" in refusal("[" * 100_000 + "]" * 100_000, tmp_path)
    region = {"nodes": [], "edges": []}
    for _ in range(40):
        region = {"nodes": [{"id": "b", "type": "branch", "regions": {"then": region}}], "edges": []}
    doc = {"format": "dprog-graph", "version": 2, **region}
    assert "deeper" in refusal(doc, tmp_path)


def test_unreadable_files(tmp_path):
    with pytest.raises(GraphFileError, match="no such file"):
        load_graph(tmp_path / "missing.json")
    with pytest.raises(GraphFileError, match="directory"):
        load_graph(tmp_path)
    (tmp_path / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(GraphFileError, match="UTF-8"):
        load_graph(tmp_path / "latin1.json")


def test_loader_never_executes_or_evaluates(tmp_path):
    doc = document()
    doc["name"] = "__import__('os').system('touch pwned')"
    doc["nodes"][1]["label"] = "${{7*7}} {0.__class__}"
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    graph = load_graph(path)
    assert graph.name == doc["name"] and graph.node("fc1").label == doc["nodes"][1]["label"]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_graph_values_check_their_invariants():
    with pytest.raises(ValueError):
        Node("bad id", "linear")
    with pytest.raises(ValueError):
        Node("a\n", "linear")
    with pytest.raises(ValueError):
        Graph((Node("a", "relu"), Node("a", "relu")))
    with pytest.raises(ValueError):
        Graph((Node("a", "relu"),), (Edge(("a", "y"), ("b", "x")),))
    graph = build([("x", "input"), ("act", "relu")], ["x -> act"])
    assert graph.node("x").params == {} and isinstance(graph.edges[0].src, tuple)
