"""The Problems panel: every diagnostic of the whole graph, bodies included, by severity -
the analysis's, and the error a failed training run left on the node that raised it.

Each row is a selectable; clicking it goes to the node: the editor enters the region the
node lives in (the diagnostic's node is a path like `loop1/body/fc`) and selects it. The
view keeps its own row → diagnostic map; nothing is parsed from tags.
"""

from __future__ import annotations

from collections.abc import Callable

import dearpygui.dearpygui as dpg

from engine.core.analysis import Diagnostic
from engine.core.graph import PATH_SEP

from ..state import AppState
from .theme import SEVERITY_TEXT, TEXT_DIM

ORDER = {"error": 0, "warning": 1, "info": 2}


def split_path(path: str) -> tuple[tuple[str, ...], str]:
    """`loop1/body/fc` → (("loop1", "body"), "fc")."""
    parts = path.split(PATH_SEP)
    return tuple(parts[:-1]), parts[-1]


class DiagnosticsPanel:
    def __init__(self, state: AppState, *, go_to: Callable[[tuple[str, ...], str], None],
                 on_count: Callable[[int, int], None]) -> None:
        self.state = state
        self.go_to = go_to
        self.on_count = on_count     # (errors, warnings) → e.g. the tab label
        self.root = 0
        self.rows: dict[int, Diagnostic] = {}
        self._shown: tuple | None = None   # the state.diagnostics these rows show

    def build(self, parent: int | str) -> None:
        self.root = dpg.add_group(parent=parent)

    def refresh(self) -> None:
        shown = self.state.diagnostics
        if shown is self._shown:
            return
        self._shown = shown
        dpg.delete_item(self.root, children_only=True)
        self.rows.clear()
        diags = sorted(shown, key=lambda d: (ORDER.get(d.severity, 3), d.node or ""))
        errors = sum(d.severity == "error" for d in diags)
        warnings = sum(d.severity == "warning" for d in diags)
        self.on_count(errors, warnings)
        if not diags:
            dpg.add_text("No problems: the graph is valid.", parent=self.root, color=(110, 200, 130))
            return
        dpg.add_text(f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning"
                     f"{'s' if warnings != 1 else ''}, {len(diags) - errors - warnings} note"
                     f"{'s' if len(diags) - errors - warnings != 1 else ''} — click one to go to it",
                     parent=self.root, color=TEXT_DIM)
        for d in diags[:500]:
            where = d.node or "graph"
            if d.port:
                where += f".{d.port}"
            with dpg.group(parent=self.root, horizontal=True):
                dpg.add_text({"error": "●", "warning": "▲"}.get(d.severity, "•"),
                             color=SEVERITY_TEXT.get(d.severity, TEXT_DIM))
                row = dpg.add_selectable(label=f"{where}: {d.message}", callback=self._on_click,
                                         span_columns=True)
            self.rows[row] = d
            with dpg.tooltip(row):
                dpg.add_text(str(d), wrap=400)

    def _on_click(self, sender: int, app_data: object, user_data: object) -> None:
        dpg.set_value(sender, False)
        d = self.rows.get(sender)
        if d is None or not d.node:
            return
        region, node_id = split_path(d.node)
        self.go_to(region, node_id)
