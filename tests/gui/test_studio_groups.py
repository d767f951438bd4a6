"""A weight group in the real studio's Gradient flow tab: the siamese sample's two encoder
calls get a row each (the gradient reaching each call) and the group one row, "encoder (all
calls)", the gradient of the weights they share; the wires into and out of both calls of the
shared encoder take gradient colours on the canvas."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from harness import VirtualScreen
from studio_driver import Studio, center, studio

from engine import load_graph
from engine.core.fileformat import save_graph

pytestmark = pytest.mark.gui

SAMPLE = Path(__file__).resolve().parents[2] / "sample_graphs" / "siamese.json"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("groups")
    graph = load_graph(SAMPLE)
    training = {**graph.training, "epochs": 1, "gradflow_every": 5,
                "dataset": {"name": "digit_pairs", "flatten": True, "n_samples": 400}}
    save_graph(replace(graph, training=training), folder / "siamese.json")
    return folder


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    with studio(screen, folder, folder / "siamese.json") as s:
        yield s


def test_a_group_has_a_row_per_call_and_one_for_all_calls(app: Studio, folder: Path) -> None:
    app.click(center(app.layout()["tabs"]["gradients"]))
    app.click(center(app.layout()["train_button"]))
    app.wait(lambda s: s["run"]["status"] == "finished" and s, "the run to finish", timeout=180)
    s = app.wait(lambda s: "encoder (all calls)" in s["gradient_charts"]["rows"]["bars"]["labels"]
                 and s, "the group's row")
    bars = s["gradient_charts"]["rows"]["bars"]
    assert bars["labels"] == ["enc_left", "enc_right", "encoder (all calls)", "fc", "head"], bars
    app.shot(folder / "group_rows.png")


def test_the_shared_encoders_wires_take_gradient_colours(app: Studio, folder: Path) -> None:
    # The run above has finished; its last snapshot colours every wire the user drew,
    # the ones into and out of both calls of the one shared encoder among them.
    s = app.wait(lambda s: s["run"]["colored_links"] >= 12 and s, "every wire coloured")
    coloured = set(s["run"]["colored_edges"])
    for call, side in (("enc_left", "left"), ("enc_right", "right")):
        assert f"{side}.y -> {call}.x" in coloured, coloured
        assert f"{call}.y -> distance.{'a' if side == 'left' else 'b'}" in coloured, coloured
    app.shot(folder / "shared_encoder_wires.png")


def test_inside_the_encoder_its_wires_show_the_gradient_of_its_first_call(
        app: Studio, folder: Path) -> None:
    """A function's body is drawn as at its first call (shapes, counts, and gradient colours),
    as the inspector's shapes inside it are."""
    app.click(app.node_title("enc_left"))
    app.wait(lambda s: s["selection"] == ["enc_left"] and s, "enc_left selected")
    app.menu("Edit>Open function")
    s = app.wait(lambda s: s["region"] == ["@", "encoder"] and "fc1" in s["layout"]["nodes"]
                 and s["run"]["colored_links"] >= 4 and s, "the encoder's wires coloured")
    assert {"x.y -> fc1.x", "fc1.y -> act.x", "act.y -> fc2.x", "fc2.y -> y.x"} \
        <= set(s["run"]["colored_edges"]), s["run"]["colored_edges"]
    app.shot(folder / "encoder_body.png")
    app.key("Escape")
    app.wait(lambda s: s["region"] == [] and s, "Esc back to the main graph")
