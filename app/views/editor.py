"""The graph editor: a Dear PyGui node editor that shows one region of `AppState.graph`.

The same class edits the main graph and every loop/branch body; `AppState.region` says
which. It never stores meaning in widget tags: it owns dicts from Dear PyGui items to node
ids, ports and edges, and rebuilds them as it redraws.

Redraw (`refresh`) is a diff of the graph it drew last against the state's current one,
by identity: nodes that are the same object are not touched, changed ones are patched
(position, texts) or rebuilt (ports changed), removed ones deleted (their links first:
Dear PyGui crashes when a node goes before the links on its pins), and edges are
compared as a set. Undo, redo, open and every command take that one path.

Events become commands: a drop from the palette is `AddNode` where it lands; a pin-to-pin
link is `Connect` (a refused one is never drawn, and the status bar says why); a delink is
`Disconnect`; releasing the mouse after dragging nodes issues one `MoveNodes` for all the
nodes that moved.

Panning: Dear PyGui exposes no panning getter or setter. The editor derives "where grid
(0, 0) is on screen" from any drawn node (its screen rect minus its grid position minus
the node padding). "Fit view" cannot move the camera, so it moves the drawing instead:
the editor keeps a view offset (grid = model position - offset), and fitting picks the
offset that puts the nodes' bounding box in the canvas. Model positions never change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dearpygui.dearpygui as dpg

from engine.core.analysis import call_sites
from engine.core.graph import Edge, Graph, Node
from nodes import lookup
from nodes.control import OWN_WEIGHTS, function_ports
from nodes.spec import BlockSpec

from ..commands import AddCall, AddNode, Batch, Connect, Disconnect, MoveNodes
from ..state import AppState
from .palette import CallOf
from .theme import CATEGORY_TITLE, Theme

NODE_PADDING = (8.0, 8.0)   # imnodes' default NodePadding
DIAG_WRAP = 150             # px: a problem line on a node wraps here
MOVE_EPSILON = 0.5


def fmt_count(n: int | None) -> str:
    if n is None:
        return ""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    if n >= 1000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def param_summary(spec: BlockSpec, node: Node, limit: int = 1) -> str:
    """The param worth showing on the node, compactly: `out_features=16` (set ones first)."""
    shown = []
    defaults = spec.defaults()
    names = [p.name for p in spec.params if p.name in node.params] or \
        [p.name for p in spec.params[:1]]
    for name in names[:limit]:
        value = node.params.get(name, defaults.get(name))
        shown.append(f"{name}={spec.param(name).kind_row.summary(value)}")
    return "  ".join(shown)


def _short(text: str, limit: int = 46) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class NodeView:
    """What the editor drew for one node, so it can patch it instead of redrawing it."""

    node: Node
    item: int
    attrs: dict[tuple[str, str], int] = field(default_factory=dict)      # (io, port) → attr
    port_text: dict[tuple[str, str], list] = field(default_factory=dict)  # (io, port) → [item, text]
    info: list = field(default_factory=lambda: [0, ""])
    diag: list = field(default_factory=lambda: [0, ""])
    flag: list = field(default_factory=lambda: [0, ""])
    badge: list = field(default_factory=lambda: [0, ""])   # profile mode's time (app/views/profile.py)
    ports: tuple = ()
    theme: object = None
    facts: tuple | None = None   # what it was decorated from (see GraphEditor._decorate_all)
    regions: bool = False        # a loop/branch: problems inside its bodies show on it


class GraphEditor:
    """The canvas: node editor + toolbar with breadcrumbs. See the module docstring."""

    def __init__(self, state: AppState, theme: Theme, *,
                 flags_for: Callable[[str], str] = lambda path: "") -> None:
        self.state = state
        self.theme = theme
        self.flags_for = flags_for          # node path → marker text of gradient flags
        self.canvas = 0
        self.editor = 0
        self.breadcrumb_group = 0
        self.legend_group = 0
        # what is drawn
        self.region: tuple[str, ...] | None = None
        self.graph: Graph | None = None
        self.diagnostics: tuple | None = None   # state.diagnostics as last decorated
        self.nodes: dict[str, NodeView] = {}
        self.item_node: dict[int, str] = {}
        self.attr_port: dict[int, tuple[str, str, str]] = {}   # attr → (node id, io, port)
        self.links: dict[Edge, int] = {}
        self.item_link: dict[int, Edge] = {}
        self.link_theme: dict[Edge, int] = {}
        self.highlighted: frozenset[str] = frozenset()
        self.offset = (0.0, 0.0)            # grid = model position - offset
        self.grid_origin: tuple[float, float] | None = None   # screen pos of grid (0, 0)
        # editor selection as last read, to notice when the user changes it
        self._seen_nodes: list[int] = []
        self._seen_links: list[int] = []
        self.selected_edges: list[Edge] = []
        self._check_moves = 0
        self._fit_in = 0
        self._clearing = 0
        self._crumbs: list | None = None   # the breadcrumbs as drawn
        self._functions: object = None     # the graph's functions as drawn (calls' pins)
        self._center_on: str | None = None  # a node to centre once drawn (show_node)

    # -- building --------------------------------------------------------------------------

    def build_toolbar(self, parent: int | str) -> None:
        """Breadcrumbs and the gradient legend, added to a (horizontal) toolbar group."""
        self.breadcrumb_group = dpg.add_group(parent=parent, horizontal=True)
        dpg.add_spacer(parent=parent, width=16)
        self.legend_group = dpg.add_group(parent=parent, horizontal=True)

    def build_canvas(self, parent: int | str, width: int, height: int) -> None:
        self.canvas = dpg.add_child_window(parent=parent, width=width, height=height, border=False,
                                           no_scrollbar=True, payload_type="block",
                                           drop_callback=self._on_drop)
        self.editor = dpg.add_node_editor(parent=self.canvas, callback=self._on_link,
                                          delink_callback=self._on_delink, minimap=True,
                                          minimap_location=dpg.mvNodeMiniMap_Location_BottomRight,
                                          width=-1, height=-1)
        with dpg.theme() as no_pad:
            with dpg.theme_component(dpg.mvAll):
                dpg.add_theme_style(dpg.mvStyleVar_WindowPadding, 0, 0)
        dpg.bind_item_theme(self.canvas, no_pad)

    def resize(self, width: int, height: int) -> None:
        dpg.configure_item(self.canvas, width=width, height=height)

    # -- redraw ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Bring the drawing in line with the state; cheap when nothing changed."""
        state = self.state
        graph = state.current_graph()
        if state.region != self.region:
            self._rebuild(graph)
        elif graph is not self.graph or (self.graph is not None and
                                         state.graph.functions is not self._functions):
            self._diff(graph)   # a body edit changes the pins of the calls here
        self._functions = state.graph.functions
        if state.diagnostics is not self.diagnostics or graph is not self.graph:
            self.graph, self.diagnostics = graph, state.diagnostics
            self._decorate_all()
        self.graph = graph
        if state.selection != self.highlighted:
            self._highlight(state.selection)
        # Another document, a rename or a new body: the crumbs follow whatever changed them.
        if state.breadcrumbs != self._crumbs:
            self._build_breadcrumbs()

    def _rebuild(self, graph: Graph) -> None:
        self._clear()
        self.region = self.state.region
        self.offset = (0.0, 0.0)
        self.grid_origin = None
        for node in graph.nodes:
            self._add_node(node)
        for edge in graph.edges:
            self._add_link(edge)
        self.graph = graph
        self.diagnostics = None
        self._fit_in = 2 if graph.nodes else 0   # centre it once its nodes have been drawn

    def _clear(self) -> None:
        for item in list(self.links.values()):
            dpg.delete_item(item)
        for view in self.nodes.values():
            dpg.delete_item(view.item)
        self.nodes.clear()
        self.item_node.clear()
        self.attr_port.clear()
        self.links.clear()
        self.item_link.clear()
        self.link_theme.clear()
        self.highlighted = frozenset()
        self._seen_nodes, self._seen_links, self.selected_edges = [], [], []

    def _diff(self, graph: Graph) -> None:
        old = self.graph
        new_ids = {n.id for n in graph.nodes}
        rebuilt: set[str] = set()
        for node_id in [i for i in self.nodes if i not in new_ids]:
            self._remove_node(node_id)
        for node in graph.nodes:
            view = self.nodes.get(node.id)
            if view is None:
                self._add_node(node)
                rebuilt.add(node.id)
            elif view.node is not node:
                if self._ports_of(node) != view.ports or node.label != view.node.label \
                        or node.type != view.node.type or self._title(node, None) != \
                        self._title(view.node, None):
                    self._remove_node(node.id)
                    self._add_node(node)
                    rebuilt.add(node.id)
                else:
                    if node.pos != view.node.pos:
                        dpg.set_item_pos(view.item, self._grid(node.pos))
                    view.node = node
        if old is not None and graph.edges is old.edges and not rebuilt:
            return   # an edit of params or positions: the wires are the very same tuple
        new_edges = set(graph.edges)
        for edge in list(self.links):
            if edge not in new_edges or edge.src[0] in rebuilt or edge.dst[0] in rebuilt:
                self._remove_link(edge)
        for edge in graph.edges:
            if edge not in self.links:
                self._add_link(edge)

    # -- nodes -------------------------------------------------------------------------------

    def _ports_of(self, node: Node) -> tuple:
        """(input names, output names) in order; a Call's from its function's body (a spec
        cannot see the graph's functions)."""
        return ports_of(node, self.state.graph.functions)

    def _title(self, node: Node, spec: BlockSpec | None) -> str:
        if node.type == "call":
            return f"{node.name}  ·  {call_title(node)}  »"
        kind = spec.title if spec else f"? {node.type}"
        if spec is not None and spec.regions:
            return f"{node.name}  ·  {kind}  »"
        return f"{node.name}  ·  {kind}"

    def _add_node(self, node: Node) -> None:
        spec = lookup(node.type)
        ports = self._ports_of(node)
        item = dpg.add_node(label=self._title(node, spec), parent=self.editor,
                            pos=self._grid(node.pos))
        # a loop, branch or call: problems inside its bodies show on it
        view = NodeView(node=node, item=item, ports=ports,
                        regions=bool(spec and spec.regions) or node.type == "call")
        for io, names in (("in", ports[0]), ("out", ports[1])):
            kind = dpg.mvNode_Attr_Input if io == "in" else dpg.mvNode_Attr_Output
            for name in names:
                attr = dpg.add_node_attribute(attribute_type=kind, parent=item)
                text = dpg.add_text(name, parent=attr)
                view.attrs[(io, name)] = attr
                view.port_text[(io, name)] = [text, name]
                self.attr_port[attr] = (node.id, io, name)
        static = dpg.add_node_attribute(attribute_type=dpg.mvNode_Attr_Static, parent=item)
        view.info[0] = dpg.add_text("", parent=static, show=False)
        dpg.bind_item_theme(view.info[0], self.theme.text("dim"))
        # Wrapped, so a long problem makes the node taller, never wider than its neighbours'
        # gap (the whole message is in the Inspector and under Problems).
        view.diag[0] = dpg.add_text("", parent=static, show=False, wrap=DIAG_WRAP)
        view.flag[0] = dpg.add_text("", parent=static, show=False)
        dpg.bind_item_theme(view.flag[0], self.theme.text("accent"))
        view.badge[0] = dpg.add_text("", parent=static, show=False)
        if self.theme.small:
            for t in (view.info[0], view.diag[0], view.flag[0], view.badge[0]):
                dpg.bind_item_font(t, self.theme.small)
        self.nodes[node.id] = view
        self.item_node[item] = node.id
        # Shapes, counts and problems are drawn by the _decorate_all that follows every
        # rebuild and diff in refresh().

    def _remove_node(self, node_id: str) -> None:
        view = self.nodes.pop(node_id)
        for edge in [e for e in self.links if node_id in (e.src[0], e.dst[0])]:
            self._remove_link(edge)
        for attr in view.attrs.values():
            self.attr_port.pop(attr, None)
        self.item_node.pop(view.item, None)
        dpg.delete_item(view.item)

    # -- links -------------------------------------------------------------------------------

    def _add_link(self, edge: Edge) -> None:
        src, dst = self.nodes.get(edge.src[0]), self.nodes.get(edge.dst[0])
        if src is None or dst is None:
            return
        a, b = src.attrs.get(("out", edge.src[1])), dst.attrs.get(("in", edge.dst[1]))
        if a is None or b is None:
            return   # a wire to a port that no longer exists: the analysis reports it
        item = dpg.add_node_link(a, b, parent=self.editor)
        self.links[edge] = item
        self.item_link[item] = edge

    def _remove_link(self, edge: Edge) -> None:
        item = self.links.pop(edge)
        self.item_link.pop(item, None)
        self.link_theme.pop(edge, None)
        dpg.delete_item(item)

    def set_link_theme(self, edge: Edge, theme: int) -> None:
        """Bind a gradient-flow theme to a wire (0 unbinds); a no-op when unchanged."""
        item = self.links.get(edge)
        if item is None or self.link_theme.get(edge, 0) == theme:
            return
        dpg.bind_item_theme(item, theme)
        self.link_theme[edge] = theme

    # -- decorations: shapes, counts, diagnostics, flags ---------------------------------------

    def _decorate_all(self) -> None:
        """After an edit: re-decorate the nodes whose analysis facts changed. Comparing a
        node's facts with the ones it was drawn with is a few dict lookups, so a 1,000-node
        region costs a few ms, and only the nodes that really changed touch Dear PyGui."""
        analysis = self.state.analysis
        prefix = self.state.analysis_prefix
        fn = self.state.function is not None   # a function's body: problems from all its calls
        inputs, outputs, counts = analysis.inputs, analysis.outputs, analysis.param_counts
        by_path: dict[str | None, list] = {}
        for d in self.state.diagnostics:   # the analysis's, and those a failed run left
            by_path.setdefault(d.node, []).append(d)
        for node_id, view in self.nodes.items():
            path = prefix + node_id
            facts = (inputs.get(path), outputs.get(path), counts.get(path),
                     by_path.get(path) if not fn else tuple(self.state.diagnostics_for(node_id)),
                     view.node, self.state.graph.functions if view.node.type == "call" else None)
            if view.facts is not None and view.facts[4] is facts[4] and view.facts[5] is facts[5] \
                    and view.facts[:4] == facts[:4] \
                    and not (view.ports and view.regions):
                continue
            view.facts = facts
            self._decorate(view)

    def _decorate(self, view: NodeView) -> None:
        state, node = self.state, view.node
        ins, outs = state.port_types(node.id)
        for (io, name), slot in view.port_text.items():
            t = (ins if io == "in" else outs).get(name)
            text = f"{name}  {t}" if t is not None else name
            if io == "out":
                text = f"{text}  →" if t is not None else name
            if slot[1] != text:
                dpg.set_value(slot[0], text)
                slot[1] = text
        spec = lookup(node.type)
        count = state.param_count(node.id)
        parts = [param_summary(spec, node)] if spec and node.type != "call" else []
        if node.type == "call":
            parts.append(call_summary(node, state.graph))
        if count:
            parts.append(f"{fmt_count(count)} params")
        self._set_text(view.info, "\n".join(p for p in parts if p))
        diags = state.diagnostics_for(node.id)
        inside = state.diagnostics_inside(node.id) if view.regions else []
        severity = _worst(diags + inside)
        # Errors and warnings get a short line on the node; notes stay in the Problems tab.
        loud = [d for d in diags if d.severity in ("error", "warning")]
        if loud:
            first = next(d for d in loud if d.severity == severity) if severity in ("error", "warning") \
                else loud[0]
            text = "⚠ " + _short(first.message, 64)
        elif any(d.severity in ("error", "warning") for d in inside):
            n = sum(d.severity in ("error", "warning") for d in inside)
            text = f"⚠ {n} problem{'s' if n > 1 else ''} inside"
        else:
            text = ""
        if self._set_text(view.diag, text) and text:
            dpg.bind_item_theme(view.diag[0], self.theme.text(severity or "info"))
        self._apply_theme(view, severity)

    def _apply_theme(self, view: NodeView, severity: str | None = None) -> None:
        if severity is None:
            diags = self.state.diagnostics_for(view.node.id)
            severity = _worst(diags)
        flag = self.flags_for(self.state.node_path(view.node.id))
        self._set_text(view.flag, flag)
        spec = lookup(view.node.type)
        if severity in ("error", "warning"):
            key = severity
        elif flag:
            key = "flag"
        else:
            key = spec.category if spec and spec.category in CATEGORY_TITLE else "default"
        theme = self.theme.node(key, view.node.id in self.state.selection)
        if theme != view.theme:
            dpg.bind_item_theme(view.item, theme)
            view.theme = theme

    @staticmethod
    def _set_text(slot: list, text: str) -> bool:
        if slot[1] == text:
            return False
        dpg.set_value(slot[0], text)
        dpg.configure_item(slot[0], show=bool(text))
        slot[1] = text
        return True

    def refresh_flags(self, node_ids: Iterable[str] | None = None) -> None:
        """Re-evaluate gradient flags (title colour + marker) for some or all nodes."""
        ids = self.nodes if node_ids is None else node_ids
        for node_id in ids:
            view = self.nodes.get(node_id)
            if view is not None:
                self._apply_theme(view)

    def set_badge(self, node_id: str, text: str, theme: int = 0) -> None:
        """A node's profile badge (empty: hidden), coloured by `theme`."""
        view = self.nodes.get(node_id)
        if view is not None and self._set_text(view.badge, text) and text:
            dpg.bind_item_theme(view.badge[0], theme)

    def _highlight(self, selection: frozenset[str]) -> None:
        changed = selection ^ self.highlighted
        self.highlighted = selection
        for node_id in changed:
            view = self.nodes.get(node_id)
            if view is not None:
                self._apply_theme(view)

    # -- coordinates ---------------------------------------------------------------------------

    def _grid(self, pos: tuple[float, float]) -> tuple[float, float]:
        return (pos[0] - self.offset[0], pos[1] - self.offset[1])

    def _model(self, grid: tuple[float, float]) -> tuple[float, float]:
        return (round(grid[0] + self.offset[0], 1), round(grid[1] + self.offset[1], 1))

    def update_grid_origin(self) -> None:
        """Where grid (0, 0) is on screen, from any drawn node (cheap: one node's rect)."""
        for view in self.nodes.values():
            rmin = dpg.get_item_rect_min(view.item)
            grid = dpg.get_item_pos(view.item)
            if rmin and grid and (rmin[0] or rmin[1]):
                self.grid_origin = (rmin[0] - NODE_PADDING[0] - grid[0],
                                    rmin[1] - NODE_PADDING[1] - grid[1])
            return

    def node_sizes(self) -> tuple[tuple[str, tuple[float, float]], ...]:
        """(node id, (width, height)) of each drawn node, padding included (for the layout)."""
        out = []
        for node_id, view in self.nodes.items():
            w, h = dpg.get_item_rect_size(view.item) or (0, 0)
            if w and h:
                out.append((node_id, (float(w), float(h))))
        return tuple(out)

    def canvas_origin(self) -> tuple[float, float]:
        """Screen position of the canvas's top-left (the editor's own origin, no panning)."""
        x, y = dpg.get_item_pos(self.canvas)
        return float(x), float(y)

    def screen_to_model(self, screen: tuple[float, float]) -> tuple[float, float]:
        self.update_grid_origin()
        origin = self.grid_origin or self.canvas_origin()
        return self._model((screen[0] - origin[0], screen[1] - origin[1]))

    def canvas_center_model(self) -> tuple[float, float]:
        x, y = self.canvas_origin()
        w, h = dpg.get_item_rect_size(self.canvas) or (800, 600)
        return self.screen_to_model((x + w * 0.4, y + h * 0.4))

    def hovered(self) -> bool:
        """Is the mouse over the canvas? (By rectangle: the node editor inside the child
        window takes the hover, so `is_item_hovered(canvas)` says no.)"""
        if not self.canvas or not dpg.is_item_shown(self.canvas):
            return False
        x, y = dpg.get_mouse_pos(local=False)
        x0, y0 = self.canvas_origin()
        w, h = dpg.get_item_rect_size(self.canvas)
        return x0 <= x < x0 + w and y0 <= y < y0 + h

    def fit_view(self) -> None:
        """Show the region's nodes: their bounding box centred in the canvas when it fits,
        else its top-left corner near the canvas's (see the module doc: a view offset, since
        the editor's panning cannot be set)."""
        graph = self.graph
        if graph is None or not graph.nodes:
            return
        self.update_grid_origin()
        canvas = self.canvas_origin()
        origin = self.grid_origin or canvas
        left = min(n.pos[0] for n in graph.nodes)
        top = min(n.pos[1] for n in graph.nodes)
        w, h = dpg.get_item_rect_size(self.canvas) or (800, 600)
        right, bottom = left + 1.0, top + 1.0
        for view in self.nodes.values():
            size = dpg.get_item_rect_size(view.item) or (180, 120)   # full size, padding included
            right = max(right, view.node.pos[0] + size[0])
            bottom = max(bottom, view.node.pos[1] + size[1])
        margin_x = max(30.0, (w - (right - left)) / 2)
        margin_y = max(30.0, (h - (bottom - top)) / 2)
        # screen = origin + (pos - offset)  ⇒  offset = pos - (screen - origin)
        self.offset = (left - (canvas[0] + margin_x - origin[0]),
                       top - (canvas[1] + margin_y - origin[1]))
        for view in self.nodes.values():
            dpg.set_item_pos(view.item, self._grid(view.node.pos))

    # -- breadcrumbs -------------------------------------------------------------------------

    def _build_breadcrumbs(self) -> None:
        dpg.delete_item(self.breadcrumb_group, children_only=True)
        crumbs = self._crumbs = self.state.breadcrumbs
        for i, (text, region) in enumerate(crumbs):
            if i:
                dpg.add_text("›", parent=self.breadcrumb_group)
            last = i == len(crumbs) - 1
            button = dpg.add_button(label=text.replace(" ▸ ", " › "), parent=self.breadcrumb_group,
                                    callback=self._on_crumb, user_data=region, small=True)
            if last:
                dpg.bind_item_theme(button, self.theme.primary_button)
        if len(crumbs) > 1:
            dpg.add_text("  (Esc goes up)", parent=self.breadcrumb_group, color=(140, 144, 154))

    def _on_crumb(self, sender: int, app_data: object, region: tuple[str, ...]) -> None:
        if tuple(region) != self.state.region:
            self.state.set_region(tuple(region))

    # -- selection -------------------------------------------------------------------------------

    def poll_selection(self) -> bool:
        """Read the editor's selection; push it to the state when the user changed it.
        Returns True when the wire selection changed."""
        if not self.editor:
            return False
        nodes = dpg.get_selected_nodes(self.editor)
        links = dpg.get_selected_links(self.editor)
        if self._clearing:
            # clear_selected_* takes effect when the next frame renders: until imnodes reports
            # the empty selection, its old one is not the user's new choice.
            self._clearing -= 1
            if nodes or links:
                return False
            self._clearing = 0
        links_changed = False
        if nodes != self._seen_nodes:
            self._seen_nodes = list(nodes)
            ids = [self.item_node[i] for i in nodes if i in self.item_node]
            if frozenset(ids) != self.state.selection:
                self.state.select(ids)
                self.highlighted = self.highlighted  # re-themed in refresh
        if links != self._seen_links:
            self._seen_links = list(links)
            self.selected_edges = [self.item_link[i] for i in links if i in self.item_link]
            links_changed = True
        return links_changed

    def forget_editor_selection(self) -> None:
        """The state's selection was set elsewhere (a diagnostic click): drop imnodes' own."""
        if self.editor:
            dpg.clear_selected_nodes(self.editor)
            dpg.clear_selected_links(self.editor)
            self._clearing = 3
        self._seen_nodes, self._seen_links, self.selected_edges = [], [], []

    def hovered_node(self) -> str | None:
        for node_id, view in self.nodes.items():
            if dpg.is_item_hovered(view.item):
                return node_id
        return None

    def hovered_edge(self) -> Edge | None:
        for edge, item in self.links.items():
            if dpg.get_item_state(item).get("hovered"):
                return edge
        return None

    # -- moves -------------------------------------------------------------------------------

    def mouse_released(self) -> None:
        """Check for moved nodes on the next frames (imnodes settles positions first)."""
        self._check_moves = 2

    def poll_fit(self) -> None:
        """Fit the view a couple of frames after a region was (re)built (an open, a body)."""
        if self._fit_in:
            self._fit_in -= 1
            if not self._fit_in:
                self.fit_view()
            return
        if self._center_on is not None:   # a jump asked for one node: after any fit
            node_id, self._center_on = self._center_on, None
            self.center_on(node_id)

    def show_node(self, node_id: str) -> None:
        """Centre `node_id` in the canvas once it is drawn (after a region change's fit)."""
        self._center_on = node_id

    def center_on(self, node_id: str) -> None:
        """Move the drawing so that `node_id` is in the middle of the canvas (the view
        offset, as in fit_view: the editor's own panning cannot be set)."""
        view = self.nodes.get(node_id)
        if view is None:
            return
        self.update_grid_origin()
        canvas = self.canvas_origin()
        origin = self.grid_origin or canvas
        w, h = dpg.get_item_rect_size(self.canvas) or (800, 600)
        nw, nh = dpg.get_item_rect_size(view.item) or (180, 120)
        target = (canvas[0] + (w - nw) / 2, canvas[1] + (h - nh) / 2)
        self.offset = (view.node.pos[0] - (target[0] - origin[0]),
                       view.node.pos[1] - (target[1] - origin[1]))
        for v in self.nodes.values():
            dpg.set_item_pos(v.item, self._grid(v.node.pos))

    def poll_moves(self) -> None:
        if not self._check_moves:
            return
        self._check_moves -= 1
        if self._check_moves:
            return
        candidates = self.state.selection if len(self.nodes) > 300 else self.nodes.keys()
        moved = []
        for node_id in candidates:
            view = self.nodes.get(node_id)
            if view is None:
                continue
            grid = dpg.get_item_pos(view.item)
            pos = self._model((grid[0], grid[1]))
            if abs(pos[0] - view.node.pos[0]) > MOVE_EPSILON or abs(pos[1] - view.node.pos[1]) > MOVE_EPSILON:
                moved.append((node_id, pos))
        if moved:
            self.state.do(MoveNodes(self.state.region, tuple(moved)))

    # -- event → command -----------------------------------------------------------------------

    def add_block(self, block: str, pos: tuple[float, float]) -> bool:
        return self.state.do(AddNode(self.state.region, block, pos))

    def _on_drop(self, sender: int, block: object, user_data: object) -> None:
        """A palette drop: a block type, or a `CallOf` one of the graph's functions."""
        mouse = dpg.get_mouse_pos(local=False)
        at = self.screen_to_model((mouse[0], mouse[1]))
        if isinstance(block, str):
            self.add_block(block, at)
        elif isinstance(block, CallOf):
            self.state.do(AddCall(self.state.region, block.function, at))

    def _on_link(self, sender: int, app_data: tuple, user_data: object) -> None:
        a, b = (self.attr_port.get(x) for x in app_data)
        if a is None or b is None:
            return
        if a[1] == "in":
            a, b = b, a
        if a[1] != "out" or b[1] != "in":
            self.state.set_status("connect an output pin (right) to an input pin (left)", "warning")
            return
        self.state.do(Connect(self.state.region, (a[0], a[2]), (b[0], b[2])))

    def _on_delink(self, sender: int, link: int, user_data: object) -> None:
        edge = self.item_link.get(link)
        if edge is not None:
            self.state.do(Disconnect(self.state.region, edge))

    def delete_selected(self) -> None:
        """Del: the selected nodes and the selected wires, as one undo step."""
        region = self.state.region
        edges = [e for e in self.selected_edges if e in self.links]
        if not edges:
            self.state.delete_selection()
            return
        from ..commands import RemoveNodes

        commands = [Disconnect(region, e) for e in edges
                    if e.src[0] not in self.state.selection and e.dst[0] not in self.state.selection]
        if self.state.selection:
            commands.append(RemoveNodes(region, frozenset(self.state.selection)))
        label = "Delete wire" if len(commands) == 1 and not self.state.selection else "Delete"
        self.state.do(Batch(tuple(commands), label=label))
        self.forget_editor_selection()


def ports_of(node: Node, functions) -> tuple:
    """A node's (input names, output names) in order; a Call's from the function it names
    in `functions` (none when it names no function)."""
    spec = lookup(node.type)
    if spec is None:
        return ((), ())
    if node.type == "call":
        function = functions.get(node.params.get("function"))
        if function is None:
            return ((), ())
        try:
            ins, outs = function_ports(function.body)
        except Exception:
            return ((), ())
    else:
        try:
            ins, outs = spec.port_lists(node)
        except Exception:
            return ((), ())
    return tuple(p.name for p in ins), tuple(p.name for p in outs)


def call_title(node: Node) -> str:
    """What a Call's title says it runs: `ƒ double_conv`, `ƒ block  ⇄ shared` when its
    weights are a group's."""
    name = node.params.get("function") or "?"
    weights = node.params.get("weights", OWN_WEIGHTS)
    return f"ƒ {name}" + (f"  ⇄ {weights}" if weights != OWN_WEIGHTS else "")


def call_summary(node: Node, graph: Graph) -> str:
    """The line under a Call's title: the function's title and how many calls it has."""
    name = node.params.get("function")
    function = graph.functions.get(name)
    if function is None:
        return f"no function {name!r}" if name else "names no function"
    n = len(call_sites(graph, name))
    title = _short(function.title, 28) if function.title and function.title != name else ""
    calls = f"{n} calls" if n != 1 else "1 call"
    return f"{title}  ({calls})" if title else calls


def _worst(diags) -> str | None:
    levels = {d.severity for d in diags}
    for level in ("error", "warning", "info"):
        if level in levels:
            return level
    return None
