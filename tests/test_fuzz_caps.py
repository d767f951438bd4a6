"""Huge params are refused by validation, before anything is allocated.

What validates must fit: at batch size 2, the caps in engine/core/analysis.py allow at most
MAX_PARAMETERS float32 weights plus MAX_TOTAL_ACTIVATIONS kept values per sample, about
6 GiB, well inside a 24 GiB machine (training adds gradients and optimizer state; Adam at
the parameter cap is 8 GiB). Loops multiply what their bodies keep and compute, nested
loops multiply their step counts, and a multiply-add cap stops valid graphs that would run
for hours (attention over a million steps). The caps are checked against reality too: the
graphs of tests/fuzzing/caps.py, at 1/32 of each cap, run in a fresh process, and their
peak memory stays within the analysis's own estimate. (`python bench/fuzz.py --caps` runs
them at full size.)
"""

from __future__ import annotations

import itertools

import pytest
from fuzzing.caps import estimate_bytes, measure, near_caps
from helpers import build

import engine
from engine.core.analysis import (
    MAX_ACTIVATION_VALUES,
    MAX_LOOP_STEPS,
    MAX_MACS,
    MAX_PARAMETERS,
    MAX_TOTAL_ACTIVATIONS,
    analyze,
)

GIB = 1 << 30


def test_the_caps_fit_a_24_gib_machine_at_batch_2():
    forward = 4 * (MAX_PARAMETERS + 2 * MAX_TOTAL_ACTIVATIONS)
    assert forward <= 6 * GIB
    # Training: weights, gradients and two Adam moments, plus the activations' gradients.
    assert 4 * (4 * MAX_PARAMETERS + 2 * 2 * MAX_TOTAL_ACTIVATIONS) <= 16 * GIB
    assert MAX_ACTIVATION_VALUES <= MAX_TOTAL_ACTIVATIONS


def too_large(graph) -> list:
    """The graph's errors, which must all be too_large; and compiling refuses it at once."""
    errors = [d for d in engine.validate(graph) if d.severity == "error"]
    assert errors and {d.code for d in errors} == {"too_large"}, [str(d) for d in errors]
    with pytest.raises(engine.GraphError):
        engine.compile_graph(graph)
    return errors


def linear_chain(width: int, layers: int):
    nodes = [("x", "input", {"shape": [width]})] + [
        (f"fc{i}", "linear", {"out_features": width}) for i in range(layers)]
    wires = [f"{a[0]} -> {b[0]}" for a, b in itertools.pairwise(nodes)]
    return build([*nodes, ("o", "output")], [*wires, f"{nodes[-1][0]} -> o"])


def test_a_million_by_a_million_linear_is_refused():
    errors = too_large(linear_chain(1_000_000, 1))
    assert errors[0].node == "fc0"


def test_many_layers_each_under_the_cap_are_refused_together():
    # Each 16384 x 16384 layer (1 GiB) passed the old per-node cap of 1 << 30; ten did too.
    width = 1 << 14
    assert width * width < MAX_PARAMETERS
    assert engine.validate(linear_chain(width, 1)) == []
    errors = too_large(linear_chain(width, 10))
    assert errors[0].node is None and "parameters" in errors[0].message


def test_a_chain_of_big_activations_is_refused():
    size = MAX_ACTIVATION_VALUES // 2   # each tensor is fine alone; eight of them are not
    nodes = [("x", "input", {"shape": [1 << 13, size >> 13]})] + [(f"t{i}", "tanh") for i in range(7)]
    wires = [f"{a[0]} -> {b[0]}" for a, b in itertools.pairwise(nodes)]
    too_large(build([*nodes, ("o", "output")], [*wires, "t6 -> o"]))


def tanh_loop(features: int, count: int, *, share: bool = True, body_type: str = "tanh",
              params: dict | None = None):
    body = build([("x", "body_input"), ("t", body_type, params or {}), ("y", "body_output")],
                 ["x -> t", "t -> y"])
    return build([("x", "input", {"shape": [features]}),
                  ("lp", "loop", {"count": count, "share_weights": share}, {"body": body}),
                  ("o", "output")], ["x -> lp.x", "lp.y -> o"])


def test_loops_multiply_what_their_bodies_keep():
    assert engine.validate(tanh_loop(1 << 16, 10)) == []
    too_large(tanh_loop(1 << 16, 10_000))


def test_loops_with_their_own_weights_per_step_multiply_parameters():
    assert engine.validate(tanh_loop(1024, 10, share=False, body_type="linear",
                                     params={"out_features": 1024})) == []
    too_large(tanh_loop(1024, 10_000, share=False, body_type="linear",
                        params={"out_features": 1024}))


def test_nested_loops_multiply_their_steps():
    inner = build([("x", "body_input"), ("t", "tanh"), ("y", "body_output")], ["x -> t", "t -> y"])
    for count in (100, 1000):
        middle = build([("x", "body_input"), ("lp", "loop", {"count": count}, {"body": inner}),
                        ("y", "body_output")], ["x -> lp.x", "lp.y -> y"])
        graph = build([("x", "input", {"shape": [1]}),
                       ("outer", "loop", {"count": 1000}, {"body": middle}), ("o", "output")],
                      ["x -> outer.x", "outer.y -> o"])
        if count * 1000 <= MAX_LOOP_STEPS:
            assert engine.validate(graph) == []
        else:
            assert "would run" in too_large(graph)[0].message


@pytest.mark.parametrize("spec", [
    ("embedding", {"num_embeddings": 1 << 22, "embedding_dim": 1 << 16}, [4], "long"),
    ("conv2d", {"out_channels": 1 << 16, "kernel_size": 64, "padding": 32}, [64, 64, 64], "float"),
    ("multihead_attention", {"num_heads": 1}, [1 << 20, 4], "float"),
    ("conv2d", {"out_channels": 4096, "kernel_size": 7, "padding": 3}, [64, 256, 256], "float"),
    ("parameter", {"shape": [1 << 24, 1 << 24]}, [1], "float"),
    ("constant", {"shape": [1 << 12] * 3}, [1], "float"),
    ("linear", {"out_features": 1 << 20}, [1 << 12], "float"),
    ("lstm_cell", {"hidden_size": 1 << 16}, [1 << 16], "float"),
], ids=["embedding", "conv_weights", "attention_1M", "conv_compute", "parameter", "constant",
        "linear", "lstm"])
def test_every_big_block_is_refused(spec):
    type_, params, shape, dtype = spec
    if type_ in ("parameter", "constant"):
        graph = build([("x", "input", {"shape": shape}), ("b", type_, params), ("add", "add"),
                       ("o", "output")], ["x -> add.a", "b -> add.b", "add -> o"])
    elif type_ == "multihead_attention":
        graph = build([("x", "input", {"shape": shape}), ("b", type_, params), ("o", "output")],
                      ["x -> b.q", "x -> b.k", "x -> b.v", "b -> o"])
    elif type_ == "lstm_cell":
        graph = build([("x", "input", {"shape": shape}), ("h", "input", {"shape": shape}),
                       ("b", type_, params), ("o", "output")],
                      ["x -> b.x", "h -> b.h", "h -> b.c", "b.h -> o"])
    else:
        graph = build([("x", "input", {"shape": shape, "dtype": dtype}), ("b", type_, params),
                       ("o", "output")], ["x -> b", "b -> o"])
    too_large(graph)


def test_compute_cap_counts_attention_quadratically():
    def attention(length):
        return build([("x", "input", {"shape": [length, 8]}), ("a", "multihead_attention", {}),
                      ("o", "output")], ["x -> a.q", "x -> a.k", "x -> a.v", "a -> o"])
    assert analyze(attention(1024)).ok
    small, big = analyze(attention(1024)).macs, analyze(attention(4096)).macs
    assert big > 12 * small
    assert not analyze(attention(1 << 16)).ok and analyze(attention(1 << 16)).macs > MAX_MACS


def test_what_validates_allocates_no_more_than_the_analysis_says(tmp_path):
    """At 1/32 of each cap: validates, runs at batch 2 with autograd on, and its peak memory
    stays within 1.5x the analysis's estimate (plus 64 MiB of slack for the allocator)."""
    results = measure(near_caps(1 / 32), tmp_path, timeout=300)
    for name, result in results.items():
        assert result["ok"], name
        assert result["peak_bytes"] <= 1.5 * estimate_bytes(result) + (64 << 20), (name, result)
