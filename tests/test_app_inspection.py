"""Looking inside wires, the studio's state (app/inspection.py): what is asked of the trainer
and when, what a run's readings, times and fault leave, and the numbers and pictures the
views draw. No window: a fake trainer records what it is asked, and one test drives a real
run through `TrainingRun` the way the studio's frames do."""

from __future__ import annotations

import time

import pytest
from helpers import moons_graph

from app.inspection import (
    HOVER_SECONDS,
    LIVE_HZ,
    BlockTime,
    WireWatch,
    gray_rgba,
    heat_bucket,
    heat_rgba,
    histogram_bars,
    sample_text,
    sort_rows,
    stats_lines,
)
from app.training import TrainingRun
from engine.core.events import BlockTimes, NonFinite, TensorStats, WireReading

STATS = TensorStats((4, 2), 0.5, 0.25, -1.0, 2.0, 0.125, (1, 0, 3, 4), 0)


def reading(edge: str, step: int = 5, iteration: int | None = None) -> WireReading:
    return WireReading(step, edge, iteration, STATS, None, (1.0, 2.0))


class FakeTrainer:
    def __init__(self) -> None:
        self.asked: list[tuple[str, int | None]] = []
        self.reads: list[tuple[str, int | None]] = []
        self.profile = False
        self.step = 5
        self.edge_keys = ["fc.y->act.x", "loop/body/a.y->b.x"]

    def inspect(self, edge: str, iteration: int | None = None) -> None:
        if edge not in self.edge_keys:
            raise ValueError(f"no wire {edge!r} in the graph")
        self.asked.append((edge, iteration))

    def set_profile(self, on: bool) -> None:
        self.profile = on

    def read_wire(self, edge: str, iteration: int | None = None) -> WireReading:
        if edge not in self.edge_keys:
            raise ValueError(f"no wire {edge!r} in the graph")
        self.reads.append((edge, iteration))
        return reading(edge, self.step, iteration)


class FakeRun:
    def __init__(self, status: str = "running") -> None:
        self.runs, self.status, self.trainer = 1, status, FakeTrainer()


def test_nothing_watched_asks_nothing_and_profiles_nothing():
    watch, run = WireWatch(), FakeRun()
    for t in range(50):
        watch.tick(run, now=t * 0.1)
    run.status = "finished"
    watch.tick(run, now=10.0)
    assert run.trainer.asked == [] and run.trainer.reads == [] and not run.trainer.profile
    assert not watch.busy


def test_a_pinned_wire_is_asked_at_most_live_hz_one_request_at_a_time():
    watch, run = WireWatch(), FakeRun()
    watch.pin("fc.y->act.x")
    watch.tick(run, now=0.0)
    watch.tick(run, now=0.01)
    assert run.trainer.asked == [("fc.y->act.x", None)]   # in flight: not asked again
    watch.handlers()[WireReading](reading("fc.y->act.x", 1))
    watch.tick(run, now=0.02)
    assert len(run.trainer.asked) == 1                     # answered, but too soon
    watch.tick(run, now=0.02 + 1 / LIVE_HZ)
    assert len(run.trainer.asked) == 2
    assert watch.reading("fc.y->act.x").step == 1


def test_a_hovered_wire_is_read_once_the_mouse_rests_on_it():
    watch, run = WireWatch(), FakeRun()
    watch.hover("fc.y->act.x", now=0.0)
    watch.tick(run, now=HOVER_SECONDS / 2)
    assert run.trainer.asked == []
    watch.tick(run, now=HOVER_SECONDS)
    assert run.trainer.asked == [("fc.y->act.x", None)]
    watch.hover(None, now=1.0)
    watch.tick(run, now=5.0)
    assert len(run.trainer.asked) == 1


def test_a_wire_the_run_does_not_have_is_an_error_not_an_exception():
    watch, run = WireWatch(), FakeRun()
    watch.pin("gone.y->x.x")
    watch.tick(run, now=0.0)
    assert "no wire" in watch.error("gone.y->x.x") and watch.reading("gone.y->x.x") is None


def test_after_the_run_a_reading_is_taken_on_the_worker_once_per_step():
    watch, run = WireWatch(), FakeRun("finished")
    watch.pin("loop/body/a.y->b.x", 2)
    watch.tick(run, now=0.0)
    assert watch.join()
    assert watch.tick(run, now=0.1)                         # the worker's result came in
    assert watch.reading("loop/body/a.y->b.x", 2).iteration == 2
    for t in range(5):
        watch.tick(run, now=0.2 + t)
        watch.join()
    assert run.trainer.reads == [("loop/body/a.y->b.x", 2)]
    watch.set_iteration(3)
    watch.tick(run, now=10.0)
    watch.join()
    watch.tick(run, now=10.1)
    assert run.trainer.reads[-1] == ("loop/body/a.y->b.x", 3)
    assert watch.reading("loop/body/a.y->b.x", 2, exact=True).iteration == 2
    run.trainer.edge_keys = []
    watch.pin("fc.y->act.x")
    watch.tick(run, now=11.0)
    watch.join()
    watch.tick(run, now=11.1)
    assert "no wire" in watch.error("fc.y->act.x")


def test_a_new_run_forgets_the_last_ones_readings_times_and_fault_but_keeps_the_pin():
    watch, run = WireWatch(), FakeRun()
    watch.pin("fc.y->act.x")
    handlers = watch.handlers()
    watch.tick(run, now=0.0)
    handlers[WireReading](reading("fc.y->act.x"))
    handlers[BlockTimes](BlockTimes(3, {"fc": 1.0}, {"fc": 2.0}))
    handlers[NonFinite](NonFinite(4, "fc", "fc.y->act.x", {}, {}, 3))
    assert watch.reading("fc.y->act.x") and watch.rows() and watch.fault
    run.runs += 1
    run.trainer = FakeTrainer()
    watch.tick(run, now=1.0)
    assert watch.reading("fc.y->act.x") is None and not watch.rows() and watch.fault is None
    assert watch.pinned == "fc.y->act.x" and run.trainer.asked == [("fc.y->act.x", None)]


def test_profile_mode_follows_each_runs_trainer_and_smooths_the_times():
    watch, run = WireWatch(), FakeRun()
    watch.set_profile(True)
    watch.tick(run, now=0.0)
    assert run.trainer.profile
    on = watch.handlers()[BlockTimes]
    on(BlockTimes(1, {"fc": 600.0, "act": 1.0}, {"fc": 2.0, "(loss)": 1.0}))   # warm-up
    for step in range(2, 6):
        on(BlockTimes(step, {"fc": 6.0, "act": 1.0}, {"fc": 2.0, "(loss)": 1.0}))
    rows = {r.node: r for r in watch.rows()}
    assert rows["fc"].forward_ms == 6.0 and rows["fc"].backward_ms == 2.0
    assert sum(r.share for r in rows.values()) == pytest.approx(1.0)
    assert watch.rows()[0].node == "fc" and watch.share("nope") is None
    watch.set_profile(False)
    assert not run.trainer.profile and watch.rows() == []


def test_profile_rows_sort_by_any_column():
    rows = [BlockTime("b", 1.0, 5.0, 0.6), BlockTime("a", 3.0, 1.0, 0.4)]
    assert [r.node for r in sort_rows(rows, 0, False)] == ["a", "b"]
    assert [r.node for r in sort_rows(rows, 1, True)] == ["a", "b"]
    assert [r.node for r in sort_rows(rows, 2, True)] == ["b", "a"]
    assert [r.node for r in sort_rows(rows, 3, False)] == ["a", "b"]
    assert (heat_bucket(None), heat_bucket(0.0), heat_bucket(0.9)) == (None, 0, 7)


def test_numbers_and_pictures_for_the_views():
    import numpy as np

    assert dict(stats_lines(STATS))["zeros"] == "12.5%" and stats_lines(None) == []
    bad = TensorStats((3,), None, None, None, None, 0.0, (), 3)
    assert dict(stats_lines(bad))["NaN/Inf"] == "3" and histogram_bars(bad)[0] == []
    xs, counts, width = histogram_bars(STATS)
    assert width == pytest.approx(0.75) and xs[0] == pytest.approx(-0.625) and counts[2] == 3
    assert sample_text((1.0, 2.0, 3.0, 4.0)).count("\n") == 1 and sample_text(()) == "-"
    grid = np.array([[-1.0, 0.0], [0.0, 1.0]])   # row 0 is the bottom of the plane
    w, h, rgba = heat_rgba(grid)
    pixels = np.array(rgba).reshape(h, w, 4)
    assert pixels[0, 1, 2] > pixels[0, 1, 0]     # top right: +1, blue
    assert pixels[1, 0, 0] > pixels[1, 0, 2]     # bottom left: -1, orange
    assert pixels[0, 0, :3] == pytest.approx([0.96] * 3)   # zero: white
    w, h, rgba = gray_rgba(np.array([[0.0, 2.0, 4.0]]))
    assert (w, h) == (3, 1) and rgba[4] == pytest.approx(0.5) and rgba[8] == 1.0


def test_a_real_run_answers_the_pinned_wire_and_profiles_its_blocks():
    run, watch = TrainingRun(), WireWatch()
    run.handlers.update(watch.handlers())
    watch.pin("fc1.y->act.x")
    watch.set_profile(True)
    run.start(moons_graph(epochs=6))
    deadline = time.monotonic() + 120
    while (run.active or run.events.items) and time.monotonic() < deadline:
        run.poll()
        watch.tick(run)
        time.sleep(0.005)
    assert run.status == "finished", run.message
    live = watch.reading("fc1.y->act.x")
    assert live is not None and live.activation.shape[1:] == (16,)
    assert {"fc1", "act", "fc2"} <= {r.node for r in watch.rows()}
    deadline = time.monotonic() + 60   # after the run: read again at its last step
    while watch.reading("fc1.y->act.x").step != run.step and time.monotonic() < deadline:
        watch.tick(run)
        watch.join()
    after = watch.reading("fc1.y->act.x")
    assert after.step == run.step and after.heatmap.shape == (8, 32, 32)
    assert after.gradient is not None


def run_to_end(run: TrainingRun, watch: WireWatch) -> None:
    deadline = time.monotonic() + 120
    while (run.active or run.events.items) and time.monotonic() < deadline:
        run.poll()
        watch.tick(run)
        time.sleep(0.005)


def test_a_fault_is_kept_and_the_next_run_starts_at_the_last_good_step(tmp_path):
    from test_experiments import nan_graph

    from app.views.fault import fault_summary
    from engine.core.fileformat import save_graph
    from engine.core.runs import read_run

    path = tmp_path / "nan.json"
    save_graph(nan_graph(), path)
    run, watch = TrainingRun(), WireWatch()
    run.handlers.update(watch.handlers())
    run.start(nan_graph(), tmp_path, graph_file=path)
    run_to_end(run, watch)
    fault = watch.fault
    assert run.status == "failed" and run.failed_node == "bad" and fault.node == "bad"
    assert fault.outputs["bad.y->logits.x"].nonfinite > 0 and list(fault.inputs) == ["fc.y->bad.a"]
    assert fault.checkpoint is not None and read_run(fault.checkpoint).outcome == "nonfinite"
    assert f"Step {fault.step}: block bad" in fault_summary(fault)
    # Step last_good_step's weights are those the run kept; with them exp overflows on the
    # next forward whatever the rate (the fault's input max is past ~88.7), so the new run,
    # branched from there, stops at the same step: it did start from the checkpoint.
    gentle = nan_graph(lr=0.001)
    run.start(gentle, tmp_path, start_from=fault.checkpoint, graph_file=path)
    run_to_end(run, watch)
    assert run.first_step == fault.last_good_step, run.message
    assert watch.fault is not None and watch.fault.step == fault.step
    child = read_run(run.trainer.out_dir)
    assert child.parent == read_run(fault.checkpoint).id
    assert child.parent_step == fault.last_good_step
