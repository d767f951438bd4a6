"""The Runs tab: the open graph's runs (app.runs.RunHistory) as a tree, their actions, and
their comparison.

Left, the list: a box to tick per run, its name indented under the run it branched from,
date, key settings, final metrics and outcome; a damaged run says why. The buttons act on
the ticked runs: Compare (or show one), Reopen its graph version, Continue, Branch,
Rename, Delete (asked first). Right, the comparison: the settings that differ and the final
metrics, one column per run in its colour, and the per-block gradient-flow difference.

Compared runs are drawn over the Training tab's Loss and Accuracy plots, each in its own
colour with its name in the legend, with its live edits as markers; the live run's own
lines are hidden meanwhile, and come back with Clear or the next Train. Views only: every
action is a RunHistory method.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import dearpygui.dearpygui as dpg

from ..runs import Curves, RunHistory
from ..training import TrainingRun
from .live_edit import draw_markers, label_height
from .theme import ACCENT, ERROR, TEXT_DIM, WARNING, Theme

RUN_COLORS = ((90, 170, 250), (250, 150, 60), (110, 210, 120), (230, 90, 200),
              (240, 225, 80), (80, 215, 225), (240, 90, 90), (180, 180, 190))
LIST_W = 640     # the list's share of the tab; the comparison takes the rest


def run_color(i: int) -> tuple[int, int, int]:
    return RUN_COLORS[i % len(RUN_COLORS)]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.4g}"
    if value is None:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


class RunsView:
    """The Runs tab and the comparison overlay on the run panel's plots."""

    def __init__(self, history: RunHistory, run: TrainingRun, *,
                 plots: Callable[[], list[tuple[int, int, int]]],
                 live_series: Callable[[], list[int]],
                 theme_for: Callable[[tuple, float], int], theme: Theme,
                 show_plots: Callable[[], None]) -> None:
        self.history = history
        self.run = run
        self.plots = plots                # [(plot, x axis, y axis)]: Loss, Accuracy
        self.live_series = live_series    # the live run's lines, hidden while comparing
        self.theme_for = theme_for
        self.theme = theme
        self.show_plots = show_plots
        self.tab = self.table = self.note = self.compare_group = 0
        self.rename_input = self.pending_group = self.pending_text = 0
        self.confirm_group = self.confirm_text = 0
        self.buttons: dict[str, int] = {}
        self.boxes: dict[str, int] = {}     # run id → its tick box
        self.overlay: list[int] = []        # items drawn on the plots
        self.overlay_lines: dict[str, tuple[int, ...]] = {}   # run id → its lines
        self._drawn = -1
        self._drawn_curves: object = None
        self._run_key: tuple | None = None
        self._visible = False

    # -- building ---------------------------------------------------------------------------

    def build(self, tab: int, width: int, height: int) -> None:
        self.tab = tab
        with dpg.group(parent=tab, horizontal=True):
            with dpg.child_window(width=min(LIST_W, width // 2 + 200), height=height,
                                  border=False) as self.left:
                with dpg.group(horizontal=True):
                    for name, label, tip in (
                            ("compare", "Compare", "Draw the ticked runs' curves over the "
                             "Training plots, and list what differs (one run: its curves)"),
                            ("clear", "Clear", "Back to the live run's curves"),
                            ("reopen", "Reopen", "Open the graph version the ticked run "
                             "trained, as an untitled copy"),
                            ("continue", "Continue", "The next Train goes on with the ticked "
                             "run from its checkpoint, in its own folder"),
                            ("branch", "Branch", "The next Train starts a new run from the "
                             "ticked run's checkpoint, with the settings in Training"),
                            ("delete", "Delete…", "Delete the ticked run's folder (asks first)")):
                        b = dpg.add_button(label=label, small=True, callback=self._on_button,
                                           user_data=name)
                        with dpg.tooltip(b):
                            dpg.add_text(tip, wrap=300)
                        self.buttons[name] = b
                with dpg.group(horizontal=True):
                    self.rename_input = dpg.add_input_text(width=200, hint="new name",
                                                           on_enter=True,
                                                           callback=self._on_rename)
                    self.buttons["rename"] = dpg.add_button(label="Rename", small=True,
                                                            callback=self._on_rename)
                    self.note = dpg.add_text("", color=TEXT_DIM)
                with dpg.group(horizontal=True, show=False) as self.confirm_group:
                    self.confirm_text = dpg.add_text("", color=WARNING)
                    self.buttons["confirm_delete"] = dpg.add_button(
                        label="Delete", small=True, callback=lambda: self.history.confirm_delete())
                    self.buttons["cancel_delete"] = dpg.add_button(
                        label="Cancel", small=True, callback=lambda: self.history.cancel_delete())
                with dpg.group(horizontal=True, show=False) as self.pending_group:
                    self.pending_text = dpg.add_text("", color=ACCENT)
                    self.buttons["cancel_start"] = dpg.add_button(
                        label="Cancel", small=True, callback=lambda: self.history.cancel_start())
                self.table = dpg.add_table(header_row=True, resizable=True, row_background=True,
                                           policy=dpg.mvTable_SizingFixedFit,
                                           scrollY=True, height=-1)
            with dpg.child_window(width=-1, height=height, border=False) as self.compare_group:
                dpg.add_text("Tick two or more runs and press Compare.", color=TEXT_DIM)

    def resize(self, width: int, height: int) -> None:
        if self.left:
            dpg.configure_item(self.left, width=min(LIST_W, width // 2 + 200), height=height)
            dpg.configure_item(self.compare_group, height=height)

    def text_inputs(self) -> list[int]:
        return [self.rename_input] if self.rename_input else []

    # -- every frame -------------------------------------------------------------------------

    def step(self, now: float = 0.0) -> None:
        history, run = self.history, self.run
        # A run started, ended, or got its folder: the list changes with it.
        key = (run.runs, run.status, run.record_folder)
        if key != self._run_key:
            new_run = self._run_key is not None and key[0] != self._run_key[0]
            self._run_key = key
            history.refresh(force=True)
            if new_run:
                history.clear_comparison()   # Train: back to the live curves
        else:
            # Opening the tab reads the folder again: runs another process (dprog train)
            # made or changed meanwhile show up.
            visible = dpg.is_item_visible(self.rename_input)
            history.refresh(force=visible and not self._visible)
            self._visible = visible
        if history.version != self._drawn:
            self._drawn = history.version
            self._fill_table()
            self._fill_actions()
            self._fill_comparison()
        if history.curves is not self._drawn_curves:
            self._drawn_curves = history.curves
            self._draw_overlay()

    def _fill_table(self) -> None:
        history = self.history
        dpg.delete_item(self.table, children_only=True)
        self.boxes = {}
        for label, w in (("", 22), ("run", 110), ("date", 78), ("settings", 140),
                         ("final", 125), ("outcome", 95)):
            dpg.add_table_column(label=label, parent=self.table, init_width_or_weight=w,
                                 width_fixed=True)
        colors = {c.id: run_color(i) for i, c in enumerate(history.curves)}
        for row in history.rows():
            with dpg.table_row(parent=self.table):
                box = dpg.add_checkbox(default_value=row.id in history.selected,
                                       callback=self._on_tick, user_data=row.id)
                self.boxes[row.id] = box
                pad = "   " * row.depth + ("└ " if row.depth else "")
                name = row.name if row.name == row.id else f"{row.name} ({row.id})"
                dpg.add_text(pad + name, color=colors.get(row.id, (220, 221, 225)))
                if row.damaged:   # why, in the settings and final columns; all of it on hover
                    dpg.add_text("")
                    t = dpg.add_text(row.damaged, color=ERROR)
                    with dpg.tooltip(t):
                        dpg.add_text(row.damaged, wrap=400)
                    dpg.add_text("")
                    dpg.add_text("damaged", color=ERROR)
                    continue
                dpg.add_text(row.date[5:16], color=TEXT_DIM)   # MM-DD hh:mm
                t = dpg.add_text(row.settings)
                with dpg.tooltip(t):
                    dpg.add_text(row.settings)
                dpg.add_text(row.final)
                dpg.add_text(row.outcome, color=ERROR if row.outcome.startswith(
                    ("failed", "nonfinite")) else TEXT_DIM)

    def _fill_actions(self) -> None:
        history = self.history
        if history.graph_path is None:
            note = "save the graph to keep its runs"
        elif not history.runs:
            note = "no runs yet: each Train is kept here"
        else:
            note = f"{len(history.runs)} run{'s' if len(history.runs) != 1 else ''} in runs/"
        dpg.set_value(self.note, note)
        one = len(history.selected) == 1
        for name in ("reopen", "continue", "branch", "delete", "rename"):
            dpg.configure_item(self.buttons[name], enabled=one)
        dpg.configure_item(self.buttons["compare"], enabled=bool(history.selected))
        dpg.configure_item(self.buttons["clear"], enabled=bool(history.curves))
        if one and not dpg.is_item_active(self.rename_input):
            run = history.run(history.selected[0])
            dpg.set_value(self.rename_input, run.name if run is not None else "")
        deleting = history.run(history.deleting) if history.deleting else None
        dpg.configure_item(self.confirm_group, show=deleting is not None)
        if deleting is not None:
            named = "" if deleting.name == deleting.id else f" ({deleting.name})"
            dpg.set_value(self.confirm_text, f"Delete run {deleting.id}{named} and all its files?")
        pending = history.pending
        dpg.configure_item(self.pending_group, show=pending is not None)
        if pending is not None:
            dpg.set_value(self.pending_text, pending.describe())

    def _fill_comparison(self) -> None:
        history = self.history
        dpg.delete_item(self.compare_group, children_only=True)
        parent = self.compare_group
        c, curves = history.comparison, history.curves
        if c is None:
            text = ("Showing one run's curves in Training; tick another to compare."
                    if curves else "Tick two or more runs and press Compare.")
            dpg.add_text(text, color=TEXT_DIM, parent=parent, wrap=0)
            return
        names = {k.id: k.name for k in curves}
        colors = {k.id: run_color(i) for i, k in enumerate(curves)}

        def table(title: str, rows: list[tuple[str, list[str]]], extra: str | None = None) -> None:
            dpg.add_text(title, color=TEXT_DIM, parent=parent)
            with dpg.table(parent=parent, header_row=True, policy=dpg.mvTable_SizingFixedFit,
                           row_background=True) as t:
                dpg.add_table_column(label="")
                for run_id in c.runs:
                    dpg.add_table_column(label=names.get(run_id, run_id))
                if extra:
                    dpg.add_table_column(label=extra)
                for label, cells in rows:
                    with dpg.table_row():
                        dpg.add_text(label)
                        for i, cell in enumerate(cells):
                            color = colors.get(c.runs[i]) if i < len(c.runs) else None
                            dpg.add_text(cell, color=color or (220, 221, 225))
            self.tables.append(t)

        self.tables: list[int] = []
        settings = [(k, [_fmt(v) for v in vs]) for k, vs in c.settings.items()]
        table("Settings that differ" if settings else "Settings: all the same", settings)
        table("Final metrics", [(k, [_fmt(v) for v in vs]) for k, vs in c.final.items()])
        if c.gradflow:
            diff = c.gradflow_difference()
            rows = [(node, [_fmt(v) for v in vs]
                     + [("–" if diff[node] is None else f"{diff[node]:+.2f}")])
                    for node, vs in c.gradflow.items()]
            table("Gradient flow: mean gradient RMS per block (log10 last/first)", rows,
                  "log10 ratio")
        else:
            dpg.add_text("Gradient flow compares runs of the same blocks and wires; these "
                         "trained different graphs.", color=TEXT_DIM, parent=parent, wrap=0)

    # -- the overlay on the Training plots --------------------------------------------------

    def _draw_overlay(self) -> None:
        for item in self.overlay:
            if dpg.does_item_exist(item):
                dpg.delete_item(item)
        self.overlay, self.overlay_lines = [], {}
        curves = self.history.curves
        for series in self.live_series():
            dpg.configure_item(series, show=not curves)
        if not curves:
            return
        (loss_plot, loss_x, loss_axis), (acc_plot, acc_x, acc_axis) = self.plots()[:2]
        names = [k.name for k in curves]
        for i, k in enumerate(curves):
            color = run_color(i)
            # ImPlot merges legend entries of one label: two runs of one name say their ids.
            label = k.name if names.count(k.name) == 1 else f"{k.name} ({k.id})"
            loss = dpg.add_line_series(*k.step_loss, label=label, parent=loss_axis)
            dpg.bind_item_theme(loss, self.theme_for(color, 2.0))
            acc_xy = k.val_acc if k.val_acc[0] else k.train_acc
            acc = dpg.add_line_series(*acc_xy, label=label, parent=acc_axis)
            dpg.bind_item_theme(acc, self.theme_for(color, 2.2))
            self.overlay += [loss, acc]
            self.overlay_lines[k.id] = (loss, acc)
            self.overlay += self._markers(k, color, (loss_plot, loss_axis), (acc_plot, acc_axis),
                                          acc_xy, len(curves) > 1)
        for axis in (loss_x, loss_axis, acc_x, acc_axis):
            dpg.fit_axis_data(axis)
        self.show_plots()

    def _markers(self, k: Curves, color: tuple, loss: tuple[int, int], acc: tuple[int, int],
                 acc_xy: tuple[list[float], list[float]], named: bool) -> list[int]:
        def y_at(i: int, step: float) -> float | None:
            return label_height(i, (k.step_loss if i == 0 else acc_xy)[1])

        return draw_markers(k.edits, (loss, acc), y_at, color,
                            prefix=f"{k.name}: " if named else "")

    # -- callbacks ----------------------------------------------------------------------------

    def _on_tick(self, sender: int, value: bool, run_id: str) -> None:
        self.history.select(run_id, bool(value))

    def _on_button(self, sender: int, app_data: object, name: str) -> None:
        h = self.history
        {"compare": lambda: h.compare(), "clear": h.clear_comparison, "reopen": lambda: h.reopen(),
         "continue": lambda: h.continue_from(), "branch": lambda: h.branch_from(),
         "delete": lambda: h.ask_delete()}[name]()

    def _on_rename(self, *args: object) -> None:
        self.history.rename(None, dpg.get_value(self.rename_input))

    # -- the test hook ------------------------------------------------------------------------

    def snapshot(self) -> dict:
        h = self.history

        def rect(item: int) -> list[float] | None:
            if not item or not dpg.does_item_exist(item) or not dpg.is_item_visible(item):
                return None
            lo, hi = dpg.get_item_rect_min(item), dpg.get_item_rect_max(item)
            return [lo[0], lo[1], hi[0], hi[1]] if hi[0] > lo[0] else None

        c = h.comparison
        return {
            "rows": [[r.id, r.depth, r.name, r.outcome, r.damaged] for r in h.rows()],
            "selected": list(h.selected),
            "pending": h.pending.describe() if h.pending else None,
            "deleting": h.deleting,
            "curves": [[k.id, k.name, list(run_color(i)), len(k.step_loss[0]),
                        [[e.step, e.setting, e.new] for e in k.edits]]
                       for i, k in enumerate(h.curves)],
            "overlay_lines": len(self.overlay_lines),
            "overlay_markers": [dpg.get_item_label(i) for i in self.overlay
                                if dpg.does_item_exist(i)
                                and dpg.get_item_type(i).endswith("Annotation")],
            "live_hidden": [not dpg.is_item_shown(s) for s in self.live_series()],
            "comparison": None if c is None else {
                "runs": list(c.runs), "settings": {k: [_fmt(v) for v in vs]
                                                   for k, vs in c.settings.items()},
                "final": sorted(c.final), "gradflow": sorted(c.gradflow)},
            "note": dpg.get_value(self.note),
            "layout": {"tab": rect(self.tab), "boxes": {i: rect(b) for i, b in self.boxes.items()},
                       "buttons": {n: rect(b) for n, b in self.buttons.items()},
                       "rename": rect(self.rename_input)},
        }

