"""The studio's test hook: what the window shows, as JSON, for the real-window tests.

With DPROG_TEST_STATE=path set, `Studio.step` calls `TestHook.write` every frame: a snapshot
of the state (graph document, selection, region, dirty, status, run status, diagnostics,
metric points) and the screen geometry of palette buttons, nodes, pins and widgets goes to
that path, atomically. `close()` adds a last one saying how the workers ended. GUI tests poll
the file and sync their input on its frame number.

Only for tests: the studio never reads any of this back. It reads widget rects, so it
imports dearpygui, and it lives with the views.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg

from engine.core.fileformat import graph_to_document

from .editor import NODE_PADDING

# The studio (app.studio.Studio) is typed loosely: it imports this module, and views never
# import the studio back.
Studio = Any


class TestHook:
    """Writes one studio's snapshots to `path`."""

    __test__ = False   # not a pytest test class, whatever its name

    def __init__(self, studio: Studio, path: str) -> None:
        self.studio = studio
        self.path = Path(path)
        self.last: dict[str, Any] = {}
        self._doc: tuple[Any, Any] = (None, None)   # (graph, its document), made once per graph

    def write(self, snapshot: dict | None = None) -> None:
        """The snapshot of this frame (or `snapshot`), written atomically."""
        if snapshot is None:
            snapshot = self.last = self.snapshot()
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(snapshot, sort_keys=True, default=str))
        os.replace(tmp, self.path)

    def write_closing(self) -> None:
        """After `close()`: the last frame's snapshot with how the workers ended."""
        self.write({**self.last, "closing": self.studio.closing})

    def snapshot(self) -> dict:
        studio = self.studio
        state, run = studio.state, studio.run
        if self._doc[0] is not state.graph:
            self._doc = (state.graph, graph_to_document(state.graph))
        return {
            "graph": self._doc[1],
            "diagnostics": [[d.code, d.node, d.severity, d.message] for d in state.diagnostics],
            "problems_list": [[d.code, d.node] for d in studio.diagnostics.rows.values()],
            "closing": studio.closing,
            "region": list(state.region),
            "selection": sorted(state.selection),
            "selected_wires": [[*e.src, *e.dst] for e in studio.editor.selected_edges],
            "dirty": state.dirty,
            "status": state.status,
            "status_level": state.status_level,
            "title": state.title,
            "file": str(state.file) if state.file else None,
            "version": state.version,
            "run": {"status": run.status, "step": run.step, "total_steps": run.total_steps,
                    "metric_points": run.metric_points, "grad_snapshots": run.grad_version,
                    "boundaries": run.boundary_version,
                    "plot_updates": studio.run_panel.plot_updates,
                    "parameters": {k: v.y[-1] for k, v in run.parameter_values.items() if v.y},
                    "parameter_lines": len(studio.run_panel.param_series),
                    "image_grids": run.images_version,
                    "image_updates": studio.run_panel.image_updates,
                    "recolors": studio.gradients.recolors, "message": run.message,
                    "colored_links": sum(1 for t in studio.editor.link_theme.values() if t),
                    "colored_edges": sorted(str(e) for e, t in studio.editor.link_theme.items() if t)},
            "torch_ready": studio.torch_ready,
            "frame": studio.frames,
            "callbacks": studio.callback_log,
            "mouse": list(dpg.get_mouse_pos(local=False)),
            "quick_add_open": studio.quick_add.visible,
            # Typing reaches the filter only once it holds the keyboard focus.
            "quick_add_ready": studio.quick_add.visible and bool(
                dpg.get_item_state(studio.quick_add.filter).get("active")),
            "inspector_errors": {name: dpg.get_value(item) for name, item in
                                 studio.inspector.errors.items() if dpg.get_value(item)},
            "internal_errors": list(studio.internal_errors),
            "inspector_ports": list(studio.inspector.port_lines),
            "gradient_charts": gradient_charts(studio),
            "progress_text": dpg.get_item_configuration(studio.run_panel.progress)["overlay"],
            "gradient_legend": dpg.is_item_shown(studio.gradients.legend),
            "data_preview": {"kind": studio.preview.kind,
                             "label": dpg.get_item_label(studio.run_panel.boundary_plot),
                             "accuracy": next(dpg.get_item_label(p) for p, kind
                                              in studio.run_panel.plots if kind == "acc")},
            "context_menu": ({"kind": studio.context.kind,
                              "entries": {e.label: [*r, e.enabled] for row, e in
                                          studio.context.rows.items() if (r := rect(row))}}
                             if studio.context.visible else None),
            "guide": {"open": studio.guide.visible, "done": list(studio.guide.done)},
            "tips_visible": [studio.panel_tips.showing] if studio.panel_tips.showing else [],
            "dialog_open": studio.dialogs.open,
            "generate": {"shown": studio.generate_window.shown,
                         "busy": studio.generate_window.busy,
                         "text": dpg.get_value(studio.generate_window.output),
                         "error": dpg.get_value(studio.generate_window.status)},
            "dialogs": studio.dialogs.showing(),
            "import_module": {"running": studio.import_dialog.running,
                              "classes": studio.import_dialog.classes,
                              "error": dpg.get_value(studio.import_dialog.error),
                              "values": {k: dpg.get_value(w) for k, w
                                         in studio.import_dialog.fields.items()},
                              "fields": {k: rect(w) for k, w
                                         in studio.import_dialog.fields.items()},
                              "class_buttons": {k: rect(b) for k, b
                                                in studio.import_dialog.class_buttons.items()}},
            "runs": {**studio.runs_view.snapshot(), "live": studio.live.snapshot(),
                     "settings": {k: rect(w) for k, w in studio.settings.widgets.items()},
                     "setting_values": {k: dpg.get_value(w)
                                        for k, w in studio.settings.widgets.items()}},
            "inside": {"wire": studio.wire_view.snapshot(), "profile": studio.profile.snapshot(),
                       "fault": studio.fault.snapshot(), "start_from": str(studio.history.pending.folder)
                       if studio.history.pending else None},
            "layout": geometry(studio),
            "function_library": function_library(studio),
            "functions": function_view(studio),
        }


def rect(item: int) -> list[float] | None:
    """[x0, y0, x1, y1] of a drawn item on the screen; None when it is not drawn."""
    if not item or not dpg.does_item_exist(item):
        return None
    try:
        lo, hi = dpg.get_item_rect_min(item), dpg.get_item_rect_max(item)
    except (KeyError, SystemError):
        return None
    return [lo[0], lo[1], hi[0], hi[1]] if hi[0] > lo[0] else None


# The studio theme's paddings (app/views/theme.py), which place menus and their popups.
FRAME_PAD_Y, SPACING_X, WINDOW_PAD = 4, 8, (10, 8)


def menu_geometry(studio: Studio) -> dict[str, list[float]]:
    """path ("View", "File>Open sample>moons_mlp") → [x0, y0, x1, y1] of each menu-bar title
    and of each item of an open menu. Dear PyGui reports no rects for menus: a menu gives
    its position (in the menu bar, or in its parent's popup) and, while open, its popup's
    size; the rects are worked out here the way ImGui places menu popups."""
    font = studio.theme.font

    def text_size(text: str) -> tuple[float, float]:
        size = dpg.get_text_size(text, font=font) if font else None   # None before frame 1
        return (size[0], size[1]) if size else (8.0 * len(text), 16.0)

    text_h = text_size("Ag")[1]
    bar_h = text_h + 2 * FRAME_PAD_Y
    items = studio.menu.items
    out: dict[str, list[float]] = {}
    popups: dict[str, tuple[float, float, float]] = {}   # open menu → popup x, y, width
    for path, item in items.items():   # parents come before their children
        state = dpg.get_item_state(item)
        parent, _, label = path.rpartition(">")
        x, y = state.get("pos", (0, 0))
        if not parent:
            w = text_size(label)[0]
            out[path] = [x - SPACING_X / 2, 0, x + w + SPACING_X / 2, bar_h]
            origin = (x - 1 - SPACING_X // 2, bar_h)
        elif parent in popups:
            px, py, pw = popups[parent]
            out[path] = [px + x, py + y, px + pw - WINDOW_PAD[0], py + y + text_h]
            origin = (px + pw, py + y - WINDOW_PAD[1])
        else:
            continue
        size = state.get("rect_size") or (0, 0)
        if size[0] > 0:   # open (a closed submenu keeps its size, but its parent is closed)
            popups[path] = (*origin, size[0])
    return out


def function_view(studio: Studio) -> dict:
    """What the studio shows of functions: the current one (a body's region), the
    Inspector's function section (its calls, ties, buttons and fields, with rects), and
    what the state says of each function's calls."""
    state, inspector = studio.state, studio.inspector
    return {"current": state.function,
            "analysis_prefix": state.analysis_prefix,
            "inspector": {"function": inspector.function_name,
                          "calls": list(inspector.call_lines),
                          "ties": list(inspector.tie_lines),
                          "buttons": {k: rect(b) for k, b in inspector.function_buttons.items()},
                          "jump": [[*(rect(b) or [0, 0, 0, 0]), target[1]]
                                   for b, target in inspector.call_buttons.items()],
                          "fields": {k: rect(w) for k, w in inspector.function_widgets.items()},
                          "values": {k: dpg.get_value(w) for k, w
                                     in inspector.function_widgets.items()}},
            "calls": {name: [[list(region), call] for region, call in state.function_calls(name)]
                      for name in state.graph.functions},
            # each call site's parameter count and output types, from the analysis
            "sites": {path: [state.analysis.param_counts.get(path),
                             {k: str(t) for k, t in state.analysis.outputs.get(path, {}).items()}]
                      for path, node in state.graph.walk() if node.type == "call"},
            "total_params": state.total_params,
            "outputs": {n.id: {k: str(t) for k, t in state.analysis.inputs.get(n.id, {}).items()}
                        for n in state.graph.nodes if n.type == "output"}}


def gradient_charts(studio: Studio) -> dict:
    """What the Gradient flow tab shows: chart titles, whether the heatmap is drawn, the
    history's grad-axis limits, and each chart's row labels with the room each one has."""
    g = studio.gradients
    font_h = 16.0
    rows = {}
    for name, axis, plot in (("bars", g.bar_axis_y, g.bar_plot), ("heat", g.heat_axis_y, g.heat_plot)):
        ticks = g.ticks.get(axis, ())
        lo, hi = dpg.get_axis_limits(axis)
        height = (dpg.get_item_rect_size(plot) or (0, 0))[1]
        per_unit = max(height - 60.0, 1.0) / max(hi - lo, 1e-9)
        gaps = [abs(a[1] - b[1]) * per_unit for a, b in itertools.pairwise(ticks)]
        rows[name] = {"labels": [t[0] for t in ticks], "min_gap_px": min(gaps, default=None),
                      "line_px": font_h}
    return {"bars_title": dpg.get_item_label(g.bar_plot),
            "heat_title": dpg.get_item_label(g.heat_plot),
            "heat_shown": dpg.is_item_shown(g.heat),
            "history_limits": list(dpg.get_axis_limits(g.hist_axis)),
            "history_title": dpg.get_value(g.hist_title),
            "rows": rows}


def node_geometry(studio: Studio) -> dict:
    """node id → its rect, where to grab its title, its pins and its problem text."""
    nodes = {}
    for node_id, view in studio.editor.nodes.items():
        r = rect(view.item)
        if r is None:
            continue
        pins = {}
        for io, port in view.attrs:
            tr = rect(view.port_text[(io, port)][0])
            if tr is None:
                continue
            y = (tr[1] + tr[3]) / 2
            x = r[2] + NODE_PADDING[0] if io == "out" else r[0] - NODE_PADDING[0]
            pins[f"{io}:{port}"] = [x, y]
        nodes[node_id] = {"rect": r, "title": [r[0] + 10, r[1] + 6], "pins": pins,
                          "problem": view.diag[1], "label": dpg.get_item_label(view.item),
                          "info": view.info[1],
                          "ports": {f"{io}:{port}": slot[1] for (io, port), slot
                                    in view.port_text.items()}}
    return nodes


def geometry(studio: Studio) -> dict:
    """Where the things a test clicks are on the screen."""
    canvas = studio.editor.canvas_origin()
    size = dpg.get_item_rect_size(studio.editor.canvas)
    inspector = {name: rect(w) for name, (w, _) in studio.inspector.widgets.items()}
    if studio.inspector._label:
        inspector["label"] = rect(studio.inspector._label)
    return {"palette": {block: rect(button) for button, block in studio.palette.buttons.items()
                        if dpg.is_item_shown(button)},
            "nodes": node_geometry(studio),
            "canvas": [canvas[0], canvas[1], canvas[0] + size[0], canvas[1] + size[1]],
            "inspector": inspector,
            "train_button": rect(studio.run_panel.train_button),
            "generate_button": rect(studio.run_panel.generate_button),
            "generate_window": {name: rect(w) for name, w in (
                ("prompt", studio.generate_window.prompt),
                ("generate", studio.generate_window.button),
                ("output", studio.generate_window.output))},
            "pause_button": rect(studio.run_panel.pause_button),
            "stop_button": rect(studio.run_panel.stop_button),
            # A hidden plot keeps the rect it last had: only shown ones count.
            "plots": {kind: rect(plot) if dpg.is_item_shown(plot) else None
                      for plot, kind in studio.run_panel.plots},
            "chart_rects": [[*r, name] for name, plot in (("bars", studio.gradients.bar_plot),
                                                          ("heat", studio.gradients.heat_plot))
                            if (r := rect(plot))],
            "quick_add_filter": rect(studio.quick_add.filter) if studio.quick_add.visible else None,
            "open_body": {region: rect(button) for button, (_, region)
                          in studio.inspector.body_buttons.items()},
            "tabs": {name: rect(tab) for name, tab in (
                ("inspector", studio.inspector_tab), ("training", studio.settings_tab),
                ("code", studio.code_tab), ("problems", studio.problems_tab),
                ("metrics", studio.metrics_tab), ("gradients", studio.gradient_tab),
                ("runs", studio.runs_tab))},
            "problems": [[*r, d.node or ""] for row, d in studio.diagnostics.rows.items()
                         if (r := rect(row))],
            "dialog_buttons": {name: r for name, b in studio.dialogs.buttons.items()
                               if (r := rect(b))},
            "menus": menu_geometry(studio),
            "breadcrumbs": [dpg.get_item_label(b) for b in
                            dpg.get_item_children(studio.editor.breadcrumb_group, 1) or []
                            if dpg.get_item_type(b) == "mvAppItemType::mvButton"]}


# -- a user's block library (the graph's functions in the palette and quick-add) -----------------


def function_library(studio: Studio) -> dict:
    """The functions the palette lists ("ƒ name" → the button's rect, shown ones only), the
    graph's function names, the quick-add rows and the export checklist's ticks."""
    palette = studio.palette
    return {"palette": {f"ƒ {name}": r for button, name in palette.function_buttons.items()
                        if dpg.is_item_shown(button) and (r := rect(button))},
            "labels": {name: dpg.get_item_label(button)
                       for button, name in palette.function_buttons.items()},
            "functions": sorted(studio.state.graph.functions),
            "quick_add": studio.quick_add.labels() if studio.quick_add.visible else [],
            "picked": studio.dialogs.picked() if "pick" in studio.dialogs.showing() else []}
