"""Feed one graph file through everything a stranger's file can reach, and judge the outcome.

Allowed outcomes, and only these:
- "unreadable": loading raised `GraphFileError` (a ValueError) with a one-line message, and
  `dprog check` exits 2 without a traceback;
- "invalid": the graph loaded, validation returned error diagnostics, and `dprog check`
  exits 1;
- "ok": the graph validated, compiled, and its forward pass on `example_inputs` (batch 2)
  ran and returned tensors of exactly the shapes and dtypes the analysis promised; the
  graph survives a save/load round trip, and `dprog check` exits 0. One refusal at run time
  counts as ok too: a block whose inputs must be probabilities (its spec's `unit_inputs`,
  BCE's) given other values, which torch checks only then; the error names that block.

Anything else raises `FuzzBug` naming the stage: an uncaught exception anywhere, a valid
graph that fails to compile or run, a shape the analysis got wrong, a round trip that
changes the graph, or a CLI that prints a traceback or the wrong exit code.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from engine.core.analysis import analyze, validate
from engine.core.fileformat import GraphFileError, dumps, load_graph, loads
from nodes import lookup
from nodes.types import BATCH

BATCH_SIZE = 2


class FuzzBug(Exception):
    """A case whose outcome is not one of the allowed three."""

    def __init__(self, stage: str, detail: str):
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.detail = detail


class CaseTimeout(BaseException):
    """Raised by the alarm when one case runs past its limit (BaseException: nothing in the
    engine may swallow it)."""


@dataclass
class Outcome:
    kind: str            # "unreadable" | "invalid" | "ok"
    detail: str = ""     # the load error, the first error code, or the output shapes


def _crash(stage: str, exc: BaseException) -> FuzzBug:
    tb = "".join(traceback.format_exception(exc, limit=-4))
    return FuzzBug(stage, f"{type(exc).__name__}: {str(exc)[:300]}\n{tb[-1500:]}")


def load_stage(text: str | None, data: bytes | None = None, *, tmpdir: Path | None = None):
    """Load through `loads` (text) and `load_graph` (a file); both must agree."""
    graph, error = None, None
    if text is not None and data is None:
        try:
            graph = loads(text, "<fuzz>")
        except GraphFileError as e:
            error = e
        except CaseTimeout:
            raise
        except BaseException as e:
            raise _crash("load(text)", e) from None
    if tmpdir is not None:
        path = tmpdir / "case.json"
        path.write_bytes(data if data is not None else text.encode("utf-8", "surrogatepass"))
        try:
            from_file = load_graph(path)
            file_error = None
        except GraphFileError as e:
            from_file, file_error = None, e
        except CaseTimeout:
            raise
        except BaseException as e:
            raise _crash("load(file)", e) from None
        if text is not None and data is None and (error is None) != (file_error is None):
            raise FuzzBug("load(file)", f"loads said {error!r}, load_graph said {file_error!r}")
        if data is not None:
            graph, error = from_file, file_error
    if error is not None:
        message = str(error)
        if not message or "\n" in message or "Traceback" in message:
            raise FuzzBug("load", f"unclear GraphFileError message {message[:200]!r}")
    return graph, error


def expected_outputs(graph, analysis) -> list[tuple[tuple[int, ...], str]]:
    """(shape, dtype) of each value forward() returns, in order, from the analysis."""
    out = []
    for n in graph.nodes:
        spec = lookup(n.type)
        if spec is not None and spec.kind == "output":
            t = analysis.inputs[n.id]["x"]
            out.append((tuple(BATCH_SIZE if d == BATCH else d for d in t.shape), t.dtype))
    return out


def run_stage(graph, analysis) -> str:
    import torch

    from engine.core.codegen import generate
    from engine.runtime.compiler import compile_graph, example_inputs

    try:
        source = generate(graph, analysis).source
        compile(source, "<fuzz-export>", "exec")
    except CaseTimeout:
        raise
    except BaseException as e:
        raise _crash("generate", e) from None
    try:
        module = compile_graph(graph, analysis)
    except CaseTimeout:
        raise
    except BaseException as e:
        raise _crash("compile", e) from None
    try:
        inputs = example_inputs(graph, BATCH_SIZE, generator=torch.Generator().manual_seed(0))
        result = module(*inputs)
    except CaseTimeout:
        raise
    except BaseException as e:
        if _outside_unit_domain(graph, e):
            return "values outside [0, 1] for a block of probabilities"
        raise _crash("forward", e) from None
    got = list(result) if isinstance(result, tuple) else [result]
    want = expected_outputs(graph, analysis)
    dtypes = {"float": torch.float32, "long": torch.int64, "bool": torch.bool}
    if len(got) != len(want) or any(
            not isinstance(g, torch.Tensor) or tuple(g.shape) != s or g.dtype != dtypes[d]
            for g, (s, d) in zip(got, want, strict=False)):
        shown = [(tuple(g.shape), str(g.dtype)) if isinstance(g, torch.Tensor) else type(g).__name__
                 for g in got]
        raise FuzzBug("shapes", f"analysis promised {want}, forward returned {shown}")
    return ", ".join(str(s) for s, _ in want)


def _outside_unit_domain(graph, error: BaseException) -> bool:
    """Whether `error` is torch refusing values outside [0, 1] at a block whose spec says its
    inputs must lie there (the one runtime refusal a valid graph may meet: the values are
    data, which validation cannot see)."""
    from engine.runtime.compiler import node_for_exception

    path = node_for_exception(error)
    nodes = dict(graph.walk())
    spec = lookup(nodes[path].type) if path in nodes else None
    return (isinstance(error, RuntimeError) and spec is not None and bool(spec.unit_inputs)
            and "between 0 and 1" in str(error))


def roundtrip_stage(graph) -> None:
    """Saving a loaded graph works, and saving what that loads gives the same text (positions
    are rounded on save, so compare the second save with the first)."""
    try:
        first = dumps(graph)
        again = dumps(loads(first, "<roundtrip>"))
    except CaseTimeout:
        raise
    except BaseException as e:
        raise _crash("roundtrip", e) from None
    if again != first:
        raise FuzzBug("roundtrip", "save, load, save changed the file")


def cli_stage(path: Path, expected_code: int) -> None:
    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", str(path)])
    except SystemExit as e:   # argparse's exits are fine; none is expected here
        code = e.code
    except CaseTimeout:
        raise
    except BaseException as e:
        raise _crash("cli", e) from None
    text = out.getvalue() + err.getvalue()
    if "Traceback" in text:
        raise FuzzBug("cli", f"printed a traceback:\n{text[-1500:]}")
    if code != expected_code:
        raise FuzzBug("cli", f"exit {code}, expected {expected_code}: {text[-500:]}")
    if expected_code == 2 and len(err.getvalue().strip().splitlines()) != 1:
        raise FuzzBug("cli", f"an unreadable file should get one line on stderr: {err.getvalue()!r}")


def run_case(text: str | None, data: bytes | None = None, *, cli: bool = True,
             files: bool = True, roundtrip: bool = True, forward: bool = True) -> Outcome:
    """Judge one graph file; raises FuzzBug for anything but the three allowed outcomes.

    `files`, `cli` and `roundtrip` switch off the slower extra routes (each loads the file
    again) for runs that sample them instead."""
    with tempfile.TemporaryDirectory(prefix="dprog-fuzz-") as tmp:
        tmpdir = Path(tmp) if (files or cli or data is not None) else None
        graph, error = load_stage(text, data, tmpdir=tmpdir)
        if error is not None:
            if cli:
                cli_stage(tmpdir / "case.json", 2)
            return Outcome("unreadable", str(error).split(": ", 2)[-1][:60])
        try:
            analysis = analyze(graph)
            diagnostics = validate(graph)
        except CaseTimeout:
            raise
        except BaseException as e:
            raise _crash("validate", e) from None
        if [str(d) for d in diagnostics] != [str(d) for d in analysis.diagnostics]:
            raise FuzzBug("validate", "validate() and analyze() disagree")
        if roundtrip:
            roundtrip_stage(graph)
        if not analysis.ok:
            if cli:
                cli_stage(tmpdir / "case.json", 1)
            return Outcome("invalid", analysis.errors[0].code)
        detail = run_stage(graph, analysis) if forward else ""
        if cli:
            cli_stage(tmpdir / "case.json", 0)
        return Outcome("ok", detail)


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise CaseTimeout in the main thread after `seconds` (SIGALRM; POSIX only)."""
    def expired(signum, frame):
        raise CaseTimeout(f"case ran past {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def judge(text: str | None, data: bytes | None = None, *, seconds: float = 30.0, **kwargs) -> Outcome:
    """`run_case` under a time limit; a timeout is a bug (a hang) too."""
    try:
        with time_limit(seconds):
            return run_case(text, data, **kwargs)
    except CaseTimeout as e:
        raise FuzzBug("hang", str(e)) from None


def quiet_torch() -> None:
    """One thread per process: the fuzzer runs cases in parallel processes instead."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
