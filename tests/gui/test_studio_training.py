"""Press Train in the real studio and watch it learn: plots move, wires take gradient colours;
pause, resume, stop, then export model.py, weights.pt and train.py and use them, and export
an ONNX model checked in onnxruntime.

The studio opens a copy of sample_graphs/moons_mlp.json (two moons, a 2-16-16-2 MLP);
a click on the Train button starts the trainer on its worker thread. Checked on the app's
state (run status, metric points, gradient snapshots, coloured wires) and on screenshots
(the loss plot changes between two moments of training; wires show the gradient palette).
The tests share one studio and run in file order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import VirtualScreen, color_fraction, region_differs
from studio_driver import SAMPLES, Studio, center, studio

pytestmark = pytest.mark.gui

# The eight gradient colours (app/views/theme.py LINK_BUCKETS): at least one must show up.
GRADIENT_COLORS = ((70, 84, 130), (64, 116, 178), (58, 150, 200), (70, 182, 180),
                   (120, 200, 120), (210, 200, 80), (240, 150, 60), (250, 90, 70))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("training")


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    # The sample with many more epochs, so the run is still going when the tests pause it.
    doc = json.loads((SAMPLES / "moons_mlp.json").read_text())
    doc["training"]["epochs"] = 2000
    (folder / "moons_mlp.json").write_text(json.dumps(doc))
    with studio(screen, folder, folder / "moons_mlp.json") as s:
        yield s


def press(app: Studio, button: str) -> None:
    app.click(center(app.layout()[button]))


def test_press_train_and_see_the_plots_move(app: Studio) -> None:
    layout = app.layout()
    loss_plot = tuple(int(v) for v in layout["plots"]["loss"])
    idle = app.shot()
    press(app, "train_button")
    s = app.wait(lambda s: s["run"]["status"] in ("running", "finished") and s["run"]["metric_points"] >= 30
                 and s, "training to produce points", timeout=120)
    assert s["run"]["status"] != "failed", s["run"]["message"]
    # A redraw starts (plot_updates counts starts) and then takes one series per frame, the
    # loss last. The one that started after those points is whole once the next one starts;
    # an earlier one may have drawn the run's empty start (a loaded machine is slow to begin).
    started = s["run"]["plot_updates"]
    app.wait(lambda s: s["run"]["plot_updates"] >= started + 2 and s, "a whole redraw", timeout=120)
    first = app.shot()
    points, updates = s["run"]["metric_points"], app.state()["run"]["plot_updates"]
    # The plots redraw at their own rate, one series per frame: wait for new points and
    # for a whole redraw after the first shot (a second one has started once it is done).
    s = app.wait(lambda s: s["run"]["metric_points"] >= points + 40
                 and s["run"]["plot_updates"] > updates + 1 and s, "more training", timeout=120)
    second = app.shot()
    assert region_differs(idle, first, loss_plot, min_fraction=0.01), "the loss plot never drew"
    assert region_differs(first, second, loss_plot, min_fraction=0.002), "the loss plot froze"


def test_gradient_flow_colours_the_wires(app: Studio) -> None:
    s = app.wait(lambda s: s["run"]["grad_snapshots"] >= 2 and s["run"]["colored_links"] >= 6
                 and s, "gradient colours on every wire", timeout=120)
    assert s["run"]["recolors"] >= 1
    shot = app.shot()
    canvas = app.canvas()
    found = sum(color_fraction(shot, c, canvas, tolerance=6) for c in GRADIENT_COLORS)
    assert found > 0.0005, "no wire is drawn in a gradient colour"


def test_pause_resume_and_stop(app: Studio) -> None:
    assert app.state()["run"]["status"] == "running"
    press(app, "pause_button")
    s = app.wait(lambda s: s["run"]["status"] == "paused" and s, "the run to pause")
    step = s["run"]["step"]
    app.wait_frames(6)
    assert app.state()["run"]["step"] == step, "a paused run kept training"
    press(app, "pause_button")          # the same button now reads Resume
    app.wait(lambda s: s["run"]["status"] == "running" and s["run"]["step"] > step and s,
             "the run to resume")
    press(app, "stop_button")
    s = app.wait(lambda s: s["run"]["status"] == "stopped" and s, "the run to stop")
    assert "stopped at step" in s["status"]


LOAD = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from model import MoonsMlp
model = MoonsMlp()
model.load_state_dict(torch.load(sys.argv[2], weights_only=True))
print(tuple(model(torch.zeros(4, 2)).shape))
"""


def test_export_after_training(app: Studio, folder: Path) -> None:
    """Export › All to a folder (Ctrl+E): the weights of the stopped run load into the
    exported class, and the exported train.py runs on its own."""
    out = folder / "export"
    app.key("ctrl+e")
    app.wait(lambda s: "path" in s["dialogs"] and s, "the folder prompt")
    app.key("ctrl+a")
    app.type_text(str(out))
    app.key("Return")
    s = app.wait(lambda s: s["status"].startswith("exported") and s, "the export", timeout=60)
    assert s["status_level"] == "info", s["status"]
    assert sorted(p.name for p in out.iterdir()) == ["data.pt", "model.py", "train.py",
                                                     "weights.pt"]
    done = subprocess.run([sys.executable, "-c", LOAD, str(out), str(out / "weights.pt")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "(4, 2)", done.stderr
    # The graph here trains for 2000 epochs; one will do. Run from another folder: the
    # script finds model.py and data.pt beside itself.
    ran = subprocess.run([sys.executable, str(out / "train.py"), "--epochs", "1"], cwd=folder,
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    first = json.loads(ran.stdout.splitlines()[0])
    assert first["epoch"] == 1 and 0 <= first["val_accuracy"] <= 1, ran.stdout
    assert (out / "retrained.pt").exists() and "wrote" in ran.stderr


def test_export_onnx_from_the_menu(app: Studio, folder: Path) -> None:
    """Export › ONNX model (Ctrl+Shift+E): the trained weights, checked in onnxruntime
    before the file is kept, the check's numbers in the status bar; the file runs."""
    pytest.importorskip("onnxruntime")
    out = folder / "moons.onnx"
    app.key("ctrl+shift+e")
    app.wait(lambda s: "path" in s["dialogs"] and s, "the file prompt")
    app.key("ctrl+a")
    app.type_text(str(out))
    app.key("Return")
    s = app.wait(lambda s: s["status"].startswith(("wrote", "not exported", "export failed"))
                 and s, "the export", timeout=120)
    assert s["status_level"] == "info" and "onnxruntime" in s["status"], s["status"]
    assert "largest difference" in s["status"] and "trained weights" in s["status"]
    app.shot(folder / "onnx_export.png")   # the status bar with the check's numbers
    ran = subprocess.run([sys.executable, "-c", ORT, str(out)], capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0 and ran.stdout.strip() == "[(5, 2)]", ran.stderr


ORT = """
import sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
feed = {session.get_inputs()[0].name: np.zeros((5, 2), np.float32)}
print([out.shape for out in session.run(None, feed)])
"""


def test_train_two_inputs_fed_by_id(app: Studio, folder: Path) -> None:
    """The pairs_mlp sample (issue 12): the data shows each pair's two images side by side,
    and a run feeds the Inputs left and right their arrays by id; both branches' wires take
    gradient colours."""
    app.menu("File>Open sample>pairs_mlp")
    s = app.wait(lambda s: s["data_preview"]["kind"] == "images"
                 and "left | right" in s["data_preview"]["label"] and s, "the pairs preview",
                 timeout=90)
    app.wait_frames(6)
    app.shot(folder / "data_pairs.png")
    press(app, "train_button")
    s = app.wait(lambda s: (s["run"]["status"] in ("finished", "failed") or (
        s["run"]["grad_snapshots"] >= 2 and s["run"]["colored_links"] >= 10
        and s["run"]["metric_points"] >= 20)) and s, "the pairs run to colour its wires",
        timeout=240)
    assert s["run"]["status"] != "failed", s["run"]["message"]
    assert s["run"]["colored_links"] >= 10, s["run"]   # every wire, both branches included
    app.wait_frames(6)
    app.shot(folder / "train_pairs.png")
    press(app, "stop_button")
    app.wait(lambda s: s["run"]["status"] in ("stopped", "finished") and s, "the run to end")
