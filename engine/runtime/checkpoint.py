"""Run folders: what a training run leaves behind, readable without unpickling any object.

A run folder holds

    weights.pt    the model's state_dict: a plain dict of tensors, so
                  `torch.load(path, weights_only=True)` reads it and the exported class loads it
                  with `load_state_dict`
    state.pt      what resuming needs: the weights again (so one file is always consistent),
                  the step, the optimizer's state, running metrics and the torch RNG state;
                  tensors and primitives only, also loaded with weights_only=True
    graph.json    the graph, its training section set to the effective config
    config.json   that config alone
    model.py      the export of the graph
    train.py      retrains it with this run's settings, needing only torch (engine.runtime.export)
    data.pt       the data train.py reads, split as this run split it

Each file is written whole to a temporary file that is then renamed over the old one.
torch is imported on first use, so reading a run's config stays cheap (`dprog train` checks
its options before loading torch).
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.codegen import export_python
from ..core.config import TrainingConfig
from ..core.fileformat import atomic_write, save_graph
from ..core.graph import Graph
from .export import write_train_script

if TYPE_CHECKING:
    import torch

WEIGHTS, STATE, GRAPH, CONFIG, MODEL = "weights.pt", "state.pt", "graph.json", "config.json", "model.py"


class CheckpointError(ValueError):
    """A run folder that cannot be resumed; the message says which file and why."""


def tensor_bytes(obj: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_run(folder: str | Path, graph: Graph, config: TrainingConfig,
             weights: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu() for k, v in weights.items()}
    atomic_write(folder / STATE, tensor_bytes({**state, "weights": weights}))
    atomic_write(folder / WEIGHTS, tensor_bytes(weights))
    save_graph(replace(graph, training=config.to_mapping()), folder / GRAPH)
    atomic_write(folder / CONFIG, (json.dumps(config.to_mapping(), indent=2, sort_keys=True)
                                   + "\n").encode())
    atomic_write(folder / MODEL, export_python(graph).encode())
    write_train_script(graph, folder, config)   # train.py + data.pt: retrain without dprog
    return folder


def load_state(folder: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    import torch

    path = Path(folder) / STATE
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file; is {folder} a training run folder?") from None
    except Exception as e:  # a truncated or foreign file: say so in one line
        raise CheckpointError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not {"step", "weights", "optimizer"} <= set(state):
        raise CheckpointError(f"{path}: not a dprog training state")
    return state


def load_config(folder: str | Path) -> TrainingConfig:
    path = Path(folder) / CONFIG
    try:
        return TrainingConfig.from_mapping(json.loads(path.read_text()))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file; is {folder} a training run folder?") from None
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: {e}") from None
