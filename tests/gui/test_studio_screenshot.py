"""`dprog --screenshot PATH [--train] GRAPH`: render the studio, save a PNG, exit.

The README picture is made this way; here a short run checks that the mode works, that
the picture is the studio (palette, canvas, nodes) and, with --train, that it is taken
mid-training with the wires in gradient colours and the plots drawn.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness import VirtualScreen, color_fraction, distinct_colors
from PIL import Image
from studio_driver import REPO, SAMPLES

pytestmark = pytest.mark.gui

GRID_BG = (28, 29, 33)          # app/views/theme.py GRID_BG
LINEAR_TITLE = (58, 88, 150)    # the Layers category's title bar
GRADIENT_COLORS = ((70, 84, 130), (64, 116, 178), (58, 150, 200), (70, 182, 180),
                   (120, 200, 120), (210, 200, 80), (240, 150, 60), (250, 90, 70))


def shoot(screen: VirtualScreen, tmp_path: Path, graph: Path, *extra: str) -> Image.Image:
    out = tmp_path / "studio.png"
    env = screen.env({"DPROG_STATE_DIR": str(tmp_path / "state")})
    done = subprocess.run([sys.executable, "-m", "app", str(graph), "--screenshot", str(out),
                           "--frames", "5", *extra], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    img = Image.open(out)
    assert img.format == "PNG" and img.size == (1600, 1000)
    return img.convert("RGB")


def test_screenshot_mid_training(screen: VirtualScreen, tmp_path: Path) -> None:
    doc = json.loads((SAMPLES / "moons_mlp.json").read_text())
    doc["training"]["epochs"] = 6       # a short run: the capture still lands mid-way
    graph = tmp_path / "moons_short.json"
    graph.write_text(json.dumps(doc))
    img = shoot(screen, tmp_path, graph, "--train")
    canvas = (260, 80, 1580, 560)
    assert color_fraction(img, GRID_BG, canvas, tolerance=3) > 0.4, "no node editor"
    assert color_fraction(img, LINEAR_TITLE, canvas, tolerance=6) > 0.002, "no Linear nodes"
    assert distinct_colors(img, (0, 60, 210, 900)) > 20, "no palette"
    found = sum(color_fraction(img, c, canvas, tolerance=6) for c in GRADIENT_COLORS)
    assert found > 0.0005, "no wire in a gradient colour"
    loss_plot = (260, 680, 510, 930)
    assert distinct_colors(img, loss_plot) > 30, "the loss plot is empty"


def test_the_studio_imports_without_torch() -> None:
    """The first frame must not wait for torch: nothing in app/ imports it at import time."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import app.studio, app.training, engine.runtime.export, app.views.run_panel\n"
            "assert not [m for m, mod in sys.modules.items() if mod is not None and "
            "m.startswith(('torch', 'engine.runtime.trainer', 'engine.runtime.compiler'))]")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
