"""Right-click menus in the real studio (issue 16): on the canvas (add a block, paste,
layout), on a block (open its body, duplicate, copy, delete, its docs) and on a wire
(delete it, insert a block on it). Real mouse under Xvfb; checked on the app's state and
on screenshots.

One studio runs for the module, on a copy of moons_mlp; the tests build on each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import VirtualScreen
from studio_driver import SAMPLES, Studio, center, studio

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("context_menus")


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    with studio(screen, folder, SAMPLES / "moons_mlp.json") as s:
        yield s


def right_click(app: Studio, at: tuple[float, float], kind: str) -> dict:
    app.screen.click(*at, button=3)
    s = app.wait(lambda s: s["context_menu"] and s["context_menu"]["kind"] == kind
                 and s["context_menu"]["entries"] and s, f"the {kind} menu")
    return s["context_menu"]["entries"]


def choose(app: Studio, entries: dict, label: str) -> None:
    assert entries[label][4], f"{label} is disabled"
    app.click(center(entries[label][:4]))
    app.wait(lambda s: s["context_menu"] is None and s, "the menu to close")


def new_nodes(app: Studio, before: set, what: str) -> list[str]:
    s = app.wait(lambda s: set(app.nodes(s)) - before and s, what)
    return sorted(set(app.nodes(s)) - before)


def test_right_click_the_canvas_adds_pastes_and_lays_out(app: Studio, folder: Path) -> None:
    x0, y0, _, y1 = app.canvas()
    spot = (x0 + 300, y1 - 120)
    entries = right_click(app, spot, "canvas")
    assert {"Add block…", "Paste here", "Layout", "Fit view"} <= set(entries)
    app.shot(folder / "canvas_menu.png")
    choose(app, entries, "Add block…")
    app.wait(lambda s: s["quick_add_ready"] and s, "the quick-add popup to take keys")
    before = set(app.nodes())
    app.type_text("relu")
    app.key("Return")
    (relu,) = new_nodes(app, before, "a ReLU where the menu was opened")
    rect = app.wait(lambda s: s["layout"]["nodes"].get(relu, {}).get("rect"), "the ReLU drawn")
    assert abs(rect[0] - 8 - spot[0]) <= 4 and abs(rect[1] - 8 - spot[1]) <= 4
    app.key("ctrl+c")
    app.wait(lambda s: s["status"].startswith("copied") and s, "the copy")
    there = (x0 + 650, y1 - 120)
    entries = right_click(app, there, "canvas")
    before = set(app.nodes())
    choose(app, entries, "Paste here")
    (pasted,) = new_nodes(app, before, "the pasted ReLU")
    rect = app.wait(lambda s: s["layout"]["nodes"].get(pasted, {}).get("rect"), "it drawn")
    assert abs(rect[0] - 8 - there[0]) <= 4 and abs(rect[1] - 8 - there[1]) <= 4
    entries = right_click(app, (x0 + 500, y0 + 40), "canvas")
    choose(app, entries, "Layout")
    app.wait(lambda s: s["status"] == "Auto-layout" and s, "the layout")


def test_right_click_a_block(app: Studio, folder: Path) -> None:
    entries = right_click(app, app.node_title("fc2"), "block")
    assert {"Duplicate", "Copy", "Delete", "Docs: Linear"} <= set(entries)
    assert app.state()["selection"] == ["fc2"], "the menu acts on the block clicked"
    app.shot(folder / "block_menu.png")
    choose(app, entries, "Docs: Linear")
    app.wait(lambda s: "message" in s["dialogs"] and s, "the block's docs")
    app.shot(folder / "block_docs.png")
    app.key("Escape")
    app.wait(lambda s: not s["dialogs"] and s, "the docs to close")
    before = set(app.nodes())
    choose(app, right_click(app, app.node_title("fc2"), "block"), "Duplicate")
    (copy,) = new_nodes(app, before, "the duplicate")
    assert app.nodes()[copy]["type"] == "linear"
    choose(app, right_click(app, app.node_title(copy), "block"), "Delete")
    app.wait(lambda s: copy not in app.nodes(s) and s, "the duplicate deleted")


def test_right_click_a_loop_opens_its_body(app: Studio) -> None:
    x0, _, _, y1 = app.canvas()
    before = set(app.nodes())
    app.screen.move(x0 + 900, y1 - 60)
    app.key("space")
    app.wait(lambda s: s["quick_add_ready"] and s, "the quick-add popup to take keys")
    app.type_text("loop")
    app.key("Return")
    (loop,) = new_nodes(app, before, "a Loop")
    entries = right_click(app, app.node_title(loop), "block")
    choose(app, entries, "Open body »")
    app.wait(lambda s: s["region"] == [loop, "body"] and s, "the loop's body")
    app.key("Escape")
    app.wait(lambda s: s["region"] == [] and s, "the main graph again")
    settle(app)   # the view is fitted to the main graph a few frames after it returns


def settle(app: Studio) -> None:
    """Wait until the blocks stay put on screen for a few frames."""
    last: list = [None]

    def still(s: dict) -> bool:
        rects = {i: n["rect"] for i, n in s["layout"]["nodes"].items()}
        same, last[0] = rects == last[0], rects
        app.wait_frames(3)
        return same

    app.wait(still, "the view to settle")


def test_right_click_a_wire_inserts_a_block_and_deletes_it(app: Studio, folder: Path) -> None:
    a, b = app.pin("act1", "out", "y"), app.pin("fc2", "in", "x")
    mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    entries = right_click(app, mid, "wire")
    assert set(entries) == {"Delete wire", "Insert block…", "Look inside (pin)"}
    app.shot(folder / "wire_menu.png")
    choose(app, entries, "Insert block…")
    app.wait(lambda s: s["quick_add_ready"] and s, "the quick-add popup to take keys")
    before = set(app.nodes())
    app.type_text("gelu")
    app.key("Return")
    (gelu,) = new_nodes(app, before, "the inserted GELU")
    assert app.nodes()[gelu]["type"] == "gelu"
    edges = app.edges()
    assert (("act1", "y"), (gelu, "x")) in edges and ((gelu, "y"), ("fc2", "x")) in edges
    assert (("act1", "y"), ("fc2", "x")) not in edges
    app.shot(folder / "inserted.png")
    a, b = app.pin("x", "out", "y"), app.pin("fc1", "in", "x")
    entries = right_click(app, ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2), "wire")
    choose(app, entries, "Delete wire")
    s = app.wait(lambda s: (("x", "y"), ("fc1", "x")) not in app.edges(s) and s,
                 "the wire deleted")
    assert s["status"].startswith("Disconnect")
    app.key("ctrl+z")
    app.wait(lambda s: (("x", "y"), ("fc1", "x")) in app.edges(s) and s, "undo brings it back")
