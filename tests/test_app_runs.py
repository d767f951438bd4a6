"""The studio's run history (issue 17, app side): every Train is kept beside the graph, and
the Runs tab's actions (rename, delete, reopen, continue, branch, compare) and live edits,
through `app.runs.RunHistory` and `app.training.TrainingRun`, without a window."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from app.commands import SetParam
from app.recovery import Recovery
from app.runs import RunHistory
from app.state import AppState
from app.training import FINISHED, PAUSED, RUNNING, STOPPED, TrainingRun
from engine.core.fileformat import dumps, save_graph
from engine.core.runs import list_runs, read_run, read_steps
from tests.helpers import moons_graph

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_to_end(run: TrainingRun, timeout: float = 120.0) -> None:
    """Drain the run's events until it ends (the ceiling is only for when something hangs)."""
    wait(run, lambda: not run.active, "the run to end", timeout)
    assert run.join(5.0), "the training thread is still alive"
    run.poll()


def wait(run: TrainingRun, done, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"waited too long for {what}: {run.message}"
        run.poll()
        time.sleep(0.005)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[AppState, RunHistory]:
    path = tmp_path / "tiny.json"
    save_graph(moons_graph(gradflow_every=2), path)
    state = AppState(recovery=Recovery(tmp_path / "state"))
    assert state.open(path)
    history = RunHistory(state)
    history.refresh()
    return state, history


def train(history: RunHistory) -> TrainingRun:
    run = TrainingRun()
    assert history.train(run)
    run_to_end(run)
    history.refresh(force=True)
    return run


def test_a_studio_run_of_a_saved_graph_is_kept_beside_it(saved) -> None:
    state, history = saved
    run = train(history)
    assert run.status == FINISHED
    assert Path(run.record_folder) == state.file.parent / "runs" / "tiny-1"
    assert "kept as tiny-1" in run.message
    (info,) = list_runs(state.file)
    assert info.outcome == "finished" and info.final["val_loss"] is not None
    assert json.loads((info.folder / "run.json").read_text())["graph"]["text"] == \
        state.file.read_text()
    assert len(read_steps(info.folder)) == 14   # 2 epochs of 7 steps
    assert [r.id for r in history.rows()] == ["tiny-1"]


def test_an_edited_graph_is_kept_as_saving_would_write_it(saved) -> None:
    state, history = saved
    assert state.do(SetParam((), "fc1", "out_features", 8)) and state.dirty
    train(history)
    (info,) = list_runs(state.file)
    assert json.loads((info.folder / "run.json").read_text())["graph"]["text"] == \
        dumps(state.graph)


def test_an_untitled_graph_trains_and_says_it_is_not_kept(tmp_path: Path) -> None:
    state = AppState(moons_graph(), recovery=Recovery(tmp_path / "state"))
    history = RunHistory(state)
    run = train(history)
    assert run.status == FINISHED and run.record_folder is None
    assert "save the graph to keep its runs" in run.message
    assert history.rows() == [] and not list(tmp_path.glob("**/run.json"))
    assert not history.branch_from("tiny-1")


def test_rename_delete_and_damaged_rows(saved) -> None:
    state, history = saved
    train(history)
    damaged = state.file.parent / "runs" / "tiny-2"
    damaged.mkdir()
    (damaged / "run.json").write_text("{half")
    history.refresh(force=True)
    rows = {r.id: r for r in history.rows()}
    assert rows["tiny-2"].damaged and rows["tiny-2"].outcome == "damaged"
    assert "lr 0.05" in rows["tiny-1"].settings and "acc" in rows["tiny-1"].final
    assert history.rename("tiny-1", "baseline")
    assert read_run(state.file.parent / "runs" / "tiny-1").name == "baseline"
    assert not history.rename("tiny-2", "x") and "damaged" in state.status
    assert not history.rename("tiny-1", "") and history.run("tiny-1").name == "baseline"
    # Deleting asks first; cancelling keeps the folder.
    assert history.ask_delete("tiny-1") and history.deleting == "tiny-1"
    history.cancel_delete()
    assert (state.file.parent / "runs" / "tiny-1").is_dir()
    assert history.ask_delete("tiny-2") and history.confirm_delete()   # damaged ones go too
    assert [r.id for r in history.rows()] == ["tiny-1"] and not damaged.exists()


def test_reopen_opens_the_run_graph_version_as_an_untitled_copy(saved) -> None:
    state, history = saved
    train(history)
    trained = state.graph
    assert state.do(SetParam((), "fc1", "out_features", 4))
    assert history.reopen("tiny-1")
    assert state.file is None and not state.dirty
    assert state.graph.node("fc1").params["out_features"] == 16
    assert state.graph.nodes == trained.nodes
    assert "run tiny-1" in state.title


def test_compare_two_runs_with_different_learning_rates(saved) -> None:
    state, history = saved
    train(history)
    from app.commands import SetTraining

    assert state.do(SetTraining((("lr", 0.01),)))
    train(history)
    history.select("tiny-1")
    history.select("tiny-2")
    assert history.compare()
    c = history.comparison
    assert c.settings["lr"] == (0.05, 0.01) and "val_loss" in c.final
    assert not c.same_graph and c.gradflow   # other bytes (the settings), the same model
    assert [k.id for k in history.curves] == ["tiny-1", "tiny-2"]
    assert all(len(k.step_loss[0]) == 14 and k.val_acc[1] for k in history.curves)
    history.clear_comparison()
    assert history.curves == [] and history.comparison is None


def test_compare_runs_of_one_graph_version_gives_the_gradient_flow_difference(saved) -> None:
    _, history = saved
    train(history)
    assert history.branch_from("tiny-1")
    train(history)
    assert history.compare(["tiny-1", "tiny-2"])
    c = history.comparison
    # Different bytes (the epochs are in the file) but the same blocks and wires.
    assert not c.same_graph and c.settings == {"epochs": (2, 4)}
    assert set(c.gradflow) >= {"fc1", "fc2"} and all(None not in v for v in c.gradflow.values())
    assert isinstance(c.gradflow_difference()["fc1"], float)


def test_branch_starts_a_new_run_from_the_checkpoint_with_changed_settings(saved) -> None:
    state, history = saved
    train(history)
    from app.commands import SetTraining

    assert history.branch_from("tiny-1")
    assert history.pending.step == 14 and not history.pending.continue_run
    assert state.do(SetTraining((("lr", 0.002),)))
    run = train(history)
    assert Path(run.record_folder).name == "tiny-2" and history.pending is None
    child = history.run("tiny-2")
    assert (child.parent, child.parent_step, child.config["lr"]) == ("tiny-1", 14, 0.002)
    assert [(r.id, r.depth) for r in history.rows()] == [("tiny-1", 0), ("tiny-2", 1)]
    # It went on from the checkpoint, for as long again.
    assert [s["step"] for s in read_steps(child.folder)] == list(range(15, 29))


def test_continue_goes_on_in_the_run_own_folder(saved) -> None:
    state, history = saved
    train(history)
    assert history.continue_from("tiny-1")
    assert state.graph.training["epochs"] == 4   # a finished run goes on for as long again
    state.undo()   # the settings change is undoable...
    assert state.graph.training["epochs"] == 2
    state.redo()
    run = train(history)
    assert Path(run.record_folder).name == "tiny-1"
    (info,) = history.runs
    assert info.continued and info.step == 28 and info.outcome == "finished"
    assert [s["step"] for s in read_steps(info.folder)] == list(range(1, 29))


def test_continue_and_branch_are_refused_without_a_checkpoint(saved) -> None:
    state, history = saved
    folder = state.file.parent / "runs" / "tiny-1"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"format": "dprog-run", "version": 1,
                                                 "outcome": {"status": "stopped"}}))
    history.refresh(force=True)
    assert not history.continue_from("tiny-1") and "no checkpoint" in state.status
    assert history.pending is None


def test_live_edits_reach_the_trainer_are_recorded_and_listed(saved) -> None:
    state, history = saved
    from app.commands import SetTraining

    assert state.do(SetTraining((("epochs", 5000),)))   # long enough to edit it while it runs
    run = TrainingRun()
    assert run.edit("lr", 0.1) is not None   # nothing runs yet
    assert history.train(run)
    wait(run, lambda: run.status == RUNNING and run.step > 0, "the first steps")
    run.pause()
    wait(run, lambda: run.status == PAUSED, "the pause")
    assert "lr" in (run.edit("lr", -1.0) or "")   # out of range: refused, naming it
    assert run.edit("lr", 0.003) is None
    assert run.edit("clip_grad_norm", 1.0) is None
    wait(run, lambda: run.record_folder is not None, "the run's folder")
    history.refresh(force=True)
    assert not history.rename("tiny-1", "x") and "is training" in state.status
    assert not history.ask_delete("tiny-1") and history.deleting is None
    run.resume()
    wait(run, lambda: len(run.edits) == 2, "the edits to apply")
    run.stop()
    run_to_end(run)
    assert run.status == STOPPED
    assert [(e.setting, e.new) for e in run.edits] == [("lr", 0.003), ("clip_grad_norm", 1.0)]
    history.refresh(force=True)
    (info,) = history.runs
    assert [(e.step, e.setting) for e in info.edits] == [(e.step, e.setting) for e in run.edits]
    assert "2 edits" in history.rows()[0].outcome
    history.compare(["tiny-1"])
    assert [e.new for e in history.curves[0].edits] == [0.003, 1.0]
    # Continuing goes on with the edited settings, as the checkpoint holds them.
    assert history.continue_from("tiny-1")
    assert (state.graph.training["lr"], state.graph.training["clip_grad_norm"]) == (0.003, 1.0)


def test_the_tensorboard_setting_writes_event_files_into_the_run(saved) -> None:
    state, history = saved
    from app.commands import SetTraining

    assert state.do(SetTraining((("tensorboard", True),)))
    run = train(history)
    assert run.status == FINISHED, run.message
    assert list((Path(run.record_folder) / "tensorboard").glob("events.out.tfevents.*"))


def test_the_tensorboard_checkbox_names_what_to_install(monkeypatch) -> None:
    import importlib.util

    from app.views import run_panel

    assert run_panel.tensorboard_installed()   # the dev set-up installs it
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert not run_panel.tensorboard_installed()
    assert "pip install 'dprog[tensorboard]'" in run_panel.TENSORBOARD_INSTALL


def test_a_graph_whose_folder_cannot_hold_runs_still_trains_and_says_why(saved) -> None:
    state, history = saved
    (state.file.parent / "runs").write_text("a file where the runs folder would be")
    run = train(history)
    assert run.status == FINISHED and run.record_folder is None
    assert "not kept: cannot write the run store beside tiny.json" in run.message


def test_hand_edited_parents_and_older_folders_never_break_the_list(saved) -> None:
    state, history = saved
    runs = state.file.parent / "runs"
    for n, parent in ((1, "tiny-2"), (2, "tiny-1"), (3, "tiny-3")):   # a loop, and a self-loop
        (runs / f"tiny-{n}").mkdir(parents=True)
        (runs / f"tiny-{n}" / "run.json").write_text(json.dumps(
            {"format": "dprog-run", "version": 1, "name": f"r{n}", "parent": parent,
             "config": {"lr": 0.1}, "outcome": {"status": "finished", "step": 3}}))
    (runs / "tiny").mkdir()   # what an older dprog wrote
    (runs / "tiny" / "config.json").write_text(json.dumps({"lr": 0.5, "epochs": 3}))
    history.refresh(force=True)
    rows = history.rows()
    assert sorted(r.id for r in rows) == ["tiny", "tiny-1", "tiny-2", "tiny-3"]   # each once
    legacy = next(r for r in rows if r.id == "tiny")
    assert "(legacy)" in legacy.outcome and "lr 0.5" in legacy.settings
    history.select("tiny-1")
    history.select("tiny-2")
    assert history.compare() and history.comparison.settings == {}
    assert [c.step_loss for c in history.curves] == [([], []), ([], [])]   # no logs: no curves
