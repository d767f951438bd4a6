"""Looking inside wires, the studio's side: what is pinned or hovered, what the trainer read,
the time per block in profile mode, and where a run met NaN or Inf (issue 17, items 5-7).

`WireWatch` keeps readings (`WireReading`, engine.core.events) by wire and iteration, asks
for them and keeps the profile and the fault. It never costs a step anything on its own:

- while a run trains, the pinned and the hovered wire are asked of the trainer
  (`Trainer.inspect`) at most `LIVE_HZ` times a second, one request in flight per wire, so
  the tapped forward runs on those steps only and the others run the plain module;
- once the run has ended or paused, a missing reading is taken by `Trainer.read_wire` on a
  worker thread (one forward and backward on a batch), never in a frame;
- profile mode is `Trainer.set_profile`, applied to each run's trainer as soon as it exists.

Main thread only, except its one worker. Pure: no dearpygui, no torch (numpy is imported
lazily by the picture helpers, which views call).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.events import BlockTimes, NonFinite, TensorStats, WireReading
from engine.core.graph import source_node

LIVE_HZ = 4.0           # readings asked of a running trainer, per wire, per second at most
PENDING_SECONDS = 5.0   # a request the trainer never answered (the run ended) is dropped
HOVER_SECONDS = 0.3     # a wire the mouse rests on this long is read
WINDOW = 25             # a block's time is the median of its last WINDOW profiled steps
LOSS = "(loss)"         # engine.runtime.profile's name for the loss's own backward

Key = tuple[str, int | None]   # (edge key with its region path, iteration inside a Loop body)


@dataclass(frozen=True)
class BlockTime:
    """One row of the profile table: a block's smoothed forward and backward ms per step."""

    node: str
    forward_ms: float
    backward_ms: float
    share: float          # of the step's total time, 0..1

    @property
    def total_ms(self) -> float:
        return self.forward_ms + self.backward_ms


PROFILE_COLUMNS = ("block", "fwd ms", "bwd ms", "share")


def sort_rows(rows: list[BlockTime], column: int, descending: bool) -> list[BlockTime]:
    """The profile table sorted by one of `PROFILE_COLUMNS` (its index)."""
    key: Callable[[BlockTime], Any] = (
        (lambda r: r.node), (lambda r: r.forward_ms), (lambda r: r.backward_ms),
        (lambda r: r.share))[column]
    return sorted(rows, key=key, reverse=descending)


class WireWatch:
    """See the module docstring."""

    def __init__(self) -> None:
        self.pinned: str | None = None
        self.iteration: int | None = None     # the read inside a Loop body; None: the first
        self.hovered: str | None = None
        self._hover_since = 0.0
        self.readings: dict[Key, WireReading] = {}
        self.errors: dict[Key, str] = {}
        self.version = 0                      # moves when a reading, an error or the pin does
        self.profile = False
        self.times: BlockTimes | None = None
        self._window: deque[BlockTimes] = deque(maxlen=WINDOW)
        self._smoothed: tuple[int, dict[str, tuple[float, float]]] = (-1, {})
        self.times_version = 0
        self.fault: NonFinite | None = None
        self.fault_version = 0
        self._run: Any = None                 # the TrainingRun followed
        self._runs = -1                       # its `runs` counter when last seen
        self._trainer: Any = None             # the trainer profile mode was applied to
        self._asked: dict[Key, float] = {}    # live requests in flight: key → when asked
        self._recent: dict[Key, float] = {}   # key → when it was last asked
        self._worker: threading.Thread | None = None
        self._results: deque = deque()        # (key, WireReading | None, error text)

    # -- events (TrainingRun.handlers) --------------------------------------------------------

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {WireReading: self._on_reading, BlockTimes: self._on_times,
                NonFinite: self._on_fault}

    def _on_reading(self, e: WireReading) -> None:
        key = (e.edge, e.iteration)
        self._asked.pop(key, None)
        self._asked.pop((e.edge, None), None)
        self.readings[key] = e
        self.errors.pop(key, None)
        self.version += 1

    def _on_times(self, e: BlockTimes) -> None:
        # O(1) per step: the medians are worked out when a view draws (`smoothed`).
        self.times = e
        self._window.append(e)
        self.times_version += 1

    @property
    def smoothed(self) -> dict[str, tuple[float, float]]:
        """node → (forward, backward) ms: medians over the last `WINDOW` profiled steps, so
        the first steps' warm-up (allocations, lazy inits: 100× a later step) and a stray
        slow step do not colour a block for long."""
        if self._smoothed[0] != self.times_version:
            nodes: dict[str, None] = {}
            for e in self._window:
                nodes.update(dict.fromkeys(e.forward_ms))
                nodes.update(dict.fromkeys(e.backward_ms))
            medians = {node: (statistics.median(e.forward_ms.get(node, 0.0) for e in self._window),
                              statistics.median(e.backward_ms.get(node, 0.0) for e in self._window))
                       for node in nodes}
            self._smoothed = (self.times_version, medians)
        return self._smoothed[1]

    def _on_fault(self, e: NonFinite) -> None:
        self.fault = e
        self.fault_version += 1

    # -- what the user asks ------------------------------------------------------------------

    def pin(self, edge: str, iteration: int | None = None) -> None:
        """Watch `edge` (an edge key with its region path) at read `iteration`."""
        if (edge, iteration) != (self.pinned, self.iteration):
            self.pinned, self.iteration = edge, iteration
            self.version += 1

    def unpin(self) -> None:
        if self.pinned is not None:
            self.pinned = self.iteration = None
            self.version += 1

    def set_iteration(self, iteration: int | None) -> None:
        if self.pinned is not None:
            self.pin(self.pinned, iteration)

    def hover(self, edge: str | None, now: float | None = None) -> None:
        """The wire under the mouse (None: none); read once it rested there a moment."""
        if edge != self.hovered:
            self.hovered = edge
            self._hover_since = time.monotonic() if now is None else now

    def set_profile(self, on: bool) -> None:
        self.profile = bool(on)
        if self._trainer is not None:
            self._trainer.set_profile(self.profile)
        if not on:
            self.times = None
            self._window.clear()
            self.times_version += 1

    # -- what is shown ------------------------------------------------------------------------

    def reading(self, edge: str | None, iteration: int | None = None, *,
                exact: bool = True) -> WireReading | None:
        """The latest reading of `edge` at `iteration` (`exact=False`: at any iteration)."""
        if edge is None:
            return None
        found = self.readings.get((edge, iteration))
        if found is not None or exact:
            return found
        return next((r for (e, _), r in reversed(self.readings.items()) if e == edge), None)

    def error(self, edge: str | None, iteration: int | None = None) -> str:
        return self.errors.get((edge, iteration), "") if edge is not None else ""

    def rows(self) -> list[BlockTime]:
        """The profile table, heaviest block first (the loss's own backward included)."""
        total = sum(f + b for f, b in self.smoothed.values()) or 1.0
        rows = [BlockTime(node, f, b, (f + b) / total) for node, (f, b) in self.smoothed.items()]
        return sort_rows(rows, 3, True)

    def share(self, node: str) -> float | None:
        """A block's share of the step's time (None: not profiled)."""
        if node not in self.smoothed:
            return None
        total = sum(f + b for f, b in self.smoothed.values()) or 1.0
        return sum(self.smoothed[node]) / total

    def fault_wires(self) -> tuple[Mapping[str, TensorStats], Mapping[str, TensorStats]]:
        """The faulty block's input and output wires' stats at the failing step."""
        if self.fault is None:
            return {}, {}
        return self.fault.inputs, self.fault.outputs

    # -- per frame ----------------------------------------------------------------------------

    def tick(self, run: Any, now: float | None = None) -> bool:
        """Follow `run` (app.training.TrainingRun): forget the last run's readings when a new
        one starts, apply profile mode to its trainer, ask for the wires watched, take in
        what the worker read. True when something shown changed."""
        now = time.monotonic() if now is None else now
        changed = False
        if run is not self._run or run.runs != self._runs:
            self._run, self._runs = run, run.runs
            self.readings.clear()
            self.errors.clear()
            self._asked.clear()
            self._recent.clear()
            self._trainer = None
            self.times, self.fault = None, None
            self._window.clear()
            self.version += 1
            self.times_version += 1
            self.fault_version += 1
            changed = True
        trainer = run.trainer
        if trainer is not None and trainer is not self._trainer:
            self._trainer = trainer
            if self.profile:
                trainer.set_profile(True)
        while self._results:
            key, found, error = self._results.popleft()
            if found is not None:
                self.readings[key] = found
            else:
                self.errors[key] = error
            self.version += 1
            changed = True
        if trainer is None:
            return changed
        for key in self._wanted(now):
            if run.status == "running":
                self._ask_live(trainer, key, now)
            elif run.status in ("finished", "stopped", "failed", "paused"):
                self._read_after(trainer, key)
        return changed

    def _wanted(self, now: float) -> list[Key]:
        keys: list[Key] = []
        if self.pinned is not None:
            keys.append((self.pinned, self.iteration))
        if self.hovered is not None and self.hovered != self.pinned \
                and now - self._hover_since >= HOVER_SECONDS:
            keys.append((self.hovered, None))
        return keys

    def _ask_live(self, trainer: Any, key: Key, now: float) -> None:
        asked = self._asked.get(key)
        if asked is not None and now - asked < PENDING_SECONDS:
            return   # one request in flight per wire
        if now - self._recent.get(key, -math.inf) < 1 / LIVE_HZ:
            return
        try:
            trainer.inspect(*key)
        except ValueError as e:   # a wire the running graph does not have (edited since)
            self._fail(key, str(e))
            return
        self._asked[key] = now
        self._recent[key] = now

    def _read_after(self, trainer: Any, key: Key) -> None:
        """A reading of a run that ended or paused, on the worker (one at a time)."""
        if key in self.errors or self.busy:
            return
        found = self.readings.get(key)
        if found is not None and found.step == getattr(trainer, "step", found.step):
            return
        if getattr(trainer, "edge_keys", None) is None:   # it never got as far as its model
            self._fail(key, "the run ended before its model was built: nothing to read")
            return

        def work() -> None:
            try:
                self._results.append((key, trainer.read_wire(*key), ""))
            except Exception as e:   # an unknown wire, or the model failing on the batch
                self._results.append((key, None, str(e) if isinstance(e, ValueError)
                                      else f"{type(e).__name__}: {e}"))

        self._worker = threading.Thread(target=work, name="dprog-read-wire", daemon=True)
        self._worker.start()

    def _fail(self, key: Key, message: str) -> None:
        if self.errors.get(key) != message:
            self.errors[key] = message
            self.version += 1

    @property
    def busy(self) -> bool:
        """A reading is being taken on the worker (the trainer must not step meanwhile)."""
        return self._worker is not None and self._worker.is_alive()

    def join(self, timeout: float = 5.0) -> bool:
        """Wait for the worker (before a paused run resumes, and when the studio closes)."""
        if self._worker is not None:
            self._worker.join(timeout)
        return not self.busy


# -- for the views: numbers and pictures ------------------------------------------------------


def stats_lines(stats: TensorStats | None) -> list[tuple[str, str]]:
    """(label, value) rows for a stats table; an empty list when there are no stats."""
    if stats is None:
        return []

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.4g}"

    rows = [("shape", "(" + ", ".join(str(d) for d in stats.shape) + ")"),
            ("mean", num(stats.mean)), ("std", num(stats.std)),
            ("min", num(stats.min)), ("max", num(stats.max)),
            ("zeros", f"{stats.zero_fraction:.1%}")]
    if stats.nonfinite:
        rows.append(("NaN/Inf", f"{stats.nonfinite:,}"))
    return rows


def histogram_bars(stats: TensorStats | None) -> tuple[list[float], list[float], float]:
    """(bin centres, counts, bar width) of a stats' histogram, for a bar series."""
    if stats is None or not stats.histogram or stats.min is None or stats.max is None:
        return [], [], 1.0
    n = len(stats.histogram)
    lo, hi = stats.min, stats.max
    width = (hi - lo) / n if hi > lo else 1.0
    centres = [lo + width * (i + 0.5) for i in range(n)] if hi > lo else \
        [lo + (i - n // 2) * width for i in range(n)]
    return centres, [float(c) for c in stats.histogram], width


def sample_text(values: tuple[float, ...], per_line: int = 3, limit: int = 9) -> str:
    """The first `limit` values, `per_line` to a line."""
    if not values:
        return "-"
    cells = [f"{v: .3g}" for v in values[:limit]]
    return "\n".join("  ".join(cells[i:i + per_line]) for i in range(0, len(cells), per_line))


def heat_rgba(grid: Any, scale: float | None = None) -> tuple[int, int, list[float]]:
    """A (R, C) array as RGBA floats, rows top to bottom as a texture wants them: the
    Playground's diverging map, orange below zero, white at zero, blue above, scaled by
    the largest magnitude (or `scale`). `grid`'s row 0 is the bottom of the input plane
    (y grows up), so rows are flipped."""
    import numpy as np

    g = np.nan_to_num(np.asarray(grid, dtype=np.float32)[::-1], nan=0.0, posinf=0.0,
                      neginf=0.0)
    m = float(scale if scale else np.abs(g).max()) or 1.0
    t = np.clip(g / m, -1.0, 1.0)[..., None]                         # (R, C, 1)
    white = np.array([0.96, 0.96, 0.96], dtype=np.float32)
    blue = np.array([0.13, 0.40, 0.80], dtype=np.float32)
    orange = np.array([0.96, 0.55, 0.12], dtype=np.float32)
    rgb = np.where(t >= 0, white + t * (blue - white), white - t * (orange - white))
    rgba = np.concatenate([rgb, np.ones((*g.shape, 1), dtype=np.float32)], axis=-1)
    return g.shape[1], g.shape[0], rgba.reshape(-1).tolist()


def gray_rgba(image: Any) -> tuple[int, int, list[float]]:
    """A (H, W) array as grey RGBA floats, min to max (a channel of an image-like wire)."""
    import numpy as np

    g = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(g.min()), float(g.max())
    t = (g - lo) / (hi - lo) if hi > lo else np.zeros_like(g)
    rgba = np.stack([t, t, t, np.ones_like(t)], axis=-1)
    return g.shape[1], g.shape[0], rgba.reshape(-1).tolist()


def heat_bucket(share: float | None, buckets: int = 8) -> int | None:
    """A block's share of the step's time as a colour bucket 0..buckets-1 (None: none)."""
    if share is None or not math.isfinite(share):
        return None
    return max(0, min(buckets - 1, int(share * buckets * 2)))   # half the time: hottest


def block_of(edge: str) -> str:
    """The block a wire leaves (its node path)."""
    return source_node(edge)
