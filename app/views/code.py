"""The live code panel: the generated PyTorch source (`AppState.code`), one text item per line.

`AppState` generates the code lazily, the first time it is read (a few ms for a param edit
of a 1,000-node graph, tens of ms when it must regenerate). So this panel reads it only while the
Code tab is showing, and never in the frame of an edit: it catches up in the first frame
after the edits stop, at most `MAX_HZ` times a second. The editor and inspector redraw at
once; the code follows a frame or so later, and a burst of edits costs one generation.

When the code changes, only lines whose text changed are rewritten, and items are added or
removed at the end. The selected node's lines (`AppState.lines_for`) are coloured and
scrolled into view. When the graph has errors, the last good code stays, dimmed, under a
note that says why it is stale.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from ..state import AppState
from .theme import SEVERITY_TEXT, TEXT_DIM, Theme

MAX_HZ = 6.0
# Until two lines have been drawn: DejaVu Sans Mono 15 px (18 px lines) + 1 px item spacing.
# The real pitch depends on the font Dear PyGui found and the global scale; it is measured
# from the drawn lines (a fixed 19 scrolled a line 60 down to line 47 on Xvfb).
LINE_HEIGHT = 19.0


class CodePanel:
    def __init__(self, state: AppState, theme: Theme) -> None:
        self.state = state
        self.theme = theme
        self.root = 0
        self.note = 0
        self.lines_box = 0
        self.items: list[int] = []
        self.texts: list[str] = []
        self.highlighted: list[int] = []
        self._code: str | None = None
        self._selection: tuple | None = None
        self._stale: bool | None = None
        self._shown: tuple | None = None
        self.refreshed_at = -float("inf")   # the `now` of the last tick that refreshed
        self._pitch = LINE_HEIGHT

    def build(self, parent: int | str) -> None:
        self.root = dpg.add_group(parent=parent)
        self.note = dpg.add_text("", parent=self.root, wrap=440, show=False,
                                 color=SEVERITY_TEXT["warning"])
        self.lines_box = dpg.add_child_window(parent=self.root, border=False, width=-1, height=-1,
                                              horizontal_scrollbar=True)
        if self.theme.mono:
            dpg.bind_item_font(self.lines_box, self.theme.mono)
        self._tight, self._tight_dim = (self._lines_theme(dim) for dim in (False, True))
        dpg.bind_item_theme(self.lines_box, self._tight)

    @staticmethod
    def _lines_theme(dim: bool) -> int:
        """Code lines close together; dimmed while the code is stale."""
        with dpg.theme() as theme:
            with dpg.theme_component(dpg.mvAll):
                dpg.add_theme_style(dpg.mvStyleVar_ItemSpacing, 8, 1)
                if dim:
                    dpg.add_theme_color(dpg.mvThemeCol_Text, TEXT_DIM)
        return theme

    def tick(self, visible: bool, edited_now: bool, now: float) -> None:
        """Per frame: catch up with the state when showing, edits have paused, and the last
        catch-up was long enough ago."""
        state = self.state
        key = (state.graph, state.region, state.selection)
        if not visible or edited_now or key == self._shown:
            return
        if now - self.refreshed_at < 1.0 / MAX_HZ:
            return
        self.refreshed_at = now
        self._shown = key
        self.refresh()

    def refresh(self) -> None:
        state = self.state
        stale = state.code_error is not None
        if stale != self._stale or (stale and dpg.get_value(self.note) != state.code_error):
            self._stale = stale
            dpg.set_value(self.note, f"Code is out of date: {state.code_error}" if stale else "")
            dpg.configure_item(self.note, show=stale)
            dpg.bind_item_theme(self.lines_box, self._tight_dim if stale else self._tight)
        if state.code is not self._code:
            self._code = state.code
            self._set_lines(state.code.splitlines() or ["# the graph is empty"])
            self._selection = None
        key = (state.region, state.selection, state.code)
        if key != self._selection:
            self._selection = key
            self._highlight()

    def _set_lines(self, lines: list[str]) -> None:
        for i, text in enumerate(lines):
            text = text or " "
            if i < len(self.items):
                if self.texts[i] != text:
                    dpg.set_value(self.items[i], text)
                    self.texts[i] = text
            else:
                self.items.append(dpg.add_text(text, parent=self.lines_box))
                self.texts.append(text)
        for item in self.items[len(lines):]:
            dpg.delete_item(item)
        del self.items[len(lines):]
        del self.texts[len(lines):]
        self.highlighted = [i for i in self.highlighted if i < len(self.items)]

    def _highlight(self) -> None:
        for i in self.highlighted:
            dpg.bind_item_theme(self.items[i], 0)
        lines: list[int] = []
        for node_id in self.state.selection:
            lines += [ln - 1 for ln in self.state.lines_for(node_id) if 0 < ln <= len(self.items)]
        self.highlighted = sorted(set(lines))
        for i in self.highlighted:
            dpg.bind_item_theme(self.items[i], self.theme.code_highlight)
        if self.highlighted:
            first = self.highlighted[0]
            dpg.set_y_scroll(self.lines_box, max(0.0, (first - 4) * self._line_pitch()))

    def _line_pitch(self) -> float:
        """Pixels from one code line to the next, as drawn (LINE_HEIGHT before that)."""
        if len(self.items) >= 2:
            a, b = (dpg.get_item_state(item).get("rect_min", (0, 0))[1] for item in self.items[:2])
            if b > a:
                self._pitch = float(b - a)
        return self._pitch
