"""A newcomer's first hour in the real studio (issue 16): menus, keys, files and the
Inspector, driven with the mouse and keyboard under Xvfb and checked on the app's state
and on screenshots.

One studio runs for the module, on a copy of moons_mlp; the tests build on each other in
file order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import VirtualScreen
from studio_driver import SAMPLES, Studio, center, studio

from nodes import lookup

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("first_hour")


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    with studio(screen, folder, SAMPLES / "moons_mlp.json") as s:
        yield s


def press(app: Studio, button: str) -> None:
    r = app.wait(lambda s: s["layout"]["dialog_buttons"].get(button), f"the {button} button")
    app.click(center(r))


def menu_open(app: Studio, name: str) -> dict:
    return app.wait(lambda s: any(p.startswith(name + ">") for p in s["layout"]["menus"]) and s,
                    f"the {name} menu to open")


def test_keys_still_work_after_closing_menus_with_esc(app: Studio, folder: Path) -> None:
    """Bug 1: Esc on an open menu left a menu item focused, and the shortcut handler's
    "is the user typing?" check raised KeyError on it, so Delete and Ctrl+Z died."""
    for name in ("View", "Train"):
        app.click(center(app.layout()["menus"][name]))
        menu_open(app, name)
        app.key("Escape")
        app.wait(lambda s, n=name: not any(p.startswith(n + ">") for p in s["layout"]["menus"])
                 and s, f"the {name} menu to close")
    app.click(app.node_title("fc1"))
    app.wait(lambda s: s["selection"] == ["fc1"] and s, "fc1 selected")
    app.key("Delete")
    s = app.wait(lambda s: "fc1" not in app.nodes(s) and s, "Delete to remove fc1")
    app.key("ctrl+z")
    s = app.wait(lambda s: "fc1" in app.nodes(s) and s, "Ctrl+Z to bring fc1 back")
    assert not s["internal_errors"], s["internal_errors"]
    assert not s["dirty"], "undoing back to the opened graph leaves it clean"

    # Export › All to a folder… asks for a folder; Esc cancels; the keys still work.
    app.menu("Export>All to a folder…")
    app.wait(lambda s: "path" in s["dialogs"] and s, "the folder prompt")
    app.key("Escape")
    app.wait(lambda s: not s["dialogs"] and s, "the prompt to close")
    app.click(app.node_title("act1"))
    app.wait(lambda s: s["selection"] == ["act1"] and s, "act1 selected")
    app.key("Delete")
    app.wait(lambda s: "act1" not in app.nodes(s) and s, "Delete after the export prompt")
    app.key("ctrl+z")
    s = app.wait(lambda s: "act1" in app.nodes(s) and s, "Ctrl+Z after the export prompt")
    assert not s["internal_errors"], s["internal_errors"]
    assert "internal error" not in s["status"]


def test_save_in_the_unsaved_question_asks_where_for_an_untitled_graph(app: Studio,
                                                                       folder: Path) -> None:
    """Bug 2: File › New, add a block, File › Open sample › adaptive_depth, Save: the Save As
    prompt must appear; once saved, the sample opens."""
    app.menu("File>New")
    app.wait(lambda s: not s["graph"]["nodes"] and s["file"] is None and s, "a new graph")
    app.click(app.palette_button("relu"))
    app.wait(lambda s: s["graph"]["nodes"] and s["dirty"] and s, "an unsaved block")
    app.menu("File>Open sample>adaptive_depth")
    app.wait(lambda s: "confirm" in s["dialogs"] and s, "the unsaved-changes question")
    press(app, "save")
    app.wait(lambda s: "path" in s["dialogs"] and s, "the Save As prompt")
    target = folder / "mine.json"
    app.key("ctrl+a")
    app.type_text(str(target))
    app.key("Return")
    s = app.wait(lambda s: "adaptive_depth" in s["title"] and s, "the sample to open")
    assert not s["dialogs"] and s["file"] is None and not s["dirty"]
    assert [n["type"] for n in json.loads(target.read_text())["nodes"]] == ["relu"]
    shot = app.shot(folder / "save_then_open.png")
    assert shot.size[0] > 0


def crumbs(app: Studio, want: list[str], what: str) -> dict:
    return app.wait(lambda s: s["layout"]["breadcrumbs"] == want and s, what)


def test_the_breadcrumb_names_the_graph_on_screen(app: Studio, folder: Path) -> None:
    """Bug 4: after New, Open or a rename, the breadcrumb kept the previous graph's name."""
    crumbs(app, ["adaptive_depth"], "the sample's name in the breadcrumb")
    app.key("ctrl+n")
    crumbs(app, ["model"], "a new graph's name in the breadcrumb")
    other = folder / "residual.json"
    other.write_text((SAMPLES / "residual_mlp.json").read_text())
    app.key("ctrl+o")
    app.wait(lambda s: "path" in s["dialogs"] and s, "the Open prompt")
    app.key("ctrl+a")
    app.type_text(str(other))
    app.key("Return")
    s = crumbs(app, ["residual_mlp"], "the opened file's name in the breadcrumb")
    assert s["file"] == str(other)
    app.shot(folder / "breadcrumb.png")


def drop_block(app: Studio, block: str, at: tuple[float, float]) -> str:
    """Drag a palette block to `at` and return the new node's id."""
    before = set(app.nodes())
    app.drag(app.palette_button(block), at)
    s = app.wait(lambda s: set(app.nodes(s)) - before and s["layout"]["nodes"].get(
        next(iter(set(app.nodes(s)) - before))) and s, f"a {block} node on screen")
    (new,) = set(app.nodes(s)) - before
    return new


def quick_add(app: Studio, query: str, at: tuple[float, float]) -> str:
    """Space on the canvas, type, Enter: the new node's id."""
    before = set(app.nodes())
    app.screen.move(*at)
    app.key("space")
    app.wait(lambda s: s["quick_add_ready"] and s, "the quick-add popup to take keys")
    app.type_text(query)
    app.key("Return")
    s = app.wait(lambda s: set(app.nodes(s)) - before and s["layout"]["nodes"].get(
        next(iter(set(app.nodes(s)) - before))) and s, f"a {query} node on screen")
    (new,) = set(app.nodes(s)) - before
    return new


def test_the_inspector_shows_what_feeds_a_wired_input(app: Studio, folder: Path) -> None:
    """Bug 5: an Add with only `a` wired said "(not connected)" for `a`."""
    app.key("ctrl+n")
    app.wait(lambda s: not s["graph"]["nodes"] and s, "a new graph")
    x0, y0, _, _ = app.canvas()
    source = drop_block(app, "input", (x0 + 80, y0 + 120))
    add = quick_add(app, "add", (x0 + 400, y0 + 120))
    app.drag(app.pin(source, "out", "y"), app.pin(add, "in", "a"))
    app.wait(lambda s: app.edges(s) == [((source, "y"), (add, "a"))] and s, "the wire x.y → a")
    app.click(app.node_title(add))
    s = app.wait(lambda s: s["selection"] == [add] and s["inspector_ports"] and s, "the Add")
    ports = {line.split()[1]: line for line in s["inspector_ports"] if line.split()[0] == "in"}
    assert "not connected" not in ports["a"] and f"{source}.y" in ports["a"], ports
    assert "(B, 2)" in ports["a"], ports
    assert "not connected" in ports["b"], ports
    app.shot(folder / "inspector_ports.png")


def test_a_value_below_the_range_is_refused_inline_not_clamped(app: Studio,
                                                               folder: Path) -> None:
    """Bug 8: typing 0 into out_features silently became 1."""
    x0, y0, _, _ = app.canvas()
    linear = drop_block(app, "linear", (x0 + 400, y0 + 300))
    default = lookup("linear").param("out_features").default
    out = lambda s: app.nodes(s)[linear]["params"].get("out_features", default)  # noqa: E731
    before = out(app.state())
    app.click(app.widget("out_features"))
    app.key("ctrl+a")
    app.type_text("0")
    app.key("Return")
    s = app.wait(lambda s: s["inspector_errors"].get("out_features") and s,
                 "the inspector to say why 0 is refused")
    error = s["inspector_errors"]["out_features"]
    assert "at least 1" in error and str(before) in error, error
    assert out(s) == before, "the refused value never reaches the graph"
    app.shot(folder / "refused_zero.png")


def overlaps(rects: dict[str, list[float]]) -> list[tuple[str, str]]:
    items = sorted(rects.items())
    return [(a, b) for i, (a, ra) in enumerate(items) for b, rb in items[i + 1:]
            if ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]]


def node_rects(s: dict) -> dict[str, list[float]]:
    # The drawn node is NODE_PADDING (8 px) bigger than its content rect on every side.
    return {i: [r[0] - 8, r[1] - 8, r[2] + 8, r[3] + 8]
            for i, n in s["layout"]["nodes"].items() for r in [n["rect"]]}


def test_blocks_with_a_problem_never_overlap_and_layout_spaces_them(app: Studio,
                                                                    folder: Path) -> None:
    """Bug 6: a block widened by its error text overlapped its neighbour, and Layout did
    not fix it. Repro: adaptive_depth with embed's out_features at 1 (refine's state then
    enters its body as (B, 1) and leaves it as (B, 16): a long error on refine)."""
    doc = json.loads((SAMPLES / "adaptive_depth.json").read_text())
    for node in doc["nodes"]:
        if node["id"] == "embed":
            node["params"]["out_features"] = 1
    broken = folder / "adaptive_broken.json"
    broken.write_text(json.dumps(doc))
    app.wait(lambda s: s["dirty"] and s, "the unsaved graph of the tests before")
    app.key("ctrl+o")
    app.wait(lambda s: "path" in s["dialogs"] and s, "the Open prompt")
    app.key("ctrl+a")
    app.type_text(str(broken))
    app.key("Return")
    # The unsaved-changes question comes after the path, as the prompt closes.
    app.wait(lambda s: "confirm" in s["dialogs"] and s, "the unsaved-changes question")
    press(app, "discard")
    s = app.wait(lambda s: s["file"] == str(broken) and len(s["layout"]["nodes"]) == 6
                 and s["layout"]["nodes"]["refine"]["problem"] and s, "refine with its error")
    s = app.wait_frames(3)
    assert not overlaps(node_rects(s)), overlaps(node_rects(s))
    app.shot(folder / "problem_no_overlap.png")
    app.key("ctrl+l")
    app.wait(lambda s: s["status"] == "Auto-layout" and s, "the layout")
    s = app.wait_frames(4)
    assert not overlaps(node_rects(s)), overlaps(node_rects(s))
    app.shot(folder / "problem_layout.png")


def test_the_default_sample_opens_as_a_copy(screen: VirtualScreen, tmp_path: Path) -> None:
    """`./run studio` with no graph runs `dprog --sample moons_mlp`: the sample opens as
    File › Open sample opens it, so Ctrl+S asks where and the repository's file stays."""
    sample = SAMPLES / "moons_mlp.json"
    before = sample.read_bytes()
    with studio(screen, tmp_path, None, "--sample", "moons_mlp") as app:
        s = app.wait(lambda s: s["graph"]["nodes"] and s, "the sample")
        assert s["file"] is None and s["title"] == "dprog — moons_mlp (sample)"
        app.click(app.node_title("fc1"))
        x, y = app.node_title("fc1")
        app.drag((x, y), (x + 30, y + 60))
        app.wait(lambda s: s["dirty"] and s, "an unsaved move")
        app.key("ctrl+s")
        s = app.wait(lambda s: "path" in s["dialogs"] and s, "Save to ask where")
        app.key("Escape")
        app.wait(lambda s: not s["dialogs"] and s, "the prompt to close")
    assert sample.read_bytes() == before
