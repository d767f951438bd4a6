"""Profile mode: each block's forward and backward time in one step (`BlockTimes`).

`BlockProfiler.tap` rides the tapped forward (engine.runtime.compiler), which calls the tap
on every wire right after the block that produced it: the time since the previous tap is the
forward time of that wire's block. On each floating wire that needs a gradient it registers
a hook that notes when the wire's gradient is ready; autograd then runs that block's
backward, so the time from that hook to the next one that fires is the block's backward
time (branches that autograd interleaves blur this; the totals stay right). On a GPU every
tap synchronizes, which is why profile mode is a mode: off, nothing is tapped and it costs
nothing (bench row 11 measures it on).

The same marks open `torch.profiler` ranges named after the nodes, "dprog.forward:fc1" and
"dprog.backward:fc1", so a `torch.profiler.profile` trace (TensorBoard's, Chrome's) shows
each block's ops under its name. A wire is tapped when the block that reads it reads it, so
a forward range runs from a block's first input read to the next block's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from ..core.events import BlockTimes
from ..core.graph import PATH_SEP, source_node

FORWARD, BACKWARD = "dprog.forward:", "dprog.backward:"   # torch.profiler range names

LOSS = "(loss)"   # the backward time before the first wire's gradient: the loss's own


class BlockProfiler:
    """Times one step. Build it before the forward, `tap` every wire, call `backward_begins()`
    and `backward_ends()` around `loss.backward()`, then `times(step)`."""

    def __init__(self, edge_keys: Sequence[str], device: torch.device | None = None):
        self.nodes = [source_node(key) for key in edge_keys]
        self.readers = [_target_node(key) for key in edge_keys]
        self._range: tuple[str, torch.autograd.profiler.record_function] | None = None
        self.cuda = device is not None and device.type == "cuda"
        self.forward: dict[str, float] = {}
        self.marks: list[tuple[float, str]] = []   # (time a wire's gradient was ready, its node)
        self._last_node: str | None = None
        self._last = self._now()
        self.backward_started: float | None = None
        self.backward_ended: float | None = None

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def tap(self, k: int, t: torch.Tensor) -> torch.Tensor:
        now = self._now()
        node = self.nodes[k]
        if node != self._last_node:   # a block's first wire: the time since is its forward
            self.forward[node] = self.forward.get(node, 0.0) + (now - self._last)
            self._last_node = node
        self._enter(FORWARD + self.readers[k])
        if t.is_floating_point() and t.requires_grad:
            t.register_hook(lambda g, node=node: self._backward_mark(node))
        self._last = self._now()
        return t

    def _backward_mark(self, node: str) -> None:
        self.marks.append((self._now(), node))
        self._enter(BACKWARD + node)

    def _enter(self, name: str) -> None:
        """Close the open range and open `name` (the same name: it stays open)."""
        if self._range is not None and self._range[0] == name:
            return
        self._exit()
        rf = torch.autograd.profiler.record_function(name)
        rf.__enter__()
        self._range = (name, rf)

    def close(self) -> None:
        """The step ended early (an error in the forward): close the open range."""
        self._exit()

    def _exit(self) -> None:
        if self._range is not None:
            self._range[1].__exit__(None, None, None)
            self._range = None

    def backward_begins(self) -> None:
        """Just before `loss.backward()`."""
        self._exit()
        self.backward_started = self._now()

    def backward_ends(self) -> None:
        """Just after `loss.backward()`: the end of the last block's backward."""
        self._exit()
        self.backward_ended = self._now()

    def times(self, step: int) -> BlockTimes:
        """The step's times in ms. Backward: from each wire's gradient to the next mark."""
        backward: dict[str, float] = {}
        marks = sorted(self.marks)
        start = self.backward_started if self.backward_started is not None else \
            (marks[0][0] if marks else 0.0)
        if marks:
            backward[LOSS] = (marks[0][0] - start) * 1e3
            end = self.backward_ended if self.backward_ended is not None else self._now()
            for (t0, node), nxt in zip(marks, [m[0] for m in marks[1:]] + [end], strict=True):
                backward[node] = backward.get(node, 0.0) + (nxt - t0) * 1e3
        return BlockTimes(step, {k: v * 1e3 for k, v in self.forward.items()}, backward)


def _target_node(edge_key: str) -> str:
    """The path of the node an edge key enters: `loop1/body/fc.y->act.x` → `loop1/body/act`."""
    src, _, dst = edge_key.partition("->")
    prefix = src[: src.rfind(PATH_SEP) + 1]
    return prefix + dst.split(".")[0]
