"""A training run that fails inside a block, seen from the studio's state (no window):
`TrainingRun` records which node raised and what, `AppState.report_run_failure` turns it
into an error diagnostic on that node - inside a loop's body too - and the diagnostic lasts
until the graph is edited or the next run starts. Also: a run stopped while torch loads
ends without setting anything up, so closing the studio then does not wait for it.
(The same in the real window: tests/gui/test_studio_run_errors.py and test_studio_close.py.)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from failing_graphs import FAILING_NODE, token_reader, write_token_reader

import app.training as training
from app.commands import MoveNodes, SetParam, SetTraining
from app.recovery import Recovery
from app.state import AppState
from app.training import FAILED, STOPPED, TrainingRun


def state_for(graph, tmp_path: Path) -> AppState:
    return AppState(graph, recovery=Recovery(tmp_path / "state"))


def run_to_end(run: TrainingRun, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while run.active and time.monotonic() < deadline:
        run.poll()
        time.sleep(0.01)
    assert run.join(5.0), "the training thread is still alive"
    run.poll()


def test_the_run_names_the_block_that_raised(tmp_path: Path) -> None:
    path = write_token_reader(tmp_path)
    state = AppState(recovery=Recovery(tmp_path / "state"))
    assert state.open(path) and state.analysis.ok
    run = TrainingRun()
    run.start(state.graph, tmp_path)
    run_to_end(run)
    assert run.status == FAILED and run.failed_kind == "error"
    assert run.failed_node == FAILING_NODE
    assert run.failed_text.startswith("IndexError"), run.failed_text   # the node's name is off
    assert FAILING_NODE in run.message   # the status bar keeps the whole story
    assert state.report_run_failure(run.graph, run.failed_node, run.failed_text)
    (d,) = state.run_problems
    assert (d.code, d.node, d.severity) == ("run_error", FAILING_NODE, "error")


def test_the_error_sits_on_the_node_and_badges_its_loop(tmp_path: Path) -> None:
    graph = token_reader()
    state = state_for(graph, tmp_path)
    assert state.report_run_failure(graph, FAILING_NODE, "IndexError: index out of range")
    assert [d.code for d in state.diagnostics] == ["run_error"]   # the analysis had none
    assert [d.node for d in state.diagnostics_inside("reader")] == [FAILING_NODE]
    assert state.diagnostics_for("reader") == []
    assert state.enter_region("reader", "body")
    assert [d.code for d in state.diagnostics_for("lookup")] == ["run_error"]
    assert state.diagnostics_for("plus") == []
    assert state.analysis.ok, "a run's error does not make the graph invalid: Train again works"


def test_a_move_keeps_it_an_edit_clears_it_for_good(tmp_path: Path) -> None:
    graph = token_reader()
    state = state_for(graph, tmp_path)
    state.report_run_failure(graph, FAILING_NODE, "IndexError")
    shown = state.diagnostics
    assert state.do(MoveNodes(("reader", "body"), (("lookup", (999.0, 5.0)),)))
    assert state.run_problems and state.diagnostics == shown, "moving a block changes nothing"
    assert state.do(SetParam(("reader", "body"), "lookup", "num_embeddings", 20))
    assert not state.run_problems and not state.diagnostics
    assert state.undo() and state.undo()
    assert state.graph is graph and not state.run_problems, "undo does not bring old news back"


def test_training_settings_and_a_new_run_clear_it_too(tmp_path: Path) -> None:
    graph = token_reader()
    state = state_for(graph, tmp_path)
    state.report_run_failure(graph, FAILING_NODE, "IndexError")
    assert state.do(SetTraining((("batch_size", 16),)))
    assert not state.run_problems, "other data or settings may not fail the same way"
    state.report_run_failure(state.graph, FAILING_NODE, "IndexError")
    version = state.version
    state.clear_run_problems()
    assert not state.run_problems and state.version > version


def test_a_report_about_another_program_is_refused(tmp_path: Path) -> None:
    graph = token_reader()
    state = state_for(graph, tmp_path)
    assert state.do(SetParam(("reader", "body"), "lookup", "embedding_dim", 8))
    # The run trained the graph before that edit: its path may now mean something else.
    assert not state.report_run_failure(graph, FAILING_NODE, "IndexError")
    assert not state.run_problems
    assert not state.report_run_failure(state.graph, "reader/body/nope", "IndexError")
    assert not state.report_run_failure(state.graph, "reader/then/lookup", "IndexError")
    assert not state.run_problems


def test_a_stop_while_torch_loads_skips_the_setup(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker waits (here: on purpose) before building its trainer; a stop then must
    end the run without loading data or compiling."""
    stopped = threading.Event()
    real = training.config_for_studio

    def slow_config(graph):
        stopped.wait(10)   # "torch is still loading" until the studio has asked to stop
        return real(graph)

    monkeypatch.setattr(training, "config_for_studio", slow_config)
    path = write_token_reader(tmp_path)
    state = AppState(recovery=Recovery(tmp_path / "state"))
    assert state.open(path)
    run = TrainingRun()
    run.start(state.graph, tmp_path)
    run.stop()
    stopped.set()
    assert run.join(30.0)
    run.poll()
    assert run.status == STOPPED and run.message == "stopped before the first step"
    assert not run.trainer._ready, "the trainer was set up anyway"
