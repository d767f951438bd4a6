"""A monkey at the studio: thousands of random edits through AppState, checking invariants
after every step (the actions and the checks are in tests/monkey.py, shared with the
real-window monkey in tests/gui/test_studio_monkey.py).

CI runs 2,000 steps (a few seconds). For a long run:
    DPROG_MONKEY_STEPS=200000 DPROG_MONKEY_SEED=7 pytest tests/test_app_monkey.py
"""

from __future__ import annotations

import os

import pytest
from monkey import Monkey

STEPS = int(os.environ.get("DPROG_MONKEY_STEPS", "2000"))
SEED = int(os.environ.get("DPROG_MONKEY_SEED", "0"))


def test_monkey(tmp_path):
    monkey = Monkey(SEED, tmp_path)
    for k in range(STEPS):
        try:
            monkey.step(k)
        except AssertionError:
            print(f"seed {SEED}, step {k}, status {monkey.state.status!r}")
            raise
    monkey.check_history()
    # The run did exercise the interesting paths.
    done = {key.split(":")[0] for key, n in monkey.counts.items() if key.endswith(":True")}
    assert {"add", "connect", "param", "delete", "undo", "redo", "copy_paste"} <= done, monkey.counts
    refused = {key.split(":")[0] for key in monkey.counts if key.endswith(":False")}
    assert {"add", "connect", "param"} <= refused, monkey.counts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_short_monkeys_with_other_seeds(seed, tmp_path):
    monkey = Monkey(seed, tmp_path)
    for k in range(300):
        monkey.step(k)
    monkey.check_history()
