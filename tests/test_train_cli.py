"""`dprog train`: the run folder, exit codes, one-line errors, resume, and --nproc 2 matching a
single process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, SAMPLES_DIR, build, import_file, subprocess_env

from engine.cli import main
from engine.core.fileformat import save_graph
from engine.data.datasets import load_dataset

MOONS = str(SAMPLES_DIR / "moons_mlp.json")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", MOONS, "--epochs", "3", "--out", str(out), "--gradflow-every", "5",
                 "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "val accuracy" in captured.out and str(out) in captured.out   # the summary line
    assert "step 75/75" in captured.err                                  # progress, not a TTY
    # The progress line ends on the final evaluation, the one the summary reports.
    last = [line for line in captured.err.splitlines() if line.startswith("step ")][-1]
    accuracy = re.search(r"val accuracy ([\d.]+%)", captured.out).group(1)
    assert last.startswith("step 75/75") and f"val acc {accuracy}" in last, (last, captured.out)
    metrics = lines(out / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert set(metrics[0]) >= {"step", "epoch", "train_loss", "val_loss", "train_accuracy",
                               "val_accuracy"}
    flows = lines(out / "gradflow.jsonl")
    assert [f["step"] for f in flows] == list(range(5, 76, 5))
    assert set(flows[0]["edges"]) >= {"x.y->fc1.x", "fc3.y->logits.x"}
    assert {p.name for p in out.iterdir()} >= {"weights.pt", "state.pt", "model.py", "graph.json",
                                               "config.json"}
    # The export with weights.pt reproduces the reported validation accuracy.
    model = import_file(out / "model.py", "exported_moons").MoonsMlp()
    model.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    model.eval()
    config = json.loads((out / "config.json").read_text())
    data = load_dataset(config["dataset"], config["seed"])
    with torch.no_grad():
        predicted = model(torch.from_numpy(data.x_val)).argmax(-1).numpy()
    assert (predicted == data.y_val).mean() == metrics[-1]["val_accuracy"]


def test_options_override_the_training_section(tmp_path):
    out = tmp_path / "run"
    assert main(["train", MOONS, "--steps", "7", "--lr", "0.05", "--optimizer", "sgd",
                 "--batch-size", "16", "--seed", "3", "--device", "cpu", "--schedule", "cosine",
                 "--data", "circles", "--eval-every", "7", "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["steps"], config["lr"], config["optimizer"], config["batch_size"],
            config["seed"], config["schedule"]) == (7, 0.05, "sgd", 16, 3, "cosine")
    assert config["dataset"] == {"name": "circles"}
    assert lines(out / "metrics.jsonl")[-1]["step"] == 7


def test_data_from_a_csv_file(tmp_path):
    rows = ["a,b,label"] + [f"{i % 7 / 7:.3f},{i % 5 / 5:.3f},{i % 2}" for i in range(60)]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["train", MOONS, "--data", str(tmp_path / "points.csv"), "--epochs", "1",
                 "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["dataset"]["name"] == "csv"


def test_resume_continues_the_run(tmp_path):
    out = tmp_path / "run"
    assert main(["train", MOONS, "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "4", "--quiet"]) == 0
    assert [m["epoch"] for m in lines(out / "metrics.jsonl")] == [1, 2, 3, 4]
    assert torch.load(out / "state.pt", weights_only=True)["step"] == 100


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip()


def test_exit_codes(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in one_line_error(capsys)
    assert main(["train", MOONS, "--optimizer", "nope"]) == 2
    assert "--optimizer" in one_line_error(capsys)
    assert main(["train"]) == 2
    one_line_error(capsys)
    assert main(["train", MOONS, "--lr", "-1", "--out", out]) == 2
    assert "lr" in one_line_error(capsys)
    assert main(["train", MOONS, "--data", "moonz", "--out", out]) == 2
    assert "moonz" in one_line_error(capsys)
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    one_line_error(capsys)
    assert main(["train", MOONS, "--data", "digits", "--out", out]) == 1     # (8, 8) into Input[2]
    assert "shape" in one_line_error(capsys)
    broken = build([("x", "input", {"shape": [2]}), ("fc", "linear", {"out_features": 2})],
                   ["x -> fc"])                                              # no Output
    save_graph(broken, tmp_path / "broken.json")
    assert main(["train", str(tmp_path / "broken.json"), "--out", out]) == 1
    assert "no_output" in capsys.readouterr().err


def test_nonfinite_exits_3_and_names_the_node(tmp_path, capsys):
    graph = build([("x", "input", {"shape": [2]}), ("fc", "linear", {"out_features": 2}),
                   ("bad", "expression", {"expr": "torch.log(a - 100)", "inputs": 1}),
                   ("logits", "output", {})], ["x -> fc", "fc -> bad.a", "bad -> logits"],
                  training={"dataset": {"name": "moons", "n_samples": 100}, "epochs": 1})
    save_graph(graph, tmp_path / "nan.json")
    assert main(["train", str(tmp_path / "nan.json"), "--out", str(tmp_path / "run")]) == 3
    message = one_line_error(capsys)
    assert "node bad" in message and len(message.splitlines()) == 1


def test_no_traceback_in_a_fresh_process(tmp_path):
    done = subprocess.run([sys.executable, "-m", "engine.cli", "train", MOONS, "--batch-size", "0"],
                          capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "batch_size" in done.stderr


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    """--nproc 2 splits each global batch of 32 into two of 16 (DistributedSampler order) and
    DDP averages the gradients, so the run equals the single-process one up to float summation
    order: losses agree to 1e-4 relative (measured: ~1e-7)."""
    options = ["--steps", "30", "--eval-every", "10", "--device", "cpu", "--quiet"]
    assert main(["train", MOONS, *options, "--out", str(tmp_path / "n1")]) == 0
    done = subprocess.run([sys.executable, "-m", "engine.cli", "train", MOONS, *options,
                           "--out", str(tmp_path / "n2"), "--nproc", "2"],
                          capture_output=True, text=True, env=subprocess_env(OMP_NUM_THREADS="1"),
                          cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("dprog: trained") == 1    # only rank 0 speaks
    assert done.stderr == ""
    runs = {n: lines(tmp_path / f"n{n}" / "metrics.jsonl") for n in (1, 2)}
    assert len(runs[1]) == len(runs[2]) == 3
    for one, two in zip(runs[1], runs[2], strict=True):
        assert one["step"] == two["step"]
        for key in ("train_loss", "val_loss"):
            assert two[key] == pytest.approx(one[key], rel=1e-4)
        assert two["val_accuracy"] == one["val_accuracy"]


def test_data_for_a_program_without_inputs_is_refused(tmp_path, capsys):
    # A dataset would go unused: the projectile fits its launch without data.
    out = tmp_path / "run"
    assert main(["train", str(SAMPLES_DIR / "projectile.json"), "--data", "moons", "--steps", "2",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "has no data Input" in err and "drop --data" in err
    assert not out.exists()
