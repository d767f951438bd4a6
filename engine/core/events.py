"""What a training run shows the world: small frozen events, and the gradient-flow records.

The trainer (`engine.runtime.trainer`) puts these on its event queue; the studio and the
command line read them. They live in the pure core so a reader can import them, and
dispatch on their types, without loading torch: a renamed event is then an import error in
every reader, not an event silently ignored.

A run starts with `Started` and ends with exactly one of `Finished`, `Stopped` or `Failed`.
Plain data: no torch and no numpy here (the decision boundary's grid is a numpy array the
trainer makes, typed loosely).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Started:
    total_steps: int
    steps_per_epoch: int
    first_step: int        # > 0 when resuming
    device: str
    task: str
    loss: str
    parameters: int
    world_size: int = 1
    weights: str = ""      # where the weights came from, when training.weights is set


@dataclass(frozen=True)
class StepMetrics:
    step: int              # steps completed, counting from 1
    epoch: int             # 1-based
    loss: float
    accuracy: float | None
    lr: float


@dataclass(frozen=True)
class EvalMetrics:
    step: int
    epoch: int
    train_loss: float | None     # None when no step ran since the last evaluation
    val_loss: float
    train_accuracy: float | None
    val_accuracy: float | None
    lr: float

    def to_json(self) -> dict[str, Any]:
        out = {"step": self.step, "epoch": self.epoch, "train_loss": self.train_loss,
               "val_loss": self.val_loss}
        if self.val_accuracy is not None:
            out.update(train_accuracy=self.train_accuracy, val_accuracy=self.val_accuracy)
        out["lr"] = self.lr
        return out


@dataclass(frozen=True, eq=False)
class DecisionBoundary:
    step: int
    extent: tuple[float, float, float, float]   # x0, x1, y0, y1 of the grid
    # A numpy float32 array (rows = y, cols = x, classes); typed loosely to keep numpy out.
    probs: Any = field(repr=False)


@dataclass(frozen=True)
class ParameterValues:
    """The values of the graph's Parameter blocks after `step`, for a program trained without
    data (its Parameters are what it learns): node path → the values, flattened in row-major
    order. Reported at each evaluation, for blocks of at most `MAX_REPORTED` values."""

    step: int
    values: Mapping[str, tuple[float, ...]]

    MAX_REPORTED = 64

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "values": {k: list(v) for k, v in self.values.items()}}


@dataclass(frozen=True, eq=False)
class ImageGrid:
    """What the model makes of a few validation images at `step`, beside those images: for
    image data whose predictions have an image's size (an autoencoder's reconstructions).
    Numpy float32 arrays (N, H, W) with values in [0, 1]; typed loosely to keep numpy out."""

    step: int
    inputs: Any = field(repr=False)
    outputs: Any = field(repr=False)


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str


@dataclass(frozen=True)
class Paused:
    step: int


@dataclass(frozen=True)
class Resumed:
    step: int


@dataclass(frozen=True)
class Stopped:
    step: int


@dataclass(frozen=True)
class Finished:
    step: int
    metrics: EvalMetrics | None
    seconds: float


@dataclass(frozen=True)
class Failed:
    step: int
    kind: str   # invalid_graph | data | config | checkpoint | nonfinite | out_of_memory | io | error
    message: str
    node: str | None = None
    error: BaseException | None = field(default=None, repr=False, compare=False)


# --- gradient flow: what one sampled step measured (engine.runtime.gradflow) -------------------


@dataclass(frozen=True)
class EdgeFlow:
    grad_rms: float | None        # None: no gradient flows along this edge
    mean: float | None            # the activation on the edge; None if it was never read
    std: float | None
    zero_fraction: float | None
    reads: int = 0                # how often the edge was read in the step (loop iterations)
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeFlow:
    grad_rms: float | None        # None: no parameter of the node got a gradient this step
    weight_rms: float
    update_ratio: float | None    # RMS(weight change) / RMS(weight)
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupFlow:
    """A weight group's shared parameters: their gradient is the sum over the group's calls
    (each call's own gradient flows on its wires, `call/function/...` edge keys)."""
    grad_rms: float | None        # None: no call of the group got a gradient this step
    weight_rms: float
    update_ratio: float | None
    calls: tuple[str, ...] = ()   # the call paths sharing the weights, in walk order
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class GradFlowSnapshot:
    step: int
    edges: Mapping[str, EdgeFlow]
    nodes: Mapping[str, NodeFlow]
    # node path → (dead units, units), for blocks whose spec names dead-unit outputs (ReLU)
    dead_units: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # weight group → its shared parameters, all calls together; keyed by the scope's path
    # prefix and the group's name ("encoder", "loop1/body/encoder")
    groups: Mapping[str, GroupFlow] = field(default_factory=dict)

    def flagged(self, flag: str) -> list[str]:
        """Edge keys and node paths carrying `flag`, e.g. "vanishing"."""
        return [k for table in (self.edges, self.nodes) for k, v in table.items() if flag in v.flags]

    def to_json(self) -> dict[str, Any]:
        def clean(obj) -> dict:
            return {k: (list(v) if isinstance(v, tuple) else v) for k, v in obj.__dict__.items()}

        return {"step": self.step, "edges": {k: clean(v) for k, v in self.edges.items()},
                "nodes": {k: clean(v) for k, v in self.nodes.items()},
                "dead_units": {k: list(v) for k, v in self.dead_units.items()},
                "groups": {k: clean(v) for k, v in self.groups.items()}}


# --- experiments: live edits, wire readings, time per block, the fault (issue 17) ---------------


LIVE_SETTINGS = ("lr", "clip_grad_norm", "gradflow_every")
"""The settings a run accepts while it trains (`Trainer.edit`); each is applied between steps."""


@dataclass(frozen=True)
class LiveEdit:
    """A setting changed while the run trained: applied before step `step` + 1, so `step` is
    the number of steps done with the old value. Recorded in run.json's `edits` and drawn as a
    marker on the curves. `old`/`new` are plain JSON values (clip_grad_norm may be None: off)."""

    step: int
    setting: str               # one of LIVE_SETTINGS
    old: float | int | None
    new: float | int | None

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "setting": self.setting, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class TensorStats:
    """Summary of one tensor (a wire's activation, or its gradient), over every element.
    `histogram` counts the finite values in `bins` equal bins over [min, max]; `nonfinite`
    counts NaN and Inf (mean/std/min/max are of the finite values; None when none is)."""

    shape: tuple[int, ...]
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    zero_fraction: float
    histogram: tuple[int, ...] = ()
    nonfinite: int = 0

    def to_json(self) -> dict[str, Any]:
        # Field by field (shape, mean, std, min, max, zero_fraction, histogram, nonfinite).
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True, eq=False)
class WireReading:
    """What one wire carried at `step` (engine.runtime.wires), asked for with
    `Trainer.inspect(edge_key)`.

    `iteration` is which read of the wire inside a Loop body (0-based; None outside loops).
    `sample` is a few of the first sample's values, flattened. `channels` is, for image-like
    tensors (B, C, H, W), a numpy float32 array (k, H, W) of the first sample's first k
    channels; `heatmap`, for a model on 2-D inputs, a numpy float32 array (units, R, R): each
    unit's value over the input plane (rows = y) with `extent` x0, x1, y0, y1. Arrays are
    typed loosely to keep numpy out."""

    step: int
    edge: str
    iteration: int | None
    activation: TensorStats
    gradient: TensorStats | None           # None: no gradient reached the wire
    sample: tuple[float, ...] = ()
    grad_sample: tuple[float, ...] = ()
    iterations: int = 1                    # how often the wire was read in the step
    channels: Any = field(default=None, repr=False)
    heatmap: Any = field(default=None, repr=False)
    extent: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class BlockTimes:
    """Profile mode (engine.runtime.profile): each block's forward and backward time in
    milliseconds at `step`, by node path. A block that ran inside a Loop body sums its
    iterations."""

    step: int
    forward_ms: Mapping[str, float]
    backward_ms: Mapping[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "forward_ms": dict(self.forward_ms),
                "backward_ms": dict(self.backward_ms)}


@dataclass(frozen=True)
class NonFinite:
    """Training met NaN or Inf at step `step` (the step that failed: `step` - 1 is the last
    good one, whose weights the run folder keeps). `node` is the block whose output first
    went non-finite (None when every activation was finite: the loss or a gradient was),
    `edge` that output's wire; `inputs` and `outputs` are the block's wires' stats at the
    failing step, by edge key. Emitted just before `Failed(kind="nonfinite")`."""

    step: int
    node: str | None
    edge: str | None
    inputs: Mapping[str, TensorStats]
    outputs: Mapping[str, TensorStats]
    last_good_step: int
    checkpoint: str | None = None          # the run folder holding the last good step

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "node": self.node, "edge": self.edge,
                "inputs": {k: v.to_json() for k, v in self.inputs.items()},
                "outputs": {k: v.to_json() for k, v in self.outputs.items()},
                "last_good_step": self.last_good_step, "checkpoint": self.checkpoint}


@dataclass(frozen=True)
class RunRecorded:
    """The run is kept in `folder` (engine.core.runs): emitted once, before `Started`."""

    folder: str
    name: str
    parent: str | None = None


Event = (Started | StepMetrics | EvalMetrics | GradFlowSnapshot | DecisionBoundary
         | ParameterValues | ImageGrid | CheckpointSaved | Paused | Resumed | Stopped | Finished
         | Failed | LiveEdit | WireReading | BlockTimes | NonFinite | RunRecorded)
