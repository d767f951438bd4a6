"""The block palette: every block of `nodes.REGISTRY`, grouped by category, with a search box.

Each block is a button that is also a drag source (payload type "block", payload the block
type); the editor's canvas accepts the drop and issues `AddNode` where it lands. A button's
tooltip is the block's doc. Clicking a block (no drag) adds it at the middle of the canvas.
The search box filters by type, title, category and doc words; the view keeps its own map
button → block type, so nothing is read back out of tags. A tooltip lists the block's ports
with their shape rules, as `dprog blocks` does.

The graph's own functions (issue 12) are listed too, as "ƒ Title" buttons under their
category (a block category's header, or a header of their own; "Functions" when they have
none), with their doc as the tooltip. Their drag payload is a `CallOf(name)` (same payload
type), and a click or drop places a Call of that function. `refresh()` rebuilds them when
the graph's functions change (an edit, an undo, another document): the mapping is compared
by identity first, since every edit that leaves the functions alone shares it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dearpygui.dearpygui as dpg

from engine.core.graph import Function
from nodes import BLOCKS, CATEGORIES, lookup
from nodes.control import BODY_INPUT, BODY_OUTPUT, function_ports
from nodes.spec import BlockSpec, port_text

from .theme import CATEGORY_TITLE, Theme

PAYLOAD = "block"
PALETTE_WRAP = 190
# Blocks that only make sense inside a loop or branch body are listed, but last.
BODY_ONLY = (BODY_INPUT, BODY_OUTPUT)   # by spec kind
FUNCTIONS = "Functions"                # the header of functions without a category
FUNCTION_MARK = "ƒ "                   # before a function's title, wherever it is listed
FUNCTION_COLOR = (150, 104, 200)


@dataclass(frozen=True)
class CallOf:
    """What a function's palette button drags, and a quick-add row picks: a Call of the
    graph's function `function` (a block type is a plain string)."""

    function: str


def function_label(name: str, function: Function,
                   functions: Mapping[str, Function] | None = None) -> str:
    """"ƒ Title"; with the name too when another of `functions` has the same title (a
    library imported renamed keeps its title)."""
    title = function.title or name
    twins = functions is not None and any((f.title or n) == title for n, f in functions.items()
                                          if n != name)
    return FUNCTION_MARK + title + (f" ({name})" if twins else "")


def function_matches(name: str, function: Function, query: str) -> bool:
    """Every word of the query appears in the function's name, title, category or doc."""
    hay = f"{name} {function.title} {function.category} {function.doc} function".lower()
    return all(word in hay for word in query.lower().split())


def ranked_functions(query: str, functions: Mapping[str, Function]) -> list[str]:
    """Function names matching `query`, best first (the blocks' ranking: name/title prefix,
    then inside the name/title, then doc); all of them by name for an empty query."""
    q = query.strip().lower()
    hits = [n for n, f in functions.items() if function_matches(n, f, q)]

    def score(name: str) -> tuple[int, int, str]:
        title = (functions[name].title or name).lower()
        if title.startswith(q) or name.lower().startswith(q):
            return (0, len(title), name)
        if q in title or q in name.lower():
            return (1, len(title), name)
        return (2, len(title), name)

    return sorted(hits, key=score) if q else sorted(hits)


def function_tooltip_lines(name: str, function: Function) -> list[str]:
    """The tooltip under the title: its doc, its ports, how to use it."""
    ins, outs = function_ports(function.body)
    lines = [function.doc or "(no description: set one in the function's inspector)"]
    lines.append("in " + (", ".join(p.name for p in ins) or "none") + "    out "
                 + (", ".join(p.name for p in outs) or "none"))
    lines.append(f"function {name} · {len(function.body.nodes)} blocks in its body · "
                 "drag or click to add a Call (own weights)")
    return lines


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

    def __init__(self, theme: Theme, on_add: Callable[[str], None],
                 functions: Callable[[], Mapping[str, Function]] = dict,
                 on_call: Callable[[str], None] | None = None) -> None:
        self.theme = theme
        self.on_add = on_add
        # The graph's functions, and what a click on one does.
        self.functions = functions
        self.on_call = on_call
        self.function_buttons: dict[int, str] = {}   # button → function name
        self.function_group = 0                      # the headers of function categories
        self._function_headers: dict[str, int] = {}  # category → header (own or a block's)
        self._shown_functions: Mapping[str, Function] | None = None
        self._block_counts: dict[str, int] = {}
        self._query = ""
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
                self.function_group = dpg.add_group()
                for category in CATEGORIES:
                    specs = [s for s in BLOCKS if s.category == category]
                    specs.sort(key=lambda s: s.kind in BODY_ONLY)
                    header = dpg.add_collapsing_header(label=f"{category}  ({len(specs)})",
                                                       default_open=category in DEFAULT_OPEN)
                    self.headers[category] = header
                    self._block_counts[category] = len(specs)
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
        q = self._query = query.strip()
        functions = self._shown_functions or {}
        total = 0
        shown_in: dict[int, int] = {}   # header → buttons shown under it
        for category, buttons in self.by_category.items():
            shown = 0
            for button in buttons:
                visible = not q or matches(lookup(self.buttons[button]), q)
                dpg.configure_item(button, show=visible)
                shown += visible
            shown_in[self.headers[category]] = shown
        for button, name in self.function_buttons.items():
            visible = not q or (name in functions and function_matches(name, functions[name], q))
            dpg.configure_item(button, show=visible)
            header = dpg.get_item_parent(button)
            shown_in[header] = shown_in.get(header, 0) + visible
        for header, shown in shown_in.items():
            dpg.configure_item(header, show=shown > 0)
            if q and shown:
                dpg.set_value(header, True)   # open the groups with hits
            total += shown
        near = suggest(q) if q and not total else []
        dpg.set_value(self.no_match, "no block matches" + (
            "; did you mean " + " or ".join(s.title for s in near) + "?" if near else ""))
        dpg.configure_item(self.no_match, show=bool(q and not total))

    def text_inputs(self) -> list[int]:
        return [self.search]

    # -- the graph's functions -------------------------------------------------------------

    def refresh(self) -> None:
        """List the graph's functions again if they changed since the last call."""
        functions = self.functions()
        if functions is self._shown_functions or (
                self._shown_functions is not None and functions == self._shown_functions):
            self._shown_functions = functions
            return
        self._shown_functions = functions
        for button in self.function_buttons:
            dpg.delete_item(button)
        self.function_buttons.clear()
        dpg.delete_item(self.function_group, children_only=True)
        self._function_headers = {}
        order = sorted(functions, key=lambda n: (functions[n].category or FUNCTIONS,
                                                 (functions[n].title or n).lower(), n))
        for name in order:
            self._add_function(name, functions[name], functions)
        for category, header in self.headers.items():
            extra = sum(1 for b in self.function_buttons if dpg.get_item_parent(b) == header)
            dpg.configure_item(header, label=f"{category}  ({self._block_counts[category] + extra})")
        for category, header in self._function_headers.items():
            if category not in self.headers:
                n = sum(1 for b in self.function_buttons if dpg.get_item_parent(b) == header)
                dpg.configure_item(header, label=f"{category}  ({n})")
        self.apply_filter(self._query)

    def _add_function(self, name: str, function: Function,
                      functions: Mapping[str, Function]) -> None:
        category = function.category or FUNCTIONS
        header = self.headers.get(category) or self._function_headers.get(category)
        before = 0
        if header is None:
            header = dpg.add_collapsing_header(label=category, parent=self.function_group,
                                               default_open=True)
        elif category in self.headers:   # a block category: the user's own come first
            before = next((b for b in self.by_category[category] if dpg.does_item_exist(b)), 0)
        self._function_headers[category] = header
        label = function_label(name, function, functions)
        button = dpg.add_button(label=label, parent=header, width=-1,
                                callback=self._on_function_click, before=before)
        self.function_buttons[button] = name
        dpg.bind_item_theme(button, self._function_button())
        with dpg.drag_payload(parent=button, payload_type=PAYLOAD, drag_data=CallOf(name)):
            dpg.add_text(f"+ {label}")
        with dpg.tooltip(button):
            dpg.add_text(f"{label}  ·  {category}", color=FUNCTION_COLOR)
            for i, line in enumerate(function_tooltip_lines(name, function)):
                dpg.add_text(line, wrap=320, color=None if i == 0 else (170, 185, 205))

    def _function_button(self) -> int:
        theme = self._button_themes.get(FUNCTION_MARK)
        if theme is None:
            rgb = FUNCTION_COLOR
            with dpg.theme() as theme:
                with dpg.theme_component(dpg.mvButton):
                    dpg.add_theme_color(dpg.mvThemeCol_Button,
                                        tuple(int(c * 0.55 + 44 * 0.45) for c in rgb))
                    dpg.add_theme_color(dpg.mvThemeCol_ButtonHovered, rgb)
                    dpg.add_theme_color(dpg.mvThemeCol_ButtonActive,
                                        tuple(min(255, c + 30) for c in rgb))
                    dpg.add_theme_style(dpg.mvStyleVar_ButtonTextAlign, 0.0, 0.5)
            self._button_themes[FUNCTION_MARK] = theme
        return theme

    def _on_function_click(self, sender: int, app_data: object, user_data: object) -> None:
        name = self.function_buttons.get(sender)
        if name is not None and self.on_call is not None:
            self.on_call(name)


DEFAULT_OPEN = ("Data", "Layers", "Activations", "Control")
