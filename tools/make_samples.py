"""Writes the sample graphs in sample_graphs/. Run: python tools/make_samples.py

The samples are plain graph files; this script only saves typing and keeps their layout tidy.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.core.fileformat import save_graph  # noqa: E402
from engine.core.graph import Edge, Graph, Node  # noqa: E402


def chain(specs, start=(40.0, 120.0), step=190.0):
    """Nodes laid out left to right, each wired y -> x to the next."""
    nodes, edges = [], []
    for i, (node_id, type_, params) in enumerate(specs):
        nodes.append(Node(node_id, type_, params, pos=(start[0] + i * step, start[1])))
        if i:
            edges.append(Edge((specs[i - 1][0], "y"), (node_id, "x")))
    return nodes, edges


def moons_mlp() -> Graph:
    nodes, edges = chain([
        ("x", "input", {"shape": [2]}),
        ("fc1", "linear", {"out_features": 16}),
        ("act1", "tanh", {}),
        ("fc2", "linear", {"out_features": 16}),
        ("act2", "tanh", {}),
        ("fc3", "linear", {"out_features": 2}),
        ("logits", "output", {}),
    ])
    return Graph(tuple(nodes), tuple(edges), name="moons_mlp", training={
        "dataset": {"name": "moons", "noise": 0.2, "n_samples": 1000},
        "loss": "cross_entropy", "optimizer": "adam", "lr": 0.01, "batch_size": 32,
        "epochs": 60, "seed": 0})


def build(specs, wires, *, name="model", training=None, columns=None) -> Graph:
    """Nodes from (id, type, params[, regions]) and wires "src.port -> dst.port" (port defaults
    y / x); laid out in the given columns of ids, left to right, top to bottom."""
    columns = columns or [[s[0]] for s in specs]
    where = {nid: (40.0 + 200.0 * c, 60.0 + 130.0 * r)
             for c, col in enumerate(columns) for r, nid in enumerate(col)}
    nodes = [Node(s[0], s[1], s[2], pos=where.get(s[0], (40.0, 40.0)),
                  regions=s[3] if len(s) > 3 else {}) for s in specs]
    edges = []
    for wire in wires:
        src, dst = (part.strip() for part in wire.split("->"))
        src = tuple(src.split(".")) if "." in src else (src, "y")
        dst = tuple(dst.split(".")) if "." in dst else (dst, "x")
        edges.append(Edge(src, dst))
    return Graph(tuple(nodes), tuple(edges), name=name, training=training or {})


def digits_cnn() -> Graph:
    nodes, edges = chain([
        ("image", "input", {"shape": [1, 8, 8]}),
        ("conv1", "conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}),
        ("relu1", "relu", {}),
        ("pool1", "max_pool2d", {"kernel_size": 2}),
        ("conv2", "conv2d", {"out_channels": 32, "kernel_size": 3, "padding": 1}),
        ("relu2", "relu", {}),
        ("pool2", "max_pool2d", {"kernel_size": 2}),
        ("flat", "flatten", {}),
        ("fc", "linear", {"out_features": 10}),
        ("logits", "output", {}),
    ], step=170.0)
    return Graph(tuple(nodes), tuple(edges), name="digits_cnn", training={
        "dataset": {"name": "digits"}, "loss": "cross_entropy", "optimizer": "adam", "lr": 0.003,
        "batch_size": 64, "epochs": 30, "seed": 0})


def residual_mlp() -> Graph:
    specs = [
        ("x", "input", {"shape": [2]}),
        ("stem", "linear", {"out_features": 32}),
        ("act0", "relu", {}),
        ("fc1", "linear", {"out_features": 32}),
        ("act1", "relu", {}),
        ("fc2", "linear", {"out_features": 32}),
        ("skip1", "add", {}),
        ("fc3", "linear", {"out_features": 32}),
        ("act3", "relu", {}),
        ("fc4", "linear", {"out_features": 32}),
        ("skip2", "add", {}),
        ("act4", "relu", {}),
        ("head", "linear", {"out_features": 2}),
        ("logits", "output", {}),
    ]
    wires = ["x -> stem", "stem -> act0", "act0 -> fc1", "fc1 -> act1", "act1 -> fc2",
             "act0 -> skip1.a", "fc2 -> skip1.b", "skip1 -> fc3", "fc3 -> act3", "act3 -> fc4",
             "skip1 -> skip2.a", "fc4 -> skip2.b", "skip2 -> act4", "act4 -> head", "head -> logits"]
    columns = [["x"], ["stem"], ["act0"], ["fc1"], ["act1"], ["fc2"], ["skip1"], ["fc3"], ["act3"],
               ["fc4"], ["skip2"], ["act4"], ["head"], ["logits"]]
    return build(specs, wires, name="residual_mlp", columns=columns, training={
        "dataset": {"name": "spirals", "noise": 0.1, "n_samples": 1000}, "loss": "cross_entropy",
        "optimizer": "adam", "lr": 0.005, "batch_size": 64, "epochs": 150, "seed": 0})


def rnn_cell_body() -> Graph:
    """An Elman cell drawn by hand: h' = tanh(W_x x_t + W_h h)."""
    specs = [
        ("h", "body_input", {"role": "state", "shape": [32]}),
        ("x_t", "body_input", {"role": "sequence"}),
        ("from_input", "linear", {"out_features": 32}),
        ("from_state", "linear", {"out_features": 32, "bias": False}),
        ("mix", "add", {}),
        ("squash", "tanh", {}),
        ("h_next", "body_output", {"role": "state", "state": "h"}),
    ]
    wires = ["x_t -> from_input", "h -> from_state", "from_input -> mix.a", "from_state -> mix.b",
             "mix -> squash", "squash -> h_next"]
    return build(specs, wires, columns=[["h", "x_t"], ["from_state", "from_input"], ["mix"],
                                        ["squash"], ["h_next"]])


def rnn_scan() -> Graph:
    specs = [
        ("seq", "input", {"shape": [10, 2]}),
        ("rnn", "loop", {"mode": "scan", "dim": 1}, {"body": rnn_cell_body()}),
        ("head", "linear", {"out_features": 1}),
        ("total", "output", {}),
    ]
    wires = ["seq -> rnn.x_t", "rnn.h -> head", "head -> total"]
    return build(specs, wires, name="rnn_scan", training={
        "dataset": {"name": "adding", "length": 10, "n_samples": 4000}, "loss": "mse",
        "optimizer": "adam", "lr": 0.003, "batch_size": 64, "epochs": 40, "seed": 0,
        "clip_grad_norm": 1.0})


def refine_body() -> Graph:
    """One refinement step: a candidate update, damped by the learned halting score."""
    specs = [
        ("h", "body_input", {"role": "state", "shape": [16]}),
        ("x", "body_input", {"role": "context"}),
        ("from_state", "linear", {"out_features": 16}),
        ("from_input", "linear", {"out_features": 16}),
        ("mix", "add", {}),
        ("delta", "tanh", {}),
        ("score", "linear", {"out_features": 1}),
        ("halt_p", "sigmoid", {}),
        ("update", "expression", {"expr": "a + (1 - c) * b", "inputs": 3}),
        ("h_next", "body_output", {"role": "state", "state": "h"}),
        ("halt", "body_output", {"role": "halt"}),
    ]
    wires = ["h -> from_state", "x -> from_input", "from_state -> mix.a", "from_input -> mix.b",
             "mix -> delta", "h -> score", "score -> halt_p", "h -> update.a", "delta -> update.b",
             "halt_p -> update.c", "update -> h_next", "halt_p -> halt"]
    return build(specs, wires, columns=[["h", "x"], ["from_state", "from_input", "score"],
                                        ["mix", "halt_p"], ["delta"], ["update"],
                                        ["h_next", "halt"]])


def adaptive_depth() -> Graph:
    specs = [
        ("x", "input", {"shape": [2]}),
        ("embed", "linear", {"out_features": 16}),
        ("start", "tanh", {}),
        ("refine", "loop", {"mode": "while", "max_iters": 8, "threshold": 0.5,
                            "halt": "per_sample"}, {"body": refine_body()}),
        ("head", "linear", {"out_features": 2}),
        ("logits", "output", {}),
    ]
    wires = ["x -> embed", "embed -> start", "start -> refine.h", "x -> refine.x", "refine.h -> head",
             "head -> logits"]
    return build(specs, wires, name="adaptive_depth", training={
        "dataset": {"name": "circles", "noise": 0.1, "n_samples": 1000}, "loss": "cross_entropy",
        "optimizer": "adam", "lr": 0.01, "batch_size": 64, "epochs": 60, "seed": 0})


def linear_body(features: int) -> Graph:
    specs = [("x", "body_input", {"role": "context"}), ("fc", "linear", {"out_features": features}),
             ("y", "body_output", {"role": "output"})]
    return build(specs, ["x -> fc", "fc -> y"])


def gated_branch() -> Graph:
    specs = [
        ("x", "input", {"shape": [2]}),
        ("side", "select", {"dim": 1, "index": 0}),
        ("route", "branch", {"mode": "per_sample", "threshold": 0.0},
         {"then": linear_body(2), "else": linear_body(2)}),
        ("logits", "output", {}),
    ]
    wires = ["x -> side", "side -> route.cond", "x -> route.x", "route.y -> logits"]
    return build(specs, wires, name="gated_branch", columns=[["x"], ["side"], ["route"], ["logits"]],
                 training={"dataset": {"name": "xor", "noise": 0.1, "n_samples": 1000},
                           "loss": "cross_entropy", "optimizer": "adam", "lr": 0.02,
                           "batch_size": 64, "epochs": 40, "seed": 0})


def attention() -> Graph:
    specs = [
        ("seq", "input", {"shape": [10, 2]}),
        ("embed", "linear", {"out_features": 16}),
        ("attend", "multihead_attention", {"num_heads": 2}),
        ("residual", "add", {}),
        ("norm", "layer_norm", {}),
        ("pool", "mean", {"dim": 1}),
        ("hidden", "linear", {"out_features": 16}),
        ("act", "gelu", {}),
        ("head", "linear", {"out_features": 1}),
        ("total", "output", {}),
    ]
    wires = ["seq -> embed", "embed -> attend.q", "embed -> attend.k", "embed -> attend.v",
             "embed -> residual.a", "attend -> residual.b", "residual -> norm", "norm -> pool",
             "pool -> hidden", "hidden -> act", "act -> head", "head -> total"]
    return build(specs, wires, name="attention", training={
        "dataset": {"name": "adding", "length": 10, "n_samples": 4000}, "loss": "mse",
        "optimizer": "adam", "lr": 0.003, "batch_size": 64, "epochs": 40, "seed": 0})


SAMPLES = {"moons_mlp": moons_mlp, "digits_cnn": digits_cnn, "residual_mlp": residual_mlp,
           "rnn_scan": rnn_scan, "adaptive_depth": adaptive_depth, "gated_branch": gated_branch,
           "attention": attention}

if __name__ == "__main__":
    for name, make in SAMPLES.items():
        save_graph(make(), ROOT / "sample_graphs" / f"{name}.json")
        print("wrote", name)
