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
    .lock         who writes the folder now (see `RunLock`)

Guarantees:
- A checkpoint is written all or nothing: every file goes to a temporary file first, and
  only when all five are complete are they renamed into place, state.pt last. A failure
  while writing (a full disk, a read-only folder, a second Ctrl-C) leaves the folder as it
  was, with its last complete checkpoint and no temporary files.
- What never changes during a run (graph.json, config.json, model.py) is turned into bytes
  once, before the first step (`RunFiles`), so text or a setting that cannot be saved is
  refused before training rather than at its last step.
- `load_state` checks state.pt before and after torch reads it: a regular file, a torch zip
  archive whose records are stored uncompressed (dprog never compresses, so a small file
  cannot inflate to gigabytes in memory), read with weights_only=True; then every field by
  type and range. A refusal is one line (`CheckpointError`) and never repeats torch's advice
  to load with weights_only=False, which would run whatever code the file holds.
- `restore` puts a checked state into a module and optimizer, comparing names and shapes
  first, so a checkpoint of another graph is one line naming the first differences.
- `RunLock` lets one process at a time write a folder; the kernel drops the lock when its
  holder exits, however it dies.

torch is imported on first use, so reading a run's config stays cheap (`dprog train` checks
its options before loading torch).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import sys
import time
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.codegen import export_python
from ..core.config import TrainingConfig
from ..core.fileformat import atomic_write_all, dumps
from ..core.files import FileRefused, open_regular, read_regular, shown
from ..core.graph import Graph
from .export import write_train_script

if TYPE_CHECKING:
    import torch

WEIGHTS, STATE, GRAPH, CONFIG, MODEL = "weights.pt", "state.pt", "graph.json", "config.json", "model.py"
LOCK = ".lock"
STATE_FORMAT = 1
MAX_STEP = 2**53   # a step count any JSON reader holds exactly
MAX_CONFIG_BYTES = 1 << 20
# optimizer -> the per-parameter state its step reads by key (SGD's momentum buffer is
# optional: a missing one starts again from the gradient).
OPTIMIZER_STATE = {"Adam": ("step", "exp_avg", "exp_avg_sq"),
                   "AdamW": ("step", "exp_avg", "exp_avg_sq"),
                   "RMSprop": ("step", "square_avg")}


class CheckpointError(ValueError):
    """A run folder that cannot be resumed; the message says which file and why."""


class RunFolderBusy(CheckpointError):
    """Another process holds the run folder's lock."""


def tensor_bytes(obj: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class RunFiles:
    """graph.json, config.json and model.py as bytes: the part of every checkpoint that does
    not change during a run. Building it raises ValueError for anything that could not be
    saved (text no UTF-8 file can hold, a number JSON cannot write)."""

    graph: bytes
    config: bytes
    model: bytes

    @classmethod
    def of(cls, graph: Graph, config: TrainingConfig) -> RunFiles:
        mapping = config.to_mapping()
        try:
            return cls(dumps(replace(graph, training=mapping)).encode("utf-8"),
                       (json.dumps(mapping, indent=2, sort_keys=True, allow_nan=False)
                        + "\n").encode("utf-8"),
                       export_python(graph).encode("utf-8"))
        except UnicodeEncodeError as e:
            raise ValueError(f"the run folder could not be written: text holds a lone surrogate "
                             f"({shown(e.object[e.start])}), which no UTF-8 file can hold") from None


def save_run(folder: str | Path, graph: Graph, config: TrainingConfig,
             weights: dict[str, torch.Tensor], state: dict[str, Any],
             files: RunFiles | None = None) -> Path:
    """Write a checkpoint into `folder`, all or nothing (see the module docstring)."""
    folder = Path(folder)
    files = files or RunFiles.of(graph, config)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu() for k, v in weights.items()}
    # train.py and data.pt first: they change only with the run's settings, and a failure
    # here leaves the last complete checkpoint as it was.
    write_train_script(graph, folder, config)
    atomic_write_all([(folder / WEIGHTS, tensor_bytes(weights)), (folder / GRAPH, files.graph),
                      (folder / CONFIG, files.config), (folder / MODEL, files.model),
                      (folder / STATE, tensor_bytes({**state, "weights": weights}))])
    return folder


# ---- reading state.pt ------------------------------------------------------------------------


def load_state(folder: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """state.pt of `folder`, read safely and checked field by field; CheckpointError otherwise."""

    path = Path(folder) / STATE
    try:
        state = read_torch_file(path, device)
    except FileNotFoundError:
        raise CheckpointError(_missing(Path(folder), STATE)) from None
    check_state(state, path)
    return state


def read_torch_file(path: Path, device: Any = "cpu") -> Any:
    """What torch.save wrote at `path`, read safely: a regular file, a zip whose records
    inflate to no more than their size, tensors and plain values only (weights_only, so no
    code from the file runs). FileNotFoundError when it is missing; CheckpointError, in one
    line, for anything else wrong with it."""
    import torch

    try:
        with open_regular(path) as f, warnings.catch_warnings():
            _check_archive(f, path)
            f.seek(0)
            # A damaged file can make torch warn (deprecated storages): noise on the one line
            # the command line promises; the caller checks what it holds anyway.
            warnings.simplefilter("ignore")
            return torch.load(f, map_location=device, weights_only=True)
    except (CheckpointError, FileNotFoundError):
        raise
    except FileRefused as e:
        raise CheckpointError(f"{path}: {e}") from None
    except Exception as e:  # a truncated, foreign or hostile file: say so in one line
        raise CheckpointError(f"{path}: cannot read it ({_torch_reason(e)})") from None


def check_run_folder(folder: str | Path) -> None:
    """CheckpointError unless `folder` has a state.pt to resume from (said before any other
    file of it is read, so a folder whose run never checkpointed is named as such)."""
    folder = Path(folder)
    try:
        present = (folder / STATE).exists() or (folder / STATE).is_symlink()
    except (OSError, ValueError):
        present = True   # let the read say what is wrong with it
    if not present:
        raise CheckpointError(_missing(folder, STATE))


def _missing(folder: Path, name: str) -> str:
    if (folder / "metrics.jsonl").exists() and not (folder / STATE).exists():
        return (f"{folder / name}: no such file; the run in {folder} stopped before its first "
                "checkpoint, so there is nothing to resume: start it again without --resume")
    return f"{folder / name}: no such file; is {folder} a training run folder?"


def _check_archive(f, path: Path) -> None:
    """torch's zip format, every record stored as is (as torch.save writes it): its size on
    disk is its size in memory, so a small file cannot inflate to gigabytes."""
    try:
        with zipfile.ZipFile(f) as archive:
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                    raise CheckpointError(
                        f"{path}: record {shown(info.filename)[:80]} is compressed "
                        f"({info.compress_size:,} bytes that inflate to {info.file_size:,}); torch.save "
                        "and dprog write records uncompressed, so this file was not written "
                        "by them")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a file torch.save wrote (not a torch zip "
                              f"archive: {shown(e)[:120]})") from None


def _torch_reason(error: BaseException) -> str:
    """One line from torch's error, without its advice to load with weights_only=False (that
    would run whatever code the file holds) or to allow more globals."""
    text = str(error)
    # By name: the tree imports no pickle module at all (tests/test_injection.py).
    unpickling = any(c.__name__ == "UnpicklingError" for c in type(error).__mro__)
    if unpickling or "weights_only" in text:
        found = re.search(r"(GLOBAL|global) ([\w.]{1,120})", text)
        what = f" ({found.group(2)})" if found else ""
        return (f"it holds pickled Python objects{what}, not only tensors and numbers; refused, "
                "since loading them could run code")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {shown(first)[:200]}"


def _describe(value: Any) -> str:
    if isinstance(value, bool | int | float | str | type(None)):
        return shown(repr(value))[:60]
    return f"a {type(value).__name__}"


def check_state(state: Any, path: Path) -> None:
    """The fields of a state.pt, by type and range; a CheckpointError naming the first bad one."""
    import torch

    def bad(field: str, want: str, value: Any) -> CheckpointError:
        return CheckpointError(f"{path}: '{field}' must be {want}, not {_describe(value)}")

    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a dprog training state (holds {_describe(state)})")
    missing = [k for k in ("format", "step", "weights", "optimizer", "running", "torch_rng")
               if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a dprog training state (no {', '.join(missing)})")
    if type(state["format"]) is not int or state["format"] != STATE_FORMAT:
        raise bad("format", f"{STATE_FORMAT} (a newer dprog may have written it)", state["format"])
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise bad("step", f"an integer in 0..{MAX_STEP:,}", step)
    weights = state["weights"]
    if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise bad("weights", "a dict of names to tensors", weights)
    _check_optimizer(state["optimizer"], bad)
    running = state["running"]
    if not isinstance(running, torch.Tensor) or running.shape != (3,) \
            or not running.is_floating_point():
        raise bad("running", "a float tensor of shape (3,)", running)
    rng = state["torch_rng"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise bad("torch_rng", "a 1-D uint8 tensor (torch's RNG state)", rng)


def _check_optimizer(optimizer: Any, bad) -> None:
    import torch

    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("state"), dict) \
            or not isinstance(optimizer.get("param_groups"), list):
        raise bad("optimizer", "an optimizer state_dict (state and param_groups)", optimizer)
    for group in optimizer["param_groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("params"), list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in group["params"]):
            raise bad("optimizer.param_groups", "a list of groups of parameter ids", group)
    for key, entry in optimizer["state"].items():
        if isinstance(key, bool) or not isinstance(key, int) or not isinstance(entry, dict) or \
                not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool))
                        or (isinstance(v, torch.Tensor) and v.is_floating_point())
                        for v in entry.values()):
            raise bad(f"optimizer.state[{_describe(key)}]", "a dict of float tensors and numbers",
                      entry)


def restore(state: Mapping[str, Any], module: torch.nn.Module, optimizer: torch.optim.Optimizer
            ) -> tuple[int, torch.Tensor]:
    """Load a checked state into `module` and `optimizer` and set torch's RNG; returns the
    step and the running sums. CheckpointError, naming the first differences, when the
    checkpoint does not fit. The optimizer's settings (lr, betas, weight decay...) stay those
    it was built with: the run's config decides them, so an option given with --resume holds,
    and a damaged setting in the file never reaches a step."""
    import torch

    _check_weights(state["weights"], module.state_dict())
    settings = [{k: v for k, v in group.items() if k != "params"}
                for group in optimizer.param_groups]
    expected_ids = [g["params"] for g in optimizer.state_dict()["param_groups"]]
    saved_ids = [g["params"] for g in state["optimizer"]["param_groups"]]
    if saved_ids != expected_ids:
        raise CheckpointError("the checkpoint does not fit this graph: its optimizer state is "
                              f"for {sum(map(len, saved_ids))} parameters in "
                              f"{len(saved_ids)} groups, not {sum(map(len, expected_ids))} in "
                              f"{len(expected_ids)}")
    try:
        module.load_state_dict(state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        for group, kept in zip(optimizer.param_groups, settings, strict=True):
            group.update(kept)
        _check_optimizer_state(optimizer)
        torch.set_rng_state(state["torch_rng"].cpu())
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"the checkpoint does not fit this graph "
                              f"({_torch_reason(e)})") from None
    return state["step"], state["running"].detach().cpu().to(torch.float64)


def _check_weights(weights: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """The same names, shapes and dtypes as the module's own state_dict."""
    problems = [f"no weights for {k}" for k in expected if k not in weights]
    problems += [f"weights for {shown(k)[:80]}, which this graph lacks"
                 for k in weights if k not in expected]
    problems += [f"{k} is {tuple(weights[k].shape)} in the checkpoint but "
                 f"{tuple(v.shape)} in this graph"
                 for k, v in expected.items() if k in weights and weights[k].shape != v.shape]
    problems += [f"{k} holds {weights[k].dtype} values, not {v.dtype}"
                 for k, v in expected.items() if k in weights and weights[k].dtype != v.dtype]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError(f"the checkpoint does not fit this graph: "
                              f"{'; '.join(problems[:3])}{more}")


def _check_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Per-parameter state (Adam's moments, SGD's momentum) must be real floats of its
    parameter's shape, and a step count a scalar; torch would only find out at the next
    step, or silently broadcast."""
    required = OPTIMIZER_STATE.get(type(optimizer).__name__, ())
    for param, entry in optimizer.state.items():
        missing = [name for name in required if entry and name not in entry]
        if missing:
            raise CheckpointError(f"the checkpoint does not fit this graph: the optimizer state "
                                  f"of a parameter lacks {', '.join(missing)}")
        for name, value in entry.items():
            shape = getattr(value, "shape", None)
            if shape is None:
                continue
            want = () if name == "step" else param.shape
            if shape != want or not value.is_floating_point():
                raise CheckpointError(f"the checkpoint does not fit this graph: optimizer state "
                                      f"{shown(name)[:40]} is {value.dtype} {tuple(shape)} for "
                                      f"a parameter of shape {tuple(param.shape)}")
            # A negative or NaN step count makes Adam's bias correction complex.
            if name == "step" and not 0 <= float(value) <= MAX_STEP:
                raise CheckpointError(f"optimizer state 'step' must be in 0..{MAX_STEP:,}, "
                                      f"not {float(value)!r}")


def load_config(folder: str | Path) -> TrainingConfig:
    path = Path(folder) / CONFIG
    try:
        return TrainingConfig.from_mapping(json.loads(read_regular(path, MAX_CONFIG_BYTES)))
    except FileNotFoundError:
        raise CheckpointError(_missing(Path(folder), CONFIG)) from None
    except (ValueError, TypeError, RecursionError) as e:   # FileRefused, JSON, settings
        raise CheckpointError(f"{path}: {e}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None


# ---- one writer per folder -------------------------------------------------------------------


class RunLock:
    """An exclusive lock on a run folder while one process writes it. `acquire` raises
    RunFolderBusy naming the holder (pid, host, command, start time) when another process
    has it. It is `flock` on FOLDER/.lock, which the kernel drops when the holder exits,
    however it dies, so a stale lock never blocks a later run; the file itself stays."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunFolderBusy(f"{self.path.parent} is being written by another dprog train "
                                f"({holder}); wait for it to finish, stop it, or choose "
                                "another --out") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                  "command": " ".join(sys.argv)[:500]}
        with contextlib.suppress(OSError):   # who holds it is a courtesy; the lock is the flock
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode("utf-8", "backslashreplace"), 0)
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(record["started"])))
        return (f"pid {int(record['pid'])} on {shown(record['host'])[:64]}, started {started}: "
                f"{shown(record['command'])[:200]}")
    except (OSError, ValueError, TypeError, KeyError, OverflowError):
        return "a process that did not say who it is"
