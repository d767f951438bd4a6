"""Experiments (issue 17), engine side: the run store, live edits, wire inspection, profile
mode, stop at the fault, TensorBoard files, and `dprog train --from/--name`, `dprog runs`."""

from __future__ import annotations

import json
import queue
import shutil

import pytest
import torch

from engine.cli.main import main
from engine.core import events as E
from engine.core.config import TrainingConfig
from engine.core.fileformat import save_graph
from engine.core.runs import (
    RunError,
    RunRecorder,
    compare_runs,
    delete_run,
    find_run,
    graph_hash,
    graph_text,
    list_runs,
    new_run_folder,
    read_metrics,
    read_run,
    read_steps,
    rename_run,
)
from engine.runtime.trainer import Trainer, recorded_trainer, train
from tests.helpers import REPO, build, moons_graph


@pytest.fixture
def graph_file(tmp_path):
    path = tmp_path / "tiny.json"
    save_graph(moons_graph(gradflow_every=2), path)
    return path


def drain(q) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def of(events, kind) -> list:
    return [e for e in events if isinstance(e, kind)]


# ---- the run store (pure) ---------------------------------------------------------------------


def test_run_folders_count_up_and_damaged_or_older_ones_are_listed(tmp_path, graph_file):
    first, second = new_run_folder(graph_file), new_run_folder(graph_file)
    assert (first.name, second.name) == ("tiny-1", "tiny-2")
    assert first.parent == tmp_path / "runs"
    RunRecorder(first, graph_text="{}", config={"lr": 0.1})
    (second / "run.json").write_text("{half")             # damaged
    legacy = tmp_path / "runs" / "tiny"                   # what an older dprog wrote
    legacy.mkdir()
    (legacy / "config.json").write_text(json.dumps({"lr": 0.5}))
    (legacy / "metrics.jsonl").write_text('{"step": 7, "val_loss": 0.3}\n{"step": 8, "val')
    (tmp_path / "runs" / "tiny-3").mkdir()                # empty: not a run
    (tmp_path / "runs" / "other-1").mkdir()               # another graph's
    runs = {r.id: r for r in list_runs(graph_file)}
    assert set(runs) == {"tiny", "tiny-1", "tiny-2", "tiny-3"}
    assert runs["tiny-1"].damaged is None and runs["tiny-1"].config == {"lr": 0.1}
    assert runs["tiny-2"].damaged and runs["tiny-3"].damaged
    assert runs["tiny"].legacy and runs["tiny"].step == 7 and runs["tiny"].final["val_loss"] == 0.3
    assert (second / "run.json").read_text() == "{half"   # nothing touched
    assert new_run_folder(graph_file).name == "tiny-4"


def test_continuing_a_run_with_a_damaged_record_keeps_the_damaged_file(tmp_path, graph_file):
    folder = new_run_folder(graph_file)
    (folder / "run.json").write_text('{"format": "dprog-run", "version": 99}')
    RunRecorder(folder, graph_text="{}", config={}, continued=True)
    assert read_run(folder).damaged is None
    assert (folder / "run.json.damaged-1").read_text().endswith("99}")


def test_rename_keeps_the_folder_and_delete_refuses_what_is_not_a_run(tmp_path, graph_file):
    folder = new_run_folder(graph_file)
    RunRecorder(folder, graph_text="{}", config={})
    assert rename_run(folder, "  baseline ").name == "baseline"
    assert find_run(graph_file, "baseline") == folder
    with pytest.raises(RunError):
        rename_run(folder, "")
    with pytest.raises(RunError):
        find_run(graph_file, "nope")
    with pytest.raises(RunError):
        delete_run(tmp_path)
    delete_run(folder)
    assert not folder.exists() and graph_file.exists()


# ---- the trainer -----------------------------------------------------------------------------


class EditAt:
    """An event sink that makes live edits when step `at` has been reported."""

    def __init__(self, at: int, lr: float, **more):
        self.at, self.lr, self.more, self.trainer, self.q = at, lr, more, None, queue.Queue()

    def put(self, event) -> None:
        if isinstance(event, E.StepMetrics) and event.step == self.at:
            self.trainer.edit("lr", self.lr)
            for setting, value in self.more.items():
                self.trainer.edit(setting, value)
        self.q.put(event)


def test_every_run_is_recorded_with_its_live_edits(graph_file):
    sink = EditAt(5, 0.2, gradflow_every=1)
    graph = moons_graph(gradflow_every=2)
    trainer = recorded_trainer(graph, graph_file, events=sink, name="first")
    sink.trainer = trainer
    end = trainer.run()
    events = drain(sink.q)
    assert isinstance(end, E.Finished)
    edit, interval = of(events, E.LiveEdit)
    assert (edit.step, edit.setting, edit.old, edit.new) == (5, "lr", 0.05, 0.2)
    assert (interval.step, interval.setting, interval.old, interval.new) == (
        5, "gradflow_every", 2, 1)
    assert [s.step for s in of(events, E.GradFlowSnapshot)] == [2, 4, *range(6, end.step + 1)]
    lrs = {e.step: e.lr for e in of(events, E.StepMetrics)}
    assert lrs[5] == 0.05 and lrs[6] == 0.2            # applied between steps 5 and 6
    [run] = list_runs(graph_file)
    assert run.name == "first" and run.outcome == "finished" and run.step == end.step
    assert [(e.step, e.new) for e in run.edits] == [(5, 0.2), (5, 1)]
    # the checkpoint says the settings in effect: continuing goes on with the edited ones
    assert json.loads((run.folder / "config.json").read_text())["lr"] == 0.2
    assert graph_text(run.folder) == graph_file.read_text()
    assert run.graph_sha256 == graph_hash(graph_file.read_bytes())
    assert [m["step"] for m in read_metrics(run.folder)] == [7, 14]
    assert [s["step"] for s in read_steps(run.folder)] == list(range(1, end.step + 1))
    assert run.final["val_loss"] == end.metrics.val_loss
    assert (run.folder / "weights.pt").exists() and (run.folder / "gradflow.jsonl").exists()


def test_live_edits_are_checked_when_asked(graph_file):
    trainer = Trainer(moons_graph())
    with pytest.raises(ValueError, match="live settings"):
        trainer.edit("batch_size", 8)
    with pytest.raises(ValueError, match="lr"):
        trainer.edit("lr", -1.0)
    trainer.edit("clip_grad_norm", None)   # off is allowed


def test_branch_and_continue_record_their_parent(graph_file):
    first = recorded_trainer(moons_graph(gradflow_every=2), graph_file)
    first.run()
    parent = first.record.folder
    branch = recorded_trainer(moons_graph(), graph_file,
                              TrainingConfig.from_mapping(moons_graph(gradflow_every=2).training)
                              .with_overrides(epochs=3, lr=0.01), start_from=parent)
    branch.run()
    runs = {r.id: r for r in list_runs(graph_file)}
    child = runs[branch.record.folder.name]
    assert child.parent == parent.name and child.parent_step == first.step
    assert read_steps(child.folder)[0]["step"] == first.step + 1
    comparison = compare_runs([runs[parent.name], child])
    assert comparison.settings["lr"] == (0.05, 0.01) and comparison.same_graph
    assert set(comparison.gradflow) >= {"fc1", "fc2"}
    more = recorded_trainer(moons_graph(epochs=3), graph_file, start_from=parent,
                            continue_run=True)
    more.run()
    again = read_run(parent)
    assert again.continued and again.step == more.step > first.step
    assert [s["step"] for s in read_steps(parent)] == list(range(1, more.step + 1))


def test_a_wire_reading_matches_the_tensor_it_reads():
    trainer = Trainer(moons_graph(gradflow_every=0))
    trainer.setup()
    reading = trainer.read_wire("fc1.y->act.x")
    x = trainer.x_train[:trainer.rank_batch]
    fc1 = trainer.module.fc1(x).detach()   # (B, 16)
    assert reading.activation.shape == tuple(fc1.shape)
    assert reading.activation.mean == pytest.approx(float(fc1.mean()), abs=1e-6)
    assert reading.activation.std == pytest.approx(float(fc1.std(unbiased=False)), abs=1e-6)
    assert reading.activation.max == pytest.approx(float(fc1.max()), abs=1e-6)
    assert sum(reading.activation.histogram) == fc1.numel()
    assert reading.sample == pytest.approx(fc1[0].tolist(), abs=1e-6)
    assert reading.gradient is not None and reading.gradient.shape == (trainer.rank_batch, 16)
    assert reading.heatmap.shape[1:] == (32, 32) and reading.extent is not None
    assert all(p.grad is None for p in trainer.params)   # reading changed nothing


def test_image_like_wires_show_channels():
    graph = json.loads((REPO / "sample_graphs" / "digits_cnn.json").read_text())
    from engine.core.fileformat import loads

    trainer = Trainer(loads(json.dumps(graph)))
    trainer.setup()
    conv = next(k for k in trainer.edge_keys if k.startswith("conv"))
    reading = trainer.read_wire(conv)
    assert len(reading.activation.shape) == 4 and reading.heatmap is None
    channels = reading.channels   # (k, H, W) of the first sample
    assert channels.shape == (min(4, reading.activation.shape[1]), *reading.activation.shape[2:])


def test_inspection_and_profiling_tap_nothing_when_off():
    trainer = Trainer(moons_graph(gradflow_every=0))
    trainer.setup()
    calls = []
    real = trainer.tapped
    trainer.model.tapped = lambda *a: calls.append(1) or real(*a)
    trainer.run()
    assert calls == []
    trainer2 = Trainer(moons_graph(gradflow_every=0), profile=True)
    trainer2.inspect("act.y->fc2.x")
    q = trainer2.events
    trainer2.run()
    events = drain(q)
    times = of(events, E.BlockTimes)
    assert len(times) == len(of(events, E.StepMetrics))
    assert set(times[0].forward_ms) >= {"fc1", "act", "fc2"} and set(times[0].backward_ms) >= {"fc1"}
    [reading] = of(events, E.WireReading)   # asked once: read once, at the next step
    assert reading.step == 1 and reading.edge == "act.y->fc2.x"


def test_a_loop_body_wire_is_read_at_the_iteration_asked():
    graph = json.loads((REPO / "sample_graphs" / "rnn_scan.json").read_text())
    graph["training"].update(steps=2, batch_size=8, dataset={**graph["training"]["dataset"],
                                                             "n_samples": 64})
    from engine.core.fileformat import loads

    trainer = Trainer(loads(json.dumps(graph)))
    trainer.setup()
    body = next(k for k in trainer.edge_keys if "/" in k)
    first = trainer.read_wire(body, 0)
    third = trainer.read_wire(body, 2)
    assert first.iterations == third.iterations > 2
    assert (first.iteration, third.iteration) == (0, 2)
    assert first.activation.mean != third.activation.mean


def nan_graph(**training):
    return build([("x", "input", {"shape": [2]}), ("fc", "linear", {"out_features": 2}),
                  ("bad", "expression", {"expr": "torch.exp(a)", "inputs": 1}),
                  ("logits", "output", {})], ["x -> fc", "fc -> bad.a", "bad -> logits"],
                 name="nan", training={"dataset": {"name": "moons", "n_samples": 200},
                                       "epochs": 20, "lr": 50.0, "optimizer": "sgd",
                                       **training})


def test_stop_at_the_fault_names_the_block_and_keeps_the_last_good_step(tmp_path):
    path = tmp_path / "nan.json"
    save_graph(nan_graph(), path)
    trainer = recorded_trainer(nan_graph(), path)
    end = trainer.run()
    events = drain(trainer.events)
    assert isinstance(end, E.Failed) and end.kind == "nonfinite" and end.node == "bad"
    [fault] = of(events, E.NonFinite)
    assert fault.node == "bad" and fault.last_good_step == fault.step - 1 == end.step
    assert list(fault.inputs) == ["fc.y->bad.a"] and list(fault.outputs) == ["bad.y->logits.x"]
    assert fault.outputs["bad.y->logits.x"].nonfinite > 0
    assert fault.last_good_step > 0
    assert fault.inputs["fc.y->bad.a"].max > 88   # why: exp overflows float32 past ~88.7
    state = torch.load(trainer.out_dir / "state.pt", weights_only=True)
    assert state["step"] == fault.last_good_step
    assert all(torch.isfinite(v).all() for v in state["weights"].values())
    run = read_run(trainer.out_dir)
    assert run.outcome == "nonfinite" and run.last_good_step == fault.last_good_step
    assert run.node == "bad"
    # open the run at its last good step, and branch it with a gentler learning rate
    gentle = recorded_trainer(nan_graph(), path, TrainingConfig.from_mapping(
        nan_graph(lr=0.001, epochs=fault.last_good_step // 4 + 1).training),
        start_from=trainer.out_dir)
    assert isinstance(gentle.run(), E.Finished)
    child = read_run(gentle.out_dir)
    assert child.parent == trainer.out_dir.name and child.parent_step == fault.last_good_step


def test_tensorboard_files_hold_scalars_histograms_and_wire_gradients(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, events = train(moons_graph(gradflow_every=3, tensorboard=True), out_dir=tmp_path)
    assert isinstance(events[-1], E.Finished)
    board = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0,
                                                                          "histograms": 0})
    board.Reload()
    tags = board.Tags()
    assert {"loss/train", "lr", "loss/val", "accuracy/val"} <= set(tags["scalars"])
    assert "gradflow/fc1.y->act.x" in tags["scalars"]
    assert {"weights/fc1", "grads/fc1", "weights/fc2"} <= set(tags["histograms"])
    losses = [s.value for s in board.Scalars("loss/train")]
    steps = of(events, E.StepMetrics)
    assert losses == pytest.approx([e.loss for e in steps], rel=1e-6)


def test_tensorboard_missing_is_a_config_failure_naming_the_install(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_tensorboard(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and (name == "tensorboard" or name.startswith("tensorboard.")):
            raise ImportError(name)
        return real(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    _, events = train(moons_graph(tensorboard=True), out_dir=tmp_path)
    assert events[-1].kind == "config" and "pip install" in events[-1].message


# ---- the command line -----------------------------------------------------------------------


def test_dprog_train_records_runs_and_dprog_runs_lists_them(tmp_path, graph_file, capsys):
    assert main(["train", str(graph_file), "--quiet", "--name", "slow"]) == 0
    assert main(["train", str(graph_file), "--quiet", "--lr", "0.2"]) == 0
    assert main(["train", str(graph_file), "--quiet", "--from", "slow", "--epochs", "3"]) == 0
    assert main(["train", str(graph_file), "--quiet", "--from", "tiny-2", "--continue",
                 "--epochs", "3"]) == 0
    runs = {r.id: r for r in list_runs(graph_file)}
    assert set(runs) == {"tiny-1", "tiny-2", "tiny-3"}
    assert runs["tiny-3"].parent == "tiny-1" and runs["tiny-2"].continued
    (tmp_path / "runs" / "tiny-9").mkdir()
    (tmp_path / "runs" / "tiny-9" / "run.json").write_text("[]")
    capsys.readouterr()
    assert main(["runs", str(graph_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("tiny-1 \"slow\"") and out[1].startswith("  └ tiny-3")
    assert any(line.startswith("tiny-9  DAMAGED") for line in out)
    assert main(["runs", str(graph_file), "--compare", "slow", "tiny-2", "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    assert comparison["settings"]["lr"] == [0.05, 0.2] and "fc1" in comparison["gradflow"]
    assert main(["runs", str(graph_file), "--rename", "tiny-2", "fast"]) == 0
    assert read_run(tmp_path / "runs" / "tiny-2").name == "fast"
    assert main(["train", str(graph_file), "--quiet", "--from", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_dprog_train_profile_and_tensorboard(tmp_path, graph_file, capsys):
    pytest.importorskip("tensorboard")
    assert main(["train", str(graph_file), "--profile", "--tensorboard"]) == 0
    err = capsys.readouterr().err
    assert "forward ms" in err and "fc1" in err
    folder = tmp_path / "runs" / "tiny-1"
    lines = [json.loads(x) for x in (folder / "profile.jsonl").read_text().splitlines()]
    assert len(lines) == read_run(folder).step and "fc1" in lines[0]["forward_ms"]
    assert any((folder / "tensorboard").iterdir())
    assert read_run(folder).config["tensorboard"] is True


def test_a_run_that_never_checkpoints_leaves_no_folder(tmp_path, capsys):
    path = tmp_path / "bad.json"
    save_graph(moons_graph(dataset={"name": "moonz"}), path)
    assert main(["train", str(path), "--quiet"]) == 2
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
