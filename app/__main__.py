"""`python -m app [GRAPH] [--screenshot PATH] [--frames N] [--train]`: the studio, as `dprog`."""

from engine.cli import main

raise SystemExit(main())
