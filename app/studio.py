"""The dprog studio: builds the Dear PyGui window and runs its frame loop.

    run(graph_path, screenshot=None, frames=30, train=False) -> exit code   (`dprog [GRAPH]`)
    build_studio(graph_path) -> Studio          # everything built, no loop entered
    studio.step()                               # one frame of the studio's own Python work
    studio.frame()                              # step() + render

Architecture: `AppState` (app/state.py) is the model; the views in app/views turn Dear PyGui
events into commands and redraw from the state. Callbacks are not run by Dear PyGui: with
`manual_callback_management` the frame loop takes them from the callback queue and runs
each one guarded on the main thread, so the state needs no locks and no exception ever
reaches Dear PyGui. Each frame then drains the trainer's event queue (bounded), and views
redraw only when `state.version` (or the run's counters) moved, at their own rate limits.

torch is never imported by app/ at import time: the first frame is drawn, then a background
thread imports torch and the trainer so that pressing Train is quick.

The dataset the graph's training section names is loaded on a worker as soon as it changes
(app/training_data.py): the run panel draws it before Train is pressed, and the state checks
the graph against it, so a misfit is under Problems before a run. Opening another document
clears the last run from every view (a running one is stopped first).

Right-click menus (the canvas, a block, a wire) offer what can be done there; Esc closes a
menu, a context menu, the quick-add popup or a dialog before it climbs out of a body.

A training run that fails inside a block leaves its error on that block (an error
diagnostic in `AppState`, drawn and listed like the analysis's own) until the graph is
edited or the next run starts; the studio goes to the block, entering its body if need be.

Inside wires (issue 17): `app.inspection.WireWatch` follows the run for the wire pinned or
hovered (app/views/wire_inspector.py), profile mode's time per block (app/views/profile.py)
and a NaN/Inf fault (app/views/fault.py); it asks the trainer for nothing while none is on.

Closing (the window's close button, Ctrl+Q, File › Quit) asks about unsaved changes first,
then `close()` stops a run and joins its thread (bounded), so the interpreter never exits
with the trainer inside torch, and only then tears the window down.

Test hook: with DPROG_TEST_STATE=path set, the studio writes a JSON snapshot of its state
and screen geometry to that path every frame, and a last one from `close()` saying how the
workers ended (app/views/testhook.py).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg

from engine.core.config import TrainingConfig
from engine.core.files import shown
from engine.core.graph import Graph, Node
from nodes import lookup

from .commands import (
    AutoLayout,
    Disconnect,
    GroupIntoFunction,
    InsertOnWire,
    MakeCopy,
    Ungroup,
    region_prefix,
)
from .inspection import WireWatch
from .runs import RunHistory
from .state import AppState
from .training import (
    ACTIVE,
    FAILED,
    FINISHED,
    LOADING,
    PAUSED,
    RUNNING,
    STOPPED,
    TextJob,
    TrainingRun,
)
from .training_data import TrainingData
from .views.code import CodePanel
from .views.context_menu import ContextMenu, Entry
from .views.data_preview import DataPreview
from .views.diagnostics import DiagnosticsPanel
from .views.dialogs import Dialogs
from .views.editor import GraphEditor
from .views.fault import FaultPanel
from .views.generate import GenerateWindow
from .views.gradflow import GradientView
from .views.help import GettingStarted, PanelTips
from .views.import_dialog import ImportModuleDialog
from .views.inspector import Inspector
from .views.live_edit import ROW_H as LIVE_ROW_H
from .views.live_edit import LiveEditBar
from .views.menus import SHORTCUTS, MenuBar
from .views.palette import Palette
from .views.profile import ProfileView
from .views.quick_add import QuickAdd
from .views.run_panel import RunPanel, TrainingSettings, series_theme
from .views.runs import RunsView
from .views.testhook import TestHook
from .views.theme import ERROR, INFO, TEXT_DIM, WARNING, Theme
from .views.wire_inspector import WireInspector

log = logging.getLogger("dprog.studio")

WIDTH, HEIGHT = 1600, 1000
PALETTE_W, RIGHT_W = 210, 470
BOTTOM_H = 360          # the training dock and the inspector tabs, under the canvas
PLOT_H = BOTTOM_H - 74
STATUS_H = 26
FPS = 60.0
# How long closing waits for the trainer (it stops after the step in progress, which
# takes milliseconds for the samples) and an export in flight, before exiting regardless.
CLOSE_TIMEOUT = 10.0
IMPORT_TIMEOUT = 60.0   # the same wait, while the run's worker is still importing torch


@dataclass(frozen=True)
class ExportResult:
    """How an export on its worker thread ended, for the next frame's status bar."""

    message: str
    failed: bool = False


class Studio:
    """One studio window. See the module docstring."""

    def __init__(self, state: AppState, *, test_state_path: str | None = None) -> None:
        self.state = state
        self.run = TrainingRun()
        self.history = RunHistory(state)
        self.data = TrainingData()
        self.theme = Theme()
        self.editor = GraphEditor(state, self.theme,
                                  flags_for=lambda path: self.gradients.flags_for(path))
        self.gradients = GradientView(state, self.run, self.editor, self.theme)
        # Inside wires, time per block, stop at the fault (issue 17): one watch, three views.
        self.wires = WireWatch()
        self.run.handlers.update(self.wires.handlers())
        self.wire_view = WireInspector(state, self.run, self.editor, self.theme, self.wires,
                                       place=lambda node, w, h: self._beside(node, w, h))
        self.profile = ProfileView(state, self.editor, self.wires)
        self.fault = FaultPanel(self.wires, on_open=self.open_last_good)
        self.palette = Palette(self.theme, on_add=self._palette_add,
                               functions=lambda: self.state.graph.functions,
                               on_call=lambda name: self.place_call(
                                   name, self.editor.canvas_center_model()))
        self.inspector = Inspector(state, self.theme, open_body=self.open_body,
                                   open_function=self.open_function, make_copy=self.make_copy,
                                   ungroup=self.ungroup, go_to=self.jump_to_call)
        self.diagnostics = DiagnosticsPanel(state, go_to=self.go_to_node, on_count=self._on_counts)
        self.code = CodePanel(state, self.theme)
        self.settings = TrainingSettings(state)
        self.run_panel = RunPanel(self.run, self.theme, on_train=self.train, on_pause=self.pause,
                                  on_stop=self.stop, on_generate=self.show_generate)
        self.generate_window = GenerateWindow(self.theme, on_generate=self.generate_text)
        # Experiments (issue 17): live edits over the plots, and the Runs tab.
        self.live = LiveEditBar(self.run, self._curve_plots,
                                hidden=lambda: bool(self.history.curves))
        self.runs_view = RunsView(self.history, self.run, plots=self._curve_plots,
                                  live_series=lambda: list(self.run_panel.series.values()),
                                  theme_for=series_theme, theme=self.theme,
                                  show_plots=lambda: dpg.set_value(self.dock_tabs,
                                                                   self.metrics_tab))
        self.text_job: TextJob | None = None
        self.preview = DataPreview(state, self.run, self.run_panel)
        self.guide = GettingStarted(state, self.run)
        self.panel_tips = PanelTips()
        self.quick_add = QuickAdd(self._quick_pick, functions=lambda: self.state.graph.functions,
                                  on_call=self.place_call)
        self.context = ContextMenu()
        self.dialogs = Dialogs(self.theme)
        self.import_dialog = ImportModuleDialog(self.theme, self.dialogs, self._imported,
                                                blocked=self._import_blocked)
        self.menu = MenuBar(state, self)
        self.test_state_path = test_state_path
        self.test_hook = TestHook(self, test_state_path) if test_state_path else None
        self.seen_version = -1
        self._document = state.document
        self._data_for: object = None   # the training section the data was asked for
        self._edited_frame = -1
        self.frames = 0
        self.quit_requested = False
        self.torch_ready = False
        self._torch_thread: threading.Thread | None = None
        self._title = ""
        self._status_key: tuple | None = None
        self._run_status = "idle"
        self._last_click: tuple[int, tuple] | None = None
        self._last_double = -10
        self._errors_logged: set[tuple[str, str]] = set()
        self.internal_errors: list[str] = []   # "what: Type: message" per caught exception
        self.callback_log: list[str] = []
        self._size = (0, 0)
        self._exporting = False
        self._export_thread: threading.Thread | None = None
        self._export_done: ExportResult | None = None   # set by the export thread
        self.closing: dict[str, Any] | None = None   # how close() left the workers (test hook)
        self.window = self.status_text = self.status_right = 0
        self.right_tabs = self.dock_tabs = self.gradient_tab = self.problems_tab = 0
        self.step_seconds = 0.0
        self.slowest: dict[str, float] = {}   # per phase of step(): the longest it took

    # -- building ---------------------------------------------------------------------------------

    def build(self, width: int = WIDTH, height: int = HEIGHT, *, show: bool = True) -> Studio:
        # Software GL (Mesa's llvmpipe, e.g. under Xvfb or without a GPU driver) rasterises
        # on every core by default, and then the window takes the core the trainer needs.
        # One raster thread leaves it free; GPU drivers ignore the variable.
        os.environ.setdefault("LP_NUM_THREADS", "1")
        dpg.create_context()
        dpg.configure_app(manual_callback_management=True)
        dpg.create_viewport(title=self.state.title, width=width, height=height, x_pos=0, y_pos=0,
                            clear_color=(24, 25, 28, 255), disable_close=True)
        self.theme.build()
        self._build_window(width, height)
        self.quick_add.build()
        self.context.build()
        self.guide.build()
        self.dialogs.build()
        self.import_dialog.build()
        self.generate_window.build()
        self.wire_view.build()
        self.fault.build()
        with dpg.handler_registry():
            dpg.add_key_press_handler(callback=self._on_key)
            dpg.add_mouse_double_click_handler(button=dpg.mvMouseButton_Left,
                                               callback=self._on_double_click)
            dpg.add_mouse_click_handler(button=dpg.mvMouseButton_Left, callback=self._on_click)
            dpg.add_mouse_click_handler(button=dpg.mvMouseButton_Right,
                                        callback=self._on_right_click)
            dpg.add_mouse_release_handler(button=dpg.mvMouseButton_Left,
                                          callback=self._on_mouse_release)
        dpg.set_exit_callback(self._on_close_request)
        dpg.set_viewport_resize_callback(self._on_resize)
        dpg.setup_dearpygui()
        if show:
            dpg.show_viewport()
        dpg.set_primary_window(self.window, True)
        self._layout(width, height)
        if self.state.status == "ready":   # nothing to report yet: say where help is
            self.state.set_status("ready · new here? Help › Getting started builds a first "
                                  "model with you; right-click anything on the canvas")
        self.refresh(force=True)
        return self

    def _build_window(self, width: int, height: int) -> None:
        canvas_w, canvas_h, dock_w = self._sizes(width, height)
        with dpg.window(no_scrollbar=True, no_title_bar=True) as self.window:
            self.menu.build(self.window)
            with dpg.group(horizontal=True):
                with dpg.child_window(width=PALETTE_W, height=-STATUS_H, border=False) as self.left:
                    blocks = dpg.add_text("Blocks", color=TEXT_DIM)
                    self.palette.build(self.left)
                with dpg.group() as self.centre:
                    with dpg.group(horizontal=True) as toolbar:
                        fit = dpg.add_button(label="Fit", small=True, callback=self.fit_view)
                        lay = dpg.add_button(label="Layout", small=True, callback=self.auto_layout)
                        for b, tip in ((fit, "Fit the view to the blocks (F)"),
                                       (lay, "Auto-layout this graph (Ctrl+L)")):
                            with dpg.tooltip(b):
                                dpg.add_text(tip)
                        self.profile.build_toggle(toolbar)
                        dpg.add_spacer(width=8)
                    self.editor.build_toolbar(toolbar)
                    self.editor.build_canvas(self.centre, canvas_w, canvas_h)
                    self.gradients.build_legend(self.editor.legend_group)
                    with dpg.group(horizontal=True):
                        with dpg.child_window(width=dock_w, height=BOTTOM_H, border=False) as self.dock:
                            self.run_panel.build_controls(self.dock)
                            with dpg.tab_bar() as self.dock_tabs:
                                with dpg.tab(label="Training") as self.metrics_tab:
                                    pass
                                with dpg.tab(label="Gradient flow") as self.gradient_tab:
                                    pass
                                with dpg.tab(label="Runs") as self.runs_tab:
                                    pass
                        with dpg.child_window(width=-1, height=BOTTOM_H, border=False) as self.right:
                            with dpg.tab_bar() as self.right_tabs:
                                with dpg.tab(label="Inspector") as self.inspector_tab:
                                    self.inspector.build(self.inspector_tab)
                                with dpg.tab(label="Training") as self.settings_tab:
                                    self.settings.build(self.settings_tab)
                                with dpg.tab(label="Code") as self.code_tab:
                                    self.code.build(self.code_tab)
                                with dpg.tab(label="Problems") as self.problems_tab:
                                    self.diagnostics.build(self.problems_tab)
            with dpg.group(horizontal=True):
                self.status_text = dpg.add_text("ready")
                self.status_right = dpg.add_text("", color=TEXT_DIM)
        # Each panel says what it is for when the mouse rests on its tab or title.
        self.panel_tips.build({
            "blocks": blocks, "inspector": self.inspector_tab, "settings": self.settings_tab,
            "code": self.code_tab, "problems": self.problems_tab, "metrics": self.metrics_tab,
            "gradients": self.gradient_tab})
        self.live.build(self.metrics_tab)
        self.run_panel.build_plots(self.metrics_tab, dock_w - 8, PLOT_H - LIVE_ROW_H)
        self.runs_view.build(self.runs_tab, dock_w - 8, PLOT_H)
        self.preview.build()
        self.gradients.build_tab(self.gradient_tab, dock_w - 8, PLOT_H)
        self.profile.build_table(self.gradients.row, self.gradients.heat_holder,
                                 (dock_w - 32) // 3, PLOT_H - 10)

    def _curve_plots(self) -> list[tuple[int, int, int]]:
        """(plot, x axis, y axis) of the Loss and Accuracy plots, where runs are drawn."""
        p = self.run_panel
        return [(p._plot(k), p.x_axes[k], p.axes[k]) for k in ("loss", "acc")]

    def _sizes(self, width: int, height: int) -> tuple[int, int, int]:
        """(canvas width, canvas height, training dock width) for a viewport size."""
        canvas_w = max(400, width - PALETTE_W - 24)
        canvas_h = max(200, height - BOTTOM_H - STATUS_H - 76)
        return canvas_w, canvas_h, max(300, canvas_w - RIGHT_W - 8)

    def _layout(self, width: int, height: int) -> None:
        if (width, height) == self._size:
            return
        self._size = (width, height)
        canvas_w, canvas_h, dock_w = self._sizes(width, height)
        self.editor.resize(canvas_w, canvas_h)
        dpg.configure_item(self.dock, width=dock_w)
        self.run_panel.resize(dock_w - 8, PLOT_H - LIVE_ROW_H)
        self.runs_view.resize(dock_w - 8, PLOT_H)

    def _on_resize(self, *args: Any) -> None:
        w = dpg.get_viewport_client_width()
        h = dpg.get_viewport_client_height()
        if w and h:
            self._layout(w, h)

    # -- the frame ------------------------------------------------------------------------------------

    def step(self) -> None:
        """One frame of the studio's own work (everything but rendering); never raises."""
        started = time.perf_counter()
        jobs = dpg.get_callback_queue()
        if jobs:
            for job in jobs:
                self._run_job(job)
        self._guard("training events", self.run.poll)
        self._guard("training data", self._poll_data)
        self._guard("selection", self._poll_selection)
        self._guard("moves", self.editor.poll_moves)
        self._guard("fit", self.editor.poll_fit)
        self.refresh()
        now = time.monotonic()
        self._guard("gradient flow", self.gradients.step, now)
        self._guard("run panel", self.run_panel.refresh, now)
        self._guard("data preview", self.preview.refresh)
        self._guard("gradient charts", self._refresh_charts, now)
        self._guard("live edits", self.live.step)
        self._guard("runs", self.runs_view.step, now)
        self._guard("wires", self.wire_view.step, now, self._blocked)
        self._guard("profile", self.profile.step, now)
        self._guard("fault", self.fault.step,
                    lambda w, h: self._beside(self.wires.fault.node if self.wires.fault else None,
                                              w, h))
        self._guard("quick add", self.quick_add.step)
        self._guard("dialogs", self.dialogs.step)
        self._guard("import", self.import_dialog.step)
        self._guard("getting started", self.guide.refresh)
        self._guard("panel tips", self.panel_tips.step)
        self._guard("code", self._tick_code, now)
        # An autosave serialises the whole graph (~10 ms at 1,000 nodes): not in the frames
        # that answer an edit (its own, and the one where the code panel catches up).
        if self._edited_frame != self.frames and self.code.refreshed_at != now:
            self._guard("autosave", self.state.maybe_autosave)
        self._guard("status bar", self._refresh_status)
        self._guard("export", _finish_export, self)
        self._guard("generate", self._finish_generation)
        if self.test_hook is not None:
            self._guard("test hook", self.test_hook.write)
        self.frames += 1
        self.step_seconds = time.perf_counter() - started

    def frame(self) -> None:
        self.step()
        dpg.render_dearpygui_frame()
        # Rendering holds the GIL; hand it to the trainer now, so its turn falls here and
        # not in the middle of the next step().
        time.sleep(0)
        if self.frames == 1:
            self._start_torch_import()

    def refresh(self, force: bool = False) -> None:
        """Redraw views after the state changed (cheap when `state.version` did not move)."""
        if not force and self.state.version == self.seen_version:
            return
        self.seen_version = self.state.version
        self._edited_frame = self.frames
        if self.state.document != self._document:   # another graph: the run was the old one's
            self._document = self.state.document
            self._guard("training run", self.run.forget)
            self.wires.unpin()   # its wires were the old graph's
            self.gradients.range = None
        for name, view in (("editor", self.editor.refresh), ("inspector", self.inspector.refresh),
                           ("problems", self.diagnostics.refresh),
                           ("training settings", self.settings.refresh),
                           ("menu", self.menu.refresh), ("palette", self.palette.refresh)):
            self._guard(name, view)
        self._guard("run controls", self.run_panel.offer_generate, writes_text(self.state.graph))
        title = self.state.title
        if title != self._title:
            self._title = title
            dpg.set_viewport_title(title)

    def _poll_data(self) -> None:
        """Load the dataset the training section names whenever it changes (on a worker),
        and hand it to the state (which checks the graph against it) and the preview."""
        state = self.state
        if state.graph.training is not self._data_for:
            self._data_for = state.graph.training
            key = state.data_key()
            if key is not None:
                config = TrainingConfig.from_mapping(state.graph.training)
                self.data.want(key, config.dataset, config.seed,
                               state.file.parent if state.file else None)
        if self.data.poll():
            state.set_training_data(self.data.key, self.data.dataset, self.data.error)

    def _tick_code(self, now: float) -> None:
        visible = dpg.get_value(self.right_tabs) == self.code_tab
        self.code.tick(visible, self._edited_frame == self.frames, now)

    def _poll_selection(self) -> None:
        if self.editor.poll_selection():
            self.gradients._charts_for = None

    def _refresh_charts(self, now: float) -> None:
        visible = dpg.get_value(self.dock_tabs) == self.gradient_tab
        self.gradients.refresh_charts(visible, now)

    def _run_job(self, job: tuple) -> None:
        callback = job[0]
        if callback is None:
            return
        args = list(job[1:4]) + [None] * (3 - len(job[1:4]))
        if self.test_state_path:   # what ran, for test diagnostics
            self.callback_log.append(f"{getattr(callback, '__name__', '?')}{tuple(args[:2])!r}"[:120])
            del self.callback_log[:-30]
        try:
            n = _arity(callback)
            callback(*args[:n])
        except Exception as e:
            self._report("a callback", e)

    def _guard(self, what: str, fn: Callable, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args)
        except Exception as e:
            self._report(what, e)
            return None
        finally:
            spent = time.perf_counter() - started
            if spent > self.slowest.get(what, 0.0):
                self.slowest[what] = spent

    def _report(self, what: str, e: Exception) -> None:
        self.internal_errors.append(f"{what}: {type(e).__name__}: {e}")
        del self.internal_errors[:-100]
        key = (what, type(e).__name__)
        if key not in self._errors_logged:
            self._errors_logged.add(key)
            log.error("%s failed:\n%s", what, traceback.format_exc())
            print(f"dprog: {what} failed:\n{traceback.format_exc()}", file=sys.stderr)
        message = f"internal error in {what}: {type(e).__name__}: {e}"
        if self.state.status != message:   # a view failing every frame must not churn versions
            with contextlib.suppress(Exception):
                self.state.set_status(message, "error")

    def _start_torch_import(self) -> None:
        def load() -> None:
            try:
                import torch  # noqa: F401

                import engine.runtime.trainer  # noqa: F401
                self.torch_ready = True
                gc.freeze()   # torch's modules are here for good (see build_studio)
            except Exception as e:  # the studio still edits without torch
                log.warning("torch failed to load: %s", e)

        self._torch_thread = threading.Thread(target=load, name="dprog-torch-import", daemon=True)
        self._torch_thread.start()

    # -- status bar ---------------------------------------------------------------------------------

    def _refresh_status(self) -> None:
        state, run = self.state, self.run
        if run.status != self._run_status:
            self._run_status = run.status
            if run.status not in ("idle", "loading") and run.message:
                level = "error" if run.status == FAILED else "info"
                state.set_status(run.message, level)
                if run.status == FAILED and run.failed_node:
                    self._show_run_failure()
        key = (state.version, run.status, self.torch_ready, run.runs)
        if key == self._status_key:
            return
        self._status_key = key
        color = {"error": ERROR, "warning": WARNING}.get(state.status_level, INFO)
        dpg.configure_item(self.status_text, default_value=state.status, color=color)
        here = state.current_graph()
        parts = [_plural(len(here.nodes), "block"), _plural(len(here.edges), "wire"),
                 _plural(state.total_params, "parameter")]
        if state.region:
            parts.append("editing " + " › ".join(t for t, _ in state.breadcrumbs[1:]))
        if run.status != "idle":
            parts.append(f"run: {run.status}")
        if not self.torch_ready:
            parts.append("loading torch…")
        dpg.set_value(self.status_right, "    ·    " + " · ".join(parts))

    def _show_run_failure(self) -> None:
        """Put the run's error on the block that raised it, and go there."""
        run, state = self.run, self.state
        if run.graph is not None and state.report_run_failure(
                run.graph, run.failed_node, run.failed_text, code=f"run_{run.failed_kind}"):
            self.refresh()
        # Edited while it trained: the path may be gone, and then going there would only
        # replace the run's error in the status bar with "that body no longer exists".
        if state.has_node_path(run.failed_node):
            self._select_path(run.failed_node)

    def _on_counts(self, errors: int, warnings: int) -> None:
        label = "Problems" + (f" ({errors + warnings})" if errors + warnings else "")
        dpg.configure_item(self.problems_tab, label=label)

    # -- input ---------------------------------------------------------------------------------------

    def _text_inputs(self) -> list[int]:
        return [*self.palette.text_inputs(), *self.inspector.text_inputs(),
                *self.settings.text_inputs(), *self.quick_add.text_inputs(),
                *self.dialogs.text_inputs(), *self.generate_window.text_inputs(),
                *self.live.text_inputs(), *self.runs_view.text_inputs()]

    def typing(self) -> bool:
        """Is a text-like widget taking the keyboard? (Global key handlers fire while the
        user types, so shortcuts must stand aside.)"""
        focused = dpg.get_focused_item()
        if focused and _active(focused):
            return True
        return any(w and _active(w) for w in self._text_inputs())

    def _on_key(self, sender: int, key: int, user_data: object) -> None:
        ctrl = dpg.is_key_down(dpg.mvKey_ModCtrl)
        shift = dpg.is_key_down(dpg.mvKey_ModShift)
        if key in (dpg.mvKey_Return, dpg.mvKey_NumPadEnter) and self.quick_add.visible:
            self.quick_add.accept()
            return
        if key == dpg.mvKey_Escape:
            if self.context.visible:
                self.context.close()
            elif self.quick_add.visible:
                self.quick_add.close()
            elif self.menu.open:
                self.menu.close()
            elif not self.dialogs.close_top() and not self.typing():
                self.go_up()
            return
        if self.typing() or self.dialogs.open or self.context.visible:
            return
        if ctrl:
            action = {
                dpg.mvKey_Z: self.redo if shift else self.undo, dpg.mvKey_Y: self.redo,
                dpg.mvKey_C: self.copy, dpg.mvKey_X: self.cut, dpg.mvKey_V: self.paste,
                dpg.mvKey_D: self.duplicate, dpg.mvKey_A: self.select_all,
                dpg.mvKey_S: self.save_as if shift else self.save, dpg.mvKey_O: self.open_dialog,
                dpg.mvKey_N: self.new, dpg.mvKey_L: self.auto_layout, dpg.mvKey_Q: self.quit,
                dpg.mvKey_G: self.ungroup if shift else self.group_into_function,
                dpg.mvKey_Return: self.train, dpg.mvKey_E: lambda: self.export("onnx" if shift else "all"),
            }.get(key)
            if action is not None:
                action()
            return
        if key in (dpg.mvKey_Delete, dpg.mvKey_Back):
            self.delete()
        elif key == dpg.mvKey_Spacebar and self.editor.hovered():
            mouse = dpg.get_mouse_pos(local=False)
            self._quick_add_at((mouse[0], mouse[1]), self.editor.screen_to_model((mouse[0], mouse[1])))
        elif key in (dpg.mvKey_F, dpg.mvKey_Home):
            self.fit_view()
        elif key == dpg.mvKey_F5:
            self.train()
        elif key == dpg.mvKey_I:
            self.wire_view.pin_under_mouse()

    def _on_click(self, sender: int, button: int, user_data: object) -> None:
        """A second press within two frames of the first, at the same spot, is a double-click
        too. ImGui times double-clicks in frame time, so on a slow software-GL display
        (a few fps) its own detection never fires; this one does."""
        pos = tuple(dpg.get_mouse_pos(local=False))
        last, self._last_click = self._last_click, (self.frames, pos)
        if last is not None and self.frames - last[0] <= 2 \
                and abs(pos[0] - last[1][0]) + abs(pos[1] - last[1][1]) <= 6:
            self._on_double_click(sender, button, user_data)

    def _on_double_click(self, sender: int, button: int, user_data: object) -> None:
        if self.frames - self._last_double <= 3:
            return   # ImGui's and our own detection both saw this one
        self._last_double = self.frames
        if self.dialogs.open or self.quick_add.visible or self.context.visible \
                or not self.editor.hovered():
            return
        node_id = self.editor.hovered_node()
        if node_id is not None:
            node = self.state.current_graph().get(node_id)
            spec = lookup(node.type) if node else None
            if node is not None and node.type == "call":
                self.open_function(node_id)
            elif spec is not None and spec.regions:
                self.open_body(node_id, spec.regions[0])
            return
        if self.editor.hovered_edge() is not None:
            return
        mouse = dpg.get_mouse_pos(local=False)
        self._quick_add_at((mouse[0], mouse[1]), self.editor.screen_to_model((mouse[0], mouse[1])))

    def _on_mouse_release(self, sender: int, button: int, user_data: object) -> None:
        self.editor.mouse_released()

    # -- right-click menus --------------------------------------------------------------------

    def _on_right_click(self, sender: int, button: int, user_data: object) -> None:
        """A menu for what is under the mouse on the canvas: a block, a wire, or the canvas."""
        if self.dialogs.open or self.quick_add.visible or not self.editor.hovered():
            return
        mouse = dpg.get_mouse_pos(local=False)
        screen = (mouse[0], mouse[1])
        at = self.editor.screen_to_model(screen)
        node_id = self.editor.hovered_node()
        edge = self.editor.hovered_edge() if node_id is None else None
        if node_id is not None:
            self._block_menu(screen, node_id)
        elif edge is not None:
            self._wire_menu(screen, at, edge)
        else:
            self._canvas_menu(screen, at)

    def _canvas_menu(self, screen: tuple[float, float], at: tuple[float, float]) -> None:
        entries = [Entry("Add block…", lambda: self._quick_add_at(screen, at), hint="Space"),
                   Entry("Paste here", lambda: self.paste(at), hint="Ctrl+V"),
                   Entry("Select all", self.select_all, hint="Ctrl+A"),
                   None,
                   Entry("Layout", self.auto_layout, bool(self.state.current_graph().nodes),
                         hint="Ctrl+L"),
                   Entry("Fit view", self.fit_view, hint="F")]
        if self.state.region:
            entries.append(Entry("Up one level", self.go_up, hint="Esc"))
        self.context.open(screen, "canvas", "Canvas", entries)

    def _block_menu(self, screen: tuple[float, float], node_id: str) -> None:
        node = self.state.current_graph().get(node_id)
        if node is None:
            return
        if node_id not in self.state.selection:   # the menu acts on the block clicked
            self.state.select([node_id])
            self.editor.forget_editor_selection()
        spec = lookup(node.type)
        entries: list[Entry | None] = [
            Entry(f"Open {region} »", lambda r=region: self.open_body(node_id, r))
            for region in (spec.regions if spec else ())]
        if node.type == "call":
            entries += [Entry("Open function »", lambda: self.open_function(node_id),
                              hint="double-click"),
                        Entry("Ungroup", self.ungroup, hint="Ctrl+Shift+G"),
                        Entry("Make a copy", self.make_copy)]
        if entries:
            entries.append(None)
        entries += [Entry("Group into function", self.group_into_function, hint="Ctrl+G"),
                    Entry("Duplicate", self.duplicate, hint="Ctrl+D"),
                    Entry("Copy", self.copy, hint="Ctrl+C"),
                    Entry("Delete", self.delete, hint="Del"),
                    None,
                    Entry(f"Docs: {spec.title if spec else node.type}",
                          lambda: self.show_block_docs(node.type), spec is not None)]
        self.context.open(screen, "block", f"{node.name}  ·  {spec.title if spec else '?'}",
                          entries)

    def _wire_menu(self, screen: tuple[float, float], at: tuple[float, float], edge) -> None:
        region = self.state.region

        def insert() -> None:
            self.quick_add.open(screen, at, on_pick=lambda block, pos: self.state.do(
                InsertOnWire(region, edge, block, pos)))

        entries = [Entry("Delete wire", lambda: self.state.do(Disconnect(region, edge)),
                         hint="Del"),
                   Entry("Insert block…", insert),
                   None,
                   Entry("Look inside (pin)",
                         lambda: self.wire_view.pin(region_prefix(region) + edge.key), hint="I")]
        self.context.open(screen, "wire", f"{edge.src[0]}.{edge.src[1]} → "
                          f"{edge.dst[0]}.{edge.dst[1]}", entries)

    def show_block_docs(self, block: str) -> None:
        """A block's documentation: what it does, its ports and its params."""
        spec = lookup(block)
        if spec is None:
            return
        lines = [f"{spec.category}: {spec.doc}", ""]
        ports = spec.port_lists(Node("docs", spec.type))
        lines.append("inputs: " + (", ".join(p.name for p in ports[0]) or "none")
                     + "    outputs: " + (", ".join(p.name for p in ports[1]) or "none"))
        if spec.params:
            lines.append("")
            for p in spec.params:
                lines.append(f"{p.name} ({p.kind}, default {p.kind_row.text(p.default)})"
                             + (f": {p.doc}" if p.doc else ""))
        self.dialogs.message("\n".join(lines), spec.title)

    # -- editing actions (menus and shortcuts) ----------------------------------------------------------

    def _palette_add(self, block: str) -> None:
        self.editor.add_block(block, self.editor.canvas_center_model())

    def _quick_add_at(self, screen: tuple[float, float], at: tuple[float, float]) -> None:
        self.quick_add.open(screen, at)

    def _quick_pick(self, block: str, at: tuple[float, float]) -> None:
        self.editor.add_block(block, at)

    def undo(self) -> None:
        self.state.undo()
        self.editor.forget_editor_selection()

    def redo(self) -> None:
        self.state.redo()
        self.editor.forget_editor_selection()

    def copy(self) -> None:
        if self.state.copy():
            with contextlib.suppress(Exception):
                dpg.set_clipboard_text(self.state.clipboard_text)

    def cut(self) -> None:
        if self.state.cut():
            with contextlib.suppress(Exception):
                dpg.set_clipboard_text(self.state.clipboard_text)
            self.editor.forget_editor_selection()

    def paste(self, at: tuple[float, float] | None = None) -> None:
        if at is None and self.editor.hovered():
            mouse = dpg.get_mouse_pos(local=False)
            at = self.editor.screen_to_model((mouse[0], mouse[1]))
        if self.state.clipboard is not None:
            self.state.paste(at)
        else:
            text = ""
            with contextlib.suppress(Exception):
                text = dpg.get_clipboard_text() or ""
            if text.strip():
                self.state.paste_text(text, at)
            else:
                self.state.paste(at)
        self.editor.forget_editor_selection()

    def duplicate(self) -> None:
        self.state.duplicate()
        self.editor.forget_editor_selection()

    def delete(self) -> None:
        self.editor.delete_selected()

    def select_all(self) -> None:
        self.state.select(n.id for n in self.state.current_graph().nodes)
        self.editor.forget_editor_selection()

    def fit_view(self) -> None:
        self.editor.fit_view()

    def auto_layout(self) -> None:
        if self.state.do(AutoLayout(self.state.region, self.editor.node_sizes())):
            self.refresh()
            self.editor.fit_view()

    def go_up(self) -> None:
        if self.state.region:
            self.state.leave_region()
            self.editor.forget_editor_selection()

    def open_body(self, node_id: str, region: str) -> None:
        if self.state.enter_region(node_id, region):
            self.editor.forget_editor_selection()

    # -- functions: group, ungroup, copy, open (menus, shortcuts, the inspector) -------------------

    def _selected_call(self) -> str | None:
        here = self.state.current_graph()
        calls = [i for i in self.state.selection if (n := here.get(i)) is not None
                 and n.type == "call"]
        if len(calls) != 1:
            self.state.set_status("select one Call block first", "info")
            return None
        return calls[0]

    def group_into_function(self) -> None:
        """Ctrl+G: the selected blocks become a new function (named automatically; rename
        it in the Inspector) and one Call takes their place, selected."""
        if not self.state.selection:
            self.state.set_status("select the blocks to group first", "info")
            return
        if self.state.do(GroupIntoFunction(self.state.region, frozenset(self.state.selection))):
            self.editor.forget_editor_selection()

    def ungroup(self) -> None:
        call = self._selected_call()
        if call is not None and self.state.do(Ungroup(self.state.region, call)):
            self.editor.forget_editor_selection()

    def make_copy(self, call: str | None = None) -> None:
        call = call or self._selected_call()
        if call is not None:
            self.state.do(MakeCopy(self.state.region, call))

    def open_function(self, call: str | None = None) -> None:
        call = call or self._selected_call()
        if call is not None and self.state.open_function(call):
            self.editor.forget_editor_selection()

    def _select_path(self, path: str) -> None:
        from .views.diagnostics import split_path

        self.go_to_node(*split_path(path))   # go_to_node enters a call's function body

    def jump_to_call(self, region: tuple[str, ...], node_id: str) -> None:
        """The Inspector's call list: select that call and centre it, entering its region."""
        self.go_to_node(region, node_id)
        self.editor.show_node(node_id)

    def go_to_node(self, region: tuple[str, ...], node_id: str) -> None:
        """A diagnostic was clicked: show its node, entering its body if needed."""
        from .state import region_of_path

        # A diagnostic inside a call (`down1/double_conv/conv_a`) is in the function's body.
        region, node_id = region_of_path(self.state.graph, "/".join((*region, node_id))) \
            or (tuple(region), node_id)
        if region != self.state.region and not self.state.set_region(region):
            return
        self.state.select([node_id])
        self.editor.forget_editor_selection()
        self.refresh()
        if self.editor.graph is not None and node_id in self.editor.nodes:
            dpg.set_value(self.right_tabs, self.inspector_tab)

    # -- files ------------------------------------------------------------------------------------------

    def _unsaved_then(self, action: Callable[[], None]) -> None:
        """Run `action` now, or after asking Save / Discard / Cancel when there are changes."""
        if not self.state.dirty:
            action()
            return

        def save_then() -> None:
            if self.state.file is not None:
                if self.state.save():
                    action()
            else:
                self.save_as(then=action)

        name = self.state.file.name if self.state.file else "The graph"
        self.dialogs.confirm_unsaved(name, on_save=save_then, on_discard=action)

    def new(self) -> None:
        self._unsaved_then(self.state.new)

    def open_dialog(self) -> None:
        def chosen(path: str) -> bool:
            self._unsaved_then(lambda: self.state.open(path))
            return True

        default = str(self.state.file.parent) + os.sep if self.state.file else ""
        self.dialogs.ask_path("Open a graph file (type a path, or Browse…)", chosen, default)

    def open_path(self, path: str) -> None:
        self._unsaved_then(lambda: self.state.open(path))

    def open_sample(self, name: str) -> None:
        self._unsaved_then(lambda: self.state.open_sample(name))

    def save(self) -> None:
        if self.state.file is None:
            self.save_as()
        else:
            self.state.save()

    def save_as(self, then: Callable[[], None] | None = None) -> None:
        def chosen(path: str) -> bool:
            target = Path(path)
            if target.suffix == "":
                target = target.with_suffix(".json")
            if self.state.save(target):
                if then is not None:
                    then()
                return True
            self.dialogs.show_path_error(self.state.status)
            return False

        default = str(self.state.file) if self.state.file else str(Path.cwd() / f"{self.state.graph.name}.json")
        self.dialogs.ask_path("Save the graph as (a .json file)", chosen, default, save=True)

    def quit(self) -> None:
        self._unsaved_then(self._quit_now)

    def _quit_now(self) -> None:
        self.quit_requested = True

    def _on_close_request(self, *args: Any) -> None:
        self.quit()

    # -- training -------------------------------------------------------------------------------------

    def train(self) -> None:
        run = self.run
        if run.status == PAUSED:
            self.wires.join(5.0)   # a wire being read while paused: the step waits for it
            run.resume()
            return
        if run.active:
            return
        errors = self.state.analysis.errors or [d for d in self.state.data_problems
                                                 if d.severity == "error"]
        if errors:
            self.state.set_status(f"fix the graph first: {errors[0]}", "warning")
            dpg.set_value(self.right_tabs, self.problems_tab)
            return
        self.state.clear_run_problems()   # the last run's error is old news now
        # Kept in the run store beside the file (app.runs), or said to be unkept.
        self.history.train(run)
        self.gradients.range = None
        self.state.set_status("training started" + ("" if self.torch_ready else
                                                    " (loading torch first…)"))

    def pause(self) -> None:
        if self.run.status == PAUSED:
            self.wires.join(5.0)   # a wire being read while paused: the step waits for it
            self.run.resume()
        else:
            self.run.pause()

    def stop(self) -> None:
        self.run.stop()

    def export(self, what: str) -> None:
        from engine.runtime import export

        graph = self.state.graph
        if not self.state.analysis.ok:
            self.state.set_status("fix the graph's errors before exporting", "warning")
            return
        trainer = self.run.trainer
        module = getattr(trainer, "module", None) if self.run.status in (FINISHED, STOPPED,
                                                                          PAUSED, FAILED) else None
        if what in ("onnx", "pt2"):
            self._deploy(what, module)
            return
        if what == "weights" and module is None:
            self.state.set_status("train first (or stop/pause the run): weights come from a "
                                  "trained model", "warning")
            return
        default = str((self.state.file.parent if self.state.file else Path.cwd()) / "export")

        def chosen(folder: str) -> bool:
            if self._exporting:
                return True
            self._exporting = True
            self.state.set_status(f"exporting to {folder}…")

            def work() -> None:
                try:
                    Path(folder).mkdir(parents=True, exist_ok=True)
                    if what == "model":
                        written = [export.write_model(graph, folder)]
                    elif what == "weights":
                        written = [export.write_weights(module, folder)]
                    elif what == "script":
                        written = [export.write_model(graph, folder),
                                   *export.write_train_script(graph, folder)]
                    else:
                        written = export.export_all(graph, folder, module)
                    self._export_done = ExportResult(
                        f"exported {', '.join(p.name for p in written)} to {folder}")
                except Exception as e:
                    self._export_done = ExportResult(f"export failed: {type(e).__name__}: {e}",
                                                     failed=True)
                finally:
                    self._exporting = False

            self._export_thread = threading.Thread(target=work, name="dprog-export", daemon=True)
            self._export_thread.start()
            return True

        self.dialogs.ask_path("Export to folder", chosen, default)

    def open_last_good(self, fault: Any) -> None:
        """The fault panel's button: the next Train branches a new run from the faulty run's
        last good step (its checkpoint), with the run's settings put in the Training tab to be
        made gentler first (app.runs.RunHistory.branch_from)."""
        self.history.refresh(force=True)   # the faulty run's record was written as it ended
        if self.history.branch_from(Path(fault.checkpoint).name):
            self.fault.said(self.history.pending.describe() + ": lower the learning rate "
                            "in Training first")
            dpg.set_value(self.right_tabs, self.settings_tab)

    def _beside(self, node: str | None, width: int, height: int) -> tuple[int, int]:
        """Where a floating panel goes on the canvas: in the half the block `node` (a node
        path) is not in, so the panel never hides what it is about."""
        x0, y0 = self.editor.canvas_origin()
        w = (dpg.get_item_rect_size(self.editor.canvas) or (800, 600))[0]
        view = self.editor.nodes.get(node.rsplit("/", 1)[-1]) if node else None
        lo, hi = (dpg.get_item_rect_min(view.item), dpg.get_item_rect_max(view.item)) \
            if view is not None else ((x0, y0), (x0, y0))
        left = (lo[0] + hi[0]) / 2 > x0 + w / 2
        return int(x0 + 12 if left else x0 + w - width - 12), int(y0 + 12)

    def _blocked(self) -> bool:
        """A menu, a popup or a dialog is over the canvas."""
        return bool(self.dialogs.open or self.quick_add.visible or self.context.visible
                    or self.menu.open)

    def trained_module(self) -> Any:
        """The module of the last run, once it ended or paused (what export and generation
        use); None while it trains or before any run."""
        if self.run.status not in (FINISHED, STOPPED, PAUSED, FAILED):
            return None
        return getattr(self.run.trainer, "module", None)

    def show_generate(self) -> None:
        """Train › Generate text…: the window that continues a prompt with the trained model."""
        if not writes_text(self.state.graph):
            self.state.set_status("generating text needs a character model trained on the text "
                                  "dataset, like sample_graphs/char_gpt.json", "warning")
            return
        self.generate_window.show()

    def generate_text(self, prompt: str, length: int, temperature: float) -> None:
        module = self.trained_module()
        if module is None:
            self.generate_window.show_error("train the graph first (or stop or pause the run): "
                                            "the text comes from the trained model")
            return
        self.generate_window.set_busy("writing…")
        self.text_job = TextJob(self.state.graph, module, prompt, length, temperature)

    def _finish_generation(self) -> None:
        job = self.text_job
        if job is None or not job.done:
            return
        self.text_job = None
        if job.error:
            self.generate_window.show_error(job.error)
        else:
            self.generate_window.show_text(job.prompt, job.text)

    def _deploy(self, fmt: str, module: Any) -> None:
        """Export ONNX or a torch.export program to a file, checked against the compiled
        module (engine.runtime.deploy), on a worker thread: the trained weights when there are
        some, else fresh ones from the graph's seed."""
        graph = self.state.graph
        weights = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()} \
            if module is not None else None
        seed = graph.training.get("seed", 0) if graph.training else 0
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
        base = self.state.file.with_suffix(f".{fmt}") if self.state.file else \
            Path.cwd() / f"model.{fmt}"

        def chosen(path: str) -> bool:
            if self._exporting:
                return True
            self._exporting = True
            self.state.set_status(f"exporting and checking {path}…")

            def work() -> None:
                from engine.runtime.deploy import DeployError, deploy

                try:
                    check = deploy(graph, path, fmt, weights, seed=seed)
                    trained = "trained" if weights is not None else "untrained (seeded)"
                    self._export_done = ExportResult(f"{check.short()}; {trained} weights")
                except DeployError as e:
                    self._export_done = ExportResult(f"not exported: {e}", failed=True)
                except Exception as e:
                    self._export_done = ExportResult(f"export failed: {type(e).__name__}: {e}",
                                                     failed=True)
                finally:
                    self._exporting = False

            self._export_thread = threading.Thread(target=work, name="dprog-export", daemon=True)
            self._export_thread.start()
            return True

        what = "ONNX model" if fmt == "onnx" else "torch.export program"
        self.dialogs.ask_path(f"Export {what} to file", chosen, str(base), save=True)

    def show_getting_started(self) -> None:
        self.guide.show()

    def show_shortcuts(self) -> None:
        self.dialogs.message("\n".join(f"{k:<34} {v}" for k, v in SHORTCUTS), "Keyboard shortcuts")

    # -- teardown -------------------------------------------------------------------------------------------

    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Stop a run and join its thread (it must not be inside torch when the interpreter
        exits), let an export in flight finish its files, then tear the window down.
        Paused or not, the trainer stops after the step in progress; stopped while torch
        loads, it ends once the import is done (a few seconds at most). Meanwhile the window
        keeps drawing, saying what it waits for, so it never looks hung. Returns False when
        a worker was still busy after `timeout` seconds: it is a daemon thread, so the
        process exits anyway, and the warning says what was cut short."""
        if self.run.status == LOADING:
            # Stopped while torch loads, the run ends once the import is done: seconds when
            # idle, more on a loaded machine. Exiting mid-import is the thing to avoid.
            timeout = max(timeout, IMPORT_TIMEOUT)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Exception):
            self.run.stop()
        self._draw_while(lambda: self.run.thread_alive, deadline,
                         "closing: waiting for the training run to stop…")
        joined = self.run.join(max(0.0, deadline - time.monotonic()))
        self.wires.join(max(0.0, deadline - time.monotonic()))
        if self.text_job is not None:
            self._draw_while(lambda: not self.text_job.done, deadline,
                             "closing: waiting for the text generation to finish…")
        exported = True
        if self._export_thread is not None:
            self._draw_while(self._export_thread.is_alive, deadline,
                             "closing: waiting for the export to finish…")
            self._export_thread.join(max(0.0, deadline - time.monotonic()))
            exported = not self._export_thread.is_alive()
        dpg.destroy_context()
        if not joined:
            log.warning("the training thread did not stop within %.0f s", timeout)
        if not exported:
            log.warning("an export was still writing when the studio closed")
        with contextlib.suppress(Exception):
            self.run.poll()   # take in its last event (Stopped), for the record below
        self.closing = {
            "run": self.run.status, "trainer_joined": joined, "export_joined": exported,
            "threads": sorted(t.name for t in threading.enumerate()
                              if t is not threading.main_thread() and not t.daemon),
        }
        if self.test_hook is not None:
            self._guard("test hook", self.test_hook.write_closing)
        return joined and exported

    def _draw_while(self, busy: Callable[[], bool], deadline: float, message: str) -> None:
        """Render (without running callbacks: the user's clicks no longer count) while a
        worker winds down, with `message` in the status bar."""
        said = False
        while busy() and time.monotonic() < deadline:
            try:
                if not dpg.is_dearpygui_running():
                    return
                if not said:
                    dpg.configure_item(self.status_text, default_value=message, color=INFO)
                    said = True
                dpg.render_dearpygui_frame()
            except Exception:
                return
            time.sleep(0.02)

    # -- a user's block library: a Call placed from the palette or quick-add, and
    # File › Export functions… / Import functions… (library files, engine.core.functionlib)

    def place_call(self, name: str, at: tuple[float, float]) -> bool:
        """A Call of the graph's function `name`, with its own weights, at `at` (model
        coordinates) in the graph or body being edited."""
        from .commands import AddCall

        return self.state.do(AddCall(self.state.region, name, at))

    def export_functions(self) -> None:
        """File › Export functions…: which ones (a checklist, all ticked, when there are
        several), then where; the file also holds every function they call."""
        functions = self.state.graph.functions
        if not functions:
            self.state.set_status("this graph has no functions to export: select blocks and "
                                  "group them into a function first", "warning")
            return
        names = sorted(functions)
        if len(names) == 1:
            self._export_functions_to(names)
            return
        self.dialogs.pick("Export functions", "Which functions go into the library file? "
                          "(The functions they call go with them.)",
                          [(n, f"{functions[n].title or n}  ({n})") for n in names],
                          self._export_functions_to)

    def _export_functions_to(self, names: list[str]) -> None:
        from engine.core.functionlib import LIB_SUFFIX, called, export_library

        graph = self.state.graph
        stem = names[0] if len(names) == 1 else (graph.name or "functions")
        folder = self.state.file.parent if self.state.file else Path.cwd()

        def chosen(path: str) -> bool:
            try:
                written = export_library(graph, names, path)
            except (OSError, ValueError, KeyError) as e:
                self.dialogs.show_path_error(f"can't export: {shown(e)}")
                return False
            n = len(called(graph, names))
            self.state.set_status(f"exported {_plural(n, 'function')} to {written}")
            return True

        self.dialogs.ask_path(f"Export {', '.join(names)} to a library file ({LIB_SUFFIX})",
                              chosen, str(folder / f"{stem}{LIB_SUFFIX}"), save=True)

    def import_torch_module(self) -> None:
        """File › Import PyTorch module…: the form (app/views/import_dialog.py); the graph it
        writes opens once imported."""
        self.import_dialog.show(self.state.file.parent if self.state.file else Path.cwd())

    def _import_blocked(self) -> str | None:
        if self.run.status in ACTIVE:
            return ("Stop the training run first: building the model draws from torch's "
                    "random numbers, which the run's same-seed-same-run promise relies on.")
        return None

    def _imported(self, path: Path, report: str) -> None:
        def open_it() -> None:
            if self.state.open(str(path)):
                self.state.set_status(report)

        self._unsaved_then(open_it)

    def import_functions(self) -> None:
        """File › Import functions…: a library file's functions join this graph in one undo
        step. A bad file changes nothing and says what is wrong and where; a name clash asks
        whether to import the newcomers renamed."""
        from engine.core.fileformat import GraphFileError
        from engine.core.functionlib import load_library

        from .commands import ImportFunctions

        def chosen(path: str) -> bool:
            try:
                functions = load_library(path)
            except GraphFileError as e:
                self._refuse_import(str(e))
                return True
            except Exception as e:   # a library file must never take the studio down
                log.error("importing %s failed:\n%s", path, traceback.format_exc())
                self._refuse_import(f"{path}: {type(e).__name__}: {shown(e)}")
                return True
            source = Path(path).name
            command = ImportFunctions(functions, source=source)
            clashes = command.clashes(self.state.graph)
            if not functions:
                self._refuse_import(f"{path}: the library holds no functions")
            elif clashes:
                listed = ", ".join(map(repr, clashes))
                rename = ImportFunctions(functions, on_clash="rename", source=source)
                self.dialogs.ask(
                    "Import functions: name clash",
                    f"This graph already defines {listed}, and {source} has a function of the "
                    f"same name. Import the library's renamed (its calls follow), or cancel "
                    "and rename or delete yours first?",
                    [("rename", "Import renamed", lambda: self._import(rename)),
                     ("cancel", "Cancel", lambda: self.state.set_status(
                         f"not imported: {source} clashes with {listed}", "warning"))])
            else:
                self._import(command)
            return True

        folder = self.state.file.parent if self.state.file else Path.cwd()
        self.dialogs.ask_path("Import functions from a library file (.dprog-lib.json)", chosen,
                              str(folder) + os.sep)

    def _import(self, command: Any) -> None:
        """Do an `ImportFunctions` command and say what it added."""
        before = set(self.state.graph.functions)
        if self.state.do(command):
            added = sorted(set(self.state.graph.functions) - before)
            self.state.set_status(f"imported {', '.join(added)} from {command.source}: "
                                  "find them in the palette (Ctrl+Z undoes it)")

    def _refuse_import(self, text: str) -> None:
        self.state.set_status(f"not imported: {text}", "error")
        self.dialogs.message(f"Nothing was imported.\n\n{text}", "Can't import functions")


def writes_text(graph: Graph) -> bool:
    """Whether the graph trains on the text dataset, so that it may write text (the engine
    checks the rest when asked to); pure, so it costs a frame nothing."""
    dataset = graph.training.get("dataset") if hasattr(graph.training, "get") else None
    return hasattr(dataset, "get") and dataset.get("name") == "text"


def _active(item: int) -> bool:
    """Is the item taking input? False for items that have no such state (a menu item, the
    focused item after Esc on a menu): `dpg.is_item_active` raises KeyError on those."""
    if not dpg.does_item_exist(item):
        return False
    return bool(dpg.get_item_state(item).get("active"))


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


_ARITY: dict[Any, int] = {}


def _arity(fn: Callable) -> int:
    """How many of (sender, app_data, user_data) a callback takes (cached per function)."""
    key = getattr(fn, "__func__", fn)
    n = _ARITY.get(key)
    if n is None:
        import inspect

        try:
            params = inspect.signature(fn).parameters.values()
            if any(p.kind == p.VAR_POSITIONAL for p in params):
                n = 3
            else:
                n = min(3, sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY,
                                                               p.POSITIONAL_OR_KEYWORD)))
        except (TypeError, ValueError):
            n = 3
        _ARITY[key] = n
    return n


# -- entry points ------------------------------------------------------------------------------------


def make_state(graph_path: str | None, sample: str | None = None) -> AppState:
    state = AppState()
    if graph_path:
        state.open(graph_path)
    elif sample:
        state.open_sample(sample)   # a copy: saving asks where, the sample stays as it is
    return state


def build_studio(graph_path: str | Graph | None = None, *, width: int = WIDTH, height: int = HEIGHT,
                 show: bool = True, test_state_path: str | None = None,
                 state: AppState | None = None, sample: str | None = None) -> Studio:
    """A built studio for a graph file (or a Graph value, or a bundled sample), without
    entering the frame loop; or around an `AppState` made by the caller (a test's, with its
    own recovery folder)."""
    if state is None:
        state = AppState(graph_path) if isinstance(graph_path, Graph) \
            else make_state(graph_path, sample)
    studio = Studio(state, test_state_path=test_state_path)
    studio.build(width, height, show=show)
    # Everything alive now lives as long as the window: keep it out of the collector's
    # full passes, which otherwise stall a frame for tens of ms once training snapshots pile up.
    gc.freeze()
    return studio


def run(graph_path: str | None, *, screenshot: str | None = None, frames: int = 30,
        train: bool = False, sample: str | None = None) -> int:
    """Open the studio (the `dprog [GRAPH]` command; `sample` opens a bundled sample as a
    copy). With `screenshot`, render `frames` frames (with `train`, until training is well
    under way), save a PNG there and exit."""
    test_path = os.environ.get("DPROG_TEST_STATE") or None
    try:
        studio = build_studio(graph_path, test_state_path=test_path, sample=sample)
    except Exception as e:
        print(f"dprog: cannot start the studio: {type(e).__name__}: {shown(e)}", file=sys.stderr)
        return 2
    try:
        if screenshot is None:
            studio.frame()   # the window first: reading a big autosave takes a moment
            _offer_recovery(studio)
        if train:
            studio.frame()
            studio.train()
        if screenshot is not None:
            return _screenshot(studio, screenshot, frames, train)
        with _Signals() as signals:
            return _loop(studio, signals)
    finally:
        studio.close()


class _Signals:
    """SIGTERM (logout, shutdown, `kill`) and SIGHUP (the terminal closed) end the frame loop
    like a crash the studio sees coming: the unsaved changes are autosaved at once and kept
    for the next start, and `dprog` exits 128 + the signal's number."""

    HANDLED = (signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.HANDLED:
                if signal.getsignal(signum) is not signal.SIG_IGN:   # nohup: stays ignored
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame) -> None:
        self.received = self.received or signum


def _offer_recovery(studio: Studio) -> None:
    """Offer the autosave a session that did not exit cleanly left. Nothing in it can stop
    the studio from starting: a damaged one is set aside and reported in the status bar
    (app/recovery.py), and anything else that goes wrong here is reported the same way."""
    try:
        pending = studio.state.pending_recovery()
        if pending is None:
            return
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(pending.saved_at))
        what = shown(pending.file.name) if pending.file else "an untitled graph"
        studio.dialogs.offer_recovery(
            f"dprog did not exit cleanly last time. Restore the unsaved changes to {what} "
            f"autosaved at {when}?",
            on_restore=lambda: studio.state.restore_recovery(pending),
            on_discard=studio.state.discard_recovery)
    except Exception as e:
        log.error("offering the autosave failed:\n%s", traceback.format_exc())
        studio.state.set_status(f"could not offer the autosave: {type(e).__name__}: {e}",
                                "warning")


def _loop(studio: Studio, signals: _Signals) -> int:
    budget = 1.0 / FPS
    while dpg.is_dearpygui_running() and not studio.quit_requested and not signals.received:
        started = time.perf_counter()
        studio.frame()
        spare = budget - (time.perf_counter() - started)
        if spare > 0:
            time.sleep(spare)   # software GL ignores vsync: keep a core for the trainer
    if signals.received:
        # now=inf: past any autosave interval; the recovery file is kept for the next start.
        studio.state.maybe_autosave(now=math.inf)
        return 128 + signals.received
    if studio.quit_requested or not studio.state.dirty:
        studio.state.close()   # a clean exit: no recovery to offer next time
    return 0


def _finish_export(studio: Studio) -> None:
    done = studio._export_done
    if done is not None:
        studio._export_done = None
        studio.state.set_status(done.message, "error" if done.failed else "info")


def _screenshot(studio: Studio, path: str, frames: int, train: bool) -> int:
    deadline = time.monotonic() + (120.0 if train else 30.0)
    run = studio.run

    def mid_training() -> bool:
        if run.status in (FAILED, FINISHED, STOPPED):
            return True
        return (run.status == RUNNING and run.progress >= 0.35 and run.grad_version >= 3
                and (run.boundary_version >= 1 or not run.is_2d) and run.metric_points >= 20
                and run.events.qsize() < 100)

    count = 0
    while dpg.is_dearpygui_running() and time.monotonic() < deadline:
        studio.frame()
        count += 1
        if count >= frames and (not train or mid_training()):
            break
        time.sleep(0.01)
    if train and run.status in ACTIVE:
        run.pause()
    # Let throttled views catch up with the last events, then capture.
    settle = time.monotonic() + 1.2
    while time.monotonic() < settle or (run.events.qsize() and time.monotonic() < settle + 10):
        studio.frame()
        time.sleep(0.02)
    target = Path(path).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    dpg.output_frame_buffer(file=str(target))
    for _ in range(10):
        studio.frame()
        if target.exists():
            break
    run.stop()
    if not target.exists():
        print(f"dprog: could not write {target}", file=sys.stderr)
        return 2
    print(f"wrote {target}", file=sys.stderr)
    return 0


__all__ = ["Studio", "build_studio", "run"]
