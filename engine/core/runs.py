"""The run store: every training run of a graph, kept beside the graph file, readable by the
studio and the command line alike (`dprog runs GRAPH`). Pure: JSON and the file system, no
torch (the checkpoint files are engine.runtime.checkpoint's).

Layout, documented in docs/runs.md:

    <graph dir>/runs/<graph stem>-<n>/     n = 1, 2, ...: one folder per run, never reused
        run.json        what the run was: name, date, the graph (file, sha256 of its bytes,
                        its text), the full config, the parent run (branching), the live
                        edits, the outcome and the final metrics
        steps.jsonl     one line per optimizer step: step, epoch, loss, accuracy, lr
        metrics.jsonl   one line per evaluation (EvalMetrics.to_json)
        gradflow.jsonl  one gradient-flow snapshot per line (GradFlowSnapshot.to_json)
        profile.jsonl   profile mode: each block's forward and backward ms per step
        weights.pt, state.pt, graph.json, config.json, model.py, train.py, data.pt
                        the checkpoint (engine.runtime.checkpoint): the last step saved; after
                        a NaN or Inf, the last good step
        tensorboard/    TensorBoard event files, when the run was asked to write them

Guarantees:
- run.json is rewritten all or nothing (atomic rename), at the start, after each live edit
  and at the end; steps.jsonl is appended line by line, and a reader skips a half-written
  last line.
- `list_runs` never raises for a run folder: one whose run.json is missing, unreadable or
  malformed is listed with `damaged` saying why, and nothing in it is touched. A folder an
  older dprog wrote (no run.json, but config.json and metrics.jsonl) is listed as `legacy`
  from what it has.
- Names are display names stored in run.json; renaming never moves a folder, so a parent
  link (the parent's folder name) stays valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .events import (
    BlockTimes,
    EvalMetrics,
    Failed,
    Finished,
    GradFlowSnapshot,
    LiveEdit,
    NonFinite,
    Started,
    StepMetrics,
    Stopped,
)
from .fileformat import atomic_write

RUNS_DIR = "runs"
RUN_FILE, STEPS_FILE, METRICS_FILE, GRADFLOW_FILE, PROFILE_FILE = (
    "run.json", "steps.jsonl", "metrics.jsonl", "gradflow.jsonl", "profile.jsonl")
TENSORBOARD_DIR = "tensorboard"
RUN_FORMAT, RUN_VERSION = "dprog-run", 1
MAX_RUN_JSON = 16 << 20           # a graph text of a few MB fits; a hostile file does not
MAX_NAME = 200
OUTCOMES = ("running", "finished", "stopped", "failed", "nonfinite")
# The settings shown beside a run's name in a list (the rest is in run.json's config).
KEY_SETTINGS = ("optimizer", "lr", "batch_size", "epochs", "steps", "schedule", "seed")


class RunError(ValueError):
    """A run store request that cannot be done (a name too long, a folder that is not a run)."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def graph_hash(data: bytes) -> str:
    """The sha256 of a graph file's bytes: two runs trained the same graph version iff equal."""
    return hashlib.sha256(data).hexdigest()


def runs_folder(graph_path: str | Path) -> Path:
    """Where the runs of `graph_path` live: `runs/` beside the file."""
    return Path(graph_path).parent / RUNS_DIR


def _run_number(folder_name: str, stem: str) -> int | None:
    found = re.fullmatch(re.escape(stem) + r"-(\d{1,9})", folder_name)
    return int(found.group(1)) if found else None


def new_run_folder(graph_path: str | Path) -> Path:
    """Create and return the next free `runs/<stem>-<n>/` beside the graph (n counts from 1;
    made with mkdir, so two processes never get the same one)."""
    base, stem = runs_folder(graph_path), Path(graph_path).stem
    base.mkdir(parents=True, exist_ok=True)
    taken = [n for p in base.iterdir() if (n := _run_number(p.name, stem)) is not None]
    n = max(taken, default=0) + 1
    while True:
        folder = base / f"{stem}-{n}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            n += 1


# ---- what run.json says --------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """One run folder as the list shows it. `damaged` is None for a readable run, else why not
    (then only `folder` and `name` mean anything); `legacy` marks a folder written before
    run.json existed."""

    folder: Path
    name: str
    created: str = ""
    graph_file: str | None = None
    graph_sha256: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    outcome: str = "running"
    step: int = 0
    message: str | None = None
    node: str | None = None                  # the block a failure names
    last_good_step: int | None = None        # after NaN/Inf: the step the checkpoint holds
    final: Mapping[str, Any] = field(default_factory=dict)   # the last EvalMetrics.to_json()
    parent: str | None = None                # the parent run's folder name (a sibling)
    parent_step: int | None = None           # the parent's step this run started from
    continued: bool = False                  # True: this run continued in its own folder
    edits: tuple[LiveEdit, ...] = ()
    damaged: str | None = None
    legacy: bool = False

    @property
    def id(self) -> str:
        """The folder name: stable across renames, what `parent` and `--from` refer to."""
        return self.folder.name

    def key_settings(self) -> dict[str, Any]:
        return {k: self.config[k] for k in KEY_SETTINGS if k in self.config}


def _run_record(name: str, graph_file: str | None, graph_text: str, config: Mapping[str, Any],
                parent: str | None, parent_step: int | None) -> dict[str, Any]:
    return {"format": RUN_FORMAT, "version": RUN_VERSION, "name": name, "created": _now(),
            "graph": {"file": graph_file, "sha256": graph_hash(graph_text.encode("utf-8")),
                      "text": graph_text},
            "config": dict(config), "parent": parent, "parent_step": parent_step,
            "continued": False, "edits": [],
            "outcome": {"status": "running", "step": parent_step or 0, "message": None,
                        "node": None, "last_good_step": None},
            "final": {}}


def _finite(value: Any) -> Any:
    """JSON has no NaN: non-finite numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _write_record(folder: Path, record: Mapping[str, Any]) -> None:
    text = json.dumps(_finite(dict(record)), indent=2, ensure_ascii=False, allow_nan=False)
    atomic_write(folder / RUN_FILE, (text + "\n").encode("utf-8"))


def _read_json(path: Path, limit: int = MAX_RUN_JSON) -> Any:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit:,} bytes")
    return json.loads(data.decode("utf-8"))


def _text(value: Any, default: str | None = None) -> str | None:
    return value if isinstance(value, str) else default


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_run(folder: str | Path) -> RunInfo:
    """The run in `folder`; never raises for what the folder holds (see `RunInfo.damaged`)."""
    folder = Path(folder)
    try:
        if not (folder / RUN_FILE).exists():
            return _legacy(folder)
        record = _read_json(folder / RUN_FILE)
        if not isinstance(record, dict) or record.get("format") != RUN_FORMAT:
            raise ValueError("not a dprog run record")
        if not isinstance(record.get("version"), int) or record["version"] > RUN_VERSION:
            raise ValueError(f"written by a newer dprog (version {record.get('version')!r}); "
                             "update dprog to read it")
        graph = record.get("graph") if isinstance(record.get("graph"), dict) else {}
        outcome = record.get("outcome") if isinstance(record.get("outcome"), dict) else {}
        edits = tuple(LiveEdit(e["step"], e["setting"], e.get("old"), e.get("new"))
                      for e in record.get("edits") or () if isinstance(e, dict)
                      and _int(e.get("step")) is not None and isinstance(e.get("setting"), str))
        status = outcome.get("status")
        return RunInfo(
            folder=folder, name=_text(record.get("name"), folder.name)[:MAX_NAME],
            created=_text(record.get("created"), ""), graph_file=_text(graph.get("file")),
            graph_sha256=_text(graph.get("sha256")),
            config=record["config"] if isinstance(record.get("config"), dict) else {},
            outcome=status if status in OUTCOMES else "running",
            step=_int(outcome.get("step")) or 0, message=_text(outcome.get("message")),
            node=_text(outcome.get("node")), last_good_step=_int(outcome.get("last_good_step")),
            final=record["final"] if isinstance(record.get("final"), dict) else {},
            parent=_text(record.get("parent")), parent_step=_int(record.get("parent_step")),
            continued=record.get("continued") is True, edits=edits)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        return RunInfo(folder=folder, name=folder.name, damaged=f"{RUN_FILE}: {e}")


def _legacy(folder: Path) -> RunInfo:
    """A folder an older dprog wrote: its config.json and the last line of metrics.jsonl."""
    if not (folder / "config.json").exists():
        raise ValueError("no run.json and no config.json: not a run folder")
    config = _read_json(folder / "config.json", 1 << 20)
    if not isinstance(config, dict):
        raise ValueError("config.json is not an object")
    evals = read_jsonl(folder / METRICS_FILE)
    last = evals[-1] if evals else {}
    created = datetime.fromtimestamp((folder / "config.json").stat().st_mtime, UTC)
    return RunInfo(folder=folder, name=folder.name, created=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   config=config, outcome="finished" if (folder / "state.pt").exists() else "stopped",
                   step=_int(last.get("step")) or 0, final=last, legacy=True)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The whole lines of a JSONL log that hold JSON objects; a missing file is empty, and a
    half-written or garbled line is skipped, never fatal."""
    out = []
    try:
        with open(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    obj = json.loads(line)
                    if isinstance(obj, dict):
                        out.append(obj)
    except OSError:
        pass
    return out


def cut_log(path: str | Path, last_step: int) -> None:
    """Keep the whole lines of a JSONL log whose step is at most `last_step` (a run continued
    from its checkpoint: its log never runs ahead of the state it goes with)."""
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path) if isinstance(r.get("step"), int) and r["step"] <= last_step]
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in kept).encode("utf-8"))


def list_runs(graph_path: str | Path) -> list[RunInfo]:
    """The runs of `graph_path`, oldest first: every `<stem>-<n>` folder in its runs/ (and a
    `<stem>` folder an older dprog wrote there). Damaged ones are listed too."""
    base, stem = runs_folder(graph_path), Path(graph_path).stem
    try:
        folders = [p for p in base.iterdir() if p.is_dir()
                   and (p.name == stem or _run_number(p.name, stem) is not None)]
    except OSError:
        return []
    folders.sort(key=lambda p: _run_number(p.name, stem) or 0)
    return [read_run(p) for p in folders]


def find_run(graph_path: str | Path | None, ref: str) -> Path:
    """A run folder from what a user typed: a folder path, a run's folder name, or its
    display name among the graph's runs. RunError naming the runs there otherwise."""
    if Path(ref).is_dir() and ((Path(ref) / RUN_FILE).exists()
                               or (Path(ref) / "config.json").exists()):
        return Path(ref)
    runs = list_runs(graph_path) if graph_path is not None else []
    for run in runs:
        if ref in (run.id, run.name):
            return run.folder
    known = ", ".join(r.id for r in runs) or "none"
    raise RunError(f"no run {ref!r}" + (f" among the runs of {graph_path} ({known})"
                                        if graph_path is not None else "") )


def rename_run(folder: str | Path, name: str) -> RunInfo:
    """Give the run a new display name (the folder keeps its own); returns the run re-read."""
    folder = Path(folder)
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise RunError(f"a run's name is 1-{MAX_NAME} printable characters")
    run = read_run(folder)
    if run.damaged or run.legacy:
        raise RunError(f"{folder.name}: cannot rename a run without a readable {RUN_FILE}")
    record = _read_json(folder / RUN_FILE)
    record["name"] = name
    _write_record(folder, record)
    return read_run(folder)


def delete_run(folder: str | Path) -> None:
    """Remove a run folder and everything in it. Only a folder inside a `runs/` folder that
    looks like a run (run.json or config.json) is removed: a typo never deletes elsewhere."""
    folder = Path(folder)
    if folder.parent.name != RUNS_DIR or not folder.is_dir() or folder.is_symlink() or not (
            (folder / RUN_FILE).exists() or (folder / "config.json").exists()):
        raise RunError(f"{folder}: not a run folder under {RUNS_DIR}/; nothing deleted")
    shutil.rmtree(folder)


def children(runs: Sequence[RunInfo]) -> dict[str, list[str]]:
    """run id -> the ids of the runs branched or continued from it (the history's tree)."""
    out: dict[str, list[str]] = {}
    for run in runs:
        if run.parent is not None:
            out.setdefault(run.parent, []).append(run.id)
    return out


def graph_text(folder: str | Path) -> str | None:
    """The text of the graph version the run trained (run.json's copy of the file's bytes),
    to reopen it; None when the record has none (a legacy or damaged run: its graph.json,
    the graph with the run's config, is the fallback)."""
    try:
        record = _read_json(Path(folder) / RUN_FILE)
        text = record["graph"]["text"]
        return text if isinstance(text, str) and text else None
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def read_metrics(folder: str | Path) -> list[dict[str, Any]]:
    """metrics.jsonl: one EvalMetrics.to_json() per evaluation (the validation curves)."""
    return read_jsonl(Path(folder) / METRICS_FILE)


def read_steps(folder: str | Path) -> list[dict[str, Any]]:
    """steps.jsonl: one {step, epoch, loss, accuracy, lr} per optimizer step."""
    return read_jsonl(Path(folder) / STEPS_FILE)


# ---- recording a run -------------------------------------------------------------------------


class _Save:
    """Asks a recorder to write run.json now (its first write goes through `put` too)."""


class RunRecorder:
    """Writes one run's record as its events arrive: the trainer calls `put(event)` with every
    event it emits (pass it as `Trainer(record=...)`). run.json at the start, after each
    `LiveEdit` and at the end; steps.jsonl line by line. With `logs=True` it also writes
    metrics.jsonl and gradflow.jsonl (the studio; `dprog train` writes those itself).

    A write that fails (a full disk) is remembered in `error` and recording stops; training
    goes on, so a failing disk never loses the run in memory."""

    def __init__(self, folder: str | Path, *, name: str | None = None,
                 graph_file: str | Path | None = None, graph_text: str = "",
                 config: Mapping[str, Any] | None = None, parent: str | None = None,
                 parent_step: int | None = None, continued: bool = False, logs: bool = False):
        self.folder = Path(folder)
        self.logs = logs
        self.error: str | None = None
        self._files: dict[str, Any] = {}
        self._last_eval: dict[str, Any] = {}
        self._last_step = parent_step or 0
        self.continued = continued
        kept = read_run(self.folder) if continued and (self.folder / RUN_FILE).exists() else None
        if kept is not None and kept.damaged is not None:
            # Never write over what cannot be read: it moves aside, and a new record starts.
            with contextlib.suppress(OSError):
                n = 1
                while (self.folder / f"{RUN_FILE}.damaged-{n}").exists():
                    n += 1
                (self.folder / RUN_FILE).rename(self.folder / f"{RUN_FILE}.damaged-{n}")
            kept = None
        if kept is not None:
            # The same run, on: keep its record (name, date, parent, earlier edits).
            self.record = _read_json(self.folder / RUN_FILE)
            self.record.update(continued=True, config=dict(config or kept.config))
            if name:
                self.record["name"] = name
            self.record["outcome"] = {"status": "running", "step": kept.step, "message": None,
                                      "node": None, "last_good_step": None}
            self.record.setdefault("edits", [])
        else:
            graph_name = str(graph_file) if graph_file is not None else None
            self.record = _run_record(name or self.folder.name, graph_name, graph_text,
                                      config or {}, parent, parent_step)
        self.put(_Save())

    @classmethod
    def create(cls, graph_path: str | Path, graph_text: str, config: Mapping[str, Any], *,
               name: str | None = None, parent: str | None = None,
               parent_step: int | None = None, logs: bool = False) -> RunRecorder:
        """A new run of `graph_path` in the next free `runs/<stem>-<n>/`."""
        folder = new_run_folder(graph_path)
        return cls(folder, name=name, graph_file=Path(graph_path).name, graph_text=graph_text,
                   config=config, parent=parent, parent_step=parent_step, logs=logs)

    @property
    def name(self) -> str:
        return self.record["name"]

    def put(self, event: Any) -> None:
        if self.error is not None:
            return
        try:
            self._handle(event)
        except OSError as e:
            self.error = f"cannot write the run record in {self.folder} ({e.strerror or e})"
            self.close()

    def _handle(self, event: Any) -> None:
        if isinstance(event, _Save):
            self._save()
        elif isinstance(event, Started) and self.continued:
            logs = (STEPS_FILE, PROFILE_FILE)
            for name in (*logs, METRICS_FILE, GRADFLOW_FILE) if self.logs else logs:
                cut_log(self.folder / name, event.first_step)
        elif isinstance(event, StepMetrics):
            self._last_step = event.step
            # Buffered: flushed at each evaluation and at the end, not at every step (a
            # flush per step would cost a few % of a small model's step).
            self._append(STEPS_FILE, {"step": event.step, "epoch": event.epoch,
                                      "loss": event.loss, "accuracy": event.accuracy,
                                      "lr": event.lr}, flush=False)
        elif isinstance(event, EvalMetrics):
            self._last_eval = event.to_json()
            self.flush()
            if self.logs:
                self._append(METRICS_FILE, self._last_eval)
        elif isinstance(event, GradFlowSnapshot):
            if self.logs:
                self._append(GRADFLOW_FILE, event.to_json())
        elif isinstance(event, BlockTimes):
            self._append(PROFILE_FILE, event.to_json(), flush=False)
        elif isinstance(event, LiveEdit):
            self.record["edits"].append(event.to_json())
            self._save()
        elif isinstance(event, NonFinite):
            self.record["outcome"].update(last_good_step=event.last_good_step, node=event.node)
            self.record["nonfinite"] = event.to_json()
        elif isinstance(event, Finished | Stopped | Failed):
            status = {Finished: "finished", Stopped: "stopped"}.get(type(event), "failed")
            if isinstance(event, Failed) and event.kind == "nonfinite":
                status = "nonfinite"
            self.record["outcome"].update(
                status=status, step=event.step,
                message=event.message if isinstance(event, Failed) else None)
            if isinstance(event, Failed) and event.node:
                self.record["outcome"]["node"] = event.node
            if isinstance(event, Finished) and event.metrics is not None:
                self._last_eval = event.metrics.to_json()
            self.record["final"] = self._last_eval
            self._save()
            self.close()

    def _append(self, name: str, obj: Mapping[str, Any], flush: bool = True) -> None:
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = open(self.folder / name, "a", encoding="utf-8")  # noqa: SIM115
        f.write(json.dumps(_finite(dict(obj))) + "\n")
        if flush:
            f.flush()

    def flush(self) -> None:
        for f in self._files.values():
            f.flush()

    def _save(self) -> None:
        _write_record(self.folder, self.record)

    def close(self) -> None:
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()
        self._files = {}


# ---- comparison -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """What sets two or more runs apart (the studio's table; `dprog runs --compare`).

    `settings`: setting → one value per run, only those that differ (dataset specs compared
    whole). `final`: metric → one value per run (None where a run has none). `gradflow`:
    node path → one summary per run (the mean gradient RMS over the run's snapshots, None
    where it never got one), for nodes of the same graph version only (empty otherwise);
    `same_graph` says whether every run trained the same graph bytes."""

    runs: tuple[str, ...]
    settings: Mapping[str, tuple[Any, ...]]
    final: Mapping[str, tuple[Any, ...]]
    gradflow: Mapping[str, tuple[float | None, ...]]
    same_graph: bool

    def gradflow_difference(self) -> dict[str, float | None]:
        """node → log10 ratio of the last run's gradient RMS to the first's (None where
        either is missing or zero): the per-block difference, signed, scale-free."""
        out = {}
        for node, values in self.gradflow.items():
            a, b = values[0], values[-1]
            out[node] = math.log10(b / a) if a and b else None
        return out


def gradflow_summary(folder: str | Path) -> dict[str, float]:
    """node path → mean gradient RMS over the run's gradient-flow snapshots."""
    sums: dict[str, list[float]] = {}
    for snap in read_jsonl(Path(folder) / GRADFLOW_FILE):
        nodes = snap.get("nodes")
        for path, flow in (nodes.items() if isinstance(nodes, dict) else ()):
            rms = flow.get("grad_rms") if isinstance(flow, dict) else None
            if isinstance(rms, int | float) and math.isfinite(rms):
                sums.setdefault(path, []).append(float(rms))
    return {k: sum(v) / len(v) for k, v in sums.items()}


def compare_runs(runs: Iterable[RunInfo]) -> Comparison:
    """The comparison of `runs` (two or more; damaged ones are left out)."""
    runs = [r for r in runs if r.damaged is None]
    keys = sorted({k for r in runs for k in r.config})
    settings = {}
    for key in keys:
        values = tuple(r.config.get(key) for r in runs)
        if any(v != values[0] for v in values):
            settings[key] = values
    metrics = sorted({k for r in runs for k in r.final if k not in ("step", "epoch")})
    final = {k: tuple(r.final.get(k) for r in runs) for k in metrics}
    hashes = {r.graph_sha256 for r in runs}
    same = len(hashes) == 1 and None not in hashes
    gradflow: dict[str, tuple[float | None, ...]] = {}
    if same:
        summaries = [gradflow_summary(r.folder) for r in runs]
        for node in sorted({n for s in summaries for n in s}):
            gradflow[node] = tuple(s.get(node) for s in summaries)
    return Comparison(tuple(r.id for r in runs), settings, final, gradflow, same)


def format_runs(runs: Sequence[RunInfo]) -> str:
    """The table `dprog runs GRAPH` prints: one line per run, branches indented under their
    parent, damaged runs marked with why."""
    by_id = {r.id: r for r in runs}
    kids = children(runs)
    lines: list[str] = []

    def line(run: RunInfo, depth: int) -> None:
        pad = "  " * depth + ("└ " if depth else "")
        if run.damaged:
            lines.append(f"{pad}{run.id}  DAMAGED: {run.damaged}")
            return
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in run.final.items()
                            if k in ("val_loss", "val_accuracy") and isinstance(v, int | float))
        settings = " ".join(f"{k}={v}" for k, v in run.key_settings().items() if v is not None)
        name = f" \"{run.name}\"" if run.name != run.id else ""
        lines.append(f"{pad}{run.id}{name}  {run.created}  {run.outcome} at step {run.step}"
                     f"{'  (legacy)' if run.legacy else ''}  {settings}"
                     + (f"  {metrics}" if metrics else ""))
        for kid in kids.get(run.id, ()):
            line(by_id[kid], depth + 1)

    for run in runs:
        if run.parent is None or run.parent not in by_id:
            line(run, 0)
    return "\n".join(lines)

