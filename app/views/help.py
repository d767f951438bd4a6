"""Help inside the studio: Help › Getting started, and what each panel is for.

`GettingStarted` is a small window beside the work, not a modal: a first model in six
steps (two moons, the default dataset of a new graph), each ticked off as the studio's own
state shows it done, so it can be followed with the window open. The checks read the
graph as data (an Input's shape, the analysis, the dataset-fit problems, the run's status)
and never a block's type.

`PANEL_TIPS` is each panel's purpose; `PanelTips` shows it, like a tooltip, while the mouse
rests on the panel's tab or title.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dearpygui.dearpygui as dpg

from nodes import lookup

from ..state import AppState
from ..training import FINISHED, TrainingRun
from .theme import OK, TEXT, TEXT_DIM

PANEL_TIPS = {
    "blocks": "The block library. Drag a block onto the canvas, click it to add it in the "
              "middle, or press Space on the canvas and type its name.",
    "inspector": "The selected block: its params (each with its range as a tooltip), its "
                 "ports and shapes, its problems. With nothing selected: the whole model.",
    "settings": "How the graph trains: dataset, loss, optimizer, learning rate, batch size, "
                "epochs, seed. Saved in the graph file.",
    "code": "The PyTorch module this graph becomes, regenerated as you edit. Export writes it.",
    "problems": "Every error and warning, here and inside loop and branch bodies. Click one "
                "to go to its block.",
    "metrics": "The run: loss and accuracy as it trains, and the data: the points with the "
               "decision boundary forming under them, images, or a sequence.",
    "gradients": "How much gradient reaches each block (bars), and over time (heatmap). "
                 "Select a wire or a block for its history.",
}


@dataclass(frozen=True)
class Step:
    text: str
    done: Callable[[AppState, TrainingRun], bool]


def _input_shape_2(state: AppState, run: TrainingRun) -> bool:
    graph = state.graph
    return any(lookup(n.type) is not None and lookup(n.type).kind == "input"
               and (t := state.analysis.outputs.get(n.id, {}).get("y")) is not None
               and tuple(t.shape[1:]) == (2,) for n in graph.nodes)


def _wired(state: AppState, run: TrainingRun) -> bool:
    kinds = {lookup(n.type).kind for n in state.graph.nodes if lookup(n.type) is not None}
    return {"input", "output"} <= kinds and state.analysis.ok


def _fits(state: AppState, run: TrainingRun) -> bool:
    return _wired(state, run) and state.dataset is not None and not state.data_problems


STEPS = (
    Step("Start from an empty graph: File › New (Ctrl+N). A new graph trains on two moons, "
         "points in 2-D from two classes.", lambda s, r: "untitled" in s.title),
    Step("Add an Input: drag it from Blocks › Data onto the canvas, or press Space on the "
         "canvas and type input. Set its shape to 2 in the Inspector: each sample is 2 numbers.",
         _input_shape_2),
    Step("Add a Linear, a ReLU, another Linear and an Output the same way, then wire them in "
         "a row: drag from an output pin (right) to an input pin (left). Each port shows its "
         "shape, e.g. (B, 16).", _wired),
    Step("Set the last Linear's out_features to 2, one score per class. Until it fits the "
         "data, the Output is flagged under Problems.", _fits),
    Step("Press Train (F5). The loss falls, and under Training the decision boundary forms "
         "under the points.", lambda s, r: r.status == FINISHED or r.step > 0),
    Step("Look at the Gradient flow tab and the wires' colours, the Code tab for the "
         "PyTorch, and Export › All to a folder for model.py, weights and train.py.",
         lambda s, r: r.status == FINISHED),
)


class GettingStarted:
    def __init__(self, state: AppState, run: TrainingRun) -> None:
        self.state, self.run = state, run
        self.window = 0
        self.marks: list[int] = []
        self.done: list[bool] = [False] * len(STEPS)
        self._key: tuple | None = None

    def build(self) -> None:
        with dpg.window(label="Getting started: your first model", show=False, width=420,
                        height=480, pos=(1150, 50), no_saved_settings=True) as self.window:
            dpg.add_text("Build, train and look inside a small classifier. Each step is "
                         "ticked off when the studio sees it done.", wrap=390, color=TEXT_DIM)
            dpg.add_spacer(height=4)
            for i, step in enumerate(STEPS):
                with dpg.group(horizontal=True):
                    self.marks.append(dpg.add_text(f"{i + 1}.", color=TEXT_DIM))
                    dpg.add_text(step.text, wrap=360)
            dpg.add_spacer(height=4)
            dpg.add_text("Help › Keyboard shortcuts lists the keys; every panel's tab says "
                         "what it is for when you rest the mouse on it.", wrap=390,
                         color=TEXT_DIM)

    @property
    def visible(self) -> bool:
        return bool(self.window) and dpg.is_item_shown(self.window)

    def show(self) -> None:
        dpg.configure_item(self.window, show=True)
        dpg.focus_item(self.window)
        self._key = None

    def refresh(self) -> None:
        """While shown: tick off the steps done (when the state or the run moved)."""
        if not self.visible:
            return
        key = (self.state.version, self.run.status, self.run.step > 0)
        if key == self._key:
            return
        self._key = key
        for i, step in enumerate(STEPS):
            done = step.done(self.state, self.run)
            if done != self.done[i]:
                self.done[i] = done
                dpg.configure_item(self.marks[i], default_value="✓ " if done else f"{i + 1}.",
                                   color=OK if done else TEXT_DIM)
        first_open = next((i for i, d in enumerate(self.done) if not d), None)
        for i, mark in enumerate(self.marks):   # the next step to do stands out
            if not self.done[i]:
                dpg.configure_item(mark, color=TEXT if i == first_open else TEXT_DIM)


class PanelTips:
    """Each panel's purpose, shown like a tooltip while the mouse rests on its tab or title.

    Not `dpg.tooltip`: Dear PyGui draws a tab's tooltip after the tab's contents, so the
    selected tab (the one showing its contents) never shows one. This checks whether each
    tab is hovered, every frame (a few state reads), and shows one small window by the
    mouse after it has rested there `DELAY` frames."""

    DELAY = 8

    def __init__(self) -> None:
        self.items: dict[str, int] = {}   # panel key → its tab or title
        self.window = 0
        self.text = 0
        self.showing: str | None = None   # the key whose tip is on screen
        self._hovered: tuple[str | None, int] = (None, 0)

    def build(self, items: dict[str, int]) -> None:
        self.items = dict(items)
        with dpg.window(show=False, no_title_bar=True, no_resize=True, no_move=True,
                        no_collapse=True, no_saved_settings=True, autosize=True,
                        no_focus_on_appearing=True, no_bring_to_front_on_focus=False,
                        no_scrollbar=True) as self.window:
            self.text = dpg.add_text("", wrap=340)

    def step(self) -> None:
        hovered = next((key for key, item in self.items.items()
                        if dpg.get_item_state(item).get("hovered")), None)
        key, frames = self._hovered
        self._hovered = (hovered, frames + 1 if hovered == key else 0)
        if hovered is None or self._hovered[1] < self.DELAY:
            if self.showing is not None and hovered != self.showing:
                dpg.configure_item(self.window, show=False)
                self.showing = None
            return
        if self.showing != hovered:
            x, y = dpg.get_mouse_pos(local=False)
            dpg.set_value(self.text, PANEL_TIPS[hovered])
            dpg.configure_item(self.window, pos=(int(x) + 14, int(y) + 20), show=True)
            self.showing = hovered


__all__ = ["PANEL_TIPS", "STEPS", "GettingStarted", "PanelTips"]
