"""The training data, shown before Train is pressed, in the run panel's third plot.

What is drawn depends on the samples' shape, read from the loaded `Dataset`:
- 2-D points: a scatter coloured by class (the decision boundary forms under it once a run
  starts; the run panel draws that);
- images ((C, H, W), (H, W), or a flattened square): the first eight, in a grid; for a
  dataset with several inputs of one image shape (digit_pairs), each tile holds the first
  samples' images side by side, in the order of the Input ids the label lists;
- sequences ((T, F)): the first sample's features over its steps, with its target;
- one feature against a regression target: a scatter of the pairs;
- anything else: what the samples are, in words (each input's shape, for several).

For a regression dataset, or predictions that are not class scores (a VAE's reconstructions),
the Accuracy plot says it has nothing to show and why. The view
redraws when the dataset changes or a run is forgotten (another document), never per frame.
"""

from __future__ import annotations

import math
from typing import Any

import dearpygui.dearpygui as dpg
import numpy as np

from ..state import AppState
from ..training import IDLE, TrainingRun
from .run_panel import CLASS_COLORS, MAX_POINTS_DRAWN, PLOT_BG, RunPanel, _scatter_theme
from .theme import ACCENT, OK, WARNING

IMAGES = (2, 4)          # rows, columns of the image grid
SEQUENCE_LINES = 3       # features drawn for a sequence
LINE_COLORS = (ACCENT, WARNING, OK)
ACC_TITLE = "Accuracy"
ACC_REGRESSION = "Accuracy: none (regression)"
ACC_OWN_LOSS = "Accuracy: none (the graph's loss is its only Output)"
ACC_NOT_SCORES = "Accuracy: none (the predictions are not class scores)"


class DataPreview:
    def __init__(self, state: AppState, run: TrainingRun, panel: RunPanel) -> None:
        self.state, self.run, self.panel = state, run, panel
        self.kind = "none"          # what is drawn: points, images, sequence, pairs, text
        self.lines: list[int] = []
        self.pairs = 0
        self.image = 0
        self.texture = 0
        self.registry = 0
        self._texture_size: tuple[int, int] | None = None
        self._drawn: tuple | None = None
        self._titled: tuple[Any, Any, str] = (None, None, ACC_TITLE)
        self.notes: list[int] = []   # an image's label, on its tile

    def build(self) -> None:
        y = self.panel.axes["boundary"]
        with dpg.texture_registry() as self.registry:
            pass
        for color in LINE_COLORS[:SEQUENCE_LINES]:
            line = dpg.add_line_series([], [], parent=y, show=False)
            with dpg.theme() as theme:
                with dpg.theme_component(dpg.mvLineSeries):
                    dpg.add_theme_color(dpg.mvPlotCol_Line, color, category=dpg.mvThemeCat_Plots)
            dpg.bind_item_theme(line, theme)
            self.lines.append(line)
        self.pairs = dpg.add_scatter_series([], [], parent=y, show=False)
        dpg.bind_item_theme(self.pairs, _scatter_theme(ACCENT))
        for _ in range(IMAGES[0] * IMAGES[1]):
            self.notes.append(dpg.add_plot_annotation(parent=self.panel.boundary_plot, label="",
                                                      default_value=(0, 0), offset=(0, 0),
                                                      color=(40, 42, 48, 220), show=False))

    # -- per frame --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Redraw when the dataset changed, or when the run panel cleared the plot."""
        dataset = self.state.dataset
        title = self._accuracy_title()
        key = (id(dataset), self.run.runs, self.run.status == IDLE, title)
        if key == self._drawn:
            return
        self._drawn = key
        acc = next(plot for plot, kind in self.panel.plots if kind == "acc")
        dpg.configure_item(acc, label=title)
        if self.run.status != IDLE and dataset is not None and dataset.is_2d:
            self._hide()   # the run panel draws the points and the boundary now
            self._label("Decision boundary, over the training points")
            return
        if self.run.status != IDLE and self.kind != "none":
            return         # other data: the preview stays up while it trains
        self._hide()
        if dataset is None:
            self.kind = "none"
            self._label("Data: loading…" if self.state.data_key() else "Data")
            return
        self.kind = self._draw(dataset)

    def _accuracy_title(self) -> str:
        """The Accuracy plot's title, saying why it stays empty when it must. The trainer's
        rule: the predictions (the first Output, or the second when the graph computes its own
        loss) are scored only when they are class scores for the dataset's targets."""
        dataset, graph = self.state.dataset, self.state.graph
        if dataset is None:
            return ACC_TITLE
        if dataset.task == "regression":
            return ACC_REGRESSION
        if self._titled[:2] == (graph, dataset):   # one look per edit, not per frame
            return self._titled[2]
        title = ACC_TITLE
        training = graph.training if hasattr(graph.training, "get") else {}
        outputs = [n.id for n in graph.nodes if n.type == "output"]
        shown = outputs[1:2] if training.get("loss") == "graph" else outputs[:1]
        if not shown and outputs:
            title = ACC_OWN_LOSS
        elif shown:
            predictions = self.state.analysis.inputs.get(shown[0], {}).get("x")
            if predictions is not None and not dataset.scored_by(predictions):
                title = ACC_NOT_SCORES
        self._titled = (graph, dataset, title)
        return title

    # -- drawing ----------------------------------------------------------------------------

    def _draw(self, d: Any) -> str:
        shape = d.input_shape
        n = len(d.x_train)
        image = _image_shape(shape, d.spec)
        if len(d.inputs) > 1:   # several inputs: images side by side, or their shapes in words
            if image is not None and len({v.shape for v in d.inputs.values()}) == 1:
                self._images(d, image, [v.train for v in d.inputs.values()])
                self._label(f"Data: {d.name}, {' | '.join(d.inputs)}")
                return "images"
            self._label(f"Data: {n} × " + ", ".join(f"{k} {v.shape}"
                                                    for k, v in d.inputs.items()))
            return "text"
        # Titles stay short: a plot cuts its title at the plot's width.
        if d.is_2d:
            self._points(d)
            self._label(f"Data: {d.name}, {n} points")
            return "points"
        if image is not None:
            self._images(d, image)
            self._label(f"Data: {d.name}, {IMAGES[0] * IMAGES[1]} of {n}")
            return "images"
        if len(shape) == 2:
            target = self._sequence(d)
            self._label(f"Data: {d.name} 1/{n}, target {target}")
            return "sequence"
        if shape == (1,) and d.task == "regression":
            self._pairs(d)
            self._label(f"Data: {d.name}, {n} (x, y)")
            return "pairs"
        self._label(f"Data: {n} × {shape}")
        return "text"

    def _label(self, text: str) -> None:
        dpg.configure_item(self.panel.boundary_plot, label=text)

    def _hide(self) -> None:
        for item in (*self.lines, self.pairs, *self.notes):
            dpg.configure_item(item, show=False)
        if self.image:
            dpg.configure_item(self.image, show=False)

    def _limits(self, x0: float, x1: float, y0: float, y1: float) -> None:
        x_axis = dpg.get_item_children(self.panel.boundary_plot, 1)[0]
        dpg.set_axis_limits(x_axis, x0, x1)
        dpg.set_axis_limits(self.panel.axes["boundary"], y0, y1)

    def _points(self, d: Any) -> None:
        x, y = np.asarray(d.x_train), np.asarray(d.y_train)
        step = max(1, len(x) // MAX_POINTS_DRAWN)
        xs, ys = x[::step], y[::step]
        if d.task == "classification":
            for k, series in enumerate(self.panel.point_series):
                mask = ys == k
                if mask.any():
                    dpg.set_value(series, [xs[mask, 0].tolist(), xs[mask, 1].tolist()])
                    dpg.configure_item(series, show=True)
        else:
            dpg.set_value(self.pairs, [xs[:, 0].tolist(), xs[:, 1].tolist()])
            dpg.configure_item(self.pairs, show=True)
        self._limits(*_padded(xs[:, 0]), *_padded(xs[:, 1]))

    def _images(self, d: Any, shape: tuple[int, int, int], sources: list | None = None) -> None:
        """The first samples' images; with several `sources` (one array per input), each
        tile shows a sample's images side by side, one grey column between them."""
        c, h, w = shape
        sources = sources or [d.x_train]
        # Tiles of k images are k times as wide: fewer columns keep the grid near square.
        rows, cols = IMAGES if len(sources) == 1 else (IMAGES[1], IMAGES[0])
        count = min(rows * cols, len(d.x_train))
        parts = [np.asarray(a[:count], dtype=np.float32).reshape(count, c, h, w) for a in sources]
        if len(parts) > 1:
            middle = 0.5 * (min(float(p.min()) for p in parts) + max(float(p.max()) for p in parts))
            gap = np.full((count, c, h, 1), middle, np.float32)
            parts = [x for p in parts for x in (gap, p)][1:]
        tiles = np.concatenate(parts, axis=-1)                       # (count, C, H, W·k + k-1)
        w = tiles.shape[-1]
        grid = np.tile(PLOT_BG, (rows * (h + 1), cols * (w + 1), 1)).astype(np.float32)
        for i, tile in enumerate(tiles):
            lo, hi = float(tile.min()), float(tile.max())
            gray = (tile - lo) / (hi - lo) if hi > lo else np.zeros_like(tile)
            rgb = np.repeat(gray[:1], 3, 0) if c != 3 else gray                  # (3, H, W)
            r, k = divmod(i, cols)
            grid[r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = rgb.transpose(1, 2, 0)
        height, width = grid.shape[:2]
        rgba = np.concatenate([grid, np.ones((height, width, 1), np.float32)], -1)
        self._set_texture(width, height, rgba.ravel())
        dpg.configure_item(self.image, bounds_min=(0, 0), bounds_max=(width, height), show=True)
        self._limits(0, width, 0, height)
        names = d.class_names
        for i, label in enumerate(np.asarray(d.y_train[:count]).tolist()):   # on its tile
            r, k = divmod(i, cols)
            text = str(names[label]) if names and d.task == "classification" else str(label)
            dpg.configure_item(self.notes[i], label=text, show=True,
                               default_value=(k * (w + 1) + 1.5, height - r * (h + 1) - 1.5))

    def _set_texture(self, width: int, height: int, data: np.ndarray) -> None:
        if self._texture_size != (width, height):
            if self.image:
                dpg.delete_item(self.image)
            if self.texture:
                dpg.delete_item(self.texture)
            self.texture = dpg.add_dynamic_texture(width, height, data.tolist(),
                                                   parent=self.registry)
            self.image = dpg.add_image_series(self.texture, (0, 0), (width, height),
                                              parent=self.panel.axes["boundary"])
            self._texture_size = (width, height)
        else:
            dpg.set_value(self.texture, data)

    def _sequence(self, d: Any) -> str:
        seq = np.asarray(d.x_train[0], dtype=np.float64)                        # (T, F)
        steps = list(range(seq.shape[0]))
        for f, line in enumerate(self.lines):
            if f < seq.shape[1]:
                dpg.set_value(line, [steps, seq[:, f].tolist()])
                dpg.configure_item(line, show=True)
        shown = seq[:, :len(self.lines)]
        self._limits(-0.5, seq.shape[0] - 0.5, *_padded(shown.ravel()))
        target = np.asarray(d.y_train[0])
        if d.task == "classification":
            names = d.class_names
            return str(names[int(target)]) if names else str(int(target))
        return ", ".join(f"{v:.3g}" for v in target.ravel()[:3])

    def _pairs(self, d: Any) -> None:
        x, y = np.asarray(d.x_train)[:, 0], np.asarray(d.y_train).reshape(len(d.x_train), -1)[:, 0]
        step = max(1, len(x) // MAX_POINTS_DRAWN)
        dpg.set_value(self.pairs, [x[::step].tolist(), y[::step].tolist()])
        dpg.configure_item(self.pairs, show=True)
        self._limits(*_padded(x), *_padded(y))


def _image_shape(shape: tuple[int, ...], spec: Any) -> tuple[int, int, int] | None:
    """(C, H, W) when the samples are images: (C, H, W) with 1 or 3 channels, (H, W), or a
    flattened square the dataset says it flattened."""
    if len(shape) == 3 and shape[0] in (1, 3) and min(shape[1:]) >= 4:
        return shape
    if len(shape) == 2 and min(shape) >= 8 and spec.get("flatten") is not None:
        return (1, *shape)
    if len(shape) == 1 and spec.get("flatten") is True:
        side = math.isqrt(shape[0])
        if side * side == shape[0] and side >= 4:
            return (1, side, side)
    return None


def _padded(values: Any) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = 0.08 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad


__all__ = ["CLASS_COLORS", "DataPreview"]
