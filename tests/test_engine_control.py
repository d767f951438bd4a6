"""Loops and branches: each mode does what it says, per sample where it says so, and
gradients through them are right (gradcheck in float64)."""

from __future__ import annotations

import pytest
import torch
from helpers import build, linear_body
from torch.func import functional_call

import engine
from engine.core.analysis import BRANCH_RULES, LOOP_RULES, analyze
from engine.core.graph import set_param
from nodes import control


def branch_graph(mode: str, threshold: float = 0.0):
    """x (B, 2) -> cond = x[:, 0] -> branch(then: Linear 2->3, else: Linear 2->3) -> y."""
    return build([
        ("x", "input", {"shape": [2]}),
        ("side", "select", {"dim": 1, "index": 0}),
        ("route", "branch", {"mode": mode, "threshold": threshold},
         {"then": linear_body(3), "else": linear_body(3)}),
        ("y", "output"),
    ], ["x -> side", "side -> route.cond", "x -> route.x", "route.y -> y"], name="branchy")


def test_per_sample_branch_takes_both_bodies_in_one_batch():
    torch.manual_seed(0)
    model = engine.compile_graph(branch_graph("per_sample", threshold=0.25))
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.3, -2.0], [0.2, 1.0], [0.25, 3.0]])
    out = model(x)
    then, other = model.route_then(x), model.route_else(x)
    taken = x[:, 0] > 0.25
    assert taken.tolist() == [True, False, True, False, False]
    for i in range(len(x)):
        assert torch.equal(out[i], then[i] if taken[i] else other[i]), i
    assert not torch.equal(then, other)


def test_hard_branch_runs_one_body_for_the_whole_batch():
    torch.manual_seed(0)
    model = engine.compile_graph(branch_graph("hard"))
    positive = torch.tensor([[2.0, 1.0], [-1.0, 3.0]])     # mean cond 0.5 > 0: then
    negative = torch.tensor([[-2.0, 1.0], [1.0, 3.0]])     # mean cond -0.5: else
    assert torch.equal(model(positive), model.route_then(positive))
    assert torch.equal(model(negative), model.route_else(negative))
    source = engine.export_python(branch_graph("hard"))
    assert "torch.where" not in source and "if " in source


def counter_body(step: float = 0.25):
    """h' = inc(h) (set to h + step by the tests), halting once h' exceeds the threshold."""
    return build([
        ("h", "body_input", {"role": "state", "shape": [1]}),
        ("inc", "linear", {"out_features": 1}),
        ("score", "linear", {"out_features": 1, "bias": False}),
        ("h_next", "body_output", {"role": "state", "state": "h"}),
        ("halt", "body_output", {"role": "halt"}),
    ], ["h -> inc", "inc -> h_next", "inc -> score", "score -> halt"])


def while_graph(halt: str = "per_sample", share_weights: bool = True):
    return build([
        ("x", "input", {"shape": [1]}),
        ("count_up", "loop", {"mode": "while", "max_iters": 10, "threshold": 1.0, "halt": halt,
                              "share_weights": share_weights}, {"body": counter_body()}),
        ("value", "output"),
        ("steps", "output"),
    ], ["x -> count_up.h", "count_up.h -> value", "count_up.iterations -> steps"], name="counter")


def set_counter_weights(body: torch.nn.Module, step: float = 0.25) -> None:
    with torch.no_grad():
        body.inc.weight.fill_(1.0)
        body.inc.bias.fill_(step)
        body.score.weight.fill_(1.0)


def test_per_sample_while_loop_halts_each_sample_at_its_own_step():
    model = engine.compile_graph(while_graph())
    set_counter_weights(model.count_up)
    x = torch.tensor([[0.9], [0.6], [0.1], [-0.4]])
    value, steps = model(x)
    # h grows by 0.25 per step; a sample halts once h' > 1.0 and keeps that h'.
    assert steps.tolist() == [1.0, 2.0, 4.0, 6.0]
    torch.testing.assert_close(value[:, 0], torch.tensor([1.15, 1.1, 1.1, 1.1]))
    assert steps.shape == (4,) and steps.dtype == torch.float32


def test_batch_while_loop_halts_all_samples_together():
    model = engine.compile_graph(while_graph(halt="batch"))
    set_counter_weights(model.count_up)
    x = torch.tensor([[0.9], [-0.4]])
    value, steps = model(x)
    # the batch stops once the mean h' exceeds 1.0: after 4 steps (mean 0.25 + 4 * 0.25 = 1.25)
    assert steps.tolist() == [4.0, 4.0]
    torch.testing.assert_close(value[:, 0], torch.tensor([1.9, 0.6]))


def test_while_loop_stops_at_max_iters():
    model = engine.compile_graph(while_graph())
    set_counter_weights(model.count_up, step=0.01)
    value, steps = model(torch.tensor([[0.0], [0.995]]))
    assert steps.tolist() == [10.0, 1.0]
    torch.testing.assert_close(value[:, 0], torch.tensor([0.1, 1.005]))


def add_one_body():
    return build([
        ("h", "body_input", {"role": "state", "shape": [2]}),
        ("inc", "linear", {"out_features": 2}),
        ("h_next", "body_output", {"role": "state", "state": "h"}),
    ], ["h -> inc", "inc -> h_next"])


def set_identity_plus_one(fc: torch.nn.Linear) -> None:
    with torch.no_grad():
        fc.weight.copy_(torch.eye(2))
        fc.bias.fill_(1.0)


def test_repeat_loop_runs_count_times():
    graph = build([("x", "input", {"shape": [2]}),
                   ("rep", "loop", {"mode": "repeat", "count": 3}, {"body": add_one_body()}),
                   ("y", "output")], ["x -> rep.h", "rep.h -> y"])
    model = engine.compile_graph(graph)
    set_identity_plus_one(model.rep.inc)
    x = torch.randn(4, 2)
    torch.testing.assert_close(model(x), x + 3)


def test_repeat_loop_takes_its_count_from_an_input():
    graph = build([("x", "input", {"shape": [2]}),
                   ("n", "input", {"shape": [1], "dtype": "long"}),
                   ("rep", "loop", {"mode": "repeat", "count_from": "input", "max_iters": 7},
                    {"body": add_one_body()}),
                   ("y", "output")], ["x -> rep.h", "n -> rep.count", "rep.h -> y"])
    assert engine.validate(graph) == []
    model = engine.compile_graph(graph)
    set_identity_plus_one(model.rep.inc)
    x = torch.zeros(2, 2)
    # the count is the batch's max, clamped to 1..max_iters
    torch.testing.assert_close(model(x, torch.tensor([[2], [5]])), x + 5)
    torch.testing.assert_close(model(x, torch.tensor([[0], [0]])), x + 1)
    torch.testing.assert_close(model(x, torch.tensor([[100], [3]])), x + 7)


def cumsum_body():
    """A scan body with a running sum as state and each step's sum as a per-step output."""
    return build([
        ("total", "body_input", {"role": "state", "shape": [3]}),
        ("x_t", "body_input", {"role": "sequence"}),
        ("plus", "add"),
        ("total_next", "body_output", {"role": "state", "state": "total"}),
        ("running", "body_output", {"role": "output"}),
    ], ["total -> plus.a", "x_t -> plus.b", "plus -> total_next", "plus -> running"])


@pytest.mark.parametrize("dim", [1, 2])
def test_scan_collects_per_step_outputs(dim):
    shape = [5, 3] if dim == 1 else [3, 5]
    graph = build([("seq", "input", {"shape": shape}),
                   ("scan", "loop", {"mode": "scan", "dim": dim}, {"body": cumsum_body()}),
                   ("last", "output"), ("steps", "output")],
                  ["seq -> scan.x_t", "scan.total -> last", "scan.running -> steps"])
    analysis = analyze(graph)
    assert analysis.ok, analysis.diagnostics
    assert str(analysis.outputs["scan"]["running"]) == f"(B, {', '.join(map(str, shape))})"
    model = engine.compile_graph(graph)
    seq = torch.randn(4, *shape)
    last, steps = model(seq)
    assert steps.shape == seq.shape
    torch.testing.assert_close(steps, seq.cumsum(dim))
    torch.testing.assert_close(last, seq.sum(dim))


@pytest.mark.parametrize("mode", ["scan", "while", "repeat"])
def test_unshared_weights_give_each_iteration_its_own_module(mode, samples):
    if mode == "scan":
        graph, loop, iters = samples["rnn_scan"], "rnn", 10
    elif mode == "while":
        graph, loop, iters = samples["adaptive_depth"], "refine", 8
    else:
        graph = build([("x", "input", {"shape": [2]}),
                       ("rep", "loop", {"mode": "repeat", "count": 4}, {"body": add_one_body()}),
                       ("y", "output")], ["x -> rep.h", "rep.h -> y"])
        loop, iters = "rep", 4
    shared = analyze(graph)
    unshared_graph = set_param(graph, loop, "share_weights", False)
    unshared = analyze(unshared_graph)
    assert unshared.ok
    body = shared.param_counts[loop]
    assert unshared.param_counts[loop] == body * iters
    assert unshared.total_params == shared.total_params + body * (iters - 1)

    source = engine.export_python(unshared_graph)
    assert "nn.ModuleList(" in source and f"for _ in range({iters}))" in source
    torch.manual_seed(0)
    model = engine.compile_graph(unshared_graph)
    assert isinstance(getattr(model, loop), torch.nn.ModuleList)
    assert len(getattr(model, loop)) == iters
    assert sum(p.numel() for p in model.parameters()) == unshared.total_params
    # different iterations really use different weights
    first, second = (dict(m.named_parameters()) for m in list(getattr(model, loop))[:2])
    assert any(not torch.equal(first[k], second[k]) for k in first)
    inputs = engine.example_inputs(unshared_graph, 3, generator=torch.Generator().manual_seed(0))
    out = model(*inputs)
    out.sum().backward()
    assert all(p.grad is not None for p in getattr(model, loop)[0].parameters())


# --- gradcheck in float64 -----------------------------------------------------------------


def gradcheck_graph(graph, inputs, *, params=True):
    """gradcheck of the compiled module w.r.t. its inputs and (via functional_call) its params."""
    torch.manual_seed(0)
    model = engine.compile_graph(graph).double()
    names = [n for n, _ in model.named_parameters()] if params else []
    values = [p.detach().clone().requires_grad_() for _, p in model.named_parameters()] if params \
        else []
    inputs = [t.double().requires_grad_() for t in inputs]

    def run(*args):
        tensors, weights = args[:len(inputs)], args[len(inputs):]
        return functional_call(model, dict(zip(names, weights, strict=True)), tuple(tensors))

    assert torch.autograd.gradcheck(run, (*inputs, *values), eps=1e-6, atol=1e-5)


def test_gradcheck_mlp():
    graph = build([("x", "input", {"shape": [3]}), ("fc1", "linear", {"out_features": 4}),
                   ("act", "tanh"), ("fc2", "linear", {"out_features": 2}), ("y", "output")],
                  ["x -> fc1", "fc1 -> act", "act -> fc2", "fc2 -> y"])
    gradcheck_graph(graph, [torch.randn(2, 3)])


def test_gradcheck_scan():
    body = build([
        ("h", "body_input", {"role": "state", "shape": [3]}),
        ("x_t", "body_input", {"role": "sequence"}),
        ("cell", "rnn_cell", {"hidden_size": 3}),
        ("h_next", "body_output", {"role": "state", "state": "h"}),
        ("y_t", "body_output", {"role": "output"}),
    ], ["x_t -> cell.x", "h -> cell.h", "cell.h -> h_next", "cell.h -> y_t"])
    graph = build([("seq", "input", {"shape": [4, 2]}),
                   ("scan", "loop", {"mode": "scan"}, {"body": body}),
                   ("ys", "output")], ["seq -> scan.x_t", "scan.y_t -> ys"])
    gradcheck_graph(graph, [torch.randn(2, 4, 2)])


def test_gradcheck_per_sample_branch():
    graph = build([
        ("x", "input", {"shape": [2]}),
        ("c", "input", {"shape": [1]}),
        ("route", "branch", {"threshold": 0.0}, {"then": linear_body(2), "else": linear_body(2)}),
        ("y", "output"),
    ], ["c -> route.cond", "x -> route.x", "route.y -> y"])
    cond = torch.tensor([[1.0], [-1.0], [2.0]])     # far from the threshold, both outcomes
    gradcheck_graph(graph, [torch.randn(3, 2), cond])


def test_gradcheck_per_sample_while_loop():
    body = build([
        ("t", "body_input", {"role": "state", "shape": [1]}),
        ("h", "body_input", {"role": "state", "shape": [3]}),
        ("ctx", "body_input", {"role": "context"}),
        ("tick", "expression", {"expr": "a + 0.25", "inputs": 1}),
        ("mix", "expression", {"expr": "torch.tanh(a + 0.5 * b)", "inputs": 2}),
        ("t_next", "body_output", {"role": "state", "state": "t"}),
        ("h_next", "body_output", {"role": "state", "state": "h"}),
        ("halt", "body_output", {"role": "halt"}),
    ], ["t -> tick.a", "h -> mix.a", "ctx -> mix.b", "tick -> t_next", "mix -> h_next",
        "tick -> halt"])
    graph = build([
        ("start", "input", {"shape": [1]}),
        ("x", "input", {"shape": [3]}),
        ("fc", "linear", {"out_features": 3}),
        ("loop", "loop", {"mode": "while", "threshold": 1.0, "max_iters": 10}, {"body": body}),
        ("y", "output"),
    ], ["x -> fc", "start -> loop.t", "fc -> loop.h", "x -> loop.ctx", "loop.h -> y"])
    assert engine.validate(graph) == []
    start = torch.tensor([[0.9], [0.1], [-0.4]])   # halts after 1, 4 and 6 steps
    gradcheck_graph(graph, [start, torch.randn(3, 3)])


def test_every_loop_and_branch_mode_has_its_analysis_rule():
    """A row added to nodes/control.py's LOOP_MODES or BRANCH_MODES needs its rule in the
    analysis, under the same name; every loop rule knows how often its body runs."""
    assert set(LOOP_RULES) == set(control.LOOP_MODES)
    assert set(BRANCH_RULES) == set(control.BRANCH_MODES)
    params = {"count": 3, "count_from": "param", "max_iters": 5, "dim": 1}
    for rule in LOOP_RULES.values():
        assert rule.iterations(params, 7) >= 1
