"""Shared fixtures: the repo on sys.path, and the sample graphs loaded once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def samples() -> dict:
    """name -> Graph for every file in sample_graphs/."""
    from engine import load_graph

    return {p.stem: load_graph(p) for p in sorted((REPO / "sample_graphs").glob("*.json"))}
