"""The function samples (issue 12) trained by the test suite, each against a stated trivial
baseline: unet.json (a double-conv function called five times with weights of its own)
classifies 8×8 digits far above the majority class; gpt_blocks.json (a transformer Block
function called twice, the LM head tied to the token embedding) predicts the next character
better than the unigram frequencies. Medians of the last evaluations, wide margins."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from helpers import REPO

from engine import analyze, compile_graph, load_graph
from engine.core.codegen import generate
from engine.core.config import TrainingConfig
from engine.core.events import EvalMetrics, Finished
from engine.core.graph import set_tie
from engine.runtime.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SAMPLES = REPO / "sample_graphs"


def run(name: str, epochs: int):
    graph = load_graph(SAMPLES / f"{name}.json")
    trainer, events = train(graph, TrainingConfig.from_mapping(graph.training)
                            .with_overrides(epochs=epochs))
    assert isinstance(events[-1], Finished), getattr(events[-1], "message", events[-1])
    return graph, trainer, [e for e in events if isinstance(e, EvalMetrics)]


@pytest.mark.slow
def test_unet_beats_the_majority_class():
    # measured: 0.20, 0.71, 0.77, 0.91 accuracy after epochs 1-4 (0.91, 0.89 after 5, 6)
    _, trainer, evals = run("unet", 4)
    y = trainer.data.y_val
    majority = np.bincount(y).max() / y.size   # ~0.11
    assert statistics.median(e.val_accuracy for e in evals[-3:]) > majority + 0.5


@pytest.mark.slow
def test_gpt_blocks_beat_unigram_frequencies():
    # measured on 6 epochs: validation loss 2.79, 2.72, 2.66 nats, against 3.34 for unigrams
    _, trainer, evals = run("gpt_blocks", 6)
    data = trainer.data
    counts = np.bincount(data.y_train.ravel(), minlength=data.num_classes) + 0.5
    p = counts / counts.sum()
    unigram = float(-np.log(p[data.y_val.ravel()]).mean())
    assert statistics.median(e.val_loss for e in evals[-3:]) < unigram - 0.3


def test_the_samples_are_built_as_documented():
    unet = load_graph(SAMPLES / "unet.json")
    calls = [n for n in unet.nodes if n.type == "call"]
    assert len(calls) == 5 and {n.params["function"] for n in calls} == {"double_conv"}
    assert all(n.params.get("weights", "own") == "own" for n in calls)
    assert "class DoubleConv(nn.Module)" in generate(unet).source
    gpt = load_graph(SAMPLES / "gpt_blocks.json")
    assert gpt.node("head").ties == {"weight": ("tokens", "weight")}
    model = compile_graph(gpt)
    assert model.head.weight is model.tokens.weight
    assert sum(p.numel() for p in model.parameters()) == analyze(gpt).total_params
    untied = analyze(set_tie(gpt, "head", "weight", None)).total_params
    assert untied - analyze(gpt).total_params == 96 * 32   # the head's weight, counted once


def test_a_tied_model_checkpoints_and_resumes_with_the_tie(tmp_path):
    """The tied head and embedding are one tensor in the checkpoint's state dict (two keys,
    one storage) and still one after resuming."""
    graph = load_graph(SAMPLES / "gpt_blocks.json")
    config = TrainingConfig.from_mapping(graph.training).with_overrides(
        epochs=1, steps=3, dataset={"name": "text", "length": 32, "n_samples": 64})
    _, first = train(graph, config, out_dir=tmp_path)
    assert isinstance(first[-1], Finished)
    resumed, second = train(graph, config.with_overrides(steps=5), out_dir=tmp_path,
                            resume_from=tmp_path)
    assert isinstance(second[-1], Finished), second[-1]
    assert resumed.module.head.weight is resumed.module.tokens.weight
