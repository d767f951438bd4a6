"""`dprog`: the one entry point, the studio when no subcommand is given.

    dprog [GRAPH | --sample NAME] [--screenshot PATH [--frames N]] [--train]   the studio
    dprog check | export | blocks | train ...                 the engine's command line

It lives in `app/` because it is the one place allowed to import both the engine's command
line and the studio; `engine/` never imports `app/`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from engine.cli import COMMANDS
from engine.cli import main as engine_main
from engine.cli.common import Parser, fail


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return engine_main(argv)
    try:
        return open_studio(argv)
    except KeyboardInterrupt:
        return fail("interrupted", 130)


def open_studio(argv: Sequence[str]) -> int:
    from app.state import sample_names  # not at the top: `dprog check` needs none of app/

    parser = Parser(prog="dprog", description="dprog: a studio for differentiable programs. "
                    "Subcommands: " + ", ".join(COMMANDS) + " (see dprog SUBCOMMAND -h).")
    parser.add_argument("graph", nargs="?", help="graph file to open")
    parser.add_argument("--sample", metavar="NAME", help="open a bundled sample as File › Open "
                        "sample does: a copy, so Save asks where (" + ", ".join(sample_names())
                        + ")")
    parser.add_argument("--screenshot", metavar="PATH", help="render, save a PNG to PATH and exit")
    parser.add_argument("--frames", type=int, default=30, help="frames to render before the "
                        "screenshot (default 30)")
    parser.add_argument("--train", action="store_true", help="start training on open "
                        "(with --screenshot: capture mid-training)")
    args = parser.parse_args(argv)
    if args.graph and args.sample:
        return fail("give a graph file or --sample, not both")
    if args.graph and not Path(args.graph).exists():
        return fail(f"{args.graph}: no such file")
    if args.sample and args.sample not in sample_names():
        return fail(f"no sample called {args.sample!r}; the samples are "
                    + ", ".join(sample_names()))
    from app.studio import run

    return run(args.graph, screenshot=args.screenshot, frames=args.frames, train=args.train,
               sample=args.sample)


if __name__ == "__main__":
    raise SystemExit(main())
