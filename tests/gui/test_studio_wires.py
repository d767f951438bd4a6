"""Looking inside wires, time per block, and stopping at the fault, in a real window
(issue 17, items 5-7).

A moons classifier trains with the Profile toggle on: every block gets a heat badge with
its time, and the Gradient flow tab a table of blocks. Right-clicking its wire fc1 → act1 and
choosing "Look inside" pins it: the panel shows the wire's statistics, histogram and each
unit's response over the input plane, which match what the trainer read; resting the mouse
on the wire shows the same numbers on a card. A second graph, whose Expression exp(a)
overflows with a huge learning rate, stops at NaN: the studio selects that block, shows its
wires' statistics at the failing step, and its button sets the next Train to start at the
last good step.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import VirtualScreen, color_fraction, distinct_colors, save_on_failure
from helpers import build
from studio_driver import SAMPLES, Studio, center, studio

from app.views.profile import HEAT
from app.views.theme import ERROR
from engine.core.fileformat import save_graph

pytestmark = pytest.mark.gui

WIRE = "fc1.y->act1.x"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wires")


def moons_file(folder: Path) -> Path:
    """moons_mlp, trained for a few epochs (the run is kept beside it)."""
    graph = json.loads((SAMPLES / "moons_mlp.json").read_text())
    graph["training"].update(epochs=6, dataset={**graph["training"]["dataset"], "n_samples": 400})
    path = folder / "moons_wires.json"
    path.write_text(json.dumps(graph))
    return path


def nan_file(folder: Path) -> Path:
    """x -> Linear -> exp(a) -> logits, SGD at lr 50: exp overflows within a few steps."""
    graph = build([("x", "input", {"shape": [2]}), ("fc", "linear", {"out_features": 2}),
                   ("bad", "expression", {"expr": "torch.exp(a)", "inputs": 1}),
                   ("logits", "output", {})], ["x -> fc", "fc -> bad.a", "bad -> logits"],
                  name="nan", training={"dataset": {"name": "moons", "n_samples": 200},
                                        "epochs": 20, "lr": 50.0, "optimizer": "sgd"})
    graph = dataclasses.replace(graph, nodes=tuple(
        dataclasses.replace(n, pos=(60.0 + 260.0 * i, 160.0)) for i, n in enumerate(graph.nodes)))
    path = folder / "nan.json"
    save_graph(graph, path)
    return path


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    with studio(screen, folder, moons_file(folder)) as s:
        yield s


def inside(s: dict) -> dict:
    return s["inside"]


def test_profile_mode_shows_time_on_every_block_and_a_table(app: Studio, folder: Path) -> None:
    toggle = app.wait(lambda s: inside(s)["profile"]["toggle"], "the Profile toggle")
    app.click(center(toggle))
    app.wait(lambda s: inside(s)["profile"]["on"], "profile mode on")
    app.click(center(app.layout()["train_button"]))
    s = app.wait(lambda s: s["run"]["status"] == "finished" and s, "the run to finish",
                 timeout=180)
    s = app.wait(lambda s: {"fc1", "fc2", "fc3"} <= set(inside(s)["profile"]["badges"]) and s,
                 "a badge on every layer")
    assert all(" ms · " in text for text in inside(s)["profile"]["badges"].values())
    shot = app.shot(folder / "profile_badges.png")
    hot = 0.0
    for node_id in ("fc1", "fc2", "fc3"):
        r = [int(v) for v in s["layout"]["nodes"][node_id]["rect"]]
        hot += sum(color_fraction(shot, rgb, tuple(r), tolerance=40) for rgb in HEAT)
    if hot < 0.002:
        save_on_failure(shot, folder, "profile_no_badges")
    assert hot >= 0.002, f"no heat-coloured badge text on the layers ({hot:.4f})"
    app.click(center(s["layout"]["tabs"]["gradients"]))
    s = app.wait(lambda s: inside(s)["profile"]["table_shown"] and inside(s)["profile"]["rows"]
                 and s, "the time table in the Gradient flow tab")
    rows = inside(s)["profile"]["rows"]
    assert {"fc1", "fc2", "fc3"} <= {r[0] for r in rows}
    shares = [r[3] for r in rows]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1.0, abs=0.01)
    app.shot(folder / "profile_table.png")


def test_pin_a_wire_and_read_its_statistics(app: Studio, folder: Path) -> None:
    s = app.state()
    a = app.pin("fc1", "out", "y")
    b = app.pin("act1", "in", "x")
    middle = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    app.screen.click(*middle, button=3)
    entries = app.wait(lambda s: s["context_menu"] and s["context_menu"]["kind"] == "wire"
                       and s["context_menu"]["entries"], "the wire's menu")
    app.click(center(entries["Look inside (pin)"]))
    app.wait(lambda s: inside(s)["wire"]["pinned"] == WIRE, "the wire to be pinned")
    s = app.wait(lambda s: inside(s)["wire"]["reading"] and inside(s)["wire"]["panel_shown"]
                 and inside(s)["wire"]["pictures_rect"] and s, "the pinned wire's reading")
    wire = inside(s)["wire"]
    assert wire["pinned"] == WIRE
    reading = wire["reading"]
    assert reading["shape"][1:] == [16] and reading["gradient"]
    assert sum(reading["histogram"]) == reading["shape"][0] * 16
    assert reading["min"] <= reading["mean"] <= reading["max"] and reading["std"] > 0
    assert f"{reading['mean']:.4g}" in wire["stats"] and "mean" in wire["grad_stats"]
    assert wire["pictures"] == "heatmap" and wire["images_shown"] == 4
    shot = app.shot(folder / "wire_pinned.png")
    pictures = tuple(int(v) for v in wire["pictures_rect"])
    if distinct_colors(shot, pictures) < 20:
        save_on_failure(shot, folder, "wire_no_heatmap")
    assert distinct_colors(shot, pictures) >= 20, "the unit heatmaps are not drawn"
    # The panel stands beside the wire's block, not over it.
    panel = wire["panel_rect"]
    block = s["layout"]["nodes"]["fc1"]["rect"]
    assert panel[0] >= block[2] or panel[2] <= block[0]


def test_resting_on_a_wire_shows_its_card(app: Studio, folder: Path) -> None:
    a = app.pin("fc1", "out", "y")
    b = app.pin("act1", "in", "x")
    app.screen.move((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 1)
    s = app.wait(lambda s: inside(s)["wire"]["card_for"] == WIRE
                 and "mean" in inside(s)["wire"]["card_text"] and s, "the wire's card")
    card = inside(s)["wire"]["card_text"]
    assert "shape (32, 16)" in card and "gradient mean" in card
    app.shot(folder / "wire_card.png")


@pytest.fixture(scope="module")
def nan_app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    nan_folder = folder / "nan"
    nan_folder.mkdir()
    with studio(screen, nan_folder, nan_file(nan_folder)) as s:
        yield s


def test_stop_at_the_fault(nan_app: Studio, folder: Path) -> None:
    app = nan_app
    app.click(center(app.layout()["train_button"]))
    s = app.wait(lambda s: s["run"]["status"] == "failed" and inside(s)["fault"]["rect"]
                 and s["selection"] == ["bad"] and s, "the run to stop at NaN", timeout=180)
    fault = inside(s)["fault"]
    assert fault["node"] == "bad" and fault["last_good_step"] == fault["step"] - 1
    assert "nonfinite" in s["run"]["message"]
    rows = {(r[0], r[1]): r for r in fault["rows"]}
    assert set(rows) == {("fc.y → bad.a", "in"), ("bad.y → logits.x", "out")}
    assert rows[("bad.y → logits.x", "out")][6] != "0"       # NaN/Inf counted
    assert float(rows[("fc.y → bad.a", "in")][5]) > 88          # exp overflows past ~88.7
    assert fault["checkpoint"] and fault["button_enabled"]
    shot = app.shot(folder / "nan_fault.png")
    panel = tuple(int(v) for v in fault["rect"])
    red = color_fraction(shot, ERROR, panel, tolerance=30)
    if red < 0.002:
        save_on_failure(shot, folder, "nan_fault_panel")
    assert red >= 0.002, "the fault panel's error text is not drawn"
    bad = s["layout"]["nodes"]["bad"]["rect"]
    assert panel[0] >= bad[2] or panel[2] <= bad[0], "the panel hides the faulty block"
    app.click(center(fault["button"]))
    s = app.wait(lambda s: s["inside"]["start_from"] and s, "the last good step to open")
    assert Path(s["inside"]["start_from"]).name == Path(fault["checkpoint"]).name
    assert f"step {fault['last_good_step']}" in s["status"]


@pytest.fixture(scope="module")
def loop_app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    """rnn_scan, trained for a few steps: a scan Loop over 10 time steps."""
    loop_folder = folder / "loop"
    loop_folder.mkdir()
    graph = json.loads((SAMPLES / "rnn_scan.json").read_text())
    graph["training"].update(epochs=2, dataset={**graph["training"]["dataset"], "n_samples": 400})
    path = loop_folder / "rnn_wires.json"
    path.write_text(json.dumps(graph))
    with studio(screen, loop_folder, path) as s:
        yield s


def test_inside_a_loop_body_the_slider_picks_the_iteration(loop_app: Studio, folder: Path) -> None:
    app = loop_app
    app.screen.double_click(*app.node_title("rnn"))
    app.wait(lambda s: s["region"] == ["rnn", "body"] and "squash" in s["layout"]["nodes"],
             "the loop's body")
    a = app.pin("squash", "out", "y")
    b = app.pin("h_next", "in", "x")
    wire = "rnn/body/squash.y->h_next.x"
    app.screen.move((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    app.wait(lambda s: inside(s)["wire"]["hovered"] == wire, "the mouse on the body's wire")
    app.key("i")
    app.wait(lambda s: inside(s)["wire"]["pinned"] == wire, "I to pin the wire")
    app.click(center(app.layout()["train_button"]))
    s = app.wait(lambda s: s["run"]["status"] == "finished" and inside(s)["wire"]["slider"]
                 and inside(s)["wire"]["slider_max"] == 9
                 and (inside(s)["wire"]["reading"] or {}).get("step") == s["run"]["step"]
                 and s, "the run to finish and the wire to be read", timeout=180)
    first = inside(s)["wire"]["reading"]
    assert first["iterations"] == 10 and first["iteration"] == 0
    slider = inside(s)["wire"]["slider"]
    app.click((slider[0] + 0.75 * (slider[2] - slider[0]), (slider[1] + slider[3]) / 2))
    s = app.wait(lambda s: (inside(s)["wire"]["iteration"] or 0) > 3
                 and (inside(s)["wire"]["reading"] or {}).get("iteration")
                 == inside(s)["wire"]["iteration"]
                 and f"iteration {inside(s)['wire']['iteration']} ·" in inside(s)["wire"]["note"]
                 and s, "a later iteration's reading, shown")
    later = inside(s)["wire"]["reading"]
    assert later["step"] == first["step"] and later["mean"] != first["mean"]
    app.shot(folder / "loop_iteration.png")
