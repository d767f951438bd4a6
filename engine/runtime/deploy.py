"""Deployment: a graph as an ONNX model or a saved `torch.export` program, checked after writing.

    check = deploy(graph, "model.onnx", "onnx", weights)   # or "pt2"; raises DeployError
    print(check.summary())

Guarantees:
- The artifact has a dynamic batch dimension on every input (and so on every batched output).
- It holds the graph's control flow, never the path the tracing inputs took: the generated
  code's traced path (see `_traced` in any exported model.py) runs loops that may end early
  for all their `max_iters` steps with finished samples masked, turns a hard Branch into
  `torch.cond` (an ONNX `If`), and unrolls scans over their known length.
- Before the file appears, the artifact is run (onnxruntime for ONNX, the reloaded
  `ExportedProgram` for pt2) against the compiled module in eval mode on fresh random inputs
  at two batch sizes, one of them a batch in which per-sample while loops take different
  numbers of steps where the graph has one. Every output must agree within `TOLERANCE`
  (absolute, relative above magnitude 1). Otherwise nothing is written and `DeployError` says
  by how much the outputs differed.
- onnx, onnxscript and onnxruntime are optional (`pip install 'dprog[deploy]'`); without them
  `DeployError` names the pip command.

torch is imported here; onnx and onnxruntime only when an ONNX export asks for them.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nodes import control, lookup

from ..core.analysis import Analysis, analyze, loop_iterations
from ..core.graph import PATH_SEP, Graph
from .compiler import CompiledClass, compile_class, example_inputs, tapped_forward, vary

TOLERANCE = 1e-5
TRACE_BATCH = 3                 # the example batch torch.export traces with (the batch is dynamic)
CHECK_BATCHES = (1, 16)         # the batch sizes the written artifact is checked at
MIXED_TRIES = 12                # random batches tried for one where per-sample loops differ
# Traced code unrolls every loop step; torch.export takes about 10 ms and the ONNX exporter
# about 25 ms per block call on this project's CPU, so this bounds an export at a few minutes.
MAX_TRACED_BLOCKS = 5_000
PIP_DEPLOY = "pip install onnx onnxscript onnxruntime   (or: pip install 'dprog[deploy]')"


class DeployError(Exception):
    """An export that was refused; the message says why in one line."""


class MissingDependency(DeployError):
    """An optional package the format needs is not installed; the message names the pip
    command."""


@dataclass(frozen=True)
class Format:
    """One way to deploy: the file it writes, how to write it and how to run what it wrote."""

    name: str
    what: str                                            # for messages: "ONNX", ...
    write: Callable[[torch.export.ExportedProgram, Path, list[str], list[str]], None]
    load: Callable[[Path, list[str]], Callable[..., list[torch.Tensor]]]
    runner: Callable[[], str]                            # what checks it, with its version


@dataclass(frozen=True)
class Check:
    """How the written artifact compared with the compiled module."""

    path: Path
    format: str
    runner: str
    batch_sizes: tuple[int, ...]
    max_difference: float
    # top-level per-sample while loop → (fewest, most) steps a sample took in the mixed batch
    steps: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # top-level hard branch → the sides the checked batches took ("else", "then")
    sides: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def short(self) -> str:
        """One status-bar line: the file, the runner, the largest difference."""
        return (f"wrote {self.path.name}: checked with {self.runner.split(' (')[0]}, largest "
                f"difference {self.max_difference:.2g} (tolerance {TOLERANCE:g})")

    def summary(self) -> str:
        if not self.batch_sizes:   # a program without Inputs: one run, nothing to batch
            return (f"wrote {self.path} ({self.format}, no inputs); checked with {self.runner} "
                    f"against the compiled module: largest difference {self.max_difference:.2g} "
                    f"(tolerance {TOLERANCE:g})")
        batches = ", ".join(map(str, self.batch_sizes))
        loops = "".join(f"; loop {name}: {lo}-{hi} steps per sample" if lo != hi else
                        f"; loop {name}: every sample took {lo} steps (no mixed batch found)"
                        for name, (lo, hi) in self.steps.items())
        branches = "".join(f"; branch {name}: both sides" if len(taken) == 2 else
                           f"; branch {name}: only its {taken[0]} side was reached"
                           for name, taken in self.sides.items())
        return (f"wrote {self.path} ({self.format}, dynamic batch); checked with {self.runner} "
                f"against the compiled module at batch sizes {batches}: largest difference "
                f"{self.max_difference:.2g} (tolerance {TOLERANCE:g}){loops}{branches}")


# --- the two formats ------------------------------------------------------------------------


def _write_pt2(program: torch.export.ExportedProgram, path: Path, inputs: list[str],
               outputs: list[str]) -> None:
    torch.export.save(program, path)


def _load_pt2(path: Path, inputs: list[str]) -> Callable[..., list[torch.Tensor]]:
    module = torch.export.load(path).module()

    def run(*args: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            out = module(*args)
        return list(out) if isinstance(out, tuple | list) else [out]
    return run


def _onnx() -> Any:
    """The ONNX exporter's modules, or DeployError naming the pip command."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise MissingDependency(f"ONNX export needs onnx, onnxscript and onnxruntime ({e.name} is "
                          f"missing): {PIP_DEPLOY}") from None
    return onnxruntime


def _write_onnx(program: torch.export.ExportedProgram, path: Path, inputs: list[str],
                outputs: list[str]) -> None:
    _onnx()
    onnx_program = torch.onnx.export(program, (), dynamo=True, input_names=inputs,
                                     output_names=outputs, external_data=False, verbose=False)
    onnx_program.save(str(path))


def _load_onnx(path: Path, inputs: list[str]) -> Callable[..., list[torch.Tensor]]:
    ort = _onnx()
    options = ort.SessionOptions()
    options.log_severity_level = 3   # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(*args: torch.Tensor) -> list[torch.Tensor]:
        feeds = {name: a.numpy() for name, a in zip(inputs, args, strict=True)}
        return [torch.from_numpy(out) for out in session.run(None, feeds)]
    return run


def _onnx_runner() -> str:
    return f"onnxruntime {_onnx().__version__}"


FORMATS: dict[str, Format] = {
    "onnx": Format("onnx", "ONNX", _write_onnx, _load_onnx, _onnx_runner),
    "pt2": Format("pt2", "torch.export program", _write_pt2, _load_pt2,
                  lambda: f"torch.export.load (torch {torch.__version__})"),
}


# --- exporting --------------------------------------------------------------------------------


def deploy(graph: Graph, path: str | Path, fmt: str,
           weights: Mapping[str, torch.Tensor] | None = None, *, seed: int = 0) -> Check:
    """Write `graph` (with `weights`, else seeded fresh ones) to `path` as `fmt`, checked.
    Raises DeployError, leaving no file at `path`, when it cannot be done faithfully."""
    form = FORMATS[fmt]
    if fmt == "onnx":
        _onnx()
    analysis = analyze(graph)
    if not analysis.ok:
        raise DeployError(f"the graph has errors: {analysis.errors[0]}")
    size, widest = traced_size(graph, analysis)
    if size > MAX_TRACED_BLOCKS:
        raise DeployError(f"the traced program would run {size:,} block calls, every loop step "
                          f"unrolled (loop {widest} the most); export takes up to "
                          f"{MAX_TRACED_BLOCKS:,}: lower its max_iters or count")
    drawing = sampling_in_eval(graph, analysis)
    if drawing and fmt == "onnx":
        raise DeployError(
            f"{drawing[0]} keeps drawing random numbers in eval mode (its eval is 'sample'), "
            "and ONNX Runtime cannot draw torch's numbers, so the written model could not be "
            "checked against the graph: set its eval to 'mean', or export pt2")
    compiled, module = _module(graph, analysis, weights, seed)
    inputs, outputs = _names(graph, module)
    program = export_program(graph, module)
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    tmp = Path(name)
    try:
        with _quiet():
            try:
                form.write(program, tmp, inputs, outputs)
                run = form.load(tmp, inputs)
            except DeployError:
                raise
            except Exception as e:
                raise DeployError(f"cannot write a {form.what} that loads: {_first_line(e)}") \
                    from None
        check = Check(path, form.what, form.runner(), *_check(graph, compiled, module, run, seed))
        tmp.replace(path)
        return check
    finally:
        tmp.unlink(missing_ok=True)


def export_program(graph: Graph, module: nn.Module) -> torch.export.ExportedProgram:
    """`torch.export` of the module (in eval mode) with a dynamic batch on every input (a
    program without Inputs has none)."""
    args = example_inputs(graph, TRACE_BATCH, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} for _ in args) if args else None
    try:
        with _quiet():
            return torch.export.export(module, args, dynamic_shapes=dynamic)
    except Exception as e:
        raise DeployError(f"torch.export cannot trace this graph faithfully: {_first_line(e)}") \
            from None


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a weights.pt, or from the weights.pt in a run folder; loaded with
    weights_only=True. DeployError when it is missing or not a dict of tensors."""
    path = Path(path)
    if path.is_dir():
        path = path / "weights.pt"
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DeployError(f"{path}: no such file") from None
    except Exception as e:   # a truncated or foreign file: one line
        raise DeployError(f"{path}: cannot read weights ({_first_line(e)})") from None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor)
                                                for v in weights.values()):
        raise DeployError(f"{path}: not a state_dict (a dict of tensors)")
    return weights


def sampling_in_eval(graph: Graph, analysis: Analysis) -> list[str]:
    """The paths of Random blocks that keep drawing in eval mode (eval: sample): a deployed
    model draws too, so it matches the graph only where both draw from torch's generator."""
    return [path for path, node in graph.walk()
            if (spec := lookup(node.type)) and spec.category == "Random"
            and analysis.params.get(path, {}).get("eval") == "sample"]


def traced_size(graph: Graph, analysis: Analysis) -> tuple[int, str | None]:
    """How many block calls the traced program holds, every loop step unrolled (both bodies
    of a branch count), and the loop node contributing most."""
    widest: list[tuple[int, str]] = []

    def size(region: Graph, prefix: str, runs: int) -> int:
        total = 0
        for node in region.nodes:
            spec, path = lookup(node.type), prefix + node.id
            if spec is None or spec.kind not in ("loop", "branch"):
                total += runs
                continue
            p = analysis.params[path]
            if spec.kind == "branch":
                total += runs + sum(size(node.regions[r], f"{path}{PATH_SEP}{r}{PATH_SEP}", runs)
                                    for r in ("then", "else"))
                continue
            length = None
            for n in control.with_role(node.regions["body"], control.BODY_INPUT,
                                       control.SEQUENCE.name):
                length = analysis.inputs[path][n.id].shape[p["dim"]]
            steps = loop_iterations(p, length)
            inside = size(node.regions["body"], f"{path}{PATH_SEP}body{PATH_SEP}", runs * steps)
            widest.append((inside, path))
            total += runs + inside
        return total

    total = size(graph, "", 1)
    return total, max(widest)[1] if widest else None


def _module(graph: Graph, analysis: Analysis, weights: Mapping[str, torch.Tensor] | None,
            seed: int) -> tuple[CompiledClass, nn.Module]:
    """The compiled module in eval mode: these weights, or fresh ones from `seed`."""
    compiled = compile_class(graph, analysis, tap=True)
    torch.manual_seed(seed)
    module = compiled.cls()
    if weights is not None:
        try:
            module.load_state_dict(dict(weights))
        except (RuntimeError, KeyError) as e:
            raise DeployError(f"the weights do not fit this graph: {_first_line(e)}") from None
    return compiled, module.eval()


def _names(graph: Graph, module: nn.Module) -> tuple[list[str], list[str]]:
    """The artifact's input names (the forward's arguments) and output names (Output ids)."""
    inputs = list(inspect.signature(module.forward).parameters)
    outputs = [n.id for n in graph.nodes if (spec := lookup(n.type)) and spec.kind == "output"]
    return inputs, outputs


# --- checking -------------------------------------------------------------------------------


def _check(graph: Graph, compiled: CompiledClass, module: nn.Module,
           run: Callable[..., list[torch.Tensor]], seed: int) -> tuple:
    """Run the artifact and the module on fresh inputs at each of CHECK_BATCHES (the largest
    batch chosen so that per-sample loops take different numbers of steps where they can),
    then on more small batches until every top-level hard branch has taken both sides (or
    MIXED_TRIES ran out). Returns the Check's batch sizes, largest difference, loop steps and
    branch sides; DeployError past TOLERANCE."""
    probe = _Probe(graph, compiled, module)
    worst, steps, sides = 0.0, {}, {name: set() for name in probe.branches}

    def compare(args: tuple[torch.Tensor, ...]) -> None:
        nonlocal worst
        size = len(args[0]) if args else 0
        # A block that samples in eval mode draws the same numbers in both (pt2 runs torch's
        # own ops), as long as both start from the same state of torch's generator.
        draws = torch.randint(2**31, ()).item()
        torch.manual_seed(draws)
        with torch.no_grad():
            want = module(*args)
        want = list(want) if isinstance(want, tuple) else [want]
        torch.manual_seed(draws)
        try:
            got = run(*args)
        except Exception as e:
            raise DeployError(f"the written model fails on a batch of {size}: "
                              f"{_first_line(e)}") from None
        worst = max(worst, _difference(want, got, size))

    if not example_inputs(graph, 1):   # a program without Inputs: one run says it all
        compare(())
        return (), worst, {}, {}

    sizes = list(CHECK_BATCHES)
    for size in CHECK_BATCHES:
        for attempt in range(MIXED_TRIES if probe.loops and size > 1 else 1):
            args = _random_inputs(graph, size, seed * 1009 + size * 31 + attempt)
            steps_here, taken = probe.observe(args)
            if all(lo != hi for lo, hi in steps_here.values()):
                break
        compare(args)
        steps = steps_here if size == max(CHECK_BATCHES) else steps
        for name, side in taken.items():
            sides[name].add(side)
    for attempt in range(MIXED_TRIES):
        if all(len(s) == 2 for s in sides.values()):
            break
        size = 1 + attempt % 4
        args = _random_inputs(graph, size, seed * 1009 + 7919 + attempt)
        _, taken = probe.observe(args)
        if any(side not in sides[name] for name, side in taken.items()):
            compare(args)
            sizes.append(size)
            for name, side in taken.items():
                sides[name].add(side)
    return tuple(sizes), worst, steps, {name: tuple(sorted(s)) for name, s in sides.items()}


def _difference(want: list[torch.Tensor], got: list[torch.Tensor], size: int) -> float:
    """The largest difference between two lists of outputs, scaled above magnitude 1;
    DeployError when they differ in count, shape or dtype, or by more than TOLERANCE."""
    if len(want) != len(got):
        raise DeployError(f"the written model gives {len(got)} outputs, the graph {len(want)}")
    worst = 0.0
    for k, (a, b) in enumerate(zip(want, got, strict=True)):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise DeployError(f"output {k} at batch {size}: the written model gives "
                              f"{tuple(b.shape)} {b.dtype}, the graph {tuple(a.shape)} {a.dtype}")
        if not a.is_floating_point():
            if not torch.equal(a.detach(), b.detach()):
                raise DeployError(f"output {k} at batch {size} differs from the graph's")
            continue
        a, b = a.detach().double(), b.detach().double()
        finite = torch.isfinite(a) & torch.isfinite(b)
        if not torch.equal(a[~finite].nan_to_num(), b[~finite].nan_to_num()) or \
                not torch.equal(a[~finite].isnan(), b[~finite].isnan()):
            raise DeployError(f"output {k} at batch {size}: NaN or Inf where the graph has none")
        diff = ((a - b).abs() / a.abs().clamp(min=1.0))[finite]
        worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
    if worst > TOLERANCE:
        raise DeployError(f"the written model differs from the graph by {worst:.3g} at batch "
                          f"{size} (tolerance {TOLERANCE:g}); nothing was written")
    return worst


def _random_inputs(graph: Graph, size: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Random inputs of this batch size, each sample's float values scaled by 0.3, 1 or 3
    (`compiler.vary`), so the samples of a batch differ in more than noise (and loops halt at
    different steps)."""
    generator = torch.Generator().manual_seed(seed)
    args = example_inputs(graph, size, generator=generator)
    scales = torch.tensor([0.3, 1.0, 3.0])[torch.randint(0, 3, (size,), generator=generator)]
    return vary(graph, args, scales)


class _Probe:
    """What the top-level control flow decided on a batch, read off the tapped forward: the
    steps each sample took in each per-sample while loop (its halt scores replayed through
    the generated loop's rule) and the side each hard branch took (its condition's mean)."""

    def __init__(self, graph: Graph, compiled: CompiledClass, module: nn.Module):
        self.compiled, self.module = compiled, module
        keys = {key: k for k, key in enumerate(compiled.generated.edge_keys)}
        self.loops: dict[str, tuple[int, float]] = {}     # node id → (halt tap, threshold)
        self.branches: dict[str, tuple[int, float]] = {}  # node id → (cond tap, threshold)
        for node in graph.nodes:
            spec = lookup(node.type)
            p = {**spec.defaults(), **node.params} if spec else {}
            if spec and spec.kind == "loop" and p["mode"] == control.WHILE.name \
                    and p["halt"] == "per_sample":
                body = node.regions["body"]
                halt = control.with_role(body, control.BODY_OUTPUT, control.HALT.name)[0]
                edge = next(e for e in body.edges if e.dst[0] == halt.id)
                key = f"{node.id}{PATH_SEP}body{PATH_SEP}{edge.key}"
                self.loops[node.id] = (keys[key], float(p["threshold"]))
            elif spec and spec.kind == "branch" and p["mode"] == control.HARD.name:
                edge = next(e for e in graph.edges if e.dst == (node.id, "cond"))
                self.branches[node.id] = (keys[edge.key], float(p["threshold"]))

    def observe(self, args: tuple[torch.Tensor, ...]
                ) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
        """(fewest, most) steps per loop, and "then" or "else" per branch, on this batch."""
        watched = {k for k, _ in [*self.loops.values(), *self.branches.values()]}
        if not watched:
            return {}, {}
        seen: dict[int, list[torch.Tensor]] = {k: [] for k in watched}

        def tap(k: int, value: torch.Tensor) -> torch.Tensor:
            if k in seen:
                seen[k].append(value.detach())
            return value

        with torch.no_grad():
            tapped_forward(self.compiled)(self.module, tap, *args)
        steps = {}
        for name, (k, threshold) in self.loops.items():
            running = torch.ones(len(args[0]), dtype=torch.bool)
            taken = torch.zeros(len(args[0]), dtype=torch.long)
            for score in seen[k]:
                taken += running
                running &= score.reshape(len(score), -1)[:, 0] <= threshold
            steps[name] = (int(taken.min()), int(taken.max()))
        sides = {name: "then" if bool(seen[k][0].mean() > threshold) else "else"
                 for name, (k, threshold) in self.branches.items()}
        return steps, sides


# --- quiet exporters --------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' own warnings and log lines (deprecations, 'torchvision is not
    installed', progress) kept off the user's terminal and out of warnings-as-errors tests;
    what matters reaches the user as DeployError or the check's numbers."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo",
                                                    "torch.fx.experimental.symbolic_shapes",
                                                    "onnxscript", "onnx_ir")]
    levels = [log.level for log in loggers]
    try:
        for log in loggers:
            log.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__
