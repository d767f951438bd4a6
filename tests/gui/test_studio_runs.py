"""Experiments in the real studio (issue 17): every Train is kept in the graph's run store,
two runs with different learning rates compare in their own colours with the settings that
differ, and a learning rate changed while a run trains is marked on its curves, live and
when the run is drawn again from the history.

One studio runs for the module, on a tiny moons classifier saved in a temporary folder; the
tests build on each other in file order, as a user's session would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import VirtualScreen, color_fraction
from studio_driver import Studio, center, studio

from engine.core.fileformat import save_graph
from engine.core.runs import list_runs
from tests.helpers import moons_graph

pytestmark = pytest.mark.gui

RUN_COLORS = ((90, 170, 250), (250, 150, 60))   # app/views/runs.py: the first two runs
MARKER = (235, 200, 90)                           # app/views/live_edit.py: a live edit


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    save_graph(moons_graph(epochs=6, gradflow_every=2), folder / "tiny.json")
    return folder


@pytest.fixture(scope="module")
def app(screen: VirtualScreen, folder: Path) -> Iterator[Studio]:
    with studio(screen, folder, folder / "tiny.json") as s:
        s.wait(lambda st: st["torch_ready"], "torch to load", timeout=120)
        yield s


def box(r: list[float]) -> tuple[int, int, int, int]:
    return tuple(int(v) for v in r)  # type: ignore[return-value]


def press(app: Studio, button: str) -> None:
    app.click(center(app.wait(lambda s: s["layout"][button], button)))


def runs_button(app: Studio, name: str) -> None:
    app.click(center(app.wait(lambda s: s["runs"]["layout"]["buttons"][name], f"Runs › {name}")))


def tab(app: Studio, name: str) -> None:
    app.click(center(app.wait(lambda s: s["layout"]["tabs"][name], f"the {name} tab")))


def type_into(app: Studio, rect: list[float], text: str) -> None:
    app.click(center(rect))
    app.key("ctrl+a")
    app.type_text(text)
    app.key("Return")


def train_to_end(app: Studio, runs_before: int) -> dict:
    press(app, "train_button")
    return app.wait(lambda s: s["run"]["status"] == "finished"
                    and len(s["runs"]["rows"]) == runs_before + 1 and s, "the run to finish",
                    timeout=180)


def test_train_twice_with_different_learning_rates_and_compare(app: Studio, folder: Path) -> None:
    s = train_to_end(app, 0)
    assert "kept as tiny-1" in s["status"] and s["runs"]["live"]["note"] == "kept as tiny-1"
    # The second run: a learning rate typed in the Training tab, then Train.
    tab(app, "training")
    lr = app.wait(lambda s: s["runs"]["settings"]["lr"], "the learning rate field")
    type_into(app, lr, "0.2")
    app.wait(lambda s: s["graph"]["training"]["lr"] == 0.2, "lr 0.2 in the graph")
    s = train_to_end(app, 1)
    assert [r[0] for r in s["runs"]["rows"]] == ["tiny-1", "tiny-2"]
    assert [r.config["lr"] for r in list_runs(folder / "tiny.json")] == [0.05, 0.2]
    # Tick both in the Runs tab, Compare.
    tab(app, "runs")
    for run_id in ("tiny-1", "tiny-2"):
        tick = app.wait(lambda s, i=run_id: s["runs"]["layout"]["boxes"].get(i), f"{run_id}'s box")
        app.click(center(tick))
        app.wait(lambda s, i=run_id: i in s["runs"]["selected"], f"{run_id} ticked")
    runs_button(app, "compare")
    s = app.wait(lambda s: s["runs"]["overlay_lines"] == 2 and s["runs"]["comparison"] and s,
                 "the two runs compared")
    c = s["runs"]["comparison"]
    assert c["runs"] == ["tiny-1", "tiny-2"]
    assert c["settings"] == {"lr": ["0.05", "0.2"]}   # the one setting that differs
    assert {"val_loss", "val_accuracy"} <= set(c["final"])
    assert {"fc1", "fc2"} <= set(c["gradflow"])        # the same model: its flow compares
    assert all(s["runs"]["live_hidden"])               # the live lines stand aside
    # Compare shows the Training tab: each run's curves in its own colour.
    s = app.wait(lambda s: s["layout"]["plots"]["loss"] and s, "the Loss plot on screen")
    shot = app.shot(folder / "compare.png")
    for plot in ("loss", "acc"):
        area = box(s["layout"]["plots"][plot])
        for color in RUN_COLORS:
            assert color_fraction(shot, color, area, tolerance=24) > 0.002, (plot, color)
    # The table of what differs, in the Runs tab.
    tab(app, "runs")
    app.shot(folder / "compare_table.png")


def test_change_the_learning_rate_while_it_trains_and_see_the_marker(app: Studio,
                                                                     folder: Path) -> None:
    tab(app, "training")
    epochs = app.wait(lambda s: s["runs"]["settings"]["epochs"], "the epochs field")
    type_into(app, epochs, "3000")   # long enough to act while it trains
    app.wait(lambda s: s["graph"]["training"]["epochs"] == 3000, "3000 epochs")
    tab(app, "metrics")
    press(app, "train_button")
    s = app.wait(lambda s: s["run"]["status"] == "running" and s["run"]["step"] > 0
                 and s["runs"]["live"]["enabled"] and s, "the run to train")
    assert s["runs"]["overlay_lines"] == 0 and not any(s["runs"]["live_hidden"])   # live again
    press(app, "pause_button")   # so the edit lands at a step the test can check
    app.wait(lambda s: s["run"]["status"] == "paused", "the pause")
    field = app.wait(lambda s: s["runs"]["live"]["fields"].get("lr"), "the live lr field")
    type_into(app, field, "0.001")
    press(app, "pause_button")   # Resume: the edit applies before the next step
    s = app.wait(lambda s: s["runs"]["live"]["edits"] and s["runs"]["live"]["markers"] and s,
                 "the edit applied and marked")
    (step, setting, new), = s["runs"]["live"]["edits"]
    assert (setting, new) == ("lr", 0.001) and step > 0
    assert s["runs"]["live"]["markers"] == ["lr 0.001", "lr 0.001"]   # on Loss and Accuracy
    app.wait(lambda s: s["run"]["step"] > step + 5, "a few steps at the new rate")
    press(app, "stop_button")
    s = app.wait(lambda s: s["run"]["status"] == "stopped"
                 and any(r[0] == "tiny-3" and "1 edit" in r[3] for r in s["runs"]["rows"])
                 and s, "the run stopped and listed with its edit")
    shot = app.shot(folder / "live_marker.png")
    for plot in ("loss", "acc"):   # the line and the label "lr 0.001", on both plots
        assert color_fraction(shot, MARKER, box(s["layout"]["plots"][plot]),
                              tolerance=30) > 0.002, plot
    (run,) = [r for r in list_runs(folder / "tiny.json") if r.id == "tiny-3"]
    assert [(e.step, e.setting, e.new) for e in run.edits] == [(step, "lr", 0.001)]
    # Drawn again from the history: tick only that run and show it.
    tab(app, "runs")
    for run_id in ("tiny-1", "tiny-2", "tiny-3"):
        ticked = run_id in app.state()["runs"]["selected"]
        if ticked != (run_id == "tiny-3"):
            app.click(center(app.wait(lambda s, i=run_id: s["runs"]["layout"]["boxes"].get(i),
                                      f"{run_id}'s box")))
            app.wait(lambda s, i=run_id, t=ticked: (i in s["runs"]["selected"]) != t,
                     f"{run_id} toggled")
    runs_button(app, "compare")
    s = app.wait(lambda s: s["runs"]["overlay_lines"] == 1 and s["runs"]["overlay_markers"]
                 and s, "tiny-3 drawn from its record")
    assert s["runs"]["overlay_markers"] == ["lr 0.001", "lr 0.001"]
    assert s["runs"]["live"]["markers"] == []   # the live run's stand aside meanwhile
    shot = app.shot(folder / "history_marker.png")
    for plot in ("loss", "acc"):   # in the run's colour now, not the live marker's
        area = box(s["layout"]["plots"][plot])
        assert color_fraction(shot, MARKER, area, tolerance=30) < 0.0005, plot
        assert color_fraction(shot, RUN_COLORS[0], area, tolerance=24) > 0.002, plot


def test_branch_a_run_then_delete_it_and_a_damaged_folder_is_listed(app: Studio,
                                                                     folder: Path) -> None:
    # A folder another process damaged shows up when the tab opens, as damaged.
    tab(app, "metrics")
    damaged = folder / "runs" / "tiny-9"
    damaged.mkdir()
    (damaged / "run.json").write_text("{half")
    tab(app, "runs")
    s = app.wait(lambda s: any(r[0] == "tiny-9" for r in s["runs"]["rows"]) and s,
                 "the damaged folder listed")
    (row,) = [r for r in s["runs"]["rows"] if r[0] == "tiny-9"]
    assert row[3] == "damaged" and "run.json" in row[4]
    # Tick only tiny-1, Branch: the next Train starts from its checkpoint.
    for run_id in ("tiny-1", "tiny-3"):
        app.click(center(app.wait(lambda s, i=run_id: s["runs"]["layout"]["boxes"].get(i),
                                  f"{run_id}'s box")))
    s = app.wait(lambda s: s["runs"]["selected"] == ["tiny-1"] and s, "only tiny-1 ticked")
    runs_button(app, "branch")
    s = app.wait(lambda s: s["runs"]["pending"] and s, "the branch armed")
    assert "branches a new run from run tiny-1 at step 42" in s["runs"]["pending"]
    assert s["graph"]["training"]["lr"] == 0.05 and s["graph"]["training"]["epochs"] == 12
    s = train_to_end(app, len(s["runs"]["rows"]))   # the next number after the damaged one
    rows = {r[0]: r for r in s["runs"]["rows"]}
    assert rows["tiny-10"][1] == 1   # indented under tiny-1
    ids = [r[0] for r in s["runs"]["rows"]]
    assert ids.index("tiny-10") == ids.index("tiny-1") + 1
    (child,) = [r for r in list_runs(folder / "tiny.json") if r.id == "tiny-10"]
    assert (child.parent, child.parent_step, child.step) == ("tiny-1", 42, 84)
    # Delete it: asked first, then gone from the list and the disk.
    tab(app, "runs")
    app.click(center(app.wait(lambda s: s["runs"]["layout"]["boxes"].get("tiny-1"), "box")))
    app.click(center(app.wait(lambda s: s["runs"]["layout"]["boxes"].get("tiny-10"), "box")))
    app.wait(lambda s: s["runs"]["selected"] == ["tiny-10"], "only tiny-10 ticked")
    runs_button(app, "delete")
    app.wait(lambda s: s["runs"]["deleting"] == "tiny-10", "the question")
    app.shot(folder / "delete_question.png")
    assert (folder / "runs" / "tiny-10").is_dir()
    runs_button(app, "confirm_delete")
    s = app.wait(lambda s: "tiny-10" not in [r[0] for r in s["runs"]["rows"]] and s,
                 "tiny-10 deleted")
    assert not (folder / "runs" / "tiny-10").exists() and "deleted run tiny-10" in s["status"]


def test_reopen_a_run_graph_version_as_an_untitled_copy(app: Studio, folder: Path) -> None:
    tab(app, "runs")
    app.wait(lambda s: s["runs"]["selected"] == [], "nothing ticked")
    app.click(center(app.wait(lambda s: s["runs"]["layout"]["boxes"].get("tiny-2"), "box")))
    app.wait(lambda s: s["runs"]["selected"] == ["tiny-2"], "tiny-2 ticked")
    runs_button(app, "reopen")
    s = app.wait(lambda s: "run tiny-2" in s["title"] and s, "the copy opened")
    assert s["file"] is None and not s["dirty"]
    assert s["graph"]["training"]["lr"] == 0.2 and s["graph"]["training"]["epochs"] == 6
    assert s["runs"]["rows"] == [] and s["runs"]["note"] == "save the graph to keep its runs"
    assert (folder / "tiny.json").is_file() and len(list_runs(folder / "tiny.json")) == 4
