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
from nodes.spec import Param

from ..commands import RenameGraph, SetFunctionInfo, SetLabel, SetParam
from ..state import AppState
from .editor import call_title, fmt_count, ports_of
from .theme import CATEGORY_TITLE, SEVERITY_TEXT, TEXT_DIM, Theme

TABLE_ROWS = 200
NEW_GROUP = "new shared group…"   # the weights combo's last choice
CALL_ROWS = 40                    # calls listed with a jump button (the rest are counted)


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
                 open_body: Callable[[str, str], None],
                 open_function: Callable[[str], None] = lambda call: None,
                 make_copy: Callable[[str], None] = lambda call: None,
                 ungroup: Callable[[], None] = lambda: None,
                 go_to: Callable[[tuple[str, ...], str], None] = lambda region, node: None) -> None:
        self.state = state
        self.theme = theme
        self.open_body = open_body
        self.open_function = open_function
        self.make_copy = make_copy
        self.ungroup = ungroup
        self.go_to = go_to
        # The function section (a Call, or a function's body with nothing selected):
        # "title"/"doc"/"category" → its input, "weights" → the combo; buttons → their action.
        self.function_name: str | None = None
        self.function_widgets: dict[str, int] = {}
        self.function_buttons: dict[str, int] = {}       # "open", "copy", "ungroup" → button
        self.call_buttons: dict[int, tuple[tuple[str, ...], str]] = {}   # jump → (region, call)
        self.call_lines: list[str] = []                  # the calls listed, as shown
        self.tie_lines: list[str] = []                   # "weight tied to tokens.weight: …"
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
            key = ("none", state.region, len(state.selection), state.graph.name,
                   self._function_key(state.function))
        else:
            key = ("node", state.region, node.id, node.type, node.label,
                   ports_of(node, state.graph.functions), tuple(sorted(node.ties.items())),
                   self._function_key(node.params.get("function"), node)
                   if node.type == "call" else None)
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
        self.function_name = None
        self.function_widgets.clear()
        self.function_buttons.clear()
        self.call_buttons.clear()
        self.call_lines, self.tie_lines = [], []
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
        call = node.type == "call"
        dpg.add_text(f"Call  ·  {call_title(node)}" if call else spec.title, parent=p,
                     color=CATEGORY_TITLE.get(spec.category, (200, 200, 200)))
        if not call:
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
                if call and param.name == "weights":
                    self._weights_row(node)
                    continue
                self._param_row(param, node.params.get(param.name, param.default))
        if node.ties:
            self._ties(node)
        if call:
            self._function_section(node.params.get("function"), node)
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
        port_in, port_out = ports_of(node, state.graph.functions)
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
        elif state.function is not None:
            dpg.add_text(f"Function  ·  ƒ {state.function}", parent=p, color=(150, 190, 255))
            dpg.add_text("Its body: an edit here changes every call of it (one undo step). "
                         "Esc goes back.", parent=p, wrap=400, color=TEXT_DIM)
            self._function_section(state.function, None)
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
        for field_name, w in self.function_widgets.items():
            if w == widget and field_name != "weights":
                self._on_function_info(w, dpg.get_value(w), field_name)

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

    # -- functions: a Call's function, its weights, its calls; ties ------------------------------

    def _function_key(self, name: object, node: Node | None = None) -> tuple | None:
        """What the function section shows: rebuilt when any of it changes."""
        state = self.state
        function = state.graph.functions.get(name) if isinstance(name, str) else None
        if function is None:
            return (name,)
        groups = self._groups(name) if node is not None else ()
        return (name, function.title, function.doc, function.category,
                tuple(state.function_calls(name)), groups,
                node.params.get("weights") if node is not None else None)

    def _groups(self, name: str) -> tuple[str, ...]:
        """The weight groups in the current scope, those of this function's calls first."""
        here = self.state.current_graph()
        calls = [n for n in here.nodes if n.type == "call"]
        mine = [n.params.get("weights") for n in calls if n.params.get("function") == name]
        other = [n.params.get("weights") for n in calls if n.params.get("function") != name]
        return tuple(dict.fromkeys(g for g in (*mine, *other)
                                   if isinstance(g, str) and g and g != "own"))

    def _weights_row(self, node: Node) -> None:
        name = node.params.get("function") or "function"
        current = node.params.get("weights", "own")
        choices = ["own", *self._groups(name)]
        if current not in choices:
            choices.append(current)
        choices.append(NEW_GROUP)
        with dpg.table_row():
            dpg.add_text("weights")
            with dpg.group():
                combo = dpg.add_combo(choices, default_value=current, width=-1,
                                      callback=self._on_weights)
                err = dpg.add_text("", color=SEVERITY_TEXT["error"], wrap=260, show=False)
        with dpg.tooltip(combo):
            dpg.add_text("own: this call has its own copy of the function's weights.\n"
                         "A group: every call naming it runs one shared module.", wrap=320)
        self.function_widgets["weights"] = combo
        self.errors["weights"] = err

    def _on_weights(self, sender: int, value: str, user_data: object) -> None:
        node = self._node
        if node is None:
            return
        if value == NEW_GROUP:
            taken = {n.params.get("weights") for n in self.state.current_graph().nodes
                     if n.type == "call"}
            stem = f"{node.params.get('function') or 'shared'}_shared"
            value, i = stem, 2
            while value in taken:
                value, i = f"{stem}{i}", i + 1
        if value == node.params.get("weights", "own"):
            dpg.set_value(sender, value)
            return
        if self.state.do(SetParam(self.state.region, node.id, "weights", value)):
            self._show_error(self.errors["weights"], "")
        else:
            self._show_error(self.errors["weights"], self.state.status)
            dpg.set_value(sender, node.params.get("weights", "own"))

    def _ties(self, node: Node) -> None:
        """A node's ties: `weight tied to tokens.weight: one tensor`."""
        p = self.root
        dpg.add_separator(parent=p)
        for tensor, (other, other_tensor) in sorted(node.ties.items()):
            line = f"{tensor} tied to {other}.{other_tensor}: one tensor"
            self.tie_lines.append(line)
            dpg.add_text("⇄ " + line, parent=p, color=(150, 190, 255))
        dpg.add_text("Both blocks train one shared tensor; it is counted once.", parent=p,
                     wrap=400, color=TEXT_DIM)

    def _function_section(self, name: object, call: Node | None) -> None:
        """The function's title, doc and category (editable), its calls with jump buttons,
        and (for a Call) Open / Make a copy / Ungroup."""
        state, p = self.state, self.root
        function = state.graph.functions.get(name) if isinstance(name, str) else None
        dpg.add_separator(parent=p)
        if function is None:
            dpg.add_text(f"This graph defines no function {name!r}." if name else
                         "Name a function above.", parent=p, color=SEVERITY_TEXT["error"])
            return
        self.function_name = name
        if call is not None:
            with dpg.group(parent=p, horizontal=True):
                self.function_buttons["open"] = dpg.add_button(
                    label="Open function »", callback=lambda: self.open_function(call.id))
                self.function_buttons["copy"] = dpg.add_button(
                    label="Make a copy", callback=lambda: self.make_copy(call.id))
                self.function_buttons["ungroup"] = dpg.add_button(
                    label="Ungroup", callback=lambda: self.ungroup())
            with dpg.tooltip(self.function_buttons["copy"]):
                dpg.add_text("This call gets a copy of the function of its own, with its own "
                             "weights: editing one no longer changes the other.", wrap=320)
        calls = state.function_calls(name)
        dpg.add_text(f"{len(calls)} call{'s' if len(calls) != 1 else ''} of ƒ {name}" +
                     (": an edit of its body changes each" if len(calls) > 1 else ""),
                     parent=p, color=TEXT_DIM)
        for region, call_id in calls[:CALL_ROWS]:
            where = self._where(region)
            node = state.graph.region_at(region).get(call_id)
            weights = node.params.get("weights", "own") if node is not None else "own"
            line = f"{call_id}  {where}" + (f"  ⇄ {weights}" if weights != "own" else "")
            self.call_lines.append(line)
            with dpg.group(parent=p, horizontal=True):
                button = dpg.add_button(label="go", small=True, callback=self._on_jump,
                                        user_data=(region, call_id))
                self.call_buttons[button] = (region, call_id)
                here = call is not None and call.id == call_id and region == state.region
                dpg.add_text(line + ("  (this one)" if here else ""),
                             color=(230, 230, 230) if here else TEXT_DIM)
        if len(calls) > CALL_ROWS:
            dpg.add_text(f"… and {len(calls) - CALL_ROWS} more", parent=p, color=TEXT_DIM)

        with dpg.table(parent=p, header_row=False, policy=dpg.mvTable_SizingStretchProp):
            dpg.add_table_column(width_fixed=True, init_width_or_weight=110)
            dpg.add_table_column()
            with dpg.table_row():
                dpg.add_text("function")
                dpg.add_text(f"ƒ {name}", color=TEXT_DIM)
            for field_name, value, multiline in (("title", function.title, False),
                                                 ("doc", function.doc, True),
                                                 ("category", function.category, False)):
                with dpg.table_row():
                    dpg.add_text(field_name)
                    w = dpg.add_input_text(default_value=value, width=-1, on_enter=not multiline,
                                           multiline=multiline, height=54 if multiline else 0,
                                           hint="Functions" if field_name == "category" else "",
                                           # multiline: committed when it loses focus only
                                           callback=None if multiline else self._on_function_info,
                                           user_data=field_name)
                    dpg.bind_item_handler_registry(w, self._handlers)
                    self.texts.append(w)
                    self.function_widgets[field_name] = w

    def _where(self, region: tuple[str, ...]) -> str:
        """`in the main graph`, `in ƒ block`, `in loop1 ▸ body`."""
        if not region:
            return "in the main graph"
        if region[0] == "@":
            rest = region[2:]
            return f"in ƒ {region[1]}" + (f" › {' ▸ '.join(rest)}" if rest else "")
        return "in " + " ▸ ".join(region)

    def _on_jump(self, sender: int, app_data: object, target: tuple) -> None:
        region, call_id = target
        self.go_to(tuple(region), call_id)

    def _on_function_info(self, sender: int, value: str, field_name: str) -> None:
        name = self.function_name
        function = self.state.graph.functions.get(name) if name else None
        if function is None or getattr(function, field_name) == value:
            return
        if not self.state.do(SetFunctionInfo(name, **{field_name: value})):
            dpg.set_value(sender, getattr(function, field_name))

    def text_inputs(self) -> list[int]:
        return list(self.texts)


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
