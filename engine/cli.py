"""The `dprog` command line.

    dprog [GRAPH] [--screenshot PATH [--frames N]]   open the studio
    dprog check GRAPH                                 diagnostics, shapes, parameter counts
    dprog export GRAPH -o model.py                    the standalone PyTorch module
    dprog blocks                                      the block library
    dprog train GRAPH [options]                       train headless (see `dprog train -h`)

Exit codes: 0 success; 1 the graph is invalid; 2 unreadable input or wrong usage;
3 training stopped on non-finite values. Bad input always gets one clear line, never a
Python traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .analysis import Analysis, analyze
from .fileformat import GraphFileError, atomic_write, load_graph

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_NONFINITE = 0, 1, 2, 3
COMMANDS = ("check", "export", "blocks", "train")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, as argparse does, without the noise
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"dprog: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            return {"check": cmd_check, "export": cmd_export, "blocks": cmd_blocks,
                    "train": cmd_train}[argv[0]](argv[1:])
        return cmd_studio(argv)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:
        return EXIT_OK


def _load(path: str):
    try:
        return load_graph(path), None
    except GraphFileError as e:
        return None, fail(str(e))


def format_report(name: str, analysis: Analysis, graph) -> str:
    """Diagnostics, then one row per node: block, output shapes, parameters."""
    lines = []
    status = "valid" if analysis.ok else f"INVALID ({len(analysis.errors)} errors)"
    lines.append(f"{name}: {status}, {analysis.total_params:,} parameters")
    for d in analysis.diagnostics:
        lines.append(f"  {d}")
    rows = []
    from nodes import lookup

    for path, node in graph.walk():
        spec = lookup(node.type)
        outs = analysis.outputs.get(path, {})
        shapes = ", ".join(str(t) for t in outs.values()) or "-"
        count = analysis.param_counts.get(path)
        rows.append((path, spec.title if spec else f"?{node.type}", shapes,
                     f"{count:,}" if count else ""))
    if rows:
        widths = [max(len(r[i]) for r in [*rows, ("node", "block", "output", "params")])
                  for i in range(4)]
        header = ("node", "block", "output", "params")
        for r in [header, *rows]:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=False))
                         + "  " + r[3].rjust(widths[3]))
    return "\n".join(lines)


def cmd_check(argv: Sequence[str]) -> int:
    parser = _Parser(prog="dprog check", description="Validate a graph: diagnostics, shapes, "
                     "parameter counts. Exit 0 if valid, 1 if invalid, 2 if unreadable.")
    parser.add_argument("graph")
    args = parser.parse_args(argv)
    graph, code = _load(args.graph)
    if graph is None:
        return code
    analysis = analyze(graph)
    print(format_report(args.graph, analysis, graph))
    return EXIT_OK if analysis.ok else EXIT_INVALID


def cmd_export(argv: Sequence[str]) -> int:
    parser = _Parser(prog="dprog export", description="Write the graph as a standalone PyTorch "
                     "module that imports only torch.")
    parser.add_argument("graph")
    parser.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    graph, code = _load(args.graph)
    if graph is None:
        return code
    analysis = analyze(graph)
    if not analysis.ok:
        print(format_report(args.graph, analysis, graph), file=sys.stderr)
        return EXIT_INVALID
    from .codegen import generate

    source = generate(graph, analysis).source
    if args.output == "-":
        sys.stdout.write(source)
        return EXIT_OK
    try:
        atomic_write(args.output, source.encode())
    except OSError as e:
        return fail(f"{args.output}: cannot write ({e.strerror or e})")
    print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_blocks(argv: Sequence[str]) -> int:
    parser = _Parser(prog="dprog blocks", description="List the block library.")
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
    from .train_cli import run

    return run(argv)


def cmd_studio(argv: Sequence[str]) -> int:
    parser = _Parser(prog="dprog", description="dprog: a studio for differentiable programs. "
                     "Subcommands: " + ", ".join(COMMANDS) + " (see dprog SUBCOMMAND -h).")
    parser.add_argument("graph", nargs="?", help="graph file to open")
    parser.add_argument("--screenshot", metavar="PATH", help="render, save a PNG to PATH and exit")
    parser.add_argument("--frames", type=int, default=30, help="frames to render before the "
                        "screenshot (default 30)")
    parser.add_argument("--train", action="store_true", help="start training on open "
                        "(with --screenshot: capture mid-training)")
    args = parser.parse_args(argv)
    if args.graph and not Path(args.graph).exists():
        return fail(f"{args.graph}: no such file")
    from app.studio import run

    return run(args.graph, screenshot=args.screenshot, frames=args.frames, train=args.train)


if __name__ == "__main__":
    raise SystemExit(main())
