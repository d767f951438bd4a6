"""Profile mode names its torch.profiler ranges after the blocks (engine/runtime/profile.py):
a trace of a profiled step shows each block's forward and backward under its node's name,
and a step that is not profiled opens none."""

from __future__ import annotations

import torch
from helpers import moons_graph

from engine.runtime.profile import BACKWARD, FORWARD
from engine.runtime.trainer import Trainer


def ranges(trainer: Trainer) -> set[str]:
    index = torch.arange(trainer.rank_batch)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        trainer.train_step(index)
    return {e.name for e in prof.events() if e.name.startswith(("dprog.",))}


def test_profiled_steps_name_their_ranges_after_the_blocks():
    trainer = Trainer(moons_graph(gradflow_every=0))
    trainer.setup()
    assert ranges(trainer) == set()            # off: nothing is tapped, no range opened
    trainer.set_profile(True)
    names = ranges(trainer)
    assert {FORWARD + n for n in ("fc1", "act", "fc2")} <= names
    assert {BACKWARD + n for n in ("fc1", "act")} <= names
