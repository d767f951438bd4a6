"""Training: the settings form (stored in the graph file) and the live run panel.

`TrainingSettings` edits the graph's `training` section through `SetTraining` commands, so
settings are undoable and saved with the graph: dataset (+ noise for the 2-D sets), loss,
optimizer, learning rate, batch size, epochs, seed.

`RunPanel` shows a run: Train / Pause / Stop, a progress bar with the ETA, live plots of
training and validation loss and accuracy, and for 2-D datasets the decision boundary, a
dynamic texture redrawn from the trainer's grid, with the data points on top. A program
trained without data plots its Parameter values where accuracy would be; a run whose model
makes images of its image data (an autoencoder) shows a grid of data images, each with the
model's image of it below, where the boundary would be. Plots are redrawn at most `PLOT_HZ`
times a second and only when the run has new points.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import dearpygui.dearpygui as dpg
import numpy as np

from engine.core.config import LOSSES, OPTIMIZERS, TrainingConfig
from engine.data.datasets import BUILTIN
from nodes import lookup

from ..commands import SetTraining
from ..state import AppState
from ..training import ACTIVE, FAILED, PAUSED, RUNNING, TrainingRun
from .theme import ACCENT, ERROR, OK, TEXT_DIM, WARNING, Theme

PLOT_HZ = 8.0
BOUNDARY_HZ = 5.0
TEXTURE = 64
MAX_POINTS_DRAWN = 260
CLASS_COLORS = np.array([(66, 133, 244), (244, 140, 50), (90, 190, 110), (200, 80, 200),
                         (230, 210, 70), (80, 200, 220), (230, 90, 90), (160, 160, 160),
                         (140, 110, 230), (120, 200, 160)], dtype=np.float32) / 255.0
PLOT_BG = np.array((26, 27, 31), dtype=np.float32) / 255.0
PARAMETER_COLORS = ((90, 170, 250), (250, 160, 70), (110, 200, 120), (220, 100, 200),
                    (240, 220, 90), (90, 210, 220), (240, 100, 100), (170, 170, 180))
MAX_PARAMETER_SERIES = 16   # lines in the Parameters plot; a program's first values
IMAGE_GAP = 1               # texels between the images of a grid


def image_grid_rgba(inputs: np.ndarray, outputs: np.ndarray) -> tuple[int, int, np.ndarray]:
    """Grey images, (N, H, W) each with values in [0, 1], as pairs: each data image with the
    model's below it, the pairs in rows of at most four (a square-ish texture, so the plot
    need not stretch it). Returns (width, height, flat RGBA floats), top row first."""
    n, h, w = inputs.shape
    columns = min(n, 4)
    rows = -(-n // columns)
    pair_h = 2 * h + IMAGE_GAP
    width = columns * w + (columns - 1) * IMAGE_GAP
    height = rows * pair_h + (rows - 1) * 2 * IMAGE_GAP   # a wider gap between rows of pairs
    canvas = np.empty((height, width, 4), dtype=np.float32)
    canvas[..., :3] = PLOT_BG
    canvas[..., 3] = 1.0
    for i in range(n):
        x0 = (i % columns) * (w + IMAGE_GAP)
        y0 = (i // columns) * (pair_h + 2 * IMAGE_GAP)
        for k, image in enumerate((inputs[i], outputs[i])):
            top = y0 + k * (h + IMAGE_GAP)
            canvas[top:top + h, x0:x0 + w, :3] = np.clip(image, 0.0, 1.0)[..., None]   # grey
    return width, height, canvas.ravel()


def boundary_rgba(probs: np.ndarray) -> np.ndarray:
    """(R, C, K) class probabilities → flat RGBA floats for a texture, top row first.

    Each cell mixes the class colours by probability and fades towards the background where
    the model is unsure, so the boundary itself reads as a dark seam."""
    k = probs.shape[-1]
    colors = CLASS_COLORS[np.arange(k) % len(CLASS_COLORS)]        # (K, 3)
    mixed = probs @ colors                                         # (R, C, 3)
    confidence = (probs.max(-1, keepdims=True) - 1.0 / k) / (1.0 - 1.0 / k + 1e-9)
    alpha = 0.25 + 0.5 * np.clip(confidence, 0.0, 1.0)
    rgb = PLOT_BG * (1 - alpha) + mixed * alpha
    rgba = np.concatenate([rgb, np.ones_like(alpha)], axis=-1)[::-1]   # row 0 = top = max y
    return np.ascontiguousarray(rgba, dtype=np.float32).ravel()


# A dataset's image options the Training tab shows, with their labels, when the dataset has
# them (digits); their ranges are the dataset's own
IMAGE_OPTIONS = {"size": "image size", "channels": "channels"}


class TrainingSettings:
    """The Training tab: the graph's training section as a form."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.root = 0
        self.widgets: dict[str, int] = {}
        self.noise_row = 0
        self.option_rows: dict[str, int] = {}   # a dataset's image options → their row
        self.error = 0
        self._training: tuple | None = None   # (training section, program) last shown
        self._handlers = 0

    def build(self, parent: int | str) -> None:
        with dpg.item_handler_registry() as self._handlers:
            dpg.add_item_deactivated_after_edit_handler(callback=self._on_deactivate)
        with dpg.group(parent=parent) as self.root:
            dpg.add_text("Training setup (saved in the graph file)", color=TEXT_DIM)
            with dpg.table(header_row=False, policy=dpg.mvTable_SizingStretchProp):
                dpg.add_table_column(width_fixed=True, init_width_or_weight=110)
                dpg.add_table_column()
                with dpg.table_row():
                    dpg.add_text("dataset")
                    self.widgets["dataset"] = dpg.add_combo(list(BUILTIN), width=-1,
                                                            callback=self._on_dataset)
                with dpg.table_row() as self.noise_row:
                    dpg.add_text("noise")
                    self.widgets["noise"] = self._float("noise", "%.3g")
                for key, label in IMAGE_OPTIONS.items():
                    option = next(o for info in BUILTIN.values() if (o := info.option(key)))
                    with dpg.table_row() as self.option_rows[key]:
                        dpg.add_text(label)
                        self.widgets[key] = self._int(key, int(option.minimum),
                                                      int(option.maximum))
                with dpg.table_row():
                    dpg.add_text("loss")
                    self.widgets["loss"] = dpg.add_combo(list(LOSSES), width=-1,
                                                         callback=self._on_choice, user_data="loss")
                with dpg.table_row():
                    dpg.add_text("optimizer")
                    self.widgets["optimizer"] = dpg.add_combo(list(OPTIMIZERS), width=-1,
                                                              callback=self._on_choice,
                                                              user_data="optimizer")
                with dpg.table_row():
                    dpg.add_text("learning rate")
                    self.widgets["lr"] = self._float("lr", "%.6g")
                with dpg.table_row():
                    dpg.add_text("batch size")
                    self.widgets["batch_size"] = self._int("batch_size", 1, 1 << 20)
                with dpg.table_row():
                    dpg.add_text("epochs")
                    self.widgets["epochs"] = self._int("epochs", 1, 1_000_000)
                with dpg.table_row():
                    dpg.add_text("seed")
                    self.widgets["seed"] = self._int("seed", 0, 2**31 - 1)
                with dpg.table_row():
                    dpg.add_text("start from")
                    self.widgets["weights"] = dpg.add_input_text(
                        width=-1, on_enter=True, hint="fresh weights (or a weights.pt)",
                        callback=self._on_weights)
                    dpg.bind_item_handler_registry(self.widgets["weights"], self._handlers)
                with dpg.table_row():
                    dpg.add_text("TensorBoard")
                    self.widgets["tensorboard"] = dpg.add_checkbox(
                        label="write event files into the run's folder",
                        callback=self._on_choice, user_data="tensorboard")
            self.tensorboard_hint = dpg.add_text("", color=WARNING, wrap=400, show=False)
            self.error = dpg.add_text("", color=ERROR, wrap=400, show=False)
            self.about = dpg.add_text("", color=TEXT_DIM, wrap=400)
        for name, doc in (("dataset", "Built-in datasets; 2-D ones get a live decision boundary."),
                          ("noise", "Std of the noise added to the 2-D points."),
                          ("loss", "auto: cross-entropy for classification, MSE for regression."),
                          ("lr", "Learning rate, in (0, 100]."),
                          ("batch_size", "Samples per optimizer step."),
                          ("epochs", "Passes over the training part of the data."),
                          ("seed", "Seeds the weights, the data and its order: same seed, "
                                   "same run."),
                          ("size", "Image side in pixels: the digits are 8×8, resized "
                                   "bilinearly for models made for larger images."),
                          ("channels", "3 repeats the grey image as RGB, for models made for "
                                       "colour images (an imported ResNet)."),
                          ("weights", "A weights.pt (relative to the graph file) a fresh run "
                                      "starts from: fine-tuning. What fits by key and shape is "
                                      "loaded, the rest starts fresh; the run says which. "
                                      "Empty: fresh weights from the seed."),
                          ("tensorboard", "Also write TensorBoard files (losses, metrics, lr, "
                                          "weight and gradient histograms, per-wire gradient "
                                          "RMS) into runs/<run>/tensorboard/; view them with "
                                          "tensorboard --logdir runs")):
            with dpg.tooltip(self.widgets[name]):
                dpg.add_text(doc, wrap=300)

    def _float(self, key: str, fmt: str) -> int:
        w = dpg.add_input_float(width=-1, step=0, format=fmt, on_enter=True,
                                callback=self._on_number, user_data=key)
        dpg.bind_item_handler_registry(w, self._handlers)
        return w

    def _int(self, key: str, lo: int, hi: int) -> int:
        w = dpg.add_input_int(width=-1, min_value=lo, max_value=hi, min_clamped=True,
                              max_clamped=True, on_enter=True, callback=self._on_number,
                              user_data=key)
        dpg.bind_item_handler_registry(w, self._handlers)
        return w

    def text_inputs(self) -> list[int]:
        return [self.widgets[k] for k in ("noise", "lr", "batch_size", "epochs", "seed",
                                          *IMAGE_OPTIONS, "weights")]

    # -- refresh -------------------------------------------------------------------------------

    def refresh(self) -> None:
        graph = self.state.graph
        # A graph without Inputs takes no data: training fits its Parameters.
        program = not any((spec := lookup(n.type)) is not None and spec.kind == "input"
                          for n in graph.nodes)
        if (graph.training, program) == self._training:
            return
        self._training = (graph.training, program)
        training = graph.training
        try:
            config = TrainingConfig.from_mapping(training)
        except (TypeError, ValueError) as e:
            self._show_error(f"the graph's training section is invalid: {e}")
            config = TrainingConfig()
        dataset = dict(config.dataset)
        name = str(dataset.get("name", "moons"))
        info = BUILTIN.get(name)
        values: dict[str, Any] = {"dataset": name, "loss": config.loss,
                                  "optimizer": config.optimizer, "lr": float(config.lr),
                                  "batch_size": config.batch_size, "epochs": config.epochs,
                                  "seed": config.seed, "tensorboard": config.tensorboard}
        values["weights"] = config.weights or ""
        noise = info.option("noise") if info else None
        dpg.configure_item(self.noise_row, show=noise is not None and not program)
        for key, row in self.option_rows.items():
            option = info.option(key) if info else None
            dpg.configure_item(row, show=option is not None and not program)
            if option is not None:
                values[key] = int(dataset.get(key, option.default))
        dpg.configure_item(self.widgets["dataset"], enabled=not program)
        if noise is not None:
            values["noise"] = float(dataset.get("noise", noise.default))
        for key, value in values.items():
            w = self.widgets[key]
            if not dpg.is_item_active(w) and dpg.get_value(w) != value:
                dpg.set_value(w, value)
        missing = config.tensorboard and not tensorboard_installed()
        dpg.configure_item(self.tensorboard_hint, show=missing)
        dpg.set_value(self.tensorboard_hint, f"TensorBoard files need the tensorboard package, "
                      f"which is not installed: {TENSORBOARD_INSTALL}" if missing else "")
        dpg.set_value(self.about, "No data: the graph has no Input, so training fits its "
                      "Parameters to its own loss, its first Output (an epoch is one step)."
                      if program else (info.doc if info else f"dataset {name!r} (from a file)"))

    # -- commits -------------------------------------------------------------------------------

    def _commit(self, changes: tuple[tuple[str, Any], ...]) -> None:
        ok = self.state.do(SetTraining(changes))
        self._show_error("" if ok else self.state.status)
        if not ok:
            self._training = None   # put the widgets back to the graph's values
            self.refresh()

    def _show_error(self, text: str) -> None:
        dpg.set_value(self.error, text)
        dpg.configure_item(self.error, show=bool(text))

    def _dataset_section(self) -> dict[str, Any]:
        section = self.state.graph.training.get("dataset", {"name": "moons"})
        return dict(section) if isinstance(section, Mapping) else {"name": "moons"}

    def _on_dataset(self, sender: int, name: str, user_data: object) -> None:
        current = self._dataset_section()
        if current.get("name") == name:
            return
        info = BUILTIN[name]
        kept = {k: v for k, v in current.items() if k != "name" and info.option(k) is not None}
        self._commit((("dataset", {"name": name, **kept}),))

    def _on_choice(self, sender: int, value: str | bool, key: str) -> None:
        # TensorBoard off is the default: the key leaves the file rather than saying false.
        self._commit(((key, None if value is False else value),))

    def _on_number(self, sender: int, value: Any, key: str) -> None:
        if key == "weights":
            return self._on_weights(sender, value, key)
        if key == "noise":
            section = self._dataset_section()
            if section.get("noise") != value:
                self._commit((("dataset", {**section, "noise": round(float(value), 6)}),))
            return
        if key in IMAGE_OPTIONS:
            section = self._dataset_section()
            option = BUILTIN[section["name"]].option(key) if section.get("name") in BUILTIN \
                else None
            if option is not None and section.get(key, option.default) != value:
                kept = {k: v for k, v in section.items() if k != key}
                self._commit((("dataset", kept if value == option.default
                               else {**kept, key: int(value)}),))
            return
        if key == "lr":
            value = float(f"{value:.6g}")
        current = self.state.graph.training.get(key)
        if current != value:
            self._commit(((key, value),))

    def _on_weights(self, sender: int, value: str, user_data: object) -> None:
        text = value.strip() or None
        if self.state.graph.training.get("weights") != text:
            self._commit((("weights", text),))

    def _on_deactivate(self, sender: int, widget: int, user_data: object) -> None:
        for key, w in self.widgets.items():
            if w == widget:
                self._on_number(w, dpg.get_value(w), key)


class RunPanel:
    """Run controls, progress, live loss/accuracy plots and the decision boundary."""

    def __init__(self, run: TrainingRun, theme: Theme, *, on_train: Callable[[], None],
                 on_pause: Callable[[], None], on_stop: Callable[[], None],
                 on_generate: Callable[[], None] | None = None) -> None:
        self.run = run
        self.theme = theme
        self.on_train, self.on_pause, self.on_stop = on_train, on_pause, on_stop
        self.on_generate = on_generate
        self.train_button = self.pause_button = self.stop_button = self.generate_button = 0
        self.progress = 0
        self.status_text = 0
        self.series: dict[str, int] = {}
        self.axes: dict[str, int] = {}
        self.x_axes: dict[str, int] = {}
        self.texture = 0
        self.params_plot = 0
        self.param_series: dict[str, int] = {}   # label → line series
        self.images_plot = 0
        self.images_texture = 0
        self.images_series = 0
        self.images_size: tuple[int, int] | None = None
        self._drawn_images = -1
        self.image_updates = 0
        self.boundary_plot = 0
        self.boundary_image = 0
        self.point_series: list[int] = []
        self._drawn_metrics = -1
        self._drawn_boundary = -1
        self._drawn_run = -1
        self._last_plot = 0.0
        self._last_boundary = 0.0
        self._status_key: tuple | None = None
        self.plot_updates = 0
        self._plot_queue: list[str] = []

    def build_controls(self, parent: int | str) -> None:
        with dpg.group(parent=parent, horizontal=True):
            self.train_button = dpg.add_button(label="▶ Train", width=90,
                                               callback=lambda: self.on_train())
            dpg.bind_item_theme(self.train_button, self.theme.primary_button)
            self.pause_button = dpg.add_button(label="Pause", width=80,
                                               callback=lambda: self.on_pause())
            self.stop_button = dpg.add_button(label="■ Stop", width=80,
                                              callback=lambda: self.on_stop())
            # Only for a character model (a graph on the text dataset): see offer_generate.
            self.generate_button = dpg.add_button(label="Generate…", width=90, show=False,
                                                  callback=lambda: self.on_generate
                                                  and self.on_generate())
            self.progress = dpg.add_progress_bar(default_value=0.0, width=-330,
                                                 overlay="not trained yet")
            self.status_text = dpg.add_text("", color=TEXT_DIM)
        for b, tip in ((self.train_button, "Train the graph with its training settings "
                                           "(Ctrl+Enter / F5)"),
                       (self.pause_button, "Pause or resume between steps"),
                       (self.stop_button, "Stop after the current step; the weights are kept "
                                          "for export"),
                       (self.generate_button, "Write text with the trained model: continue a "
                                              "prompt (Train › Generate text…)")):
            with dpg.tooltip(b):
                dpg.add_text(tip)

    def offer_generate(self, writes_text: bool) -> None:
        """Show the Generate button for graphs that can write text."""
        if dpg.is_item_shown(self.generate_button) != writes_text:
            dpg.configure_item(self.generate_button, show=writes_text)

    def build_plots(self, parent: int | str, width: int, height: int) -> None:
        boundary_w = min(height + 40, width // 3)
        plot_w = (width - boundary_w - 24) // 2
        self.plots: list[tuple[int, str]] = []
        with dpg.group(parent=parent, horizontal=True):
            self._line_plot("loss", "Loss", plot_w, height,
                            (("step_loss", "train (per step)", (120, 128, 150, 110)),
                             ("train_loss", "train", ACCENT), ("val_loss", "validation", WARNING)))
            self._line_plot("acc", "Accuracy", plot_w, height,
                            (("train_acc", "train", ACCENT), ("val_acc", "validation", OK)))
            self._params_plot(plot_w, height)
            self._boundary_plot(boundary_w, height)
            self._images_plot(boundary_w, height)

    def resize(self, width: int, height: int) -> None:
        boundary_w = min(height + 40, width // 3)
        plot_w = (width - boundary_w - 24) // 2
        for plot, kind in self.plots:
            dpg.configure_item(plot, width=boundary_w if kind in ("boundary", "images") else plot_w,
                               height=height)

    def _params_plot(self, w: int, h: int) -> None:
        """A program's Parameter values over the steps; shown instead of Accuracy."""
        with dpg.plot(label="Parameters", width=w, height=h, no_mouse_pos=True, no_menus=True,
                      show=False) as self.params_plot:
            self.plots.append((self.params_plot, "params"))
            dpg.add_plot_legend(location=dpg.mvPlot_Location_NorthEast)
            self.x_axes["params"] = dpg.add_plot_axis(dpg.mvXAxis, label="step", no_label=True)
            self.axes["params"] = dpg.add_plot_axis(dpg.mvYAxis, no_label=True)

    def _images_plot(self, w: int, h: int) -> None:
        """Data and the model's images of it; shown instead of the decision boundary."""
        with dpg.plot(label="Images: data, the model's below", width=w, height=h,
                      no_mouse_pos=True, no_menus=True, equal_aspects=True,
                      show=False) as self.images_plot:
            self.plots.append((self.images_plot, "images"))
            self.x_axes["images"] = dpg.add_plot_axis(dpg.mvXAxis, no_tick_labels=True,
                                                      no_label=True)
            self.axes["images"] = dpg.add_plot_axis(dpg.mvYAxis, no_tick_labels=True,
                                                    no_label=True)

    def _line_plot(self, key: str, title: str, w: int, h: int,
                   lines: tuple[tuple[str, str, tuple], ...]) -> None:
        with dpg.plot(label=title, width=w, height=h, no_mouse_pos=True, no_menus=True) as plot:
            self.plots.append((plot, key))
            dpg.add_plot_legend(location=dpg.mvPlot_Location_NorthEast if key == "loss"
                                else dpg.mvPlot_Location_SouthEast)
            self.x_axes[key] = dpg.add_plot_axis(dpg.mvXAxis, label="step", no_label=True)
            y = dpg.add_plot_axis(dpg.mvYAxis, no_label=True)
            if key == "loss":
                dpg.set_axis_limits_auto(y)
            self.axes[key] = y
            for name, label, color in lines:
                series = dpg.add_line_series([], [], label=label, parent=y)
                dpg.bind_item_theme(series, _series_theme(color, 1.2 if name == "step_loss" else 2.2))
                self.series[name] = series

    def _boundary_plot(self, w: int, h: int) -> None:
        with dpg.texture_registry():
            self.texture = dpg.add_dynamic_texture(TEXTURE, TEXTURE,
                                                   [*PLOT_BG.tolist(), 1.0] * (TEXTURE * TEXTURE))
        with dpg.plot(label="Decision boundary (2-D data)", width=w, height=h, no_mouse_pos=True,
                      no_menus=True, equal_aspects=False) as self.boundary_plot:
            self.plots.append((self.boundary_plot, "boundary"))
            dpg.add_plot_axis(dpg.mvXAxis, no_tick_labels=True, no_label=True)
            y = dpg.add_plot_axis(dpg.mvYAxis, no_tick_labels=True, no_label=True)
            self.axes["boundary"] = y
            self.boundary_image = dpg.add_image_series(self.texture, (-1, -1), (1, 1), parent=y,
                                                       show=False)
            for k in range(len(CLASS_COLORS)):
                s = dpg.add_scatter_series([], [], parent=y, show=False)
                dpg.bind_item_theme(s, _scatter_theme(tuple(int(c * 255) for c in CLASS_COLORS[k])))
                self.point_series.append(s)

    # -- refresh -------------------------------------------------------------------------------

    def refresh(self, now: float | None = None) -> None:
        """Cheap every frame: buttons/progress when the run changed; plots at PLOT_HZ."""
        run = self.run
        now = time.monotonic() if now is None else now
        if run.runs != self._drawn_run:
            self._drawn_run = run.runs
            self._drawn_metrics = self._drawn_boundary = self._drawn_images = -1
            self._plot_queue = []
            self._clear_points()
            self._clear_extras()
        key = (run.status, run.step, int(now * 2) if run.active else 0)
        if key != self._status_key:
            self._status_key = key
            self._refresh_controls()
        # At most one piece of plotting per frame, so no frame gets long: a series, or the
        # decision boundary, or (re)starting the series queue.
        if self._plot_queue:
            self._draw_series(self._plot_queue.pop())
        elif run.boundary_version != self._drawn_boundary and now - self._last_boundary >= 1 / BOUNDARY_HZ:
            self._last_boundary = now
            self._drawn_boundary = run.boundary_version
            self._refresh_boundary()
        elif run.images_version != self._drawn_images and now - self._last_boundary >= 1 / BOUNDARY_HZ:
            self._last_boundary = now
            self._drawn_images = run.images_version
            self._refresh_images()
        elif run.metrics_version != self._drawn_metrics and now - self._last_plot >= 1 / PLOT_HZ:
            self._last_plot = now
            self._drawn_metrics = run.metrics_version
            self._plot_queue = ["val_acc", "train_acc", "val_loss", "train_loss", "step_loss"]
            if run.parameter_values:
                self._plot_queue.insert(0, "parameters")
            self.plot_updates += 1

    def _refresh_controls(self) -> None:
        run = self.run
        active = run.active
        dpg.configure_item(self.train_button, enabled=not active)
        dpg.configure_item(self.stop_button, enabled=active)
        dpg.configure_item(self.pause_button, enabled=run.status in (RUNNING, PAUSED),
                           label="Resume" if run.status == PAUSED else "Pause")
        dpg.set_value(self.progress, run.progress)
        dpg.configure_item(self.progress, overlay=run.progress_text())
        color = ERROR if run.status == FAILED else (TEXT_DIM if not active else ACCENT)
        dpg.configure_item(self.status_text, default_value=_short(run.message, 40), color=color)

    def _draw_series(self, name: str) -> None:
        if name == "parameters":
            self._draw_parameters()
            return
        xs, ys = getattr(self.run, name).view()
        dpg.set_value(self.series[name], [xs, ys])
        if name in ("step_loss", "val_loss"):
            dpg.fit_axis_data(self.axes["loss"])
            dpg.fit_axis_data(self.x_axes["loss"])
        elif name == "val_acc" or (name == "train_acc" and not self.run.val_acc.x):
            dpg.fit_axis_data(self.axes["acc"])
            dpg.fit_axis_data(self.x_axes["acc"])

    def _draw_parameters(self) -> None:
        """One line per Parameter value (the first MAX_PARAMETER_SERIES), in place of the
        accuracy plot."""
        if not dpg.is_item_shown(self.params_plot):
            dpg.configure_item(self._plot("acc"), show=False)   # a program has no accuracy
            dpg.configure_item(self.params_plot, show=True)
        for label, series in list(self.run.parameter_values.items())[:MAX_PARAMETER_SERIES]:
            line = self.param_series.get(label)
            if line is None:
                color = PARAMETER_COLORS[len(self.param_series) % len(PARAMETER_COLORS)]
                line = dpg.add_line_series([], [], label=label, parent=self.axes["params"])
                dpg.bind_item_theme(line, _series_theme(color, 2.2))
                self.param_series[label] = line
            dpg.set_value(line, list(series.view()))
        dpg.fit_axis_data(self.axes["params"])
        dpg.fit_axis_data(self.x_axes["params"])

    def _refresh_images(self) -> None:
        """The latest image grid as a texture, in place of the decision boundary."""
        grid = self.run.images
        if grid is None:
            return
        width, height, rgba = image_grid_rgba(np.asarray(grid.inputs), np.asarray(grid.outputs))
        if self.images_size != (width, height):   # a texture's size is fixed when it is made
            if self.images_series:
                dpg.delete_item(self.images_series)
            if self.images_texture:
                dpg.delete_item(self.images_texture)
            with dpg.texture_registry():
                self.images_texture = dpg.add_dynamic_texture(width, height, rgba)
            self.images_series = dpg.add_image_series(self.images_texture, (0, 0), (width, height),
                                                      parent=self.axes["images"])
            self.images_size = (width, height)
            dpg.set_axis_limits(self.x_axes["images"], 0, width)
            dpg.set_axis_limits(self.axes["images"], 0, height)
        else:
            dpg.set_value(self.images_texture, rgba)
        if not dpg.is_item_shown(self.images_plot):
            dpg.configure_item(self.boundary_plot, show=False)
            dpg.configure_item(self.images_plot, show=True)
        self.image_updates += 1

    def _plot(self, key: str) -> int:
        return next(plot for plot, kind in self.plots if kind == key)

    def _clear_extras(self) -> None:
        """A new run starts with the accuracy and boundary plots; its events bring back the
        parameter and image plots if it has them."""
        for line in self.param_series.values():
            dpg.delete_item(line)
        self.param_series.clear()
        dpg.configure_item(self.params_plot, show=False)
        dpg.configure_item(self.images_plot, show=False)
        dpg.configure_item(self._plot("acc"), show=True)
        dpg.configure_item(self.boundary_plot, show=True)

    def _clear_points(self) -> None:
        for s in self.point_series:
            dpg.set_value(s, [[], []])
            dpg.configure_item(s, show=False)
        dpg.configure_item(self.boundary_image, show=False)
        self._points_drawn = False

    def _refresh_boundary(self) -> None:
        run = self.run
        b = run.boundary
        if b is None:
            return
        x0, x1, y0, y1 = b.extent
        dpg.set_value(self.texture, boundary_rgba(np.asarray(b.probs)))
        dpg.configure_item(self.boundary_image, bounds_min=(x0, y0), bounds_max=(x1, y1), show=True)
        if not getattr(self, "_points_drawn", False) and run.points is not None:
            x, y = run.points
            if y is not None:
                step = max(1, len(x) // MAX_POINTS_DRAWN)
                xs, ys = np.asarray(x)[::step], np.asarray(y)[::step]
                for k, series in enumerate(self.point_series):
                    mask = ys == k
                    if mask.any():
                        dpg.set_value(series, [xs[mask, 0].tolist(), xs[mask, 1].tolist()])
                        dpg.configure_item(series, show=True)
            self._points_drawn = True
        dpg.set_axis_limits(dpg.get_item_children(self.boundary_plot, 1)[0], x0, x1)
        dpg.set_axis_limits(self.axes["boundary"], y0, y1)


TENSORBOARD_INSTALL = "pip install 'dprog[tensorboard]' (or: pip install tensorboard)"


def tensorboard_installed() -> bool:
    """Is the tensorboard package there? Looked up, not imported (it is slow to import)."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


_SERIES_THEMES: dict[tuple, int] = {}


def _series_theme(color: tuple, weight: float) -> int:
    key = ("line", color, weight)
    if key not in _SERIES_THEMES:
        with dpg.theme() as t:
            with dpg.theme_component(dpg.mvLineSeries):
                dpg.add_theme_color(dpg.mvPlotCol_Line, color, category=dpg.mvThemeCat_Plots)
                dpg.add_theme_style(dpg.mvPlotStyleVar_LineWeight, weight,
                                    category=dpg.mvThemeCat_Plots)
        _SERIES_THEMES[key] = t
    return _SERIES_THEMES[key]


def _scatter_theme(color: tuple) -> int:
    key = ("scatter", color)
    if key not in _SERIES_THEMES:
        with dpg.theme() as t:
            with dpg.theme_component(dpg.mvScatterSeries):
                dpg.add_theme_color(dpg.mvPlotCol_MarkerFill, (*color, 230),
                                    category=dpg.mvThemeCat_Plots)
                # a light rim, so a point shows on a region of its own colour
                dpg.add_theme_color(dpg.mvPlotCol_MarkerOutline, (235, 236, 240, 210),
                                    category=dpg.mvThemeCat_Plots)
                dpg.add_theme_style(dpg.mvPlotStyleVar_Marker, dpg.mvPlotMarker_Circle,
                                    category=dpg.mvThemeCat_Plots)
                dpg.add_theme_style(dpg.mvPlotStyleVar_MarkerSize, 1.7,
                                    category=dpg.mvThemeCat_Plots)
        _SERIES_THEMES[key] = t
    return _SERIES_THEMES[key]


series_theme = _series_theme   # the views that draw over these plots (live edits, runs)

__all__ = ["ACTIVE", "RunPanel", "TrainingSettings", "boundary_rgba", "series_theme"]
