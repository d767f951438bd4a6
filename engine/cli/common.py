"""What every `dprog` subcommand shares: exit codes, the one-line usage error, the report.

Everything printed that came from a file or a path (names, labels, CSV headers, messages
quoting them) goes through `shown`, so escape sequences and newlines in it are printed as
`\x1b` and `\n`: they can neither drive the terminal nor split a line or the table.

May import the pure core only; the commands themselves import the runtime when they run.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from nodes import lookup

from ..core.analysis import Analysis
from ..core.fileformat import GraphFileError, load_graph
from ..core.files import shown

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_NONFINITE = 0, 1, 2, 3


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, as argparse does, without the noise
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print one line, `dprog: MESSAGE`, on stderr and return `code`. A terminal that went
    away (SIGHUP, a closed pipe) cannot turn the failure into a traceback."""
    with contextlib.suppress(OSError):
        print(f"dprog: {shown(message)}", file=sys.stderr, flush=True)
    return code


def load(path: str):
    try:
        return load_graph(path), None
    except GraphFileError as e:
        return None, fail(str(e))


def format_report(name: str, analysis: Analysis, graph) -> str:
    """Diagnostics, then one row per node: block, output shapes, parameters."""
    lines = []
    status = "valid" if analysis.ok else f"INVALID ({len(analysis.errors)} errors)"
    lines.append(f"{shown(name)}: {status}, {analysis.total_params:,} parameters")
    for d in analysis.diagnostics:
        lines.append(f"  {shown(d)}")
    rows = []
    for path, node in graph.walk():
        spec = lookup(node.type)
        outs = analysis.outputs.get(path, {})
        shapes = ", ".join(str(t) for t in outs.values()) or "-"
        count = analysis.param_counts.get(path)
        rows.append((path, spec.title if spec else shown(f"?{node.type}"), shapes,
                     f"{count:,}" if count else ""))
    if rows:
        widths = [max(len(r[i]) for r in [*rows, ("node", "block", "output", "params")])
                  for i in range(4)]
        header = ("node", "block", "output", "params")
        for r in [header, *rows]:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=False))
                         + "  " + r[3].rjust(widths[3]))
    return "\n".join(lines)


