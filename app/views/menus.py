"""The menu bar: File, Edit, View, Train, Export, Help.

Menu items only call studio actions (the same functions the shortcuts call). Labels that
depend on the state (Undo/Redo with what they would undo, recent files, enabled flags) are
refreshed when the state's version changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import dearpygui.dearpygui as dpg

from ..state import AppState, sample_names

SHORTCUTS = (
    ("Ctrl+N / Ctrl+O / Ctrl+S", "new / open / save (Ctrl+Shift+S: save as)"),
    ("Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y", "undo / redo"),
    ("Ctrl+C / X / V / D", "copy / cut / paste / duplicate"),
    ("Del, Backspace", "delete the selected blocks and wires"),
    ("Right-click", "what you can do with a block, a wire or the canvas"),
    ("Space, double-click canvas", "quick-add a block at the mouse"),
    ("Double-click a Loop/Branch", "open its body (Esc goes back up)"),
    ("Ctrl+G / Ctrl+Shift+G", "group the selection into a function / ungroup a Call"),
    ("Double-click a Call", "open its function's body: an edit there changes every call"),
    ("Ctrl+L", "auto-layout"),
    ("Ctrl+E", "export model.py, weights.pt, train.py to a folder"),
    ("Ctrl+Shift+E", "export an ONNX model, checked in onnxruntime"),
    ("F, Home", "fit the view to the blocks"),
    ("Ctrl+Enter, F5", "train / resume"),
    ("Middle-drag", "pan the canvas (the minimap also pans)"),
)


class Actions(Protocol):
    def new(self) -> None: ...
    def open_dialog(self) -> None: ...
    def open_path(self, path: str) -> None: ...
    def open_sample(self, name: str) -> None: ...
    def save(self) -> None: ...
    def save_as(self) -> None: ...
    def export_functions(self) -> None: ...
    def import_functions(self) -> None: ...
    def import_torch_module(self) -> None: ...
    def quit(self) -> None: ...
    def undo(self) -> None: ...
    def redo(self) -> None: ...
    def copy(self) -> None: ...
    def cut(self) -> None: ...
    def paste(self) -> None: ...
    def duplicate(self) -> None: ...
    def delete(self) -> None: ...
    def select_all(self) -> None: ...
    def group_into_function(self) -> None: ...
    def ungroup(self) -> None: ...
    def make_copy(self) -> None: ...
    def open_function(self) -> None: ...
    def fit_view(self) -> None: ...
    def auto_layout(self) -> None: ...
    def go_up(self) -> None: ...
    def train(self) -> None: ...
    def pause(self) -> None: ...
    def stop(self) -> None: ...
    def export(self, what: str) -> None: ...
    def show_generate(self) -> None: ...
    def show_shortcuts(self) -> None: ...
    def show_getting_started(self) -> None: ...


class MenuBar:
    def __init__(self, state: AppState, actions: Actions) -> None:
        self.state = state
        self.a = actions
        self.undo = self.redo = 0
        self.recent = 0
        self._recent: list | None = None
        self._version = -1
        # "File", "File>Save as…", "File>Open sample>moons_mlp" → item: where the test hook
        # finds what to click (labels are looked up here, never parsed out of the items).
        self.items: dict[str, int] = {}

    def build(self, parent: int | str) -> None:
        a = self.a
        self.window = parent
        with dpg.menu_bar(parent=parent) as bar:
            with dpg.menu(label="File"):
                dpg.add_menu_item(label="New", shortcut="Ctrl+N", callback=lambda: a.new())
                dpg.add_menu_item(label="Open…", shortcut="Ctrl+O", callback=lambda: a.open_dialog())
                self.recent = dpg.add_menu(label="Open recent")
                with dpg.menu(label="Open sample"):
                    for name in sample_names():
                        dpg.add_menu_item(label=name, callback=self._on_sample, user_data=name)
                dpg.add_separator()
                dpg.add_menu_item(label="Save", shortcut="Ctrl+S", callback=lambda: a.save())
                dpg.add_menu_item(label="Save as…", shortcut="Ctrl+Shift+S",
                                  callback=lambda: a.save_as())
                dpg.add_separator()
                dpg.add_menu_item(label="Export functions…",
                                  callback=lambda: a.export_functions())
                dpg.add_menu_item(label="Import functions…",
                                  callback=lambda: a.import_functions())
                dpg.add_menu_item(label="Import PyTorch module…",
                                  callback=lambda: a.import_torch_module())
                dpg.add_separator()
                dpg.add_menu_item(label="Quit", shortcut="Ctrl+Q", callback=lambda: a.quit())
            with dpg.menu(label="Edit"):
                self.undo = dpg.add_menu_item(label="Undo", shortcut="Ctrl+Z",
                                              callback=lambda: a.undo())
                self.redo = dpg.add_menu_item(label="Redo", shortcut="Ctrl+Shift+Z",
                                              callback=lambda: a.redo())
                dpg.add_separator()
                dpg.add_menu_item(label="Cut", shortcut="Ctrl+X", callback=lambda: a.cut())
                dpg.add_menu_item(label="Copy", shortcut="Ctrl+C", callback=lambda: a.copy())
                dpg.add_menu_item(label="Paste", shortcut="Ctrl+V", callback=lambda: a.paste())
                dpg.add_menu_item(label="Duplicate", shortcut="Ctrl+D",
                                  callback=lambda: a.duplicate())
                dpg.add_menu_item(label="Delete", shortcut="Del", callback=lambda: a.delete())
                dpg.add_menu_item(label="Select all", shortcut="Ctrl+A",
                                  callback=lambda: a.select_all())
                dpg.add_separator()
                dpg.add_menu_item(label="Group into function", shortcut="Ctrl+G",
                                  callback=lambda: a.group_into_function())
                dpg.add_menu_item(label="Ungroup", shortcut="Ctrl+Shift+G",
                                  callback=lambda: a.ungroup())
                dpg.add_menu_item(label="Make a copy of the function",
                                  callback=lambda: a.make_copy())
                dpg.add_menu_item(label="Open function", shortcut="dbl-click",
                                  callback=lambda: a.open_function())
            with dpg.menu(label="View"):
                dpg.add_menu_item(label="Fit view", shortcut="F", callback=lambda: a.fit_view())
                dpg.add_menu_item(label="Auto-layout", shortcut="Ctrl+L",
                                  callback=lambda: a.auto_layout())
                dpg.add_menu_item(label="Up one level", shortcut="Esc", callback=lambda: a.go_up())
            with dpg.menu(label="Train"):
                dpg.add_menu_item(label="Train", shortcut="Ctrl+Enter", callback=lambda: a.train())
                dpg.add_menu_item(label="Pause / resume", callback=lambda: a.pause())
                dpg.add_menu_item(label="Stop", callback=lambda: a.stop())
                dpg.add_separator()
                dpg.add_menu_item(label="Generate text…", callback=lambda: a.show_generate())
            with dpg.menu(label="Export"):
                dpg.add_menu_item(label="Model (model.py)…", callback=lambda: a.export("model"))
                dpg.add_menu_item(label="Weights (weights.pt)…", callback=lambda: a.export("weights"))
                dpg.add_menu_item(label="Training script (train.py + data.pt)…",
                                  callback=lambda: a.export("script"))
                dpg.add_menu_item(label="ONNX model (.onnx), checked in onnxruntime…",
                                  shortcut="Ctrl+Shift+E", callback=lambda: a.export("onnx"))
                dpg.add_menu_item(label="torch.export program (.pt2), checked…",
                                  callback=lambda: a.export("pt2"))
                dpg.add_menu_item(label="All to a folder…", shortcut="Ctrl+E",
                                  callback=lambda: a.export("all"))
            with dpg.menu(label="Help"):
                dpg.add_menu_item(label="Getting started", callback=lambda: a.show_getting_started())
                dpg.add_menu_item(label="Keyboard shortcuts", callback=lambda: a.show_shortcuts())
        self._index(bar, "")

    @property
    def open(self) -> bool:
        """Is a menu of the bar open? (Its popup has a size only while it is.)"""
        return any((dpg.get_item_state(item).get("rect_size") or (0, 0))[0] > 0
                   for path, item in self.items.items() if ">" not in path)

    def close(self) -> None:
        """Close the open menu (Esc): focusing the window closes the popups over it."""
        dpg.focus_item(self.window)

    def _index(self, parent: int, prefix: str) -> None:
        for item in dpg.get_item_children(parent, 1) or []:
            kind = dpg.get_item_type(item)
            if kind.endswith(("mvMenu", "mvMenuItem")):
                path = prefix + dpg.get_item_label(item)
                self.items[path] = item
                if kind.endswith("mvMenu"):
                    self._index(item, path + ">")

    def refresh(self) -> None:
        state = self.state
        if state.version == self._version:
            return
        self._version = state.version
        dpg.configure_item(self.undo, label=f"Undo {state.undo_label}" if state.undo_label
                           else "Undo", enabled=state.can_undo)
        dpg.configure_item(self.redo, label=f"Redo {state.redo_label}" if state.redo_label
                           else "Redo", enabled=state.can_redo)
        if state.recent_files != self._recent:
            self._recent = list(state.recent_files)
            dpg.delete_item(self.recent, children_only=True)
            for path in self._recent:
                dpg.add_menu_item(label=str(path), parent=self.recent, callback=self._on_recent,
                                  user_data=str(path))
            if not self._recent:
                dpg.add_menu_item(label="(none yet)", parent=self.recent, enabled=False)

    def _on_sample(self, sender: int, app_data: object, name: str) -> None:
        self.a.open_sample(name)

    def _on_recent(self, sender: int, app_data: object, path: str) -> None:
        self.a.open_path(str(Path(path)))
