"""The training views in the real studio when there is little data, and when another graph
opens (issue 16): the Gradient flow charts before any sample and with one, their row labels
on a deep graph, and a finished or running run cleared when the document changes.

One studio runs for the module, on a 15-layer MLP whose run takes exactly one gradient
sample; the tests build on each other in file order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import VirtualScreen, color_fraction, region_differs
from studio_driver import Studio, center, studio

from engine.core.fileformat import save_graph
from engine.core.graph import Edge, Graph, Node

pytestmark = pytest.mark.gui

LAYERS = 15
PLASMA_TOP = (240, 249, 33)   # the heat colormap's hottest colour


def deep_mlp() -> Graph:
    """Input → (Linear 8 → Tanh) × 14 → Linear 2 → Output; 10 steps, one gradient sample."""
    nodes = [Node("x", "input", {"shape": [2]}, pos=(0.0, 0.0))]
    edges = []
    for i in range(1, LAYERS + 1):
        last = i == LAYERS
        nodes.append(Node(f"fc{i}", "linear", {"out_features": 2 if last else 8},
                          pos=(200.0 * i, 0.0)))
        edges.append(Edge((nodes[-2].id, "y"), (f"fc{i}", "x")))
        if not last:
            nodes.append(Node(f"act{i}", "tanh", {}, pos=(200.0 * i + 100, 120.0)))
            edges.append(Edge((f"fc{i}", "y"), (f"act{i}", "x")))
    nodes.append(Node("logits", "output", {}, pos=(200.0 * LAYERS + 200, 0.0)))
    edges.append(Edge((f"fc{LAYERS}", "y"), ("logits", "x")))
    training = {"dataset": {"name": "moons", "n_samples": 200}, "epochs": 2,
                "batch_size": 32, "gradflow_every": 10}
    return Graph(tuple(nodes), tuple(edges), name="deep_mlp", training=training)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run_views")
    save_graph(deep_mlp(), folder / "deep_mlp.json")
    return folder


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    with studio(screen, folder, folder / "deep_mlp.json") as s:
        yield s


def box(r: list[float]) -> tuple[int, int, int, int]:
    return tuple(int(v) for v in r)  # type: ignore[return-value]


def charts(app: Studio, predicate, what: str) -> dict:
    return app.wait(lambda s: predicate(s["gradient_charts"]) and s, what)


def test_gradient_charts_before_any_sample(app: Studio, folder: Path) -> None:
    """Bug 7: with no sample the heatmap was one solid yellow block and the history's log
    axis read 1e-78 / 1e-156."""
    app.click(center(app.layout()["tabs"]["gradients"]))
    app.click(app.node_title("fc1"))
    s = charts(app, lambda g: "no gradient samples" in g["history_title"], "fc1's empty history")
    g = s["gradient_charts"]
    assert not g["heat_shown"] and "needs 2 samples" in g["heat_title"]
    assert "press Train" in g["bars_title"]
    lo, hi = g["history_limits"]
    assert 1e-12 <= lo < hi <= 1e3, g["history_limits"]
    shot = app.shot(folder / "charts_empty.png")
    heat = next(r for r in s["layout"]["chart_rects"] if r[4] == "heat")
    assert color_fraction(shot, PLASMA_TOP, box(heat[:4]), tolerance=30) < 0.02


def test_gradient_charts_with_one_sample_and_many_blocks(app: Studio, folder: Path) -> None:
    """Bug 7: one sample is no time series, and 15 rows must not print 15 labels on top of
    each other."""
    app.click(center(app.layout()["train_button"]))
    s = app.wait(lambda s: s["run"]["status"] == "finished" and s, "the run to finish",
                 timeout=180)
    assert s["run"]["grad_snapshots"] == 1, s["run"]
    s = charts(app, lambda g: g["rows"]["bars"]["labels"], "the bars' row labels")
    g = s["gradient_charts"]
    assert not g["heat_shown"], "a heatmap of one sample is one flat colour"
    lo, hi = g["history_limits"]
    assert 1e-12 <= lo < hi <= 1e3 and hi / lo >= 99, g["history_limits"]   # float32
    bars = g["rows"]["bars"]
    assert 2 <= len(bars["labels"]) <= LAYERS and bars["labels"][0] == "fc1"
    assert bars["min_gap_px"] >= bars["line_px"], bars
    app.shot(folder / "charts_one_sample.png")


def test_another_graph_clears_the_finished_run(app: Studio, folder: Path) -> None:
    """Bug 3: after opening another graph its progress, plots, legend and gradient charts
    still showed the previous graph's run."""
    s = app.wait(lambda s: s["progress_text"].startswith("step 10/10") and s, "the progress")
    assert s["gradient_legend"] and s["run"]["colored_links"]
    loss = box(s["layout"]["plots"]["loss"])
    trained = app.shot()
    app.menu("File>Open sample>moons_mlp")
    s = app.wait(lambda s: "moons_mlp" in s["title"] and s["run"]["status"] == "idle" and s,
                 "the sample, with no run")
    s = app.wait(lambda s: s["progress_text"] == "not trained yet"
                 and not s["gradient_legend"] and not s["gradient_charts"]["rows"]["bars"]["labels"]
                 and s, "the run's views to clear")
    assert "press Train" in s["gradient_charts"]["bars_title"]
    assert "run:" not in s["status"]
    cleared = app.shot(folder / "another_graph.png")
    assert region_differs(trained, cleared, loss, min_fraction=0.01), "the loss plot kept the run"


def test_another_graph_stops_a_running_run(app: Studio, folder: Path) -> None:
    app.click(center(app.layout()["train_button"]))
    app.wait(lambda s: s["run"]["status"] == "running" and s["run"]["step"] >= 1 and s,
             "moons_mlp to train", timeout=120)
    app.menu("File>Open sample>gated_branch")
    s = app.wait(lambda s: "gated_branch" in s["title"] and s["run"]["status"] == "idle"
                 and s["progress_text"] == "not trained yet" and s,
                 "the run to stop and clear", timeout=60)
    assert s["run"]["step"] == 0 and not s["internal_errors"]
