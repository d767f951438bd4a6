"""What every benchmark row shares: interleaved timing, medians, and the machine's description.

`interleave` is the one way rows compare: it runs each contender's block in turn, round after
round, rotating the order (ABBA for two) so drift in the machine's load falls on all of them,
and returns per-round times; ratios are then taken round by round and their median reported.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def interleave(blocks: Mapping[str, Callable[[], object]], rounds: int, *,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per call of each block, `rounds` times. The order rotates round by round and
    every other cycle runs backwards (for two blocks: AB BA BA AB), so each block takes each
    place, and follows each other block, equally often."""
    names = list(blocks)
    times: dict[str, list[float]] = {n: [] for n in names}
    n = len(names)
    for r in range(rounds):
        order = names[r % n:] + names[:r % n]
        if (r // n) % 2:
            order = order[::-1]
        for name in order:
            start = clock()
            blocks[name]()
            times[name].append(clock() - start)
    return times


def ratio(times: Mapping[str, list[float]], num: str, den: str) -> float:
    """The median over rounds of time(num) / time(den)."""
    return median(a / b for a, b in zip(times[num], times[den], strict=True))


def timed(fn: Callable[[], object], repeats: int, *, clock: Callable[[], float] = time.perf_counter
          ) -> tuple[float, object]:
    """(median seconds, last result) of `repeats` calls."""
    result, times = None, []
    for _ in range(repeats):
        start = clock()
        result = fn()
        times.append(clock() - start)
    return median(times), result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(status)}


def machine() -> dict:
    """The machine the figures came from; torch's version is read without importing it."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "python": platform.python_version(), "torch": version("torch"),
            "dearpygui": version("dearpygui"), "platform": platform.platform(),
            "load_average": list(load) if load else None}


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"
