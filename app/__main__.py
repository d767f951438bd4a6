"""`python -m app [GRAPH] [--screenshot PATH] [--frames N] [--train]`: the studio, as `dprog`."""

from app.main import main

raise SystemExit(main())
