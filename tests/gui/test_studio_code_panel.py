"""The code panel on a real screen: the selected node's lines are coloured and scrolled into
view, also deep in a long file, and an edit shows up in the panel a frame or so later.

The studio runs in a child process on the module's Xvfb screen, driven through its
build/step API (as bench/studio_child.py does); the child reports where Dear PyGui drew the
lines and saves a screenshot, which the test checks for the highlight colour.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness import VirtualScreen, color_fraction
from PIL import Image
from studio_driver import REPO

pytestmark = pytest.mark.gui

HIGHLIGHT = (255, 214, 120)   # app/views/theme.py code_highlight

CHILD = r"""
import json, sys, time
import dearpygui.dearpygui as dpg
from app.commands import SetParam
from app.studio import build_studio
from bench.graphs import chain

shot = sys.argv[1]
studio = build_studio(chain(300), width=1600, height=1000)
dpg.set_value(studio.right_tabs, studio.code_tab)

def frames(n):
    for _ in range(n):
        studio.frame()
        time.sleep(0.05)

def report(node):
    panel = studio.code
    first = panel.highlighted[0]
    box = dpg.get_item_state(panel.lines_box)      # a child window: scroll_pos, rect_size
    line = dpg.get_item_state(panel.items[first])  # pos: in the scrolled content
    return {"node": node, "first": first, "texts": [panel.texts[i] for i in panel.highlighted],
            "scroll": box["scroll_pos"][1], "height": box["rect_size"][1],
            "line_y": line["pos"][1], "drawn": line["visible"]}

frames(10)          # the code appears, and its lines get drawn once
out = []
for node in ("n201", "n41"):     # deep in the file, then back up
    studio.state.select([node])
    frames(12)
    out.append(report(node))
studio.state.select(["n201"])
frames(12)
studio.state.do(SetParam((), "n201", "out_features", 23))
frames(12)
out.append(report("n201 edited"))
dpg.output_frame_buffer(shot)
frames(3)
print("RESULT " + json.dumps(out))
studio.close()
"""


def test_the_selected_nodes_lines_are_coloured_and_in_view(screen: VirtualScreen,
                                                            tmp_path: Path) -> None:
    shot = tmp_path / "code.png"
    env = screen.env({"DPROG_STATE_DIR": str(tmp_path / "state")})
    done = subprocess.run([sys.executable, "-c", CHILD, str(shot)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    deep, up, edited = json.loads(line[len("RESULT "):])

    assert deep["first"] > 100   # far below the first screenful
    assert deep["texts"][0].strip() == "self.n201 = nn.Linear(in_features=16, out_features=16)"
    assert up["texts"][0].strip() == "self.n41 = nn.Linear(in_features=16, out_features=16)"
    assert edited["texts"][0].strip() == "self.n201 = nn.Linear(in_features=16, out_features=23)"
    for r in (deep, up, edited):
        assert r["drawn"], f"{r['node']}: its first line was clipped away"
        assert 0 <= r["line_y"] - r["scroll"] <= r["height"] - 15, \
            f"{r['node']}: its first line is out of view: {r}"

    img = Image.open(shot).convert("RGB")
    code_panel = (1130, 620, 1580, 950)
    assert color_fraction(img, HIGHLIGHT, code_panel, tolerance=40) > 0.001, \
        "no highlighted line in the code panel"
