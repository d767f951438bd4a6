"""Gradient flow: one entry per edge of the user's graph (bodies included), numbers that match
hand-written torch, loops aggregated over iterations, fan-out edges kept apart, node weight
statistics, dead ReLUs and the vanishing/exploding flags."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import SAMPLE_NAMES, build

from engine.core.analysis import analyze
from engine.core.codegen import generate
from engine.core.config import TrainingConfig
from engine.core.events import GradFlowSnapshot
from engine.runtime.gradflow import (
    _Flags,
    graph_edge_keys,
    node_parameters,
    source_node,
)
from engine.runtime.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Collect:
    def __init__(self):
        self.events = []

    def put(self, event):
        self.events.append(event)


def probed_trainer(graph, **changes) -> Trainer:
    config = TrainingConfig.from_mapping(graph.training).with_overrides(gradflow_every=1,
                                                                          **changes)
    trainer = Trainer(graph, config, events=Collect())
    trainer.setup()
    return trainer


def first_batch(trainer: Trainer) -> torch.Tensor | None:
    if trainer.sampler is None:   # a program without data: its step takes no samples
        return None
    trainer.sampler.set_epoch(0)
    return torch.tensor(list(trainer.sampler))[:trainer.rank_batch]


def one_snapshot(trainer: Trainer, index: torch.Tensor | None = None) -> GradFlowSnapshot:
    trainer.train_step(first_batch(trainer) if index is None else index)
    return [e for e in trainer.events.events if isinstance(e, GradFlowSnapshot)][-1]


def edges_of(graph, prefix="", functions=None):
    """The graph's edge keys, written out independently of engine.runtime.gradflow: a
    function's body's at each call, under call/function/."""
    functions = graph.functions if functions is None else functions
    keys = {prefix + f"{e.src[0]}.{e.src[1]}->{e.dst[0]}.{e.dst[1]}" for e in graph.edges}
    for node in graph.nodes:
        for name, region in node.regions.items():
            keys |= edges_of(region, f"{prefix}{node.id}/{name}/", functions)
        if node.type == "call":
            name = node.params["function"]
            keys |= edges_of(functions[name].body, f"{prefix}{node.id}/{name}/", functions)
    return keys


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_snapshot_keys_are_exactly_the_graph_edges(samples, name):
    graph = samples[name]
    snapshot = one_snapshot(probed_trainer(graph))
    assert set(snapshot.edges) == edges_of(graph)
    assert len(snapshot.edges) == len(graph_edge_keys(graph))
    params = {path for path, _ in graph.walk()} & set(snapshot.nodes)
    assert params == set(snapshot.nodes)            # node stats only for real nodes
    assert snapshot.nodes and all(n.weight_rms > 0 for n in snapshot.nodes.values())
    analysis = analyze(graph)
    for key, edge in snapshot.edges.items():       # every wire of floats was read and measured
        src, port = key.split("->")[0].rsplit(".", 1)
        if analysis.outputs[src][port].dtype == "float":
            assert edge.reads >= 1, key
        else:   # token ids and masks have no statistics and no gradient
            assert edge.reads == 0 and edge.grad_rms is None, key
        assert edge.grad_rms is None or math.isfinite(edge.grad_rms), key


def test_edge_rms_matches_hand_written_torch(samples):
    trainer = probed_trainer(samples["moons_mlp"])
    m, index = trainer.module, first_batch(trainer)
    x, y = trainer.x_train[index], trainer.y_train[index]
    x = x.clone().requires_grad_(True)
    fc1 = m.fc1(x)
    act1 = torch.tanh(fc1)
    fc2 = m.fc2(act1)
    act2 = torch.tanh(fc2)
    fc3 = m.fc3(act2)
    loss = torch.nn.functional.cross_entropy(fc3, y)
    wires = {"x.y->fc1.x": x, "fc1.y->act1.x": fc1, "act1.y->fc2.x": act1, "fc2.y->act2.x": fc2,
             "act2.y->fc3.x": act2, "fc3.y->logits.x": fc3}
    grads = dict(zip(wires, torch.autograd.grad(loss, list(wires.values())), strict=True))
    snapshot = one_snapshot(trainer, index)
    for key, value in wires.items():
        edge = snapshot.edges[key]
        assert edge.grad_rms == pytest.approx(grads[key].pow(2).mean().sqrt().item(), rel=1e-4)
        assert edge.mean == pytest.approx(value.mean().item(), rel=1e-4, abs=1e-6)
        assert edge.std == pytest.approx(value.std(unbiased=False).item(), rel=1e-3)
        assert edge.zero_fraction == 0.0 and edge.reads == 1


def test_loop_edges_aggregate_over_iterations(samples):
    """The body wire h -> from_state is read once per step of the scan: its RMS is over all
    the reads that carried a gradient (the zeros state of step 0 carries none)."""
    trainer = probed_trainer(samples["rnn_scan"])
    m, index = trainer.module, first_batch(trainer)
    seq, y = trainer.x_train[index], trainer.y_train[index]
    h = seq.new_zeros(len(seq), 32)
    states = []
    for x_t in seq.unbind(1):
        h = torch.tanh(m.rnn.from_input(x_t) + m.rnn.from_state(h))
        states.append(h)
    loss = torch.nn.functional.mse_loss(m.head(h), y)
    # states[:-1] are read by from_state in the next step; the last one only by the head
    grads = torch.autograd.grad(loss, states[:-1])
    expected = math.sqrt(sum(g.pow(2).sum().item() for g in grads) / sum(g.numel() for g in grads))
    snapshot = one_snapshot(trainer, index)
    edge = snapshot.edges["rnn/body/h.y->from_state.x"]
    assert edge.reads == 10
    assert edge.grad_rms == pytest.approx(expected, rel=1e-4)


def test_a_tensor_with_two_consumers_has_two_gradients(samples):
    snapshot = one_snapshot(probed_trainer(samples["residual_mlp"]))
    into_fc1 = snapshot.edges["act0.y->fc1.x"].grad_rms
    skipped = snapshot.edges["act0.y->skip1.a"].grad_rms
    assert into_fc1 and skipped and into_fc1 != pytest.approx(skipped, rel=1e-3)
    # the same activation flows on both wires
    assert snapshot.edges["act0.y->fc1.x"].mean == snapshot.edges["act0.y->skip1.a"].mean


def test_wires_without_gradient_report_none(samples):
    snapshot = one_snapshot(probed_trainer(samples["gated_branch"]))
    condition = snapshot.edges["side.y->route.cond"]   # read only through a comparison
    assert condition.grad_rms is None and condition.mean is not None
    assert snapshot.edges["x.y->route.x"].reads == 2   # both arms read it
    assert snapshot.edges["route/then/fc.y->y.x"].grad_rms > 0


def test_update_ratio_is_the_sgd_step_over_the_weights():
    graph = build([("x", "input", {"shape": [2]}), ("fc", "linear", {"out_features": 2}),
                   ("y", "output", {})], ["x -> fc", "fc -> y"],
                  training={"dataset": {"name": "moons", "n_samples": 100}, "optimizer": "sgd",
                            "momentum": 0.0, "lr": 0.5})
    trainer = probed_trainer(graph)
    weights = torch.cat([p.detach().reshape(-1).clone() for p in trainer.module.parameters()])
    snapshot = one_snapshot(trainer)
    grads = torch.cat([p.grad.reshape(-1) for p in trainer.module.parameters()])
    node = snapshot.nodes["fc"]
    assert node.grad_rms == pytest.approx(grads.pow(2).mean().sqrt().item(), rel=1e-5)
    assert node.weight_rms == pytest.approx(weights.pow(2).mean().sqrt().item(), rel=1e-5)
    assert node.update_ratio == pytest.approx(0.5 * grads.norm().item() / weights.norm().item(),
                                              rel=1e-4)


def test_dead_relu_units_are_counted():
    graph = build([("x", "input", {"shape": [2]}), ("fc", "linear", {"out_features": 16}),
                   ("act", "relu", {}), ("fc2", "linear", {"out_features": 2}),
                   ("y", "output", {})], ["x -> fc", "fc -> act", "act -> fc2", "fc2 -> y"],
                  training={"dataset": {"name": "moons", "n_samples": 200}})
    trainer = probed_trainer(graph)
    with torch.no_grad():
        trainer.module.fc.bias[:5] = -100.0   # these five units never fire
        trainer.module.fc.bias[5:] = 100.0    # and these always do
    snapshot = one_snapshot(trainer)
    assert snapshot.dead_units == {"act": (5, 16)}
    assert snapshot.edges["act.y->fc2.x"].zero_fraction == pytest.approx(5 / 16)


def test_flags():
    flags = _Flags(vanishing_below=1e-6, vanishing_streak=3, exploding_above=100.0, growth=10.0)
    assert [flags("e", v) for v in (1e-7, 1e-7, 1e-7, 1e-7, 1.0)] == [
        (), (), ("vanishing",), ("vanishing",), ()]
    assert flags("e", 500.0) == ("exploding",)             # too large
    assert flags("f", 1.0) == () and flags("f", 20.0) == ("exploding",)   # grew 20x
    assert flags("g", 1e-3) == () and flags("g", 0.5) == ()   # grew, but still small
    assert flags("h", None) == ()


def test_vanishing_gradients_are_flagged_in_snapshots():
    graph = build([("x", "input", {"shape": [2]}), ("fc", "linear", {"out_features": 8}),
                   ("squash", "sigmoid", {}), ("fc2", "linear", {"out_features": 2}),
                   ("y", "output", {})], ["x -> fc", "fc -> squash", "squash -> fc2", "fc2 -> y"],
                  training={"dataset": {"name": "moons", "n_samples": 200}, "optimizer": "sgd",
                            "lr": 1e-9})
    trainer = probed_trainer(graph)
    with torch.no_grad():
        trainer.module.fc.bias.fill_(60.0)   # the sigmoid saturates: nothing flows back through
    for _ in range(3):
        snapshot = one_snapshot(trainer)
    assert "fc.y->squash.x" in snapshot.flagged("vanishing")
    assert "fc" in snapshot.flagged("vanishing")
    assert "fc2" not in snapshot.flagged("vanishing")


def test_parameters_of_unshared_loop_bodies_belong_to_their_node():
    graph = build([("x", "input", {"shape": [4]}),
                   ("loop", "loop", {"mode": "repeat", "count": 3, "share_weights": False},
                    {"body": build([("h", "body_input", {"role": "state", "shape": [4]}),
                                    ("fc", "linear", {"out_features": 4}),
                                    ("h_next", "body_output", {"role": "state", "state": "h"})],
                                   ["h -> fc", "fc -> h_next"])}),
                   ("y", "output", {})], ["x -> loop.h", "loop.h -> y"])
    generated = generate(graph)
    assert generated.node_modules == {"loop/body/fc": "loop.fc"}
    from engine.runtime.compiler import compile_graph

    module = compile_graph(graph)
    params = node_parameters(module, generated.node_modules)
    assert len(params["loop/body/fc"]) == 6      # weight and bias of each of 3 iterations


def test_node_modules_through_nested_regions(samples):
    generated = generate(samples["gated_branch"])
    assert generated.node_modules == {"route/then/fc": "route_then.fc",
                                      "route/else/fc": "route_else.fc"}
    assert source_node("route/then/fc.y->y.x") == "route/then/fc"
    assert source_node("refine.h->head.x") == "refine"


def test_snapshot_to_json_is_plain(samples):
    import json

    snapshot = one_snapshot(probed_trainer(samples["digits_cnn"]))
    record = json.loads(json.dumps(snapshot.to_json()))
    assert set(record) == {"step", "edges", "nodes", "dead_units", "groups"}
    assert record["groups"] == {}   # no weight groups in this graph
    assert set(record["dead_units"]) == {"relu1", "relu2"}
    assert record["edges"]["relu1.y->pool1.x"]["zero_fraction"] > 0
