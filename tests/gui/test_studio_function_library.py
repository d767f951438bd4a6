"""A user's block library in the real studio: the graph's functions are in the palette and in
quick-add, and placing one adds a Call; File › Export functions… writes a library file and
File › Import functions… brings it into another graph in one undo step; a clash asks, and a
broken library changes nothing and says where it is broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import VirtualScreen, color_fraction, crop
from studio_driver import SAMPLES, Studio, center, studio

pytestmark = pytest.mark.gui

FN = "ƒ double_conv"
FUNCTION_FILL = (102, 77, 129)   # app/views/palette.py FUNCTION_COLOR, blended as blocks are


def calls(s: dict, name: str = "double_conv") -> list[str]:
    return [n["id"] for n in s["graph"]["nodes"]
            if n["type"] == "call" and n.get("params", {}).get("function") == name]


def functions(s: dict) -> list[str]:
    return s["function_library"]["functions"]


def palette_entry(app: Studio, key: str = FN) -> tuple[float, float]:
    app.wait_frames(2)
    r = app.wait(lambda s: s["function_library"]["palette"].get(key), f"the palette's {key}")
    return center(r)


def press(app: Studio, button: str) -> None:
    r = app.wait(lambda s: s["layout"]["dialog_buttons"].get(button), f"the {button} button")
    app.click(center(r))


def type_path(app: Studio, path: Path) -> None:
    app.wait(lambda s: "path" in s["dialogs"] and s, "the path prompt")
    app.key("ctrl+a")
    app.type_text(str(path))
    app.key("Return")


def new_call(app: Studio, before: list[str]) -> tuple[str, dict]:
    s = app.wait(lambda s: len(calls(s)) == len(before) + 1 and s, "a new Call of double_conv")
    (new,) = set(calls(s)) - set(before)
    return new, s


def assert_resolved(s: dict, node: str) -> None:
    """The Call names a function the graph defines: the analysis finds nothing worse than
    its unwired input."""
    codes = {d[0] for d in s["diagnostics"] if d[1] == node}
    assert codes <= {"missing_input"}, s["diagnostics"]
    assert not s["internal_errors"], s["internal_errors"]


def test_palette_and_quick_add_place_calls(screen: VirtualScreen, tmp_path: Path) -> None:
    with studio(screen, tmp_path, SAMPLES / "unet.json") as app:
        start = palette_entry(app)
        s = app.state()
        assert s["function_library"]["labels"] == {"double_conv": "ƒ Double conv"}
        r = s["function_library"]["palette"][FN]
        shot = app.shot(tmp_path / "palette_with_function.png")
        # The entry is drawn: a button in the functions' purple, in the palette column,
        # above the block categories.
        box = (int(r[0]), int(r[1]), int(r[2]), int(r[3]))
        assert r[2] < 230 and r[1] < s["layout"]["palette"]["input"][1]
        assert color_fraction(shot, FUNCTION_FILL, box, tolerance=8) > 0.5
        crop(shot, (0, 0, 240, 420)).save(tmp_path / "palette_crop.png")

        # A real drag from the palette onto the canvas places a Call with its own weights.
        before = calls(s)
        assert len(before) == 5
        x0, _, _, y1 = app.canvas()
        app.drag(start, (x0 + 60, y1 - 90))
        new, s = new_call(app, before)
        node = app.nodes(s)[new]
        assert node["params"] == {"function": "double_conv", "weights": "own"}
        assert s["selection"] == [new]
        assert_resolved(s, new)

        # Quick-add (Space on the canvas) finds the function by its title.
        before = calls(s)
        app.screen.move(x0 + 260, y1 - 60)
        app.key("space")
        app.wait(lambda s: s["quick_add_ready"] and s, "the quick-add popup to take keys")
        app.type_text("double")
        s = app.wait(lambda s: s["function_library"]["quick_add"][:1] == ["ƒ Double conv"] and s,
                     "the function first in quick-add")
        app.shot(tmp_path / "quick_add_function.png")
        app.key("Return")
        new, s = new_call(app, before)
        assert_resolved(s, new)

        # Undo takes the last call away; the palette entry stays.
        app.key("ctrl+z")
        s = app.wait(lambda s: len(calls(s)) == len(before) and s, "the undo")
        assert FN in s["function_library"]["palette"]


def test_export_import_undo_and_a_broken_library(screen: VirtualScreen, tmp_path: Path) -> None:
    lib = tmp_path / "mine.dprog-lib.json"
    with studio(screen, tmp_path, SAMPLES / "unet.json") as app:
        palette_entry(app)
        # One function: no checklist, straight to the file prompt.
        app.menu("File>Export functions…")
        type_path(app, tmp_path / "mine")
        s = app.wait(lambda s: lib.exists() and not s["dialogs"] and s, "the library file")
        assert "exported 1 function" in s["status"]
        doc = json.loads(lib.read_text())
        assert doc["format"] == "dprog-lib" and list(doc["functions"]) == ["double_conv"]

        app.menu("File>Open sample>moons_mlp")
        s = app.wait(lambda s: s["graph"]["name"] == "moons_mlp" and s, "moons_mlp")
        assert functions(s) == [] and not s["function_library"]["palette"]
        graph = s["graph"]

        app.menu("File>Import functions…")
        type_path(app, lib)
        s = app.wait(lambda s: functions(s) == ["double_conv"] and s, "the imported function")
        assert s["graph"]["nodes"] == graph["nodes"] and "imported double_conv" in s["status"]
        palette_entry(app)
        app.shot(tmp_path / "imported.png")
        app.key("ctrl+z")
        s = app.wait(lambda s: functions(s) == [] and s, "the import undone")
        app.wait(lambda s: FN not in s["function_library"]["palette"] and s,
                 "the palette without it")
        assert s["graph"] == graph

        # A broken library: a message naming the file and the place; nothing changes.
        bad = tmp_path / "bad.dprog-lib.json"
        bad.write_text('{"format": "dprog-lib", "version": 1, '
                       '"functions": {"f": {"title": "F", "doc": "", "graph": 3}}}')
        version = app.state()["version"]
        app.menu("File>Import functions…")
        type_path(app, bad)
        s = app.wait(lambda s: "message" in s["dialogs"] and s, "the message")
        assert "bad.dprog-lib.json" in s["status"] and "$.functions" in s["status"], s["status"]
        app.shot(tmp_path / "broken_library.png")
        assert functions(s) == [] and s["graph"] == graph and s["version"] >= version
        app.key("Escape")
        app.wait(lambda s: not s["dialogs"] and s, "the message to close")

        # A clash asks; "Import renamed" adds double_conv2 in one undo step.
        app.menu("File>Import functions…")
        type_path(app, lib)
        app.wait(lambda s: functions(s) == ["double_conv"] and s, "the first import")
        app.menu("File>Import functions…")
        type_path(app, lib)
        app.wait(lambda s: "ask" in s["dialogs"] and s, "the clash question")
        app.shot(tmp_path / "clash.png")
        press(app, "ask:rename")
        s = app.wait(lambda s: functions(s) == ["double_conv", "double_conv2"] and s,
                     "the renamed import")
        palette_entry(app, "ƒ double_conv2")
        s = app.wait(lambda s: len(s["function_library"]["labels"]) == 2 and s, "two entries")
        assert s["function_library"]["labels"] == {   # same title: the names tell them apart
            "double_conv": "ƒ Double conv (double_conv)",
            "double_conv2": "ƒ Double conv (double_conv2)"}

        # Two functions: the export asks which, with a checklist.
        app.menu("File>Export functions…")
        s = app.wait(lambda s: "pick" in s["dialogs"] and s, "the checklist")
        assert s["function_library"]["picked"] == ["double_conv", "double_conv2"]
        app.shot(tmp_path / "checklist.png")
        press(app, "pick:double_conv2")
        app.wait(lambda s: s["function_library"]["picked"] == ["double_conv"] and s, "one ticked")
        press(app, "pick_ok")
        two = tmp_path / "two.dprog-lib.json"
        type_path(app, two)
        app.wait(lambda s: two.exists() and not s["dialogs"] and s, "the second library")
        assert list(json.loads(two.read_text())["functions"]) == ["double_conv"]
