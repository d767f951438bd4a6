"""Writes the sample graphs in sample_graphs/. Run: python tools/make_samples.py

The samples are plain graph files; this script only saves typing and keeps their layout tidy.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import itertools  # noqa: E402
from dataclasses import replace  # noqa: E402

from engine.core.fileformat import save_graph  # noqa: E402
from engine.core.graph import Edge, Function, Graph, Node, set_tie  # noqa: E402


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


DT, GRAVITY, STEPS, TARGET = 0.05, 9.81, 40, 30.0   # projectile: s, m/s², Euler steps, m


def flight_body() -> Graph:
    """One explicit Euler step of a point mass under gravity: position += dt · velocity,
    then the vertical velocity loses g · dt."""
    specs = [
        ("px", "body_input", {"role": "state", "shape": []}),
        ("py", "body_input", {"role": "state", "shape": []}),
        ("vx", "body_input", {"role": "state", "shape": []}),
        ("vy", "body_input", {"role": "state", "shape": []}),
        ("move_x", "expression", {"expr": f"a + {DT} * b"}),
        ("move_y", "expression", {"expr": f"a + {DT} * b"}),
        ("fall", "expression", {"expr": f"a - {round(GRAVITY * DT, 6)}", "inputs": 1}),
        ("px_next", "body_output", {"role": "state", "state": "px"}),
        ("py_next", "body_output", {"role": "state", "state": "py"}),
        ("vx_next", "body_output", {"role": "state", "state": "vx"}),
        ("vy_next", "body_output", {"role": "state", "state": "vy"}),
    ]
    wires = ["px -> move_x.a", "vx -> move_x.b", "py -> move_y.a", "vy -> move_y.b",
             "vy -> fall.a", "move_x -> px_next", "move_y -> py_next", "vx -> vx_next",
             "fall -> vy_next"]
    return build(specs, wires, columns=[["px", "vx", "py", "vy"], ["move_x", "move_y", "fall"],
                                        ["px_next", "vx_next", "py_next", "vy_next"]])


def projectile() -> Graph:
    """No data: learn a launch speed and angle that land a projectile TARGET m away after
    STEPS Euler steps of DT s. The loss is the squared miss; the Parameters start at a
    chosen guess (init constant)."""
    specs = [
        ("speed", "parameter", {"shape": [], "init": "constant", "value": 10.0}),
        ("angle", "parameter", {"shape": [], "init": "constant", "value": 0.3}),
        ("launch_vx", "expression", {"expr": "a * torch.cos(b)"}),
        ("launch_vy", "expression", {"expr": "a * torch.sin(b)"}),
        ("origin", "constant", {"shape": [], "value": 0.0}),
        ("flight", "loop", {"mode": "repeat", "count": STEPS}, {"body": flight_body()}),
        ("miss", "expression", {"expr": f"(a - {TARGET}) ** 2 + b ** 2"}),
        ("loss", "output", {}),
    ]
    wires = ["speed -> launch_vx.a", "angle -> launch_vx.b", "speed -> launch_vy.a",
             "angle -> launch_vy.b", "origin -> flight.px", "origin -> flight.py",
             "launch_vx -> flight.vx", "launch_vy -> flight.vy", "flight.px -> miss.a",
             "flight.py -> miss.b", "miss -> loss"]
    return build(specs, wires, name="projectile",
                 columns=[["speed", "angle"], ["launch_vx", "launch_vy", "origin"], ["flight"],
                          ["miss"], ["loss"]],
                 training={"loss": "graph", "optimizer": "adam", "lr": 0.2, "steps": 400,
                           "schedule": "cosine", "seed": 0})


def vae() -> Graph:
    """A variational autoencoder of the 8×8 digits: encoder, reparameterized sample, decoder;
    its loss is the negative ELBO per image (reconstruction BCE plus KL), in nats."""
    specs = [
        ("image", "input", {"shape": [64]}),
        ("encode", "linear", {"out_features": 64}),
        ("enc_act", "relu", {}),
        ("mu", "linear", {"out_features": 8}),
        ("logvar", "linear", {"out_features": 8}),
        ("z", "reparameterize", {}),
        ("decode", "linear", {"out_features": 64}),
        ("dec_act", "relu", {}),
        ("pixels", "linear", {"out_features": 64}),
        ("recon", "sigmoid", {}),
        ("rec_bce", "bce", {"reduction": "none"}),
        ("rec_nats", "sum", {"dim": -1}),
        ("kl", "expression", {"expr": "-0.5 * (1 + b - a ** 2 - torch.exp(b))"}),
        ("kl_nats", "sum", {"dim": -1}),
        ("neg_elbo", "add", {}),
        ("batch_mean", "mean", {"dim": 0}),
        ("loss", "output", {}),
        ("reconstruction", "output", {}),
    ]
    wires = ["image -> encode", "encode -> enc_act", "enc_act -> mu", "enc_act -> logvar",
             "mu -> z.mu", "logvar -> z.logvar", "z -> decode", "decode -> dec_act",
             "dec_act -> pixels", "pixels -> recon", "recon -> rec_bce.input",
             "image -> rec_bce.target", "rec_bce -> rec_nats", "mu -> kl.a", "logvar -> kl.b",
             "kl -> kl_nats", "rec_nats -> neg_elbo.a", "kl_nats -> neg_elbo.b",
             "neg_elbo -> batch_mean", "batch_mean -> loss", "recon -> reconstruction"]
    columns = [["image"], ["encode"], ["enc_act"], ["mu", "logvar"], ["z", "kl"],
               ["decode", "kl_nats"], ["dec_act"], ["pixels"], ["recon"], ["rec_bce", "reconstruction"],
               ["rec_nats"], ["neg_elbo"], ["batch_mean"], ["loss"]]
    return build(specs, wires, name="vae", columns=columns, training={
        "dataset": {"name": "digits", "flatten": True}, "loss": "graph", "optimizer": "adam",
        "lr": 0.003, "batch_size": 64, "epochs": 30, "seed": 0})


def char_gpt() -> Graph:
    """A one-block causal transformer over characters (nanoGPT's shape): token and position
    embeddings, causal self-attention and an MLP, each with a residual and a LayerNorm before
    it, then next-character logits; its loss is their cross-entropy with the next ids."""
    width, window, vocab = 32, 32, 96
    specs = [
        ("text", "input", {"shape": [window], "dtype": "long"}),
        ("target", "input", {"shape": [window], "dtype": "long"}),
        ("tokens", "embedding", {"num_embeddings": vocab, "embedding_dim": width}),
        ("steps", "positions", {"dim": 1}),
        ("places", "embedding", {"num_embeddings": window, "embedding_dim": width}),
        ("embed", "add", {}),
        ("norm1", "layer_norm", {}),
        ("attend", "multihead_attention", {"num_heads": 4, "causal": True}),
        ("res1", "add", {}),
        ("norm2", "layer_norm", {}),
        ("widen", "linear", {"out_features": 4 * width}),
        ("act", "gelu", {}),
        ("narrow", "linear", {"out_features": width}),
        ("res2", "add", {}),
        ("norm_f", "layer_norm", {}),
        ("head", "linear", {"out_features": vocab}),
        ("nll", "cross_entropy", {}),
        ("loss", "output", {}),
        ("logits", "output", {}),
    ]
    wires = ["text -> tokens", "text -> steps", "steps -> places", "tokens -> embed.a",
             "places -> embed.b", "embed -> norm1", "norm1 -> attend.q", "norm1 -> attend.k",
             "norm1 -> attend.v", "embed -> res1.a", "attend -> res1.b", "res1 -> norm2",
             "norm2 -> widen", "widen -> act", "act -> narrow", "res1 -> res2.a",
             "narrow -> res2.b", "res2 -> norm_f", "norm_f -> head", "head -> nll.input",
             "target -> nll.target", "nll -> loss", "head -> logits"]
    columns = [["text", "target"], ["tokens", "steps"], ["places"], ["embed"], ["norm1"],
               ["attend"], ["res1"], ["norm2"], ["widen"], ["act"], ["narrow"], ["res2"],
               ["norm_f"], ["head"], ["nll", "logits"], ["loss"]]
    return build(specs, wires, name="char_gpt", columns=columns, training={
        "dataset": {"name": "text", "length": window, "n_samples": 2000}, "loss": "graph",
        "optimizer": "adamw", "lr": 0.003, "batch_size": 32, "epochs": 20, "seed": 0})


def pairs_mlp() -> Graph:
    """Same digit or not, from two Inputs fed by the digit_pairs dataset by id (left, right):
    each image through its own small MLP (separate weights; a shared encoder needs functions),
    the two codes joined, then a head that tells same from different."""
    specs = [
        ("left", "input", {"shape": [64]}),
        ("right", "input", {"shape": [64]}),
        ("left_fc", "linear", {"out_features": 32}),
        ("right_fc", "linear", {"out_features": 32}),
        ("left_act", "relu", {}),
        ("right_act", "relu", {}),
        ("join", "concat", {}),
        ("fc", "linear", {"out_features": 32}),
        ("act", "relu", {}),
        ("head", "linear", {"out_features": 2}),
        ("logits", "output", {}),
    ]
    wires = ["left -> left_fc", "right -> right_fc", "left_fc -> left_act",
             "right_fc -> right_act", "left_act -> join.x0", "right_act -> join.x1",
             "join -> fc", "fc -> act", "act -> head", "head -> logits"]
    columns = [["left", "right"], ["left_fc", "right_fc"], ["left_act", "right_act"], ["join"],
               ["fc"], ["act"], ["head"], ["logits"]]
    return build(specs, wires, name="pairs_mlp", columns=columns, training={
        "dataset": {"name": "digit_pairs", "flatten": True, "n_samples": 4000},
        "loss": "cross_entropy", "optimizer": "adam", "lr": 0.003, "batch_size": 64,
        "epochs": 20, "seed": 0})


def double_conv() -> Graph:
    """U-Net's double convolution: (3×3 conv, BatchNorm, ReLU) twice, 16 channels; the input's
    channels are whatever arrives at each call."""
    specs = [("x", "body_input", {}),
             ("conv_a", "conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1, "bias": False}),
             ("norm_a", "batch_norm2d", {}), ("relu_a", "relu", {}),
             ("conv_b", "conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1, "bias": False}),
             ("norm_b", "batch_norm2d", {}), ("relu_b", "relu", {}), ("y", "body_output", {})]
    wires = [f"{a[0]} -> {b[0]}" for a, b in itertools.pairwise(specs)]
    return build(specs, wires, columns=[[s[0]] for s in specs])


def unet() -> Graph:
    """A small U-Net over 8×8 digits, classifying them: the double convolution is defined once
    (a function) and called five times with weights of its own; each decoder level upsamples
    (a transposed conv), joins the encoder's map of that size (the skip) and convolves again."""
    call = "call"
    specs = [
        ("image", "input", {"shape": [1, 8, 8]}),
        ("down1", call, {"function": "double_conv"}),                       # (B, 16, 8, 8)
        ("pool1", "max_pool2d", {"kernel_size": 2}),
        ("down2", call, {"function": "double_conv"}),                       # (B, 16, 4, 4)
        ("pool2", "max_pool2d", {"kernel_size": 2}),
        ("bottom", call, {"function": "double_conv"}),                      # (B, 16, 2, 2)
        ("up2", "conv_transpose2d", {"out_channels": 16, "kernel_size": 2, "stride": 2}),
        ("skip2", "concat", {"inputs": 2, "dim": 1}),                       # (B, 32, 4, 4)
        ("dec2", call, {"function": "double_conv"}),
        ("up1", "conv_transpose2d", {"out_channels": 16, "kernel_size": 2, "stride": 2}),
        ("skip1", "concat", {"inputs": 2, "dim": 1}),                       # (B, 32, 8, 8)
        ("dec1", call, {"function": "double_conv"}),
        ("gap", "adaptive_avg_pool2d", {}), ("flat", "flatten", {}),
        ("classify", "linear", {"out_features": 10}), ("logits", "output", {}),
    ]
    wires = ["image -> down1", "down1 -> pool1", "pool1 -> down2", "down2 -> pool2",
             "pool2 -> bottom", "bottom -> up2", "up2 -> skip2.x0", "down2 -> skip2.x1",
             "skip2 -> dec2", "dec2 -> up1", "up1 -> skip1.x0", "down1 -> skip1.x1",
             "skip1 -> dec1", "dec1 -> gap", "gap -> flat", "flat -> classify",
             "classify -> logits"]
    columns = [["image"], ["down1"], ["pool1"], ["down2"], ["pool2"], ["bottom"], ["up2"],
               ["skip2"], ["dec2"], ["up1"], ["skip1"], ["dec1"], ["gap"], ["flat"],
               ["classify"], ["logits"]]
    graph = build(specs, wires, name="unet", columns=columns, training={
        "dataset": {"name": "digits"}, "loss": "cross_entropy", "optimizer": "adam",
        "lr": 0.003, "batch_size": 64, "epochs": 10, "seed": 0})
    return replace(graph, functions={"double_conv": Function(
        double_conv(), title="Double conv", doc="(3x3 conv, BatchNorm, ReLU) twice: the U-Net "
        "building block, 16 channels out", category="U-Net")})


def gpt_block() -> Graph:
    """One pre-norm transformer block: x + attention(norm(x)), then + MLP(norm(...))."""
    width = 32
    specs = [("x", "body_input", {}), ("norm1", "layer_norm", {}),
             ("attend", "multihead_attention", {"num_heads": 4, "causal": True}),
             ("res1", "add", {}), ("norm2", "layer_norm", {}),
             ("widen", "linear", {"out_features": 4 * width}), ("act", "gelu", {}),
             ("narrow", "linear", {"out_features": width}), ("res2", "add", {}),
             ("y", "body_output", {})]
    wires = ["x -> norm1", "norm1 -> attend.q", "norm1 -> attend.k", "norm1 -> attend.v",
             "x -> res1.a", "attend -> res1.b", "res1 -> norm2", "norm2 -> widen", "widen -> act",
             "act -> narrow", "res1 -> res2.a", "narrow -> res2.b", "res2 -> y"]
    columns = [["x"], ["norm1"], ["attend"], ["res1"], ["norm2"], ["widen"], ["act"], ["narrow"],
               ["res2"], ["y"]]
    return build(specs, wires, columns=columns)


def gpt_blocks() -> Graph:
    """char_gpt with its block a function called twice (weights of their own), and nanoGPT's
    weight tying: the LM head reuses the token embedding's weight (no bias), counted once."""
    width, window, vocab = 32, 32, 96
    specs = [
        ("text", "input", {"shape": [window], "dtype": "long"}),
        ("target", "input", {"shape": [window], "dtype": "long"}),
        ("tokens", "embedding", {"num_embeddings": vocab, "embedding_dim": width}),
        ("steps", "positions", {"dim": 1}),
        ("places", "embedding", {"num_embeddings": window, "embedding_dim": width}),
        ("embed", "add", {}),
        ("block1", "call", {"function": "block"}),
        ("block2", "call", {"function": "block"}),
        ("norm_f", "layer_norm", {}),
        ("head", "linear", {"out_features": vocab, "bias": False}),
        ("nll", "cross_entropy", {}),
        ("loss", "output", {}),
        ("logits", "output", {}),
    ]
    wires = ["text -> tokens", "text -> steps", "steps -> places", "tokens -> embed.a",
             "places -> embed.b", "embed -> block1", "block1 -> block2", "block2 -> norm_f",
             "norm_f -> head", "head -> nll.input", "target -> nll.target", "nll -> loss",
             "head -> logits"]
    columns = [["text", "target"], ["tokens", "steps"], ["places"], ["embed"], ["block1"],
               ["block2"], ["norm_f"], ["head"], ["nll", "logits"], ["loss"]]
    graph = build(specs, wires, name="gpt_blocks", columns=columns, training={
        "dataset": {"name": "text", "length": window, "n_samples": 2000}, "loss": "graph",
        "optimizer": "adamw", "lr": 0.01, "batch_size": 32, "epochs": 10, "seed": 0})
    graph = replace(graph, functions={"block": Function(
        gpt_block(), title="Transformer block", doc="pre-norm causal self-attention and an MLP, "
        "each with a residual", category="Transformer")})
    return set_tie(graph, "head", "weight", ("tokens", "weight"))


def encoder() -> Graph:
    """The siamese encoder: an 8×8 digit (64 pixels) to a 16-number code."""
    specs = [("x", "body_input", {}), ("fc1", "linear", {"out_features": 32}),
             ("act", "relu", {}), ("fc2", "linear", {"out_features": 16}),
             ("y", "body_output", {})]
    wires = ["x -> fc1", "fc1 -> act", "act -> fc2", "fc2 -> y"]
    return build(specs, wires, columns=[[s[0]] for s in specs])


def siamese() -> Graph:
    """pairs_mlp with one encoder for both images: a function called twice in the weight
    group "encoder" (one module, its parameters counted once, each call's gradients adding up
    in them); the head compares the codes by |a - b| and a · b."""
    specs = [
        ("left", "input", {"shape": [64]}),
        ("right", "input", {"shape": [64]}),
        ("enc_left", "call", {"function": "encoder", "weights": "encoder"}),
        ("enc_right", "call", {"function": "encoder", "weights": "encoder"}),
        ("distance", "expression", {"expr": "torch.abs(a - b)"}),
        ("product", "mul", {}),
        ("join", "concat", {}),                                             # (B, 32)
        ("fc", "linear", {"out_features": 32}),
        ("act", "relu", {}),
        ("head", "linear", {"out_features": 2}),
        ("logits", "output", {}),
    ]
    wires = ["left -> enc_left", "right -> enc_right", "enc_left -> distance.a",
             "enc_right -> distance.b", "enc_left -> product.a", "enc_right -> product.b",
             "distance -> join.x0", "product -> join.x1", "join -> fc", "fc -> act",
             "act -> head", "head -> logits"]
    columns = [["left", "right"], ["enc_left", "enc_right"], ["distance", "product"], ["join"],
               ["fc"], ["act"], ["head"], ["logits"]]
    graph = build(specs, wires, name="siamese", columns=columns, training={
        "dataset": {"name": "digit_pairs", "flatten": True, "n_samples": 4000},
        "loss": "cross_entropy", "optimizer": "adam", "lr": 0.003, "batch_size": 64,
        "epochs": 20, "seed": 0})
    lower = {"right", "enc_right", "product"}   # room below distance's formula line
    inputs_and_calls = {"left", "right", "enc_left", "enc_right"}   # a call's title is wide
    graph = replace(graph, nodes=tuple(
        replace(n, pos=(n.pos[0] + (0.0 if n.id in inputs_and_calls else 130.0),
                        n.pos[1] + (50.0 if n.id in lower else 0.0))) for n in graph.nodes))
    return replace(graph, functions={"encoder": Function(
        encoder(), title="Encoder", doc="an 8x8 digit (64 pixels) to a 16-number code: "
        "Linear 32, ReLU, Linear 16", category="Siamese")})


SAMPLES = {"moons_mlp": moons_mlp, "digits_cnn": digits_cnn, "residual_mlp": residual_mlp,
           "rnn_scan": rnn_scan, "adaptive_depth": adaptive_depth, "gated_branch": gated_branch,
           "attention": attention, "projectile": projectile, "vae": vae, "char_gpt": char_gpt,
           "pairs_mlp": pairs_mlp, "unet": unet, "gpt_blocks": gpt_blocks,
           "siamese": siamese}

if __name__ == "__main__":
    for name, make in SAMPLES.items():
        save_graph(make(), ROOT / "sample_graphs" / f"{name}.json")
        print("wrote", name)
