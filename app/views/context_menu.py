"""Right-click menus: on the canvas, on a block, on a wire.

The studio decides what was clicked and hands `open` a list of `Entry`s (label, what to do,
whether it can be done now); the menu is a popup window at the mouse, one selectable per
entry, closed by a choice, by Esc or by a click elsewhere. The view keeps its own map
selectable → entry, so no meaning lives in the widgets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dearpygui.dearpygui as dpg

from .theme import TEXT_DIM

WIDTH = 230


@dataclass(frozen=True)
class Entry:
    """One line of a context menu. `hint` is shown dimmed on the right (a shortcut)."""

    label: str
    action: Callable[[], None]
    enabled: bool = True
    hint: str = ""


class ContextMenu:
    def __init__(self) -> None:
        self.window = 0
        self.title = 0
        self.list_group = 0
        self.rows: dict[int, Entry] = {}     # selectable → entry (the test hook reads it)
        self.kind = ""                       # "canvas", "block" or "wire", while open

    def build(self) -> None:
        with dpg.window(show=False, popup=True, no_title_bar=True, no_resize=True, no_move=True,
                        no_saved_settings=True, autosize=True, min_size=(WIDTH, 20)) as self.window:
            self.title = dpg.add_text("", color=TEXT_DIM)
            self.list_group = dpg.add_group()

    @property
    def visible(self) -> bool:
        return bool(self.window) and dpg.is_item_shown(self.window)

    def open(self, screen: tuple[float, float], kind: str, title: str,
             entries: list[Entry | None]) -> None:
        """Show `entries` at the screen position `screen`, under a dim `title` (None draws
        a separator)."""
        self.kind = kind
        dpg.delete_item(self.list_group, children_only=True)
        self.rows.clear()
        dpg.set_value(self.title, title)
        for entry in entries:
            if entry is None:
                dpg.add_separator(parent=self.list_group)
                continue
            with dpg.group(parent=self.list_group, horizontal=True):
                row = dpg.add_selectable(label=entry.label, width=WIDTH - 70,
                                         enabled=entry.enabled, callback=self._on_row)
                if entry.hint:
                    dpg.add_text(entry.hint, color=TEXT_DIM)
            self.rows[row] = entry
        dpg.configure_item(self.window, pos=(int(screen[0]), int(screen[1])), show=True)
        dpg.focus_item(self.window)

    def close(self) -> None:
        if self.visible:
            dpg.configure_item(self.window, show=False)
        self.kind = ""

    def _on_row(self, sender: int, app_data: object, user_data: object) -> None:
        dpg.set_value(sender, False)
        entry = self.rows.get(sender)
        self.close()
        if entry is not None and entry.enabled:
            entry.action()
