"""Live edits in the run panel: while a run trains, change its learning rate, gradient
clipping and gradient-flow sampling interval; each change is drawn as a marker on the
Loss and Accuracy plots.

`LiveEditBar` is a row above the plots. Pressing Enter in a field asks the run
(`TrainingRun.edit`, which hands it to the trainer between steps); the trainer sends back a
`LiveEdit` with the step it applied at, which the run records, and only then is a marker
drawn, so a marker shows what happened, not what was asked. The row also says whether the
run is kept in the graph's run store.

`draw_markers` draws a run's edits (live, or read back from history by the Runs tab) as
vertical lines with the new value as a label.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import dearpygui.dearpygui as dpg

from engine.core.config import TrainingConfig
from engine.core.events import LiveEdit

from ..training import PAUSED, RUNNING, TrainingRun
from .theme import ERROR, TEXT_DIM

ROW_H = 28   # what the row takes from the plots' height
MARKER = (235, 200, 90)
# setting → (field label, tooltip, how a marker names the new value)
FIELDS: dict[str, tuple[str, str, Callable[[object], str]]] = {
    "lr": ("lr", "Learning rate from the next step on (the schedule's base rate).",
           lambda v: f"lr {v:.3g}" if isinstance(v, float) else f"lr {v}"),
    "clip_grad_norm": ("clip", "Clip the gradient's norm to this from the next step (0: off).",
                       lambda v: "clip off" if v is None else f"clip {v:.3g}"),
    "gradflow_every": ("grad-flow every", "Sample the gradient flow every this many steps "
                       "(0: off).", lambda v: "grad-flow off" if not v else f"grad-flow /{v}"),
}


def marker_label(edit: LiveEdit) -> str:
    return FIELDS[edit.setting][2](edit.new) if edit.setting in FIELDS else \
        f"{edit.setting} {edit.new}"


_THEMES: dict[tuple, int] = {}


def marker_theme(color: tuple) -> int:
    """A thin dashed-looking (translucent) vertical line in `color`; built once per colour."""
    if color not in _THEMES:
        with dpg.theme() as t, dpg.theme_component(dpg.mvInfLineSeries):
            dpg.add_theme_color(dpg.mvPlotCol_Line, (*color[:3], 230),
                                category=dpg.mvThemeCat_Plots)
            dpg.add_theme_style(dpg.mvPlotStyleVar_LineWeight, 1.5,
                                category=dpg.mvThemeCat_Plots)
        _THEMES[color] = t
    return _THEMES[color]


def draw_markers(edits: Sequence[LiveEdit], plots: Sequence[tuple[int, int]],
                 y_at: Callable[[int, float], float | None],
                 color: tuple = MARKER, prefix: str = "") -> list[int]:
    """Draw each edit on each (plot, y axis) as a vertical line at its step with its new
    value as a label, placed at `y_at(plot index, step)` (None: no label on that plot): by
    the studio's views, away from the plot's legend (Loss: at the bottom, Accuracy: at the
    top), so the legend never hides it.
    Returns the items made, for the caller to delete."""
    items: list[int] = []
    if not edits:
        return items
    for k, (plot, axis) in enumerate(plots):
        # "##": no legend entry; the label on the line says what it is.
        line = dpg.add_inf_line_series([float(e.step) for e in edits], parent=axis,
                                       label=f"##{prefix}live edits")
        dpg.bind_item_theme(line, marker_theme(color))
        items.append(line)
        for e in edits:
            y = y_at(k, float(e.step))
            if y is None or not math.isfinite(y):
                continue
            items.append(dpg.add_plot_annotation(label=f"{prefix}{marker_label(e)}",
                                                 default_value=(float(e.step), y),
                                                 offset=(6, 0), color=(*color[:3], 255),
                                                 clamped=True, parent=plot))
    return items


def label_height(k: int, ys: Sequence[float]) -> float | None:
    """Where a marker's label goes on plot k (0: Loss, whose legend is top right: at the
    curve's lowest; 1: Accuracy, legend bottom right: at its highest)."""
    finite = [y for y in ys if math.isfinite(y)]
    if not finite:
        return None
    return min(finite) if k == 0 else max(finite)


class LiveEditBar:
    """The row of live settings over the plots, and the live run's edit markers."""

    def __init__(self, run: TrainingRun, plots: Callable[[], list[tuple[int, int, int]]],
                 hidden: Callable[[], bool] = lambda: False) -> None:
        self.run = run
        self.hidden = hidden        # True while the plots show other runs (the Runs tab's)
        self._hidden = False
        self.plots = plots          # [(plot, x axis, y axis)]: Loss, Accuracy
        self.fields: dict[str, int] = {}
        self.note = self.problem = 0
        self.markers: list[int] = []
        self.drawn: tuple[int, int] = (-1, -1)   # (run number, edits drawn)
        self._active: bool | None = None
        self._runs = -1

    def build(self, parent: int | str) -> None:
        with dpg.group(parent=parent, horizontal=True):
            dpg.add_text("while it trains:", color=TEXT_DIM)
            for setting, (label, tip, _) in FIELDS.items():
                dpg.add_text(label)
                if setting == "gradflow_every":
                    w = dpg.add_input_int(width=70, step=0, min_value=0, min_clamped=True,
                                          on_enter=True, callback=self._on_enter,
                                          user_data=setting, enabled=False)
                else:
                    w = dpg.add_input_float(width=80, step=0, format="%.4g", on_enter=True,
                                            callback=self._on_enter, user_data=setting,
                                            enabled=False)
                with dpg.tooltip(w):
                    dpg.add_text(tip + " Press Enter: applied between steps, recorded with "
                                 "its step and marked on the curves.", wrap=320)
                self.fields[setting] = w
            self.problem = dpg.add_text("", color=ERROR)
            self.note = dpg.add_text("", color=TEXT_DIM)

    def text_inputs(self) -> list[int]:
        return list(self.fields.values())

    # -- every frame -----------------------------------------------------------------------

    def step(self) -> None:
        run = self.run
        active = run.status in (RUNNING, PAUSED)
        if run.runs != self._runs:   # a new run: its own settings, no markers yet
            self._runs = run.runs
            self._clear()
            self._fill()
            dpg.set_value(self.problem, "")
        if active != self._active:
            self._active = active
            for w in self.fields.values():
                dpg.configure_item(w, enabled=active)
            if active:
                self._fill()
        note = run.not_kept or (f"kept as {run.record_name}" if run.record_folder else "")
        if dpg.get_value(self.note) != note:
            dpg.set_value(self.note, note)
        if self.drawn != (run.runs, len(run.edits)) and run.metrics_version:
            self._draw()
        hidden = self.hidden()
        if hidden != self._hidden:
            self._hidden = hidden
            for item in self.markers:
                if dpg.does_item_exist(item):
                    dpg.configure_item(item, show=not hidden)

    def _fill(self) -> None:
        """Show the run's settings (the last edit of each, else its config's)."""
        graph = self.run.graph
        try:
            config = TrainingConfig.from_mapping(graph.training if graph is not None else None)
        except (TypeError, ValueError):
            return
        values = {"lr": config.lr, "clip_grad_norm": config.clip_grad_norm or 0.0,
                  "gradflow_every": config.gradflow_every}
        for e in self.run.edits:
            values[e.setting] = e.new if e.new is not None else 0.0
        for setting, w in self.fields.items():
            if not dpg.is_item_active(w):
                dpg.set_value(w, values[setting])

    def _on_enter(self, sender: int, value: object, setting: str) -> None:
        if setting == "clip_grad_norm":
            value = float(value) if value else None   # 0: off
        elif setting == "lr":
            value = float(f"{value:.6g}")
        problem = self.run.edit(setting, value)
        dpg.set_value(self.problem, problem or "")
        if problem:
            self._fill()

    def _clear(self) -> None:
        for item in self.markers:
            if dpg.does_item_exist(item):
                dpg.delete_item(item)
        self.markers = []
        self.drawn = (self.run.runs, 0)

    def _draw(self) -> None:
        self._clear()
        run = self.run
        curves = (run.step_loss, run.val_acc if run.val_acc.x else run.train_acc)

        def y_at(k: int, step: float) -> float | None:
            return label_height(k, curves[k].y)

        plots = [(plot, y) for plot, _, y in self.plots()]
        self.markers = draw_markers(run.edits, plots, y_at)
        for item in self.markers if self._hidden else ():
            dpg.configure_item(item, show=False)
        self.drawn = (run.runs, len(run.edits))

    def snapshot(self) -> dict:
        """For the test hook: what the row shows and the markers drawn."""
        return {"enabled": bool(self._active), "note": dpg.get_value(self.note),
                "problem": dpg.get_value(self.problem),
                "values": {k: dpg.get_value(w) for k, w in self.fields.items()},
                "markers": [dpg.get_item_label(i) for i in self.markers
                            if dpg.does_item_exist(i) and dpg.is_item_shown(i)
                            and dpg.get_item_type(i).endswith("Annotation")],
                "edits": [[e.step, e.setting, e.new] for e in self.run.edits],
                "fields": {k: [*dpg.get_item_rect_min(w), *dpg.get_item_rect_max(w)]
                           for k, w in self.fields.items() if dpg.is_item_visible(w)}}
