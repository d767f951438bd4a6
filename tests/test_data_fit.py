"""The dataset-fit check (`engine.data.fit`) against the trainer: on every sample and on
broken variants of them, the check finds a problem exactly when the trainer's setup
refuses the run, on the same block, and its message names the fix (issue 16)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import SAMPLE_NAMES, build

from engine.core.analysis import analyze
from engine.core.config import TrainingConfig
from engine.core.graph import Graph, set_param
from engine.data.datasets import load_dataset
from engine.data.fit import TARGET_INPUT, fit_problems

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def problems(graph: Graph):
    config = TrainingConfig.from_mapping(graph.training)
    return fit_problems(graph, analyze(graph), load_dataset(config.dataset, config.seed), config)


def trainer_refuses(graph: Graph):
    """The trainer's setup: None when it accepts the graph, else its TrainingError."""
    from engine.runtime.trainer import Trainer, TrainingError

    try:
        Trainer(graph).setup()
    except TrainingError as e:
        return e
    return None


def with_training(graph: Graph, **changes) -> Graph:
    return replace(graph, training={**graph.training, **changes})


def variants(samples: dict) -> list[tuple[str, Graph, str | None, str | None]]:
    """(what, graph, the problem code expected, its node)."""
    moons, rnn = samples["moons_mlp"], samples["rnn_scan"]
    return [
        ("moons: 3 logits for 2 classes", set_param(moons, "fc3", "out_features", 3),
         "data_output_shape", "logits"),
        ("moons: an Input of shape 3", set_param(moons, "x", "shape", [3]),
         "data_input_shape", "x"),
        ("moons: one logit under bce", with_training(set_param(moons, "fc3", "out_features", 1),
                                                     loss="bce_with_logits"), None, None),
        ("moons: one logit under mse", with_training(set_param(moons, "fc3", "out_features", 1),
                                                     loss="mse"), "data_output_shape", "logits"),
        ("moons: the task says regression", with_training(moons, task="regression"),
         "data_task", None),
        ("rnn_scan: cross_entropy on regression", with_training(rnn, loss="cross_entropy"),
         "data_task", None),
        ("rnn_scan: two outputs for one target", set_param(rnn, "head", "out_features", 2),
         "data_output_shape", "total"),
    ]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_sample_fits_its_dataset(samples, name):
    assert problems(samples[name]) == ()


def test_the_check_agrees_with_the_trainer(samples):
    for what, graph, code, node in variants(samples):
        found = problems(graph)
        refused = trainer_refuses(graph)
        assert bool(found) == (refused is not None), (what, found, refused)
        if code is None:
            continue
        assert [d.code for d in found] == [code], (what, found)
        assert found[0].node == node and found[0].severity == "error", (what, found)
        if node is not None and refused.node is not None:
            assert refused.node == node, (what, refused)


def test_messages_name_the_fix(samples):
    (d,) = problems(set_param(samples["moons_mlp"], "fc3", "out_features", 3))
    assert "2 classes" in d.message and "set fc3's out_features to 2" in d.message
    (d,) = problems(set_param(samples["moons_mlp"], "x", "shape", [3]))
    assert "set the Input's shape to [2]" in d.message
    (d,) = problems(with_training(samples["rnn_scan"], loss="cross_entropy"))
    assert "use the loss mse or l1" in d.message


def test_a_graph_loss_checks_the_input_only():
    graph = build([("x", "input", {"shape": [3]}), (TARGET_INPUT, "input", {"shape": []}),
                   ("fc", "linear", {"out_features": 5}), ("out", "output", {})],
                  ["x -> fc", "fc -> out"], training={"dataset": {"name": "moons"},
                                                      "loss": "graph"})
    (d,) = problems(graph)
    assert d.code == "data_input_shape" and d.node == "x"


def test_the_target_input_is_the_trainers():
    from engine.runtime import trainer

    assert TARGET_INPUT == trainer.TARGET_INPUT
