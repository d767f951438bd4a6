"""Wire inspection: what one wire (a node's output, read by one edge) carried in a step, and
its gradient (`WireReading`, engine.core.events).

`WireTap` is a tap for the tapped forward (engine.runtime.compiler), built only for a step
whose wires were asked for (`Trainer.inspect`); a step nobody inspects runs the plain module,
so inspection costs nothing when off (bench row 11 measures it on). For the wires asked for
it keeps the activation at the chosen read (the iteration inside a Loop body) and, through a
`view_as` whose `retain_grad` only stores it, the gradient. `readings` turns them into
statistics (one device-to-host copy per tensor), a small sample, a few channels of an
image-like tensor, and, for models on 2-D inputs, each unit's response over the input plane
(`unit_response`, the Playground's neuron heatmaps).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from ..core.events import TensorStats, WireReading

BINS = 20
SAMPLE = 16          # values of the first sample shown
CHANNELS = 4         # channels of an image-like tensor shown
UNITS = 8            # units of a 2-D model's heatmap
RESOLUTION = 32      # heatmap grid: RESOLUTION × RESOLUTION points over the input plane


@torch.no_grad()
def tensor_stats(t: torch.Tensor, bins: int = BINS) -> TensorStats:
    """Mean, std, min, max, fraction of zeros, histogram and non-finite count of `t`."""
    shape = tuple(t.shape)
    x = t.detach().reshape(-1).float()
    if x.numel() == 0:
        return TensorStats(shape, None, None, None, None, 0.0)
    finite = torch.isfinite(x)
    good = x[finite]
    zeros = float((x == 0).float().mean())
    nonfinite = int(x.numel() - good.numel())
    if good.numel() == 0:
        return TensorStats(shape, None, None, None, None, zeros, (), nonfinite)
    lo, hi = good.min(), good.max()
    hist = torch.histc(good, bins=bins, min=float(lo), max=float(hi)) if hi > lo else \
        torch.zeros(bins).index_fill_(0, torch.tensor([bins // 2]), good.numel())
    std = good.std(unbiased=False)
    mean, std, lo, hi = torch.stack([good.mean(), std, lo, hi]).tolist()
    return TensorStats(shape, mean, std, lo, hi, zeros, tuple(int(c) for c in hist.tolist()),
                       nonfinite)


def compose(*taps: Callable | None) -> Callable | None:
    """One tap calling each given tap in turn (each may return a view), or None when none
    is given: then the trainer runs the plain module."""
    live = [t for t in taps if t is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]

    def tap(k: int, t: torch.Tensor) -> torch.Tensor:
        for f in live:
            t = f(k, t)
        return t
    return tap


class WireTap:
    """Captures the requested wires in one step. `requests`: edge key → the read to keep
    (0-based iteration inside a Loop body; None: the first). Unknown keys are refused by
    `Trainer.inspect` before a tap is built."""

    def __init__(self, edge_keys: Sequence[str], requests: Mapping[str, int | None]):
        index = {key: k for k, key in enumerate(edge_keys)}
        self.wanted = {index[e]: (e, it) for e, it in requests.items() if e in index}
        self.reads: dict[int, int] = {}
        self.kept: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def tap(self, k: int, t: torch.Tensor) -> torch.Tensor:
        want = self.wanted.get(k)
        if want is None:
            return t
        n = self.reads.get(k, 0)
        self.reads[k] = n + 1
        if n != (want[1] or 0):
            return t
        if t.is_floating_point() and t.requires_grad:
            view = t.view_as(t)
            view.retain_grad()
            self.kept[k] = (t.detach(), view)
            return view
        self.kept[k] = (t.detach(), None)
        return t

    def readings(self, step: int) -> list[WireReading]:
        out = []
        for k, (edge, iteration) in self.wanted.items():
            if k not in self.kept:
                continue
            value, view = self.kept[k]
            grad = view.grad if view is not None else None
            reads = self.reads.get(k, 1)
            out.append(reading(step, edge, value, grad,
                               iteration if iteration is not None or reads > 1 else None, reads))
        return out


def _first(t: torch.Tensor) -> tuple[float, ...]:
    flat = t[0].reshape(-1) if t.dim() > 0 and t.shape[0] > 0 else t.reshape(-1)
    return tuple(float(v) for v in flat[:SAMPLE].float().tolist())


@torch.no_grad()
def reading(step: int, edge: str, value: torch.Tensor, grad: torch.Tensor | None,
            iteration: int | None = None, iterations: int = 1) -> WireReading:
    """A `WireReading` of one captured activation and its gradient."""
    channels = None
    if value.dim() == 4 and value.is_floating_point():   # (B, C, H, W): first sample's channels
        channels = value[0, :CHANNELS].float().cpu().numpy()
    return WireReading(step, edge, iteration, tensor_stats(value),
                       tensor_stats(grad) if grad is not None else None, _first(value),
                       _first(grad) if grad is not None else (), iterations, channels)


@torch.no_grad()
def unit_response(forward: Callable, edge_index: int, lo: Sequence[float], hi: Sequence[float],
                  resolution: int = RESOLUTION, units: int = UNITS):
    """For a model on 2-D inputs: each unit of the wire `edge_index` over the input plane.

    `forward(tap, x)` runs the model (eval mode) on x (N, 2) with a tap. Returns a numpy
    float32 array (units, R, R), rows = y, and the extent (x0, x1, y0, y1)."""
    xs = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    ys = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")          # (R, R): row i is ys[i]
    grid = torch.stack([gx, gy], dim=-1).reshape(-1, 2)       # (R·R, 2)
    seen: list[torch.Tensor] = []

    def tap(k: int, t: torch.Tensor) -> torch.Tensor:
        if k == edge_index and not seen:
            seen.append(t.detach())
        return t

    forward(tap, grid)
    if not seen or seen[0].dim() == 0 or seen[0].shape[0] != grid.shape[0]:
        return None, None
    per_unit = seen[0].reshape(grid.shape[0], -1)[:, :units].float()   # (R·R, units)
    maps = per_unit.T.reshape(-1, resolution, resolution)               # (units, R, R)
    return maps.cpu().numpy(), (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
