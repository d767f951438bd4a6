"""The dataset the open graph trains on, loaded before Train is pressed, off the main thread.

The studio shows it (a preview of the samples) and checks the graph against it
(`engine.data.fit`: an Output that does not fit the classes is listed under Problems while
the graph is edited). Loading a built-in dataset means importing scikit-learn (about 1.5 s)
and generating the samples, so it runs on a worker thread: `want(key, ...)` asks for the
dataset of a training section, `poll()` (each frame, main thread) takes in what the worker
finished. Only the latest wish counts: a result for an older key is dropped, and a wish
made while the worker is busy starts once it is done.

Pure: no dearpygui, no torch (engine.data reads numpy arrays).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from engine.data.datasets import Dataset, load_dataset


class TrainingData:
    """See the module docstring. `dataset` or `error` describe `key`'s data once loaded."""

    def __init__(self) -> None:
        self.key: Hashable | None = None        # what `dataset`/`error` belong to
        self.dataset: Dataset | None = None
        self.error: str | None = None
        self.version = 0                        # bumps when `dataset`/`error` change
        self._wanted: tuple | None = None       # (key, spec, seed, base_dir), latest wish
        self._busy = False
        self._done: tuple | None = None         # (key, dataset, error), set by the worker

    def want(self, key: Hashable, spec: Mapping[str, Any], seed: int,
             base_dir: Path | None) -> None:
        """Load the dataset `spec` describes (unless `key` is what is loaded or loading)."""
        if self._wanted is not None and self._wanted[0] == key:
            return
        self._wanted = (key, dict(spec), seed, base_dir)
        if not self._busy:
            self._start()

    def _start(self) -> None:
        key, spec, seed, base_dir = self._wanted
        self._busy = True

        def work() -> None:
            try:
                done = (key, load_dataset(spec, seed, base_dir=base_dir), None)
            except Exception as e:   # a DatasetError names the problem; others are bugs
                done = (key, None, str(e) if isinstance(e, ValueError)
                        else f"{type(e).__name__}: {e}")
            self._done = done

        threading.Thread(target=work, name="dprog-dataset", daemon=True).start()

    def poll(self) -> bool:
        """Take in a finished load; True when `dataset`/`error` changed."""
        done, self._done = self._done, None
        if done is None:
            return False
        self._busy = False
        changed = False
        if self._wanted is not None and done[0] == self._wanted[0]:
            self.key, self.dataset, self.error = done
            self.version += 1
            changed = True
        elif self._wanted is not None:
            self._start()   # wished for another while this one loaded
        return changed

    def join(self, timeout: float = 30.0) -> None:
        """For tests: wait until the latest wish is loaded (polling)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if self._wanted is None or (self.key == self._wanted[0] and not self._busy):
                return
            time.sleep(0.01)


__all__ = ["TrainingData"]
