"""Run folders are complete: every `dprog train` run folder holds model.py, weights.pt and a
train.py (with the data.pt it reads) that runs from any folder, needs only torch, carries
every training setting of the run and repeats the run's numbers, evaluation by evaluation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.config import TrainingConfig
from engine.runtime.export import train_script, write_train_script
from engine.runtime.trainer import train
from tests.helpers import REPO, build, moons_graph

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Runs train.py as a user would, from another folder, with numpy and dprog's own packages
# made unimportable: the script needs only torch.
ALONE = r"""
import runpy, sys
for name in ("numpy", "engine", "nodes", "app", "sklearn"):
    sys.modules[name] = None
script = sys.argv[1]
sys.argv = [script, *sys.argv[2:]]
runpy.run_path(script, run_name="__main__")
"""


def run_alone(script: Path, cwd: Path, *args: str) -> list[dict]:
    """train.py's JSON lines, run in isolated mode (no PYTHONPATH, no user site)."""
    done = subprocess.run([sys.executable, "-I", "-c", ALONE, str(script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def metrics_of(events) -> list[dict]:
    return [e.to_json() for e in events if type(e).__name__ == "EvalMetrics"]


SETTINGS = [
    # every optimizer, every schedule, clipping, weight decay, a step budget, evaluations
    # every few steps
    dict(optimizer="sgd", momentum=0.8, schedule="cosine", clip_grad_norm=0.5, epochs=2),
    dict(optimizer="adamw", weight_decay=0.01, schedule="one_cycle", eval_every=3, epochs=2),
    dict(optimizer="rmsprop", lr=0.01, schedule="step", step_size=4, gamma=0.5, steps=10),
    dict(optimizer="adam", loss="mse", gradflow_every=2, epochs=1),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: s["optimizer"])
def test_train_py_repeats_the_run(settings, tmp_path):
    """The trainer's run folder, then its train.py alone from another folder: the same
    evaluations, step by step, to the last bit (same CPU, same torch)."""
    graph = moons_graph(**settings)
    _, events = train(graph, out_dir=tmp_path / "run")
    run = tmp_path / "run"
    assert {"model.py", "weights.pt", "train.py", "data.pt"} <= {p.name for p in run.iterdir()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lines = run_alone(run / "train.py", elsewhere)
    assert lines == metrics_of(events)
    assert (run / "retrained.pt").exists()


def test_train_py_of_a_graph_that_computes_its_own_loss(tmp_path):
    """loss "graph": the targets go to the Input named target, the first Output is the loss."""
    graph = build([("x", "input", {"shape": [2]}), ("target", "input", {"dtype": "long",
                                                                          "shape": []}),
                   ("fc", "linear", {"out_features": 2}),
                   ("loss", "cross_entropy"), ("out", "output"), ("pred", "output")],
                  ["x -> fc", "fc -> loss.input", "target -> loss.target", "loss -> out",
                   "fc -> pred"], name="own_loss",
                  training={"dataset": {"name": "moons", "n_samples": 200}, "loss": "graph",
                            "batch_size": 50, "epochs": 1})
    _, events = train(graph, out_dir=tmp_path)
    assert run_alone(tmp_path / "train.py", REPO) == metrics_of(events)


@pytest.mark.parametrize("name", ["vae", "char_gpt"])
def test_train_py_of_the_program_samples(name, samples, tmp_path):
    """A VAE computing its own loss with no targets Input (no accuracy: its predictions are
    images), and a language model whose accuracy is the share of right next characters: the
    script counts what the trainer counts."""
    from engine.core.graph import set_training

    graph = samples[name]
    graph = set_training(graph, {**graph.training, "epochs": 1})
    _, events = train(graph, out_dir=tmp_path)
    lines = run_alone(tmp_path / "train.py", REPO)
    want = metrics_of(events)
    assert [sorted(line) for line in lines] == [sorted(m) for m in want]
    for line, m in zip(lines, want, strict=True):
        for key, value in m.items():   # chunked evaluation sums in another order
            assert line[key] == pytest.approx(value, rel=1e-6), key


def test_the_script_carries_every_setting():
    """Each field of the training config reaches CONFIG (the dataset as its description; its
    data is data.pt)."""
    config = TrainingConfig.from_mapping({"dataset": {"name": "moons"}, "clip_grad_norm": 2.5,
                                          "schedule": "one_cycle", "gamma": 0.3,
                                          "step_size": 7, "steps": 99, "eval_every": 5})
    text = train_script(moons_graph(), config)
    namespace: dict = {}
    start = text.index("CONFIG = ")
    exec(text[start:text.index("\n}\n", start) + 3], namespace)   # the literal alone
    written = namespace["CONFIG"]
    for key, value in config.to_mapping().items():
        if key not in ("task", "loss"):   # "auto" is written as what it resolves to
            assert written[key] == value, key
    assert written["task"] == "classification" and written["loss"] == "cross_entropy"
    assert written["num_classes"] == 2


def test_data_is_written_once_per_dataset(tmp_path):
    """Checkpoints rewrite train.py; data.pt only when the dataset or seed changes."""
    graph = moons_graph()
    config = TrainingConfig.from_mapping(graph.training)
    write_train_script(graph, tmp_path, config)
    first = (tmp_path / "data.pt").stat().st_mtime_ns
    write_train_script(graph, tmp_path, config.with_overrides(epochs=9))
    assert (tmp_path / "data.pt").stat().st_mtime_ns == first
    assert "'epochs': 9," in (tmp_path / "train.py").read_text()
    write_train_script(graph, tmp_path, config.with_overrides(seed=3))
    assert (tmp_path / "data.pt").stat().st_mtime_ns != first


def test_dprog_train_writes_a_complete_run_folder(tmp_path):
    from engine.cli.main import main

    out = tmp_path / "run"
    code = main(["train", str(REPO / "sample_graphs" / "moons_mlp.json"), "--epochs", "1",
                 "--out", str(out)])
    assert code == 0
    assert {"model.py", "weights.pt", "train.py", "data.pt"} <= {p.name for p in out.iterdir()}
    recorded = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert run_alone(out / "train.py", tmp_path) == recorded
