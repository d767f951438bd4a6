"""The studio, driven like a person drives it: palette drags, pin-to-pin wires, the
inspector, undo/redo, save and reopen. Real window under Xvfb, real mouse and keys.

One studio runs for the module (starting one costs seconds on a software-GL display), and
the tests build on each other in file order: an empty graph gets an Input and a Linear,
a wire, a param edit, undo/redo, then it is saved and reopened. Each step is checked on
the app's state (its test hook) and on screenshots.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import VirtualScreen, color_fraction, region_differs
from studio_driver import Studio, studio

from engine.core.fileformat import save_graph
from engine.core.graph import Graph

pytestmark = pytest.mark.gui

PADDING = 8          # imnodes NodePadding: a node's content starts this far inside its corner
# A wire is drawn in the link colour, or lighter while hovered or selected.
LINK_COLORS = ((150, 156, 170), (220, 224, 235), (255, 255, 255))


def wire_fraction(img, box) -> float:
    return max(color_fraction(img, c, box, tolerance=30) for c in LINK_COLORS)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("editing")
    save_graph(Graph(name="scratch"), folder / "scratch.json")
    return folder


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, work: Path) -> Iterator[Studio]:
    with studio(screen, work, work / "scratch.json") as s:
        yield s


def drop_block(app: Studio, block: str, at: tuple[float, float]) -> str:
    """Drag a palette block to `at` and return the new node's id."""
    before = set(app.nodes())
    app.drag(app.palette_button(block), at)
    s = app.wait(lambda s: set(app.nodes(s)) - before and s["layout"]["nodes"].get(
        next(iter(set(app.nodes(s)) - before))) and s, f"a {block} node on screen")
    (new,) = set(app.nodes(s)) - before
    assert app.nodes(s)[new]["type"] == block
    return new


def test_drag_a_block_from_the_palette_onto_the_canvas(app: Studio) -> None:
    x0, y0, _, y1 = app.canvas()
    target = (x0 + 420, y0 + 160)
    before = app.shot()
    node = drop_block(app, "linear", target)
    # The node's top-left corner is where the mouse let go (in screen space, no panning yet).
    rect = app.wait(lambda s: s["layout"]["nodes"].get(node, {}).get("rect"), "the node's rect")
    assert abs(rect[0] - PADDING - target[0]) <= 3 and abs(rect[1] - PADDING - target[1]) <= 3
    s = app.state()
    assert s["dirty"] and s["title"].endswith("•")
    assert s["selection"] == [node], "a new block is selected"
    after = app.shot()
    box = (int(target[0]), int(target[1]), int(target[0]) + 120, int(target[1]) + 60)
    assert region_differs(before, after, box, min_fraction=0.2), "no node drawn where dropped"
    elsewhere = (x0 + 20, y1 - 200, x0 + 200, y1 - 60)
    assert not region_differs(before, after, elsewhere)


def test_wire_two_pins(app: Studio) -> None:
    x0, y0, _, _ = app.canvas()
    source = drop_block(app, "input", (x0 + 80, y0 + 160))
    (linear,) = [i for i, n in app.nodes().items() if n["type"] == "linear"]
    start, end = app.pin(source, "out", "y"), app.pin(linear, "in", "x")
    before = app.shot()
    app.drag(start, end)
    s = app.wait(lambda s: app.edges(s) and s, "the wire in the graph")
    assert app.edges(s) == [((source, "y"), (linear, "x"))]
    after = app.shot()
    mid = (int((start[0] + end[0]) / 2), int((start[1] + end[1]) / 2))
    box = (mid[0] - 30, mid[1] - 6, mid[0] + 30, mid[1] + 6)
    assert region_differs(before, after, box)
    assert wire_fraction(after, box) > 0.05, "no wire drawn between the pins"
    assert wire_fraction(before, box) < 0.01
    # Shapes flow along the new wire: the Linear now knows its input is (B, 2).
    assert app.state()["graph"]["nodes"][0]["id"] == linear


def test_an_incompatible_wire_is_refused_and_delete_removes_a_block(app: Studio) -> None:
    x0, y0, _, _ = app.canvas()
    (source,) = [i for i, n in app.nodes().items() if n["type"] == "input"]
    wires = app.edges()
    conv = drop_block(app, "conv2d", (x0 + 420, y0 + 330))
    start, end = app.pin(source, "out", "y"), app.pin(conv, "in", "x")
    app.drag(start, end)
    # Conv2d wants (B, C, H, W); the Input gives (B, 2): refused, with the reason.
    s = app.wait(lambda s: s["status"].startswith("can't wire") and s, "the refusal")
    assert s["status_level"] == "warning" and "conv" in s["status"].lower()
    assert app.edges(s) == wires, "the refused wire is not in the graph"
    shot = app.shot()
    mid = (int((start[0] + end[0]) / 2), int((start[1] + end[1]) / 2))
    assert wire_fraction(shot, (mid[0] - 20, mid[1] - 20, mid[0] + 20, mid[1] + 20)) < 0.01, \
        "the refused wire is drawn"
    app.click(app.node_title(conv))
    app.wait(lambda s: s["selection"] == [conv] and s, "the Conv2d selected")
    app.key("Delete")
    s = app.wait(lambda s: conv not in app.nodes(s) and s, "Delete to remove the block")
    assert conv not in s["layout"]["nodes"]


def test_edit_a_param_in_the_inspector(app: Studio) -> None:
    (linear,) = [i for i, n in app.nodes().items() if n["type"] == "linear"]
    app.click(app.node_title(linear))
    app.wait(lambda s: s["selection"] == [linear] and s, "the Linear selected")
    field = app.widget("out_features")
    before = app.shot()
    app.click(field)
    app.key("ctrl+a")
    app.type_text("32")
    app.key("Return")
    s = app.wait(lambda s: app.nodes(s)[linear]["params"].get("out_features") == 32 and s,
                 "out_features to become 32")
    assert s["status"] == "Set out_features"
    after = app.shot()
    node = s["layout"]["nodes"][linear]["rect"]
    assert region_differs(before, after, tuple(int(v) for v in node)), "the node did not redraw"


def test_a_bad_value_is_refused_with_the_reason(app: Studio) -> None:
    (source,) = [i for i, n in app.nodes().items() if n["type"] == "input"]
    app.click(app.node_title(source))
    app.wait(lambda s: s["selection"] == [source] and s, "the Input selected")
    shape = lambda s: app.nodes(s)[source]["params"].get("shape", [2])  # noqa: E731
    for text, reason in (("2, zero", "not a list of integers"), ("0, 3", "outside")):
        app.click(app.widget("shape"))
        app.key("ctrl+a")
        app.type_text(text)
        app.key("Return")
        s = app.wait(lambda s, r=reason: r in s["inspector_errors"].get("shape", "") and s,
                     f"the inspector to refuse {text!r}")
        assert shape(s) == [2], "a bad shape never reaches the graph"
    assert "outside" in s["status"] and s["status_level"] == "warning"
    before = app.shot()
    app.click(app.widget("shape"))
    app.key("ctrl+a")
    app.type_text("3")
    app.key("Return")
    s = app.wait(lambda s: shape(s) == [3] and s, "a good shape to be accepted")
    assert "shape" not in s["inspector_errors"]
    assert region_differs(before, app.shot(), tuple(int(v) for v in s["layout"]["nodes"][source]["rect"]))
    app.key("ctrl+z")   # back to (B, 2) for the tests that follow
    app.wait(lambda s: shape(s) == [2] and s, "undo of the shape")


def test_undo_and_redo(app: Studio) -> None:
    (linear,) = [i for i, n in app.nodes().items() if n["type"] == "linear"]
    _, _, x1, y1 = app.canvas()
    app.click((x1 - 300, y1 - 120))       # focus the canvas, away from any widget
    out = lambda s: app.nodes(s)[linear]["params"].get("out_features")  # noqa: E731
    app.key("ctrl+z")
    app.wait(lambda s: out(s) != 32 and s, "undo of the param edit")
    app.key("ctrl+shift+z")
    app.wait(lambda s: out(s) == 32 and s, "redo with ctrl+shift+z")


def test_move_is_one_undoable_command(app: Studio) -> None:
    (linear,) = [i for i, n in app.nodes().items() if n["type"] == "linear"]
    pos = lambda s: app.nodes(s)[linear]["pos"]  # noqa: E731
    start_pos = pos(app.state())
    title = app.node_title(linear)
    app.drag(title, (title[0] + 90, title[1] + 120))
    s = app.wait(lambda s: pos(s) != start_pos and s, "the move to reach the graph")
    moved = pos(s)
    assert moved[1] > start_pos[1] + 40, "the node moved down in the graph"
    assert s["status"] == "Move block"
    app.key("ctrl+z")
    app.wait(lambda s: pos(s) == start_pos and s, "undo of the move")
    app.key("ctrl+y")
    app.wait(lambda s: pos(s) == moved and s, "redo of the move with ctrl+y")


def test_select_a_wire_delete_it_and_undo(app: Studio) -> None:
    (linear,) = [i for i, n in app.nodes().items() if n["type"] == "linear"]
    (source,) = [i for i, n in app.nodes().items() if n["type"] == "input"]
    wires = app.edges()
    start, end = app.pin(source, "out", "y"), app.pin(linear, "in", "x")
    # imnodes' link leaves and enters its pins horizontally, so the bezier's middle is the
    # midpoint of the two pins.
    mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    app.click(mid)
    app.wait(lambda s: s["selected_wires"] == [[source, "y", linear, "x"]] and s,
             "the wire selected")
    app.key("Delete")
    app.wait(lambda s: not app.edges(s) and s, "the wire deleted")
    before = app.shot()
    app.key("ctrl+z")
    app.wait(lambda s: app.edges(s) == wires and s, "undo of the delete")
    after = app.shot()
    box = (int(mid[0]) - 20, int(mid[1]) - 8, int(mid[0]) + 20, int(mid[1]) + 8)
    assert wire_fraction(before, box) < 0.01 < wire_fraction(after, box)


def test_duplicate_copy_and_paste(app: Studio) -> None:
    (linear,) = [i for i, n in app.nodes().items() if n["type"] == "linear"]
    x0, y0, _, _ = app.canvas()
    app.click(app.node_title(linear))
    app.wait(lambda s: s["selection"] == [linear] and s, "the Linear selected")
    linears = lambda s: sorted(i for i, n in app.nodes(s).items() if n["type"] == "linear")  # noqa: E731
    app.key("ctrl+d")
    s = app.wait(lambda s: len(linears(s)) == 2 and s, "a duplicate")
    (copy,) = set(linears(s)) - {linear}
    assert s["selection"] == [copy] and app.nodes(s)[copy]["params"] == app.nodes(s)[linear]["params"]
    app.key("ctrl+c")
    spot = (x0 + 700, y0 + 420)
    app.screen.move(*spot)
    app.key("ctrl+v")
    s = app.wait(lambda s: len(linears(s)) == 3 and s, "a paste")
    (pasted,) = set(linears(s)) - {linear, copy}
    rect = app.wait(lambda s: s["layout"]["nodes"].get(pasted, {}).get("rect"), "the paste on screen")
    assert abs(rect[0] - 8 - spot[0]) <= 3 and abs(rect[1] - 8 - spot[1]) <= 3, "pasted at the mouse"
    app.key("ctrl+z", "ctrl+z")
    app.wait(lambda s: linears(s) == [linear] and s, "both undone")


def test_save_and_reopen(app: Studio, screen: VirtualScreen, work: Path, tmp_path: Path) -> None:
    app.key("ctrl+s")
    s = app.wait(lambda s: not s["dirty"] and s, "the save")
    assert not s["title"].endswith("•")
    saved = json.loads((work / "scratch.json").read_text())
    assert saved == s["graph"]
    types = sorted(n["type"] for n in saved["nodes"])
    assert types == ["input", "linear"] and len(saved["edges"]) == 1
    app.key_to_quit("ctrl+q")
    app.app.proc.wait(timeout=60)
    assert app.app.proc.returncode == 0
    with studio(screen, work, work / "scratch.json") as again:
        s2 = again.wait(lambda s: s["layout"]["nodes"] and s, "the reopened graph on screen")
        assert s2["graph"] == saved and not s2["dirty"]
        assert set(s2["layout"]["nodes"]) == {n["id"] for n in saved["nodes"]}
