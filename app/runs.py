"""The studio's run history: the open graph's runs (engine.core.runs) as the Runs tab lists
them, and everything a user does with them, as methods the views call.

`RunHistory` reads the run store beside the document's file (`runs/<stem>-<n>/`, the layout
`dprog runs` reads) and offers: rename, delete (asked, then confirmed), reopen a run's graph
version as an untitled copy, continue a run or branch a new one from its checkpoint (the
next Train does it: `take_start`), and compare runs (`Comparison` plus each run's curves
and live edits, which the views overlay on the Training plots).

Guarantees: nothing here raises for what a run folder holds (a damaged one is a row saying
why, and every action on it is refused with a status); every action reports in the
document's status bar; settings changed for a branch go through `SetTraining`, so they are
undoable. Pure: no dearpygui, no torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.core.config import TrainingConfig
from engine.core.events import LiveEdit
from engine.core.fileformat import GraphFileError, dumps, loads
from engine.core.graph import Graph
from engine.core.runs import (
    Comparison,
    RunError,
    RunInfo,
    children,
    compare_runs,
    delete_run,
    gradflow_summary,
    graph_text,
    list_runs,
    read_metrics,
    read_steps,
    rename_run,
)

from .commands import SetTraining, same_structure
from .state import AppState
from .training import TrainingRun

log = logging.getLogger(__name__)

# The settings a row shows, in this order, with the short names it shows them by.
ROW_SETTINGS = (("lr", "lr"), ("optimizer", ""), ("epochs", "ep"), ("steps", "steps"),
                ("batch_size", "b"))
# Settings a branch does not copy into the document: the studio sets this one itself.
NOT_COPIED = ("boundary_every",)
MAX_CURVE_POINTS = 2000   # per curve, evenly thinned: a long run's steps.jsonl is big


@dataclass(frozen=True)
class RunRow:
    """One line of the Runs tab: `depth` is how far it is indented under the run it
    branched from (0: a root). Damaged rows say why in `damaged`, the rest is empty."""

    id: str
    depth: int
    name: str
    date: str
    settings: str
    final: str
    outcome: str
    parent: str | None
    damaged: str | None = None


@dataclass(frozen=True)
class Curves:
    """A run's curves, (steps, values) each, read from its logs, and its live edits."""

    id: str
    name: str
    step_loss: tuple[list[float], list[float]]
    val_loss: tuple[list[float], list[float]]
    train_acc: tuple[list[float], list[float]]
    val_acc: tuple[list[float], list[float]]
    edits: tuple[LiveEdit, ...]


@dataclass(frozen=True)
class PendingStart:
    """What the next Train does instead of a fresh run: start from run `run_id`'s checkpoint
    (`folder`), as that run going on (`continue_run`) or as a new run branched from it.
    `graph` is the run's own graph version: its weights are what the checkpoint holds."""

    run_id: str
    name: str
    folder: Path
    step: int
    continue_run: bool
    graph: Graph

    def describe(self) -> str:
        what = "continues" if self.continue_run else "branches a new run from"
        return f"the next Train {what} run {self.name} at step {self.step}"


class RunHistory:
    """The runs of the document's file. Main thread only; see the module docstring.

    Attributes (read them; change them through methods): `runs` (oldest first), `selected`
    (run ids in the order picked), `comparison` and `curves` (the last compare; empty when
    none), `pending` (a start from a run, for the next Train), `deleting` (a run whose
    deletion waits for confirmation), `version` (bumps on every change)."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.runs: list[RunInfo] = []
        self.selected: list[str] = []
        self.comparison: Comparison | None = None
        self.curves: list[Curves] = []
        self.pending: PendingStart | None = None
        self.deleting: str | None = None
        self.version = 0
        self._listed_for: Path | None = None
        self._training: TrainingRun | None = None   # the studio's run, once it trained

    # -- the list -----------------------------------------------------------------------------

    @property
    def graph_path(self) -> Path | None:
        return self.state.file

    def refresh(self, force: bool = False) -> bool:
        """Re-read the run store when the document's file changed, or when `force`d (a run
        ended, an action changed the folders). True when the list was read again."""
        path = self.graph_path
        if not force and path == self._listed_for:
            return False
        if path != self._listed_for:   # another graph: its runs are others
            self.selected, self.pending, self.deleting = [], None, None
            self.clear_comparison()
        self._listed_for = path
        try:
            self.runs = list_runs(path) if path is not None else []
        except Exception:   # list_runs reports folders as damaged; this is an engine bug
            log.exception("listing the runs of %s failed", path)
            self.runs = []
        ids = {r.id for r in self.runs}
        self.selected = [i for i in self.selected if i in ids]
        self.version += 1
        return True

    def run(self, run_id: str) -> RunInfo | None:
        return next((r for r in self.runs if r.id == run_id), None)

    def rows(self) -> list[RunRow]:
        """The runs as a tree: each run under the one it branched from (oldest first), roots
        in order; a run whose parent is gone is a root."""
        by_id = {r.id: r for r in self.runs}
        kids = children(self.runs)
        out: list[RunRow] = []
        seen: set[str] = set()

        def add(run: RunInfo, depth: int) -> None:
            if run.id in seen:   # a hand-edited parent loop: list each run once
                return
            seen.add(run.id)
            out.append(_row(run, depth))
            for kid in kids.get(run.id, ()):
                add(by_id[kid], depth + 1)

        for run in self.runs:
            if run.parent is None or run.parent not in by_id or run.parent == run.id:
                add(run, 0)
        for run in self.runs:   # parents in a loop: still listed
            add(run, 0)
        return out

    def select(self, run_id: str, on: bool = True) -> None:
        if on and run_id not in self.selected and self.run(run_id) is not None:
            self.selected.append(run_id)
        elif not on and run_id in self.selected:
            self.selected.remove(run_id)
        else:
            return
        self.version += 1

    def _one(self, run_id: str | None, doing: str) -> RunInfo | None:
        """The run an action is about (the one selected when `run_id` is None), refused with
        a status when there is none or it is damaged."""
        if run_id is None:
            if len(self.selected) != 1:
                self._say(f"select one run to {doing}", "info")
                return None
            run_id = self.selected[0]
        run = self.run(run_id)
        if run is None:
            self._say(f"no run {run_id!r} among this graph's runs", "warning")
        elif run.damaged is not None:
            self._say(f"cannot {doing} {run.id}: it is damaged ({run.damaged})", "warning")
            return None
        return run

    def _busy(self, run: RunInfo, doing: str) -> bool:
        """Is `run` the one training now? Its recorder rewrites run.json at the end and
        writes its logs as it goes, so renaming or deleting it waits (a status says so)."""
        t = self._training
        if t is not None and t.active and t.record_folder is not None \
                and Path(t.record_folder) == run.folder:
            self._say(f"run {run.id} is training: {doing} it once it has ended", "info")
            return True
        return False

    def _say(self, message: str, level: Any = "info") -> None:
        self.state.set_status(message, level)
        self.version += 1

    # -- actions --------------------------------------------------------------------------------

    def rename(self, run_id: str | None, name: str) -> bool:
        run = self._one(run_id, "rename")
        if run is None or self._busy(run, "rename"):
            return False
        try:
            rename_run(run.folder, name)
        except (RunError, OSError) as e:
            self._say(f"cannot rename {run.id}: {e}", "warning")
            return False
        self.refresh(force=True)
        self._say(f"renamed run {run.id} to {name.strip()!r}")
        return True

    def ask_delete(self, run_id: str | None = None) -> bool:
        """Deleting asks first: the view shows `deleting` with Delete and Cancel."""
        if run_id is None and len(self.selected) == 1:
            run_id = self.selected[0]
        if run_id is None or self.run(run_id) is None:   # damaged runs may be deleted
            self._say("select one run to delete", "info")
            return False
        if self._busy(self.run(run_id), "delete"):
            return False
        self.deleting = run_id
        self.version += 1
        return True

    def cancel_delete(self) -> None:
        self.deleting = None
        self.version += 1

    def confirm_delete(self) -> bool:
        run = self.run(self.deleting) if self.deleting is not None else None
        self.deleting = None
        if run is None:
            self.version += 1
            return False
        if self.pending is not None and self.pending.run_id == run.id:
            self.pending = None
        try:
            delete_run(run.folder)
        except (RunError, OSError) as e:
            self._say(f"cannot delete {run.id}: {e}", "warning")
            return False
        self.curves = [c for c in self.curves if c.id != run.id]
        self.refresh(force=True)
        self._say(f"deleted run {run.id} ({run.name})")
        return True

    def version_of(self, run: RunInfo, quiet: bool = False) -> Graph | None:
        """The graph version `run` trained: run.json's copy of the file's bytes, or, for a
        run without one, its checkpoint's graph.json. None (with a status, unless `quiet`)
        when neither reads."""
        say = (lambda *a: None) if quiet else self._say
        text = graph_text(run.folder)
        source = f"{run.id}/run.json"
        if text is None and (run.folder / "graph.json").is_file():
            try:
                text = (run.folder / "graph.json").read_text(encoding="utf-8")
                source = f"{run.id}/graph.json"
            except (OSError, UnicodeDecodeError):
                text = None
        if text is None:
            say(f"run {run.id} keeps no readable graph version", "warning")
            return None
        try:
            return loads(text, source)
        except GraphFileError as e:
            say(f"cannot read the graph version of run {run.id}: {e}", "warning")
            return None

    def reopen(self, run_id: str | None = None) -> bool:
        """Open the graph version the run trained as an untitled copy (the document's file
        and its runs stay as they are; Save As keeps the copy)."""
        run = self._one(run_id, "reopen")
        graph = self.version_of(run) if run is not None else None
        if run is None or graph is None:
            return False
        if not self.state.open_copy(graph, f"run {run.id}"):
            return False
        self.state.set_status(f"opened the graph version of run {run.id} ({run.name}) as an "
                              "untitled copy: Save As keeps it")
        self.version += 1
        return True

    def continue_from(self, run_id: str | None = None) -> bool:
        """Arm the next Train to go on with the run in its own folder from its checkpoint. A
        finished run goes on for as long again (epochs or steps doubled); one that stopped
        early, to its end. The settings go into the Training tab (undoable), where they can
        be changed first."""
        return self._arm(run_id, continue_run=True)

    def branch_from(self, run_id: str | None = None) -> bool:
        """Arm the next Train to start a new run from the run's checkpoint, branched from it,
        with the settings in the Training tab (set to the run's, for the user to change; from
        a finished run's end, for as long again)."""
        return self._arm(run_id, continue_run=False)

    def _arm(self, run_id: str | None, continue_run: bool) -> bool:
        doing = "continue" if continue_run else "branch from"
        run = self._one(run_id, doing)
        if run is None:
            return False
        if self.graph_path is None:
            self._say(f"save the graph to {doing} its runs", "info")
            return False
        if run.outcome == "running":
            self._say(f"run {run.id} is still running (or ended without its record); "
                      f"{doing} it once it has ended", "warning")
            return False
        if not (run.folder / "state.pt").is_file():
            self._say(f"run {run.id} has no checkpoint to {doing}", "warning")
            return False
        graph = self.version_of(run)
        if graph is None:
            return False
        step = run.last_good_step if run.outcome == "nonfinite" and run.last_good_step \
            is not None else run.step
        config = _checkpoint_config(run)
        if run.outcome == "finished":   # from its end: on for as long again
            if config.get("steps"):
                config["steps"] = 2 * int(config["steps"])
            elif isinstance(config.get("epochs"), int):
                config["epochs"] = 2 * config["epochs"]
        if not self._take_settings(config):
            return False
        self.pending = PendingStart(run.id, run.name, run.folder, step, continue_run, graph)
        note = ""
        if not same_structure(graph, self.state.graph):
            note = " (it trains that run's graph version, not the open graph, which differs)"
        self._say(f"{self.pending.describe()}{note}: change settings in Training first, "
                  "then Train")
        return True

    def _take_settings(self, config: Mapping[str, Any]) -> bool:
        """Make the document's training section say `config` (a run's), changing only the
        keys that differ, as one undoable command."""
        try:
            current = TrainingConfig.from_mapping(self.state.graph.training).to_mapping()
            wanted = TrainingConfig.from_mapping(
                {k: v for k, v in config.items() if k in current}).to_mapping()
        except (TypeError, ValueError) as e:
            self._say(f"the run's settings cannot be used: {e}", "warning")
            return False
        changes = tuple((k, v) for k, v in wanted.items()
                        if k not in NOT_COPIED and current.get(k) != v)
        return not changes or self.state.do(SetTraining(changes))

    def cancel_start(self) -> None:
        if self.pending is not None:
            self.pending = None
            self._say("the next Train starts a fresh run")

    def take_start(self) -> PendingStart | None:
        """The pending start, for the Train about to happen (it is used once)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            self.version += 1
        return pending

    def train(self, run: TrainingRun) -> bool:
        """Start the document's training as the studio's Train does: kept in the run store
        beside its file (an edited graph is recorded as saving it would write it), unkept
        without a file (the run says so), from a run's checkpoint when one is pending."""
        state = self.state
        self._training = run
        pending = self.take_start()
        graph = self.training_graph(pending) if pending is not None else state.graph
        text = dumps(graph) if state.file is not None and (state.dirty or pending) else None
        started = run.start(graph, state.file.parent if state.file else None,
                            start_from=pending.folder if pending else None,
                            graph_file=state.file,
                            continue_run=bool(pending and pending.continue_run),
                            graph_text=text)
        if not started:
            self.pending = pending   # still armed for the Train that can start
        return started

    def training_graph(self, pending: PendingStart) -> Graph:
        """What a pending start trains: the run's graph version with the document's settings
        (set from the run's, maybe changed since)."""
        return replace(pending.graph, training=self.state.graph.training)

    # -- comparison ------------------------------------------------------------------------------

    def compare(self, run_ids: Sequence[str] | None = None) -> bool:
        """Read the runs' curves and compare them (one run: just its curves). The views draw
        `curves` over the Training plots and `comparison` as tables."""
        ids = list(run_ids) if run_ids is not None else list(self.selected)
        runs = [r for i in ids if (r := self.run(i)) is not None]
        damaged = [r.id for r in runs if r.damaged is not None]
        runs = [r for r in runs if r.damaged is None]
        if not runs:
            self._say("select runs to compare (tick them in the list)", "info")
            return False
        self.curves = [_curves(r) for r in runs]
        self.comparison = compare_runs(runs) if len(runs) > 1 else None
        if self.comparison is not None and not self.comparison.gradflow \
                and self._same_model(runs):
            self.comparison = replace(self.comparison, gradflow=_gradflow(runs))
        what = ", ".join(r.name for r in runs)
        skipped = f"; left out damaged {', '.join(damaged)}" if damaged else ""
        self._say(("comparing " if len(runs) > 1 else "showing run ") + what + skipped)
        return True

    def _same_model(self, runs: Sequence[RunInfo]) -> bool:
        """Did the runs train the same model? The studio keeps the training settings in the
        graph file, so runs with different settings trained different bytes (compare_runs'
        `same_graph`) yet the same blocks and wires, whose gradient flow compares."""
        graphs = [self.version_of(r, quiet=True) for r in runs]
        return all(g is not None for g in graphs) and all(
            same_structure(graphs[0], g) for g in graphs[1:])

    def clear_comparison(self) -> None:
        if self.curves or self.comparison is not None:
            self.curves, self.comparison = [], None
            self.version += 1


def _checkpoint_config(run: RunInfo) -> dict[str, Any]:
    """The settings the run's checkpoint goes on with: its config.json, which live edits
    update (run.json keeps the config the run started with, and the edits beside it);
    run.json's config when that file cannot be read."""
    try:
        config = json.loads((run.folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        config = None
    return dict(config) if isinstance(config, dict) else dict(run.config)


def _gradflow(runs: Sequence[RunInfo]) -> dict[str, tuple[float | None, ...]]:
    """node path → each run's mean gradient RMS (None where it has none)."""
    summaries = [gradflow_summary(r.folder) for r in runs]
    return {node: tuple(s.get(node) for s in summaries)
            for node in sorted({n for s in summaries for n in s})}


def _row(run: RunInfo, depth: int) -> RunRow:
    if run.damaged is not None:
        return RunRow(run.id, depth, run.name, "", "", "", "damaged", run.parent, run.damaged)
    parts = []
    for key, short in ROW_SETTINGS:
        value = run.config.get(key)
        if value is None or (key == "epochs" and run.config.get("steps")):
            continue
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{short} {shown}" if short else shown)
    final = []
    for key, short in (("val_loss", "loss"), ("val_accuracy", "acc")):
        value = run.final.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            final.append(f"{short} {value:.0%}" if key == "val_accuracy" else f"{short} {value:.3g}")
    outcome = run.outcome + (f" at {run.step}" if run.outcome != "finished" else "")
    if run.legacy:
        outcome += " (legacy)"
    if run.edits:
        outcome += f" · {len(run.edits)} edit{'s' if len(run.edits) != 1 else ''}"
    return RunRow(run.id, depth, run.name, run.created.replace("T", " ").removesuffix("Z"),
                  "  ".join(parts), "  ".join(final), outcome, run.parent)


def _thin(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    k = max(1, len(xs) // MAX_CURVE_POINTS)
    return (xs[::k], ys[::k]) if k > 1 else (xs, ys)


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        step, value = r.get("step"), r.get(key)
        if isinstance(step, int) and isinstance(value, int | float) and not isinstance(value, bool):
            xs.append(float(step))
            ys.append(float(value))
    return _thin(xs, ys)


def _curves(run: RunInfo) -> Curves:
    steps = read_steps(run.folder)
    evals = read_metrics(run.folder)
    return Curves(run.id, run.name, _series(steps, "loss"), _series(evals, "val_loss"),
                  _series(evals, "train_accuracy"), _series(evals, "val_accuracy"), run.edits)


__all__ = ["Curves", "PendingStart", "RunHistory", "RunRow"]
