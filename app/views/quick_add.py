"""Quick add: a small search popup at the mouse (double-click on empty canvas, or Space).

Type to filter the blocks (same ranking as the palette search); Enter adds the first match
where the popup was opened, a click adds that block, Esc or a click elsewhere closes it.

The graph's functions are searched too (name, title, category, doc), listed as "ƒ Title"
before the blocks of the same rank; picking one places a Call of it (`on_call`). When the
popup inserts a block on a wire, only blocks are offered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import dearpygui.dearpygui as dpg

from engine.core.graph import Function

from .palette import CallOf, function_label, ranked, ranked_functions, suggest
from .theme import TEXT_DIM

MAX_RESULTS = 12


class QuickAdd:
    def __init__(self, on_pick: Callable[[str, tuple[float, float]], None],
                 functions: Callable[[], Mapping[str, Function]] = dict,
                 on_call: Callable[[str, tuple[float, float]], None] | None = None) -> None:
        self.on_pick = on_pick
        self.window = 0
        self.filter = 0
        self.list_group = 0
        self.rows: dict[int, str | CallOf] = {}    # selectable → block type or function
        self.matches: list[str | CallOf] = []
        # The graph's functions, and where a picked one goes.
        self.functions = functions
        self.on_call = on_call
        self._calls = False   # offer functions this time (not when inserting on a wire)
        self.at: tuple[float, float] = (0.0, 0.0)   # model position to add at
        self._focus_frames = 0
        self._pick: Callable[[str, tuple[float, float]], None] = on_pick   # this time's

    def build(self) -> None:
        with dpg.window(label="Add block", show=False, no_title_bar=True, no_resize=True,
                        no_move=True, no_collapse=True, no_saved_settings=True, width=300,
                        height=330, popup=True) as self.window:
            dpg.add_text("Add a block — type to search, Enter adds", color=TEXT_DIM)
            self.filter = dpg.add_input_text(width=-1, hint="linear, relu, loop…",
                                             callback=self._on_filter)
            self.list_group = dpg.add_group()

    @property
    def visible(self) -> bool:
        return bool(self.window) and dpg.is_item_shown(self.window)

    def open(self, screen: tuple[float, float], at: tuple[float, float],
             on_pick: Callable[[str, tuple[float, float]], None] | None = None) -> None:
        """Show the popup at `screen`; the block picked goes to `on_pick` (this time only:
        a block inserted on a wire), else to the constructor's."""
        self.at = at
        self._pick = on_pick or self.on_pick
        self._calls = on_pick is None and self.on_call is not None
        dpg.set_value(self.filter, "")
        self._fill("")
        dpg.configure_item(self.window, pos=(int(screen[0]), int(screen[1])), show=True)
        dpg.focus_item(self.window)
        self._focus_frames = 2   # focus the text box once the window exists on screen

    def close(self) -> None:
        if self.window:
            dpg.configure_item(self.window, show=False)

    def step(self) -> None:
        """Per frame while open: keep the filter focused right after opening."""
        if self._focus_frames:
            self._focus_frames -= 1
            dpg.focus_item(self.filter)

    def _fill(self, query: str) -> None:
        dpg.delete_item(self.list_group, children_only=True)
        self.rows.clear()
        functions = self.functions() if self._calls else {}
        calls = ranked_functions(query, functions)[:MAX_RESULTS]
        for i, name in enumerate(calls):
            row = dpg.add_selectable(label=function_label(name, functions[name], functions),
                                     parent=self.list_group, callback=self._on_row,
                                     default_value=i == 0)
            self.rows[row] = CallOf(name)
            with dpg.tooltip(row):
                dpg.add_text(f"function {name}: {functions[name].doc or 'no description'}",
                             wrap=300)
        specs = ranked(query)[:MAX_RESULTS - len(calls)]
        near = not specs and not calls   # a typo: offer the nearest blocks, Enter takes the first
        if near:
            specs = suggest(query)
            if specs:
                dpg.add_text("no block matches; did you mean", parent=self.list_group,
                             color=TEXT_DIM)
        self.matches = [CallOf(n) for n in calls] + [s.type for s in specs]
        for i, spec in enumerate(specs):
            row = dpg.add_selectable(label=f"{spec.title}" + ("?" if near else ""),
                                     parent=self.list_group, callback=self._on_row,
                                     default_value=i == 0 and not calls)
            self.rows[row] = spec.type
            with dpg.tooltip(row):
                dpg.add_text(f"{spec.category}: {spec.doc}", wrap=300)
        if not specs and not calls:
            dpg.add_text("no block matches", parent=self.list_group, color=TEXT_DIM)

    def _on_filter(self, sender: int, query: str, user_data: object) -> None:
        self._fill(query)

    def accept(self) -> bool:
        """Enter: add the first match."""
        if not self.visible or not self.matches:
            return False
        self.close()
        self._take(self.matches[0])
        return True

    def _on_row(self, sender: int, app_data: object, user_data: object) -> None:
        block = self.rows.get(sender)
        self.close()
        if block is not None:
            self._take(block)

    def _take(self, pick: str | CallOf) -> None:
        if isinstance(pick, CallOf):
            if self.on_call is not None:
                self.on_call(pick.function, self.at)
        else:
            self._pick(pick, self.at)

    def labels(self) -> list[str]:
        """The rows shown, in order (for the test hook)."""
        return [dpg.get_item_label(row) for row in self.rows]

    def text_inputs(self) -> list[int]:
        return [self.filter]
