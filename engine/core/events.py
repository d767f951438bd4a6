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
class GradFlowSnapshot:
    step: int
    edges: Mapping[str, EdgeFlow]
    nodes: Mapping[str, NodeFlow]
    # node path → (dead units, units), for blocks whose spec names dead-unit outputs (ReLU)
    dead_units: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def flagged(self, flag: str) -> list[str]:
        """Edge keys and node paths carrying `flag`, e.g. "vanishing"."""
        return [k for table in (self.edges, self.nodes) for k, v in table.items() if flag in v.flags]

    def to_json(self) -> dict[str, Any]:
        def clean(obj) -> dict:
            return {k: (list(v) if isinstance(v, tuple) else v) for k, v in obj.__dict__.items()}

        return {"step": self.step, "edges": {k: clean(v) for k, v in self.edges.items()},
                "nodes": {k: clean(v) for k, v in self.nodes.items()},
                "dead_units": {k: list(v) for k, v in self.dead_units.items()}}


Event = (Started | StepMetrics | EvalMetrics | GradFlowSnapshot | DecisionBoundary
         | ParameterValues | ImageGrid | CheckpointSaved | Paused | Resumed | Stopped | Finished
         | Failed)
