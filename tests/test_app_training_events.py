"""The studio dispatches the trainer's events by type, through one table of the classes the
pure core defines: every event has its entry, and the dispatch needs no torch."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

from helpers import REPO, subprocess_env

from app.training import FAILED, RUNNING, STOPPED, TrainingRun, _StudioFailure, _StudioStopped
from engine.core.events import Event, Failed, Started, StepMetrics


def test_every_trainer_event_has_a_handler():
    handlers = TrainingRun().handlers
    assert set(get_args(Event)) | {_StudioStopped, _StudioFailure} == set(handlers)


def test_poll_applies_events_by_type():
    run = TrainingRun()
    run.events.put(Started(total_steps=10, steps_per_epoch=5, first_step=0, device="cpu",
                           task="classification", loss="cross_entropy", parameters=3))
    run.events.put(StepMetrics(step=1, epoch=1, loss=0.5, accuracy=None, lr=0.1))
    run.events.put(object())   # not an event: ignored
    assert run.poll() == 3
    assert (run.status, run.step, run.step_loss.y) == (RUNNING, 1, [0.5])
    run.events.put(Failed(step=1, kind="nonfinite", message="node fc: NaN", node="fc"))
    run.poll()
    assert (run.status, run.failed_node, run.failed_text) == (FAILED, "fc", "NaN")
    run.events.put(_StudioStopped())
    run.poll()
    assert run.status == STOPPED


def test_the_events_load_without_torch():
    script = ("import sys\nsys.modules['torch'] = None\nsys.modules['numpy'] = None\n"
              "import engine.core.events, app.training\nprint('OK')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, env=subprocess_env(), timeout=60)
    assert result.stdout.strip() == "OK", result.stderr
