"""The trainer: a readable loop over a compiled graph, its setup a frozen `TrainingConfig`.

    trainer = Trainer(graph)               # config from the graph's training section
    trainer.start()                        # on a worker thread; or trainer.run() right here
    event = trainer.events.get()           # StepMetrics, EvalMetrics, GradFlowSnapshot, ...

Everything observable is a small frozen event (`engine.core.events`) put on `events` (a
`queue.Queue`, or anything with `put`); the worker never touches a GUI. `pause`, `resume` and `stop` act between steps,
so within one step. The run ends with exactly one of `Finished`, `Stopped` or `Failed`.

Guarantees:
- Same config and seed, same numbers: torch, numpy and `random` are seeded before the module is
  built, and the data order is a `DistributedSampler` permutation, drawn from a
  `torch.Generator` seeded with seed + epoch.
- The loss and the gradient norm are checked before every optimizer step; NaN or Inf ends the
  run with `Failed(kind="nonfinite")`, naming the first node whose output went non-finite
  (the batch is re-run through the tapped forward, checking every edge). The weights are those
  of the last good step: the bad step never reaches the optimizer.
- Losses: cross_entropy, mse, l1, bce_with_logits, or "graph": the graph computes its own loss.
  Then an Input with id `target`, if the graph has one, receives the batch's targets, the
  first Output is the scalar loss and a second Output, if any, gives the predictions (for
  accuracy when they are class scores, for the decision boundary, and for image grids when
  they are images of the data's size). "auto" is cross-entropy for classification and MSE for
  regression.
- Several data Inputs: a dataset with named inputs (digit_pairs, an npz with `inputs`) feeds
  each data Input the array of its id (`engine.data.fit.input_feeds`); a dataset with one
  input feeds a graph with one data Input. A mismatch is refused before the first step,
  naming the Input or the array and the fix.
- Programs without data: a graph with no Input is trained as an optimization of its
  Parameters. No dataset is loaded; its first Output is the loss ("graph", which "auto" means
  here), each step runs the graph once, an epoch is one step, and every evaluation (the loss
  in eval mode) also reports the Parameter blocks' values (`ParameterValues`).
- Metrics: train loss/accuracy are means over the steps since the last evaluation (train mode);
  validation loss/accuracy are computed over the whole validation set in eval mode, under
  no_grad, in chunks of `EVAL_CHUNK` samples.
- Live control between steps (issue 17): `edit(setting, value)` changes the learning rate,
  the gradient clipping or the gradient-flow interval (each a `LiveEdit` with its step);
  `inspect(edge, iteration)` asks for a `WireReading` at the next step, `read_wire` takes one
  now; profile mode (`set_profile`) emits `BlockTimes` every step. A step nobody watches runs
  the plain module: no tap. A `record` (engine.core.runs.RunRecorder) keeps the run in the
  run store; `recorded_trainer` builds both, as `dprog train` and the studio do.
- On NaN or Inf the run folder is checkpointed at the last good step and a `NonFinite` event
  names the block and its input and output wires' statistics, before `Failed`.
- With `tensorboard` in the config and a run folder, TensorBoard event files are written
  (engine.runtime.tensorboard).
- Under torch.distributed (initialized by the caller, e.g. `dprog train --nproc`), the model is
  wrapped in DistributedDataParallel and each rank takes its share of every global batch
  (`batch_size` must divide by the world size); only rank 0 emits events and writes files.
  The per-rank batches of step k together are exactly the single-process batch of step k, so
  the averaged gradients, and the run, match a single process up to float summation order.
"""

from __future__ import annotations

import gc
import math
import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nodes import lookup
from nodes.types import BATCH, fmt_shape, numel

from ..core.analysis import analyze
from ..core.config import TrainingConfig
from ..core.events import (
    LIVE_SETTINGS,
    CheckpointSaved,
    DecisionBoundary,
    EvalMetrics,
    Event,
    Failed,
    Finished,
    ImageGrid,
    LiveEdit,
    NonFinite,
    ParameterValues,
    Paused,
    Resumed,
    RunRecorded,
    Started,
    StepMetrics,
    Stopped,
)
from ..core.files import shown
from ..core.graph import PATH_SEP, Graph, source_node
from ..core.limits import with_limits
from ..data.datasets import (
    DatasetError,
    check_input_shape,
    check_token_ids,
    load_dataset,
    token_id_max,
)
from ..data.fit import graph_inputs, input_feeds
from .checkpoint import CheckpointError, RunFiles, load_state, read_torch_file, restore, save_run
from .compiler import compile_class, node_for_exception, tapped_forward
from .gradflow import GradFlowProbe, node_parameters
from .profile import BlockProfiler
from .wires import WireTap, compose, tensor_stats, unit_response

EVAL_CHUNK = 1024
IMAGES_SHOWN = 8   # validation images an ImageGrid shows
BOUNDARY_RESOLUTION = 64
BOUNDARY_MARGIN = 0.1   # of the data's extent, on each side
TARGET_INPUT = "target"


class TrainingError(Exception):
    """Ends a run with `Failed(kind, message, node)`."""

    def __init__(self, kind: str, message: str, node: str | None = None):
        super().__init__(message)
        self.kind, self.node = kind, node


class _NoEvents:
    def put(self, event: Event) -> None:
        pass


# ---- pure helpers -----------------------------------------------------------------------------


_CUDA_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)   # torch < 2.5


def is_out_of_memory(error: BaseException) -> bool:
    """An allocation the machine refused: CUDA's OutOfMemoryError, Python's MemoryError, or
    the RuntimeError torch's CPU allocator raises (shape inference caps what it can foresee;
    batch size times the machine's free memory it cannot)."""
    if isinstance(error, MemoryError | _CUDA_OOM):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text
                                                or "out of memory" in text.lower())


def _allocation_size(message: str) -> str | None:
    """'1.02 GB' from the CPU allocator's 'you tried to allocate 1024000000 bytes', or CUDA's
    'Tried to allocate 1.17 GiB' as it stands."""
    found = re.search(r"allocate (\d+) bytes", message)
    if found:
        n = int(found.group(1))
        for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if n >= size:
                return f"{n / size:.3g} {unit}"
        return f"{n} bytes"
    found = re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]i?B)", message)
    return found.group(1) if found else None


def lr_at(step: int, config: TrainingConfig, total_steps: int) -> float:
    """The learning rate of step `step` (0-based). A pure function: resuming needs no state."""
    lr, schedule = config.lr, config.schedule
    progress = step / max(total_steps, 1)
    if schedule == "step":
        return lr * config.gamma ** (step // config.step_size)
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "one_cycle":   # torch's OneCycleLR defaults: warm up 30% from lr/25, then anneal
        start, end, warm = lr / 25, lr / 25 / 1e4, 0.3
        if progress < warm:
            return start + (lr - start) * 0.5 * (1 - math.cos(math.pi * progress / warm))
        return end + (lr - end) * 0.5 * (1 + math.cos(math.pi * (progress - warm) / (1 - warm)))
    return lr


def _make_optimizer(config: TrainingConfig, params) -> torch.optim.Optimizer:
    kind, lr, wd = config.optimizer, config.lr, config.weight_decay
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)


def _loss_function(loss: str, task: str, out_shape: tuple, num_classes: int | None,
                   target_shape: tuple) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`(prediction, target) -> scalar`, after checking that the model's output fits the data."""
    out = fmt_shape(out_shape)
    if not out_shape or out_shape[0] != BATCH:
        raise TrainingError("invalid_graph", f"the model's output {out} has no batch dim")
    per_sample = tuple(out_shape[1:])
    if loss == "cross_entropy":
        if task != "classification":
            raise TrainingError("config", "cross_entropy needs class labels, but the dataset is "
                                "a regression task: use mse or l1")
        if per_sample != (num_classes,):
            raise TrainingError("invalid_graph", f"the model outputs {out} but cross_entropy on "
                                f"{num_classes} classes needs logits (B, {num_classes})")
        return F.cross_entropy
    fn = {"mse": F.mse_loss, "l1": F.l1_loss,
          "bce_with_logits": F.binary_cross_entropy_with_logits}[loss]
    if task == "classification":
        if per_sample == (num_classes,):   # one score per class against one-hot targets
            return lambda pred, y: fn(pred, F.one_hot(y, num_classes).to(pred.dtype))
        if loss == "bce_with_logits" and num_classes <= 2 and numel(per_sample) == 1:
            return lambda pred, y: fn(pred.reshape(-1), y.to(pred.dtype))
        raise TrainingError("invalid_graph", f"the model outputs {out} but {loss} on "
                            f"{num_classes} classes needs (B, {num_classes})")
    if numel(per_sample) != math.prod(target_shape):
        raise TrainingError("invalid_graph", f"the model outputs {out} but the targets are "
                            f"{fmt_shape((BATCH, *target_shape))}")
    return lambda pred, y: fn(pred.reshape(y.shape), y)


def _image_shape(predictions, data) -> tuple[int, int] | None:
    """The data's image shape when predictions hold one image per sample (an autoencoder's
    reconstructions of its one input), else None."""
    if data is None or data.image_shape is None or predictions.dtype != "float" \
            or len(data.inputs) > 1:
        return None
    if predictions.shape[:1] != (BATCH,) or numel(predictions.shape[1:]) != math.prod(data.image_shape):
        return None
    return data.image_shape


def _may_skip_weights(graph: Graph, analysis) -> bool:
    """Whether a step can leave some weights without a gradient: a block's spec says it may (a
    hard branch runs one body), or a block feeds nothing. DDP must then search for unused
    weights every step (and warns when told to but needless)."""
    for path, node in graph.walk():
        rule, params = lookup(node.type).skips_weights, analysis.params.get(path)
        if rule is not None and params is not None and rule(params):
            return True
    return any(d.code == "unused" for d in analysis.diagnostics)


def _absolute_paths(config: TrainingConfig, base_dir: Path | None) -> TrainingConfig:
    """Dataset and weights file paths made absolute, so a run folder's copy of the config
    still finds them."""
    if base_dir is None:
        return config

    def absolute(path: str) -> str:
        # normpath, not resolve: a symlink loop or a NUL byte is the reader's to report.
        return os.path.normpath(os.path.join(os.path.abspath(base_dir), path))

    spec = dict(config.dataset)
    for key in ("path", "targets"):
        if isinstance(spec.get(key), str):
            spec[key] = absolute(spec[key])
    weights = absolute(config.weights) if config.weights is not None else None
    return replace(config, dataset=spec, weights=weights)


def start_from_weights(module: nn.Module, path: str, device: torch.device) -> str:
    """Load the tensors of the state_dict at `path` whose key and shape fit `module`; the
    others start as they are (fine-tuning: a new head). Returns what happened, in a line.
    Raises TrainingError when the file cannot be read or none of it fits."""
    where = f"training.weights {shown(path)}"
    try:
        state = read_torch_file(Path(path), device)
    except FileNotFoundError:
        raise TrainingError("config", f"{where}: no such file; write one with `dprog import "
                            "--weights`, or delete the setting") from None
    except CheckpointError as e:   # not a regular file, not torch's format, or pickled code
        raise TrainingError("config", f"training.weights: {e}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise TrainingError("config", f"{where}: not a state_dict (a dict of tensors)")
    own = module.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fits:
        raise TrainingError("config", f"{where}: none of its {len(state)} tensors fits this graph "
                            f"(its keys look like {next(iter(state), 'nothing')!r}, the model's "
                            f"like {next(iter(own), 'nothing')!r})")
    module.load_state_dict(fits, strict=False)

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

    reshaped = [k for k in own if k in state and k not in fits]
    missing = [k for k in own if k not in state]
    unused = [k for k in state if k not in own]
    line = f"started from {Path(path).name}: {len(fits)} of {len(own)} tensors"
    for keys, why in ((reshaped, "start fresh, as their shapes changed"),
                      (missing, "start fresh, as the file lacks them"),
                      (unused, "in the file are not in the graph")):
        if keys:
            line += f"; {some(keys)} {why}"
    return line


def _vocabularies(graph: Graph, analysis, data_input: str) -> dict[str, int]:
    """node path -> how many ids it accepts, for every block that looks ids up (an Embedding)
    which the data Input's token ids reach in the main graph. The walk follows integer wires
    whose values the analysis does not know (a Positions block's 0..n-1 are not the data's),
    and stops at such a block (it turns ids into vectors) and at loops and branches. Those
    are checked before the first step; one inside a body that fails at run time gets the same
    explanation added to its error (`_explain_ids`)."""
    sizes = _id_bounds(graph)
    reached, frontier = {data_input}, [data_input]
    stops = {n.id for n in graph.nodes if n.id in sizes or n.regions}
    while frontier:
        src = frontier.pop()
        for edge in graph.edges:
            t = analysis.outputs.get(edge.src[0], {}).get(edge.src[1])
            if t is None or t.dtype != "long" or t.high is not None:
                continue
            if edge.src[0] == src and edge.dst[0] not in reached:
                reached.add(edge.dst[0])
                if edge.dst[0] not in stops:
                    frontier.append(edge.dst[0])
    return {path: size for path, size in sizes.items() if path in reached}


def _id_bounds(graph: Graph) -> dict[str, int]:
    """node path -> the number of ids its input of ids accepts, for every block whose spec
    bounds them by a param (`id_inputs` with `count_param`: Embedding's num_embeddings),
    bodies included."""
    bounds = {}
    for path, node in graph.walk():
        spec = lookup(node.type)
        for ids in spec.id_inputs if spec is not None else ():
            if ids.count_param is not None:
                bounds[path] = node.params.get(ids.count_param,
                                               spec.param(ids.count_param).default)
    return bounds


def _target_node(edge_key: str) -> str:
    """The path of the node an edge key enters: `loop1/body/fc.y->act.x` → `loop1/body/act`."""
    src, dst = edge_key.split("->")
    prefix = src[: src.rfind(PATH_SEP) + 1]
    return prefix + dst.split(".")[0]


class _Model(nn.Module):
    """The compiled module, run plainly, or through its tapped forward when given a tap."""

    def __init__(self, module: nn.Module, tapped: Callable):
        super().__init__()
        self.module = module
        self.tapped = tapped

    def forward(self, *inputs: torch.Tensor, tap: Callable | None = None):
        return self.module(*inputs) if tap is None else self.tapped(self.module, tap, *inputs)


# ---- the trainer ------------------------------------------------------------------------------


class Trainer:
    """Trains one graph. Build it anywhere; `run()` it on one thread, or `start()` a worker.

    After `setup()`: `module` is the compiled nn.Module (what weights.pt holds), `model` the
    same behind the tapped forward (and DDP), `data` the Dataset, `step` the steps done.
    """

    def __init__(self, graph: Graph, config: TrainingConfig | None = None, *, events=None,
                 base_dir: str | Path | None = None, out_dir: str | Path | None = None,
                 checkpoint_every: int = 0, resume_from: str | Path | None = None,
                 record=None, profile: bool = False):
        """`out_dir`: the run folder checkpoints go to. `record`: anything with `put(event)`
        that keeps the run (an `engine.core.runs.RunRecorder`), fed every event before
        `events`. `profile`: emit `BlockTimes` every step (also `set_profile`)."""
        self.graph = graph
        config = config or TrainingConfig.from_mapping(graph.training)
        self.config = _absolute_paths(config, Path(base_dir) if base_dir is not None else None)
        self.events = events if events is not None else queue.Queue()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.step = 0
        self.saved_step: int | None = None   # the step of the out_dir's last complete checkpoint
        self._files: RunFiles | None = None
        self._stop = threading.Event()
        self._go = threading.Event()   # cleared while paused
        self._go.set()
        self._thread: threading.Thread | None = None
        self._ready = False
        self.rank = 0
        self.record = record
        self.board = None   # the TensorBoard writer, when the config asks for one
        self.weights_note = ""   # what training.weights loaded, for the Started event
        self.profile = profile
        self._control = threading.Lock()   # guards the two queues below, filled from any thread
        self._edits: list[tuple[str, Any]] = []
        self._inspect: dict[str, int | None] = {}

    # -- control, from any thread --

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="dprog-trainer", daemon=True)
        self._thread.start()
        return self._thread

    def pause(self) -> None:
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        self._stop.set()
        self._go.set()

    def edit(self, setting: str, value: Any) -> None:
        """Change a live setting (`LIVE_SETTINGS`: lr, clip_grad_norm (None: off),
        gradflow_every (0: off)) from any thread. Checked now (ValueError naming the setting
        and its range), applied before the next step and emitted as `LiveEdit` with the steps
        done, which the run's record keeps. lr is the schedule's base rate from then on."""
        if setting not in LIVE_SETTINGS:
            raise ValueError(f"{setting!r} cannot change while training; live settings: "
                             f"{', '.join(LIVE_SETTINGS)}")
        replace(self.config, **{setting: value}).checked()
        with self._control:
            self._edits.append((setting, value))

    def inspect(self, edge: str, iteration: int | None = None) -> None:
        """Ask for a `WireReading` of the wire `edge` (an edge key, e.g. "fc1.y->act1.x") at
        the next step: its activation and gradient, at read `iteration` inside a Loop body.
        ValueError for a key the graph does not have (known after setup)."""
        if self._ready and edge not in self._edge_index:
            raise ValueError(f"no wire {edge!r} in the graph")
        if iteration is not None and (not isinstance(iteration, int) or iteration < 0):
            raise ValueError(f"iteration must be a non-negative integer, not {iteration!r}")
        with self._control:
            self._inspect[edge] = iteration

    def set_profile(self, on: bool) -> None:
        """Profile mode on or off from the next step: `BlockTimes` every step while on."""
        self.profile = bool(on)

    def read_wire(self, edge: str, iteration: int | None = None, *, gradient: bool = True):
        """A `WireReading` of `edge` now, outside a step (after a run, or while paused): one
        forward (and backward, for the gradient; the weights are not changed) on the first
        training batch, in train mode as the steps see it. Call from the thread that runs
        the trainer, or when it is not running."""
        self.setup()
        if edge not in self._edge_index:
            raise ValueError(f"no wire {edge!r} in the graph")
        wires = WireTap(self.edge_keys, {edge: iteration})
        xs = tuple(x[:self.rank_batch] for x in self.xs_train) if not self.program else None
        y = self.y_train[:self.rank_batch] if not self.program else None
        inputs = self._inputs(xs, y)
        with torch.enable_grad():
            loss, _ = self._loss(self.tapped(self.module, wires.tap, *inputs), y)
            if gradient and loss.requires_grad:
                kept = [p.grad for p in self.params]
                loss.backward(inputs=[v for _, v in wires.kept.values() if v is not None]
                              or None)
                for p, g in zip(self.params, kept, strict=True):
                    p.grad = g
        out = wires.readings(self.step)
        if not out:
            return None
        return self._with_heatmap(out[0])

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the run --

    def run(self) -> Event:
        """Train to the end (or stop, or failure) here; returns the final event, also emitted."""
        started = time.perf_counter()
        folder = getattr(self.record, "folder", None)
        if folder is not None:
            self.emit(RunRecorded(str(folder), self.record.name,
                                  self.record.record.get("parent")))
        try:
            self.setup()
            end = self._train(started)
        except TrainingError as e:
            if e.kind == "nonfinite" and getattr(e, "fault", None) is not None:
                self._keep_last_good(e.fault)
            end = Failed(self.step, e.kind, str(e), e.node, e)
        except Exception as e:  # a runtime error inside the model: name the node whose line raised
            node = node_for_exception(e)
            if is_out_of_memory(e):
                self._release_memory()
                end = Failed(self.step, "out_of_memory", self._explain_oom(e, node), node, e)
            else:
                where = f"node {node}: " if node else ""
                end = Failed(self.step, "error", f"{where}{type(e).__name__}: {e}"
                             f"{self._explain_ids(e, node)}", node, e)
        try:
            self.emit(end)
        finally:
            if self.board is not None:
                self.board.close()
        return end

    def _keep_last_good(self, fault: NonFinite) -> None:
        """After NaN/Inf: checkpoint the weights of the last good step (the bad step never
        reached the optimizer), then say where the fault was (`NonFinite`)."""
        path = None
        if self.out_dir is not None and self.rank == 0:
            with_grads = [p.grad for p in self.params]
            try:
                path = self.checkpoint()
            except TrainingError:
                path = None
            for p, g in zip(self.params, with_grads, strict=True):
                p.grad = g
        self.emit(replace(fault, checkpoint=str(path) if path is not None else None))

    def _explain_ids(self, error: BaseException, node: str | None) -> str:
        """For an Embedding inside a body that raised IndexError: the data's token ids past
        its num_embeddings, said as the check before the first step says it."""
        size = _id_bounds(self.graph).get(node) if isinstance(error, IndexError) else None
        data = getattr(self, "data", None)
        if not size or data is None or not check_token_ids(data, size, node):
            return ""
        top = token_id_max(data)
        # Short: the studio shows it on the block and in the Problems list.
        return f": token id {top} >= num_embeddings {size}; set it to at least {top + 1}"

    def _explain_oom(self, error: BaseException, node: str | None) -> str:
        where = f"node {node}" if node else \
            "the backward pass" if self._ready else "building the model"
        size = _allocation_size(str(error))
        asked = f" (it asked for {size} more)" if size else ""
        return (f"{where}: out of memory at step {self.step + 1}{asked}; try a smaller "
                f"batch_size (now {self.config.batch_size}) or narrower layers")

    def _release_memory(self) -> None:
        """Drop what the failed step held (gradients, the autograd graph went with the stack),
        so the process that reported the failure can go on working."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def setup(self) -> None:
        """Everything up to the first step; idempotent. Raises TrainingError for user mistakes."""
        if self._ready:
            return
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = torch.distributed.get_rank() if distributed else 0
        self.world = torch.distributed.get_world_size() if distributed else 1
        if self.rank != 0:
            self.events = _NoEvents()
        analysis = with_limits(self.graph, analyze(self.graph))
        if not analysis.ok:
            raise TrainingError("invalid_graph", "; ".join(str(d) for d in analysis.errors[:3]),
                                analysis.errors[0].node)
        try:   # what every checkpoint writes unchanged: refused now if it could not be saved
            self._files = RunFiles.of(self.graph, self.config) if self.out_dir else None
        except ValueError as e:
            raise TrainingError("config", str(e)) from None
        # A graph without Inputs is a program whose Parameters are fitted: it takes no data.
        self.program = not any(lookup(n.type).kind == "input" for n in self.graph.nodes)
        if self.program:
            self._setup_program()
        else:
            self._load_data()
            self._check_inputs(analysis)
        self._build_model(analysis)
        self._running = torch.zeros(3, dtype=torch.float64)  # loss·n, correct, n since last eval
        self._stop_agreed = False   # distributed: the stop all ranks agreed on at the last step
        if self.resume_from is not None:
            try:
                self._load(self.resume_from)
            except CheckpointError as e:
                raise TrainingError("checkpoint", str(e)) from None
        self._ready = True

    def _load_data(self) -> None:
        """The dataset, on the device once, and the sampler that orders each epoch."""
        cfg = self.config
        try:
            self.data = data = load_dataset(cfg.dataset, cfg.seed)
        except DatasetError as e:
            raise TrainingError("data", str(e)) from None
        self.task = data.task if cfg.task == "auto" else cfg.task
        if self.task != data.task:
            raise TrainingError("config", f"task is {cfg.task} but dataset '{data.name}' is a "
                                f"{data.task} task")
        self.loss_name = cfg.loss if cfg.loss != "auto" else (
            "cross_entropy" if self.task == "classification" else "mse")
        self.device = self._device()
        self.y_train, self.y_val = (torch.from_numpy(a).to(self.device)
                                    for a in (data.y_train, data.y_val))
        # One tensor per input of the dataset, in its order (`Dataset.feeds`); x_train and
        # x_val are the first (the only one, mostly).
        feeds = data.feeds()
        self.xs_train = tuple(torch.from_numpy(t).to(self.device) for _, t, _ in feeds)
        self.xs_val = tuple(torch.from_numpy(v).to(self.device) for _, _, v in feeds)
        self.x_train, self.x_val = self.xs_train[0], self.xs_val[0]
        if cfg.batch_size % self.world:
            raise TrainingError("config", f"batch_size {cfg.batch_size} does not divide among "
                                f"{self.world} processes")
        self.rank_batch = cfg.batch_size // self.world
        # Epoch e is the permutation of a torch.Generator seeded with seed + e; rank r takes
        # every world-th index, so the ranks' shares of step k make up the global batch k.
        self.sampler = torch.utils.data.DistributedSampler(
            range(len(self.y_train)), num_replicas=self.world, rank=self.rank, shuffle=True,
            seed=cfg.seed)
        self.steps_per_epoch = max(1, math.ceil(self.sampler.num_samples / self.rank_batch))
        self.total_steps = cfg.steps if cfg.steps is not None else cfg.epochs * self.steps_per_epoch

    def _setup_program(self) -> None:
        """A program without data: its own loss, one run of the graph per step."""
        cfg = self.config
        if cfg.loss not in ("auto", "graph"):
            raise TrainingError("config", f"the graph has no data Input, so it computes its own "
                                f"loss: set loss to \"graph\" (its first Output is the loss), "
                                f"not {cfg.loss!r}")
        self.data = None
        self.task, self.loss_name = "optimization", "graph"
        self.device = self._device()
        self.sampler = None
        self.rank_batch = 1
        self.input_order: list[int | None] = []
        self.steps_per_epoch = 1
        self.total_steps = cfg.steps if cfg.steps is not None else cfg.epochs

    def _build_model(self, analysis) -> None:
        """The module (seeded: same seed, same initial weights), its loss, optimizer and probe."""
        cfg, graph = self.config, self.graph
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        compiled = compile_class(graph, analysis, tap=True)
        self.module = compiled.cls().to(self.device)
        self.module.train()
        if cfg.weights is not None and self.resume_from is None:
            self.weights_note = start_from_weights(self.module, cfg.weights, self.device)
        self.tapped = tapped_forward(compiled)
        self.edge_keys = compiled.generated.edge_keys   # tap index → edge key
        self.node_modules = compiled.generated.node_modules   # node path → module attribute
        self.model: nn.Module = _Model(self.module, self.tapped)
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=_may_skip_weights(graph, analysis))
        outputs = [n for n in graph.nodes if lookup(n.type).kind == "output"]
        if self.loss_name == "graph":
            self.loss_fn = None
            if analysis.inputs[outputs[0].id]["x"].shape != ():
                raise TrainingError("invalid_graph", "with loss \"graph\" the first Output must "
                                    "be the scalar loss", outputs[0].id)
            self.has_predictions = len(outputs) > 1 and not self.program
        else:
            self.loss_fn = _loss_function(self.loss_name, self.task,
                                          analysis.inputs[outputs[0].id]["x"].shape,
                                          self.data.num_classes, self.data.target_shape)
            self.has_predictions = True
        predictions = analysis.inputs[outputs[1 if self.loss_fn is None else 0].id]["x"] \
            if self.has_predictions else None
        self.scores = predictions is not None and self.data is not None \
            and self.data.scored_by(predictions)
        self.image_shape = _image_shape(predictions, self.data) if predictions is not None else None
        self.params = list(self.module.parameters())
        self.optimizer = _make_optimizer(cfg, self.params)
        self._edge_index = {key: k for k, key in enumerate(self.edge_keys)}
        # Made even when gradflow_every is 0: a live edit may turn gradient flow on.
        self.probe = GradFlowProbe(graph, self.edge_keys, self.node_modules, self.module) \
            if self.rank == 0 else None
        unknown = [e for e in self._inspect if e not in self._edge_index]
        if unknown:
            raise TrainingError("config", f"no wire {unknown[0]!r} in the graph to inspect")
        if cfg.tensorboard and self.rank == 0 and self.out_dir is not None:
            from .tensorboard import TensorBoardWriter

            try:
                self.board = TensorBoardWriter(self.out_dir)
            except ImportError as e:
                raise TrainingError("config", str(e)) from None

    def _check_inputs(self, analysis) -> None:
        """Match the graph's data Inputs to the dataset's inputs (by id when it names them),
        check each one's shape and the token ids each one carries to an Embedding."""
        # With loss "graph" the targets' Input is optional: an autoencoder needs none.
        self.input_order, mismatch = input_feeds(self.graph, self.data, self.loss_name)
        if mismatch is not None:
            raise TrainingError("invalid_graph", mismatch.message, mismatch.node)
        ids = self.data.input_ids
        for node, feed in zip(graph_inputs(self.graph), self.input_order, strict=True):
            if feed is None:
                continue
            input_id = ids[feed] if ids else None
            problem = check_input_shape(self.data, analysis.outputs[node.id]["y"].shape[1:],
                                        node.name, input_id)
            if problem:
                raise TrainingError("invalid_graph", problem, node.id)
            for path, size in _vocabularies(self.graph, analysis, node.id).items():
                problem = check_token_ids(self.data, size, path, input_id)
                if problem:
                    raise TrainingError("data", problem, path)

    def _device(self) -> torch.device:
        want = self.config.device
        if want == "cuda" and not torch.cuda.is_available():
            raise TrainingError("config", "device cuda was asked for, but torch sees no GPU")
        if want == "cpu" or not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", torch.cuda.current_device())   # set per rank by the launcher

    # -- the loop --

    def _train(self, started: float) -> Event:
        cfg = self.config
        self.emit(Started(self.total_steps, self.steps_per_epoch, self.step, str(self.device),
                          self.task, self.loss_name, sum(p.numel() for p in self.params),
                          self.world, self.weights_note))
        last = None
        while self.step < self.total_steps:
            epoch = self.step // self.steps_per_epoch
            order = None   # a program without data has no samples to order
            if self.sampler is not None:
                self.sampler.set_epoch(epoch)
                order = torch.tensor(list(self.sampler), device=self.device)
            for i in range(self.step % self.steps_per_epoch, self.steps_per_epoch):
                if self._stopping():
                    self.checkpoint()
                    return Stopped(self.step)
                self.train_step(order[i * self.rank_batch:(i + 1) * self.rank_batch]
                                if order is not None else None)
                epoch_done = i == self.steps_per_epoch - 1
                if (cfg.eval_every and self.step % cfg.eval_every == 0) or \
                        (not cfg.eval_every and epoch_done) or self.step == self.total_steps:
                    last = self.emit(self.evaluate())
                if cfg.boundary_every and self.step % cfg.boundary_every == 0:
                    self.emit_boundary()
                if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                    self.checkpoint()
                if self.step == self.total_steps:
                    break
        if last is None or last.step != self.step:
            last = self.emit(self.evaluate())
        if cfg.boundary_every and self.step % cfg.boundary_every:
            self.emit_boundary()
        self.checkpoint()
        return Finished(self.step, last, time.perf_counter() - started)

    def _stopping(self) -> bool:
        """Waits while paused; True when a stop was asked for."""
        if self.world > 1:   # ranks must stop at the same step, so only the agreed flag counts
            return self._stop_agreed
        if not self._go.is_set() and not self._stop.is_set():
            self.emit(Paused(self.step))
            self._go.wait()
            if not self._stop.is_set():
                self.emit(Resumed(self.step))
        return self._stop.is_set()

    def train_step(self, index: torch.Tensor | None) -> None:
        """One optimizer step on the samples `index` (None: a program without data), gradient
        flow measured every K steps."""
        if self._edits:
            self._apply_edits()
        cfg = self.config
        xs = tuple(x[index] for x in self.xs_train) if index is not None else None
        y = self.y_train[index] if index is not None else None
        n = len(index) if index is not None else 1
        probe = self.probe if self.probe and cfg.gradflow_every and \
            (self.step + 1) % cfg.gradflow_every == 0 else None
        wires = self._wire_tap() if self._inspect else None
        timer = BlockProfiler(self.edge_keys, self.device) if self.profile else None
        # None when nothing watches this step: then the plain module runs, untapped.
        tap = compose(probe.tap if probe else None, wires.tap if wires else None,
                      timer.tap if timer else None)
        lr = lr_at(self.step, cfg, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        for x in xs if probe and xs is not None else ():
            if x.is_floating_point():
                x.requires_grad_(True)   # so the Inputs' own wires show their gradient too
        inputs = self._inputs(xs, y)
        loss, pred = self._forward_backward(inputs, y, tap, probe, timer)
        loss_sum, correct_sum, count, grad_norm = self._reduced(loss, pred, y, n)
        if not (math.isfinite(loss_sum) and math.isfinite(grad_norm)):
            if probe:
                probe.discard()
            message, node, fault = self._explain_nonfinite(inputs, loss)
            error = TrainingError("nonfinite", message, node)
            error.fault = fault
            raise error
        if timer:
            self.emit(timer.times(self.step + 1))
        if wires:
            for found in wires.readings(self.step + 1):
                self.emit(self._with_heatmap(found))
        if probe:
            probe.before_step()
            if self.board is not None:
                self.board.histograms(self.step + 1, self.module, self.node_modules)
        self.optimizer.step()
        self.step += 1
        self._running += torch.tensor([loss_sum, correct_sum, count], dtype=torch.float64)
        accuracy = correct_sum / count if self.task == "classification" and self.scores else None
        self.emit(StepMetrics(self.step, self.epoch, loss_sum / count, accuracy, lr))
        if probe:
            self.emit(probe.snapshot(self.step))

    def _forward_backward(self, inputs: tuple, y: torch.Tensor | None, tap: Any,
                          probe: Any, timer: BlockProfiler | None) -> tuple[torch.Tensor, Any]:
        """The loss and predictions, gradients computed; a failure leaves no half-measured
        snapshot or timing behind."""
        try:
            loss, pred = self._loss(self.model(*inputs, tap=tap), y)
            if timer:
                timer.backward_begins()
            loss.backward()
            if timer:
                timer.backward_ends()
        except BaseException:
            if probe:
                probe.discard()
            if timer:
                timer.close()
            raise
        return loss, pred

    def _reduced(self, loss: torch.Tensor, pred: Any, y: torch.Tensor | None,
                 n: int) -> tuple[float, float, float, float]:
        """(loss·n, correct, n, gradient norm) over all ranks, gradients clipped if asked:
        one all-reduce (when distributed) and one device-to-host copy per step. Notes whether
        some rank was asked to stop."""
        cfg = self.config
        grads = [p.grad for p in self.params if p.grad is not None]
        if cfg.clip_grad_norm:
            grad_norm = nn.utils.clip_grad_norm_(self.params, cfg.clip_grad_norm,
                                                 foreach=True)
        elif grads:
            grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        else:
            grad_norm = torch.zeros((), device=self.device)
        correct = self._correct(pred, y) if pred is not None and self.scores \
            else torch.zeros((), device=self.device)
        stats = torch.stack([loss.detach() * n, correct.to(loss.dtype),
                             torch.tensor(float(n), device=loss.device),
                             torch.tensor(float(self._stop.is_set()), device=loss.device)])
        if self.world > 1:
            torch.distributed.all_reduce(stats)
        loss_sum, correct_sum, count, stop, norm = torch.cat(
            [stats, grad_norm.reshape(1).to(stats.dtype)]).tolist()
        self._stop_agreed = stop > 0   # one rank was asked to stop: all stop after this step
        return loss_sum, correct_sum, count, norm

    @property
    def epoch(self) -> int:
        """The 1-based epoch the last completed step belongs to."""
        return max(self.step - 1, 0) // self.steps_per_epoch + 1

    def _inputs(self, xs: tuple[torch.Tensor, ...] | None, y: torch.Tensor | None
                ) -> list[torch.Tensor]:
        """The module's arguments: each Input's samples from `xs` (one tensor per input of
        the dataset), or the targets `y` for the targets' Input."""
        return [y if feed is None else xs[feed] for feed in self.input_order]

    def _loss(self, out, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        outs = out if isinstance(out, tuple) else (out,)
        if self.loss_fn is None:   # the graph's own loss, then optional predictions
            return outs[0], outs[1] if self.has_predictions else None
        return self.loss_fn(outs[0], y), outs[0]

    def _correct(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Correctly classified samples; a sample of a sequence of class ids (a language
        model's next characters) counts as its share of correct ids."""
        if self.task != "classification":
            return torch.zeros((), device=pred.device)
        if pred.dim() >= 2 and pred.shape[-1] > 1:
            classes = pred.argmax(-1)   # (B, *target_shape)
        else:   # a single logit
            classes = (pred.reshape(-1) > 0).long()
        right = classes.reshape(y.shape) == y
        return right.reshape(len(y), -1).float().mean(1).sum()

    def _explain_nonfinite(self, inputs: list[torch.Tensor], loss: torch.Tensor
                           ) -> tuple[str, str | None, NonFinite]:
        """Which node went non-finite first: re-run the batch with a tap that checks every
        edge, keeping each wire's first read, so the node's input and output wires can be
        summarized (`NonFinite`)."""
        at = f"non-finite values at step {self.step + 1}"
        kept = "training stopped; the weights of the last good step are kept"
        first: list[int] = []
        seen: dict[int, torch.Tensor] = {}

        def check(k: int, t: torch.Tensor) -> torch.Tensor:
            seen.setdefault(k, t)
            if not first and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                first.append(k)
            return t

        with torch.no_grad():
            self.tapped(self.module, check, *[t.detach() for t in inputs])

        def fault(node: str | None, edge: str | None = None) -> NonFinite:
            ins, outs = {}, {}
            for k, t in seen.items():
                key = self.edge_keys[k]
                if node is not None and _target_node(key) == node:
                    ins[key] = tensor_stats(t)
                elif node is not None and source_node(key) == node:
                    outs[key] = tensor_stats(t)
            return NonFinite(self.step + 1, node, edge, ins, outs, self.step)

        if first:
            edge = self.edge_keys[first[0]]
            node = source_node(edge)
            return (f"{at}: node {node} produced NaN or Inf (on the wire {edge}); {kept}", node,
                    fault(node, edge))
        if not math.isfinite(float(loss.detach())):
            return (f"{at}: the {self.loss_name} loss is NaN or Inf though every activation "
                    f"is finite; {kept}", None, fault(None))
        for path, params in node_parameters(self.module, self.node_modules).items():
            if any(p.grad is not None and not bool(torch.isfinite(p.grad).all()) for p in params):
                return f"{at}: the gradient of node {path} is NaN or Inf; {kept}", path, fault(path)
        return f"{at}: a gradient is NaN or Inf; {kept}", None, fault(None)

    # -- live edits and inspection --

    def _apply_edits(self) -> None:
        """The live edits asked for since the last step, in order, each emitted."""
        with self._control:
            edits, self._edits = self._edits, []
        for setting, value in edits:
            old = getattr(self.config, setting)
            self.config = replace(self.config, **{setting: value}).checked()
            self.emit(LiveEdit(self.step, setting, old, value))
        if self._files is not None:
            # The checkpoint's graph.json and config.json say the settings in effect, so a
            # run continued from it goes on with the edited ones.
            self._files = RunFiles.of(self.graph, self.config)

    def _wire_tap(self) -> WireTap:
        with self._control:
            requests, self._inspect = dict(self._inspect), {}
        return WireTap(self.edge_keys, requests)

    def _with_heatmap(self, found):
        """A reading with each unit's response over the input plane, for a model on 2-D data."""
        if self.data is None or not self.data.is_2d or found.iteration is not None:
            return found
        lo, hi = self.data.x_train.min(0), self.data.x_train.max(0)
        pad = (hi - lo) * BOUNDARY_MARGIN

        def forward(tap, grid):
            grid = grid.to(self.device, self.x_train.dtype)
            y = torch.zeros((len(grid), *self.data.target_shape), dtype=self.y_train.dtype,
                            device=self.device)
            self.module.eval()
            try:
                self.tapped(self.module, tap, *self._inputs((grid,), y))
            finally:
                self.module.train()

        maps, extent = unit_response(forward, self._edge_index[found.edge], lo - pad, hi + pad)
        return replace(found, heatmap=maps, extent=extent) if maps is not None else found

    # -- evaluation --

    @torch.no_grad()
    def _outputs(self, xs: tuple[torch.Tensor, ...] | None, y: torch.Tensor | None):
        """Loss sum and predictions over the samples `xs` (one tensor per input) in eval
        mode, chunk by chunk (a program without data: its loss, once)."""
        self.module.eval()
        try:
            if xs is None:
                return float(self._loss(self.module(), None)[0]), None
            loss_sum, preds = 0.0, []
            for start in range(0, len(y), EVAL_CHUNK):
                chunk = slice(start, start + EVAL_CHUNK)
                xc, yc = tuple(x[chunk] for x in xs), y[chunk]
                loss, pred = self._loss(self.module(*self._inputs(xc, yc)), yc)
                loss_sum += float(loss) * len(yc)
                if pred is not None:
                    preds.append(pred)
            return loss_sum, (torch.cat(preds) if preds else None)
        finally:
            self.module.train()

    def evaluate(self) -> EvalMetrics:
        """Validation metrics now, and the training metrics accumulated since the last call
        (a program without data: its loss in eval mode, and its Parameter blocks' values)."""
        if self.program:
            loss_sum, pred, n = *self._outputs(None, None), 1
            self.emit(self.parameter_values())
        else:
            loss_sum, pred = self._outputs(self.xs_val, self.y_val)
            n = max(len(self.y_val), 1)
            if self.image_shape is not None and pred is not None:
                self.emit(self._image_grid(pred))
        val_accuracy = float(self._correct(pred, self.y_val)) / n \
            if self.task == "classification" and self.scores and pred is not None else None
        run_loss, run_correct, run_n = self._running.tolist()
        self._running.zero_()
        lr = lr_at(max(self.step - 1, 0), self.config, self.total_steps)
        return EvalMetrics(self.step, self.epoch, run_loss / run_n if run_n else None,
                           loss_sum / n, run_correct / run_n if run_n and val_accuracy is not None
                           else None, val_accuracy, lr)

    def parameter_values(self) -> ParameterValues:
        """The values of the graph's Parameter blocks (those small enough to report)."""
        values = {}
        types = {path: node.type for path, node in self.graph.walk()}
        for path, params in node_parameters(self.module, self.node_modules).items():
            spec = lookup(types.get(path, ""))
            if spec is None or spec.emit != "parameter":
                continue
            flat = torch.cat([p.detach().reshape(-1) for p in params])
            if flat.numel() <= ParameterValues.MAX_REPORTED:
                values[path] = tuple(flat.cpu().tolist())
        return ParameterValues(self.step, values)

    def _image_grid(self, pred: torch.Tensor) -> ImageGrid:
        """The first validation images and what the model made of them, as (N, H, W) in [0, 1]."""
        n = min(IMAGES_SHOWN, len(pred))
        shape = (n, *self.image_shape)
        return ImageGrid(self.step, self.x_val[:n].reshape(shape).float().clamp(0, 1).cpu().numpy(),
                         pred[:n].reshape(shape).float().clamp(0, 1).cpu().numpy())

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) for inputs x of a one-input graph, in eval mode."""
        dummy = torch.zeros((len(x), *self.data.target_shape), dtype=self.y_train.dtype,
                            device=self.device)
        _, pred = self._outputs((x,), dummy)
        if pred.dim() < 2 or pred.shape[-1] == 1:   # one logit: the probability of class 1
            p = torch.sigmoid(pred.reshape(-1))
            return torch.stack([1 - p, p], dim=1)
        return torch.sigmoid(pred) if self.loss_name == "bce_with_logits" else pred.softmax(-1)

    def emit_boundary(self) -> DecisionBoundary | None:
        """For 2-D classification: class probabilities on a grid over the data plus a margin."""
        if self.data is None or not (self.data.is_2d and self.task == "classification"
                                     and self.has_predictions and self.scores):
            return None
        lo, hi = self.data.x_train.min(0), self.data.x_train.max(0)
        pad = (hi - lo) * BOUNDARY_MARGIN
        lo, hi = lo - pad, hi + pad
        xs = torch.linspace(float(lo[0]), float(hi[0]), BOUNDARY_RESOLUTION)
        ys = torch.linspace(float(lo[1]), float(hi[1]), BOUNDARY_RESOLUTION)
        gx, gy = torch.meshgrid(xs, ys, indexing="xy")   # (R, R): row i is ys[i]
        grid = torch.stack([gx, gy], dim=-1).reshape(-1, 2).to(self.device)   # (R·R, 2)
        probs = self.probabilities(grid).reshape(BOUNDARY_RESOLUTION, BOUNDARY_RESOLUTION, -1)
        return self.emit(DecisionBoundary(self.step, (float(lo[0]), float(hi[0]), float(lo[1]),
                                                      float(hi[1])),
                                          probs.float().cpu().numpy()))

    # -- checkpoints --

    def state(self) -> dict[str, Any]:
        """What resuming needs besides the weights: tensors and primitives only."""
        return {"format": 1, "step": self.step, "optimizer": self.optimizer.state_dict(),
                "running": self._running.clone(), "torch_rng": torch.get_rng_state()}

    def checkpoint(self) -> Path | None:
        """Write the run folder, all or nothing. A folder that cannot be written (a full disk)
        ends the run with Failed(kind="io"), saying which checkpoint the folder kept."""
        if self.out_dir is None or self.rank != 0:
            return None
        try:
            path = save_run(self.out_dir, self.graph, self.config, self.module.state_dict(),
                            self.state(), self._files)
        except OSError as e:
            kept = f"the run folder keeps the checkpoint of step {self.saved_step}, which " \
                "--resume continues" if self.saved_step is not None else "no checkpoint was kept"
            raise TrainingError("io", f"cannot write the checkpoint of step {self.step} to "
                                f"{self.out_dir} ({e.strerror or e}); {kept}") from None
        self.saved_step = self.step
        self.emit(CheckpointSaved(self.step, str(path)))
        return path

    def _load(self, folder: Path) -> None:
        state = load_state(folder, self.device)
        try:
            self.step, self._running = restore(state, self.module, self.optimizer)
        except CheckpointError as e:
            raise CheckpointError(f"{folder}: {e}") from None
        if self.out_dir is not None and os.path.abspath(self.out_dir) == os.path.abspath(folder):
            self.saved_step = self.step

    def emit(self, event: Event) -> Event:
        if self.record is not None and self.rank == 0:
            self.record.put(event)
        if self.board is not None:
            self.board.put(event)
        self.events.put(event)
        return event


def recorded_trainer(graph: Graph, graph_path: str | Path, config: TrainingConfig | None = None,
                     *, name: str | None = None, start_from: str | Path | None = None,
                     continue_run: bool = False, graph_text: str | None = None,
                     **options) -> Trainer:
    """A trainer whose run is kept in the run store beside `graph_path` (engine.core.runs):
    the way the studio's Train and `dprog train` both record runs.

    `start_from`: a run folder to start from (its checkpoint); with `continue_run` the run
    goes on in that folder, otherwise a new run branches from it. The graph's text recorded
    is the file's bytes now, or `graph_text` (the studio's edited, unsaved graph: the bytes
    saving it would write). Other options go to `Trainer` (events, base_dir, profile, ...)."""
    from ..core.runs import RunRecorder, read_run

    config = config or TrainingConfig.from_mapping(graph.training)
    text = graph_text if graph_text is not None else (
        Path(graph_path).read_bytes().decode("utf-8", errors="replace")
        if Path(graph_path).is_file() else "")
    options.setdefault("base_dir", Path(graph_path).parent)
    if start_from is not None and continue_run:
        record = RunRecorder(start_from, name=name, graph_file=Path(graph_path).name,
                             graph_text=text, config=config.to_mapping(), continued=True, logs=True)
    else:
        parent = read_run(start_from) if start_from is not None else None
        record = RunRecorder.create(
            graph_path, text, config.to_mapping(), name=name, logs=True,
            parent=parent.id if parent is not None else None,
            parent_step=(parent.last_good_step if parent.outcome == "nonfinite" else parent.step)
            if parent is not None else None)
    return Trainer(graph, config, out_dir=record.folder, record=record,
                   resume_from=start_from, **options)


def train(graph: Graph, config: TrainingConfig | None = None, **options) -> tuple[Trainer, list[Event]]:
    """Train synchronously; returns the trainer and every event, in order (for scripts, tests)."""
    events: queue.Queue = queue.Queue()
    trainer = Trainer(graph, config, events=events, **options)
    trainer.run()
    out = []
    while not events.empty():
        out.append(events.get_nowait())
    return trainer, out
