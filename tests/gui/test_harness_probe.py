"""Prove, on a real X display, every Dear PyGui interaction the studio relies on.

Each test starts tests/gui/dpg_probe.py (a tiny DPG app, not the product) on a private
Xvfb, drives it with xdotool through tests/gui/harness.py, and asserts on the JSON state
the probe writes and on screenshots. If one of these fails, the studio's real-window
tests cannot work either; the recipes are written up in docs/dev/dearpygui_notes.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import (
    AppProcess,
    HarnessError,
    Region,
    VirtualScreen,
    color_fraction,
    diff_fraction,
    distinct_colors,
    region_differs,
    require_tools,
)
from PIL import Image

pytestmark = pytest.mark.gui

PROBE = Path(__file__).with_name("dpg_probe.py")
PADDING = 8  # imnodes NodePadding: a node's corner is this far outside its rect_min
GRID_BG = (35, 35, 35)  # default node-editor grid background
MINIMAP_BG = (46, 46, 46)  # minimap background blended over the grid
MINIMAP_NODE = (107, 107, 107)  # a node drawn in the minimap


State = dict[str, Any]
Point = tuple[float, float]


class ProbeApp:
    """The probe as seen by a test: its process, its JSON state, and item geometry."""

    def __init__(self, app: AppProcess, screen: VirtualScreen, state_path: Path) -> None:
        self.app, self.screen, self.state_path = app, screen, state_path

    def state(self) -> State:
        # The probe replaces the file atomically, so a read never sees half a write.
        return json.loads(self.state_path.read_text())

    def wait(self, predicate: Any, what: str, timeout: float = 30.0) -> Any:
        """Poll the probe's state until ``predicate(state)`` is truthy; return its value."""

        def check() -> Any:
            try:
                return predicate(self.state())
            except FileNotFoundError:
                return None

        return self.app.wait_until(check, timeout=timeout, what=what)

    def wait_frames(self, n: int = 2) -> State:
        """Wait until the probe has rendered ``n`` more frames.

        Two frames after an input event, ImGui has read it at the start of a frame
        that began after the event arrived. Used as ``VirtualScreen.sync``.
        """
        start = self.state()["frame"]
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            state = self.state()
            if state["frame"] >= start + n:
                return state
            time.sleep(0.004)
        self.app.assert_alive()
        raise HarnessError(f"the probe rendered no {n} frames in 5 s" + self.app.describe())

    def events(self, kind: str, state: State | None = None) -> list[dict]:
        return [e for e in (state or self.state())["events"] if e["kind"] == kind]

    def wait_event(
        self, kind: str, after: int, what: str | None = None, timeout: float = 30.0
    ) -> dict:
        """The first ``kind`` event beyond the ``after`` already seen."""
        return self.wait(
            lambda s: (found := self.events(kind, s))[after:] and found[after],
            what or f"a {kind} event",
            timeout,
        )

    # -- geometry, all in screen pixels (the viewport sits at 0, 0) ---------------------

    def center(self, item: str) -> Point:
        r = self.state()["items"][item]
        return (
            (r["rect_min"][0] + r["rect_max"][0]) / 2,
            (r["rect_min"][1] + r["rect_max"][1]) / 2,
        )

    def pin(self, node: str, attr: str) -> Point:
        """Where imnodes draws a pin: on the node's outer edge, at its row's centre."""
        n = self.state()["nodes"][node]
        row = n["attrs"][attr]
        y = (row["rect_min"][1] + row["rect_max"][1]) / 2
        output = attr.endswith("_out")
        x = n["rect_max"][0] + PADDING if output else n["rect_min"][0] - PADDING
        return x, y

    def title(self, node: str) -> Point:
        """A point on the node's title bar (its rect_min is the title text's corner)."""
        n = self.state()["nodes"][node]
        return n["rect_min"][0] + 10, n["rect_min"][1] + 5

    def editor_region(self) -> Region:
        s = self.state()
        x0, y0 = s["editor_origin"]
        w, h = s["items"]["editor"]["rect_size"]
        return int(x0), int(y0), int(x0 + w), int(y0 + h)


@pytest.fixture
def probe(screen: VirtualScreen, tmp_path: Path) -> Iterator[ProbeApp]:
    state_path = tmp_path / "probe_state.json"
    with AppProcess([sys.executable, str(PROBE), str(state_path)], screen) as app:
        app.wait_for_window("dpg-probe")
        probe = ProbeApp(app, screen, state_path)
        probe.wait(lambda s: s["frame"] >= 3, "the probe's first frames")
        screen.sync = probe.wait_frames  # input steps wait for frames, not wall time
        try:
            yield probe
        finally:
            screen.sync = None
            # Post-mortem material next to the test's tmp files.
            screen.screenshot(tmp_path / "last_screen.png")
        assert app.alive(), "the probe died" + app.describe()
        assert "Traceback" not in app.stderr, app.describe()


# -- the harness itself ------------------------------------------------------------------


def test_missing_tools_fail_loudly() -> None:
    with pytest.raises(HarnessError, match="apt-get install -y no-such-pkg"):
        require_tools({"no-such-tool-for-dprog": "no-such-pkg"})


def test_virtual_screen_starts_captures_and_stops() -> None:
    with VirtualScreen(width=640, height=480) as screen:
        proc = screen._proc
        assert screen.display.startswith(":")
        img = screen.screenshot()
        assert img.size == (640, 480)
        assert color_fraction(img, (0, 0, 0)) == 1.0  # an empty X root is black
    assert proc is not None and proc.poll() is not None, "Xvfb outlived its context"


def test_app_process_reports_a_crash(screen: VirtualScreen) -> None:
    with AppProcess([sys.executable, "-c", "import sys; sys.exit('boom')"], screen) as app:
        with pytest.raises(HarnessError, match="boom"):
            app.wait_for_window(timeout=5)


# -- the probe: one test per studio interaction ---------------------------------------------


def test_window_renders_with_minimap(probe: ProbeApp) -> None:
    """(h) the node editor, its nodes and the minimap really reach the screen."""
    s = probe.state()
    assert s["viewport"]["pos"] == [0, 0] and s["viewport"]["client"] == [1280, 800]
    assert probe.app.window_geometry() == (0, 0, 1280, 800)
    img = probe.screen.screenshot()
    x0, y0, x1, y1 = probe.editor_region()
    minimap: Region = (x1 - 220, y1 - 180, x1, y1)
    empty_grid: Region = (x0 + 500, y0 + 400, x0 + 720, y0 + 580)
    assert color_fraction(img, GRID_BG, empty_grid, tolerance=2) > 0.8
    assert color_fraction(img, MINIMAP_BG, minimap, tolerance=2) > 0.2
    assert color_fraction(img, MINIMAP_NODE, minimap, tolerance=3) > 0.005
    assert color_fraction(img, MINIMAP_NODE, empty_grid, tolerance=3) == 0.0
    # The palette shows white text (the default font is not antialiased) on buttons.
    assert color_fraction(img, (255, 255, 255), (0, 0, 260, 200)) > 0.005
    assert distinct_colors(img, (0, 0, 260, 200)) >= 4
    assert distinct_colors(img, (1300, 0, 1600, 1000)) == 1  # off the viewport: black root


def test_palette_drag_drops_onto_canvas_at_the_mouse(probe: ProbeApp) -> None:
    """(a) drag_payload button -> child_window drop_callback, with the drop position."""
    target = (700, 500)
    before = probe.screen.screenshot()
    probe.screen.drag(probe.center("linear"), target)
    drop = probe.wait_event("drop", after=0)
    assert drop["payload"] == "linear" and drop["sender"] == "canvas"
    assert drop["mouse"] == list(target)  # get_mouse_pos(local=False): viewport pixels
    # grid = mouse - editor origin - panning; the probe put a node there.
    origin, pan = drop["editor_origin"], drop["panning"]
    assert drop["grid"] == [target[i] - origin[i] - pan[i] for i in range(2)]
    s = probe.wait(lambda s: drop["node"] in s["nodes"] and s, "the dropped node")
    node = s["nodes"][drop["node"]]
    assert node["pos"] == drop["grid"]
    assert node["rect_min"] == [target[0] + PADDING, target[1] + PADDING]
    probe.wait_frames(3)
    after = probe.screen.screenshot()
    assert region_differs(before, after, (target[0], target[1], target[0] + 50, target[1] + 50))


def test_dragging_output_pin_to_input_pin_fires_link_callback(probe: ProbeApp) -> None:
    """(b) imnodes reports the link; the callback's add_node_link makes it real."""
    start, end = probe.pin("node_a", "a_out"), probe.pin("node_b", "b_in")
    before = probe.screen.screenshot()
    probe.screen.drag(start, end)
    link = probe.wait_event("link", after=0)
    assert link["attrs"] == ["a_out", "b_in"] and link["sender"] == "editor"
    assert probe.wait(lambda s: s["links"], "the link item") == [["a_out", "b_in"]]
    probe.wait_frames(3)
    after = probe.screen.screenshot()
    middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    box = (int(middle[0]) - 30, int(middle[1]) - 30, int(middle[0]) + 30, int(middle[1]) + 30)
    assert region_differs(before, after, box), "no wire drawn between the pins"
    # imnodes refuses a duplicate: the same drag again creates nothing.
    probe.screen.drag(start, end)
    probe.wait_frames(5)
    assert len(probe.events("link")) == 1


def test_link_from_input_pin_and_delink_by_ctrl_click(probe: ProbeApp) -> None:
    """Dragging input -> output also links (output first); ctrl+click on a wire delinks."""
    start, end = probe.pin("node_b", "b_in"), probe.pin("node_a", "a_out")
    probe.screen.drag(start, end)
    assert probe.wait_event("link", after=0)["attrs"] == ["a_out", "b_in"]
    probe.wait(lambda s: s["links"], "the link item")
    middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)  # on the bezier's midpoint
    probe.screen.xdotool("keydown", "ctrl")
    try:
        probe.screen.click(*middle)
    finally:
        probe.screen.xdotool("keyup", "ctrl")
    assert isinstance(probe.wait_event("delink", after=0)["link"], int)  # an untagged uuid
    probe.wait(lambda s: s["links"] == [] and [True], "the link deleted")


def test_key_chords_reach_key_handlers(probe: ProbeApp) -> None:
    """(c) xdotool keys reach a handler_registry key_press_handler, modifiers included."""
    probe.screen.move(900, 600)  # over the editor, away from any input widget
    probe.screen.key("ctrl+z", "ctrl+shift+z", "Delete", "space")
    want = ["ctrl+z", "ctrl+shift+z", "Delete", "space"]

    def chords(s: State) -> list[str]:
        names = [e["chord"] for e in probe.events("key", s)]
        return [n for n in names if n.split("+")[-1] in {"z", "Delete", "space"}]

    assert probe.wait(lambda s: chords(s) == want and chords(s), "the four chords") == want
    z_keys = [e for e in probe.events("key") if e["chord"].endswith("+z")]
    # Both ways of asking "is ctrl down?" agree inside the handler.
    assert all(e["ctrl_mod"] and e["lctrl"] for e in z_keys)
    assert [e["shift_mod"] for e in z_keys] == [False, True]
    assert not any(e["typing"] for e in probe.events("key"))


def test_typing_into_input_int_and_float(probe: ProbeApp) -> None:
    """(d) click, ctrl+a, type, Return: the value changes and the callback fires once."""
    for item, text, value in (("in_int", "42", 42), ("in_float", "2.5", 2.5)):
        seen = len(probe.events("value"))
        probe.screen.click(*probe.center(item))
        probe.screen.key("ctrl+a")
        probe.screen.type_text(text)
        probe.screen.key("Return")
        event = probe.wait_event("value", after=seen, what=f"{item}'s callback")
        assert event["item"] == item and event["value"] == pytest.approx(value)
        assert probe.state()["values"][item] == pytest.approx(value)
    # Global key handlers fire while typing too (ctrl+z included, which ImGui also
    # applies inside the widget); the studio must check for an active text input.
    probe.screen.click(*probe.center("in_int"))
    probe.screen.key("ctrl+z")
    typed = probe.wait(
        lambda s: [e for e in probe.events("key", s) if e["typing"] and e["chord"] == "ctrl+z"],
        "ctrl+z seen while typing",
    )
    assert typed[0]["focused"] == "in_int"
    probe.screen.click(900, 600)  # deactivate the widget


def test_callbacks_run_from_the_manual_queue(probe: ProbeApp) -> None:
    """(e) every callback above ran through get_callback_queue/run_callbacks."""
    s = probe.state()
    assert s["mode"] == "manual" and s["callbacks_run"] == 0
    probe.screen.drag(probe.pin("node_a", "a_out"), probe.pin("node_b", "b_in"))
    probe.wait_event("link", after=0)
    assert probe.state()["callbacks_run"] >= 1


def test_output_frame_buffer_writes_the_viewport(probe: ProbeApp, tmp_path: Path) -> None:
    """(f) output_frame_buffer(file=...) under Xvfb: a PNG of the viewport, next frame."""
    path = tmp_path / "frame.png"
    probe.app.send(f"screenshot {path}")
    shot = probe.wait(lambda s: s["screenshots"].get(str(path)), "the frame buffer PNG")
    assert shot["seen_frame"] - shot["asked_frame"] == 1  # written by the next render
    fb = Image.open(path)
    assert fb.format == "PNG" and fb.size == (1280, 800) and fb.mode == "RGBA"
    screen = probe.screen.screenshot().crop((0, 0, 1280, 800))
    assert diff_fraction(fb.convert("RGB"), screen) < 0.01


def test_select_nodes_and_move_one_by_its_title(probe: ProbeApp) -> None:
    """(g) click / ctrl+click / box selection, and a title-bar drag moves a node."""
    screen = probe.screen
    selected = lambda s: sorted(s["selected_nodes"])  # noqa: E731
    screen.click(*probe.title("node_a"))
    assert probe.wait(lambda s: selected(s) == ["node_a"], "node_a selected")
    screen.xdotool("keydown", "ctrl")
    try:
        screen.click(*probe.title("node_b"))
    finally:
        screen.xdotool("keyup", "ctrl")
    assert probe.wait(lambda s: selected(s) == ["node_a", "node_b"], "ctrl+click adds node_b")
    screen.click(900, 650)  # empty canvas clears the selection
    assert probe.wait(lambda s: selected(s) == [] and [True], "selection cleared")
    x0, y0, _, _ = probe.editor_region()
    screen.drag((x0 + 10, y0 + 10), (x0 + 460, y0 + 320))  # box-select both
    assert probe.wait(lambda s: selected(s) == ["node_a", "node_b"], "box selection")
    screen.click(900, 650)

    s0 = probe.state()
    a0, b0 = s0["nodes"]["node_a"], s0["nodes"]["node_b"]
    start = probe.title("node_a")
    screen.drag(start, (start[0] + 100, start[1] + 50))
    # drag() returns after the release; the probe's state may still be a frame behind.
    moved = [a0["pos"][0] + 100, a0["pos"][1] + 50]
    s1 = probe.wait(lambda s: s["nodes"]["node_a"]["pos"] == moved and s, f"node_a at {moved}")
    a1 = s1["nodes"]["node_a"]  # pos is grid space, rect_min screen space: both moved
    assert a1["rect_min"] == [a0["rect_min"][0] + 100, a0["rect_min"][1] + 50]
    assert s1["nodes"]["node_b"]["pos"] == b0["pos"]
    assert selected(s1) == ["node_a"]  # dragging a node selects it


def test_delete_key_removes_selected_node(probe: ProbeApp) -> None:
    probe.screen.click(*probe.title("node_b"))
    probe.wait(lambda s: s["selected_nodes"] == ["node_b"], "node_b selected")
    probe.screen.key("Delete")
    probe.wait(lambda s: "node_b" not in s["nodes"], "node_b deleted")
    assert "node_a" in probe.state()["nodes"]


def test_double_click_on_a_node(probe: ProbeApp) -> None:
    """Item double-click handlers never fire on nodes; a global one + hovered state does.

    ImGui times double-clicks in frame time (0.30 s) and sees the press, release and
    second press in three separate frames, so below ~8 fps (seen here when other jobs
    saturate the 2-core machine) no double-click can register however the input is
    sent. Up to three tries; then an xfail that names the frame rate, or a failure.
    """
    fps = 0.0
    for _ in range(3):
        s0, t0 = probe.state(), time.monotonic()
        probe.screen.double_click(*probe.title("node_a"))
        try:
            event = probe.wait_event("double_click", after=0, timeout=2.0)
            break
        except HarnessError:
            fps = (probe.state()["frame"] - s0["frame"]) / (time.monotonic() - t0)
            time.sleep(0.5)  # so the next try is not read as a triple click
    else:
        if fps < 8:
            pytest.xfail(f"machine too loaded: probe at {fps:.1f} fps, ImGui needs ~8")
        pytest.fail(f"no double-click registered in 3 tries at {fps:.1f} fps")
    assert event["button"] == 0 and event["nodes"] == ["node_a"]


def test_middle_drag_pans_and_drops_still_land_under_the_mouse(probe: ProbeApp) -> None:
    """Panning moves nodes on screen, not in grid space; the derived panning tracks it."""
    s0 = probe.state()
    assert s0["panning"] == [0, 0]
    probe.screen.drag((1000, 500), (900, 450), button=2)
    s1 = probe.wait(lambda s: s["panning"] == [-100, -50] and s, "panning of (-100, -50)")
    for name in ("node_a", "node_b"):
        assert s1["nodes"][name]["pos"] == s0["nodes"][name]["pos"]
        assert s1["nodes"][name]["rect_min"] == [
            s0["nodes"][name]["rect_min"][0] - 100,
            s0["nodes"][name]["rect_min"][1] - 50,
        ]
    target = (700, 500)
    probe.screen.drag(probe.center("relu"), target)
    drop = probe.wait_event("drop", after=0)
    s2 = probe.wait(lambda s: drop["node"] in s["nodes"] and s, "the dropped node")
    assert s2["nodes"][drop["node"]]["rect_min"] == [target[0] + PADDING, target[1] + PADDING]
    origin = s0["editor_origin"]
    assert s2["nodes"][drop["node"]]["pos"] == [
        target[0] - origin[0] + 100,
        target[1] - origin[1] + 50,
    ]


def test_probe_quits_on_command(screen: VirtualScreen, tmp_path: Path) -> None:
    with AppProcess([sys.executable, str(PROBE), str(tmp_path / "s.json")], screen) as app:
        app.wait_for_window("dpg-probe")
        app.send("quit")
        assert app.proc is not None
        try:
            assert app.proc.wait(timeout=10) == 0, app.describe()
        except subprocess.TimeoutExpired:
            pytest.fail("the probe ignored quit" + app.describe())
