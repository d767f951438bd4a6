"""The inspector: widgets generated from the selected block's `BlockSpec` params.

Each param's kind describes its widget as data (`nodes.params.Widget`); `CONTROLS` here
turns that into Dear PyGui: "int" → input_int (not clamped: an out-of-range value is
refused by the command, with the reason under the widget), "float" →
input_float, "checkbox", "combo", "text" → input_text (a shape's text is read back as a
list of ints by its kind). Each widget's tooltip is the param's doc and range. Text-like widgets commit on Enter or when
they lose focus (never per keystroke); checkboxes and combos commit on change. Every commit
is a `SetParam`/`SetLabel` command; a refused one resets the widget and shows the reason
under it.

The panel is rebuilt only when the inspected block changes (another node, another region,
new ports); otherwise values are patched in place, and never while the user types in them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dearpygui.dearpygui as dpg

from engine.core.graph import Node
from nodes import lookup
from nodes.params import Widget
from nodes.spec import BlockSpec, Param

from ..commands import RenameGraph, SetLabel, SetParam
from ..state import AppState
from .editor import fmt_count
from .theme import CATEGORY_TITLE, SEVERITY_TEXT, TEXT_DIM, Theme

TABLE_ROWS = 200


def _range_text(p: Param) -> str:
    if p.choices:
        return "one of " + ", ".join(p.choices)
    lo = "" if p.min is None else _number(p.min)
    hi = "" if p.max is None else _number(p.max)
    return f"range [{lo}, {hi}]" if lo or hi else ""


def _number(x: float) -> str:
    """1048576 → "1,048,576" (not "1.04858e+06"); other numbers as %g."""
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


class Inspector:
    def __init__(self, state: AppState, theme: Theme, *,
                 open_body: Callable[[str, str], None]) -> None:
        self.state = state
        self.theme = theme
        self.open_body = open_body
        self.root = 0
        self._key: tuple | None = None
        self._node: Node | None = None
        self.widgets: dict[str, tuple[int, Param]] = {}     # param name → (widget, param)
        self.errors: dict[str, int] = {}                     # param name → error text item
        self.texts: list[int] = []                           # text inputs (for "is typing")
        self.body_buttons: dict[int, tuple[str, str]] = {}   # "Open body" → (node id, region)
        self._label = 0
        self._ports = 0
        self._diags = 0
        self._summary = 0
        self._handlers = 0
        self._facts = 0
        self._fact_key: tuple | None = None
        self._table = 0
        self._table_for: tuple | None = None
        self.port_lines: list[str] = []                      # the Ports section, as shown

    def build(self, parent: int | str) -> None:
        self.root = dpg.add_group(parent=parent)
        with dpg.item_handler_registry() as self._handlers:
            dpg.add_item_deactivated_after_edit_handler(callback=self._on_commit)

    # -- refresh -----------------------------------------------------------------------------

    def refresh(self) -> None:
        state = self.state
        here = state.current_graph()
        node = here.get(next(iter(state.selection))) if len(state.selection) == 1 else None
        if node is None:
            key = ("none", state.region, len(state.selection), state.graph.name)
        else:
            spec = lookup(node.type)
            key = ("node", state.region, node.id, node.type, node.label,
                   _ports(spec, node) if spec else ())
        if key != self._key:
            self._key = key
            self._rebuild(node)
        elif node is not None:
            self._patch(node)
        if node is None:
            self._refresh_summary()
        else:
            self._refresh_node_facts(node)
        self._node = node

    def _clear(self) -> None:
        dpg.delete_item(self.root, children_only=True)
        self.widgets.clear()
        self.errors.clear()
        self.texts.clear()
        self.body_buttons.clear()
        self._label = self._ports = self._diags = self._summary = self._table = 0

    def _rebuild(self, node: Node | None) -> None:
        self._clear()
        if node is None:
            self._build_summary()
            return
        spec = lookup(node.type)
        p = self.root
        if spec is None:
            dpg.add_text(f"{node.id}: unknown block type {node.type!r}", parent=p,
                         color=SEVERITY_TEXT["error"])
            return
        dpg.add_text(spec.title, parent=p, color=CATEGORY_TITLE.get(spec.category, (200, 200, 200)))
        dpg.add_text(spec.doc, parent=p, wrap=380, color=TEXT_DIM)
        if spec.regions:
            with dpg.group(parent=p, horizontal=True):
                for region in spec.regions:
                    button = dpg.add_button(label=f"Open {region} »", callback=self._on_open,
                                            user_data=(node.id, region))
                    self.body_buttons[button] = (node.id, region)
        dpg.add_separator(parent=p)
        with dpg.table(parent=p, header_row=False, policy=dpg.mvTable_SizingStretchProp):
            dpg.add_table_column(width_fixed=True, init_width_or_weight=110)
            dpg.add_table_column()
            with dpg.table_row():
                dpg.add_text("id")
                dpg.add_text(node.id, color=TEXT_DIM)
            with dpg.table_row():
                dpg.add_text("label")
                self._label = dpg.add_input_text(default_value=node.label, hint=node.id, width=-1,
                                                 on_enter=True, callback=self._on_label)
                dpg.bind_item_handler_registry(self._label, self._handlers)
                self.texts.append(self._label)
            for param in spec.params:
                self._param_row(param, node.params.get(param.name, param.default))
        dpg.add_separator(parent=p)
        dpg.add_text("Ports", parent=p, color=TEXT_DIM)
        self._ports = dpg.add_group(parent=p)
        self._facts = dpg.add_text("", parent=p)
        self._diags = dpg.add_group(parent=p)
        self._fact_key = None

    def _param_row(self, param: Param, value: Any) -> None:
        with dpg.table_row():
            dpg.add_text(param.name)
            with dpg.group():
                widget = self._widget(param, value)
                err = dpg.add_text("", color=SEVERITY_TEXT["error"], wrap=260, show=False)
        self.widgets[param.name] = (widget, param)
        self.errors[param.name] = err
        with dpg.tooltip(widget):
            dpg.add_text(f"{param.name} ({param.kind})")
            if param.doc:
                dpg.add_text(param.doc, wrap=320)
            extra = _range_text(param)
            default = param.kind_row.text(param.default)
            dpg.add_text(f"default {default}" + (f" · {extra}" if extra else ""), color=TEXT_DIM)

    def _widget(self, param: Param, value: Any) -> int:
        row = param.kind_row
        widget = row.widget(param)
        add, typed = CONTROLS[widget.control]
        w = add(widget, row.to_widget(value), callback=self._on_value, user_data=param.name)
        if typed:   # commits on Enter or when it loses focus, never per keystroke
            dpg.bind_item_handler_registry(w, self._handlers)
            self.texts.append(w)
        return w

    def _patch(self, node: Node) -> None:
        """Same block, new values (an undo, or our own commit): update idle widgets."""
        if node is self._node:
            return
        for name, (widget, param) in self.widgets.items():
            self._show_value(widget, param, node.params.get(name, param.default))

    @staticmethod
    def _show_value(widget: int, param: Param, value: Any) -> None:
        value = param.kind_row.to_widget(value)
        # Never overwrite what the user is typing (asked only when the value differs: item
        # state queries are the slow ones).
        if dpg.get_value(widget) != value and not dpg.is_item_active(widget):
            dpg.set_value(widget, value)

    def _refresh_node_facts(self, node: Node) -> None:
        state = self.state
        ins, outs = state.port_types(node.id)
        count = state.param_count(node.id)
        diags = state.diagnostics_for(node.id)
        key = (state.analysis, state.diagnostics, node)
        if key == self._fact_key:
            return
        self._fact_key = key
        dpg.delete_item(self._ports, children_only=True)
        spec = lookup(node.type)
        port_in, port_out = _ports(spec, node) if spec else ((), ())
        self.port_lines = []
        # An input's type is known only once its block checks out (an Add with one operand
        # does not); the wire feeding it, and what comes along it, are known regardless.
        feeds = {e.dst[1]: e.src for e in state.current_graph().edges if e.dst[0] == node.id}
        for name in port_in:
            t = ins.get(name)
            src = feeds.get(name)
            if src is None:
                text = "(not connected)"
            else:
                t = t if t is not None else state.port_types(src[0])[1].get(src[1])
                text = f"{t if t is not None else '(shape unknown)'}  ← {src[0]}.{src[1]}"
            self.port_lines.append(f"  in   {name}  {text}")
        for name in port_out:
            t = outs.get(name)
            self.port_lines.append(f"  out  {name}  {t if t is not None else '?'}")
        for line in self.port_lines:
            dpg.add_text(line, parent=self._ports)
        if spec is not None and spec.count is None and not spec.regions:
            facts = "Parameters: none (this block has no weights)"
        elif count is not None:
            facts = f"Parameters: {count:,}"
        else:
            facts = "Parameters: unknown until its inputs are connected"
        dpg.set_value(self._facts, facts)
        dpg.delete_item(self._diags, children_only=True)
        for d in diags:
            dpg.add_text(f"{d.severity}: {d.message}", parent=self._diags, wrap=380,
                         color=SEVERITY_TEXT.get(d.severity, TEXT_DIM))

    # -- nothing / several selected ------------------------------------------------------------

    def _build_summary(self) -> None:
        p = self.root
        state = self.state
        if len(state.selection) > 1:
            dpg.add_text(f"{len(state.selection)} blocks selected", parent=p)
            dpg.add_text("Ctrl+C copy · Ctrl+D duplicate · Del delete", parent=p, color=TEXT_DIM)
        else:
            dpg.add_text("Model", parent=p, color=(150, 190, 255))
            with dpg.group(parent=p, horizontal=True):
                dpg.add_text("name")
                self._label = dpg.add_input_text(default_value=state.graph.name, width=-1,
                                                 on_enter=True, callback=self._on_rename)
                dpg.bind_item_handler_registry(self._label, self._handlers)
                self.texts.append(self._label)
        self._summary = dpg.add_text("", parent=p, wrap=380)
        if len(state.selection) <= 1:
            dpg.add_text("Select a block to edit it. Drag blocks from the palette, or press "
                         "Space on the canvas to search; drag from an output pin to an input "
                         "pin to wire them.", parent=p, wrap=420, color=TEXT_DIM)
            self._table = dpg.add_table(parent=p, header_row=True, row_background=True,
                                        policy=dpg.mvTable_SizingStretchProp, borders_innerH=False,
                                        scrollY=True, height=-1)
            for label, weight in (("block", 1.2), ("type", 1.1), ("output", 1.2), ("params", 0.8)):
                dpg.add_table_column(label=label, parent=self._table, init_width_or_weight=weight)
            self._table_for = None

    def _refresh_summary(self) -> None:
        if not self._summary:
            return
        state = self.state
        here = state.current_graph()
        if len(state.selection) > 1:
            total = sum(state.param_count(i) or 0 for i in state.selection)
            text = f"{fmt_count(total)} parameters in the selection"
        else:
            n_err = len(state.analysis.errors)
            text = (f"{len(here.nodes)} blocks, {len(here.edges)} wires here · "
                    f"{state.total_params:,} parameters in total"
                    + (f" · {n_err} error{'s' if n_err != 1 else ''}" if n_err else ""))
        if dpg.get_value(self._summary) != text:
            dpg.set_value(self._summary, text)
        if self._table and (self._table_for is None or self._table_for[0] is not state.analysis
                            or self._table_for[1] != state.region):
            self._table_for = (state.analysis, state.region)
            self._fill_table(here)

    def _fill_table(self, here) -> None:
        """One row per block of the region on screen: type, output shape, parameters
        (the first 200; this runs only when the analysis changes)."""
        state = self.state
        dpg.delete_item(self._table, children_only=True, slot=1)
        for node in here.nodes[:TABLE_ROWS]:
            spec = lookup(node.type)
            outs = state.port_types(node.id)[1]
            count = state.param_count(node.id)
            with dpg.table_row(parent=self._table):
                dpg.add_text(node.name)
                dpg.add_text(spec.title if spec else f"? {node.type}", color=TEXT_DIM)
                dpg.add_text(", ".join(str(t) for t in outs.values()) or "–")
                dpg.add_text(fmt_count(count) if count else "–", color=TEXT_DIM)

    # -- commits -------------------------------------------------------------------------------

    def _node_id(self) -> str | None:
        return self._node.id if self._node is not None else None

    def _on_value(self, sender: int, value: Any, name: str) -> None:
        self.commit(name)

    def _on_commit(self, sender: int, widget: int, user_data: object) -> None:
        if widget == self._label:
            if self._node is not None:
                self._on_label(widget, dpg.get_value(widget), None)
            else:
                self._on_rename(widget, dpg.get_value(widget), None)
            return
        for name, (w, _) in self.widgets.items():
            if w == widget:
                self.commit(name)

    def commit(self, name: str) -> None:
        """Turn the widget's current text/value into a SetParam (or show why not)."""
        node_id = self._node_id()
        if node_id is None or name not in self.widgets:
            return
        widget, param = self.widgets[name]
        raw = dpg.get_value(widget)
        err = self.errors[name]
        row = param.kind_row
        try:
            value = row.from_widget(raw)
        except ValueError as e:
            self._show_error(err, str(e))
            return
        current = self._node.params.get(name, param.default) if self._node else None
        if row.coerce(value) == row.coerce(current):   # nothing new (e.g. the deactivation after an Enter): leave any error shown
            return
        ok = self.state.do(SetParam(self.state.region, node_id, name, value))
        if ok:
            self._show_error(err, "")
        else:
            self._show_error(err, f"{self.state.status}; kept {row.text(current)}")
            if self._node is not None:
                self._show_value(widget, param, self._node.params.get(name, param.default))

    @staticmethod
    def _show_error(item: int, text: str) -> None:
        dpg.set_value(item, text)
        dpg.configure_item(item, show=bool(text))

    def _on_label(self, sender: int, text: str, user_data: object) -> None:
        node_id = self._node_id()
        if node_id is not None and self._node is not None and text != self._node.label:
            self.state.do(SetLabel(self.state.region, node_id, text))

    def _on_rename(self, sender: int, text: str, user_data: object) -> None:
        if text != self.state.graph.name and not self.state.do(RenameGraph(text)):
            dpg.set_value(sender, self.state.graph.name)

    def _on_open(self, sender: int, app_data: object, target: tuple[str, str]) -> None:
        self.open_body(*target)

    def text_inputs(self) -> list[int]:
        return list(self.texts)


def _ports(spec: BlockSpec, node: Node) -> tuple:
    try:
        ins, outs = spec.port_lists(node)
    except Exception:
        return ((), ())
    return tuple(p.name for p in ins), tuple(p.name for p in outs)


# --- Dear PyGui controls for the param kinds' widget descriptions --------------------------------


def _add_int(w: Widget, value: Any, **kw: Any) -> int:
    # Not clamped: a value out of range goes to SetParam, which refuses it, and the reason
    # shows under the widget (a clamp would change what was typed without a word).
    return dpg.add_input_int(default_value=value, on_enter=True, width=-1, **kw)


def _add_float(w: Widget, value: Any, **kw: Any) -> int:
    return dpg.add_input_float(default_value=value, on_enter=True, format=w.format or "%.6g",
                               step=0, width=-1, **kw)


def _add_checkbox(w: Widget, value: Any, **kw: Any) -> int:
    return dpg.add_checkbox(default_value=value, **kw)


def _add_combo(w: Widget, value: Any, **kw: Any) -> int:
    return dpg.add_combo(list(w.choices), default_value=value, width=-1, **kw)


def _add_text(w: Widget, value: Any, **kw: Any) -> int:
    return dpg.add_input_text(default_value=value, on_enter=True, hint=w.hint, width=-1, **kw)


# Widget.control → (how to add it, whether it is typed into: committed on Enter or focus loss)
CONTROLS: dict[str, tuple[Callable[..., int], bool]] = {
    "int": (_add_int, True), "float": (_add_float, True), "checkbox": (_add_checkbox, False),
    "combo": (_add_combo, False), "text": (_add_text, True),
}
