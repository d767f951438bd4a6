"""Gradient flow: how much gradient reaches every wire of the user's graph, and what flows on it.

`GradFlowProbe` watches one training step of a module compiled with taps (`compile_class(...,
tap=True)`): its `tap` is handed to the tapped forward, which calls it on every edge read.
The result is a `GradFlowSnapshot` (also the trainer's event) with

- per edge (keys: exactly the graph's edge keys, bodies included, e.g. "loop1/body/fc.y->act.x"):
  the RMS of the gradient flowing along it, and the mean, std and fraction of zeros of the
  activation on it. An edge read several times (a loop body, both arms of a branch) is
  aggregated over its reads: sums of squares and element counts add up. Edges that carry no
  gradient (integer tensors, a branch condition, a wire nothing differentiable reads) report
  `grad_rms=None`;
- per node with parameters: gradient RMS, weight RMS and update-to-weight ratio (the RMS of the
  optimizer step's change over the weight RMS);
- per node with dead-unit outputs (its spec's `dead_units`, e.g. ReLU's): units dead for the
  whole sampled batch (a unit is one element position of a sample, all non-batch dims: a
  feature for (B, F), a channel-pixel for (B, C, H, W));
- per weight group (calls sharing one module, keyed by scope prefix and name: "encoder"):
  the same three numbers over its shared parameters, whose gradient is the sum over its calls.
  A node inside such a call reports those shared parameters too, so every call shows the
  total there; what differs per call is the gradient on its wires;
- flags: "vanishing" (grad RMS below `vanishing_below` for `vanishing_streak` snapshots in a
  row) and "exploding" (grad RMS above `exploding_above`, or `growth` times the previous
  snapshot's and above 1).

Cheap by design, and only on sampled steps: a tap is one `view_as` per edge read (so two
consumers of a tensor get one gradient each) whose `retain_grad` hook only stores the gradient.
After the step, same-shaped tensors are stacked and reduced together (a few ops per distinct
shape), and one device-to-host copy brings back every number. bench/gradflow.py measures it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from nodes import lookup
from nodes.control import OWN_WEIGHTS

from ..core.events import EdgeFlow, GradFlowSnapshot, GroupFlow, NodeFlow
from ..core.graph import Graph, source_node, source_port

VANISHING_BELOW = 1e-7
VANISHING_STREAK = 3
EXPLODING_ABOVE = 1e3
GROWTH = 100.0


def graph_edge_keys(graph: Graph, prefix: str = "") -> list[str]:
    """Every edge key of the graph, bodies included (a function's at each call), in file order."""
    return [region_prefix + e.key for region_prefix, region in graph.regions(prefix)
            for e in region.edges]


def dead_unit_sources(graph: Graph, edge_keys: list[str]) -> dict[int, tuple[str, str]]:
    """tap index → (node path, output port), for the edges leaving an output that the node's
    spec lists in `dead_units`."""
    specs = {path: lookup(node.type) for path, node in graph.walk()}
    out = {}
    for k, key in enumerate(edge_keys):
        node, port = source_node(key), source_port(key)
        spec = specs.get(node)
        if spec is not None and port in spec.dead_units:
            out[k] = (node, port)
    return out


def node_parameters(module: nn.Module, node_modules: Mapping[str, str]) -> dict[str, list[nn.Parameter]]:
    """node path → its parameters, found through the generated attribute names.

    A ModuleList on the way (a loop without shared weights) stands for all its items."""
    out = {}
    for path, dotted in node_modules.items():
        objs: list[Any] = [module]
        for name in dotted.split("."):
            objs = [getattr(o, name) for o in objs]
            objs = [item for o in objs for item in (o if isinstance(o, nn.ModuleList) else [o])]
        params = [p for o in objs for p in (o.parameters() if isinstance(o, nn.Module) else [o])]
        if params:
            out[path] = params
    return out


def weight_groups(graph: Graph) -> dict[str, tuple[str, ...]]:
    """group key (scope prefix + group name) → the paths of its calls, in walk order."""
    out: dict[str, tuple[str, ...]] = {}
    for path, node in graph.walk():
        weights = node.params.get("weights", OWN_WEIGHTS) if node.type == "call" else OWN_WEIGHTS
        if weights != OWN_WEIGHTS:
            key = path[: path.rfind("/") + 1] + str(weights)
            out[key] = (*out.get(key, ()), path)
    return out


def group_parameters(groups: Mapping[str, tuple[str, ...]],
                     params: Mapping[str, list[nn.Parameter]]) -> dict[str, list[nn.Parameter]]:
    """group key → its shared parameters, each once: those of the nodes inside its calls."""
    out = {}
    for key, calls in groups.items():
        found = {id(p): p for path, ps in params.items()
                 if any(path.startswith(call + "/") for call in calls) for p in ps}
        out[key] = list(found.values())
    return out


def _grouped(tensors: list[torch.Tensor], reduce) -> tuple[torch.Tensor, list[int]]:
    """`reduce((n, elements)) -> (n, m)` applied to same-shaped tensors stacked together; returns
    all rows and the tensor index of each row.

    A few ops per distinct shape rather than per tensor: a loop reads the same edges, with the
    same shapes, every iteration, and on the CPU torch's foreach ops loop over tensors anyway.
    """
    groups: dict[torch.Size, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(t.shape, []).append(i)
    rows = [reduce((torch.stack([tensors[i] for i in index]) if len(index) > 1
                    else tensors[index[0]]).reshape(len(index), -1)) for index in groups.values()]
    order = [i for index in groups.values() for i in index]
    return (torch.cat(rows) if rows else torch.zeros(0, 0)), order


def _moments(x: torch.Tensor) -> torch.Tensor:
    """(n, elements) → (n, 3): sum, 2-norm and nonzero count of each row."""
    # x.bool().sum() counts nonzeros; on the CPU it is ~3x faster than (x != 0) or count_nonzero
    return torch.stack([x.sum(1), torch.linalg.vector_norm(x, 2, 1), x.bool().sum(1).to(x.dtype)], 1)


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, 2, 1, keepdim=True)


class _Flags:
    """Remembers each key's last RMS and how long it has been tiny, across snapshots."""

    def __init__(self, vanishing_below: float, vanishing_streak: int, exploding_above: float,
                 growth: float):
        self.vanishing_below, self.vanishing_streak = vanishing_below, vanishing_streak
        self.exploding_above, self.growth = exploding_above, growth
        self.last: dict[str, float] = {}
        self.streak: dict[str, int] = {}

    def __call__(self, key: str, rms: float | None) -> tuple[str, ...]:
        if rms is None:
            return ()
        flags = []
        self.streak[key] = self.streak.get(key, 0) + 1 if rms < self.vanishing_below else 0
        if self.streak[key] >= self.vanishing_streak:
            flags.append("vanishing")
        last = self.last.get(key)
        if rms > self.exploding_above or (last and rms > self.growth * last and rms > 1.0):
            flags.append("exploding")
        self.last[key] = rms
        return tuple(flags)


class GradFlowProbe:
    """Measures sampled steps: `tap` during the forward, `before_step` after backward, `snapshot`
    after the optimizer step; `discard` drops a step that did not complete."""

    def __init__(self, graph: Graph, edge_keys: list[str], node_modules: Mapping[str, str],
                 module: nn.Module, *, vanishing_below: float = VANISHING_BELOW,
                 vanishing_streak: int = VANISHING_STREAK, exploding_above: float = EXPLODING_ABOVE,
                 growth: float = GROWTH):
        self.keys = graph_edge_keys(graph)
        self.tap_keys = edge_keys                              # tap index → edge key
        self.dead_of = dead_unit_sources(graph, edge_keys)
        self.params = node_parameters(module, node_modules)
        self.group_calls = weight_groups(graph)
        self.group_params = group_parameters(self.group_calls, self.params)
        self.flags = _Flags(vanishing_below, vanishing_streak, exploding_above, growth)
        self.discard()

    def discard(self) -> None:
        self._taps: list[tuple[int, torch.Tensor, torch.Tensor | None]] = []  # (k, value, view)
        self._live: list[tuple[str, nn.Parameter]] = []   # parameters that got a gradient
        self._graded: list[tuple[int, torch.Tensor]] = []  # (k, gradient) of edges with one
        self._before: list[torch.Tensor] = []             # weights before the step
        self._pending: list = []                          # (rows on the device, row order)

    def tap(self, k: int, t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point():
            return t   # token ids, masks: no statistics, no gradient
        view = t.view_as(t)   # this edge's own autograd node, so its own gradient
        if view.requires_grad:
            view.retain_grad()   # a built-in hook that only stores the gradient in view.grad
        self._taps.append((k, t, view if view.requires_grad else None))
        return view

    @torch.no_grad()
    def before_step(self) -> None:
        """After backward, before the optimizer step: reductions queued, the weights copied."""
        self._live = [(path, p) for path, ps in self.params.items() for p in ps
                      if p.grad is not None]
        weights = [p for _, p in self._live]
        self._graded = [(k, view.grad) for k, _, view in self._taps
                        if view is not None and view.grad is not None]
        self._pending = [_grouped([v for _, v, _ in self._taps], _moments),
                         _grouped([g for _, g in self._graded], _norm)]
        if weights:   # (n, 2): gradient and weight norm of each parameter
            norms = torch.stack(torch._foreach_norm([p.grad for p in weights] + weights))
            self._pending.append((norms.reshape(2, -1).T, range(len(weights))))
        self._before = torch._foreach_mul(weights, 1.0) if weights else []   # copies

    @torch.no_grad()
    def snapshot(self, step: int) -> GradFlowSnapshot:
        """After the optimizer step: every number in one device-to-host copy."""
        pending = list(self._pending)
        if self._live:
            deltas = torch._foreach_sub([p.detach() for _, p in self._live], self._before)
            pending.append((torch.stack(torch._foreach_norm(deltas)).unsqueeze(1),
                            range(len(deltas))))
        alive: dict[tuple[str, str], torch.Tensor] = {}   # which units fired for some sample
        for k, value, _ in self._taps:
            if k in self.dead_of and value.dim() > 0:
                fired = (value != 0).reshape(len(value), -1).any(0)   # (B, ...) → (units,)
                out = self.dead_of[k]
                alive[out] = alive[out] | fired if out in alive else fired
        parts = [rows.reshape(-1) for rows, _ in pending if rows.numel()]
        if alive:
            parts.append(torch.stack([a.sum() for a in alive.values()]))
        numbers = iter(torch.cat(parts).tolist() if parts else [])
        tables = []
        for rows, order in pending:   # back in tensor order
            table: list = [None] * len(order)
            for i in order:
                table[i] = [next(numbers) for _ in range(rows.shape[1])]
            tables.append(table)
        values, grads, *params = tables
        edges = self._edge_table(values, grads)
        nodes = self._node_table(*(params or ([], [])))   # (grad, weight) norms, delta norms
        groups = self._group_table(*(params or ([], [])))
        dead: dict[str, tuple[int, int]] = {}   # per node, its dead-unit outputs added up
        for (node, _), a in alive.items():
            was = dead.get(node, (0, 0))
            dead[node] = (was[0] + a.numel() - int(next(numbers)), was[1] + a.numel())
        self.discard()
        return GradFlowSnapshot(step, edges, nodes, dead, groups)

    def _edge_table(self, values, grads) -> dict[str, EdgeFlow]:
        # per key: grad sum of squares, grad count, value sum, sum of squares, nonzeros, count, reads
        acc = {key: [0.0, 0, 0.0, 0.0, 0.0, 0, 0] for key in self.keys}
        for (k, g), (norm,) in zip(self._graded, grads, strict=True):
            a = acc[self.tap_keys[k]]
            a[0] += norm * norm
            a[1] += g.numel()
        for (k, v, _), (total, norm, nonzero) in zip(self._taps, values, strict=True):
            a = acc[self.tap_keys[k]]
            a[2] += total
            a[3] += norm * norm
            a[4] += nonzero
            a[5] += v.numel()
            a[6] += 1
        table = {}
        for key, (gsq, gcount, vsum, vsq, nonzero, count, reads) in acc.items():
            rms = math.sqrt(gsq / gcount) if gcount else None
            mean = vsum / count if count else None
            std = math.sqrt(max(vsq / count - mean * mean, 0.0)) if count else None
            zeros = 1.0 - nonzero / count if count else None
            table[key] = EdgeFlow(rms, mean, std, zeros, reads, self.flags(key, rms))
        return table

    def _node_table(self, norms, deltas) -> dict[str, NodeFlow]:
        acc: dict[str, list[float]] = {}   # path → grad sq, weight sq, delta sq, count
        for (path, p), (g, w), (d,) in zip(self._live, norms, deltas, strict=True):
            a = acc.setdefault(path, [0.0, 0.0, 0.0, 0])
            a[0] += g * g
            a[1] += w * w
            a[2] += d * d
            a[3] += p.numel()
        table = {}
        for path, params in self.params.items():
            if path not in acc:   # no gradient this step (say, the branch not taken)
                weight = math.sqrt(sum(float(p.detach().square().sum()) for p in params)
                                   / sum(p.numel() for p in params))
                table[path] = NodeFlow(None, weight, None)
                continue
            gsq, wsq, dsq, count = acc[path]
            rms = math.sqrt(gsq / count)
            table[path] = NodeFlow(rms, math.sqrt(wsq / count),
                                   math.sqrt(dsq / wsq) if wsq else None, self.flags(path, rms))
        return table

    def _group_table(self, norms, deltas) -> dict[str, GroupFlow]:
        """From the norms already measured for the nodes: no work on the device."""
        if not self.group_params:
            return {}
        measured = {id(p): (g, w, d) for (_, p), (g, w), (d,) in zip(self._live, norms, deltas,
                                                                     strict=True)}
        table = {}
        for key, params in self.group_params.items():
            calls = self.group_calls[key]
            live = [p for p in params if id(p) in measured]
            rows, count = [measured[id(p)] for p in live], sum(p.numel() for p in live)
            if not count:   # no call got a gradient this step, or the group has no weights
                total = sum(p.numel() for p in params)
                weight = (math.sqrt(sum(float(p.detach().square().sum()) for p in params) / total)
                          if total else 0.0)
                table[key] = GroupFlow(None, weight, None, calls)
                continue
            gsq, wsq, dsq = (sum(r[i] * r[i] for r in rows) for i in range(3))
            rms = math.sqrt(gsq / count)
            table[key] = GroupFlow(rms, math.sqrt(wsq / count), math.sqrt(dsq / wsq) if wsq else None,
                                   calls, self.flags("group " + key, rms))
        return table
