"""Inside a wire: the pinned wire's panel and the hover card (issue 17, item 5).

A wire is pinned from its right-click menu ("Look inside") or with I while the mouse is on
it (or it is selected); the panel, a floating window, shows what the last reading saw
(`app.inspection.WireWatch`): the shape, the activation's and the gradient's statistics
with a histogram each, a few values of the first sample, and pictures: for an image-like
wire (B, C, H, W) its first channels, for a model on 2-D inputs each unit's response over
the input plane (the Playground's neuron heatmaps, orange < 0 < blue). Inside a Loop body a
slider picks the iteration. Resting the mouse on any wire shows a small card with its
statistics, read the same way.

Per frame the view only reads the mouse (hover at most `HOVER_HZ`) and redraws the panel
when the watch's version moved, at most `PANEL_HZ`: nothing is asked of the trainer unless
a wire is pinned or hovered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dearpygui.dearpygui as dpg

from engine.core.events import TensorStats, WireReading

from ..inspection import (
    WireWatch,
    block_of,
    gray_rgba,
    heat_rgba,
    histogram_bars,
    sample_text,
    stats_lines,
)
from ..state import AppState
from .editor import GraphEditor
from .theme import TEXT_DIM, Theme

PANEL_W, PANEL_H = 470, 600
HIST_H = 72
PICTURES = 4
PICTURE_PX = 96
HOVER_HZ = 10.0
PANEL_HZ = 5.0


def wire_title(edge: str) -> str:
    """ "loop/body/fc.y->act.x" → "loop › body › fc.y → act.x"."""
    src, _, dst = edge.partition("->")
    prefix, _, src = src.rpartition("/")
    dst = dst.rpartition("/")[2]
    where = " › ".join(prefix.split("/")) + " › " if prefix else ""
    return f"{where}{src} → {dst}"


class WireInspector:
    def __init__(self, state: AppState, run: Any, editor: GraphEditor, theme: Theme,
                 watch: WireWatch,
                 place: Callable[[str | None, int, int], tuple[int, int]] | None = None) -> None:
        """`place(node path, width, height)`: where the panel goes, beside that block."""
        self.state, self.run, self.editor, self.theme, self.watch = state, run, editor, theme, watch
        self.place = place
        self.window = self.title = self.note = self.slider = self.slider_note = 0
        self.stats: dict[str, int] = {}        # "act"/"grad" → the stats text
        self.samples: dict[str, int] = {}
        self.bars: dict[str, int] = {}
        self.axes: dict[str, tuple[int, int]] = {}
        self.pictures_group = self.pictures_note = 0
        self.images: list[int] = []
        self.textures: list[int] = []
        self._texture_sizes: list[tuple[int, int]] = []
        self.registry = 0
        self.card = self.card_text = 0
        self._drawn: tuple | None = None
        self._drawn_at = 0.0
        self._hover_at = 0.0
        self._mouse: tuple[float, float] | None = None
        self.card_for: str | None = None       # the wire the card shows (test hook)
        self.picture_kind = ""                 # "heatmap", "channels" or "" (test hook)

    # -- building ------------------------------------------------------------------------------

    def build(self) -> None:
        self.registry = dpg.add_texture_registry()
        with dpg.window(label="Inside a wire", show=False, no_saved_settings=True,
                        width=PANEL_W, height=PANEL_H, pos=(900, 60),
                        on_close=lambda: self.watch.unpin()) as self.window:
            self.title = dpg.add_text("")
            self.note = dpg.add_text("", color=TEXT_DIM, wrap=PANEL_W - 30)
            with dpg.group(horizontal=True):
                self.slider = dpg.add_slider_int(label="iteration", width=200, min_value=0,
                                                 max_value=1, callback=self._on_iteration,
                                                 show=False)
                self.slider_note = dpg.add_text("", color=TEXT_DIM)
            with dpg.group(horizontal=True):
                for kind, label in (("act", "activation"), ("grad", "gradient")):
                    with dpg.group(width=PANEL_W // 2 - 16):
                        dpg.add_text(label, color=(240, 150, 60) if kind == "act"
                                     else (86, 156, 255))
                        self.stats[kind] = dpg.add_text("-")
                        with dpg.plot(height=HIST_H, width=PANEL_W // 2 - 16, no_menus=True,
                                      no_mouse_pos=True, no_title=True):
                            x = dpg.add_plot_axis(dpg.mvXAxis, no_gridlines=True)
                            y = dpg.add_plot_axis(dpg.mvYAxis, no_tick_labels=True,
                                                  no_gridlines=True)
                            self.bars[kind] = dpg.add_bar_series([], [], parent=y, weight=1.0)
                            self.axes[kind] = (x, y)
                        dpg.add_text("first sample", color=TEXT_DIM)
                        self.samples[kind] = dpg.add_text("-")
            self.pictures_note = dpg.add_text("", color=TEXT_DIM, wrap=PANEL_W - 30)
            self.pictures_group = dpg.add_group(horizontal=True)
            dpg.add_button(label="Unpin", callback=lambda: self.watch.unpin())
        with dpg.window(show=False, no_title_bar=True, no_resize=True, no_move=True,
                        no_saved_settings=True, autosize=True, no_focus_on_appearing=True,
                        no_collapse=True) as self.card:
            self.card_text = dpg.add_text("")

    # -- per frame -----------------------------------------------------------------------------

    def step(self, now: float | None = None,
             blocked: Callable[[], bool] = lambda: False) -> None:
        """Follow the mouse (hover), ask the watch for readings, redraw what changed.
        `blocked()`: is a menu or a dialog open, so the mouse is not on the canvas? (Asked
        only when the mouse moved.)"""
        now = time.monotonic() if now is None else now
        self._hover(now, blocked)
        self.watch.tick(self.run, now)
        self._draw_panel(now)
        self._draw_card()

    def _hover(self, now: float, blocked: Callable[[], bool]) -> None:
        if now - self._hover_at < 1 / HOVER_HZ:
            return
        self._hover_at = now
        mouse = tuple(dpg.get_mouse_pos(local=False))
        if mouse == self._mouse:
            return
        self._mouse = mouse
        edge = None
        if self.editor.hovered() and self.editor.hovered_node() is None and not blocked():
            found = self.editor.hovered_edge()
            if found is not None:
                edge = self.state.analysis_prefix + found.key
        self.watch.hover(edge, now)

    def _draw_card(self) -> None:
        edge = self.watch.hovered
        reading = self.watch.reading(edge, exact=False)
        text = ""
        if edge is not None:
            if reading is not None:
                text = _card(edge, reading)
            elif self.watch.error(edge):
                text = f"{wire_title(edge)}\n{self.watch.error(edge)}"
            elif self.run.trainer is not None and self.run.status != "loading":
                text = f"{wire_title(edge)}\nreading…"
        if edge != self.card_for or (text and dpg.get_value(self.card_text) != text):
            self.card_for = edge if text else None
            if text:
                dpg.set_value(self.card_text, text)
                if self._mouse is not None:
                    dpg.configure_item(self.card, pos=(int(self._mouse[0]) + 16,
                                                       int(self._mouse[1]) + 16))
            dpg.configure_item(self.card, show=bool(text))

    def _draw_panel(self, now: float) -> None:
        watch = self.watch
        key = (watch.pinned, watch.iteration, watch.version)
        if key == self._drawn or now - self._drawn_at < 1 / PANEL_HZ:
            return
        self._drawn, self._drawn_at = key, now
        if watch.pinned is None:
            dpg.configure_item(self.window, show=False)
            return
        if not dpg.is_item_shown(self.window):
            dpg.configure_item(self.window, show=True)
        edge = watch.pinned
        reading = watch.reading(edge, watch.iteration)
        dpg.set_value(self.title, wire_title(edge))
        error = watch.error(edge, watch.iteration)
        if reading is not None:
            where = f" · iteration {reading.iteration}" if reading.iteration is not None else ""
            note = f"step {reading.step}{where} · shape {tuple(reading.activation.shape)}"
        elif error:
            note = error
        elif self.run.trainer is None:
            note = "press Train: the wire is read during the run and after it"
        else:
            note = "reading…"
        dpg.set_value(self.note, note)
        in_body = "/" in edge.partition("->")[0]
        # The iteration just picked is not read yet: its range is the last reading's.
        known = reading or watch.reading(edge, exact=False)
        reads = known.iterations if known is not None else 1
        dpg.configure_item(self.slider, show=in_body or reads > 1,
                           max_value=max(1, reads - 1))
        if not dpg.is_item_active(self.slider):   # never under the user's drag
            dpg.set_value(self.slider, watch.iteration or 0)
        dpg.set_value(self.slider_note, f"of {reads} reads this step"
                      if reading is not None and (in_body or reads > 1) else "")
        for kind, stats, sample in (
                ("act", reading.activation if reading else None, reading.sample if reading else ()),
                ("grad", reading.gradient if reading else None,
                 reading.grad_sample if reading else ())):
            self._draw_stats(kind, stats, sample, reading is not None)
        self._draw_pictures(reading)

    def _draw_stats(self, kind: str, stats: TensorStats | None, sample: tuple[float, ...],
                    have: bool) -> None:
        rows = stats_lines(stats)
        if rows:
            text = "\n".join(f"{label:<8}{value}" for label, value in rows[1:])
        else:
            text = "no gradient reaches this wire" if have and kind == "grad" else "-"
        dpg.set_value(self.stats[kind], text)
        xs, counts, width = histogram_bars(stats)
        dpg.configure_item(self.bars[kind], x=xs, y=counts, weight=width)
        x_axis, y_axis = self.axes[kind]
        if xs:
            dpg.set_axis_limits(x_axis, xs[0] - width, xs[-1] + width)
            dpg.set_axis_limits(y_axis, 0, max(counts) * 1.1 or 1)
        dpg.set_value(self.samples[kind], sample_text(sample))

    def _draw_pictures(self, reading: WireReading | None) -> None:
        pictures: list[tuple[int, int, list[float]]] = []
        note = ""
        kind = ""
        if reading is not None and reading.heatmap is not None:
            maps = reading.heatmap[:PICTURES]
            scale = float(abs(maps).max()) or 1.0
            pictures = [heat_rgba(m, scale) for m in maps]
            kind = "heatmap"
            note = (f"units 0-{len(pictures) - 1} over the input plane (orange < 0 < blue, "
                    f"|max| {scale:.3g})")
        elif reading is not None and reading.channels is not None:
            pictures = [gray_rgba(c) for c in reading.channels[:PICTURES]]
            kind = "channels"
            note = f"channels 0-{len(pictures) - 1} of the first sample (dark = low)"
        self.picture_kind = kind
        dpg.set_value(self.pictures_note, note)
        for i, (w, h, data) in enumerate(pictures):
            self._set_picture(i, w, h, data)
        for i, image in enumerate(self.images):
            dpg.configure_item(image, show=i < len(pictures))

    def _set_picture(self, i: int, w: int, h: int, data: list[float]) -> None:
        scale = PICTURE_PX / max(w, h)
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        if i < len(self.textures) and self._texture_sizes[i] == (w, h):
            dpg.set_value(self.textures[i], data)
            return
        texture = dpg.add_dynamic_texture(w, h, data, parent=self.registry)
        image = dpg.add_image(texture, width=size[0], height=size[1], parent=self.pictures_group,
                              before=self.images[i] if i < len(self.images) else 0)
        if i < len(self.textures):   # another size: the new picture replaces the old one
            dpg.delete_item(self.images[i])
            dpg.delete_item(self.textures[i])
            self.images[i], self.textures[i], self._texture_sizes[i] = image, texture, (w, h)
        else:
            self.images.append(image)
            self.textures.append(texture)
            self._texture_sizes.append((w, h))

    # -- actions -------------------------------------------------------------------------------

    def pin_under_mouse(self) -> bool:
        """I: pin the wire under the mouse, else the selected one."""
        edge = self.watch.hovered
        if edge is None and self.editor.selected_edges:
            edge = self.state.analysis_prefix + self.editor.selected_edges[0].key
        if edge is None:
            self.state.set_status("rest the mouse on a wire (or select one) to look inside it",
                                  "warning")
            return False
        self.pin(edge)
        return True

    def pin(self, edge: str) -> None:
        in_body = "/" in edge.partition("->")[0]
        self.watch.pin(edge, 0 if in_body else None)
        self._drawn = None
        # On the canvas, never over the training controls under it (it scrolls instead).
        canvas_h = (dpg.get_item_rect_size(self.editor.canvas) or (0, PANEL_H + 24))[1]
        height = max(240, min(PANEL_H, int(canvas_h) - 24))
        dpg.configure_item(self.window, height=height)
        if self.place is not None:
            dpg.configure_item(self.window, pos=self.place(block_of(edge), PANEL_W, height))
        self.state.set_status(f"looking inside {wire_title(edge)}: its statistics are read "
                              "while the run trains and after it")

    def _on_iteration(self, sender: int, value: int, user_data: object) -> None:
        self.watch.set_iteration(int(value))

    def snapshot(self) -> dict:
        """What the panel and the card show, for the test hook."""
        watch = self.watch
        reading = watch.reading(watch.pinned, watch.iteration)
        return {"pinned": watch.pinned, "iteration": watch.iteration,
                "panel_shown": bool(self.window) and dpg.is_item_shown(self.window),
                "panel_rect": window_rect(self.window),
                "note": dpg.get_value(self.note) if self.note else "",
                "stats": dpg.get_value(self.stats["act"]) if self.stats else "",
                "grad_stats": dpg.get_value(self.stats["grad"]) if self.stats else "",
                # The activation's stats (TensorStats.to_json), and where they were read.
                "reading": None if reading is None else {
                    **reading.activation.to_json(), "step": reading.step,
                    "gradient": reading.gradient is not None,
                    "iterations": reading.iterations, "iteration": reading.iteration},
                "slider": _rect(self.slider),
                "slider_max": dpg.get_item_configuration(self.slider)["max_value"]
                if self.slider else None,
                "pictures": self.picture_kind,
                "pictures_rect": _union([_rect(i) for i in self.images]),
                "images_shown": sum(1 for i in self.images if dpg.is_item_shown(i)),
                "hovered": watch.hovered, "card_for": self.card_for,
                "card_text": dpg.get_value(self.card_text) if self.card_for else ""}


def _card(edge: str, r: WireReading) -> str:
    a = r.activation
    lines = [wire_title(edge), f"shape {tuple(a.shape)} · step {r.step}"]
    rows = dict(stats_lines(a))
    lines.append(f"mean {rows['mean']}  std {rows['std']}  zeros {rows['zeros']}")
    lines.append(f"min {rows['min']}  max {rows['max']}"
                 + (f"  NaN/Inf {rows['NaN/Inf']}" if "NaN/Inf" in rows else ""))
    if r.gradient is not None:
        g = dict(stats_lines(r.gradient))
        lines.append(f"gradient mean {g['mean']}  std {g['std']}")
    lines.append("I or right-click › Look inside: pin it")
    return "\n".join(lines)


def _rect(item: int) -> list[float] | None:
    """[x0, y0, x1, y1] on the screen of a drawn item (None when it is not drawn)."""
    if not item or not dpg.is_item_shown(item):
        return None
    lo, hi = dpg.get_item_rect_min(item), dpg.get_item_rect_max(item)
    return [lo[0], lo[1], hi[0], hi[1]] if hi[0] > lo[0] else None


def window_rect(window: int) -> list[float] | None:
    """[x0, y0, x1, y1] of a shown window (windows report a position and a size, no rect)."""
    if not window or not dpg.is_item_shown(window):
        return None
    x, y = dpg.get_item_pos(window)
    w, h = dpg.get_item_rect_size(window)
    return [x, y, x + w, y + h] if w else None


def _union(rects: list[list[float] | None]) -> list[float] | None:
    drawn = [r for r in rects if r]
    if not drawn:
        return None
    return [min(r[0] for r in drawn), min(r[1] for r in drawn), max(r[2] for r in drawn),
            max(r[3] for r in drawn)]
