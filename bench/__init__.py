"""dprog's benchmark suite: `python -m bench [--quick | --smoke]` (see bench/README.md).

Every figure is a median over repeated runs, and every comparison is interleaved within one
process (or one script driving subprocesses), so the noise of a shared machine falls on both
sides of a ratio alike.
"""
