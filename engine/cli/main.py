"""The `dprog` subcommands: check, export, blocks, train, generate, import.

    dprog check GRAPH                                 diagnostics, shapes, parameter counts
    dprog export GRAPH -o model.py                    the standalone PyTorch module
    dprog export GRAPH -o model.onnx [--weights W]    ONNX (or .pt2: torch.export), checked
    dprog blocks [CATEGORY|TYPE]                      the block library: params and ports
    dprog train GRAPH [options]                       train headless (see `dprog train -h`)
    dprog runs GRAPH [--compare RUN RUN ...]          the graph's runs, branches, comparison
    dprog generate [GRAPH] --weights RUN --prompt T   text from a trained character model
    dprog import FILE.py:Class --input-shape 1,3,32,32 -o graph.json [--weights W.pt]
                                                      a PyTorch model as a graph (runs FILE.py)

`dprog` with no subcommand opens the studio; that entry point is `app.main`, the one place
allowed to import both the engine and the studio. `python -m engine.cli` runs the
subcommands alone (torchrun uses it).

Exit codes: 0 success; 1 the graph is invalid; 2 unreadable input or wrong usage;
3 training stopped on non-finite values; 4 a run folder could not be written while
training; 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP), with a
checkpoint to resume. Bad input always gets one clear line, never a Python traceback, and
anything printed from a file or a path is escaped (see engine/core/files.py).
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from ..core.analysis import analyze
from ..core.codegen import export_python
from ..core.fileformat import atomic_write
from ..core.files import shown
from ..core.limits import with_limits
from .common import EXIT_INVALID, EXIT_OK, Parser, fail, format_report, load
from .importing import cmd_import

COMMANDS = ("check", "export", "blocks", "train", "runs", "generate", "import")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        return fail("give a subcommand: " + ", ".join(COMMANDS) + " (the studio opens with "
                    "`dprog [GRAPH]`)")
    try:
        return {"check": cmd_check, "export": cmd_export, "blocks": cmd_blocks,
                "train": cmd_train, "runs": cmd_runs,
                "generate": cmd_generate, "import": cmd_import}[argv[0]](argv[1:])
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
    analysis = with_limits(graph, analyze(graph))
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
    analysis = with_limits(graph, analyze(graph))
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
    print(f"wrote {shown(args.output)}", file=sys.stderr)
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
    parser = Parser(prog="dprog blocks", description="List the block library: each block's "
                    "ports with their shapes, and its params.")
    parser.add_argument("which", nargs="?", metavar="CATEGORY|TYPE",
                        help="only this category, or only this block")
    args = parser.parse_args(argv)
    from nodes import BLOCKS, CATEGORIES, lookup

    which = (args.which or "").lower()
    single = lookup(which) if which else None
    if which and single is None and which not in (c.lower() for c in CATEGORIES):
        names = {c.lower(): c for c in CATEGORIES}
        close = difflib.get_close_matches(which, [*names, *(s.type for s in BLOCKS)], n=1)
        hint = f" (did you mean {names.get(close[0], close[0])!r}?)" if close else ""
        return fail(f"no block category or type {args.which!r}{hint}; the categories are "
                    + ", ".join(CATEGORIES))
    for category in CATEGORIES:
        if which and single is None and which != category.lower():
            continue
        specs = [s for s in BLOCKS if s.category == category and (single is None or s is single)]
        if not specs:
            continue
        print(f"{category}")
        for spec in specs:
            print(block_text(spec))
    return EXIT_OK


def block_text(spec) -> str:
    """A block as `dprog blocks` lists it: type and doc, ports with their shape rules, params."""
    from nodes.spec import port_text

    lines = [f"  {spec.type:<22} {spec.doc}"]
    inputs, outputs = port_text(spec)
    for side, ports in (("in", inputs), ("out", outputs)):
        for name, doc in ports:
            lines.append(f"      {side + ' ' + name:<16} {doc}")
    for p in spec.params:
        rng = ""
        if p.choices:
            rng = " one of " + "/".join(p.choices)
        elif p.min is not None or p.max is not None:
            rng = f" in [{'' if p.min is None else f'{p.min:g}'}, " \
                  f"{'' if p.max is None else f'{p.max:g}'}]"
        lines.append(f"      {p.name} ({p.kind}, default {p.default!r}{rng}): {p.doc}")
    return "\n".join(lines)


def cmd_train(argv: Sequence[str]) -> int:
    from .train import run

    return run(argv)


def cmd_runs(argv: Sequence[str]) -> int:
    parser = Parser(prog="dprog runs", description="List the runs of a graph (runs/ beside "
                    "the file; docs/runs.md): name, date, outcome, key settings, final "
                    "metrics, branches indented under their parent, damaged folders marked.")
    parser.add_argument("graph")
    parser.add_argument("--compare", nargs="+", metavar="RUN", help="two or more runs: the "
                        "settings that differ, the final metrics, the per-block gradient flow")
    parser.add_argument("--rename", nargs=2, metavar=("RUN", "NAME"), help="rename a run")
    parser.add_argument("--delete", metavar="RUN", help="delete a run folder")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    import json

    from ..core.runs import (
        RunError,
        compare_runs,
        delete_run,
        find_run,
        format_runs,
        list_runs,
        read_run,
        rename_run,
    )

    try:
        if args.rename:
            run = rename_run(find_run(args.graph, args.rename[0]), args.rename[1])
            print(f"renamed {shown(run.id)} to {shown(run.name)}")
            return EXIT_OK
        if args.delete:
            folder = find_run(args.graph, args.delete)
            delete_run(folder)
            print(f"deleted {shown(str(folder))}")
            return EXIT_OK
        if args.compare:
            if len(args.compare) < 2:
                return fail("--compare needs two or more runs")
            comparison = compare_runs(read_run(find_run(args.graph, r)) for r in args.compare)
            if args.json:
                print(json.dumps({"runs": comparison.runs, "settings": comparison.settings,
                                  "final": comparison.final, "gradflow": comparison.gradflow,
                                  "same_graph": comparison.same_graph}, indent=2))
            else:
                _print_lines(format_comparison(comparison))
            return EXIT_OK
    except (RunError, OSError) as e:
        return fail(shown(str(e)))
    runs = list_runs(args.graph)
    if args.json:
        print(json.dumps([{"id": r.id, "name": r.name, "created": r.created,
                           "outcome": r.outcome, "step": r.step, "parent": r.parent,
                           "final": r.final, "damaged": r.damaged, "legacy": r.legacy}
                          for r in runs], indent=2))
    elif not runs:
        print(f"no runs of {shown(args.graph)} yet (dprog train {shown(args.graph)} makes one)")
    else:
        _print_lines(format_runs(runs))
    return EXIT_OK


def _print_lines(text: str) -> None:
    """Each line escaped on its own (names and messages come from files), the breaks kept."""
    print("\n".join(shown(line) for line in text.splitlines()))


def format_comparison(c) -> str:
    """The comparison as three small tables: settings that differ, final metrics, gradient flow."""
    def cell(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)

    width = max(12, *(len(r) for r in c.runs))
    head = f"{'':<24}" + "".join(f"{r:>{width + 2}}" for r in c.runs)
    lines = [head, "settings that differ:" if c.settings else "same settings"]
    lines += [f"  {k:<22}" + "".join(f"{cell(v):>{width + 2}}" for v in vs)
              for k, vs in c.settings.items()]
    lines.append("final metrics:")
    lines += [f"  {k:<22}" + "".join(f"{cell(v):>{width + 2}}" for v in vs)
              for k, vs in c.final.items()]
    if c.gradflow:
        lines.append("gradient RMS per block (mean over snapshots; last/first as log10):")
        diff = c.gradflow_difference()
        lines += [f"  {k:<22}" + "".join(f"{cell(v):>{width + 2}}" for v in vs)
                  + f"   {cell(diff[k])}" for k, vs in c.gradflow.items()]
    elif not c.same_graph:
        lines.append("(different graph versions: no per-block gradient-flow comparison)")
    return "\n".join(lines)


def cmd_generate(argv: Sequence[str]) -> int:
    parser = Parser(prog="dprog generate", description="Write text with a character model "
                    "trained on the text dataset (char_gpt.json): the prompt, then what the "
                    "model writes after it.")
    parser.add_argument("graph", nargs="?", help="graph file (default: the run folder's "
                        "graph.json)")
    parser.add_argument("--weights", required=True, metavar="RUN",
                        help="a training run folder, or a weights.pt file")
    parser.add_argument("--prompt", default="", help="the text to continue")
    parser.add_argument("--length", type=int, default=200, help="characters to write")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="sampling temperature; 0 takes the likeliest character")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from pathlib import Path

    source = args.graph or str(Path(args.weights) / "graph.json")
    graph, code = load(source)
    if graph is None:
        return code
    from ..runtime.compiler import compile_graph
    from ..runtime.generate import GenerateError, generate_text, load_weights, text_model

    try:
        text_model(graph)
    except GenerateError as e:
        return fail(f"{source}: {e}", EXIT_INVALID)
    module = compile_graph(graph)
    try:
        load_weights(module, args.weights)
        text = generate_text(graph, module, args.prompt, args.length,
                             temperature=args.temperature, seed=args.seed)
    except GenerateError as e:
        return fail(str(e))
    print(args.prompt + text)
    return EXIT_OK
