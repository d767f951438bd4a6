"""The training setup as a frozen value: the graph file's `training` section plus defaults.

Pure data (no torch). The file's section may omit any key; `TrainingConfig.from_mapping`
fills in the defaults below, and `with_overrides` applies CLI flags or studio edits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "one_cycle")
LOSSES = ("auto", "cross_entropy", "mse", "bce_with_logits", "l1", "graph")
TASKS = ("auto", "classification", "regression")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainingConfig:
    dataset: Mapping[str, Any] = field(default_factory=lambda: {"name": "moons"})
    task: str = "auto"              # auto: from the dataset
    loss: str = "auto"              # auto: cross-entropy for classification, MSE for regression
    optimizer: str = "adam"
    lr: float = 0.01
    momentum: float = 0.9           # SGD only
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 50
    steps: int | None = None        # when set, overrides epochs
    schedule: str = "constant"
    step_size: int = 1000           # "step" schedule: decay every this many steps
    gamma: float = 0.5              # "step" schedule: decay factor
    clip_grad_norm: float | None = None
    seed: int = 0
    device: str = "auto"
    gradflow_every: int = 25        # gradient-flow snapshot every K steps (0: off); K=25 keeps
                                    # its cost under 5% of a step (bench/gradflow.py)
    eval_every: int = 0             # evaluate every N steps; 0 means once per epoch
    boundary_every: int = 0         # 2-D data: class probabilities on a grid every N steps; 0: off

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        data = dict(data or {})
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        return cls(**data).checked()

    def with_overrides(self, **changes: Any) -> TrainingConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).checked()

    def checked(self) -> TrainingConfig:
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("loss", LOSSES),
                              ("task", TASKS), ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, "
                                 f"not {getattr(self, name)!r}")
        if not (isinstance(self.lr, int | float) and 0 < self.lr <= 100):
            raise ValueError(f"lr must be in (0, 100], not {self.lr!r}")
        for name in ("batch_size", "epochs", "seed", "gradflow_every", "eval_every", "step_size",
                     "boundary_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        for name, high in (("momentum", 1), ("weight_decay", 10)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
                raise ValueError(f"{name} must be a number in [0, {high}], not {value!r}")
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, int | float) \
                or not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], not {self.gamma!r}")
        if self.clip_grad_norm is not None and (isinstance(self.clip_grad_norm, bool) or not (
                isinstance(self.clip_grad_norm, int | float) and self.clip_grad_norm > 0)):
            raise ValueError(f"clip_grad_norm must be a positive number, not {self.clip_grad_norm!r}")
        for name in ("batch_size", "step_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be a positive integer, not {self.steps!r}")
        if not isinstance(self.dataset, Mapping) or not isinstance(self.dataset.get("name"), str):
            raise ValueError("dataset must be an object with a name")
        return self

    def to_mapping(self) -> dict[str, Any]:
        out = asdict(self)
        out["dataset"] = dict(self.dataset)
        return out
