"""Time per block (issue 17, item 6): the Profile toggle, a heat badge on every block, and a
sortable table in the Gradient flow tab.

The toggle is `WireWatch.set_profile`, which turns on `Trainer.set_profile`: the trainer
then times each block's forward and backward every step (`BlockTimes`; the watch takes
each block's median over the last steps). Each block on the canvas gets a badge, "● 2.1 ms · 34%", coloured cold to hot by
its share of the step; the table lists block, forward ms, backward ms and share, sorted by
any column. Off, nothing is timed and the badges and table are hidden.

Work per frame is bounded: badges and table are redrawn at most `REDRAW_HZ`, and only the
badges whose text changed touch Dear PyGui.
"""

from __future__ import annotations

import time

import dearpygui.dearpygui as dpg

from ..inspection import (
    LOSS,
    PROFILE_COLUMNS,
    WINDOW,
    BlockTime,
    WireWatch,
    heat_bucket,
    sort_rows,
)
from ..state import AppState
from .editor import GraphEditor
from .theme import TEXT_DIM

REDRAW_HZ = 2.0
# Cold to hot, as the gradient wires: eight steps of a block's share of the step's time.
HEAT = ((110, 130, 170), (90, 160, 210), (80, 190, 190), (120, 200, 120), (210, 200, 90),
        (240, 160, 70), (240, 110, 60), (255, 70, 70))
MAX_ROWS = 40


class ProfileView:
    def __init__(self, state: AppState, editor: GraphEditor, watch: WireWatch) -> None:
        self.state, self.editor, self.watch = state, editor, watch
        self.toggle = self.table = self.holder = self.waiting = self.holder_partner = 0
        self.heat_themes: list[int] = []
        self.sort = (3, True)                  # column, descending
        self._drawn: tuple | None = None
        self._drawn_at = 0.0
        self.badges: dict[str, str] = {}       # node id → badge text (test hook)
        self.rows: list[BlockTime] = []        # as the table shows them (test hook)

    # -- building ------------------------------------------------------------------------------

    def build_toggle(self, parent: int | str) -> None:
        self.toggle = dpg.add_checkbox(label="Profile", parent=parent, callback=self._on_toggle)
        with dpg.tooltip(self.toggle):
            dpg.add_text("Time each block's forward and backward pass while training: a heat "
                         "badge on every block, and a table in the Gradient flow tab. Off, "
                         "nothing is timed.", wrap=320)
        for rgb in HEAT:
            with dpg.theme() as theme:
                with dpg.theme_component(dpg.mvAll):
                    dpg.add_theme_color(dpg.mvThemeCol_Text, rgb)
            self.heat_themes.append(theme)

    def build_table(self, parent: int | str, partner: int, width: int, height: int) -> None:
        """The table, in the Gradient flow tab's row of charts: in profile mode it stands
        in for `partner` (the heatmap's holder), which is hidden meanwhile."""
        self.holder_partner = partner
        with dpg.child_window(parent=parent, before=partner, width=width, height=height,
                              show=False, border=False) as self.holder:
            dpg.add_text(f"Time per block (ms per step, median of the last {WINDOW})")
            self.waiting = dpg.add_text("profiling: the times come with the next steps",
                                        color=TEXT_DIM)
            with dpg.table(header_row=True, sortable=True, callback=self._on_sort,
                           resizable=True, borders_innerH=True, scrollY=True,
                           policy=dpg.mvTable_SizingStretchProp) as self.table:
                for i, name in enumerate(PROFILE_COLUMNS):
                    dpg.add_table_column(label=name, default_sort=i == 3,
                                         prefer_sort_descending=i > 0)

    # -- per frame -----------------------------------------------------------------------------

    def step(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        watch, editor = self.watch, self.editor
        key = (watch.profile, watch.times_version, editor.graph, editor.region, self.sort)
        if key == self._drawn or now - self._drawn_at < 1 / REDRAW_HZ:
            return
        self._drawn, self._drawn_at = key, now
        self._draw_badges()
        self._draw_table()

    def _draw_badges(self) -> None:
        prefix = self.state.analysis_prefix   # a function body: its first call
        smoothed = self.watch.smoothed
        total = sum(f + b for f, b in smoothed.values()) or 1.0
        for node_id in self.editor.nodes:
            ms = smoothed.get(prefix + node_id)
            if not self.watch.profile or ms is None:
                text, theme = "", 0
            else:
                share = sum(ms) / total
                text = f"● {sum(ms):.2f} ms · {share:.0%}"
                theme = self.heat_themes[heat_bucket(share) or 0]
            if self.badges.get(node_id, "") != text:
                self.editor.set_badge(node_id, text, theme)
                if text:
                    self.badges[node_id] = text
                else:
                    self.badges.pop(node_id, None)
        for gone in [n for n in self.badges if n not in self.editor.nodes]:
            del self.badges[gone]

    def _draw_table(self) -> None:
        if not self.holder:
            return
        dpg.configure_item(self.holder, show=self.watch.profile)
        if self.holder_partner:
            dpg.configure_item(self.holder_partner, show=not self.watch.profile)
        rows = sort_rows(self.watch.rows(), *self.sort)[:MAX_ROWS]
        self.rows = rows
        dpg.configure_item(self.waiting, show=not rows)
        dpg.delete_item(self.table, children_only=True, slot=1)
        for r in rows:
            with dpg.table_row(parent=self.table):
                name = "(loss)" if r.node == LOSS else r.node
                dpg.add_text(name)
                dpg.add_text(f"{r.forward_ms:.3f}")
                dpg.add_text(f"{r.backward_ms:.3f}")
                bucket = heat_bucket(r.share) or 0
                share = dpg.add_text(f"{r.share:.1%}")
                dpg.bind_item_theme(share, self.heat_themes[bucket])

    # -- input ---------------------------------------------------------------------------------

    def _on_toggle(self, sender: int, value: bool, user_data: object) -> None:
        self.set(bool(value))

    def set(self, on: bool) -> None:
        self.watch.set_profile(on)
        if self.toggle and dpg.get_value(self.toggle) != on:
            dpg.set_value(self.toggle, on)
        self.state.set_status("profile mode on: each block's time shows on it from the next "
                              "training step" if on else "profile mode off")
        self._drawn = None

    def _on_sort(self, sender: int, specs: list | None, user_data: object) -> None:
        if not specs:
            return
        column, direction = specs[0]
        columns = dpg.get_item_children(self.table, 0) or []
        if column in columns:
            self.sort = (columns.index(column), direction < 0)
            self._drawn = None

    def snapshot(self) -> dict:
        return {"on": self.watch.profile, "badges": dict(self.badges),
                "table_shown": bool(self.holder) and dpg.is_item_shown(self.holder),
                "rows": [[r.node, r.forward_ms, r.backward_ms, r.share] for r in self.rows],
                "sort": list(self.sort),
                "toggle": _rect(self.toggle)}


def _rect(item: int) -> list[float] | None:
    if not item or not dpg.does_item_exist(item):
        return None
    lo, hi = dpg.get_item_rect_min(item), dpg.get_item_rect_max(item)
    return [lo[0], lo[1], hi[0], hi[1]] if hi[0] > lo[0] else None
