"""The `dprog` subcommands: check, export, blocks, train.

    dprog check GRAPH                                 diagnostics, shapes, parameter counts
    dprog export GRAPH -o model.py                    the standalone PyTorch module
    dprog blocks [CATEGORY|TYPE]                      the block library
    dprog train GRAPH [options]                       train headless (see `dprog train -h`)

`dprog` with no subcommand opens the studio; that entry point is `app.main`, the one place
allowed to import both the engine and the studio. `python -m engine.cli` runs the
subcommands alone (torchrun uses it).

Exit codes: 0 success; 1 the graph is invalid; 2 unreadable input or wrong usage;
3 training stopped on non-finite values. Bad input always gets one clear line, never a
Python traceback.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence

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


def cmd_export(argv: Sequence[str]) -> int:
    parser = Parser(prog="dprog export", description="Write the graph as a standalone PyTorch "
                     "module that imports only torch.")
    parser.add_argument("graph")
    parser.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    graph, code = load(args.graph)
    if graph is None:
        return code
    analysis = analyze(graph)
    if not analysis.ok:
        print(format_report(args.graph, analysis, graph), file=sys.stderr)
        return EXIT_INVALID
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


def cmd_blocks(argv: Sequence[str]) -> int:
    parser = Parser(prog="dprog blocks", description="List the block library: all of it, one "
                    "category, or one block.")
    parser.add_argument("category", nargs="?", help="only this category (or this block type)")
    args = parser.parse_args(argv)
    from nodes import BLOCKS, CATEGORIES

    wanted = args.category.lower() if args.category else None
    categories = [c for c in CATEGORIES if wanted in (None, c.lower())]
    specs = [s for s in BLOCKS if s.category in categories]
    if not categories:
        specs = [s for s in BLOCKS if s.type.lower() == wanted]
        categories = [s.category for s in specs]
    if not specs:
        names = {c.lower(): c for c in CATEGORIES}
        close = difflib.get_close_matches(wanted, [*names, *(s.type for s in BLOCKS)], n=1)
        hint = f" (did you mean {names.get(close[0], close[0])!r}?)" if close else ""
        return fail(f"no block category or type {args.category!r}{hint}; the categories are "
                    + ", ".join(CATEGORIES))
    for category in categories:
        print(f"{category}")
        for spec in (s for s in specs if s.category == category):
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
