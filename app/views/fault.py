"""Stop at the fault (issue 17, item 7): where a run met NaN or Inf, and a way back.

When the trainer stops on NaN or Inf it says which block's output first went non-finite
(`NonFinite`, engine.core.events); the studio selects that block (as for any failed run)
and this panel shows the block's input and output wires' statistics at the failing step,
beside a button that opens the run at its last good step: the next Train starts from the
checkpoint the run folder kept (the bad step never reached the optimizer), so a gentler
learning rate can be tried from there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dearpygui.dearpygui as dpg

from engine.core.events import NonFinite, TensorStats

from ..inspection import WireWatch
from .theme import ERROR, TEXT_DIM
from .wire_inspector import window_rect, wire_title

PANEL_W, PANEL_H = 620, 330
COLUMNS = ("wire", "", "mean", "std", "min", "max", "NaN/Inf")


def fault_summary(fault: NonFinite) -> str:
    """One sentence: what went non-finite, where, and what was kept."""
    if fault.node is not None and fault.edge is not None:
        what = f"block {fault.node} produced NaN or Inf (on {wire_title(fault.edge)})"
    elif fault.node is not None:
        what = f"the gradient of block {fault.node} is NaN or Inf"
    else:
        what = "the loss or a gradient is NaN or Inf though every activation is finite"
    return (f"Step {fault.step}: {what}. Training stopped; the weights of step "
            f"{fault.last_good_step}, the last good one, are kept.")


class FaultPanel:
    def __init__(self, watch: WireWatch, on_open: Callable[[NonFinite], None]) -> None:
        self.watch, self.on_open = watch, on_open
        self.window = self.text = self.table = self.button = self.note = 0
        self._shown_version = 0
        self.rows: list[list[Any]] = []   # as the table shows them (test hook)

    def build(self) -> None:
        with dpg.window(label="Stopped at NaN / Inf", show=False, no_saved_settings=True,
                        width=PANEL_W, height=PANEL_H, pos=(260, 120)) as self.window:
            self.text = dpg.add_text("", wrap=PANEL_W - 30, color=ERROR)
            dpg.add_text("The block's wires at the failing step:", color=TEXT_DIM)
            with dpg.table(header_row=True, borders_innerH=True, height=150, scrollY=True,
                           policy=dpg.mvTable_SizingStretchProp) as self.table:
                for name in COLUMNS:
                    dpg.add_table_column(label=name)
            self.button = dpg.add_button(label="Open the run at the last good step",
                                         callback=self._on_open)
            self.note = dpg.add_text("", color=TEXT_DIM, wrap=PANEL_W - 30)

    def step(self, place: Callable[[int, int], tuple[int, int]] | None = None) -> None:
        """Show the panel when a new fault came in (once per fault), where `place` (width,
        height → position) puts it: beside the faulty block, not over it."""
        watch = self.watch
        if watch.fault_version == self._shown_version:
            return
        self._shown_version = watch.fault_version
        fault = watch.fault
        if fault is None:
            dpg.configure_item(self.window, show=False)
            return
        dpg.set_value(self.text, fault_summary(fault))
        dpg.delete_item(self.table, children_only=True, slot=1)
        self.rows = []
        for role, wires in (("in", fault.inputs), ("out", fault.outputs)):
            for edge, stats in wires.items():
                row = [wire_title(edge), role, *_cells(stats)]
                self.rows.append(row)
                with dpg.table_row(parent=self.table):
                    for i, cell in enumerate(row):
                        t = dpg.add_text(cell)
                        if i == 6 and stats.nonfinite:
                            dpg.configure_item(t, color=ERROR)
        kept = fault.checkpoint is not None
        dpg.configure_item(self.button, enabled=kept,
                           label=f"Open the run at the last good step (step {fault.last_good_step})")
        dpg.set_value(self.note, "" if kept else
                      "This run was not kept in a run folder (save the graph to a file first: "
                      "its runs are kept beside it), so there is no checkpoint to open.")
        if place is not None:
            dpg.configure_item(self.window, pos=place(PANEL_W, PANEL_H))
        dpg.configure_item(self.window, show=True)
        dpg.focus_item(self.window)

    def said(self, text: str) -> None:
        dpg.set_value(self.note, text)

    def _on_open(self) -> None:
        if self.watch.fault is not None and self.watch.fault.checkpoint is not None:
            self.on_open(self.watch.fault)

    def snapshot(self) -> dict:
        fault = self.watch.fault
        return {"shown": bool(self.window) and dpg.is_item_shown(self.window),
                "rect": window_rect(self.window),
                "node": fault.node if fault else None, "step": fault.step if fault else None,
                "last_good_step": fault.last_good_step if fault else None,
                "checkpoint": fault.checkpoint if fault else None,
                "rows": self.rows, "text": dpg.get_value(self.text) if self.text else "",
                "note": dpg.get_value(self.note) if self.note else "",
                "button": _rect(self.button),
                "button_enabled": bool(self.button) and bool(
                    dpg.get_item_configuration(self.button).get("enabled"))}


def _cells(stats: TensorStats) -> list[str]:
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.4g}"

    return [num(stats.mean), num(stats.std), num(stats.min), num(stats.max),
            f"{stats.nonfinite:,}" if stats.nonfinite else "0"]


def _rect(item: int) -> list[float] | None:
    if not item or not dpg.does_item_exist(item) or not dpg.is_item_shown(item):
        return None
    lo, hi = dpg.get_item_rect_min(item), dpg.get_item_rect_max(item)
    return [lo[0], lo[1], hi[0], hi[1]] if hi[0] > lo[0] else None
