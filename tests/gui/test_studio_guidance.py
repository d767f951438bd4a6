"""Guidance for a newcomer in the real studio (issue 16): the data shown before Train, an
Output that does not fit the dataset's classes flagged before Train, refusals that name the
fix, a typo in quick add answered with a suggestion, Help › Getting started ticking off
its steps, and each panel's purpose as a tooltip.

One studio runs for the module, on a copy of moons_mlp; the tests build on each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import VirtualScreen, color_fraction
from studio_driver import SAMPLES, Studio, center, studio

pytestmark = pytest.mark.gui

MOONS_COLORS = ((66, 133, 244), (244, 140, 50))   # the run panel's first two class colours


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("guidance")


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    with studio(screen, folder, SAMPLES / "moons_mlp.json") as s:
        yield s


def box(r: list[float]) -> tuple[int, int, int, int]:
    return tuple(int(v) for v in r)  # type: ignore[return-value]


def preview(app: Studio, kind: str) -> dict:
    return app.wait(lambda s: s["data_preview"]["kind"] == kind and s, f"a {kind} preview",
                    timeout=90)


def test_the_data_shows_before_training(app: Studio, folder: Path) -> None:
    s = preview(app, "points")
    assert s["run"]["status"] == "idle" and "moons" in s["data_preview"]["label"]
    assert s["data_preview"]["accuracy"] == "Accuracy"
    app.wait_frames(6)   # the points reach the screen a frame or two after they are set
    shot = app.shot(folder / "data_moons.png")
    plot = box(s["layout"]["plots"]["boundary"])
    for color in MOONS_COLORS:
        assert color_fraction(shot, color, plot, tolerance=40) > 0.002, color
    app.menu("File>Open sample>digits_cnn")
    s = preview(app, "images")
    assert "digits" in s["data_preview"]["label"]
    app.wait_frames(6)
    app.shot(folder / "data_digits.png")
    app.menu("File>Open sample>rnn_scan")
    s = preview(app, "sequence")
    assert "regression" in s["data_preview"]["accuracy"], "regression explains the empty plot"
    app.wait_frames(6)
    app.shot(folder / "data_sequence.png")


def test_an_output_that_does_not_fit_the_classes_is_flagged_before_train(app: Studio,
                                                                          folder: Path) -> None:
    app.key("ctrl+o")
    app.wait(lambda s: "path" in s["dialogs"] and s, "the Open prompt")
    app.key("ctrl+a")
    app.type_text(str(folder / "moons_mlp.json"))
    app.key("Return")
    preview(app, "points")
    app.click(app.node_title("fc3"))
    app.wait(lambda s: s["selection"] == ["fc3"] and s, "fc3 selected")
    app.click(app.widget("out_features"))
    app.key("ctrl+a")
    app.type_text("3")
    app.key("Return")
    s = app.wait(lambda s: any(d[0] == "data_output_shape" for d in s["diagnostics"]) and s,
                 "the misfit under Problems")
    (d,) = [d for d in s["diagnostics"] if d[0] == "data_output_shape"]
    assert d[1] == "logits" and d[2] == "error" and "set fc3's out_features to 2" in d[3]
    assert ["data_output_shape", "logits"] in s["problems_list"]
    s = app.wait(lambda s: s["layout"]["nodes"]["logits"]["problem"] and s, "it on the block")
    app.click(center(s["layout"]["train_button"]))
    s = app.wait(lambda s: s["status"].startswith("fix the graph first") and s, "Train refused")
    assert s["run"]["status"] == "idle"
    app.shot(folder / "misfit.png")
    app.key("ctrl+z")
    app.wait(lambda s: not any(d[0].startswith("data_") for d in s["diagnostics"]) and s,
             "the misfit gone with the undo")


def test_a_refused_wire_names_the_fix(app: Studio) -> None:
    x0, _, _, y1 = app.canvas()
    before = set(app.nodes())
    app.screen.move(x0 + 500, y1 - 90)
    app.key("space")
    app.wait(lambda s: s["quick_add_ready"] and s, "the quick-add popup to take keys")
    app.type_text("add")
    app.key("Return")
    s = app.wait(lambda s: set(app.nodes(s)) - before and s, "an Add")
    (add,) = set(app.nodes(s)) - before
    app.drag(app.pin("fc1", "out", "y"), app.pin(add, "in", "a"))
    app.wait(lambda s: (("fc1", "y"), (add, "a")) in app.edges(s) and s, "fc1 → add.a")
    app.drag(app.pin("x", "out", "y"), app.pin(add, "in", "b"))
    s = app.wait(lambda s: s["status"].startswith("can't wire") and s, "the refusal")
    assert "a Linear with out_features=16 on this wire" in s["status"], s["status"]


def test_a_typo_in_quick_add_gets_a_suggestion(app: Studio, folder: Path) -> None:
    x0, _, _, y1 = app.canvas()
    before = set(app.nodes())
    app.screen.move(x0 + 200, y1 - 90)
    app.key("space")
    app.wait(lambda s: s["quick_add_ready"] and s, "the quick-add popup to take keys")
    app.type_text("rleu")
    app.wait_frames(3)
    app.shot(folder / "did_you_mean.png")
    app.key("Return")
    s = app.wait(lambda s: set(app.nodes(s)) - before and s, "the suggested block")
    (new,) = set(app.nodes(s)) - before
    assert app.nodes(s)[new]["type"] == "relu"


def test_getting_started_ticks_off_its_steps(app: Studio, folder: Path) -> None:
    app.menu("Help>Getting started")
    s = app.wait(lambda s: s["guide"]["open"] and s, "the guide")
    assert not s["guide"]["done"][0], "the graph on screen is a file, not a new graph"
    app.key("ctrl+n")
    if "confirm" in app.wait(lambda s: s["dialogs"] or ["none"], "the question or not"):
        app.click(center(app.wait(lambda s: s["layout"]["dialog_buttons"].get("discard"),
                                  "Discard")))
    s = app.wait(lambda s: s["guide"]["done"][0] and s, "step 1 ticked")
    assert s["guide"]["done"][1:] == [False] * 5
    x0, y0, _, _ = app.canvas()
    app.drag(app.palette_button("input"), (x0 + 80, y0 + 120))
    s = app.wait(lambda s: s["guide"]["done"][1] and s, "step 2: an Input of shape 2")
    app.shot(folder / "getting_started.png")
    app.menu("File>Open sample>moons_mlp")
    app.wait(lambda s: "confirm" in s["dialogs"] and s, "the unsaved-changes question")
    app.click(center(app.wait(lambda s: s["layout"]["dialog_buttons"].get("discard"), "Discard")))
    s = app.wait(lambda s: s["guide"]["done"][3] and s, "steps 3 and 4: a model that fits")
    assert s["guide"]["done"][2] and not s["guide"]["done"][4]


def test_each_panel_says_what_it_is_for(app: Studio, folder: Path) -> None:
    tabs = app.layout()["tabs"]
    # Problems is the selected tab here: Dear PyGui's own tooltips never show on that one.
    for tab, tip in (("gradients", "gradients"), ("problems", "problems"),
                     ("training", "settings")):
        app.screen.move(*center(tabs[tab]))
        app.wait(lambda s, t=tip: t in s["tips_visible"] and s, f"the {tab} tab's tooltip")
    app.shot(folder / "panel_tip.png")
