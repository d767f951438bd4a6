"""The three program samples trained by the test suite, each judged against a stated baseline:
projectile.json (no data: its fitted launch against the closed form), vae.json (its ELBO
against the mean image), char_gpt.json (its next-character loss against the unigram
frequencies), and what training a program without data means: its own loss, its Parameter
values reported, checkpoints that resume, a clear refusal of a data loss.

Float results differ across CPUs, so each judgement is a robust property (the median of the
last evaluations) with a wide margin; each run takes seconds on one torch thread.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import REPO, build

from engine import cli
from engine.core.config import TrainingConfig
from engine.core.events import EvalMetrics, Failed, Finished, ImageGrid, ParameterValues, Started
from engine.runtime.generate import GenerateError, generate_text, text_model
from engine.runtime.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SAMPLES = REPO / "sample_graphs"


def run(graph, **overrides):
    config = TrainingConfig.from_mapping(graph.training).with_overrides(**overrides)
    trainer, events = train(graph, config)
    assert isinstance(events[-1], Finished), getattr(events[-1], "message", events[-1])
    return trainer, events


def of(events, kind) -> list:
    return [e for e in events if isinstance(e, kind)]


def median_last(values: list[float], n: int = 5) -> float:
    return statistics.median(values[-n:])


# --- projectile: a program without data ------------------------------------------------------

# The sample's physics (tools/make_samples.py): 40 explicit Euler steps of 0.05 s under
# g = 9.81 m/s², landing 30 m away. Euler's positions are x_N = N·dt·vx and
# y_N = N·dt·vy - g·dt²·N(N-1)/2, so hitting (30, 0) takes vx = 30 / (N·dt) and
# vy = g·dt·(N-1)/2: speed and angle in closed form.
STEPS, DT, G, TARGET = 40, 0.05, 9.81, 30.0
VX, VY = TARGET / (STEPS * DT), G * DT * (STEPS - 1) / 2
SPEED, ANGLE = math.hypot(VX, VY), math.atan2(VY, VX)


def test_projectile_fits_the_closed_form(samples):
    trainer, events = run(samples["projectile"])
    assert of(events, Started)[0].task == "optimization" and trainer.data is None
    values = of(events, ParameterValues)
    assert len(values) == 400 and values[-1].step == 400
    speed, angle = values[-1].values["speed"][0], values[-1].values["angle"][0]
    assert speed == pytest.approx(SPEED, abs=2e-3) and angle == pytest.approx(ANGLE, abs=2e-4)
    # from the chosen start, not from noise: the first report is one step from it
    assert values[0].values["speed"][0] == pytest.approx(10.0, abs=0.25)
    # The continuous answer (vy = g·T/2) is a few degrees away: the loop is Euler's method.
    assert abs(math.atan2(G * STEPS * DT / 2, VX) - angle) > 0.01
    losses = [e.val_loss for e in of(events, EvalMetrics)]
    assert losses[0] > 100 and median_last(losses) < 1e-3   # from a miss of metres to millimetres


def test_a_program_reports_its_parameters_and_resumes(samples, tmp_path):
    # A constant learning rate: a schedule's rates depend on the run's length.
    graph = replace(samples["projectile"], training={**samples["projectile"].training,
                                                     "schedule": "constant"})
    trainer, events = run(graph, steps=30)
    assert trainer.parameter_values().values.keys() == {"speed", "angle"}
    config = TrainingConfig.from_mapping(graph.training)
    train(graph, config.with_overrides(steps=15), out_dir=tmp_path)
    resumed, events = train(graph, config.with_overrides(steps=30), out_dir=tmp_path,
                            resume_from=tmp_path)
    assert isinstance(events[-1], Finished) and of(events, Started)[0].first_step == 15
    for name, p in trainer.module.named_parameters():
        torch.testing.assert_close(p, dict(resumed.module.named_parameters())[name])


def test_a_program_needs_its_own_loss():
    graph = build([("p", "parameter", {"shape": [], "init": "constant", "value": 3.0}),
                   ("sq", "expression", {"expr": "(a - 1.5) ** 2", "inputs": 1}), ("o", "output")],
                  ["p -> sq.a", "sq -> o"], training={"loss": "mse", "steps": 5})
    trainer, events = train(graph)
    assert isinstance(events[-1], Failed) and events[-1].kind == "config"
    assert "graph" in events[-1].message
    # "auto" means the graph's own loss here; the epochs count steps
    trainer, events = run(replace(graph, training={"epochs": 200, "lr": 0.05}))
    assert trainer.total_steps == 200
    assert of(events, ParameterValues)[-1].values["p"][0] == pytest.approx(1.5, abs=1e-2)
    not_scalar = build([("p", "parameter", {"shape": [2]}), ("o", "output")], ["p -> o"],
                       training={"steps": 2})
    _, events = train(not_scalar)
    assert isinstance(events[-1], Failed) and "scalar loss" in events[-1].message


def test_dprog_train_writes_the_parameters_of_a_program(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", str(SAMPLES / "projectile.json"), "--steps", "50", "--quiet",
                     "--out", str(out)])
    summary = capsys.readouterr().out
    assert code == 0 and "speed = " in summary and "angle = " in summary
    lines = [json.loads(line) for line in (out / "parameters.jsonl").read_text().splitlines()]
    assert len(lines) == 50 and lines[-1]["step"] == 50
    assert set(lines[-1]["values"]) == {"speed", "angle"}
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 50


def test_graphs_with_data_report_no_parameter_values(samples):
    _, events = run(samples["moons_mlp"], epochs=1)
    assert not of(events, ParameterValues) and not of(events, ImageGrid)


# --- vae: an autoencoder of the digits --------------------------------------------------------


def mean_image_nats(data) -> float:
    """The trivial baseline: every image reconstructed as the mean training image (no code at
    all, so no KL), per image in nats of binary cross-entropy on the validation images."""
    m = data.x_train.reshape(len(data.x_train), -1).mean(0).clip(1e-6, 1 - 1e-6)
    x = data.x_val.reshape(len(data.x_val), -1)
    return float(-(x * np.log(m) + (1 - x) * np.log(1 - m)).sum(1).mean())


def test_vae_beats_the_mean_image_and_shows_its_reconstructions(samples):
    trainer, events = run(samples["vae"], epochs=20)
    baseline = mean_image_nats(trainer.data)   # 27.2 nats
    elbo = [e.val_loss for e in of(events, EvalMetrics)]
    assert median_last(elbo) < baseline - 2.0, (median_last(elbo), baseline)   # ~23.3
    assert all(e.val_accuracy is None for e in of(events, EvalMetrics))   # no class scores
    grids = of(events, ImageGrid)
    assert len(grids) == 20
    last = grids[-1]
    assert last.inputs.shape == last.outputs.shape == (8, 8, 8)
    assert last.outputs.min() >= 0.0 and last.outputs.max() <= 1.0
    np.testing.assert_array_equal(last.inputs, trainer.data.x_val[:8].reshape(8, 8, 8))
    # the reconstructions look like their images more than the first epoch's did
    error = [float(np.abs(g.outputs - g.inputs).mean()) for g in grids]
    assert error[-1] < error[0]


# --- char_gpt: a causal transformer over characters -------------------------------------------


def unigram_nats(data) -> float:
    """The trivial baseline: each next character from the training text's character
    frequencies alone, in nats per character on the validation text."""
    counts = np.bincount(data.y_train.ravel(), minlength=data.num_classes) + 0.5
    p = counts / counts.sum()
    return float(-np.log(p[data.y_val.ravel()]).mean())


@pytest.fixture(scope="module")
def char_gpt_run():
    from engine import load_graph

    graph = load_graph(SAMPLES / "char_gpt.json")
    trainer, events = run(graph, epochs=8)
    return graph, trainer, events


def test_char_gpt_beats_unigram_frequencies(char_gpt_run):
    _, trainer, events = char_gpt_run
    baseline = unigram_nats(trainer.data)   # 3.34 nats
    evals = of(events, EvalMetrics)
    nll = [e.val_loss for e in evals]
    assert median_last(nll, 3) < baseline - 0.4, (median_last(nll, 3), baseline)   # ~2.6
    # accuracy is per character, against the most frequent character's share
    top = np.bincount(trainer.data.y_val.ravel()).max() / trainer.data.y_val.size
    assert median_last([e.val_accuracy for e in evals], 3) > top + 0.05


def test_char_gpt_writes_text_reproducibly(char_gpt_run, tmp_path, capsys):
    graph, trainer, _ = char_gpt_run
    model = text_model(graph)
    assert (model.window, model.logits) == (32, 1)
    text = generate_text(graph, trainer.module, "The data", 60, temperature=0.8, seed=3)
    assert len(text) == 60 and text == generate_text(graph, trainer.module, "The data", 60,
                                                     temperature=0.8, seed=3)
    assert trainer.module.training, "generation leaves the module as it found it"
    greedy = generate_text(graph, trainer.module, "the ", 40, temperature=0.0)
    assert sum(c.isalpha() or c == " " for c in greedy) > 30, greedy
    # The command line: a run folder's weights and graph.json.
    torch.save(trainer.module.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "graph.json").write_text((SAMPLES / "char_gpt.json").read_text())
    code = cli.main(["generate", "--weights", str(tmp_path), "--prompt", "The data",
                     "--length", "60", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0 and out == "The data" + text + "\n"


def test_generate_refuses_what_cannot_write_text(samples, tmp_path, capsys):
    with pytest.raises(GenerateError, match="text dataset"):
        text_model(samples["moons_mlp"])
    code = cli.main(["generate", str(SAMPLES / "moons_mlp.json"), "--weights", str(tmp_path)])
    assert code == 1 and "text dataset" in capsys.readouterr().err
    code = cli.main(["generate", str(SAMPLES / "char_gpt.json"), "--weights", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1


def test_the_exported_train_py_of_a_program_fits_it_alone(samples, tmp_path):
    """Export › All for a program: model.py and a train.py that fits the Parameters with the
    trainer's optimizer and schedule, and no data; it runs with only torch, from any folder,
    and writes retrained.pt beside itself."""
    import subprocess
    import sys

    from engine.runtime.export import export_all

    written = export_all(samples["projectile"], tmp_path)
    assert sorted(p.name for p in written) == ["model.py", "train.py"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, str(tmp_path / "train.py")], cwd=elsewhere,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    fitted = dict(line.split(" = ") for line in done.stdout.splitlines() if " = " in line)
    assert json.loads(fitted["speed"])[0] == pytest.approx(SPEED, abs=2e-3)
    assert json.loads(fitted["angle"])[0] == pytest.approx(ANGLE, abs=2e-4)
    assert (tmp_path / "retrained.pt").exists() and "Warning" not in done.stderr
    assert list(elsewhere.iterdir()) == []
