"""`python -m engine.cli SUBCOMMAND ...`: the subcommands without the studio (torchrun uses it)."""

from engine.cli import main

raise SystemExit(main())
