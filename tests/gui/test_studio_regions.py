"""Loop bodies, quick add and the Problems panel in the real studio.

Opens a copy of sample_graphs/adaptive_depth.json, whose `refine` block is a while Loop
with a body. A body opens in the same editor (breadcrumbs, Esc goes up) and is edited the
same way as the main graph; Space opens quick add at the mouse; a click on a problem goes
to its block.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from harness import HarnessError, VirtualScreen, region_differs
from studio_driver import SAMPLES, Studio, center, studio

pytestmark = pytest.mark.gui

BODY = ["refine", "body"]


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    with studio(screen, tmp_path_factory.mktemp("regions"), SAMPLES / "adaptive_depth.json") as s:
        yield s


def body_ids(s: dict) -> set[str]:
    (loop,) = [n for n in s["graph"]["nodes"] if n["id"] == "refine"]
    return {n["id"] for n in loop["regions"]["body"]["nodes"]}


def test_open_a_loop_body_from_the_inspector_and_go_back_up(app: Studio) -> None:
    app.click(app.node_title("refine"))
    s = app.wait(lambda s: s["layout"]["open_body"].get("body") and s, "the Open body button")
    main = app.shot()
    app.click(center(s["layout"]["open_body"]["body"]))
    s = app.wait(lambda s: s["region"] == BODY and set(s["layout"]["nodes"]) == body_ids(s) and s,
                 "the body in the editor")
    assert s["layout"]["breadcrumbs"][-1].startswith("refine") and len(s["layout"]["breadcrumbs"]) == 2
    assert region_differs(main, app.shot(), app.canvas(), min_fraction=0.02)
    app.key("Escape")
    s = app.wait(lambda s: s["region"] == [] and s, "Esc to go back up")
    assert s["selection"] == ["refine"], "the loop we came from is selected"
    assert "refine" in app.wait(lambda s: s["layout"]["nodes"], "the main graph again")


def test_double_click_a_loop_opens_its_body(app: Studio) -> None:
    """ImGui counts double-clicks in frame time; below ~8 fps none can register (see
    docs/dev/dearpygui_notes.md), so a loaded machine gets an xfail naming the rate."""
    fps = 0.0
    for _ in range(3):
        s0, t0 = app.state(), time.monotonic()
        app.screen.double_click(*app.node_title("refine"))
        try:
            app.wait(lambda s: s["region"] == BODY and s, "the body", timeout=3)
            break
        except HarnessError:
            fps = (app.state()["frame"] - s0["frame"]) / (time.monotonic() - t0)
            time.sleep(0.5)
    else:
        if fps < 8:
            pytest.xfail(f"machine too loaded: the studio ran at {fps:.1f} fps, ImGui needs ~8")
        pytest.fail(f"no double-click registered in 3 tries at {fps:.1f} fps")
    app.key("Escape")
    app.wait(lambda s: s["region"] == [] and s, "back in the main graph")


def test_editing_a_body_works_like_the_main_graph(app: Studio) -> None:
    app.click(app.node_title("refine"))
    s = app.wait(lambda s: s["layout"]["open_body"].get("body") and s, "the Open body button")
    app.click(center(s["layout"]["open_body"]["body"]))
    s = app.wait(lambda s: s["region"] == BODY and s["layout"]["nodes"] and s, "the body")
    before = body_ids(s)
    x0, y0, x1, y1 = app.canvas()
    app.drag(app.palette_button("relu"), (x0 + 500, y0 + 380))
    s = app.wait(lambda s: body_ids(s) - before and s, "a ReLU inside the body")
    (new,) = body_ids(s) - before
    assert new.startswith("relu") and new not in {n["id"] for n in s["graph"]["nodes"]}
    app.click((x1 - 400, y1 - 40))
    app.key("ctrl+z")
    s = app.wait(lambda s: body_ids(s) == before and s, "undo inside the body")
    assert s["region"] == BODY
    app.key("Escape")
    app.wait(lambda s: s["region"] == [] and s, "back in the main graph")


def test_space_opens_quick_add_at_the_mouse(app: Studio) -> None:
    x0, y0, _, _ = app.canvas()
    spot = (x0 + 300, y0 + 450)   # below the (centred) row of blocks
    before_ids = {n["id"] for n in app.state()["graph"]["nodes"]}
    app.screen.move(*spot)
    app.key("space")
    app.wait(lambda s: s["quick_add_open"] and s["layout"]["quick_add_filter"] and s,
             "the quick-add popup")
    app.type_text("gelu")
    app.key("Return")
    s = app.wait(lambda s: {n["id"] for n in s["graph"]["nodes"]} - before_ids and s,
                 "the block from quick add")
    (new,) = {n["id"] for n in s["graph"]["nodes"]} - before_ids
    node = app.nodes(s)[new]
    assert node["type"] == "gelu" and not s["quick_add_open"]
    rect = app.wait(lambda s: s["layout"]["nodes"].get(new, {}).get("rect"), "it on screen")
    assert abs(rect[0] - 8 - spot[0]) <= 3 and abs(rect[1] - 8 - spot[1]) <= 3


def test_a_problem_click_selects_its_block(app: Studio) -> None:
    gelu = next(n["id"] for n in app.state()["graph"]["nodes"] if n["type"] == "gelu")
    app.click(center(app.layout()["tabs"]["problems"]))
    s = app.wait(lambda s: [p for p in s["layout"]["problems"] if p[4] == gelu] and s,
                 "the GELU's problem listed (it has no input)")
    row = next(p for p in s["layout"]["problems"] if p[4] == gelu)
    app.click(center(row[:4]))
    s = app.wait(lambda s: s["selection"] == [gelu] and s, "the GELU selected from the list")
    assert s["region"] == []
