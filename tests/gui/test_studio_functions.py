"""Functions in the real studio: calls on the canvas, opening a function's body, editing it
(every call changes, one undo step), the Inspector's function section, Ctrl+G, and save and
reopen. Real window under Xvfb, real mouse and keys.

One studio runs for the module on a copy of sample_graphs/unet.json (a `double_conv`
function with five calls, each with its own weights), and the tests build on each other in
file order. Each step is checked on the app's state (its test hook) and on screenshots,
which are kept in the module's folder (`calls.png`, `body.png`, `grouped.png`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import HarnessError, VirtualScreen, region_differs
from studio_driver import SAMPLES, Studio, center, studio

pytestmark = pytest.mark.gui

BODY = ["@", "double_conv"]
CALLS = ["down1", "down2", "bottom", "dec2", "dec1"]
VISIBLE_BOTTOM = 950   # px: the Inspector's lowest visible row (the status bar is below)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("functions")


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, work: Path) -> Iterator[Studio]:
    with studio(screen, work, SAMPLES / "unet.json") as s:
        yield s


def counts(s: dict) -> dict[str, int]:
    """Each call's parameter count, as the analysis has it."""
    return {site: v[0] for site, v in s["functions"]["sites"].items()}


def body_node(s: dict, node_id: str, function: str = "double_conv") -> dict:
    body = s["graph"]["functions"][function]["graph"]
    return next(n for n in body["nodes"] if n["id"] == node_id)


def reveal(app: Studio, find, what: str) -> list[float]:
    """Scroll the Inspector with the mouse wheel until the rect `find(state)` gives lies in
    its visible part (below its tabs, above the status bar), and return that rect."""
    for _ in range(20):
        app.wait_frames(2)
        r = app.wait(find, what)
        tab = app.state()["layout"]["tabs"]["inspector"]
        if r[1] > tab[3] + 4 and r[3] < VISIBLE_BOTTOM:
            return r
        app.screen.move(tab[0] + 150, tab[3] + 120)
        app.screen.xdotool("click", 5 if r[3] >= VISIBLE_BOTTOM else 4)
        app.screen.settle()
    raise AssertionError(f"could not scroll {what} into view")


def focus_canvas(app: Studio) -> None:
    """Click empty canvas (bottom left, away from the minimap and the nodes) so that no
    text field holds the keyboard."""
    x0, _, _, y1 = app.canvas()
    app.click((x0 + 40, y1 - 40))


def test_calls_show_their_function_and_their_wires(app: Studio, work: Path) -> None:
    s = app.wait(lambda s: all(c in s["layout"]["nodes"] for c in CALLS[:3]) and s,
                 "the calls on screen")
    down1 = s["layout"]["nodes"]["down1"]
    assert "ƒ double_conv" in down1["label"]
    # The pins are the function's Body input and output, so the wires to them draw.
    assert set(down1["pins"]) == {"in:x", "out:y"}
    assert down1["ports"]["out:y"].startswith("y  (B, 16, 8, 8)")
    assert "5 calls" in down1["info"]
    shot = app.shot(work / "calls.png")
    start, end = app.pin("image", "out", "y"), app.pin("down1", "in", "x")
    y = int(start[1])
    # the wire image → down1 is drawn: its middle differs from an empty canvas spot
    box = (int(start[0]) + 8, y - 3, int(end[0]) - 8, y + 3)
    x0, y0, _, _ = app.canvas()
    empty = (x0 + 20, y0 + 20, x0 + 20 + box[2] - box[0], y0 + 26)
    assert region_differs(shot.crop(empty).resize((box[2] - box[0], 6)),
                          shot.crop(box), None, min_fraction=0.05), "no wire into the call"


def test_double_click_a_call_opens_its_function(app: Studio, work: Path) -> None:
    """ImGui counts double-clicks in frame time (the studio adds its own detection); below a
    few fps none can register, so then the body opens through Edit › Open function and the
    test xfails naming the rate."""
    fps = 0.0
    for _ in range(3):
        s0, t0 = app.state(), time.monotonic()
        app.screen.double_click(*app.node_title("down2"))
        try:
            app.wait(lambda s: s["region"] == BODY and s, "the function's body", timeout=5)
            break
        except HarnessError:
            fps = (app.state()["frame"] - s0["frame"]) / (time.monotonic() - t0)
    else:
        app.click(app.node_title("down2"))
        app.wait(lambda s: s["selection"] == ["down2"] and s, "down2 selected")
        app.menu("Edit>Open function")
        app.wait(lambda s: s["region"] == BODY and s, "the body through the menu")
        pytest.xfail(f"no double-click registered at {fps:.1f} fps")
    s = app.wait(lambda s: "conv_a" in s["layout"]["nodes"] and s, "the body's blocks on screen")
    assert s["layout"]["breadcrumbs"] == ["unet", "ƒ double_conv"]
    assert s["functions"]["current"] == "double_conv"
    # Shapes inside the body are those at its first call, not blank.
    assert s["layout"]["nodes"]["conv_a"]["ports"]["out:y"].startswith("y  (B, 16, 8, 8)")
    assert "144 params" in s["layout"]["nodes"]["conv_a"]["info"]
    app.shot(work / "body.png")


def test_edit_in_the_body_changes_every_call(app: Studio, work: Path) -> None:
    s = app.wait(lambda s: s["region"] == BODY and s, "inside the function")
    before = counts(s)
    app.click(app.node_title("conv_a"))
    app.wait(lambda s: s["selection"] == ["conv_a"] and s, "conv_a selected")
    app.click(app.widget("out_channels"))
    app.key("ctrl+a")
    app.type_text("8")
    app.key("Return")
    s = app.wait(lambda s: body_node(s, "conv_a")["params"]["out_channels"] == 8 and s,
                 "out_channels 8 in the body")
    after = counts(s)
    assert set(after) == set(CALLS)
    assert all(after[c] != before[c] for c in CALLS), (before, after)
    assert s["layout"]["nodes"]["conv_a"]["ports"]["out:y"].startswith("y  (B, 8, 8, 8)")
    app.shot(work / "body_edited.png")
    focus_canvas(app)
    app.key("Escape")
    s = app.wait(lambda s: s["region"] == [] and s, "Esc back to the main graph")
    assert s["selection"] == ["down2"], "the call we came from is selected"
    s = app.wait(lambda s: s["layout"]["nodes"].get("down1") and s, "the main graph on screen")
    assert s["layout"]["breadcrumbs"] == ["unet"]


def test_undo_is_one_step_and_redo_brings_it_back(app: Studio) -> None:
    focus_canvas(app)
    edited = counts(app.state())
    channels = lambda s: body_node(s, "conv_a")["params"]["out_channels"]  # noqa: E731
    app.key("ctrl+z")
    s = app.wait(lambda s: channels(s) == 16 and s, "one undo of the body edit")
    original = counts(s)
    assert all(original[c] != edited[c] for c in CALLS)
    assert s["region"] == BODY, "undo goes back to where the edit was made"
    app.key("ctrl+shift+z")
    s = app.wait(lambda s: channels(s) == 8 and s, "redo with ctrl+shift+z")
    assert counts(s) == edited
    app.key("ctrl+z")
    app.wait(lambda s: channels(s) == 16 and s, "undo again")
    app.key("ctrl+y")
    s = app.wait(lambda s: channels(s) == 8 and s, "redo with ctrl+y")
    assert counts(s) == edited
    app.key("Escape")
    app.wait(lambda s: s["region"] == [] and s["layout"]["nodes"].get("down1") and s, "back up")


def test_the_inspector_lists_the_calls_and_edits_the_function(app: Studio) -> None:
    app.click(app.node_title("down1"))
    s = app.wait(lambda s: s["selection"] == ["down1"] and s["functions"]["inspector"]["jump"]
                 and s, "the call's function in the inspector")
    view = s["functions"]["inspector"]
    assert view["function"] == "double_conv"
    assert [line.split()[0] for line in view["calls"]] == CALLS
    assert view["values"]["weights"] == "own" and view["buttons"]["copy"]
    # rename the function (its title) in the inspector
    field = reveal(app, lambda s: s["functions"]["inspector"]["fields"]["title"], "the title")
    app.click(center(field))
    app.key("ctrl+a")
    app.type_text("DoubleConv block")
    app.key("Return")
    s = app.wait(lambda s: s["graph"]["functions"]["double_conv"]["title"] == "DoubleConv block"
                 and s, "the new title")
    assert s["status"] == "Describe function"
    # jump to the last call
    jump = reveal(app, lambda s: next(j for j in s["functions"]["inspector"]["jump"]
                                      if j[4] == "dec1" and j[2] > j[0])[:4],
                  "the jump button of dec1")
    app.click(center(jump))
    s = app.wait(lambda s: s["selection"] == ["dec1"] and s, "the jump to dec1")
    x0, y0, x1, y1 = app.canvas()
    app.wait(lambda s: (r := s["layout"]["nodes"]["dec1"]["rect"]) and x0 <= r[0] and r[2] <= x1
             and y0 <= r[1] and r[3] <= y1, "the call jumped to, centred in view")
    app.key("ctrl+z")   # the title again (the jump changed no graph)
    app.wait(lambda s: s["graph"]["functions"]["double_conv"]["title"] != "DoubleConv block"
             and s, "undo of the title")


def test_ctrl_g_groups_the_selection_into_a_function(app: Studio, work: Path) -> None:
    app.key("Home")   # fit: the start of the U-Net in view again
    s0 = app.wait_frames(3)
    before_fns = set(s0["graph"]["functions"])
    outputs, total = s0["functions"]["outputs"], s0["functions"]["total_params"]
    app.click(app.node_title("pool1"))
    app.wait(lambda s: s["selection"] == ["pool1"] and s, "pool1 selected")
    title = app.node_title("down2")
    app.screen.xdotool("keydown", "ctrl")
    app.screen.settle()
    try:
        app.click(title)
    finally:
        app.screen.xdotool("keyup", "ctrl")
        app.screen.settle()
    app.wait(lambda s: s["selection"] == ["down2", "pool1"] and s, "ctrl-click adds down2")
    app.key("ctrl+g")
    s = app.wait(lambda s: set(s["graph"]["functions"]) - before_fns and s, "a new function")
    (name,) = set(s["graph"]["functions"]) - before_fns
    ids = app.nodes(s)
    assert "pool1" not in ids and "down2" not in ids
    (call,) = [i for i, n in ids.items() if n["type"] == "call" and n["params"]["function"] == name]
    assert s["selection"] == [call] and s["status"] == "Group into function"
    # The model computes the same: same outputs, same parameter count, no new problems.
    assert s["functions"]["outputs"] == outputs and s["functions"]["total_params"] == total
    assert not [d for d in s["diagnostics"] if d[2] == "error"]
    s = app.wait(lambda s: s["layout"]["nodes"].get(call) and s, "the new call on screen")
    assert f"ƒ {name}" in s["layout"]["nodes"][call]["label"]
    assert set(s["layout"]["nodes"][call]["pins"]) == {"in:x", "out:y"}
    app.shot(work / "grouped.png")


def test_right_click_a_call_makes_a_copy_and_ungroups(app: Studio) -> None:
    """The block menu of a Call: Make a copy detaches it into a new function; Ungroup puts
    the body in its place. Both undo."""
    s0 = app.state()
    fns = set(s0["graph"]["functions"])
    app.screen.click(*app.node_title("down1"), button=3)
    s = app.wait(lambda s: s["context_menu"] and s["context_menu"]["kind"] == "block"
                 and s["context_menu"]["entries"] and s, "the block menu of a call")
    entries = s["context_menu"]["entries"]
    assert {"Open function »", "Ungroup", "Make a copy", "Group into function"} <= set(entries)
    app.click(center(entries["Make a copy"][:4]))
    s = app.wait(lambda s: set(s["graph"]["functions"]) - fns and s, "a copy of the function")
    (copy,) = set(s["graph"]["functions"]) - fns
    assert app.nodes(s)["down1"]["params"]["function"] == copy
    assert sorted(c for _, c in s["functions"]["calls"]["double_conv"]) == sorted(CALLS[1:])
    app.screen.click(*app.node_title("down1"), button=3)
    s = app.wait(lambda s: s["context_menu"] and s["context_menu"]["kind"] == "block"
                 and s["context_menu"]["entries"] and s, "the block menu again")
    app.click(center(s["context_menu"]["entries"]["Ungroup"][:4]))
    s = app.wait(lambda s: "down1" not in app.nodes(s) and s, "down1 inlined")
    assert {"conv_a", "relu_b"} <= set(app.nodes(s))
    assert s["functions"]["total_params"] == s0["functions"]["total_params"]
    focus_canvas(app)
    app.key("ctrl+z", "ctrl+z")
    s = app.wait(lambda s: set(s["graph"]["functions"]) == fns and "down1" in app.nodes(s) and s,
                 "both undone")
    assert app.nodes(s)["down1"]["params"]["function"] == "double_conv"


def test_save_and_reopen_keeps_functions_and_calls(app: Studio, screen: VirtualScreen,
                                                   work: Path) -> None:
    focus_canvas(app)
    app.key("ctrl+s")
    s = app.wait(lambda s: not s["dirty"] and s, "the save")
    saved = json.loads((work / "unet.json").read_text())
    assert saved == s["graph"]
    functions = set(saved["functions"])
    assert {"double_conv"} < functions
    calls = sorted(n["id"] for n in saved["nodes"] if n["type"] == "call")
    app.key_to_quit("ctrl+q")
    app.app.proc.wait(timeout=60)
    assert app.app.proc.returncode == 0
    with studio(screen, work, work / "unet.json") as again:
        s2 = again.wait(lambda s: s["layout"]["nodes"] and s, "the reopened graph on screen")
        assert s2["graph"] == saved and not s2["dirty"]
        assert set(s2["graph"]["functions"]) == functions
        for c in calls:
            label = again.wait(lambda s, c=c: s["layout"]["nodes"][c]["label"], f"{c} drawn")
            assert "ƒ " in label
