"""Crash recovery and the recent-files list, kept in a per-user state directory.

The directory is `$DPROG_STATE_DIR`, else `~/.local/state/dprog` (`$XDG_STATE_HOME/dprog`
when that is set). It holds:
- `recovery.json`: the last autosaved graph while there are unsaved changes, with the file
  it belongs to and that file's modification stamp at the time. Written atomically (a crash
  leaves the old or the new copy), removed on a clean exit and after a save. On the next
  start, `pending()` offers it unless the file has been saved since (its stamp changed).
- `recent.json`: up to 10 recently opened or saved files, newest first.

Nothing here ever raises for a missing, unwritable or corrupt directory or file: problems
are returned as `problem` text for the status bar and the file is ignored.
One recovery file per user: two studios running at once share it (the last autosave wins).

Pure: no dearpygui, no torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from engine.core.fileformat import GraphFileError, atomic_write, graph_to_document, loads
from engine.core.graph import Graph

RECOVERY_FORMAT = "dprog-recovery"
MAX_RECENT = 10
AUTOSAVE_INTERVAL = 5.0   # seconds between autosaves while there are unsaved changes


def default_state_dir() -> Path:
    env = os.environ.get("DPROG_STATE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "dprog"


def _stamp(path: Path | None) -> int | None:
    """A file's modification time in ns (None: no such file). Compared for equality only,
    so coarse or skewed clocks cannot make an old autosave look newer than a save."""
    if path is None:
        return None
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@dataclass(frozen=True)
class PendingRecovery:
    """An autosave left by a session that did not exit cleanly."""

    path: Path              # the recovery file
    file: Path | None       # the graph file it belongs to (None: an untitled graph)
    saved_at: float         # when it was autosaved (time.time())
    graph: Graph


class Recovery:
    """Autosave and recent files in one state directory (see the module docstring)."""

    def __init__(self, state_dir: str | os.PathLike | None = None,
                 interval: float = AUTOSAVE_INTERVAL):
        self.dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.interval = interval
        self.recovery_path = self.dir / "recovery.json"
        self.recent_path = self.dir / "recent.json"
        self.problem: str | None = None     # the last thing that went wrong, for the status bar
        self._last_write = -float("inf")
        self._written: Graph | None = None  # the graph last autosaved, by identity
        self._wrote_any = False

    # -- autosave --

    def maybe_autosave(self, graph: Graph, file: Path | None, dirty: bool, now: float) -> bool:
        """Autosave `graph` if it has unsaved changes not yet autosaved and `interval`
        seconds have passed since the last write. Cheap (a few comparisons) otherwise.
        Returns True when it wrote. When the graph is clean again, removes the file it wrote."""
        if not dirty:
            if self._wrote_any:
                self.clear()
            return False
        if graph is self._written or now - self._last_write < self.interval:
            return False
        self._last_write = now
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            # Compact JSON: ~6x faster than the diff-friendly `dumps` (15 ms for 1,000 nodes),
            # and nobody diffs an autosave.
            graph_text = json.dumps(graph_to_document(graph), separators=(",", ":"),
                                    allow_nan=False)
            doc = {"format": RECOVERY_FORMAT, "version": 1,
                   "file": str(file) if file is not None else None,
                   "file_stamp": _stamp(file), "saved_at": time.time(), "graph": graph_text}
            atomic_write(self.recovery_path, json.dumps(doc).encode("utf-8"))
        except (OSError, ValueError) as e:
            self.problem = f"autosave failed: {e}"
            return False
        self._written = graph
        self._wrote_any = True
        return True

    def clear(self) -> None:
        """Remove the recovery file (after a save, a clean exit, or a declined restore)."""
        self._written = None
        self._wrote_any = False
        with contextlib.suppress(OSError):
            self.recovery_path.unlink()

    def pending(self) -> PendingRecovery | None:
        """The recovery file, if there is one worth offering: readable, and holding changes
        the file it belongs to lacks - the file is unchanged since the autosave (its
        modification stamp then was recorded) or gone; an untitled graph's autosave is always
        offered. A corrupt one is ignored (and `problem` says so)."""
        try:
            if not self.recovery_path.is_file():
                return None
            doc = json.loads(self.recovery_path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or doc.get("format") != RECOVERY_FORMAT:
                raise ValueError("not a recovery file")
            graph = loads(doc["graph"], str(self.recovery_path))
            file = Path(doc["file"]) if doc.get("file") else None
            saved_at = float(doc.get("saved_at", 0.0))
            recorded = doc.get("file_stamp")
        except (OSError, ValueError, KeyError, TypeError, GraphFileError) as e:
            self.problem = f"ignored a corrupt recovery file {self.recovery_path}: {e}"
            return None
        if file is not None:
            now = _stamp(file)
            # Saved (here or elsewhere) after the autosave: the file has everything.
            if now is not None and now != recorded:
                return None
        return PendingRecovery(self.recovery_path, file, saved_at, graph)

    # -- recent files --

    def recent_files(self) -> list[Path]:
        """Recently opened or saved files, newest first (at most 10). [] if unreadable."""
        try:
            data = json.loads(self.recent_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            self.problem = f"ignored a corrupt recent-files list: {e}"
            return []
        if not isinstance(data, list):
            self.problem = "ignored a corrupt recent-files list"
            return []
        return [Path(p) for p in data if isinstance(p, str)][:MAX_RECENT]

    def add_recent(self, path: str | os.PathLike) -> list[Path]:
        """Put `path` first in the recent list (once), persist it, and return the list."""
        path = Path(path).absolute()
        files = [path] + [p for p in self.recent_files() if p != path]
        files = files[:MAX_RECENT]
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.recent_path, json.dumps([str(p) for p in files], indent=1).encode())
        except OSError as e:
            self.problem = f"could not save the recent-files list: {e}"
        return files
