"""Modal dialogs: unsaved changes (Save / Discard / Cancel), crash recovery, a file path
prompt (type a path, or Browse… with Dear PyGui's file dialog), messages, a checklist
(which functions to export) and a question with buttons of the caller's (a name clash on
import: rename or cancel).

Each dialog is built once and reused; callers pass what to do next as a function, so no
meaning lives in the widgets.

A dialog asked for in the frame another one closed (Save in the unsaved-changes question
opens the Save As prompt) is shown two frames later: ImGui drops a modal opened while the
modal before it is still closing. `step()`, called every frame, shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dearpygui.dearpygui as dpg

from .theme import TEXT_DIM, Theme

Action = Callable[[], None]


def center(window: int, width: int, height: int) -> None:
    vw = dpg.get_viewport_client_width() or 1600
    vh = dpg.get_viewport_client_height() or 1000
    dpg.configure_item(window, pos=(max(0, (vw - width) // 2), max(0, (vh - height) // 3)))


class Dialogs:
    def __init__(self, theme: Theme) -> None:
        self.theme = theme
        self.confirm_window = 0
        self.confirm_text = 0
        self._on_save: Action | None = None
        self._on_discard: Action | None = None
        self.path_window = 0
        self.path_title = 0
        self.path_input = 0
        self.path_error = 0
        self._on_path: Callable[[str], bool] | None = None
        self.file_dialog = 0
        self.message_window = 0
        self.message_text = 0
        self.recovery_window = 0
        self.recovery_text = 0
        self._on_restore: Action | None = None
        self._on_drop_recovery: Action | None = None
        self.pick_window = 0
        self.pick_text = 0
        self.pick_list = 0
        self.pick_boxes: dict[str, int] = {}  # item → checkbox, in the order given
        self._on_picked: Callable[[list[str]], None] | None = None
        self.ask_window = 0
        self.ask_text = 0
        self.ask_row = 0
        self.buttons: dict[str, int] = {}     # name → button, for the test hook's geometry
        self._frame = 0
        self._closed_at = -10                 # the frame a dialog was last hidden in
        self._pending: list[tuple[int, int]] = []   # (window, item to focus) to show soon
        # Dialogs other views build (File › Import PyTorch module…): name → (window, inputs)
        self.extra: dict[str, tuple[int, list[int]]] = {}

    def build(self) -> None:
        with dpg.window(label="Unsaved changes", modal=True, show=False, no_resize=True,
                        no_saved_settings=True, width=440, height=130,
                        no_close=True) as self.confirm_window:
            self.confirm_text = dpg.add_text("", wrap=410)
            dpg.add_spacer(height=6)
            with dpg.group(horizontal=True):
                save = dpg.add_button(label="Save", width=100, callback=self._confirm_save)
                dpg.bind_item_theme(save, self.theme.primary_button)
                self.buttons["save"] = save
                self.buttons["discard"] = dpg.add_button(label="Discard", width=100,
                                                         callback=self._confirm_discard)
                self.buttons["cancel"] = dpg.add_button(label="Cancel", width=100,
                                                        callback=self._confirm_cancel)
        with dpg.window(label="File", modal=True, show=False, no_resize=True,
                        no_saved_settings=True, width=560, height=150) as self.path_window:
            self.path_title = dpg.add_text("")
            self.path_input = dpg.add_input_text(width=-1, on_enter=True, callback=self._path_ok,
                                                 hint="/path/to/graph.json")
            self.path_error = dpg.add_text("", color=(224, 80, 80), wrap=530, show=False)
            with dpg.group(horizontal=True):
                ok = dpg.add_button(label="OK", width=90, callback=self._path_ok)
                dpg.bind_item_theme(ok, self.theme.primary_button)
                self.buttons["path_ok"] = ok
                self.buttons["browse"] = dpg.add_button(label="Browse…", width=90,
                                                        callback=self._browse)
                self.buttons["path_cancel"] = dpg.add_button(label="Cancel", width=90,
                                                             callback=self._path_cancel)
        with dpg.file_dialog(show=False, modal=True, width=720, height=440, directory_selector=False,
                             callback=self._file_chosen) as self.file_dialog:
            dpg.add_file_extension(".json", color=(120, 200, 140, 255))
            dpg.add_file_extension(".*")
        with dpg.window(label="dprog", modal=True, show=False, no_resize=True, autosize=True,
                        no_saved_settings=True, width=480) as self.message_window:
            self.message_text = dpg.add_text("", wrap=450)
            dpg.add_button(label="OK", width=90,
                           callback=lambda: self._hide(self.message_window))
        with dpg.window(label="Choose", modal=True, show=False, no_resize=True,
                        no_saved_settings=True, width=440, height=330) as self.pick_window:
            self.pick_text = dpg.add_text("", wrap=410)
            with dpg.group(horizontal=True):
                dpg.add_button(label="All", small=True, callback=lambda: self._pick_all(True))
                dpg.add_button(label="None", small=True, callback=lambda: self._pick_all(False))
            self.pick_list = dpg.add_child_window(height=190, width=-1)
            with dpg.group(horizontal=True):
                ok = dpg.add_button(label="Next…", width=100, callback=self._pick_ok)
                dpg.bind_item_theme(ok, self.theme.primary_button)
                self.buttons["pick_ok"] = ok
                self.buttons["pick_cancel"] = dpg.add_button(
                    label="Cancel", width=100, callback=lambda: self._hide(self.pick_window))
        with dpg.window(label="dprog", modal=True, show=False, no_resize=True,
                        no_saved_settings=True, width=480, height=150) as self.ask_window:
            self.ask_text = dpg.add_text("", wrap=450)
            dpg.add_spacer(height=6)
            self.ask_row = dpg.add_group(horizontal=True)
        with dpg.window(label="Recover unsaved changes?", modal=True, show=False, no_resize=True,
                        no_saved_settings=True, width=480, height=150,
                        no_close=True) as self.recovery_window:
            self.recovery_text = dpg.add_text("", wrap=450)
            dpg.add_spacer(height=6)
            with dpg.group(horizontal=True):
                restore = dpg.add_button(label="Restore", width=110, callback=self._restore)
                dpg.bind_item_theme(restore, self.theme.primary_button)
                self.buttons["restore"] = restore
                self.buttons["drop_recovery"] = dpg.add_button(label="Discard", width=110,
                                                               callback=self._drop_recovery)

    def showing(self) -> list[str]:
        """Names of the dialogs on screen (for the test hook)."""
        names = {"confirm": self.confirm_window, "path": self.path_window,
                 "files": self.file_dialog, "message": self.message_window,
                 "recovery": self.recovery_window, "pick": self.pick_window,
                 "ask": self.ask_window, **{n: w for n, (w, _) in self.extra.items()}}
        return [n for n, w in names.items() if w and dpg.is_item_shown(w)]

    def register(self, name: str, window: int, inputs: list[int]) -> None:
        """A modal window another view built, shown and hidden through `show` and `hide`, so
        that Esc, the editor's shortcuts and the test hook treat it as a dialog."""
        self.extra[name] = (window, inputs)

    def show(self, window: int, focus: int = 0) -> None:
        self._show(window, focus)

    def hide(self, window: int) -> None:
        self._hide(window)

    # -- showing and hiding ----------------------------------------------------------------------

    def _show(self, window: int, focus: int = 0) -> None:
        if self._frame - self._closed_at <= 1:
            self._pending.append((window, focus))   # see the module docstring
            return
        dpg.configure_item(window, show=True)
        if focus:
            dpg.focus_item(focus)

    def _hide(self, window: int) -> None:
        dpg.configure_item(window, show=False)
        self._closed_at = self._frame
        self._pending = [(w, f) for w, f in self._pending if w != window]

    def step(self) -> None:
        """Per frame: show a dialog asked for while another was closing."""
        self._frame += 1
        if self._pending and self._frame - self._closed_at > 2:
            pending, self._pending = self._pending, []
            for window, focus in pending:
                self._show(window, focus)

    @property
    def open(self) -> bool:
        """Is any dialog showing or about to (so editor shortcuts should stand aside)?"""
        if self._pending:
            return True
        return any(w and dpg.is_item_shown(w) for w in (
            self.confirm_window, self.path_window, self.file_dialog, self.message_window,
            self.recovery_window, self.pick_window, self.ask_window,
            *(w for w, _ in self.extra.values())))

    def close_top(self) -> bool:
        """Esc: close whichever dialog is open (a confirm counts as Cancel)."""
        for w in (self.file_dialog, self.path_window, self.message_window, self.confirm_window,
                  self.pick_window, self.ask_window, *(w for w, _ in self.extra.values())):
            if w and dpg.is_item_shown(w):
                self._hide(w)
                return True
        return False

    def text_inputs(self) -> list[int]:
        return [self.path_input, *(i for _, inputs in self.extra.values() for i in inputs)]

    # -- unsaved changes ---------------------------------------------------------------------

    def confirm_unsaved(self, name: str, *, on_save: Action, on_discard: Action) -> None:
        self._on_save, self._on_discard = on_save, on_discard
        dpg.set_value(self.confirm_text, f"{name} has unsaved changes. Save them first?")
        center(self.confirm_window, 440, 130)
        self._show(self.confirm_window)

    def _confirm_save(self) -> None:
        self._hide(self.confirm_window)
        if self._on_save:
            self._on_save()

    def _confirm_discard(self) -> None:
        self._hide(self.confirm_window)
        if self._on_discard:
            self._on_discard()

    def _confirm_cancel(self) -> None:
        self._hide(self.confirm_window)

    # -- paths -------------------------------------------------------------------------------------

    def ask_path(self, title: str, on_path: Callable[[str], bool], default: str = "",
                 *, save: bool = False) -> None:
        """Ask for a path: typed (Enter/OK) or picked with Browse…. `on_path` returns True
        when it accepted the path (else the dialog stays open showing the status)."""
        self._on_path = on_path
        self._save_mode = save
        dpg.set_value(self.path_title, title)
        dpg.set_value(self.path_input, default)
        self._show_path_error("")
        center(self.path_window, 560, 150)
        self._show(self.path_window, focus=self.path_input)

    def _path_ok(self, *args: object) -> None:
        text = dpg.get_value(self.path_input).strip()
        if not text:
            self._show_path_error("type a file path, or Browse…")
            return
        self._accept(text)

    def _accept(self, text: str) -> None:
        path = str(Path(text).expanduser())
        if self._on_path is None:
            return
        # This prompt closes in this frame if the path is taken: a dialog `_on_path` opens
        # (Open asks about unsaved changes after the path) must wait for that.
        self._closed_at = self._frame
        if self._on_path(path):
            self._hide(self.path_window)

    def show_path_error(self, text: str) -> None:
        self._show_path_error(text)

    def _show_path_error(self, text: str) -> None:
        dpg.set_value(self.path_error, text)
        dpg.configure_item(self.path_error, show=bool(text))

    def _path_cancel(self) -> None:
        self._hide(self.path_window)

    def _browse(self) -> None:
        current = dpg.get_value(self.path_input).strip()
        folder = str(Path(current).expanduser().parent) if current else str(Path.cwd())
        dpg.configure_item(self.file_dialog, default_path=folder, show=True)

    def _file_chosen(self, sender: int, app_data: dict, user_data: object) -> None:
        path = app_data.get("file_path_name") if isinstance(app_data, dict) else None
        if path:
            dpg.set_value(self.path_input, path)
            self._accept(path)

    # -- messages and recovery ---------------------------------------------------------------------

    def message(self, text: str, title: str = "dprog") -> None:
        dpg.configure_item(self.message_window, label=title)
        dpg.set_value(self.message_text, text)
        center(self.message_window, 480, 160)
        self._show(self.message_window)

    def offer_recovery(self, text: str, *, on_restore: Action, on_discard: Action) -> None:
        self._on_restore, self._on_drop_recovery = on_restore, on_discard
        dpg.set_value(self.recovery_text, text)
        center(self.recovery_window, 480, 150)
        self._show(self.recovery_window)

    def _restore(self) -> None:
        self._hide(self.recovery_window)
        if self._on_restore:
            self._on_restore()

    def _drop_recovery(self) -> None:
        self._hide(self.recovery_window)
        if self._on_drop_recovery:
            self._on_drop_recovery()

    # -- a checklist, and a question with the caller's buttons ---------------------------------

    def pick(self, title: str, text: str, items: list[tuple[str, str]],
             on_picked: Callable[[list[str]], None]) -> None:
        """A checklist of `items` ((key, label) pairs), all ticked; Next… hands the ticked
        keys, in the order given, to `on_picked` (never an empty list: it asks for one)."""
        self._on_picked = on_picked
        dpg.configure_item(self.pick_window, label=title)
        dpg.set_value(self.pick_text, text)
        dpg.delete_item(self.pick_list, children_only=True)
        for key in list(self.buttons):
            if key.startswith("pick:"):
                del self.buttons[key]
        self.pick_boxes = {}
        for key, label in items:
            box = dpg.add_checkbox(label=label, default_value=True, parent=self.pick_list)
            self.pick_boxes[key] = box
            self.buttons[f"pick:{key}"] = box
        center(self.pick_window, 440, 330)
        self._show(self.pick_window)

    def picked(self) -> list[str]:
        return [key for key, box in self.pick_boxes.items() if dpg.get_value(box)]

    def _pick_all(self, value: bool) -> None:
        for box in self.pick_boxes.values():
            dpg.set_value(box, value)

    def _pick_ok(self) -> None:
        chosen = self.picked()
        if not chosen:
            dpg.set_value(self.pick_text, "Tick at least one, or Cancel.")
            return
        self._hide(self.pick_window)
        if self._on_picked is not None:
            self._on_picked(chosen)

    def ask(self, title: str, text: str, choices: list[tuple[str, str, Action | None]]) -> None:
        """A question: one button per (name, label, action) choice; each closes the dialog,
        then runs its action (None: just close). The first is the primary one."""
        dpg.configure_item(self.ask_window, label=title)
        dpg.set_value(self.ask_text, text)
        dpg.delete_item(self.ask_row, children_only=True)
        for key in list(self.buttons):
            if key.startswith("ask:"):
                del self.buttons[key]
        for i, (name, label, action) in enumerate(choices):
            button = dpg.add_button(label=label, parent=self.ask_row, callback=self._answer,
                                    user_data=action)
            if i == 0:
                dpg.bind_item_theme(button, self.theme.primary_button)
            self.buttons[f"ask:{name}"] = button
        center(self.ask_window, 480, 150)
        self._show(self.ask_window)

    def _answer(self, sender: int, app_data: object, action: Action | None) -> None:
        self._hide(self.ask_window)
        if action is not None:
            action()


__all__ = ["TEXT_DIM", "Dialogs"]
