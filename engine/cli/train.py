"""`dprog train GRAPH`: train headless, with a progress line on stderr, into a run folder.

The run folder (default runs/<graph file name>) gets metrics.jsonl (one JSON object per
evaluation: step, epoch, train_loss, val_loss, and train_accuracy/val_accuracy for
classification), gradflow.jsonl (one gradient-flow snapshot per line), and the checkpoint files
of engine/checkpoint.py: weights.pt, state.pt, graph.json, config.json, model.py.

Exit codes: 0 done; 1 the graph is invalid, or does not fit the data, or raised at run time
(the message names the node); 2 unreadable input, bad options, unknown dataset; 3 training
stopped on non-finite values; 130 stopped by Ctrl-C (continue with --resume DIR).

`--nproc N` re-runs this command in N local processes under torch.distributed (gloo on CPU,
nccl on GPU), torchrun-style: MASTER_ADDR/MASTER_PORT, RANK, WORLD_SIZE and LOCAL_RANK in
each child's environment. A command started by torchrun itself sees WORLD_SIZE > 1 and joins
the group the same way, which is how a run spans several machines.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from ..core.analysis import analyze
from ..core.config import DEVICES, LOSSES, OPTIMIZERS, SCHEDULES, TrainingConfig
from ..core.events import (
    EvalMetrics,
    Failed,
    Finished,
    GradFlowSnapshot,
    Started,
    StepMetrics,
    Stopped,
)
from ..core.fileformat import GraphFileError, load_graph
from ..runtime.checkpoint import GRAPH, CheckpointError, load_config
from .common import EXIT_INVALID, EXIT_NONFINITE, EXIT_OK, EXIT_USAGE, Parser, fail, format_report

EXIT_STOPPED = 130
EXIT_CODES = {"invalid_graph": EXIT_INVALID, "error": EXIT_INVALID, "data": EXIT_USAGE,
              "config": EXIT_USAGE, "checkpoint": EXIT_USAGE, "nonfinite": EXIT_NONFINITE,
              "out_of_memory": EXIT_INVALID}
METRICS, GRADFLOW = "metrics.jsonl", "gradflow.jsonl"
REPO = Path(__file__).resolve().parents[1]


def parser() -> Parser:
    p = Parser(prog="dprog train", allow_abbrev=False, description="Train a graph headless. "
                "Settings come from the graph's training section; these options override them.")
    p.add_argument("graph", nargs="?", help="graph file (optional with --resume)")
    p.add_argument("--epochs", type=int, help="passes over the training data")
    p.add_argument("--steps", type=int, help="optimizer steps (instead of epochs)")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule")
    p.add_argument("--loss", choices=LOSSES)
    p.add_argument("--batch-size", type=int, help="global batch size (split across --nproc)")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--clip-grad-norm", type=float)
    p.add_argument("--data", metavar="NAME|PATH", help="a built-in dataset, or a .csv/.npz file")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--gradflow-every", type=int, metavar="K", help="gradient-flow snapshot every K "
                   "steps (0: off)")
    p.add_argument("--eval-every", type=int, metavar="N", help="evaluate every N steps (default: "
                   "once per epoch)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<graph name>, or the "
                   "--resume folder)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="also checkpoint every N steps (always at the end)")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    p.add_argument("--nproc", type=int, default=1, metavar="N", help="train in N local processes "
                   "with DistributedDataParallel")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--traceback", action="store_true", help="on failure, also print the Python "
                   "traceback (for bug reports)")
    return p


def run(argv: Sequence[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:   # -h, or a usage error argparse has already printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.nproc < 1:
        return fail("--nproc must be at least 1")
    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return launch(list(argv), args.nproc)
    if args.graph is None and args.resume is None:
        return fail("dprog train: give a graph file, or --resume DIR")

    # The graph and the config: from the files, then the options.
    source = Path(args.graph) if args.graph else Path(args.resume) / GRAPH
    try:
        graph = load_graph(source)
        config = load_config(args.resume) if args.resume else \
            TrainingConfig.from_mapping(graph.training)
        config = _with_options(config, args)
    except (GraphFileError, CheckpointError, ValueError, TypeError) as e:
        return fail(str(e))
    analysis = analyze(graph)
    if not analysis.ok:
        print(format_report(str(source), analysis, graph), file=sys.stderr)
        return EXIT_INVALID
    name = Path(args.graph).stem if args.graph else graph.name
    out = Path(args.out or args.resume or Path("runs") / name)

    distributed = _init_distributed(config.device)
    try:
        return _train(graph, config, args, source, out)
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(graph, config: TrainingConfig, args, source: Path, out: Path) -> int:
    from ..runtime.trainer import Trainer

    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name in (METRICS, GRADFLOW):   # a fresh run starts its logs; a resumed one adds
                with open(out / name, "a" if args.resume else "w"):
                    pass
        except OSError as e:
            return fail(f"{out}: cannot write ({e.strerror or e})")
    report = _Report(out if rank == 0 else None, None if args.quiet or rank else sys.stderr)
    trainer = Trainer(graph, config, events=report, base_dir=source.parent,
                      out_dir=out if rank == 0 else None, checkpoint_every=args.checkpoint_every,
                      resume_from=args.resume)
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:   # Ctrl-C stops after the current step, and the run folder can resume
        previous = signal.signal(signal.SIGINT, lambda *_: trainer.stop())
    try:
        end = trainer.run()
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        report.close()
    if isinstance(end, Finished):
        if rank == 0:
            print(_summary(graph.name, end, report.first_step, out))
        return EXIT_OK
    if isinstance(end, Stopped):
        return fail(f"stopped at step {end.step}; continue with: dprog train --resume {out}",
                    EXIT_STOPPED) if rank == 0 else EXIT_STOPPED
    assert isinstance(end, Failed)
    if args.traceback and end.error is not None:
        import traceback

        traceback.print_exception(end.error)
    prefix = f"rank {rank}: " if rank else ""
    return fail(f"{prefix}{end.message}", EXIT_CODES.get(end.kind, EXIT_INVALID))


def _with_options(config: TrainingConfig, args) -> TrainingConfig:
    changes: dict[str, Any] = {key: getattr(args, key) for key in (
        "steps", "lr", "optimizer", "schedule", "loss", "batch_size", "weight_decay",
        "clip_grad_norm", "seed", "device", "gradflow_every", "eval_every")
        if getattr(args, key) is not None}
    if args.epochs is not None:
        changes.update(epochs=args.epochs, steps=args.steps)   # --epochs wins over a file's steps
    if args.data is not None:
        changes["dataset"] = _dataset_spec(args.data, config.dataset)
    return replace(config, **changes).checked()


def _dataset_spec(text: str, current) -> dict[str, Any]:
    suffix = Path(text).suffix.lower()
    if suffix in (".csv", ".npz"):
        return {"name": suffix[1:], "path": str(Path(text).resolve())}
    if suffix == ".npy":
        raise ValueError("--data: a .npy file needs a targets file too; set dataset.path and "
                         "dataset.targets in the graph's training section")
    return dict(current) if current.get("name") == text else {"name": text}


def _init_distributed(device: str) -> bool:
    """Join the process group when started as one of several processes (--nproc, torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    backend = "nccl" if device != "cpu" and torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=timedelta(minutes=5))
    return True


def launch(argv: list[str], nproc: int) -> int:
    """Run this same command in `nproc` local processes; rank 0 reports, the others stay quiet
    unless they fail. Ctrl-C is passed on to every process, which stop at the same step."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "engine.cli", "train", *_without(argv, "--nproc")]
    base = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(nproc),
                LOCAL_WORLD_SIZE=str(nproc),
                PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    procs = [subprocess.Popen(command, env={**base, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=None if r == 0 else subprocess.DEVNULL,
                              stderr=None if r == 0 else subprocess.PIPE, start_new_session=True)
             for r in range(nproc)]

    def forward(signum, _frame) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = signal.signal(signal.SIGINT, forward)
    try:
        failed_at = None
        while any(p.poll() is None for p in procs):
            if failed_at is None and any(p.poll() not in (None, 0) for p in procs):
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > 10:
                for p in procs:   # a failed rank leaves the others waiting on it
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGINT, previous)
    codes = [p.wait() for p in procs]
    for r, p in enumerate(procs[1:], start=1):
        message = p.stderr.read().decode(errors="replace").strip() if p.stderr else ""
        if codes[r] != 0 and codes[0] in (0, -signal.SIGKILL) and message:
            print(message, file=sys.stderr)
    return next((c for c in codes if c > 0), 0 if codes[0] == 0 else EXIT_INVALID)


def _without(argv: list[str], option: str) -> list[str]:
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == option:
            skip = True
        elif not token.startswith(option + "="):
            out.append(token)
    return out


# ---- reporting --------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """JSON has no NaN: non-finite numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class _Report:
    """The trainer's event sink: log files, and a progress line on stderr."""

    def __init__(self, out: Path | None, stream: TextIO | None):
        self.files = {kind: open(out / name, "a") for kind, name in  # noqa: SIM115
                      (("metrics", METRICS), ("gradflow", GRADFLOW))} if out else {}
        self.progress = _Progress(stream) if stream else None
        self.first_step = 0
        # By event type; the others (pauses, checkpoints, the end) need no report here.
        self.handlers = {Started: self._started, StepMetrics: self._step,
                         EvalMetrics: self._evaluated, GradFlowSnapshot: self._gradflow}

    def put(self, event) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _started(self, event: Started) -> None:
        self.first_step = event.first_step
        if self.progress:
            self.progress.start(event.first_step, event.total_steps, event.steps_per_epoch)

    def _step(self, event: StepMetrics) -> None:
        if self.progress:
            self.progress.step(event)

    def _evaluated(self, event: EvalMetrics) -> None:
        self._write("metrics", event.to_json())
        if self.progress:
            self.progress.evaluated(event)

    def _gradflow(self, event: GradFlowSnapshot) -> None:
        self._write("gradflow", event.to_json())

    def _write(self, kind: str, record: dict) -> None:
        if kind in self.files:
            self.files[kind].write(json.dumps(_finite(record)) + "\n")
            self.files[kind].flush()

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        if self.progress:
            self.progress.finish()


class _Progress:
    """`step 450/1500 [#####.....] 30%  epoch 18/60  loss 0.1234  val acc 96.5%  eta 0:07`.

    On a terminal the line is redrawn in place (at most 10 times a second); otherwise a line
    is printed every 10% of the run."""

    WIDTH = 24

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = 0.0
        self.val = ""
        self.drawn = False
        self.last = None   # the final step, until its evaluation arrives

    def start(self, first: int, total: int, per_epoch: int) -> None:
        self.first, self.total, self.per_epoch = first, max(total, 1), per_epoch
        self.t0 = time.monotonic()
        self.next_line = first + max(total // 10, 1)

    def evaluated(self, event) -> None:
        if event.val_accuracy is not None:   # as the summary line says it
            self.val = f"  val acc {event.val_accuracy:.1%}"
        else:
            self.val = f"  val loss {event.val_loss:.4g}"
        if self.last is not None:   # the last step's line waited for this evaluation
            last, self.last = self.last, None
            self._draw(last, time.monotonic())

    def step(self, event) -> None:
        now = time.monotonic()
        if event.step >= self.total:
            self.last = event   # drawn with the final evaluation, which comes next
            return
        if now - self.shown < 0.1 if self.tty else event.step < self.next_line:
            return
        self._draw(event, now)

    def _draw(self, event, now: float) -> None:
        self.shown = now
        self.next_line = event.step + max(self.total // 10, 1)
        done = event.step / self.total
        left = (now - self.t0) / max(event.step - self.first, 1) * (self.total - event.step)
        bar = "#" * round(done * self.WIDTH)
        epochs = math.ceil(self.total / self.per_epoch)
        text = (f"step {event.step}/{self.total} [{bar:.<{self.WIDTH}}] {done:4.0%}  "
                f"epoch {event.epoch}/{epochs}  loss {event.loss:.4g}{self.val}  "
                f"eta {_clock(left)}")
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.last is not None:
            self._draw(self.last, time.monotonic())
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def _summary(name: str, end, first_step: int, out: Path) -> str:
    m = end.metrics
    resumed = f" (steps {first_step + 1}-{end.step})" if first_step else ""
    parts = [f"dprog: trained {name} for {end.step - first_step} steps{resumed} in "
             f"{end.seconds:.1f} s"]
    if m is not None:
        parts.append(f"train loss {m.train_loss:.4g}" if m.train_loss is not None else "")
        parts.append(f"val loss {m.val_loss:.4g}")
        if m.val_accuracy is not None:
            parts.append(f"val accuracy {m.val_accuracy:.1%}")
    return ", ".join(p for p in parts if p) + f"; wrote {out}"
