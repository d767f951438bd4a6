"""Shared fixtures: the repo on sys.path, the sample graphs loaded once per session, and one
torch thread for the training tests."""

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


@pytest.fixture(scope="module")
def one_torch_thread():
    """The training tests' models are tiny: one thread trains them faster, and keeps a busy
    machine calm. Opt in per module with `pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
