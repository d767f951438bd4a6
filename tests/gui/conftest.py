"""The real-window tests' shared fixture: one private Xvfb screen per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import VirtualScreen


@pytest.fixture(scope="module")
def screen() -> Iterator[VirtualScreen]:
    with VirtualScreen() as screen:
        yield screen
