"""The real studio and its recovery file: a damaged one never stops the window from opening
(it is set aside, kept and reported), and SIGTERM keeps the unsaved changes for the next
start, like a crash the studio sees coming."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
from harness import VirtualScreen, request_close
from studio_driver import SAMPLES, Studio, center, studio

from engine.core.fileformat import dumps, load_graph

pytestmark = pytest.mark.gui


def damaged(kind: str, graph: Path) -> str:
    good = {"format": "dprog-recovery", "version": 1, "file": None, "file_stamp": None,
            "saved_at": 1_700_000_000.0, "graph": dumps(load_graph(graph))}
    if kind == "huge_saved_at":
        return json.dumps({**good, "saved_at": 1e300})
    if kind == "nul_in_file":
        return json.dumps({**good, "file": "/tmp/a\0b.json"})
    return "[" * 100_000 + "]" * 100_000


def close(app: Studio, screen: VirtualScreen) -> int:
    request_close(screen.display, app.app.window_id)
    return app.app.proc.wait(timeout=30)


def test_a_damaged_recovery_file_never_stops_the_studio(screen: VirtualScreen,
                                                         tmp_path: Path) -> None:
    graph = tmp_path / "moons_mlp.json"
    shutil.copy(SAMPLES / "moons_mlp.json", graph)
    state = tmp_path / "state"
    state.mkdir()
    for n, kind in enumerate(("huge_saved_at", "nul_in_file", "nested")):
        text = damaged(kind, graph)
        (state / "recovery.json").write_text(text)
        with studio(screen, tmp_path, graph) as app:
            s = app.wait(lambda s: "kept as recovery.damaged-" in s["status"] and s, f"the report ({kind})")
            assert "recovery" not in s["dialogs"] and s["graph"]["nodes"]
            assert close(app, screen) == 0
        kept = sorted(state.glob("recovery.damaged-*.json"))
        assert len(kept) == n + 1 and text.encode() in {k.read_bytes() for k in kept}
        assert not (state / "recovery.json").exists()
    with studio(screen, tmp_path, graph) as app:   # and the next start is clean
        s = app.wait_frames(5)
        assert "recovery.damaged" not in s["status"] and not s["dialogs"]
        assert close(app, screen) == 0


def test_sigterm_keeps_the_unsaved_changes_for_the_next_start(screen: VirtualScreen,
                                                               tmp_path: Path) -> None:
    graph = tmp_path / "residual_mlp.json"
    shutil.copy(SAMPLES / "residual_mlp.json", graph)
    recovery = tmp_path / "state" / "recovery.json"
    with studio(screen, tmp_path, graph) as app:
        before = set(app.nodes())
        x0, y0, _, _ = app.canvas()
        app.drag(app.palette_button("relu"), (x0 + 400, y0 + 330))
        s = app.wait(lambda s: set(app.nodes(s)) - before and s["dirty"] and s, "the new ReLU")
        relu = next(iter(set(app.nodes(s)) - before))
        app.app.proc.send_signal(signal.SIGTERM)   # at once: before any timed autosave
        assert app.app.proc.wait(timeout=30) == 128 + signal.SIGTERM
    saved = json.loads(json.loads(recovery.read_text())["graph"])
    assert relu in {n["id"] for n in saved["nodes"]}
    with studio(screen, tmp_path, graph) as app:
        app.wait(lambda s: "recovery" in s["dialogs"] and s, "the offer to recover")
        r = app.wait(lambda s: s["layout"]["dialog_buttons"].get("restore"), "Restore")
        app.click(center(r))
        app.wait(lambda s: relu in app.nodes(s) and s["dirty"] and s, "the restored edit")
