"""The `dprog` subcommands: check, export, blocks, train.

    dprog check GRAPH                                 diagnostics, shapes, parameter counts
    dprog export GRAPH -o model.py                    the standalone PyTorch module
    dprog export GRAPH -o model.onnx [--weights W]    ONNX (or .pt2: torch.export), checked
    dprog blocks                                      the block library
    dprog train GRAPH [options]                       train headless (see `dprog train -h`)

`dprog` with no subcommand opens the studio; that entry point is `app.main`, the one place
allowed to import both the engine and the studio. `python -m engine.cli` runs the
subcommands alone (torchrun uses it).

Exit codes: 0 success; 1 the graph is invalid; 2 unreadable input or wrong usage;
3 training stopped on non-finite values. Bad input always gets one clear line, never a
Python traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..core.analysis import analyze
from ..core.codegen import export_python
from ..core.fileformat import atomic_write
from .common import EXIT_INVALID, EXIT_OK, Parser, fail, format_report, load

COMMANDS = ("check", "export", "blocks", "train")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        return fail("give a subcommand: " + ", ".join(COMMANDS) + " (the studio opens with "
                    "`dprog [GRAPH]`)")
    try:
        return {"check": cmd_check, "export": cmd_export, "blocks": cmd_blocks,
                "train": cmd_train}[argv[0]](argv[1:])
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:
        return EXIT_OK


def cmd_check(argv: Sequence[str]) -> int:
    parser = Parser(prog="dprog check", description="Validate a graph: diagnostics, shapes, "
                     "parameter counts. Exit 0 if valid, 1 if invalid, 2 if unreadable.")
    parser.add_argument("graph")
    args = parser.parse_args(argv)
    graph, code = load(args.graph)
    if graph is None:
        return code
    analysis = analyze(graph)
    print(format_report(args.graph, analysis, graph))
    return EXIT_OK if analysis.ok else EXIT_INVALID


FORMATS = ("python", "onnx", "pt2")


def cmd_export(argv: Sequence[str]) -> int:
    parser = Parser(prog="dprog export", description="Write the graph as a standalone PyTorch "
                     "module that imports only torch (python), an ONNX model (onnx) or a saved "
                     "torch.export program (pt2). onnx and pt2 have a dynamic batch dimension "
                     "and are checked against the compiled module before they are written; "
                     "a graph that cannot be exported faithfully is refused (exit 1).")
    parser.add_argument("graph")
    parser.add_argument("-o", "--output", default="-", help="file to write (default: stdout, "
                        "python only)")
    parser.add_argument("--format", choices=FORMATS, help="default: from the output's suffix "
                        "(.onnx, .pt2), else python")
    parser.add_argument("--weights", help="onnx and pt2: a weights.pt (a state_dict) or a run "
                        "folder holding one; default: fresh weights from the graph's seed")
    args = parser.parse_args(argv)
    fmt = args.format or {".onnx": "onnx", ".pt2": "pt2"}.get(Path(args.output).suffix, "python")
    if fmt != "python" and args.output == "-":
        return fail(f"--format {fmt} writes a file: give -o model.{fmt}")
    if fmt == "python" and args.weights:
        return fail("--weights goes with --format onnx or pt2; model.py holds no weights")
    graph, code = load(args.graph)
    if graph is None:
        return code
    analysis = analyze(graph)
    if not analysis.ok:
        print(format_report(args.graph, analysis, graph), file=sys.stderr)
        return EXIT_INVALID
    if fmt != "python":
        return _deploy(graph, args.output, fmt, args.weights)
    source = export_python(graph, analysis)
    if args.output == "-":
        sys.stdout.write(source)
        return EXIT_OK
    try:
        atomic_write(args.output, source.encode())
    except OSError as e:
        return fail(f"{args.output}: cannot write ({e.strerror or e})")
    print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


def _deploy(graph, output: str, fmt: str, weights_path: str | None) -> int:
    """`dprog export --format onnx|pt2`: write, check, report (engine.runtime.deploy)."""
    from ..core.config import TrainingConfig
    from ..runtime.deploy import DeployError, MissingDependency, deploy, load_weights

    try:
        weights = load_weights(weights_path) if weights_path else None
        seed = TrainingConfig.from_mapping(graph.training).seed if graph.training else 0
        check = deploy(graph, output, fmt, weights, seed=seed)
    except MissingDependency as e:
        return fail(str(e))
    except DeployError as e:
        return fail(f"{output}: not exported: {e}", EXIT_INVALID)
    except OSError as e:
        return fail(f"{output}: cannot write ({e.strerror or e})")
    print(check.summary(), file=sys.stderr)
    return EXIT_OK


def cmd_blocks(argv: Sequence[str]) -> int:
    parser = Parser(prog="dprog blocks", description="List the block library.")
    parser.add_argument("category", nargs="?", help="only this category")
    args = parser.parse_args(argv)
    from nodes import BLOCKS, CATEGORIES

    for category in CATEGORIES:
        if args.category and args.category.lower() != category.lower():
            continue
        print(f"{category}")
        for spec in (s for s in BLOCKS if s.category == category):
            print(f"  {spec.type:<22} {spec.doc}")
            for p in spec.params:
                rng = ""
                if p.choices:
                    rng = " one of " + "/".join(p.choices)
                elif p.min is not None or p.max is not None:
                    rng = f" in [{'' if p.min is None else f'{p.min:g}'}, " \
                          f"{'' if p.max is None else f'{p.max:g}'}]"
                print(f"      {p.name} ({p.kind}, default {p.default!r}{rng}): {p.doc}")
    return EXIT_OK


def cmd_train(argv: Sequence[str]) -> int:
    from .train import run

    return run(argv)
