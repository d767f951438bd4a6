"""The training setup as a frozen value: the graph file's `training` section plus defaults.

Pure data (no torch). The file's section may omit any key; `TrainingConfig.from_mapping`
fills in the defaults below, and `with_overrides` applies CLI flags or studio edits. Every
way in ends in `checked()`: each setting of the right type and in range (the ranges of
graph.schema.json), every number finite, so a config that was accepted can always be saved.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "one_cycle")
LOSSES = ("auto", "cross_entropy", "mse", "bce_with_logits", "l1", "graph")
TASKS = ("auto", "classification", "regression")
DEVICES = ("auto", "cpu", "cuda")
MAX_SEED = 2**32 - 1   # numpy's and scikit-learn's seed range
# name -> (lowest, highest): the ranges graph.schema.json gives the training section.
INTEGERS = {"batch_size": (1, 1 << 20), "epochs": (0, 1_000_000), "steps": (1, 100_000_000),
            "step_size": (1, 100_000_000), "seed": (0, MAX_SEED), "gradflow_every": (0, 1_000_000),
            "eval_every": (0, 1_000_000), "boundary_every": (0, 1_000_000)}
# name -> (lowest, highest, lowest excluded); always finite: a run folder's config is JSON.
NUMBERS = {"lr": (0, 100, True), "momentum": (0, 1, False), "weight_decay": (0, 10, False),
           "gamma": (0, 1, True), "clip_grad_norm": (0, 1e9, True)}


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
    tensorboard: bool = False       # also write TensorBoard event files into the run folder
    # A weights.pt (a state_dict, as `dprog import --weights` writes) a fresh run starts from:
    # fine-tuning. Relative to the graph file. Tensors whose key and shape fit are loaded; the
    # others start fresh (a new head), and the run says which. A resumed run ignores it.
    weights: str | None = None

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
        """Self, once every setting is known to be in range; otherwise a ValueError naming the
        setting and its allowed range. Run before anything is trained or written, so a value
        that would fail late (an infinite clip norm cannot be saved in JSON; a seed past
        2**32 - 1 is refused by numpy) fails first."""
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("loss", LOSSES),
                              ("task", TASKS), ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, "
                                 f"not {getattr(self, name)!r}")
        for name, (low, high) in INTEGERS.items():
            value = getattr(self, name)
            if value is None and name == "steps":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high:,}, not {value!r}")
        for name, (low, high, open_low) in NUMBERS.items():
            value = getattr(self, name)
            if value is None and name == "clip_grad_norm":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value) and (low < value if open_low else low <= value)
                    and value <= high):
                span = f"({low:g}, {high:g}]" if open_low else f"[{low:g}, {high:g}]"
                raise ValueError(f"{name} must be a finite number in {span}, not {value!r}")
        if self.weights is not None and not (isinstance(self.weights, str)
                                             and 0 < len(self.weights) <= 4096):
            raise ValueError(f"weights must be a file path, not {self.weights!r}")
        if not isinstance(self.tensorboard, bool):
            raise ValueError(f"tensorboard must be true or false, not {self.tensorboard!r}")
        if not isinstance(self.dataset, Mapping) or not isinstance(self.dataset.get("name"), str):
            raise ValueError("dataset must be an object with a name")
        try:   # what a run folder's graph.json and config.json will hold, written as they will be
            json.dumps(dict(self.dataset), allow_nan=False, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise ValueError(f"dataset cannot be saved as a graph file's JSON ({e})") from None
        return self

    def to_mapping(self) -> dict[str, Any]:
        out = asdict(self)
        out["dataset"] = dict(self.dataset)
        return out
