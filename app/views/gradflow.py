"""Gradient flow, live: wires coloured by gradient RMS, flagged nodes, bars, heatmap, history.

The trainer samples gradient flow every few steps (`engine.runtime.gradflow.GradFlowSnapshot`).
This view turns the latest sample into

- a colour for every wire of the region on screen: eight link themes on a log scale (built
  once in `Theme`), whose range follows the sample, eased so colours do not flicker; a
  legend in the editor's toolbar gives the range. (Each theme also sets a thickness, but
  imnodes reads LinkThickness once per editor when it draws, so only the colour is per
  wire; the thickness style stays in the themes in case a later imnodes honours it.)
- flags on nodes (vanishing / exploding gradients, dead ReLUs): title colour plus a marker;
- in the Gradient flow tab: a bar chart of per-node gradient RMS (horizontal, one labelled
  row per block; a weight group's calls get a row each, the gradient reaching that call's
  outputs, and the group a row "name (all calls)", its shared weights' gradient, which is
  the sum over the calls), a heatmap of nodes against time (once there are two samples to compare),
  and the gradient/activation history of the selected wire or node. Row labels are thinned
  to every k-th when the rows are shorter than a line of text, so they never overlap; with
  no data each chart says what it waits for instead of drawing an empty scale.

Work is bounded per frame: recolouring is recomputed at most `RECOLOR_HZ` times a second and
applied `LINKS_PER_FRAME` wires at a time; node flags touch only nodes whose flag changed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import dearpygui.dearpygui as dpg
import numpy as np

from ..state import AppState
from ..training import TrainingRun, bucket_of, log_range
from .editor import GraphEditor
from .theme import LINK_BUCKETS, TEXT_DIM, Theme

BARS_TITLE = "Gradient RMS per block"
BARS_WAITING = "Gradient RMS per block: press Train"
HEAT_TITLE = "Blocks × time (log10 gradient RMS)"
HEAT_WAITING = "Blocks × time (needs 2 samples)"
GROUP_ROW = " (all calls)"   # a row key ending so is a weight group's (node ids have no spaces)
CHART_HELP = ("How much gradient reaches each block's weights (log scale), at the latest "
              "sample. A bar far shorter than the others: that block barely learns. For calls "
              "sharing weights, each call's row is the gradient reaching its outputs, and "
              "\"name (all calls)\" the shared weights' gradient: all the calls' added up.",
              "The same per block over time, one column per sample (hot = large). A row "
              "fading to dark: the gradient is vanishing there.")
LABEL_PX = 18.0          # a row label's height: rows shorter than this show every k-th label
PLOT_FRAME_PX = 60.0     # a plot's title, padding and x axis, above and below its rows
RECOLOR_HZ = 4.0
CHARTS_HZ = 2.0
LINKS_PER_FRAME = 100
MAX_ROWS = 32        # nodes shown in the bar chart and heatmap
HEAT_COLS = 60


def _fmt_pow(x: float) -> str:
    """log10 value → "1e-3" or "2.5e-3"."""
    if abs(x - round(x)) < 0.05:
        return f"1e{round(x):d}"
    mantissa, exponent = f"{10 ** x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


class GradientView:
    def __init__(self, state: AppState, run: TrainingRun, editor: GraphEditor, theme: Theme) -> None:
        self.state, self.run, self.editor, self.theme = state, run, editor, theme
        self.range: tuple[float, float] | None = None
        self._work: Iterator[bool] | None = None
        self._colored_for: tuple | None = None
        self._last_recolor = 0.0
        self._last_flags = 0.0
        self._last_charts = 0.0
        self._charts_for: tuple | None = None
        self._flags: dict[str, str] = {}
        self._flags_for: tuple | None = None
        self.legend_lo = self.legend_hi = 0
        self.bars = self.bar_axis_x = self.bar_axis_y = 0
        self.heat = self.heat_plot = self.heat_axis_x = self.heat_axis_y = 0
        self.hist_plot = self.hist_axis = self.hist_grad = self.hist_mean = 0
        self.hist_title = 0
        self._hist_for: tuple | None = None
        self.recolors = 0
        self.bar_plot = self.row = self.heat_holder = 0
        self.ticks: dict[int, tuple] = {}   # axis → the row labels it shows (test hook)
        self.call_wires: dict[str, list[str]] = {}   # a call's row → the edge keys leaving it
        self.hist_limits: tuple[float, float] | None = None

    # -- building ------------------------------------------------------------------------------

    def build_legend(self, parent: int) -> None:
        with dpg.group(parent=parent, horizontal=True, show=False) as self.legend:
            dpg.add_text("gradient RMS", color=TEXT_DIM)
            self.legend_lo = dpg.add_text("")
            for rgb, _ in LINK_BUCKETS:
                dpg.add_color_button(default_value=(*rgb, 255), width=14, height=14,
                                     no_border=True, no_drag_drop=True)
            self.legend_hi = dpg.add_text("")
            dpg.add_text("(log scale, per wire)", color=TEXT_DIM)

    def build_tab(self, parent: int | str, width: int, height: int) -> None:
        third = (width - 24) // 3
        h = height - 10
        with dpg.group(parent=parent, horizontal=True) as self.row:
            # Each plot sits in a group: plots take no tooltip, groups do.
            with dpg.group() as bars_holder:
                with dpg.plot(label=BARS_TITLE, width=third, height=h, no_mouse_pos=True,
                              no_menus=True) as self.bar_plot:
                    # Horizontal bars: each block's label gets a row of its own on the y axis.
                    self.bar_axis_x = dpg.add_plot_axis(dpg.mvXAxis)
                    self.bar_axis_y = dpg.add_plot_axis(dpg.mvYAxis, no_gridlines=True)
                    self.bars = dpg.add_bar_series([], [], parent=self.bar_axis_y, weight=0.7,
                                                   horizontal=True)
            with dpg.group() as self.heat_holder:   # profile mode's table stands in for it
                with dpg.plot(label=HEAT_WAITING, width=third, height=h,
                              no_mouse_pos=True, no_menus=True) as self.heat_plot:
                    self.heat_axis_x = dpg.add_plot_axis(dpg.mvXAxis, no_tick_labels=True,
                                                         no_gridlines=True)
                    self.heat_axis_y = dpg.add_plot_axis(dpg.mvYAxis, no_gridlines=True)
                    # Hidden until two samples exist: one sample is no time series.
                    self.heat = dpg.add_heat_series([0.0], 1, 1, parent=self.heat_axis_y,
                                                    format="", scale_min=-6, scale_max=0,
                                                    show=False)
            dpg.bind_colormap(self.heat_plot, dpg.mvPlotColormap_Plasma)
            for holder, text in zip((bars_holder, self.heat_holder), CHART_HELP, strict=True):
                with dpg.tooltip(holder):
                    dpg.add_text(text, wrap=320)
            with dpg.group():
                self.hist_title = dpg.add_text("Select a wire or a block to see its history",
                                               color=TEXT_DIM, wrap=third)
                with dpg.plot(width=third, height=h - 26, no_mouse_pos=True,
                              no_menus=True) as self.hist_plot:
                    dpg.add_plot_legend(location=dpg.mvPlot_Location_NorthWest)
                    self.hist_x = dpg.add_plot_axis(dpg.mvXAxis, no_label=True)
                    self.hist_axis = dpg.add_plot_axis(dpg.mvYAxis, label="grad RMS",
                                                       scale=dpg.mvPlotScale_Log10)
                    act = dpg.add_plot_axis(dpg.mvYAxis2, label="activation", opposite=True)
                    self.hist_std = dpg.add_shade_series([], [], y2=[], parent=act,
                                                         label="activation mean ± std")
                    self.hist_mean = dpg.add_line_series([], [], parent=act)
                    self.hist_grad = dpg.add_line_series([], [], label="gradient RMS",
                                                         parent=self.hist_axis)
                    dpg.bind_item_theme(self.hist_std, _plot_theme(dpg.mvShadeSeries,
                                                                   dpg.mvPlotCol_Fill,
                                                                   (240, 150, 60, 45)))
                    dpg.bind_item_theme(self.hist_mean, _plot_theme(dpg.mvLineSeries,
                                                                    dpg.mvPlotCol_Line,
                                                                    (240, 150, 60, 200)))
                    dpg.bind_item_theme(self.hist_grad, _plot_theme(dpg.mvLineSeries,
                                                                    dpg.mvPlotCol_Line,
                                                                    (86, 156, 255, 255), 2.5,
                                                                    marker=True))
                    self.hist_act_axis = act
                self._empty_history()

    # -- per frame -------------------------------------------------------------------------------

    def flags_for(self, path: str) -> str:
        return self._flags.get(path, "")

    def step(self, now: float | None = None) -> None:
        """Per frame: start a recolouring when there is a new sample (at most RECOLOR_HZ),
        and do the next LINKS_PER_FRAME wires of the one in progress."""
        now = time.monotonic() if now is None else now
        run, editor = self.run, self.editor
        key = (run.runs, run.grad_version, editor.region, editor.graph)
        if self._work is not None:              # a recolouring in progress: its next chunk
            if next(self._work, None) is None:
                self._work = None
            return
        if key != self._colored_for and now - self._last_recolor >= 1 / RECOLOR_HZ:
            self._last_recolor = now
            self._colored_for = key
            self._work = self._recolor()
            return
        fkey = (run.runs, run.grad_version, editor.region)
        if fkey != self._flags_for and now - self._last_flags >= 1 / RECOLOR_HZ:
            self._last_flags = now
            self._flags_for = fkey
            self._update_flags()

    def _recolor(self) -> Iterator[bool]:
        """A recolouring, LINKS_PER_FRAME wires per step (a generator: one chunk per next())."""
        run, editor = self.run, self.editor
        flow = run.flow
        if flow is None:
            dpg.configure_item(self.legend, show=False)
            for edge in [e for e, t in editor.link_theme.items() if t]:
                editor.set_link_theme(edge, 0)
            return
        edges_flow = flow.edges
        values = np.fromiter((f.grad_rms for f in edges_flow.values() if f.grad_rms is not None),
                             dtype=float)
        self.range = log_range(values, self.range)
        lo, hi = self.range
        dpg.configure_item(self.legend, show=True)
        dpg.set_value(self.legend_lo, _fmt_pow(lo))
        dpg.set_value(self.legend_hi, _fmt_pow(hi))
        prefix = self.state.analysis_prefix   # a function body: its first call
        link = self.theme.link
        edges = list(editor.links)
        yield True
        for start in range(0, len(edges), LINKS_PER_FRAME):
            for edge in edges[start:start + LINKS_PER_FRAME]:
                f = edges_flow.get(prefix + edge.key)
                theme = 0 if f is None else link(bucket_of(f.grad_rms, lo, hi))
                editor.set_link_theme(edge, theme)
            yield True
        self.recolors += 1

    def _update_flags(self) -> None:
        new = self.run.flags if self.run.flow is not None else {}
        if new == self._flags:
            return
        changed = {p for p in set(new) | set(self._flags) if new.get(p) != self._flags.get(p)}
        self._flags = dict(new)
        prefix = self.state.analysis_prefix
        ids = [p[len(prefix):] for p in changed if p.startswith(prefix) and "/" not in p[len(prefix):]]
        self.editor.refresh_flags(ids)

    # -- the Gradient flow tab (throttled) ------------------------------------------------------------

    def refresh_charts(self, visible: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        run = self.run
        sel = (tuple(self.editor.selected_edges[:1]), self.state.selection, self.state.region)
        key = (run.runs, run.grad_version, sel)
        if not visible or key == self._charts_for or now - self._last_charts < 1 / CHARTS_HZ:
            return
        self._last_charts = now
        self._charts_for = key
        rows = self._rows()
        self._draw_bars(rows)
        self._draw_heat(rows)
        self._draw_history()

    def _rows(self) -> list[str]:
        """Rows to chart: the node paths of the region on screen that have gradient data;
        each Call's path (the gradient on its outputs: an imported ResNet's stages), and after
        a weight group's last call there, the group's key + GROUP_ROW (its shared weights')."""
        flow = self.run.flow
        if flow is None:
            return []
        prefix = self.state.analysis_prefix
        region = self.state.current_graph()
        groups = flow.groups
        calls = {n.id: prefix + str(n.params.get("weights")) for n in region.nodes
                 if n.type == "call" and prefix + str(n.params.get("weights")) in groups}
        last = {group: node_id for node_id, group in calls.items()}
        self.call_wires = {prefix + n.id: [prefix + e.key for e in region.edges
                                           if e.src[0] == n.id]
                           for n in region.nodes if n.type == "call"}
        rows = []
        for n in region.nodes:
            path = prefix + n.id
            if (self._value(flow, path)) is not None:
                rows.append(path)
            if n.id in calls and last[calls[n.id]] == n.id:
                rows.append(calls[n.id] + GROUP_ROW)
        if not rows:
            rows = list(flow.nodes)
        return rows[:MAX_ROWS]

    def _value(self, snapshot, row: str) -> float | None:
        """A row's gradient RMS in one snapshot (None where it has none)."""
        if row.endswith(GROUP_ROW):
            group = snapshot.groups.get(row[:-len(GROUP_ROW)])
            return group.grad_rms if group is not None else None
        if row in self.call_wires:   # the RMS over the gradients on the call's outputs
            rms = [f.grad_rms for k in self.call_wires[row]
                   if (f := snapshot.edges.get(k)) is not None and f.grad_rms is not None]
            return math.sqrt(sum(r * r for r in rms) / len(rms)) if rms else None
        flow = snapshot.nodes.get(row)
        return flow.grad_rms if flow is not None else None

    def _row_ticks(self, axis: int, plot: int, rows: list[str]) -> None:
        """One tick label per row, top to bottom (row i at y = n - i - 0.5), thinned to every
        k-th row when the rows are shorter than a line of text."""
        n = len(rows)
        height = (dpg.get_item_rect_size(plot) or (0, 0))[1] or 260
        room = max(height - PLOT_FRAME_PX, 1) / max(n, 1)
        every = max(1, math.ceil(LABEL_PX / room))
        ticks = tuple((p.rsplit("/", 1)[-1], n - i - 0.5) for i, p in enumerate(rows)
                      if i % every == 0)
        dpg.set_axis_ticks(axis, ticks)
        self.ticks[axis] = ticks

    def _draw_bars(self, rows: list[str]) -> None:
        flow = self.run.flow
        if flow is None or not rows:
            dpg.set_value(self.bars, [[], []])
            dpg.reset_axis_ticks(self.bar_axis_y)
            dpg.reset_axis_ticks(self.bar_axis_x)
            self.ticks.pop(self.bar_axis_y, None)
            dpg.set_axis_limits(self.bar_axis_x, 0, 1)
            dpg.set_axis_limits(self.bar_axis_y, 0, 1)
            dpg.configure_item(self.bar_plot, label=BARS_WAITING)
            return
        dpg.configure_item(self.bar_plot, label=BARS_TITLE)
        logs = [math.log10(v) if (v := self._value(flow, p)) and v > 0 else None for p in rows]
        known = [v for v in logs if v is not None] or [-6.0]
        # Bars grow from a floor a decade below the smallest value; ticks label decades.
        base = math.floor(min(known)) - 1
        top = math.ceil(max(known))
        lengths = [(v - base) if v is not None else 0.0 for v in logs]
        n = len(rows)
        dpg.set_value(self.bars, [lengths, [n - i - 0.5 for i in range(n)]])
        self._row_ticks(self.bar_axis_y, self.bar_plot, rows)
        dpg.set_axis_ticks(self.bar_axis_x, tuple((f"1e{k}", float(k - base))
                                                  for k in range(base, top + 1)))
        dpg.set_axis_limits(self.bar_axis_y, 0, n)
        dpg.set_axis_limits(self.bar_axis_x, 0, top - base + 0.2)

    def _draw_heat(self, rows: list[str]) -> None:
        history = list(self.run.history)[-HEAT_COLS:]
        if not rows or len(history) < 2:
            dpg.configure_item(self.heat, show=False)
            dpg.configure_item(self.heat_plot, label=HEAT_WAITING)
            dpg.reset_axis_ticks(self.heat_axis_y)
            self.ticks.pop(self.heat_axis_y, None)
            dpg.set_axis_limits(self.heat_axis_x, 0, 1)
            dpg.set_axis_limits(self.heat_axis_y, 0, 1)
            return
        dpg.configure_item(self.heat_plot, label=HEAT_TITLE)
        lo, hi = self.range or (-6.0, 0.0)
        values = []
        for p in rows:      # row-major: one row per node, one column per snapshot
            for point in history:
                v = self._value(point, p)
                values.append(math.log10(v) if v and v > 0 else lo)
        dpg.configure_item(self.heat, x=values, rows=len(rows), cols=len(history),
                           scale_min=lo, scale_max=hi, bounds_min=(0, 0),
                           bounds_max=(len(history), len(rows)), show=True)
        dpg.set_axis_limits(self.heat_axis_x, 0, len(history))
        dpg.set_axis_limits(self.heat_axis_y, 0, len(rows))
        # heat rows are drawn top (row 0) to bottom, ticks at the row centres
        self._row_ticks(self.heat_axis_y, self.heat_plot, rows)

    def _draw_history(self) -> None:
        run = self.run
        prefix = self.state.analysis_prefix
        if self.editor.selected_edges:
            edge = self.editor.selected_edges[0]
            steps, grads, means, stds = run.edge_history(prefix + edge.key)
            title = f"wire {edge.src[0]}.{edge.src[1]} → {edge.dst[0]}.{edge.dst[1]}"
        elif len(self.state.selection) == 1:
            node_id = next(iter(self.state.selection))
            steps, grads, means, stds = run.node_history(prefix + node_id)
            title = f"block {node_id}"
        else:
            steps, grads, means, stds = [], [], [], []
            title = "Select a wire or a block to see its history"
        if not steps and title.startswith(("wire", "block")):
            title += ": no gradient samples yet (they come every few steps of training)"
        dpg.set_value(self.hist_title, title)
        keep = [i for i, g in enumerate(grads) if g == g and g > 0]
        dpg.set_value(self.hist_grad, [[steps[i] for i in keep], [grads[i] for i in keep]])
        ok = [i for i, m in enumerate(means) if m == m and stds[i] == stds[i]]
        xs = [steps[i] for i in ok]
        dpg.set_value(self.hist_mean, [xs, [means[i] for i in ok]])
        dpg.configure_item(self.hist_std, x=xs, y1=[means[i] + stds[i] for i in ok],
                           y2=[means[i] - stds[i] for i in ok])
        if not keep:
            self._empty_history()
            return
        # The grad axis is log scale: whole decades around the data, at least two of them
        # (a single sample left to ImPlot's fit gives a degenerate scale).
        values = [grads[i] for i in keep]
        lo = math.floor(math.log10(min(values)) - 0.5)
        hi = max(math.ceil(math.log10(max(values)) + 0.5), lo + 2)
        self.hist_limits = (10.0 ** lo, 10.0 ** hi)
        dpg.set_axis_limits(self.hist_axis, *self.hist_limits)
        first, last = steps[keep[0]], steps[keep[-1]]
        if first == last:
            dpg.set_axis_limits(self.hist_x, first - 1, last + 1)
        else:
            dpg.set_axis_limits_auto(self.hist_x)
            dpg.fit_axis_data(self.hist_x)
        dpg.set_axis_limits_auto(self.hist_act_axis)
        dpg.fit_axis_data(self.hist_act_axis)

    def _empty_history(self) -> None:
        """Fixed, readable scales while there is nothing to plot: a log axis left to fit no
        data wanders to 1e-156."""
        dpg.set_axis_limits(self.hist_axis, 1e-6, 1.0)
        dpg.set_axis_limits(self.hist_act_axis, -1.0, 1.0)
        dpg.set_axis_limits(self.hist_x, 0.0, 1.0)
        self.hist_limits = (1e-6, 1.0)


def _plot_theme(component: int, target: int, color: tuple, weight: float | None = None, *,
                marker: bool = False) -> int:
    with dpg.theme() as theme:
        with dpg.theme_component(component):
            dpg.add_theme_color(target, color, category=dpg.mvThemeCat_Plots)
            if weight is not None:
                dpg.add_theme_style(dpg.mvPlotStyleVar_LineWeight, weight,
                                    category=dpg.mvThemeCat_Plots)
            if marker:   # a lone sample is a point, not an invisible line
                dpg.add_theme_color(dpg.mvPlotCol_MarkerFill, color, category=dpg.mvThemeCat_Plots)
                dpg.add_theme_style(dpg.mvPlotStyleVar_Marker, dpg.mvPlotMarker_Circle,
                                    category=dpg.mvThemeCat_Plots)
                dpg.add_theme_style(dpg.mvPlotStyleVar_MarkerSize, 2.5,
                                    category=dpg.mvThemeCat_Plots)
    return theme
