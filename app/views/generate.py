"""The "Generate text" window: a prompt, how much to write and how boldly, and the text a
trained character model writes after the prompt.

The window only gathers what to do and shows what came back: pressing Generate calls
`on_generate(prompt, length, temperature)`, and the studio runs the model on a worker thread
(`app.training.TextJob`), then hands the result to `show_text` or `show_error`.
"""

from __future__ import annotations

from collections.abc import Callable

import dearpygui.dearpygui as dpg

from .theme import ERROR, TEXT_DIM, Theme

WIDTH, HEIGHT = 620, 420


class GenerateWindow:
    def __init__(self, theme: Theme, on_generate: Callable[[str, int, float], None]) -> None:
        self.theme = theme
        self.on_generate = on_generate
        self.window = self.prompt = self.length = self.temperature = 0
        self.button = self.status = self.output = 0
        self.busy = False

    def build(self) -> None:
        with dpg.window(label="Generate text", show=False, width=WIDTH, height=HEIGHT,
                        no_saved_settings=True) as self.window:
            dpg.add_text("Continue a prompt with the trained character model.", color=TEXT_DIM)
            with dpg.table(header_row=False, policy=dpg.mvTable_SizingStretchProp):
                dpg.add_table_column(width_fixed=True, init_width_or_weight=100)
                dpg.add_table_column()
                with dpg.table_row():
                    dpg.add_text("prompt")
                    self.prompt = dpg.add_input_text(width=-1, default_value="The ",
                                                     on_enter=True, callback=self._generate)
                with dpg.table_row():
                    dpg.add_text("characters")
                    self.length = dpg.add_input_int(width=-1, default_value=200, min_value=1,
                                                    max_value=5000, min_clamped=True,
                                                    max_clamped=True)
                with dpg.table_row():
                    dpg.add_text("temperature")
                    self.temperature = dpg.add_input_float(width=-1, default_value=0.8, step=0,
                                                           min_value=0.0, max_value=5.0,
                                                           min_clamped=True, max_clamped=True,
                                                           format="%.2f")
            with dpg.group(horizontal=True):
                self.button = dpg.add_button(label="Generate", width=110, callback=self._generate)
                dpg.bind_item_theme(self.button, self.theme.primary_button)
                self.status = dpg.add_text("", color=TEXT_DIM)
            self.output = dpg.add_input_text(multiline=True, readonly=True, width=-1, height=-1,
                                             tab_input=False)
        for widget, tip in ((self.temperature, "0 always takes the likeliest character; higher "
                                               "values take more chances"),
                            (self.length, "how many characters to write after the prompt")):
            with dpg.tooltip(widget):
                dpg.add_text(tip)

    @property
    def shown(self) -> bool:
        return bool(self.window) and dpg.is_item_shown(self.window)

    def show(self) -> None:
        vw = dpg.get_viewport_client_width() or 1600
        dpg.configure_item(self.window, show=True, pos=(max(0, (vw - WIDTH) // 2), 120))
        dpg.focus_item(self.prompt)

    def text_inputs(self) -> list[int]:
        return [self.prompt, self.length, self.temperature]

    def _generate(self, *args: object) -> None:
        if self.busy:
            return
        self.on_generate(dpg.get_value(self.prompt), int(dpg.get_value(self.length)),
                         float(dpg.get_value(self.temperature)))

    def set_busy(self, text: str) -> None:
        self.busy = True
        dpg.configure_item(self.button, enabled=False)
        dpg.configure_item(self.status, default_value=text, color=TEXT_DIM)

    def show_text(self, prompt: str, text: str) -> None:
        self._done("")
        dpg.set_value(self.output, prompt + text)

    def show_error(self, text: str) -> None:
        self._done(text)

    def _done(self, error: str) -> None:
        self.busy = False
        dpg.configure_item(self.button, enabled=True)
        dpg.configure_item(self.status, default_value=error, color=ERROR if error else TEXT_DIM)
