"""The command line: `dprog check | export | blocks | train`.

May import the whole engine (the core at import time; the runtime, and torch, only when a
command needs it) and `nodes`, never `app`. The studio's entry point, `app.main`, calls
`main` for every subcommand.
"""

from .main import COMMANDS, main

__all__ = ["COMMANDS", "main"]
