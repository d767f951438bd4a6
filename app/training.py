"""The studio's side of a training run: start/pause/stop, and what the run has shown so far.

`TrainingRun` wraps `engine.runtime.trainer.Trainer` for the studio. It imports torch and the
trainer lazily, on the worker thread (so pressing Train never blocks a frame on a 2-second
import), and keeps everything the views plot: step losses, evaluation metrics, gradient-flow
snapshots with a short history, the latest decision-boundary grid and the data points, a
program's Parameter values over time, and the latest image grid (an autoencoder's
reconstructions).

`TextJob` writes text with a trained character model on a worker thread (the studio's
"Generate text"), so a long generation never holds a frame.

The main thread calls `poll()` once per frame; it drains the trainer's event queue with a
bound on events and time, so a fast trainer can never stall the UI. Events are dispatched by
type through one table of the classes `engine.core.events` defines (pure, so this module
stays importable without torch: dearpygui-free and torch-free at import); a renamed event is
an import error here, not an event dropped.

Per-run counters (`version`, `metrics_version`, `grad_version`, `boundary_version`,
`images_version`) let views redraw only what changed, and only at the rate they choose.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.config import TrainingConfig
from engine.core.events import (
    BlockTimes,
    CheckpointSaved,
    DecisionBoundary,
    EvalMetrics,
    Failed,
    Finished,
    GradFlowSnapshot,
    ImageGrid,
    LiveEdit,
    NonFinite,
    ParameterValues,
    Paused,
    Resumed,
    RunRecorded,
    Started,
    StepMetrics,
    Stopped,
    WireReading,
)
from engine.core.graph import Graph, source_node

_INF = float("inf")
HISTORY = 60             # gradient-flow snapshots kept for the heatmap and histories
MAX_POINTS = 20_000      # step-loss points kept (halved by decimation beyond this)
BOUNDARY_UPDATES = 40    # aim for about this many decision-boundary grids per run,
BOUNDARY_MAX_EVERY = 50  # but at least one every 50 steps (a 64×64 grid: one small forward)
DEAD_FRACTION = 0.5      # a node (a ReLU) with at least this share of dead units is flagged

IDLE, LOADING, RUNNING, PAUSED, STOPPING = "idle", "loading", "running", "paused", "stopping"
FINISHED, STOPPED, FAILED = "finished", "stopped", "failed"
ACTIVE = (LOADING, RUNNING, PAUSED, STOPPING)


@dataclass
class Series:
    """x/y points for one plotted line; decimated in place once it grows past MAX_POINTS."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    stride: int = 1
    _skip: int = 0

    def add(self, x: float, y: float | None) -> None:
        if y is None or y != y or y in (_INF, -_INF):
            return
        if self.stride > 1:
            self._skip += 1
            if self._skip < self.stride:
                return
            self._skip = 0
        self.x.append(x)
        self.y.append(y)
        if len(self.x) > MAX_POINTS:
            del self.x[1::2], self.y[1::2]
            self.stride *= 2

    def clear(self) -> None:
        self.x.clear()
        self.y.clear()
        self.stride, self._skip = 1, 0

    def view(self, limit: int = 500) -> tuple[list[float], list[float]]:
        """At most `limit` points, evenly thinned, for drawing."""
        k = max(1, len(self.x) // limit)
        return (self.x[::k], self.y[::k]) if k > 1 else (self.x, self.y)


class EventSink:
    """What the trainer puts events into: a deque, whose append and popleft are atomic in
    CPython, so the worker and the main thread share it without a lock (and without the
    ~1.5 µs a `queue.Queue` round trip costs per event, which adds up at 1000 steps/s)."""

    def __init__(self) -> None:
        self.items: deque = deque()
        self.put = self.items.append

    def qsize(self) -> int:
        return len(self.items)


class TrainingRun:
    """One studio's training state; see the module docstring. Main thread only, except the
    worker it starts."""

    def __init__(self) -> None:
        self.events = EventSink()
        self.trainer: Any = None
        self._thread: threading.Thread | None = None
        self._stop_early = False
        # Every event the trainer sends, and the studio's own two; poll() ignores others.
        self.handlers: dict[type, Callable[[Any], None]] = {
            Started: self._on_started, StepMetrics: self._on_step, EvalMetrics: self._on_eval,
            GradFlowSnapshot: self._on_gradflow, DecisionBoundary: self._on_boundary,
            ParameterValues: self._on_parameters, ImageGrid: self._on_images,
            CheckpointSaved: _ignore, Paused: self._on_paused, Resumed: self._on_resumed,
            Stopped: self._on_stopped, Finished: self._on_finished, Failed: self._on_failed,
            _StudioStopped: self._on_studio_stopped, _StudioFailure: self._on_studio_failure,
            LiveEdit: self._on_live_edit, RunRecorded: self._on_recorded,
            # issue 17's inspection events: the wire views give them handlers
            **dict.fromkeys((WireReading, BlockTimes, NonFinite), _ignore),
        }
        self.reset()
        self.runs = 0
        self._forget_at_end = False   # see forget()

    def reset(self) -> None:
        self.status = IDLE
        self.message = ""
        self.graph: Graph | None = None
        self.step = 0
        self.first_step = 0
        self.total_steps = 0
        self.steps_per_epoch = 1
        self.epoch = 0
        self.task = ""
        self.loss_name = ""
        self.device = ""
        self.parameters = 0
        self.started_at = 0.0
        self.running_since = 0.0
        self.finished_seconds: float | None = None
        self.failed_node: str | None = None     # the node path a failure names, if any
        self.failed_kind = ""                     # Failed.kind: error, nonfinite, ...
        self.failed_text = ""                     # what went wrong, without the node's name
        self.step_loss = Series()
        self.step_acc = Series()
        self.train_loss = Series()
        self.val_loss = Series()
        self.train_acc = Series()
        self.val_acc = Series()
        self.flow: GradFlowSnapshot | None = None   # the latest
        self.history: deque[GradFlowSnapshot] = deque(maxlen=HISTORY)
        self._flags: tuple[int, dict[str, str]] = (-1, {})
        self.boundary: DecisionBoundary | None = None
        self.points: tuple[Any, Any] | None = None   # (x (N, 2), y (N,)) numpy, for 2-D data
        self.is_2d = False
        # A program's Parameter values: "node" (one value) or "node[i]" → its series.
        self.parameter_values: dict[str, Series] = {}
        self.images: ImageGrid | None = None   # the latest
        self.images_version = 0
        # The run store (engine.core.runs): where this run is kept, or why it is not.
        self.record_folder: str | None = None
        self.record_name = ""
        self.not_kept = ""          # "": kept (or not started); else why the run is not kept
        self.edits: list[LiveEdit] = []   # live edits, in order, as the trainer applied them
        self.metric_points = 0
        self.version = 0
        self.metrics_version = 0
        self.grad_version = 0
        self.boundary_version = 0

    # -- control -------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def start(self, graph: Graph, base_dir: str | Path | None = None, *,
              start_from: str | Path | None = None, graph_file: str | Path | None = None,
              continue_run: bool = False, graph_text: str | None = None) -> bool:
        """Train `graph` with its own training settings on a worker thread. False if a run is
        still going (stop it first). `graph_file`: the file `graph` belongs to, whose run
        store keeps the run (engine.core.runs), recorded with `graph_text` (the graph's bytes;
        None: the file's); without one the run trains unkept, and says so. `start_from`: a
        run folder whose checkpoint the run starts from, as a new run branched from it or,
        with `continue_run`, that run going on."""
        if self.active:
            return False
        self.reset()
        if graph_file is None:
            self.not_kept = "not kept: save the graph to keep its runs"
        self._forget_at_end = False
        self.runs += 1
        self.graph = graph
        self.events = EventSink()
        self.status = LOADING
        self.message = "loading torch…"
        self.started_at = time.monotonic()
        self._stop_early = False
        self.trainer = None
        events = self.events
        self._thread = threading.Thread(target=self._work, args=(graph, base_dir, events,
                                                                 start_from, graph_file,
                                                                 continue_run, graph_text),
                                        name="dprog-train", daemon=True)
        self._thread.start()
        self.version += 1
        return True

    def _work(self, graph: Graph, base_dir: str | Path | None, events: EventSink,
              start_from: str | Path | None = None, graph_file: str | Path | None = None,
              continue_run: bool = False, graph_text: str | None = None) -> None:
        """Worker thread: import torch and the trainer, build it, run it to the end.

        A stop that comes while torch loads ends the run before its setup (loading the
        data, compiling), which takes seconds: closing the studio waits for this thread."""
        try:
            from engine.runtime.trainer import Trainer, recorded_trainer

            config = config_for_studio(graph)
            trainer = None
            if graph_file is not None:
                try:
                    trainer = recorded_trainer(graph, graph_file, config, events=events,
                                               base_dir=base_dir, start_from=start_from,
                                               continue_run=continue_run,
                                               graph_text=graph_text)
                except OSError as e:   # runs/ cannot be made there: train, and say so
                    self.not_kept = (f"not kept: cannot write the run store beside "
                                     f"{Path(graph_file).name} ({e.strerror or e})")
            if trainer is None:
                trainer = Trainer(graph, config, events=events, base_dir=base_dir,
                                  resume_from=start_from)
            self.trainer = trainer
            # stop() sets the flag before it looks at self.trainer: whichever way the two
            # threads interleave, either this sees the flag or stop() sees the trainer.
            if self._stop_early:
                events.put(_StudioStopped())
                return
            trainer.run()
        except Exception as e:   # an import or construction problem: report it as a failure
            events.put(_StudioFailure(f"{type(e).__name__}: {e}"))

    def forget(self) -> None:
        """Another document is open: what the last run showed belongs to another graph.
        Everything goes back to idle at once, or, while a run is active, as soon as it has
        stopped (it stops after the step in progress; `close()` still joins its thread).
        A new run counts as another run, so every view clears what it drew."""
        if self.active:
            self.stop()
            self._forget_at_end = True
            return
        self._forget_at_end = False
        self.reset()
        self.trainer = None
        self.runs += 1
        self.version += 1

    def pause(self) -> None:
        if self.trainer is not None and self.status == RUNNING:
            self.trainer.pause()

    def resume(self) -> None:
        if self.trainer is not None and self.status == PAUSED:
            self.trainer.resume()

    def edit(self, setting: str, value: Any) -> str | None:
        """Change a live setting (engine.core.events.LIVE_SETTINGS) of the running trainer,
        applied before its next step; the `LiveEdit` it sends back is recorded and marked on
        the curves. Returns why not (no run, or a value out of range), else None."""
        if self.trainer is None or self.status not in (RUNNING, PAUSED):
            return "live settings change while a run trains: press Train first"
        try:
            self.trainer.edit(setting, value)
        except ValueError as e:
            return str(e)
        return None

    def stop(self) -> None:
        if not self.active:
            return
        self._stop_early = True
        if self.trainer is not None:
            self.trainer.stop()
        self.status = STOPPING if self.status != LOADING else self.status
        self.message = "stopping…"
        self.version += 1

    def join(self, timeout: float = 5.0) -> bool:
        """Wait up to `timeout` seconds for the worker to end; True when it has (or none ran)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.thread_alive

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the per-frame drain ----------------------------------------------------------------------

    def poll(self, max_events: int = 2000, max_seconds: float = 0.001) -> int:
        """Apply queued trainer events, at most `max_events` or about `max_seconds` worth."""
        items = self.events.items
        if not items:
            return 0
        done = 0
        deadline = time.perf_counter() + max_seconds
        handlers = self.handlers
        popleft = items.popleft
        while done < max_events:
            try:
                event = popleft()
            except IndexError:
                break
            handlers.get(type(event), _ignore)(event)
            done += 1
            if self._forget_at_end and not self.active:
                self.forget()   # the forgotten run has ended: its last events go too
                break
            if not done & 63 and time.perf_counter() > deadline:
                break
        self.version += 1
        return done

    def _on_step(self, e: StepMetrics) -> None:
        self.step = step = e.step
        self.epoch = e.epoch
        self.step_loss.add(step, e.loss)
        if e.accuracy is not None:
            self.step_acc.add(step, e.accuracy)
        self.metric_points += 1
        self.metrics_version += 1

    def _on_started(self, e: Started) -> None:
        self.status = RUNNING
        self.message = f"training on {e.device}" + "".join(
            f" ({note})" for note in (e.weights, self.not_kept) if note)
        self.total_steps, self.steps_per_epoch = e.total_steps, max(1, e.steps_per_epoch)
        self.first_step = self.step = e.first_step
        self.task, self.loss_name, self.device = e.task, e.loss, e.device
        self.parameters = e.parameters
        self.running_since = time.monotonic()
        trainer = self.trainer
        data = getattr(trainer, "data", None)
        if data is not None and getattr(data, "is_2d", False):
            self.is_2d = True
            self.points = (data.x_train, data.y_train if data.task == "classification" else None)

    def _on_recorded(self, e: RunRecorded) -> None:
        self.record_folder, self.record_name = e.folder, e.name

    def _on_live_edit(self, e: LiveEdit) -> None:
        self.edits.append(e)
        self.metrics_version += 1

    def _on_eval(self, e: EvalMetrics) -> None:
        self.train_loss.add(e.step, e.train_loss)
        self.val_loss.add(e.step, e.val_loss)
        self.train_acc.add(e.step, e.train_accuracy)
        self.val_acc.add(e.step, e.val_accuracy)
        self.metric_points += 1
        self.metrics_version += 1

    def _on_gradflow(self, e: GradFlowSnapshot) -> None:
        # O(1) here: a snapshot of a big graph has thousands of entries, and views read
        # only what they draw, at their own rate.
        self.flow = e
        self.history.append(e)
        self.grad_version += 1

    def _on_boundary(self, e: DecisionBoundary) -> None:
        self.boundary = e
        self.boundary_version += 1

    def _on_parameters(self, e: ParameterValues) -> None:
        for path, values in e.values.items():
            for i, value in enumerate(values):
                label = path if len(values) == 1 else f"{path}[{i}]"
                self.parameter_values.setdefault(label, Series()).add(e.step, value)
        self.metrics_version += 1

    def _on_images(self, e: ImageGrid) -> None:
        self.images = e
        self.images_version += 1

    def _on_paused(self, e: Paused) -> None:
        if self.status != STOPPING:
            self.status = PAUSED
            self.message = f"paused at step {e.step}"

    def _on_resumed(self, e: Resumed) -> None:
        if self.status != STOPPING:
            self.status = RUNNING
            self.message = f"training on {self.device}"

    def _kept(self) -> str:
        """How the message of a run's end says where it is kept (or that it is not)."""
        if self.not_kept:
            return f" ({self.not_kept})"
        return f" · kept as {Path(self.record_folder).name}" if self.record_folder else ""

    def _on_stopped(self, e: Stopped) -> None:
        self.status = STOPPED
        self.message = f"stopped at step {e.step}{self._kept()}"

    def _on_finished(self, e: Finished) -> None:
        self.status = FINISHED
        self.finished_seconds = e.seconds
        m = e.metrics
        summary = ""
        if m is not None:
            summary = f": val loss {m.val_loss:.4g}"
            if m.val_accuracy is not None:
                summary += f", val accuracy {m.val_accuracy:.1%}"
        self.message = f"finished {e.step} steps in {e.seconds:.1f}s{summary}{self._kept()}"

    def _on_failed(self, e: Failed) -> None:
        self.status = FAILED
        self.failed_node = e.node
        self.failed_kind = e.kind
        # The trainer says "node fc2: RuntimeError: ..."; shown on fc2 itself, the name is noise.
        self.failed_text = e.message.removeprefix(f"node {e.node}: ") if e.node else e.message
        self.message = f"training failed ({e.kind}): {e.message}"

    def _on_studio_stopped(self, e: _StudioStopped) -> None:
        self.status = STOPPED
        self.message = "stopped before the first step"

    def _on_studio_failure(self, e: _StudioFailure) -> None:
        self.status = FAILED
        self.message = f"training could not start: {e.message}"

    # -- derived -------------------------------------------------------------------------------

    @property
    def progress(self) -> float:
        if not self.total_steps:
            return 0.0
        return min(1.0, self.step / self.total_steps)

    @property
    def eta_seconds(self) -> float | None:
        done = self.step - self.first_step
        if self.status != RUNNING or done < 2 or not self.total_steps:
            return None
        rate = done / max(time.monotonic() - self.running_since, 1e-6)
        return (self.total_steps - self.step) / rate

    def progress_text(self) -> str:
        if self.status == IDLE:
            return "not trained yet"
        if self.status == LOADING:
            return f"loading… {time.monotonic() - self.started_at:.0f}s"
        epochs = math.ceil(self.total_steps / self.steps_per_epoch) if self.total_steps else 0
        text = f"step {self.step}/{self.total_steps} · epoch {self.epoch}/{epochs}"
        eta = self.eta_seconds
        if eta is not None:
            text += f" · ETA {format_duration(eta)}"
        elif self.status == FINISHED and self.finished_seconds is not None:
            text += f" · done in {format_duration(self.finished_seconds)}"
        return text

    @property
    def flags(self) -> dict[str, str]:
        """node path → marker text for the latest snapshot (computed once per snapshot)."""
        if self._flags[0] != self.grad_version:
            self._flags = (self.grad_version, flags_from(self.flow) if self.flow is not None else {})
        return self._flags[1]

    def edge_history(self, key: str) -> tuple[list[float], list[float], list[float], list[float]]:
        """(steps, grad RMS, activation mean, activation std) of one wire over the history."""
        steps, grads, means, stds = [], [], [], []
        for p in self.history:
            flow = p.edges.get(key)
            if flow is None:
                continue
            steps.append(float(p.step))
            grads.append(_num(flow.grad_rms))
            means.append(_num(flow.mean))
            stds.append(_num(flow.std))
        return steps, grads, means, stds

    def node_history(self, path: str) -> tuple[list[float], list[float], list[float], list[float]]:
        """(steps, grad RMS, output activation mean, output activation std) of one node: its
        parameters' gradient when it has parameters, else that of its first output wire."""
        out_key = None
        if self.flow is not None:
            out_key = next((k for k in self.flow.edges if source_node(k) == path), None)
        steps, grads, means, stds = [], [], [], []
        for p in self.history:
            node = p.nodes.get(path)
            edge = p.edges.get(out_key) if out_key is not None else None
            g = node.grad_rms if node is not None else None
            if g is None and edge is not None:
                g = edge.grad_rms
            steps.append(float(p.step))
            grads.append(_num(g))
            means.append(_num(edge.mean if edge is not None else None))
            stds.append(_num(edge.std if edge is not None else None))
        return steps, grads, means, stds


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _ignore(event: Any) -> None:
    pass


class TextJob:
    """Text from a trained character model, written on a worker thread: `done` turns True
    when `text` (or `error`) is there. Main thread: start it, then read `done` per frame."""

    def __init__(self, graph: Graph, module: Any, prompt: str, length: int,
                 temperature: float, seed: int = 0) -> None:
        self.prompt, self.text, self.error, self.done = prompt, "", "", False
        self._thread = threading.Thread(target=self._work, name="dprog-generate", daemon=True,
                                        args=(graph, module, prompt, length, temperature, seed))
        self._thread.start()

    def _work(self, graph: Graph, module: Any, prompt: str, length: int, temperature: float,
              seed: int) -> None:
        try:
            from engine.runtime.generate import generate_text

            self.text = generate_text(graph, module, prompt, length, temperature=temperature,
                                      seed=seed)
        except Exception as e:   # GenerateError, or the model failing: shown in the window
            self.error = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        finally:
            self.done = True

    def join(self, timeout: float = 5.0) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


@dataclass(frozen=True)
class _StudioFailure:
    message: str


@dataclass(frozen=True)
class _StudioStopped:
    """Stopped while torch was loading, before the trainer set anything up."""


def config_for_studio(graph: Graph) -> TrainingConfig:
    """The graph's training config, plus decision-boundary grids every so often (the studio
    draws them for 2-D data; the trainer skips them for anything else)."""
    config = TrainingConfig.from_mapping(graph.training)
    if config.boundary_every:
        return config
    steps = config.steps or config.epochs * _steps_per_epoch_guess(config)
    return config.with_overrides(boundary_every=min(BOUNDARY_MAX_EVERY,
                                                    max(1, steps // BOUNDARY_UPDATES)))


def _steps_per_epoch_guess(config: TrainingConfig) -> int:
    n = config.dataset.get("n_samples", 1000) if isinstance(config.dataset, Mapping) else 1000
    n = n if isinstance(n, int) else 1000
    val = config.dataset.get("val_fraction", 0.2) if isinstance(config.dataset, Mapping) else 0.2
    val = val if isinstance(val, int | float) else 0.2
    return max(1, math.ceil(n * (1 - val) / config.batch_size))


def flags_from(snapshot: GradFlowSnapshot) -> dict[str, str]:
    """node path → a short marker for gradient-flow trouble: vanishing, exploding, dead units."""
    found: dict[str, set[str]] = {}
    for path, flow in snapshot.nodes.items():
        for f in flow.flags:
            found.setdefault(path, set()).add(f)
    for key, flow in snapshot.edges.items():
        for f in flow.flags:
            found.setdefault(source_node(key), set()).add(f)
    out = {}
    for path, flags in found.items():
        marks = []
        if "vanishing" in flags:
            marks.append("▼ vanishing gradient")
        if "exploding" in flags:
            marks.append("▲ exploding gradient")
        out[path] = "  ".join(marks)
    for path, (dead, units) in snapshot.dead_units.items():
        if units and dead / units >= DEAD_FRACTION:
            text = f"✕ dead units {dead}/{units}"
            out[path] = f"{out[path]}  {text}" if out.get(path) else text
    return out


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def bucket_of(value: float | None, lo: float, hi: float, buckets: int = 8) -> int | None:
    """The colour bucket of a gradient RMS on a log scale between 10**lo and 10**hi."""
    if value is None or not value > 0 or not math.isfinite(value):
        return None if value is None else 0
    t = (math.log10(value) - lo) / max(hi - lo, 1e-9)
    return max(0, min(buckets - 1, int(t * buckets)))


def log_range(values: Any, previous: tuple[float, float] | None = None,
              min_span: float = 2.0) -> tuple[float, float]:
    """log10 range of the positive finite values, at least `min_span` decades wide, eased
    towards the previous range so colours do not flicker from one snapshot to the next."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return previous or (-6.0, 0.0)
    lo, hi = float(np.log10(v.min())), float(np.log10(v.max()))
    if hi - lo < min_span:
        mid = (hi + lo) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    if previous is not None:
        lo = 0.6 * previous[0] + 0.4 * lo
        hi = 0.6 * previous[1] + 0.4 * hi
    return lo, hi
