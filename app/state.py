"""AppState: the studio's single source of truth, with undo/redo. No GUI in here.

Views read `AppState` and change it only through its methods; every edit of the graph is a
command (`app.commands`) passed to `do`. After each change the state recomputes what the
views show - diagnostics, port types, parameter counts (`engine.core.analysis.analyze`) and the
generated code (`engine.incremental.codegen.CodeCache`) - and bumps `version`; views poll `version` each
frame and redraw what changed (graphs are immutable values, so "changed" is "not the same
object").

Guarantees:
- No user mistake raises. A rejected command, a broken file or an unwritable path sets
  `status`/`status_level` and returns False, and the state is as it was.
- No failure kills the app: an unexpected exception inside a command (an engine bug) is
  caught, reported in `status` at level "error", and the state is unchanged.
- Undo restores the exact previous graph object (`is`), with the region and selection of
  that moment; redo restores the exact next one. A new command clears redo. Opening or
  creating a document resets history.
- `dirty` is "differs from the last saved/opened graph" by identity, so undoing back to the
  saved graph makes it clean again.
- A training run that failed inside a node (`report_run_failure`) leaves an error
  diagnostic on that node, listed with the analysis's own in `diagnostics`, until the graph
  is edited (a move does not count) or the next run starts (`clear_run_problems`).

Pure: no dearpygui, no torch.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.core.analysis import Analysis, Diagnostic, call_sites, function_diagnostics
from engine.core.config import TrainingConfig
from engine.core.fileformat import GraphFileError, dumps, load_graph, loads, save_graph
from engine.core.graph import FUNCTION, PATH_SEP, Edge, Graph, Node
from engine.data.fit import fit_problems
from engine.incremental.codegen import CodeCache
from nodes import TensorType

from .commands import (
    Analyses,
    Command,
    CommandRejected,
    Paste,
    RemoveNodes,
    region_prefix,
    same_structure,
)
from .recovery import PendingRecovery, Recovery

log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "sample_graphs"
PASTE_STEP = (30.0, 30.0)        # each plain paste/duplicate lands this far from the last
HISTORY_LIMIT = 1000
Level = Literal["info", "warning", "error"]


def sample_names() -> list[str]:
    """Names of the bundled sample graphs (for `AppState.open_sample`)."""
    return sorted(p.stem for p in SAMPLES_DIR.glob("*.json"))


@dataclass(frozen=True)
class _Step:
    """One undoable change: the graphs on either side and where the user was."""

    label: str
    before: Graph
    after: Graph
    region_before: tuple[str, ...]
    selection_before: frozenset[str]
    region_after: tuple[str, ...]
    selection_after: frozenset[str]


class AppState:
    """Everything the studio shows and edits. See the module docstring for the guarantees.

    Attributes (read them; change them only through methods):
        graph: the whole document (top-level `Graph`).
        region: the body being edited, `()` for the main graph, `("loop1", "body")` for the
            body of loop1, `("loop1", "body", "br1", "then")` deeper.
        selection: ids of selected nodes in the current region.
        analysis: `engine.core.analysis.Analysis` of `graph` (keys are node paths; see node_path).
        diagnostics: what the views list and draw on nodes: the analysis's diagnostics, then
            those a failed training run left (`run_problems`), then where the graph does not
            fit its loaded dataset (`data_problems`). A new tuple whenever any changes, so
            views compare it by identity.
        code: the generated PyTorch source - the last that generated; `code_error` says why
            it is stale (None when `code` matches `graph`). Generated lazily on first read
            after a change (it is the slow part), so read it only while showing it.
        code_lines: 1-based line of `code` → node path (for highlighting a node's lines).
        file: the file the document was opened from / saved to (None: untitled).
        dirty: unsaved changes.
        status, status_level: the last message for the status bar ("info"/"warning"/"error").
        version: bumps on every change of anything above; views compare it to redraw.
        document: bumps when another document replaces this one (New, Open, a sample, a
            restored autosave); views drop what belonged to the old one (a training run).
        clipboard: the internal clipboard `(nodes, edges)` or None.
        clipboard_text: the same as dprog graph JSON, for the views to put on the OS clipboard
            (`paste_text` reads such text back).
        recent_files: recently opened/saved files, newest first.
        recovery: the `app.recovery.Recovery` that autosaves and keeps the recent list.
    """

    def __init__(self, graph: Graph | None = None, *, file: str | os.PathLike | None = None,
                 recovery: Recovery | None = None, history_limit: int | None = HISTORY_LIMIT):
        self.recovery = recovery if recovery is not None else Recovery()
        self.history_limit = history_limit
        self.status: str = "ready"
        self.status_level: Level = "info"
        self.version = 0
        self.clipboard: tuple[tuple[Node, ...], tuple[Edge, ...]] | None = None
        self.clipboard_text: str = ""
        self._paste_count = 0
        self._sample: str | None = None
        self.recent_files: list[Path] = self.recovery.recent_files()
        self._code, self._code_lines, self._code_error = "", {}, None
        self._code_for: Graph | None = None
        self._code_cache = CodeCache()   # unchanged nodes keep their lines across edits
        # Diagnostics a failed run left, and the graph that run trained (see report_run_failure).
        self.run_problems: tuple[Diagnostic, ...] = ()
        self._run_graph: Graph | None = None
        # The dataset the training section names, once loaded (set_training_data), and
        # where the graph does not fit it (see data_key).
        self._data: tuple[Any, Any, str | None] | None = None   # (key, Dataset, error)
        self.data_problems: tuple[Diagnostic, ...] = ()
        self.document = 0   # counts documents: New, Open, a sample, a restored autosave
        self._reset(graph if graph is not None else Graph(), Path(file) if file else None)
        if self.recovery.problem:
            self.set_status(self.recovery.problem, "warning")
            self.recovery.problem = None

    # --- status -------------------------------------------------------------------------

    def set_status(self, message: str, level: Level = "info") -> None:
        self.status, self.status_level = message, level
        self.version += 1

    # --- the document -------------------------------------------------------------------

    def _reset(self, graph: Graph, file: Path | None) -> None:
        """Make `graph` the document, with fresh history; raises if it cannot be analysed."""
        analyses = Analyses()   # one per document
        analysis = analyses.of(graph)   # first, so a failure leaves everything as it was
        self.analyses = analyses
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        self.region: tuple[str, ...] = ()
        self.selection: frozenset[str] = frozenset()
        # Where each opened function body was entered from: (region, call id), for Esc.
        self._came_from: list[tuple[tuple[str, ...], str]] = []
        self._fn_diags: tuple[Any, tuple[str, ...], dict] | None = None
        self._fn_prefix: tuple[Graph, tuple[str, ...], str] | None = None
        self.file = file
        self._saved: Graph | None = graph
        self._paste_count = 0
        self.document += 1
        self._install(graph, analysis)

    def _install(self, graph: Graph, analysis: Analysis | None = None) -> None:
        """Make `graph` current and recompute what is derived from it: the analysis now,
        the code when first read (see `code`)."""
        previous = getattr(self, "graph", None)
        if analysis is None:
            analysis = self.analyses.of(graph)
        self.graph = graph
        self.analysis = analysis
        if self.run_problems and not _same_program(self._run_graph, graph):
            self.run_problems, self._run_graph = (), None   # edited: the run's news is stale
        self._index_diagnostics()
        if previous is not None and self._code_for is previous and same_structure(previous, graph):
            self._code_for = graph     # a move: the code is still right
        self._fix_region()
        self.version += 1

    # The code is generated lazily, once per graph, the first time a view reads it: most
    # edits happen while the code pane is hidden, and an edit the code cache cannot patch
    # (a rewire, say) regenerates node by node, ~20 ms for 1,000 nodes. Views: read `code`
    # only when showing it.

    def _index_diagnostics(self) -> None:
        self.data_problems = self._data_problems()
        self.diagnostics: tuple[Diagnostic, ...] = (*self.analysis.diagnostics, *self.run_problems,
                                                    *self.data_problems)
        by_node: dict[str | None, list[Diagnostic]] = {}
        for d in self.diagnostics:
            by_node.setdefault(d.node, []).append(d)
        self._diagnostics = by_node

    def _ensure_code(self) -> None:
        if self._code_for is self.graph:
            return
        self._code_for = self.graph
        if not self.analysis.ok:
            errors = self.analysis.errors
            self._code_error = (f"{len(errors)} error{'s' if len(errors) != 1 else ''} to fix "
                                f"first: {errors[0]}")
            return
        try:
            generated = self._code_cache.generate(self.graph, self.analysis)
        except Exception as e:  # an engine bug: keep editing, say so in the code pane
            log.error("code generation failed:\n%s", traceback.format_exc())
            self._code_error = f"the code generator failed: {type(e).__name__}: {e}"
        else:
            self._code, self._code_lines, self._code_error = (generated.source,
                                                              generated.line_nodes, None)

    @property
    def code(self) -> str:
        """The generated PyTorch source: the last that generated without errors ("" if none
        yet). When the current graph has errors, `code_error` says why this is stale."""
        self._ensure_code()
        return self._code

    @property
    def code_lines(self) -> dict[int, str]:
        """1-based line of `code` → path of the node it came from."""
        self._ensure_code()
        return self._code_lines

    @property
    def code_error(self) -> str | None:
        """None when `code` is the code of the current graph; else why it is not."""
        self._ensure_code()
        return self._code_error

    def _fix_region(self) -> None:
        """Keep `region` pointing at an existing body and `selection` at existing nodes."""
        region = self.region
        while region:
            try:
                self.graph.region_at(region)
                break
            except (KeyError, ValueError):
                region = region[:-2]
        self.region = region
        here = self.current_graph()
        self.selection = frozenset(i for i in self.selection if i in here)

    @property
    def dirty(self) -> bool:
        return self.graph is not self._saved

    @property
    def title(self) -> str:
        """Window title: `dprog — moons_mlp.json •` (the dot marks unsaved changes)."""
        if self.file is not None:
            name = self.file.name
        elif self._sample:
            name = self._sample   # "moons_mlp (sample)", "moons_mlp (run moons_mlp-2)"
        else:
            name = "untitled"
        return f"dprog — {name}" + (" •" if self.dirty else "")

    # --- commands and history -----------------------------------------------------------

    def do(self, command: Command) -> bool:
        """Apply `command` and record it for undo. False (with `status` saying why) when it is
        rejected or fails; then nothing changed. A command that changes nothing returns True
        and records nothing."""
        try:
            new = command.apply_in(self.graph, self.analyses)
            if not isinstance(new, Graph):
                raise TypeError(f"{type(command).__name__}.apply returned {type(new).__name__}")
            if new is self.graph or new == self.graph:
                return True
            if same_structure(self.graph, new):   # a move: the analysis still holds
                analysis = self.analysis
                self.analyses.remember(new, analysis)
            else:
                analysis = self.analyses.of(new)
        except CommandRejected as e:
            self.set_status(str(e), "warning")
            return False
        except Exception as e:
            log.error("command %r failed:\n%s", command, traceback.format_exc())
            self.set_status(f"internal error in {_label(command)}: {type(e).__name__}: {e}", "error")
            return False
        before, region, selection = self.graph, self.region, self.selection
        before_ids = {n.id for n in self.current_graph().nodes}
        self._install(new, analysis)
        # New nodes in the region being edited (add, paste, duplicate) become the selection.
        added = frozenset(n.id for n in self.current_graph().nodes if n.id not in before_ids)
        if added and self.region == region:
            self.selection = added
        self._push(_Step(_label(command), before, new, region, selection, self.region,
                         self.selection))
        self.set_status(_label(command))
        return True

    def _push(self, step: _Step) -> None:
        self._undo.append(step)
        if self.history_limit is not None and len(self._undo) > self.history_limit:
            del self._undo[: len(self._undo) - self.history_limit]
        self._redo.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        """What undo would undo ("Add Linear"), or None."""
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    def undo(self) -> bool:
        if not self._undo:
            self.set_status("nothing to undo", "info")
            return False
        step = self._undo.pop()
        self._redo.append(step)
        self.region, self.selection = step.region_before, step.selection_before
        self._install(step.before)
        self.set_status(f"undid {step.label}")
        return True

    def redo(self) -> bool:
        if not self._redo:
            self.set_status("nothing to redo", "info")
            return False
        step = self._redo.pop()
        self._undo.append(step)
        self.region, self.selection = step.region_after, step.selection_after
        self._install(step.after)
        self.set_status(f"redid {step.label}")
        return True

    # --- selection and regions ------------------------------------------------------------

    def current_graph(self) -> Graph:
        """The graph of the region being edited (`graph` itself at the top)."""
        return self.graph.region_at(self.region)

    def select(self, ids: Iterable[str], *, add: bool = False) -> None:
        """Select these node ids of the current region (unknown ids are ignored); with
        `add`, toggle them into the existing selection instead of replacing it."""
        here = self.current_graph()
        ids = {i for i in ids if i in here}
        selection = frozenset(self.selection ^ ids if add else ids)
        if selection != self.selection:   # views may sync every frame: bump only on change
            self.selection = selection
            self.version += 1

    def select_all(self) -> None:
        self.select(n.id for n in self.current_graph().nodes)

    def clear_selection(self) -> None:
        if self.selection:
            self.selection = frozenset()
            self.version += 1

    def enter_region(self, node_id: str, region: str) -> bool:
        """Edit the body `region` ("body", "then", "else") of loop/branch `node_id`."""
        node = self.current_graph().get(node_id)
        if node is None or region not in node.regions:
            self.set_status(f"{node_id!r} has no {region!r} body", "warning")
            return False
        self.region = (*self.region, node_id, region)
        self.selection = frozenset()
        self._paste_count = 0
        self.version += 1
        return True

    def leave_region(self, levels: int = 1) -> None:
        """Go up `levels` bodies (never above the main graph); the body's owner is selected.
        Leaving a function's body goes back to where it was opened from (the Call), or to
        the main graph."""
        if not self.region or levels <= 0:
            return
        for _ in range(min(levels, len(self.region) // 2)):
            if self.region[:1] == (FUNCTION,) and len(self.region) == 2:
                region, owner = self._came_from.pop() if self._came_from else ((), None)
                try:
                    here = self.graph.region_at(region)
                except (KeyError, ValueError):
                    region, here = (), self.graph
                self.region = region
                self.selection = frozenset({owner}) if owner in here else frozenset()
            else:
                owner = self.region[-2]
                self.region = self.region[:-2]
                self.selection = frozenset({owner})
        self._paste_count = 0
        self.version += 1

    def open_function(self, call_id: str) -> bool:
        """Edit the body of the function that Call `call_id` (current region) runs, at region
        `(FUNCTION, name)`: every call of it changes with each edit there."""
        node = self.current_graph().get(call_id)
        name = node.params.get("function") if node is not None and node.type == "call" else None
        if name not in self.graph.functions:
            self.set_status(f"{call_id!r} calls no function this graph defines", "warning")
            return False
        self._came_from = [*self._came_from, (self.region, call_id)][-32:]
        self.region = (FUNCTION, name)
        self.selection = frozenset()
        self._paste_count = 0
        self.version += 1
        return True

    @property
    def function(self) -> str | None:
        """The function whose body is being edited (None outside function bodies)."""
        return self.region[1] if self.region[:1] == (FUNCTION,) else None

    def function_calls(self, name: str) -> list[tuple[tuple[str, ...], str]]:
        """Where function `name` is called: (region, call id) for each Call of it, each once
        (a call inside another function's body is listed at that body's region), in walk
        order."""
        out: list[tuple[tuple[str, ...], str]] = []
        for path in call_sites(self.graph, name):
            place = region_of_path(self.graph, path)
            if place is not None and place not in out:
                out.append(place)
        return out

    def set_region(self, region: tuple[str, ...]) -> bool:
        """Jump to a region (a breadcrumb's target)."""
        try:
            self.graph.region_at(region)
        except (KeyError, ValueError):
            self.set_status("that body no longer exists", "warning")
            return False
        if tuple(region)[:1] != (FUNCTION,):
            self._came_from = []
        self.region = tuple(region)
        self.selection = frozenset()
        self.version += 1
        return True

    @property
    def breadcrumbs(self) -> list[tuple[str, tuple[str, ...]]]:
        """`[(text, region), ...]` from the main graph to the current region, e.g.
        `[("moons_mlp", ()), ("rnn ▸ body", ("rnn", "body"))]`; a function's body is
        `("ƒ double_conv", ("@", "double_conv"))`."""
        out = [(self.graph.name or "model", ())]
        graph = self.graph
        for i in range(0, len(self.region), 2):
            node_id, name = self.region[i:i + 2]
            if node_id == FUNCTION and i == 0:
                out.append((f"ƒ {name}", self.region[:2]))
                graph = self.graph.functions[name].body
                continue
            node = graph.node(node_id)
            out.append((f"{node.name} ▸ {name}", self.region[: i + 2]))
            graph = node.regions[name]
        return out

    # --- lookups for the views ------------------------------------------------------------

    @property
    def analysis_prefix(self) -> str:
        """The analysis path prefix of the current region: `loop1/body/`. A function's body
        has no analysis of its own; it is analysed at each call, so its shapes and counts
        are those at its first call (`down1/double_conv/`), and "" when it has no calls."""
        if self.region[:1] != (FUNCTION,):
            return region_prefix(self.region)
        cached = self._fn_prefix
        if cached is not None and cached[0] is self.graph and cached[1] == self.region:
            return cached[2]
        sites = call_sites(self.graph, self.region[1])
        prefix = f"{sites[0]}{PATH_SEP}{self.region[1]}{PATH_SEP}" + region_prefix(self.region[2:]) \
            if sites else ""
        self._fn_prefix = (self.graph, self.region, prefix)
        return prefix

    def node_path(self, node_id: str) -> str:
        """The analysis key of a node in the current region: `loop1/body/fc`; inside a
        function's body, the node at its first call (`down1/double_conv/conv_a`)."""
        prefix = self.analysis_prefix
        if self.region[:1] == (FUNCTION,) and not prefix:
            return f"{FUNCTION}{PATH_SEP}{self.region[1]}{PATH_SEP}{region_prefix(self.region[2:])}" \
                f"{node_id}"   # never a key: an uncalled function is not analysed
        return prefix + node_id

    def _function_diagnostics(self) -> dict[str | None, list[Diagnostic]]:
        """Inside a function's body: its diagnostics from all its calls, by path relative to
        the body region being shown (`analysis.function_diagnostics`)."""
        key = (self.diagnostics, self.region)
        if self._fn_diags is None or self._fn_diags[0] is not key[0] or self._fn_diags[1] != key[1]:
            inner = region_prefix(self.region[2:])
            by_node: dict[str | None, list[Diagnostic]] = {}
            for d in function_diagnostics(self.analysis, self.graph, self.region[1]):
                if d.node is not None and d.node.startswith(inner):
                    by_node.setdefault(d.node[len(inner):], []).append(d)
            self._fn_diags = (key[0], key[1], by_node)
        return self._fn_diags[2]

    def diagnostics_for(self, node_id: str) -> list[Diagnostic]:
        """Diagnostics on this node of the current region (a loop's body problems are on the
        body's nodes; see `diagnostics_inside`). In a function's body: those of all its calls."""
        if self.region[:1] == (FUNCTION,):
            return list(self._function_diagnostics().get(node_id, ()))
        return list(self._diagnostics.get(self.node_path(node_id), ()))

    def diagnostics_inside(self, node_id: str) -> list[Diagnostic]:
        """Diagnostics anywhere inside a loop/branch node's bodies (for a badge on it)."""
        if self.region[:1] == (FUNCTION,):
            prefix = node_id + "/"
            return [d for path, ds in self._function_diagnostics().items()
                    if path and path.startswith(prefix) for d in ds]
        prefix = self.node_path(node_id) + "/"
        return [d for d in self.diagnostics if d.node and d.node.startswith(prefix)]

    @property
    def region_diagnostics(self) -> list[Diagnostic]:
        """Diagnostics about the current body as a whole (path `loop1/body`); at the top
        level, those about the whole graph (like `graph_diagnostics`)."""
        return list(self._diagnostics.get(self.analysis_prefix.rstrip("/") or None, ()))

    @property
    def graph_diagnostics(self) -> list[Diagnostic]:
        """Diagnostics about the whole graph (no node), e.g. "no Output block"."""
        return list(self._diagnostics.get(None, ()))

    def port_types(self, node_id: str) -> tuple[dict[str, TensorType], dict[str, TensorType]]:
        """(input port → type, output port → type) as inferred; ports whose type is unknown
        (unconnected, or upstream is broken) are absent."""
        path = self.node_path(node_id)
        return dict(self.analysis.inputs.get(path, {})), dict(self.analysis.outputs.get(path, {}))

    def param_count(self, node_id: str) -> int | None:
        """Learnable parameters of this node (a loop: its body's, times iterations when not
        shared); None when it cannot be worked out (e.g. an input is missing)."""
        return self.analysis.param_counts.get(self.node_path(node_id))

    @property
    def total_params(self) -> int:
        return self.analysis.total_params

    def lines_for(self, node_id: str) -> list[int]:
        """1-based lines of `code` generated for this node (or inside it)."""
        path = self.node_path(node_id)
        return [ln for ln, p in self.code_lines.items() if p == path or p.startswith(path + "/")]

    # --- the training data ------------------------------------------------------------------

    def data_key(self) -> tuple | None:
        """What identifies the data the training section names: (dataset section as JSON,
        seed, the folder relative paths start from); None when the section is invalid (the
        Training panel says why)."""
        try:
            config = TrainingConfig.from_mapping(self.graph.training)
            spec = json.dumps(config.dataset, sort_keys=True)
        except (TypeError, ValueError):
            return None
        return spec, config.seed, str(self.file.parent) if self.file else None

    def set_training_data(self, key: tuple, dataset: Any, error: str | None) -> None:
        """The dataset for `key` (a `data_key`) was loaded, or `error` says why not; the
        graph is checked against it (`engine.data.fit`) whenever it changes, and the
        problems are listed with the analysis's while `key` is the document's."""
        self._data = (key, dataset, error)
        self._index_diagnostics()
        self.version += 1

    @property
    def dataset(self) -> Any:
        """The loaded dataset of the document's training section, or None."""
        if self._data is None or self._data[0] != self.data_key():
            return None
        return self._data[1]

    def _data_problems(self) -> tuple[Diagnostic, ...]:
        if self._data is None:
            return ()
        key, dataset, error = self._data
        if key != self.data_key():
            return ()
        if error is not None:
            return (Diagnostic("data_error", f"the training data cannot be loaded: {error}",
                               severity="warning"),)
        if not self.analysis.ok:
            return ()   # the graph's own errors first
        try:
            config = TrainingConfig.from_mapping(self.graph.training)
            return fit_problems(self.graph, self.analysis, dataset, config)
        except Exception:   # an engine bug must not stop the editing
            log.error("the dataset-fit check failed:\n%s", traceback.format_exc())
            return ()

    # --- problems found by running the graph ---------------------------------------------

    def report_run_failure(self, graph: Graph, node: str, message: str,
                           code: str = "run_error") -> bool:
        """A training run of `graph` failed in node `node` (a path such as `loop1/body/fc`):
        show `message` on that node as an error diagnostic, until the graph is edited or
        `clear_run_problems` (a new run). Refused (False) when the document is no longer the
        program that ran - edited since, or another file - or has no such node: the path
        might then name a different block."""
        if not _same_program(graph, self.graph) or not self.has_node_path(node):
            return False
        self._run_graph = graph
        self.run_problems = (Diagnostic(code=code, message=message, node=node),)
        self._index_diagnostics()
        self.version += 1
        return True

    def has_node_path(self, path: str) -> bool:
        """Is there a node at this path (`fc`, `loop1/body/fc`) in the document?"""
        *region, node_id = path.split(PATH_SEP)
        try:
            return self.graph.region_at(region).get(node_id) is not None
        except (KeyError, ValueError):
            return False

    def clear_run_problems(self) -> None:
        if self.run_problems:
            self.run_problems, self._run_graph = (), None
            self._index_diagnostics()
            self.version += 1

    # --- clipboard ------------------------------------------------------------------------

    def _selected(self) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
        here = self.current_graph()
        nodes = tuple(n for n in here.nodes if n.id in self.selection)
        edges = tuple(e for e in here.edges
                      if e.src[0] in self.selection and e.dst[0] in self.selection)
        return nodes, edges

    def copy(self) -> bool:
        """Copy the selected nodes and the wires among them to the clipboard."""
        nodes, edges = self._selected()
        if not nodes:
            self.set_status("nothing selected to copy", "info")
            return False
        self.clipboard = (nodes, edges)
        self.clipboard_text = dumps(Graph(nodes, edges, name="dprog clipboard"))
        self._paste_count = 0
        self.set_status(f"copied {len(nodes)} block{'s' if len(nodes) != 1 else ''}")
        return True

    def cut(self) -> bool:
        """Copy, then delete the selection (one undo step)."""
        if not self.copy():
            return False
        return self.do(_Cut(self.region, frozenset(self.selection)))

    def paste(self, at: tuple[float, float] | None = None) -> bool:
        """Paste the clipboard into the current region: its top-left block at `at`, or (None)
        a little below-right of the originals, further for each repeated paste. The pasted
        nodes become the selection."""
        if self.clipboard is None:
            self.set_status("the clipboard is empty", "info")
            return False
        nodes, edges = self.clipboard
        return self._paste(nodes, edges, at)

    def paste_text(self, text: str, at: tuple[float, float] | None = None) -> bool:
        """Paste dprog graph JSON (from the OS clipboard); a bad text sets status."""
        try:
            graph = loads(text, "the clipboard")
        except GraphFileError as e:
            self.set_status(f"can't paste: {e}", "warning")
            return False
        return self._paste(graph.nodes, graph.edges, at)

    def duplicate(self) -> bool:
        """Paste a copy of the selection next to it, leaving the clipboard alone."""
        nodes, edges = self._selected()
        if not nodes:
            self.set_status("nothing selected to duplicate", "info")
            return False
        return self.do(Paste(self.region, nodes, edges, PASTE_STEP))

    def _paste(self, nodes, edges, at) -> bool:
        if not nodes:
            self.set_status("nothing to paste", "info")
            return False
        if at is None:
            self._paste_count += 1
            offset = (PASTE_STEP[0] * self._paste_count, PASTE_STEP[1] * self._paste_count)
        else:
            left = min(n.pos[0] for n in nodes)
            top = min(n.pos[1] for n in nodes)
            offset = (at[0] - left, at[1] - top)
        return self.do(Paste(self.region, tuple(nodes), tuple(edges), offset))

    def delete_selection(self) -> bool:
        if not self.selection:
            self.set_status("nothing selected to delete", "info")
            return False
        return self.do(RemoveNodes(self.region, frozenset(self.selection)))

    # --- files ----------------------------------------------------------------------------

    def new(self) -> None:
        """An empty untitled document (history reset). Views ask about unsaved changes first."""
        self._sample = None
        self._reset(Graph(), None)
        self.set_status("new graph")

    def open(self, path: str | os.PathLike) -> bool:
        """Open a graph file. On any problem the current document stays and `status` says
        what is wrong with the file (and where)."""
        path = Path(path)
        try:
            graph = load_graph(path)
            self._reset(graph, path)
        except GraphFileError as e:
            self.set_status(f"can't open: {e}", "error")
            return False
        except Exception as e:
            log.error("opening %s failed:\n%s", path, traceback.format_exc())
            self.set_status(f"can't open {path}: {type(e).__name__}: {e}", "error")
            return False
        self._sample = None
        self._remember(path)
        self.set_status(f"opened {path}")
        return True

    def open_sample(self, name: str) -> bool:
        """Open a bundled sample as an untitled document (saving asks for a file, so the
        sample itself is never overwritten)."""
        if name not in sample_names():
            self.set_status(f"no sample called {name!r}", "warning")
            return False
        try:
            graph = load_graph(SAMPLES_DIR / f"{name}.json")
            self._reset(graph, None)
        except Exception as e:
            self.set_status(f"can't open sample {name}: {e}", "error")
            return False
        self._sample = f"{name} (sample)"
        self.set_status(f"opened sample {name}")
        return True

    def open_copy(self, graph: Graph, origin: str) -> bool:
        """Open `graph` as an untitled document whose title names where it came from
        (`origin`, e.g. "run moons_mlp-2": a run's graph version). False (status says why)
        when it cannot be analysed; the current document then stays."""
        try:
            self._reset(graph, None)
        except Exception as e:
            log.error("opening a copy from %s failed:\n%s", origin, traceback.format_exc())
            self.set_status(f"can't open the graph of {origin}: {type(e).__name__}: {e}", "error")
            return False
        self._sample = f"{graph.name or 'graph'} ({origin})"
        self.set_status(f"opened the graph of {origin}")
        return True

    def save(self, path: str | os.PathLike | None = None) -> bool:
        """Save (atomically) to `path`, or to `file` when None. Without either, returns False
        with a status asking for a file name (views then show a Save As dialog)."""
        target = Path(path) if path is not None else self.file
        if target is None:
            self.set_status("choose a file to save to", "info")
            return False
        try:
            save_graph(self.graph, target)
        except (OSError, ValueError) as e:
            self.set_status(f"can't save {target}: {e}", "error")
            return False
        self.file = target
        self._sample = None
        self._saved = self.graph
        self.recovery.clear()
        self._remember(target)
        self.set_status(f"saved {target}")
        return True

    def _remember(self, path: Path) -> None:
        self.recent_files = self.recovery.add_recent(path)
        if self.recovery.problem:
            self.set_status(self.recovery.problem, "warning")
            self.recovery.problem = None

    # --- recovery ---------------------------------------------------------------------------

    def maybe_autosave(self, now: float | None = None) -> bool:
        """Call every frame: autosaves every few seconds while there are unsaved changes
        (cheap when nothing changed). Returns True when it wrote."""
        wrote = self.recovery.maybe_autosave(self.graph, self.file, self.dirty,
                                             time.monotonic() if now is None else now)
        if self.recovery.problem:
            self.set_status(self.recovery.problem, "warning")
            self.recovery.problem = None
        return wrote

    def pending_recovery(self) -> PendingRecovery | None:
        """An autosave from a session that did not exit cleanly, newer than its file; the
        view offers to restore it (`restore_recovery`) or drop it (`discard_recovery`)."""
        pending = self.recovery.pending()
        if self.recovery.problem:
            self.set_status(self.recovery.problem, "warning")
            self.recovery.problem = None
        return pending

    def restore_recovery(self, pending: PendingRecovery | None = None) -> bool:
        """Load the autosaved graph as the document (unsaved, belonging to its file)."""
        pending = pending or self.pending_recovery()
        if pending is None:
            return False
        try:
            self._reset(pending.graph, pending.file)
        except Exception as e:
            log.error("restoring the autosave failed:\n%s", traceback.format_exc())
            self.recovery.set_aside(f"{type(e).__name__}: {e}")
            self.set_status(f"can't restore the autosave: {self.recovery.problem}", "error")
            self.recovery.problem = None
            return False
        self._sample = None
        self._saved = None   # unsaved by definition
        self.set_status("restored unsaved changes from the autosave")
        return True

    def discard_recovery(self) -> None:
        self.recovery.clear()

    def close(self) -> None:
        """Clean exit: removes the recovery file (views ask about unsaved changes first)."""
        self.recovery.clear()


def region_of_path(graph: Graph, path: str) -> tuple[tuple[str, ...], str] | None:
    """A walk path (`enc/double_conv/down`, `loop1/body/fc`) as (region, node id) for the
    editor: a call's expansion is that function's own body region `(FUNCTION, name)`. None
    when the path leads nowhere."""
    *parts, node_id = path.split(PATH_SEP)
    region: tuple[str, ...] = ()
    here = graph
    try:
        for owner, name in zip(parts[::2], parts[1::2], strict=True):
            node = here.node(owner)
            if node.type == "call":
                region, here = (FUNCTION, name), graph.functions[name].body
            else:
                region, here = (*region, owner, name), node.regions[name]
    except (KeyError, ValueError):
        return None
    return (region, node_id) if here.get(node_id) is not None else None


def _same_program(a: Graph | None, b: Graph) -> bool:
    """Would `b` train exactly as `a` did? Positions do not matter; anything else does,
    training settings included (a different dataset can fix a run's failure)."""
    return a is not None and same_structure(a, b) and a.training == b.training


@dataclass(frozen=True)
class _Cut(RemoveNodes):
    @property
    def label(self) -> str:
        return "Cut"


def _label(command: Any) -> str:
    try:
        return str(command.label)
    except Exception:
        return type(command).__name__
