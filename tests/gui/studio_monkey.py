"""The monkey (tests/monkey.py) at the real studio window, one random command per frame.

    python tests/gui/studio_monkey.py --work DIR [--steps N] [--seed S] [--graph FILE]

Runs on $DISPLAY (a test's Xvfb). It builds the real studio around its own `AppState`
(`app.studio.build_studio(state=...)`), and in its own frame loop applies one random user
action per frame through that state - the command layer the views use: do, undo, redo,
paste, open, save... - now and then a studio-level action (switch a tab so the code or
problems view draws, fit the view, jump to a problem as a click in Problems does, select
all, the editor's own handlers for a pin-to-pin drag, a wire's Ctrl+click, a palette
drop, a node drag, Del on wires, and a training run failing inside a random block), then
calls `studio.frame()` so every view really redraws. After each frame it checks
the monkey's invariants (valid data, JSON round trip, refused commands change nothing,
undo-all/redo-all) and the window's:
- no exception was caught by the studio's guarded callbacks and views;
- the viewport is still running and the frame counter moved;
- the editor draws exactly the current region: its nodes are the region's node objects,
  each with a live item, its wires are the region's drawable edges, and the node editor
  holds no other node or wire items (nothing leaked, nothing stale);
- every drawn node is where the model says (grid = position - view offset), titled from
  its current label, outlined exactly when selected, and shows a problem line exactly when
  it (or, for a loop or branch, its body) has an error or warning;
- the Problems list has a row per diagnostic (a failed run's included), the breadcrumbs lead to the current body,
  the window title and status bar say what the state says, and the inspector shows the one
  selected block with its current values (or the summary when not exactly one is).

At the end it saves the last frame with `dpg.output_frame_buffer` and writes
DIR/monkey_results.json: steps, seed, seconds, frames, the first failure (with its step,
action and traceback; the run stops there, since later checks would only repeat it) and
how often each action ran. Exit status 0 when it ran to the end without a failure.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import dearpygui.dearpygui as dpg  # noqa: E402
from monkey import Monkey, new_state  # noqa: E402

from app.studio import Studio, build_studio  # noqa: E402
from app.views.diagnostics import split_path  # noqa: E402
from engine.core.graph import Graph  # noqa: E402
from nodes import lookup  # noqa: E402

# What the window adds to the command layer: each runs the studio's own handler for an
# event, as Dear PyGui would call it (a pin-to-pin drag, a Ctrl+click on a wire, a drop from
# the palette, a node dragged then released, Ctrl+C/X/V/D, Del with wires selected...).
STUDIO_ACTIONS = ("tab", "fit", "go_to_problem", "select_all", "undo_redo_keys", "link",
                  "link", "delink", "drop", "drag_node", "drag_node", "clipboard",
                  "delete_wires", "run_failure")
STUDIO_ACTION_RATE = 0.3   # share of frames that also get a studio-level action


def drawable_edges(graph: Graph) -> set:
    """The wires the editor can draw: both ends are ports the nodes have now (a wire to a
    port that no longer exists is left to the analysis to report)."""
    ports = {}
    for node in graph.nodes:
        spec = lookup(node.type)
        try:
            ins, outs = spec.port_lists(node)
        except Exception:
            ins, outs = (), ()
        ports[node.id] = ({p.name for p in ins}, {p.name for p in outs})
    return {e for e in graph.edges
            if e.src[1] in ports.get(e.src[0], ((), ()))[1]
            and e.dst[1] in ports.get(e.dst[0], ((), ()))[0]}


def loud(diags: list) -> bool:
    return any(d.severity in ("error", "warning") for d in diags)


def check_window(studio: Studio, frames_before: int) -> None:
    state, editor = studio.state, studio.editor
    assert not studio.internal_errors, studio.internal_errors
    assert dpg.is_dearpygui_running(), "the viewport stopped"
    assert studio.frames == frames_before + 1, (studio.frames, frames_before)
    here = state.current_graph()
    assert editor.region == state.region, (editor.region, state.region)
    assert editor.graph is here, "the editor drew another graph than the current region"
    assert set(editor.nodes) == {n.id for n in here.nodes}, (sorted(editor.nodes),
                                                             [n.id for n in here.nodes])
    outlined = {theme for (_, selected), theme in studio.theme._nodes.items() if selected}
    for node in here.nodes:
        view = editor.nodes[node.id]
        assert view.node is node, f"node {node.id} is drawn from a stale Node"
        assert dpg.does_item_exist(view.item), f"node {node.id} has no item"
        grid, want = dpg.get_item_pos(view.item), editor._grid(node.pos)
        settled = not editor._check_moves   # else a drag's release is still being read
        assert not settled or (abs(grid[0] - want[0]) < 1 and abs(grid[1] - want[1]) < 1), \
            f"node {node.id} drawn at {grid}, the model says {want}"
        assert dpg.get_item_label(view.item) == editor._title(node, lookup(node.type)), node.id
        assert (view.theme in outlined) == (node.id in state.selection), \
            f"node {node.id}: outline does not match the selection"
        has_problem = loud(state.diagnostics_for(node.id)) or (
            view.regions and loud(state.diagnostics_inside(node.id)))
        assert bool(view.diag[1]) == has_problem, (node.id, view.diag[1],
                                                   state.diagnostics_for(node.id))
    assert set(editor.links) == drawable_edges(here), (set(editor.links) ^ drawable_edges(here))
    for edge, item in editor.links.items():
        assert dpg.does_item_exist(item), f"wire {edge} has no item"
    kinds: dict[str, int] = {}
    for slot in dpg.get_item_children(editor.editor).values():
        for item in slot:
            kind = dpg.get_item_type(item).rsplit("::", 1)[-1]
            kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds.get("mvNode", 0) == len(here.nodes), ("node items", kinds, len(here.nodes))
    assert kinds.get("mvNodeLink", 0) == len(editor.links), ("wire items", kinds)
    assert len(studio.diagnostics.rows) == min(500, len(state.diagnostics)), \
        ("problem rows", len(studio.diagnostics.rows), len(state.diagnostics))
    crumbs = [b for b in dpg.get_item_children(editor.breadcrumb_group, 1) or []
              if dpg.get_item_type(b) == "mvAppItemType::mvButton"]
    assert len(crumbs) == len(state.region) // 2 + 1, ("breadcrumbs", len(crumbs), state.region)
    assert dpg.get_viewport_title() == state.title, (dpg.get_viewport_title(), state.title)
    assert dpg.get_value(studio.status_text) == state.status, \
        (dpg.get_value(studio.status_text), state.status)
    check_inspector(studio)


def check_inspector(studio: Studio) -> None:
    state, inspector = studio.state, studio.inspector
    here = state.current_graph()
    node = here.get(next(iter(state.selection))) if len(state.selection) == 1 else None
    assert inspector._node is node, ("inspector shows", inspector._node, "selected", node)
    if node is None:
        return
    assert dpg.get_value(inspector._label) == node.label, "the label field is stale"
    for name, (widget, param) in inspector.widgets.items():
        value = node.params.get(name, param.default)
        shown = dpg.get_value(widget)
        if param.kind == "float":   # the widget holds a float32
            assert abs(shown - float(value)) <= 1e-6 * max(1.0, abs(float(value))), (name, shown, value)
            continue
        want = param.kind_row.to_widget(value)   # what its kind's widget holds for the value
        assert shown == want, f"{node.id}.{name}: the inspector shows {shown!r}, the node has {want!r}"


class StudioMonkey:
    """Adds the window's own actions to the command-layer monkey."""

    def __init__(self, studio: Studio, monkey: Monkey, seed: int) -> None:
        self.studio, self.monkey = studio, monkey
        self.rng = random.Random(seed + 1_000_003)
        self.counts: dict[str, int] = {}

    def act(self) -> str:
        name = self.rng.choice(STUDIO_ACTIONS)
        self.counts[name] = self.counts.get(name, 0) + 1
        getattr(self, f"act_{name}")()
        return name

    def act_tab(self) -> None:
        s = self.studio
        tabs = [(s.right_tabs, s.inspector_tab), (s.right_tabs, s.code_tab),
                (s.right_tabs, s.problems_tab), (s.right_tabs, s.settings_tab),
                (s.dock_tabs, s.metrics_tab), (s.dock_tabs, s.gradient_tab)]
        bar, tab = self.rng.choice(tabs)
        dpg.set_value(bar, tab)

    def act_fit(self) -> None:
        self.studio.fit_view()

    def act_go_to_problem(self) -> None:
        placed = [d for d in self.studio.state.diagnostics if d.node]
        if placed:
            region, node_id = split_path(self.rng.choice(placed).node)
            self.studio.go_to_node(region, node_id)

    def act_select_all(self) -> None:
        self.studio.select_all()

    def act_undo_redo_keys(self) -> None:
        """What Ctrl+Z / Ctrl+Shift+Z run (they also drop imnodes' own selection)."""
        (self.studio.undo if self.rng.random() < 0.6 else self.studio.redo)()

    def act_link(self) -> None:
        """A drag from one pin to another: imnodes hands the two attributes to the link
        callback (in either order; any two pins, so wrong-way and refused ones too)."""
        editor = self.studio.editor
        attrs = list(editor.attr_port)
        if len(attrs) >= 2:
            editor._on_link(editor.editor, tuple(self.rng.sample(attrs, 2)), None)

    def act_delink(self) -> None:
        """Ctrl+click on a wire."""
        editor = self.studio.editor
        if editor.item_link:
            editor._on_delink(editor.editor, self.rng.choice(list(editor.item_link)), None)

    def act_drop(self) -> None:
        """A block dropped from the palette (at wherever the mouse is)."""
        blocks = list(self.studio.palette.buttons.values())
        self.studio.editor._on_drop(self.studio.editor.canvas, self.rng.choice(blocks), None)

    def act_drag_node(self) -> None:
        """imnodes moves a node while the mouse drags it; the release makes it a MoveNodes."""
        editor = self.studio.editor
        if editor.nodes:
            view = self.rng.choice(list(editor.nodes.values()))
            x, y = dpg.get_item_pos(view.item)
            dpg.set_item_pos(view.item, (x + self.rng.uniform(-300, 300),
                                         y + self.rng.uniform(-300, 300)))
            editor.mouse_released()

    def act_clipboard(self) -> None:
        studio = self.studio
        self.rng.choice((studio.copy, studio.cut, studio.paste, studio.paste, studio.duplicate))()

    def act_run_failure(self) -> None:
        """A training run of this very graph failed inside a random block: what the studio
        does when the trainer's Failed event names a node (mark it, go to it)."""
        state, run = self.studio.state, self.studio.run
        paths = [path for path, _ in state.graph.walk()]
        if paths:
            run.graph, run.failed_node = state.graph, self.rng.choice(paths)
            run.failed_kind, run.failed_text = "error", "RuntimeError: the monkey did it"
            self.studio._show_run_failure()
            assert state.run_problems and state.run_problems[0].node == run.failed_node

    def act_delete_wires(self) -> None:
        """Del with wires (and maybe blocks) selected: one undo step for all of it."""
        editor = self.studio.editor
        if editor.links:
            editor.selected_edges = self.rng.sample(list(editor.links),
                                                    self.rng.randint(1, min(3, len(editor.links))))
            self.studio.delete()


def run(steps: int, seed: int, work: Path, graph: Path | None) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    state = new_state(work)
    if graph is not None:
        local = work / graph.name
        shutil.copy(graph, local)
        assert state.open(local), state.status
    studio = build_studio(state=state)
    monkey = Monkey(seed, work, state)
    window = StudioMonkey(studio, monkey, seed)
    shot = work / "monkey_last_frame.png"
    failure: dict[str, Any] | None = None
    started = time.perf_counter()
    done = 0
    try:
        for _ in range(3):    # the first frames, before any action
            studio.frame()
        for k in range(steps):
            action = ""
            try:
                monkey.step(k)
                action = monkey.last_action
                if window.rng.random() < STUDIO_ACTION_RATE:
                    action += "+" + window.act()
                    monkey.step_checks(k)   # the studio's actions must keep the invariants too
                frames = studio.frames
                studio.frame()
                check_window(studio, frames)
            except Exception as e:
                failure = {"step": k, "action": action or monkey.last_action, "error": repr(e)[:2000],
                           "traceback": traceback.format_exc()[-4000:],
                           "status": state.status, "region": list(state.region)}
                break
            done = k + 1
        monkey_history_ok = failure is None
        if failure is None:
            try:
                monkey.check_history()
                frames = studio.frames
                studio.frame()
                check_window(studio, frames)
            except Exception as e:
                monkey_history_ok = False
                failure = {"step": steps, "action": "final undo/redo all", "error": repr(e)[:2000],
                           "traceback": traceback.format_exc()[-4000:]}
        seconds = time.perf_counter() - started
        shot.unlink(missing_ok=True)
        dpg.output_frame_buffer(file=str(shot))
        for _ in range(10):   # the request is served by the next rendered frame
            studio.frame()
            if shot.exists():
                break
        return {"steps": done, "asked": steps, "seed": seed, "seconds": round(seconds, 2),
                "frames": studio.frames, "failure": failure, "history_ok": monkey_history_ok,
                "counts": monkey.counts, "studio_counts": window.counts,
                "screenshot": str(shot) if shot.exists() else None,
                "graph_nodes": sum(1 for _ in state.graph.walk())}
    finally:
        studio.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--graph", type=Path, default=None)
    args = parser.parse_args()
    results = run(args.steps, args.seed, args.work, args.graph)
    (args.work / "monkey_results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k not in ("counts",)}, default=str))
    return 0 if results["failure"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
