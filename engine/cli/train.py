"""`dprog train GRAPH`: train headless, with a progress line on stderr, into a run folder.

Every run is kept in the run store (engine/core/runs.py, docs/runs.md): by default a new
folder runs/<graph stem>-<n>/ beside the graph file, with run.json (name, date, the graph's
text and hash, the config, the parent run, live edits, the outcome) and steps.jsonl.
`--name` names it; `--from RUN` starts a new run (a branch) from RUN's checkpoint with the
options given, and `--from RUN --continue` trains RUN itself further (as --resume does).
`--tensorboard` also writes TensorBoard event files into the run's tensorboard/.

The run folder (or --out DIR) also gets metrics.jsonl (one JSON object per
evaluation: step, epoch, train_loss, val_loss, and train_accuracy/val_accuracy for
classification), gradflow.jsonl (one gradient-flow snapshot per line), parameters.jsonl (a
program without data Inputs: its Parameter blocks' values at each evaluation, `{"step": s,
"values": {node: [numbers]}}`), and the checkpoint files of engine/runtime/checkpoint.py:
weights.pt, state.pt, graph.json, config.json, model.py.

Exit codes: 0 done; 1 the graph is invalid, or does not fit the data, or raised at run time
(the message names the node); 2 unreadable input, bad options, unknown dataset, or a run
folder that cannot be created or that another process is writing; 3 training stopped on
non-finite values; 4 the run folder could not be written while training (a full disk: the
message says which checkpoint it kept);
130, 143, 129 stopped by SIGINT (Ctrl-C), SIGTERM or SIGHUP (continue with --resume DIR).

What it promises:
- Signals: SIGINT, SIGTERM (what `kill` and schedulers send) and SIGHUP (a closed terminal)
  stop the run after the current step, write a checkpoint of that step and exit 128 + the
  signal's number. A signal that was ignored when dprog started (`nohup`) stays ignored. A second signal stops at once without saving; the folder keeps its last
  complete checkpoint. A signal before training starts stops before anything is written.
- One writer per folder: the run folder is locked (engine/runtime/checkpoint.py's RunLock);
  a second `dprog train` on it is refused, naming the process that holds it.
- A failure leaves the last complete state: checkpoints are written all or nothing; a log
  line that cannot be written is taken back and stops the run with a checkpoint; on
  --resume the logs are cut back to the step the checkpoint holds, so they never run ahead
  of it or end in half a line. A fresh folder that never got a checkpoint is removed.
- Settings are checked before torch loads: out of range, non-finite or unsavable values are
  one line naming the setting and its range.

`--nproc N` re-runs this command in N local processes under torch.distributed (gloo on CPU,
nccl on GPU), torchrun-style: MASTER_ADDR/MASTER_PORT, RANK, WORLD_SIZE and LOCAL_RANK in
each child's environment. A command started by torchrun itself sees WORLD_SIZE > 1 and joins
the group the same way, which is how a run spans several machines. The launcher holds the
run folder's lock for its children and passes every signal on to them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from nodes import lookup

from ..core.analysis import analyze
from ..core.config import DEVICES, LOSSES, OPTIMIZERS, SCHEDULES, TrainingConfig
from ..core.events import (
    BlockTimes,
    EvalMetrics,
    Failed,
    Finished,
    GradFlowSnapshot,
    ParameterValues,
    Started,
    StepMetrics,
    Stopped,
)
from ..core.fileformat import GraphFileError, load_graph
from ..core.files import shown
from ..core.limits import with_limits
from ..core.runs import (
    RUN_FILE,
    STEPS_FILE,
    RunError,
    RunRecorder,
    find_run,
    new_run_folder,
    read_run,
)
from ..runtime.checkpoint import (
    GRAPH,
    LOCK,
    CheckpointError,
    RunLock,
    check_run_folder,
    load_config,
)
from .common import EXIT_INVALID, EXIT_NONFINITE, EXIT_OK, EXIT_USAGE, Parser, fail, format_report

EXIT_STOPPED, EXIT_IO = 130, 4
EXIT_CODES = {"invalid_graph": EXIT_INVALID, "error": EXIT_INVALID, "data": EXIT_USAGE,
              "config": EXIT_USAGE, "checkpoint": EXIT_USAGE, "nonfinite": EXIT_NONFINITE,
              "out_of_memory": EXIT_INVALID, "io": EXIT_IO}
SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
METRICS, GRADFLOW, PARAMETERS = "metrics.jsonl", "gradflow.jsonl", "parameters.jsonl"
LOGS = (("metrics", METRICS), ("gradflow", GRADFLOW), ("parameters", PARAMETERS))
MAX_NPROC = 64
LOCK_HELD = "DPROG_RUN_LOCK_HELD"   # set by the --nproc launcher: it holds the lock of this folder
REPO = Path(__file__).resolve().parents[2]


def _count(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in low..high, or a usage error naming the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {shown(text)[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in {low}..{high:,}, not {value}")
        return value
    return parse


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
    p.add_argument("--out", metavar="DIR", help="run folder (default: a new runs/<graph stem>-<n> "
                   "beside the graph, or the --resume folder)")
    p.add_argument("--name", help="the run's display name (default: its folder's name)")
    p.add_argument("--from", dest="parent", metavar="RUN", help="start from RUN's checkpoint (a "
                   "run folder, or a run's folder name or display name among the graph's runs): "
                   "a new run branched from it, with the options given")
    p.add_argument("--continue", dest="cont", action="store_true", help="with --from: train "
                   "RUN itself further, in its own folder")
    p.add_argument("--tensorboard", action="store_true", default=None, help="also write "
                   "TensorBoard event files (needs the tensorboard package)")
    p.add_argument("--profile", action="store_true", help="time every block's forward and "
                   "backward at every step: profile.jsonl in the run folder, and the slowest "
                   "blocks on stderr at the end")
    p.add_argument("--checkpoint-every", type=_count(0, 100_000_000), default=0, metavar="N",
                   help="also checkpoint every N steps (always at the end)")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    p.add_argument("--nproc", type=_count(1, MAX_NPROC), default=1, metavar="N",
                   help="train in N local processes with DistributedDataParallel")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--traceback", action="store_true", help="on failure, also print the Python "
                   "traceback (for bug reports)")
    return p


def run(argv: Sequence[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:   # -h, or a usage error argparse has already printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.graph is None and args.resume is None and args.parent is None:
        return fail("dprog train: give a graph file, or --resume DIR, or --from RUN")
    if args.cont and args.parent is None:
        return fail("dprog train: --continue goes with --from RUN")
    if args.parent is not None and args.resume is not None:
        return fail("dprog train: give --from RUN or --resume DIR, not both")
    if args.parent is not None:
        try:
            folder = find_run(args.graph, args.parent)
        except RunError as e:
            return fail(str(e))
        if args.cont:
            args.resume, args.parent = str(folder), None
        else:
            args.parent = str(folder)
    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        argv = list(argv)
        if args.out is None and args.resume is None:
            # The launcher picks the run folder, so every rank writes the same one.
            try:
                args.out = str(_new_folder(args))
            except OSError as e:
                return fail(f"cannot create a run folder ({e.strerror or e})")
            argv += ["--out", args.out]
        return launch(argv, args.nproc, _out_folder(args, None))
    signals = _Signals()
    with signals:
        try:
            return _load_and_train(args, signals)
        except KeyboardInterrupt:
            if signals.trainer is None:
                return fail(f"stopped by {signals.name} before training started; the run folder "
                            "was not changed", signals.code)
            return fail(f"stopped by a second {signals.name} without saving; "
                        f"{_kept(signals.trainer)}", signals.code)


def _out_folder(args, graph) -> Path:
    if args.out or args.resume:
        return Path(args.out or args.resume)
    args.fresh = True   # made here: removed again if the run never checkpoints
    return _new_folder(args)


def _new_folder(args) -> Path:
    """The next runs/<stem>-<n>/ beside the graph file (of the parent run's graph file for
    --from without a graph: beside the parent)."""
    if args.graph is not None:
        return new_run_folder(args.graph)
    parent = Path(args.parent)
    stem = re.sub(r"-\d+$", "", parent.name)
    return new_run_folder(parent.parent.parent / f"{stem}.json")


def _load_and_train(args, signals: _Signals) -> int:
    # The graph and the config: from the files, then the options.
    start = args.resume or args.parent   # the run folder whose checkpoint this run starts from
    source = Path(args.graph) if args.graph else Path(start) / GRAPH
    try:
        if start:
            check_run_folder(start)
        graph = load_graph(source)
        if args.data is not None and not any(lookup(n.type).kind == "input" for n in graph.nodes):
            # A program fits its Parameters without data: a dataset would be silently unused.
            raise ValueError(f"--data: {shown(graph.name)} has no data Input, so it trains without "
                             "data (its first Output is the loss); drop --data, or add an Input "
                             "block to feed the data to")
        config = load_config(start) if start else TrainingConfig.from_mapping(graph.training)
        config = _with_options(config, args)
    except (GraphFileError, CheckpointError, ValueError, TypeError) as e:
        return fail(str(e))
    analysis = with_limits(graph, analyze(graph))
    if not analysis.ok:
        print(format_report(str(source), analysis, graph), file=sys.stderr)
        return EXIT_INVALID
    try:
        out = _out_folder(args, graph) if int(os.environ.get("RANK", "0")) == 0 else \
            Path(args.out or args.resume or ".")
    except OSError as e:
        return fail(f"cannot create a run folder ({e.strerror or e})")
    if not _init_distributed(config.device):
        return _train(graph, config, args, source, out, signals)
    import torch.distributed as dist

    code = EXIT_INVALID
    try:
        code = _train(graph, config, args, source, out, signals)
    except KeyboardInterrupt:
        code = signals.code
    except Exception as e:   # reported here: the teardown below leaves no traceback behind
        fail(f"rank {os.environ.get('RANK', '?')}: {type(e).__name__}: {shown(str(e))}")
    finally:
        # Ranks that finished alike leave together, then skip the interpreter's teardown:
        # gloo's threads could outlive the process group there and abort the process
        # ("terminate called without an active exception") after a run that went well.
        # Every file is written and closed by now.
        if code == EXIT_OK:
            dist.barrier()
        dist.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class _Signals:
    """SIGINT, SIGTERM and SIGHUP, handled alike while `dprog train` runs (see the module
    docstring): the first stops the attached trainer after its step, or, before there is a
    trainer, raises KeyboardInterrupt; a second raises KeyboardInterrupt at once."""

    def __init__(self):
        self.received: int | None = None
        self.trainer = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                # An ignored signal stays ignored: `nohup dprog train` must outlive its terminal.
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame) -> None:
        first = self.received is None
        self.received = self.received or signum
        if not first or self.trainer is None:
            raise KeyboardInterrupt
        self.trainer.stop()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else "a signal"

    @property
    def code(self) -> int:
        return SIGNALS.get(self.received, EXIT_STOPPED)


def _kept(trainer) -> str:
    step = getattr(trainer, "saved_step", None)
    return f"the run folder keeps the checkpoint of step {step}" if step is not None \
        else "no checkpoint was written"


def _take_folder(out: Path) -> tuple[RunLock | None, bool]:
    """Create and lock the run folder (rank 0); (the lock, whether the folder is new).
    Under the --nproc launcher, which holds the lock already, only the folder is made."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if os.environ.get(LOCK_HELD) == os.path.abspath(out):
        return None, created
    return RunLock(out).acquire(), created


def _give_back(out: Path, lock: RunLock | None, created: bool) -> None:
    """Release the lock; a folder this run created that never got a checkpoint goes too."""
    if lock is not None:
        lock.release()
    # The run's record alone (run.json, steps.jsonl) is no run: nothing to open or continue.
    if created and {p.name for p in out.iterdir()} <= {LOCK, RUN_FILE, STEPS_FILE}:
        with contextlib.suppress(OSError):
            for name in (LOCK, RUN_FILE, STEPS_FILE):
                (out / name).unlink(missing_ok=True)
            out.rmdir()


def _train(graph, config: TrainingConfig, args, source: Path, out: Path,
           signals: _Signals) -> int:
    from ..runtime.trainer import Trainer

    rank = int(os.environ.get("RANK", "0"))
    lock, created = None, False
    if rank == 0:
        try:
            lock, created = _take_folder(out)
            created = created or getattr(args, "fresh", False)
        except CheckpointError as e:
            return fail(str(e))
        except OSError as e:
            return fail(f"{out}: cannot write ({e.strerror or e})")
    try:
        record = _recorder(args, out, graph, config, source) if rank == 0 else None
        trainer = Trainer(graph, config, base_dir=source.parent,
                          out_dir=out if rank == 0 else None,
                          checkpoint_every=args.checkpoint_every,
                          resume_from=args.resume or args.parent, record=record,
                          profile=args.profile)
        report = _Report(out if rank == 0 else None, None if args.quiet or rank else sys.stderr,
                         resumed=args.resume is not None, on_error=trainer.stop)
        trainer.events = report
        signals.trainer = trainer
        try:
            end = trainer.run()
        finally:
            report.close()
            if record is not None:
                record.close()
    finally:
        if rank == 0:
            _give_back(out, lock, created)
    if args.profile and rank == 0 and report.block_ms and not args.quiet:
        with contextlib.suppress(OSError):
            print(_profile_table(report.block_ms, report.profiled), file=sys.stderr)
    if isinstance(end, Finished):
        if rank == 0:
            with contextlib.suppress(OSError):
                print(shown(_summary(graph.name, end, report.first_step, out, report.parameters)))
        return EXIT_OK
    if isinstance(end, Stopped):
        if report.error:
            return fail(f"{report.error}; stopped at step {end.step}, and the run folder keeps "
                        f"its checkpoint: continue with: dprog train --resume {out}", EXIT_IO)
        return fail(f"stopped at step {end.step} by {signals.name}; continue with: dprog train "
                    f"--resume {out}", signals.code) if rank == 0 else signals.code
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
    if args.tensorboard:
        changes["tensorboard"] = True
    return replace(config, **changes).checked()


def _recorder(args, out: Path, graph, config: TrainingConfig, source: Path) -> RunRecorder:
    """The run's record in `out`: a new run, a branch of --from RUN, or (--resume, --from
    RUN --continue) the same run going on. The graph's text is the file's bytes as read now
    (a graph from a run folder: that folder's graph.json)."""
    try:
        text = source.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    parent = parent_step = None
    if args.parent is not None:
        parent_run = read_run(args.parent)
        parent = parent_run.id if Path(args.parent).parent.resolve() == out.parent.resolve() \
            else str(Path(args.parent))
        parent_step = parent_run.last_good_step if parent_run.outcome == "nonfinite" \
            else parent_run.step
    graph_file = source.name if args.graph else (read_run(args.resume or args.parent).graph_file
                                                 or source.name)
    return RunRecorder(out, name=args.name, graph_file=graph_file, graph_text=text,
                       config=config.to_mapping(), parent=parent, parent_step=parent_step,
                       continued=args.resume is not None)


def _dataset_spec(text: str, current) -> dict[str, Any]:
    suffix = Path(text).suffix.lower()
    if suffix in (".csv", ".npz"):
        # abspath, not resolve: a symlink loop or a NUL byte is the dataset's to report.
        spec = {"name": suffix[1:], "path": os.path.abspath(text)}
        if suffix == ".npz" and current.get("name") == "npz" and "inputs" in current:
            spec["inputs"] = current["inputs"]   # another file for the same Input ids
        return spec
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


def launch(argv: list[str], nproc: int, out: Path) -> int:
    """Run this same command in `nproc` local processes; rank 0 reports, the others stay quiet
    unless they fail. The launcher holds the run folder's lock for them; every signal is
    passed on to every process, which stop at the same step."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = RunLock(out).acquire()
    except CheckpointError as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"{out}: cannot write ({e.strerror or e})")
    try:
        return _run_ranks(argv, nproc, out)
    finally:
        lock.release()


def _run_ranks(argv: list[str], nproc: int, out: Path) -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "engine.cli", "train", *_without(argv, "--nproc")]
    base = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(nproc),
                LOCAL_WORLD_SIZE=str(nproc), **{LOCK_HELD: os.path.abspath(out)},
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

    previous = {signum: signal.signal(signum, forward) for signum in SIGNALS
                if signal.getsignal(signum) is not signal.SIG_IGN}
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
        for signum, handler in previous.items():
            signal.signal(signum, handler)
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
    """The trainer's event sink: log files, and a progress line on stderr.

    The logs are opened when training starts: a fresh run empties them, a resumed one first
    cuts them back to the step its checkpoint holds (dropping a half-written last line), so
    they never run ahead of the state they go with. A line that cannot be written (a full
    disk) is taken back, logging stops, and `on_error` asks the trainer to stop."""

    def __init__(self, out: Path | None, stream: TextIO | None, *, resumed: bool = False,
                 on_error: Callable[[], None] = lambda: None):
        self.out, self.resumed, self.on_error = out, resumed, on_error
        self.files: dict[str, TextIO] = {}
        self.progress = _Progress(stream) if stream else None
        self.first_step = 0
        self.error: str | None = None
        self.parameters: ParameterValues | None = None   # the latest, for the summary
        self.block_ms: dict[str, list[float]] = {}   # profile mode: node → [forward, backward]
        self.profiled = 0
        # By event type; the others (pauses, checkpoints, the end) need no report here.
        self.handlers = {Started: self._started, StepMetrics: self._step,
                         EvalMetrics: self._evaluated, GradFlowSnapshot: self._gradflow,
                         ParameterValues: self._parameters, BlockTimes: self._block_times}

    def put(self, event) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _started(self, event: Started) -> None:
        self.first_step = event.first_step
        if event.weights:
            print(f"dprog train: {event.weights}", file=sys.stderr)
        self._open(event.first_step)
        if self.progress:
            self.progress.start(event.first_step, event.total_steps, event.steps_per_epoch)

    def _step(self, event: StepMetrics) -> None:
        if self.progress:
            self.progress.step(event)

    def _evaluated(self, event: EvalMetrics) -> None:
        self._write("metrics", event.to_json())
        if self.progress:
            self.progress.evaluated(event)

    def _block_times(self, event: BlockTimes) -> None:
        self.profiled += 1
        for i, table in enumerate((event.forward_ms, event.backward_ms)):
            for node, ms in table.items():
                self.block_ms.setdefault(node, [0.0, 0.0])[i] += ms

    def _gradflow(self, event: GradFlowSnapshot) -> None:
        self._write("gradflow", event.to_json())

    def _open(self, first_step: int) -> None:
        if self.out is None:
            return
        try:
            for kind, name in LOGS:
                path = self.out / name
                if self.resumed and path.exists():
                    _cut_log(path, first_step)
                self.files[kind] = open(path, "a" if self.resumed else "w")  # noqa: SIM115
        except OSError as e:
            self._failed(f"cannot write the logs in {self.out} ({e.strerror or e})")

    def _parameters(self, event: ParameterValues) -> None:
        self.parameters = event
        self._write("parameters", event.to_json())

    def _write(self, kind: str, record: dict) -> None:
        f = self.files.get(kind)
        if f is None:
            return
        good = f.tell()
        try:
            f.write(json.dumps(_finite(record)) + "\n")
            f.flush()
        except OSError as e:
            with contextlib.suppress(OSError):
                os.truncate(f.name, good)   # no half line left behind
            self._failed(f"cannot write {Path(f.name).name} ({e.strerror or e})")

    def _failed(self, message: str) -> None:
        self.close_files()
        if self.error is None:
            self.error = message
            self.on_error()

    def close_files(self) -> None:
        for f in self.files.values():
            with contextlib.suppress(OSError):
                f.close()
        self.files = {}

    def close(self) -> None:
        self.close_files()
        if self.progress:
            self.progress.finish()


def _cut_log(path: Path, last_step: int) -> None:
    """Keep the lines of a JSONL log whose step is at most `last_step`, whole lines only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.cut")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            for line in src:
                try:
                    keep = line.endswith(b"\n") and json.loads(line)["step"] <= last_step
                except (ValueError, KeyError, TypeError):
                    keep = False
                if keep:
                    dst.write(line)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


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
        try:
            if self.tty:
                self.stream.write("\r" + text + "\x1b[K")
                self.drawn = True
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
        except OSError:   # the terminal went away (SIGHUP): train on without the line
            self.tty, self.drawn, self.next_line = False, False, math.inf

    def finish(self) -> None:
        if self.last is not None:
            self._draw(self.last, time.monotonic())
        if self.drawn:
            with contextlib.suppress(OSError):
                self.stream.write("\n")
                self.stream.flush()


def _profile_table(block_ms: dict[str, list[float]], steps: int, top: int = 10) -> str:
    """The blocks that took the most time, mean ms per step, forward and backward."""
    rows = sorted(block_ms.items(), key=lambda kv: -sum(kv[1]))[:top]
    width = max(len(n) for n, _ in rows)
    lines = [f"{'block':<{width}}  forward ms  backward ms   (mean of {steps} steps)"]
    lines += [f"{shown(node):<{width}}  {f / steps:>10.3f}  {b / steps:>11.3f}"
              for node, (f, b) in rows]
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def _summary(name: str, end, first_step: int, out: Path,
             parameters: ParameterValues | None = None) -> str:
    m = end.metrics
    resumed = f" (steps {first_step + 1}-{end.step})" if first_step else ""
    parts = [f"dprog: trained {name} for {end.step - first_step} steps{resumed} in "
             f"{end.seconds:.1f} s"]
    if parameters is not None:   # a program: its loss, and what it learned
        if m is not None:
            parts.append(f"loss {m.val_loss:.4g}")
        parts += [f"{path} = {', '.join(f'{v:.6g}' for v in values[:4])}"
                  + (", …" if len(values) > 4 else "")
                  for path, values in list(parameters.values.items())[:8]]
    elif m is not None:
        parts.append(f"train loss {m.train_loss:.4g}" if m.train_loss is not None else "")
        parts.append(f"val loss {m.val_loss:.4g}")
        if m.val_accuracy is not None:
            parts.append(f"val accuracy {m.val_accuracy:.1%}")
    return ", ".join(p for p in parts if p) + f"; wrote {out}"
