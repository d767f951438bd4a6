"""The studio's look: one dark theme, fonts, and the small fixed sets of item themes.

Every theme here is built once, at start-up, and then only bound and unbound: per-node
title colours (by category, severity and gradient flag) and the eight gradient-flow link
themes. Views ask for them by meaning (`Theme.node_title("error")`, `Theme.link(bucket)`),
never by building a theme of their own per item.
"""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg

# -- colours (RGB(A) 0..255) ---------------------------------------------------------------

BG = (24, 25, 28)
PANEL = (30, 31, 35)
PANEL_ALT = (37, 38, 43)
FRAME = (44, 46, 52)
FRAME_HOVER = (56, 59, 67)
FRAME_ACTIVE = (66, 70, 80)
BORDER = (52, 54, 61)
TEXT = (222, 224, 228)
TEXT_DIM = (140, 144, 154)
ACCENT = (86, 156, 255)
ACCENT_DIM = (54, 98, 170)
GRID_BG = (28, 29, 33)
GRID_LINE = (40, 42, 48)
NODE_BG = (44, 46, 53)
NODE_BG_HOVER = (50, 53, 61)
NODE_BG_SELECTED = (56, 60, 72)
LINK = (150, 156, 170)
ERROR = (224, 80, 80)
WARNING = (230, 168, 60)
INFO = (120, 170, 230)
OK = (110, 200, 130)

SEVERITY_TEXT = {"error": ERROR, "warning": WARNING, "info": INFO}

# Title bars by block category: muted hues, none of them red or amber (those mean trouble).
CATEGORY_TITLE = {
    "Data": (52, 110, 112),
    "Layers": (58, 88, 150),
    "Recurrent": (98, 76, 150),
    "Pooling": (44, 112, 140),
    "Normalization": (70, 116, 84),
    "Activations": (84, 96, 118),
    "Shape": (86, 92, 104),
    "Math": (112, 82, 132),
    "Random": (96, 112, 62),
    "Losses": (140, 70, 110),
    "Control": (40, 126, 110),
}
SEVERITY_TITLE = {"error": (176, 52, 56), "warning": (168, 118, 32)}
FLAG_TITLE = (150, 60, 160)   # a gradient-flow problem: vanishing, exploding, dead ReLU

# Eight link buckets on a log scale, cold (little gradient) to hot (a lot).
LINK_BUCKETS = (
    ((70, 84, 130), 1.5),
    ((64, 116, 178), 2.0),
    ((58, 150, 200), 2.5),
    ((70, 182, 180), 3.0),
    ((120, 200, 120), 3.6),
    ((210, 200, 80), 4.2),
    ((240, 150, 60), 5.0),
    ((250, 90, 70), 6.0),
)
LINK_COLD_COLOR = (95, 100, 112)   # while training, a wire with no gradient sample yet

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/segoeui.ttf",
)
MONO_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
    "C:/Windows/Fonts/consola.ttf",
)


def _first_existing(paths: tuple[str, ...]) -> str | None:
    return next((p for p in paths if Path(p).is_file()), None)


def _rgba(rgb: tuple[int, ...], alpha: int = 255) -> tuple[int, int, int, int]:
    return (rgb[0], rgb[1], rgb[2], rgb[3] if len(rgb) > 3 else alpha)


def _lighter(rgb: tuple[int, ...], amount: int = 22) -> tuple[int, int, int]:
    return tuple(min(255, c + amount) for c in rgb[:3])  # type: ignore[return-value]


class Theme:
    """Fonts and themes, built once per Dear PyGui context."""

    def __init__(self) -> None:
        self.font: int | None = None
        self.mono: int | None = None
        self.small: int | None = None
        self.global_theme = 0
        self._title_rgb: dict[str, tuple[int, int, int]] = {}
        self._nodes: dict[tuple[str, bool], int] = {}
        self._links: list[int] = []
        self._link_cold = 0
        self._text: dict[str, int] = {}
        self.code_highlight = 0
        self.plot_theme = 0
        self.primary_button = 0
        self.danger_button = 0

    # -- building ----------------------------------------------------------------------

    def build(self) -> Theme:
        self._build_fonts()
        self._build_global()
        self._title_rgb = {**CATEGORY_TITLE, **SEVERITY_TITLE, "flag": FLAG_TITLE,
                           "default": CATEGORY_TITLE["Shape"]}
        for key in self._title_rgb:     # built up front: themes are never made mid-session
            self.node(key, False)
            self.node(key, True)
        for rgb, thickness in LINK_BUCKETS:
            self._links.append(self._link_theme(rgb, thickness))
        self._link_cold = self._link_theme(LINK_COLD_COLOR, 1.5)
        for name, rgb in (("dim", TEXT_DIM), ("accent", ACCENT), ("ok", OK), *SEVERITY_TEXT.items()):
            with dpg.theme() as t:
                with dpg.theme_component(dpg.mvAll):
                    dpg.add_theme_color(dpg.mvThemeCol_Text, rgb)
            self._text[name] = t
        with dpg.theme() as self.code_highlight:
            with dpg.theme_component(dpg.mvAll):
                dpg.add_theme_color(dpg.mvThemeCol_Text, (255, 214, 120))
        self.primary_button = self._button_theme(ACCENT_DIM)
        self.danger_button = self._button_theme((150, 56, 60))
        return self

    def _build_fonts(self) -> None:
        regular, mono = _first_existing(FONT_CANDIDATES), _first_existing(MONO_CANDIDATES)
        with dpg.font_registry():
            if regular:   # Dear PyGui 2 loads the glyphs a text needs by itself
                self.font = dpg.add_font(regular, 16)
                self.small = dpg.add_font(regular, 13)
            if mono:
                self.mono = dpg.add_font(mono, 15)
        if self.font:
            dpg.bind_font(self.font)

    def _build_global(self) -> None:
        with dpg.theme() as self.global_theme:
            with dpg.theme_component(dpg.mvAll):
                c = dpg.add_theme_color
                s = dpg.add_theme_style
                c(dpg.mvThemeCol_WindowBg, PANEL)
                c(dpg.mvThemeCol_ChildBg, PANEL)
                c(dpg.mvThemeCol_PopupBg, _rgba(PANEL_ALT, 250))
                c(dpg.mvThemeCol_MenuBarBg, BG)
                c(dpg.mvThemeCol_Border, BORDER)
                c(dpg.mvThemeCol_Text, TEXT)
                c(dpg.mvThemeCol_TextDisabled, TEXT_DIM)
                c(dpg.mvThemeCol_FrameBg, FRAME)
                c(dpg.mvThemeCol_FrameBgHovered, FRAME_HOVER)
                c(dpg.mvThemeCol_FrameBgActive, FRAME_ACTIVE)
                c(dpg.mvThemeCol_TitleBg, BG)
                c(dpg.mvThemeCol_TitleBgActive, BG)
                c(dpg.mvThemeCol_Button, FRAME)
                c(dpg.mvThemeCol_ButtonHovered, FRAME_HOVER)
                c(dpg.mvThemeCol_ButtonActive, ACCENT_DIM)
                c(dpg.mvThemeCol_Header, FRAME)
                c(dpg.mvThemeCol_HeaderHovered, FRAME_HOVER)
                c(dpg.mvThemeCol_HeaderActive, _rgba(ACCENT_DIM, 200))
                c(dpg.mvThemeCol_Tab, PANEL)
                c(dpg.mvThemeCol_TabHovered, FRAME_HOVER)
                c(dpg.mvThemeCol_TabActive, FRAME)
                c(dpg.mvThemeCol_TabUnfocused, PANEL)
                c(dpg.mvThemeCol_TabUnfocusedActive, FRAME)
                c(dpg.mvThemeCol_CheckMark, ACCENT)
                c(dpg.mvThemeCol_SliderGrab, ACCENT)
                c(dpg.mvThemeCol_PlotHistogram, ACCENT)
                c(dpg.mvThemeCol_Separator, BORDER)
                c(dpg.mvThemeCol_ScrollbarBg, PANEL)
                c(dpg.mvThemeCol_ScrollbarGrab, FRAME_HOVER)
                c(dpg.mvThemeCol_ResizeGrip, FRAME)
                c(dpg.mvThemeCol_DragDropTarget, ACCENT)
                c(dpg.mvThemeCol_ModalWindowDimBg, (0, 0, 0, 120))
                s(dpg.mvStyleVar_WindowPadding, 10, 8)
                s(dpg.mvStyleVar_FramePadding, 7, 4)
                s(dpg.mvStyleVar_ItemSpacing, 8, 6)
                s(dpg.mvStyleVar_FrameRounding, 4)
                s(dpg.mvStyleVar_WindowRounding, 0)
                s(dpg.mvStyleVar_ChildRounding, 4)
                s(dpg.mvStyleVar_PopupRounding, 4)
                s(dpg.mvStyleVar_TabRounding, 4)
                s(dpg.mvStyleVar_GrabRounding, 4)
                s(dpg.mvStyleVar_ScrollbarSize, 12)
                s(dpg.mvStyleVar_WindowBorderSize, 0)
                s(dpg.mvStyleVar_ChildBorderSize, 1)
                # node editor
                n = dpg.mvThemeCat_Nodes
                c(dpg.mvNodeCol_GridBackground, GRID_BG, category=n)
                c(dpg.mvNodeCol_GridLine, GRID_LINE, category=n)
                c(dpg.mvNodeCol_NodeBackground, NODE_BG, category=n)
                c(dpg.mvNodeCol_NodeBackgroundHovered, NODE_BG_HOVER, category=n)
                c(dpg.mvNodeCol_NodeBackgroundSelected, NODE_BG_SELECTED, category=n)
                c(dpg.mvNodeCol_NodeOutline, (70, 74, 84), category=n)
                c(dpg.mvNodeCol_Link, LINK, category=n)
                c(dpg.mvNodeCol_LinkHovered, (220, 224, 235), category=n)
                c(dpg.mvNodeCol_LinkSelected, (255, 255, 255), category=n)
                c(dpg.mvNodeCol_Pin, (170, 176, 190), category=n)
                c(dpg.mvNodeCol_PinHovered, ACCENT, category=n)
                c(dpg.mvNodeCol_BoxSelector, _rgba(ACCENT, 40), category=n)
                c(dpg.mvNodeCol_BoxSelectorOutline, _rgba(ACCENT, 160), category=n)
                s(dpg.mvNodeStyleVar_NodeCornerRounding, 5, category=n)
                s(dpg.mvNodeStyleVar_LinkThickness, 2.2, category=n)
                s(dpg.mvNodeStyleVar_PinCircleRadius, 4.5, category=n)
                s(dpg.mvNodeStyleVar_GridSpacing, 32, category=n)
                # plots
                p = dpg.mvThemeCat_Plots
                c(dpg.mvPlotCol_FrameBg, PANEL, category=p)
                c(dpg.mvPlotCol_PlotBg, (26, 27, 31), category=p)
                c(dpg.mvPlotCol_PlotBorder, BORDER, category=p)
                c(dpg.mvPlotCol_LegendBg, _rgba(PANEL_ALT, 220), category=p)
        dpg.bind_theme(self.global_theme)

    @staticmethod
    def _title_theme(rgb: tuple[int, int, int], *, outline: bool = False) -> int:
        with dpg.theme() as t:
            with dpg.theme_component(dpg.mvNode):
                n = dpg.mvThemeCat_Nodes
                dpg.add_theme_color(dpg.mvNodeCol_TitleBar, rgb, category=n)
                dpg.add_theme_color(dpg.mvNodeCol_TitleBarHovered, _lighter(rgb, 18), category=n)
                dpg.add_theme_color(dpg.mvNodeCol_TitleBarSelected, _lighter(rgb, 36), category=n)
                if outline:
                    dpg.add_theme_color(dpg.mvNodeCol_NodeOutline, ACCENT, category=n)
                    dpg.add_theme_style(dpg.mvNodeStyleVar_NodeBorderThickness, 2.0, category=n)
        return t

    @staticmethod
    def _link_theme(rgb: tuple[int, int, int], thickness: float) -> int:
        with dpg.theme() as t:
            with dpg.theme_component(dpg.mvNodeLink):
                n = dpg.mvThemeCat_Nodes
                dpg.add_theme_color(dpg.mvNodeCol_Link, rgb, category=n)
                dpg.add_theme_color(dpg.mvNodeCol_LinkHovered, _lighter(rgb, 40), category=n)
                dpg.add_theme_style(dpg.mvNodeStyleVar_LinkThickness, thickness, category=n)
        return t

    @staticmethod
    def _button_theme(rgb: tuple[int, int, int]) -> int:
        with dpg.theme() as t:
            with dpg.theme_component(dpg.mvButton):
                dpg.add_theme_color(dpg.mvThemeCol_Button, rgb)
                dpg.add_theme_color(dpg.mvThemeCol_ButtonHovered, _lighter(rgb, 20))
                dpg.add_theme_color(dpg.mvThemeCol_ButtonActive, _lighter(rgb, 40))
        return t

    # -- lookups -------------------------------------------------------------------------

    def node(self, key: str, selected: bool = False) -> int:
        """A node theme: title bar by `key` (a category, "error", "warning", "flag" or
        "default"), with an accent outline when the node is in the state's selection."""
        key = key if key in self._title_rgb else "default"
        theme = self._nodes.get((key, selected))
        if theme is None:
            theme = self._title_theme(self._title_rgb[key], outline=selected)
            self._nodes[(key, selected)] = theme
        return theme

    def link(self, bucket: int | None) -> int:
        """The theme for gradient bucket 0..7; None gives the 'no sample yet' theme."""
        if bucket is None:
            return self._link_cold
        return self._links[max(0, min(len(self._links) - 1, bucket))]

    def text(self, name: str) -> int:
        """Text colour themes: "dim", "accent", "ok", "error", "warning", "info"."""
        return self._text[name]
