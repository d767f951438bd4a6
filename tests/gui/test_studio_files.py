"""Files in the real studio: unsaved changes are never lost without asking (New, closing the
window), Save As takes a typed path, and after a crash the autosave is offered back."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from harness import VirtualScreen, request_close
from studio_driver import SAMPLES, Studio, center, studio

pytestmark = pytest.mark.gui


def press(app: Studio, button: str) -> None:
    r = app.wait(lambda s: s["layout"]["dialog_buttons"].get(button), f"the {button} button")
    app.click(center(r))


def add_relu(app: Studio) -> str:
    before = set(app.nodes())
    x0, y0, _, _ = app.canvas()
    app.drag(app.palette_button("relu"), (x0 + 400, y0 + 330))
    s = app.wait(lambda s: set(app.nodes(s)) - before and s, "the new ReLU")
    return next(iter(set(app.nodes(s)) - before))


def test_save_as_then_new_asks_before_dropping_changes(screen: VirtualScreen,
                                                       tmp_path: Path) -> None:
    with studio(screen, tmp_path, SAMPLES / "gated_branch.json") as app:
        first = add_relu(app)
        app.key("ctrl+shift+s")
        app.wait(lambda s: "path" in s["dialogs"] and s, "the Save As prompt")
        target = tmp_path / "copy" / "mine.json"
        target.parent.mkdir()
        app.key("ctrl+a")
        app.type_text(str(target))
        app.key("Return")
        s = app.wait(lambda s: not s["dirty"] and s["file"] == str(target) and s, "the save")
        assert not s["dialogs"] and s["title"] == "dprog — mine.json"
        saved = json.loads(target.read_text())
        assert first in {n["id"] for n in saved["nodes"]} and saved == s["graph"]

        second = add_relu(app)
        app.wait(lambda s: s["dirty"] and s["title"].endswith("•") and s, "unsaved again")
        app.key("ctrl+n")
        app.wait(lambda s: "confirm" in s["dialogs"] and s, "the unsaved-changes question")
        press(app, "cancel")
        s = app.wait(lambda s: not s["dialogs"] and s, "the question to close")
        assert second in app.nodes(s) and s["dirty"], "Cancel keeps everything"
        app.key("ctrl+n")
        app.wait(lambda s: "confirm" in s["dialogs"] and s, "the question again")
        press(app, "discard")
        s = app.wait(lambda s: not s["graph"]["nodes"] and s, "an empty new graph")
        assert not s["dirty"] and "untitled" in s["title"]
        # The file on disk never saw the discarded edit.
        assert second not in {n["id"] for n in json.loads(target.read_text())["nodes"]}

        # Closing the window with unsaved changes asks too.
        add_relu(app)
        request_close(screen.display, app.app.window_id)
        app.wait(lambda s: "confirm" in s["dialogs"] and s, "the question on close")
        press(app, "cancel")
        app.wait(lambda s: not s["dialogs"] and s["dirty"] and s, "Cancel keeps the window")
        request_close(screen.display, app.app.window_id)
        app.wait(lambda s: "confirm" in s["dialogs"] and s, "the question on close again")
        press(app, "discard")
        assert app.app.proc.wait(timeout=60) == 0


def test_recovery_after_a_crash(screen: VirtualScreen, tmp_path: Path) -> None:
    graph = tmp_path / "residual_mlp.json"
    shutil.copy(SAMPLES / "residual_mlp.json", graph)
    recovery = tmp_path / "state" / "recovery.json"
    with studio(screen, tmp_path, graph) as app:
        relu = add_relu(app)
        # The studio autosaves a few seconds after an unsaved change...
        app.wait(lambda s: recovery.exists() and s, "the autosave", timeout=60)
        # ...and then dies without a chance to clean up.
        os.killpg(app.app.proc.pid, signal.SIGKILL)
        app.app.proc.wait(timeout=10)
    assert recovery.exists()
    with studio(screen, tmp_path, graph) as app:
        app.wait(lambda s: "recovery" in s["dialogs"] and s, "the offer to recover")
        press(app, "restore")
        s = app.wait(lambda s: relu in app.nodes(s) and s, "the restored edit")
        assert s["dirty"] and s["file"] == str(graph)
        app.key("ctrl+s")
        app.wait(lambda s: not s["dirty"] and s, "the save")
        assert not recovery.exists(), "a save clears the autosave"
