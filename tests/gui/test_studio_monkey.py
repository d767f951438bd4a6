"""The monkey at the real studio window: random commands, one per frame, every view redrawn,
invariants checked after each step (tests/gui/studio_monkey.py does the work; the actions
and data checks are tests/monkey.py's, shared with the headless monkey).

CI runs 300 steps with a fixed seed (well under a minute on an idle machine, about two on a
loaded 2-core one). For a long run:
    DPROG_GUI_MONKEY_STEPS=5000 DPROG_GUI_MONKEY_SEED=7 pytest tests/gui/test_studio_monkey.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from harness import AppProcess, VirtualScreen, distinct_colors
from PIL import Image
from studio_driver import REPO, SAMPLES

pytestmark = pytest.mark.gui

STEPS = int(os.environ.get("DPROG_GUI_MONKEY_STEPS", "300"))
SEED = int(os.environ.get("DPROG_GUI_MONKEY_SEED", "0"))
DRIVER = Path(__file__).with_name("studio_monkey.py")


def test_monkey_in_the_real_window(tmp_path: Path) -> None:
    argv = [sys.executable, str(DRIVER), "--steps", str(STEPS), "--seed", str(SEED),
            "--work", str(tmp_path), "--graph", str(SAMPLES / "adaptive_depth.json")]
    with VirtualScreen() as screen, AppProcess(argv, screen, cwd=REPO) as app:
        app.wait_for_window(timeout=60)
        # Frames take 0.1-0.4 s on a loaded machine; allow a second a step, and the start.
        try:
            code = app.proc.wait(timeout=90 + STEPS)
        except Exception:
            pytest.fail(f"the monkey did not finish {STEPS} steps in time" + app.describe())
    results = json.loads((tmp_path / "monkey_results.json").read_text())
    failure = results["failure"]
    assert failure is None, (f"seed {SEED}, step {failure['step']}, action {failure['action']}:"
                             f"\n{failure['traceback']}")
    assert code == 0 and "Traceback" not in app.stderr, app.describe()
    assert results["steps"] == STEPS and results["history_ok"]
    assert results["frames"] >= STEPS
    # The run went through the interesting paths, in the state and in the window.
    done = {key.split(":")[0] for key, n in results["counts"].items() if key.endswith(":True")}
    assert {"add", "connect", "param", "delete", "undo", "redo", "copy_paste"} <= done
    assert {"link", "drag_node", "delink"} <= set(results["studio_counts"])
    # The last frame, as Dear PyGui rendered it: the whole studio, not a blank window.
    shot = Image.open(results["screenshot"]).convert("RGB")
    assert shot.size == (1600, 1000)
    assert distinct_colors(shot) > 50
    palette = (0, 60, 200, 900)
    assert distinct_colors(shot, palette) > 4, "the palette is not drawn"
    print(f"GUI monkey: {results['steps']} steps, seed {SEED}, {results['seconds']} s")
