"""Drive the real dprog studio in tests: start it on a VirtualScreen, read its test-hook state.

The studio writes a JSON snapshot of its `AppState` (graph document, selection, region,
dirty, status, run status) and of its screen geometry (palette buttons, nodes and pins,
canvas, inspector widgets, plots) to `$DPROG_TEST_STATE` whenever something changes.
`Studio` polls that file; every wait has a timeout and quotes the app's stderr on failure.

Frames are slow under Xvfb's software GL (0.1-0.4 s for the full studio on a loaded
2-core machine), so input steps wait longer than the probe's and every check polls.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import AppProcess, HarnessError, Region, VirtualScreen

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_graphs"
State = dict[str, Any]
# Every wait is for a condition; this is only its ceiling, for when something is wrong.
# Generous, because two test workers, each with a studio and a trainer, on 2 cores of
# software GL can drop the studio to one or two frames a second.
WAIT = 60.0
Point = tuple[float, float]


def center(r: list[float]) -> tuple[float, float]:
    """The middle of a rect (x0, y0, x1, y1), where a click lands."""
    return (r[0] + r[2]) / 2, (r[1] + r[3]) / 2


class Studio:
    def __init__(self, app: AppProcess, screen: VirtualScreen, state_path: Path) -> None:
        self.app, self.screen, self.state_path = app, screen, state_path

    # -- state -----------------------------------------------------------------------------------

    def state(self) -> State:
        return json.loads(self.state_path.read_text())

    def wait(self, predicate: Callable[[State], Any], what: str, timeout: float = WAIT) -> Any:
        def check() -> Any:
            try:
                return predicate(self.state())
            except (FileNotFoundError, json.JSONDecodeError, KeyError, IndexError, TypeError):
                return None

        return self.app.wait_until(check, timeout=timeout, what=what)

    def wait_frames(self, n: int = 3, timeout: float = WAIT) -> State:
        start = self.state()["frame"]
        return self.wait(lambda s: s["frame"] >= start + n and s, f"{n} more frames", timeout)

    def nodes(self, s: State | None = None) -> dict[str, dict]:
        return {n["id"]: n for n in (s or self.state())["graph"]["nodes"]}

    def edges(self, s: State | None = None) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        return [(tuple(e["from"]), tuple(e["to"])) for e in (s or self.state())["graph"]["edges"]]

    # -- geometry (screen pixels; the viewport is at 0, 0) -------------------------------------------
    # Rects come from the last rendered frame, so after an edit the geometry is a frame
    # behind the graph: each getter first waits for two more frames.

    def layout(self) -> dict:
        return self.state()["layout"]

    def palette_button(self, block: str) -> Point:
        self.wait_frames(2)
        r = self.wait(lambda s: s["layout"]["palette"].get(block), f"palette button {block}")
        return (r[0] + r[2]) / 2, (r[1] + r[3]) / 2

    def node_title(self, node_id: str) -> Point:
        self.wait_frames(2)
        n = self.wait(lambda s: s["layout"]["nodes"].get(node_id), f"node {node_id} on screen")
        return n["title"][0] + 4, n["title"][1]

    def pin(self, node_id: str, io: str, port: str) -> Point:
        self.wait_frames(2)
        n = self.wait(lambda s: s["layout"]["nodes"][node_id]["pins"].get(f"{io}:{port}"),
                      f"pin {node_id}.{port}")
        return n[0], n[1]

    def canvas(self) -> Region:
        self.wait_frames(2)
        x0, y0, x1, y1 = self.layout()["canvas"]
        return int(x0), int(y0), int(x1), int(y1)

    def widget(self, name: str) -> Point:
        self.wait_frames(2)
        r = self.wait(lambda s: s["layout"]["inspector"].get(name), f"inspector widget {name}")
        return (r[0] + r[2]) / 2, (r[1] + r[3]) / 2

    # -- input -----------------------------------------------------------------------------------

    def sync(self) -> None:
        """The harness's input sync: return once the studio rendered two more frames."""
        self.wait_frames(2)

    def drag(self, start: Point, end: Point, steps: int = 5) -> None:
        """Five steps: each is its own frame (the drag threshold is 6 px), and fewer steps
        keep tests quick when frames are slow."""
        self.screen.drag(start, end, steps=steps)

    def click(self, point: Point) -> None:
        self.screen.click(*point)

    def key(self, *chords: str) -> None:
        self.screen.key(*chords)

    def key_to_quit(self, chord: str) -> None:
        """Press a chord that ends the studio. No frame sync follows: on a fast machine the
        process is gone before a sync could see its next frame."""
        sync, self.screen.sync = self.screen.sync, None
        try:
            self.screen.key(chord)
        finally:
            self.screen.sync = sync

    def menu(self, path: str) -> None:
        """Choose a menu item as a person does: "File>Open sample>moons_mlp" clicks File,
        rests on Open sample until its submenu opens, then clicks moons_mlp."""
        parts = path.split(">")
        for depth in range(1, len(parts) + 1):
            here = ">".join(parts[:depth])
            r = self.wait(lambda s, here=here: s["layout"]["menus"].get(here), f"menu {here}")
            if 1 < depth < len(parts):
                self.screen.move(*center(r))   # a submenu opens on hover
            else:
                self.click(center(r))

    def type_text(self, text: str) -> None:
        self.screen.type_text(text)

    def shot(self, path: Path | None = None):
        self.wait_frames(2)
        return self.screen.screenshot(path)


@contextmanager
def studio(screen: VirtualScreen, tmp_path: Path, graph: Path | None = None,
           *extra: str) -> Iterator[Studio]:
    """The studio on `graph` (copied into tmp_path first, so saves never touch the repo)."""
    state_path = tmp_path / "studio_state.json"
    args = [sys.executable, "-m", "app"]
    if graph is not None:
        local = tmp_path / graph.name
        if not local.exists():
            shutil.copy(graph, local)
        args.append(str(local))
    args += list(extra)
    env = {"DPROG_TEST_STATE": str(state_path), "DPROG_STATE_DIR": str(tmp_path / "state"),
           "PYTHONUNBUFFERED": "1"}
    with AppProcess(args, screen, cwd=REPO, env=env) as app:
        app.wait_for_window(timeout=60)
        s = Studio(app, screen, state_path)
        s.wait(lambda st: st["frame"] >= 3 and st["layout"]["palette"], "the studio's first frames",
               timeout=60)
        screen.sync = s.sync
        try:
            yield s
        finally:
            screen.sync = None
            if app.alive():
                screen.screenshot(tmp_path / "last_screen.png")
            if "Traceback" in app.stderr:
                raise HarnessError("the studio logged a traceback" + app.describe())


__all__ = ["SAMPLES", "Studio", "studio"]
