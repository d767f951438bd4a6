"""The block palette: every block of `nodes.REGISTRY`, grouped by category, with a search box.

Each block is a button that is also a drag source (payload type "block", payload the block
type); the editor's canvas accepts the drop and issues `AddNode` where it lands. A button's
tooltip is the block's doc. Clicking a block (no drag) adds it at the middle of the canvas.
The search box filters by type, title, category and doc words; the view keeps its own map
button → block type, so nothing is read back out of tags. A tooltip lists the block's ports
with their shape rules, as `dprog blocks` does.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import dearpygui.dearpygui as dpg

from nodes import BLOCKS, CATEGORIES, lookup
from nodes.control import BODY_INPUT, BODY_OUTPUT
from nodes.spec import BlockSpec, port_text

from .theme import CATEGORY_TITLE, Theme

PAYLOAD = "block"
PALETTE_WRAP = 190
# Blocks that only make sense inside a loop or branch body are listed, but last.
BODY_ONLY = (BODY_INPUT, BODY_OUTPUT)   # by spec kind


def matches(spec: BlockSpec, query: str) -> bool:
    """Every word of the query appears in the block's type, title, category or doc."""
    hay = f"{spec.type} {spec.title} {spec.category} {spec.doc}".lower()
    return all(word in hay for word in query.lower().split())


def ranked(query: str, specs: tuple[BlockSpec, ...] = BLOCKS) -> list[BlockSpec]:
    """Blocks matching `query`, best first: title/type prefix, then title word, then doc."""
    q = query.strip().lower()
    hits = [s for s in specs if matches(s, q)]

    def score(s: BlockSpec) -> tuple[int, int]:
        title, type_ = s.title.lower(), s.type.lower()
        if title.startswith(q) or type_.startswith(q):
            return (0, len(title))
        if q in title or q in type_:
            return (1, len(title))
        return (2, len(title))

    return sorted(hits, key=score) if q else hits


def port_lines(spec: BlockSpec) -> list[str]:
    """"in x: (B, …, in_features)" per port, inputs first: the tooltip's port list."""
    inputs, outputs = port_text(spec)
    return [f"{side} {name}: {doc}" for side, ports in (("in", inputs), ("out", outputs))
            for name, doc in ports]


def suggest(query: str, specs: tuple[BlockSpec, ...] = BLOCKS, n: int = 3) -> list[BlockSpec]:
    """When nothing matches: the blocks whose type or title is nearest the query (a typo,
    "rleu" → ReLU)."""
    q = query.strip().lower()
    if not q:
        return []
    names: dict[str, BlockSpec] = {}
    for spec in specs:
        names.setdefault(spec.type.lower(), spec)
        names.setdefault(spec.title.lower(), spec)
    out: list[BlockSpec] = []
    for name in difflib.get_close_matches(q, names, n=n * 2, cutoff=0.5):
        if all(names[name] is not s for s in out):   # a type and its title are one block
            out.append(names[name])
    return out[:n]


class Palette:
    """The left-hand block list. `on_add(type)` is called for a plain click."""

    def __init__(self, theme: Theme, on_add: Callable[[str], None]) -> None:
        self.theme = theme
        self.on_add = on_add
        self.search = 0
        self.buttons: dict[int, str] = {}          # button → block type
        self.headers: dict[str, int] = {}          # category → collapsing header
        self.by_category: dict[str, list[int]] = {}
        self._button_themes: dict[str, int] = {}          # category → button theme
        self.no_match = 0                                  # "no block matches; did you mean…"

    def build(self, parent: int | str) -> None:
        with dpg.group(parent=parent):
            self.search = dpg.add_input_text(hint="Search blocks…", width=-1,
                                             callback=self._on_search)
            with dpg.tooltip(self.search):
                dpg.add_text("Filter blocks by name, category or description.\n"
                             "Drag a block onto the canvas, or click it to add it in the middle.")
            self.no_match = dpg.add_text("", wrap=PALETTE_WRAP, show=False, color=(140, 144, 154))
            with dpg.child_window(border=False, width=-1, height=-1):
                for category in CATEGORIES:
                    specs = [s for s in BLOCKS if s.category == category]
                    specs.sort(key=lambda s: s.kind in BODY_ONLY)
                    header = dpg.add_collapsing_header(label=f"{category}  ({len(specs)})",
                                                       default_open=category in DEFAULT_OPEN)
                    self.headers[category] = header
                    self.by_category[category] = []
                    for spec in specs:
                        self._add_button(header, spec)

    def _add_button(self, parent: int, spec: BlockSpec) -> None:
        button = dpg.add_button(label=spec.title, parent=parent, width=-1,
                                callback=self._on_click)
        self.buttons[button] = spec.type
        self.by_category[spec.category].append(button)
        dpg.bind_item_theme(button, self._category_button(spec.category))
        with dpg.drag_payload(parent=button, payload_type=PAYLOAD, drag_data=spec.type):
            dpg.add_text(f"+ {spec.title}")
        with dpg.tooltip(button):
            dpg.add_text(f"{spec.title}  ·  {spec.category}", color=CATEGORY_TITLE.get(spec.category,
                                                                                    (200, 200, 200)))
            dpg.add_text(spec.doc, wrap=320)
            for line in port_lines(spec):
                dpg.add_text(line, wrap=320, color=(170, 185, 205))
            if spec.params:
                dpg.add_text("params: " + ", ".join(p.name for p in spec.params), wrap=320,
                             color=(150, 150, 160))

    def _category_button(self, category: str) -> int:
        theme = self._button_themes.get(category)
        if theme is None:
            rgb = CATEGORY_TITLE.get(category, (80, 80, 90))
            base = tuple(int(c * 0.55 + 44 * 0.45) for c in rgb)
            with dpg.theme() as theme:
                with dpg.theme_component(dpg.mvButton):
                    dpg.add_theme_color(dpg.mvThemeCol_Button, base)
                    dpg.add_theme_color(dpg.mvThemeCol_ButtonHovered, rgb)
                    dpg.add_theme_color(dpg.mvThemeCol_ButtonActive, tuple(min(255, c + 30)
                                                                           for c in rgb))
                    dpg.add_theme_style(dpg.mvStyleVar_ButtonTextAlign, 0.0, 0.5)
            self._button_themes[category] = theme
        return theme

    # -- callbacks -------------------------------------------------------------------------

    def _on_click(self, sender: int, app_data: object, user_data: object) -> None:
        block = self.buttons.get(sender)
        if block is not None:
            self.on_add(block)

    def _on_search(self, sender: int, query: str, user_data: object) -> None:
        self.apply_filter(query)

    def apply_filter(self, query: str) -> None:
        q = query.strip()
        total = 0
        for category, buttons in self.by_category.items():
            shown = 0
            for button in buttons:
                visible = not q or matches(lookup(self.buttons[button]), q)
                dpg.configure_item(button, show=visible)
                shown += visible
            dpg.configure_item(self.headers[category], show=shown > 0)
            if q and shown:
                dpg.set_value(self.headers[category], True)   # open the groups with hits
            total += shown
        near = suggest(q) if q and not total else []
        dpg.set_value(self.no_match, "no block matches" + (
            "; did you mean " + " or ".join(s.title for s in near) + "?" if near else ""))
        dpg.configure_item(self.no_match, show=bool(q and not total))

    def text_inputs(self) -> list[int]:
        return [self.search]


DEFAULT_OPEN = ("Data", "Layers", "Activations", "Control")
