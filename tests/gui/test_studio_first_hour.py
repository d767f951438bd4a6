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
