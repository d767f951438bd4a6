"""Small builders shared by the engine tests: graphs from compact specs, diagnostic codes.

Pure: importing this module does not import torch.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.core.graph import Edge, Graph, Node

REPO = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO / "sample_graphs"
SAMPLE_NAMES = sorted(p.stem for p in SAMPLES_DIR.glob("*.json"))


def build(specs: Iterable[tuple], wires: Iterable[str] = (), *, name: str = "model",
          training: Mapping[str, Any] | None = None, functions: Mapping[str, Any] | None = None,
          ) -> Graph:
    """A graph from `(id, type, params[, regions])` tuples and wires "src.port -> dst.port"
    (ports default to y -> x)."""
    nodes = [Node(s[0], s[1], dict(s[2]) if len(s) > 2 else {}, pos=(40.0 * i, 0.0),
                  regions=s[3] if len(s) > 3 else {}) for i, s in enumerate(specs)]
    edges = []
    for wire in wires:
        src, dst = (part.strip() for part in wire.split("->"))
        src = tuple(src.split(".")) if "." in src else (src, "y")
        dst = tuple(dst.split(".")) if "." in dst else (dst, "x")
        edges.append(Edge(src, dst))
    return Graph(tuple(nodes), tuple(edges), name=name, training=dict(training or {}),
                 functions=dict(functions or {}))


def chain(*specs: tuple, name: str = "model") -> Graph:
    """Nodes wired one after another, y -> x."""
    wires = [f"{a[0]} -> {b[0]}" for a, b in itertools.pairwise(specs)]
    return build(specs, wires, name=name)


def linear_body(features: int, *, bias: bool = True) -> Graph:
    """A body x -> Linear -> y, with one context input and one plain output."""
    return build([("x", "body_input", {"role": "context"}),
                  ("fc", "linear", {"out_features": features, "bias": bias}),
                  ("y", "body_output", {"role": "output"})], ["x -> fc", "fc -> y"])


def codes(diagnostics: Iterable) -> list[str]:
    return [d.code for d in diagnostics]


def errors(diagnostics: Iterable) -> list:
    return [d for d in diagnostics if d.severity == "error"]


def import_file(path: Path, module_name: str):
    """Import a .py file as a fresh module (its own namespace), as a user of model.py would."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[module_name]
    return module


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child python that must find the repo's packages."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def kitchen_sink() -> Graph:
    """A graph that makes the generator use every context it has: submodules, buffers,
    parameters, functions with kwargs, an expression, a scan with per-step outputs, a
    per-sample while loop with unshared weights, a per-sample branch, several outputs."""
    scan_body = build([
        ("total", "body_input", {"role": "state", "shape": [3]}),
        ("x_t", "body_input", {"role": "sequence"}),
        ("fc", "linear", {"out_features": 3}),
        ("plus", "add"),
        ("total_next", "body_output", {"role": "state", "state": "total"}),
        ("step_out", "body_output", {"role": "output"}),
    ], ["x_t -> fc", "total -> plus.a", "fc -> plus.b", "plus -> total_next", "plus -> step_out"])
    while_body = build([
        ("h", "body_input", {"role": "state", "shape": [3]}),
        ("ctx", "body_input", {"role": "context"}),
        ("mix", "expression", {"expr": "torch.tanh(a + b)", "inputs": 2}),
        ("score", "linear", {"out_features": 1}),
        ("h_next", "body_output", {"role": "state", "state": "h"}),
        ("halt", "body_output", {"role": "halt"}),
    ], ["h -> mix.a", "ctx -> mix.b", "mix -> h_next", "mix -> score", "score -> halt"])
    then = build([("x", "body_input"), ("fc", "linear", {"out_features": 3}),
                  ("act", "gelu", {"approximate": "tanh"}), ("y", "body_output")],
                 ["x -> fc", "fc -> act", "act -> y"])
    other = build([("x", "body_input"), ("sm", "softmax", {"dim": -1}), ("y", "body_output")],
                  ["x -> sm", "sm -> y"])
    return build([
        ("x", "input", {"shape": [3]}),
        ("seq", "input", {"shape": [4, 3]}),
        ("c", "constant", {"value": 0.5, "shape": [3]}),
        ("p", "parameter", {"shape": [3]}),
        ("f", "expression", {"expr": "a * torch.sigmoid(b) + c", "inputs": 3}),
        ("scan", "loop", {"mode": "scan"}, {"body": scan_body}),
        ("think", "loop", {"mode": "while", "max_iters": 3, "share_weights": False},
         {"body": while_body}),
        ("side", "select", {"index": 0}),
        ("route", "branch", {}, {"then": then, "else": other}),
        ("cat", "concat", {"inputs": 2, "dim": 1}),
        ("out1", "output"), ("out2", "output"), ("out3", "output"),
    ], ["x -> f.a", "c -> f.b", "p -> f.c", "seq -> scan.x_t", "f -> scan.total",
        "scan.total -> think.h", "x -> think.ctx", "x -> side", "side -> route.cond",
        "think.h -> route.x", "route.y -> cat.x0", "x -> cat.x1", "cat -> out1",
        "scan.step_out -> out2", "think.iterations -> out3"], name="sink",
        training={"dataset": {"name": "moons"}})


def moons_graph(**training) -> Graph:
    """A tiny classifier of the moons data: 7 steps per epoch, 2 epochs unless told."""
    return build([("x", "input", {"shape": [2]}), ("fc1", "linear", {"out_features": 16}),
                  ("act", "tanh", {}), ("fc2", "linear", {"out_features": 2}),
                  ("logits", "output", {})],
                 ["x -> fc1", "fc1 -> act", "act -> fc2", "fc2 -> logits"], name="tiny",
                 training={"dataset": {"name": "moons", "n_samples": 250}, "batch_size": 32,
                           "epochs": 2, "lr": 0.05, **training})


def next_event(events, kind, timeout: float = 30.0):
    """The next event of type `kind` from a trainer's queue; an AssertionError quoting the
    failure when the run fails first, or when none comes within `timeout` seconds."""
    from engine.core.events import Failed

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = events.get(timeout=deadline - time.monotonic())
        if isinstance(event, kind):
            return event
        if isinstance(event, Failed):
            raise AssertionError(f"the run failed: {event.message}")
    raise AssertionError(f"no {kind.__name__} event")


def control_flow_graphs() -> dict[str, Graph]:
    """Small graphs with every kind of data-dependent control flow the generator writes: a
    hard Branch (one body passing its input straight through), while Loops halting per
    sample and for the batch (with plain results and step counts wired out), a repeat Loop
    counting from the data without shared weights, and control flow nested in a body."""
    def while_body(seen: bool) -> Graph:
        # A plain result ("seen") only where the loop halts for the whole batch: a per-sample
        # while loop returns only its states.
        return build([
            ("h", "body_input", {"role": "state", "shape": [3]}),
            ("ctx", "body_input", {"role": "context"}),
            ("mix", "expression", {"expr": "torch.tanh(a + b)", "inputs": 2}),
            ("score", "linear", {"out_features": 1}),
            ("h_next", "body_output", {"role": "state", "state": "h"}),
            *([("seen", "body_output", {"role": "output"})] if seen else []),
            ("halt", "body_output", {"role": "halt"}),
        ], ["h -> mix.a", "ctx -> mix.b", "mix -> h_next", "mix -> score", "score -> halt",
            *(["mix -> seen"] if seen else [])])

    then = build([("x", "body_input"), ("fc", "linear", {"out_features": 4}),
                  ("act", "tanh"), ("y", "body_output")], ["x -> fc", "fc -> act", "act -> y"])
    passthrough = build([("x", "body_input"), ("y", "body_output")], ["x -> y"])
    hard = build([
        ("x", "input", {"shape": [4]}), ("side", "select", {"index": 0}),
        ("route", "branch", {"mode": "hard"}, {"then": then, "else": passthrough}),
        ("out", "output"),
    ], ["x -> side", "side -> route.cond", "x -> route.x", "route.y -> out"], name="hard_branch")

    def while_graph(halt: str, name: str) -> Graph:
        seen = halt == "batch"
        return build([
            ("x", "input", {"shape": [3]}),
            ("think", "loop", {"mode": "while", "max_iters": 6, "halt": halt, "threshold": 0.3},
             {"body": while_body(seen)}),
            ("h", "output"), *([("seen", "output")] if seen else []), ("steps", "output"),
        ], ["x -> think.h", "x -> think.ctx", "think.h -> h", "think.iterations -> steps",
            *(["think.seen -> seen"] if seen else [])], name=name)

    repeat_body = build([
        ("h", "body_input", {"role": "state", "shape": [3]}),
        ("fc", "linear", {"out_features": 3}), ("act", "tanh"),
        ("h_next", "body_output", {"role": "state", "state": "h"}),
        ("y", "body_output", {"role": "output"}),
    ], ["h -> fc", "fc -> act", "act -> h_next", "fc -> y"])
    repeat = build([
        ("x", "input", {"shape": [3]}), ("first", "select", {"index": 0}),
        ("n", "expression", {"expr": "a * 2 + 2", "inputs": 1}),
        ("rep", "loop", {"mode": "repeat", "count_from": "input", "max_iters": 4,
                         "share_weights": False}, {"body": repeat_body}),
        ("h", "output"), ("y", "output"),
    ], ["x -> first", "first -> n.a", "n -> rep.count", "x -> rep.h", "rep.h -> h",
        "rep.y -> y"], name="repeat_count")

    inner = build([("x", "body_input"), ("side", "select", {"index": 1}),
                   ("route", "branch", {"mode": "hard"}, {"then": then, "else": passthrough}),
                   ("y", "body_output", {"role": "state", "state": "x"})],
                  ["x -> side", "side -> route.cond", "x -> route.x", "route.y -> y"])
    inner = Graph(tuple(Node(n.id, n.type, {**n.params, "role": "state", "shape": [4]}, n.pos,
                             n.regions) if n.id == "x" else n for n in inner.nodes),
                  inner.edges, name=inner.name)
    nested = build([
        ("x", "input", {"shape": [4]}),
        ("steps", "loop", {"mode": "repeat", "count": 3}, {"body": inner}),
        ("out", "output"),
    ], ["x -> steps.x", "steps.x -> out"], name="nested")
    return {"hard_branch": hard, "while_per_sample": while_graph("per_sample", "while_per_sample"),
            "while_batch": while_graph("batch", "while_batch"), "repeat_count": repeat,
            "nested": nested}


def without_hanging(call, ceiling: float = 120.0):
    """`call()`'s result, failing (not hanging the suite) if it has not returned within a
    generous ceiling: a guard for code that could block for ever (a FIFO opened for reading),
    never a performance limit."""
    import threading

    result: list = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(ceiling)
    assert not worker.is_alive(), f"still blocked after {ceiling:g} s"
    assert result, "the call raised (see the thread's traceback above)"
    return result[0]
