"""Graphs that sit just under the analysis caps, and a probe that runs one in a fresh process.

`near_caps(scale)` builds graphs that each push one cap (parameters, activation values,
loop iterations, multiply-adds) to `scale` times its limit while still validating. The
probe (`measure`) compiles one in a subprocess, runs a forward pass at batch size 2 with
autograd on (so activations are kept, as in training), and reports its peak memory and
time. tests/test_fuzz_caps.py runs them at 1/16 of the caps and checks the memory against
the analysis's own estimate; `python bench/fuzz.py --caps` runs them at full size.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from engine.core.analysis import MAX_MACS, MAX_PARAMETERS, MAX_TOTAL_ACTIVATIONS

REPO = Path(__file__).resolve().parents[2]


def _doc(name, nodes, wires):
    edges = []
    for wire in wires:
        src, dst = (w.strip() for w in wire.split("->"))
        src = src.split(".") if "." in src else [src, "y"]
        dst = dst.split(".") if "." in dst else [dst, "x"]
        edges.append({"from": src, "to": dst})
    return {"format": "dprog-graph", "version": 2, "name": name,
            "nodes": [{"id": i, "type": t, "params": p, **({"regions": r} if r else {})}
                      for i, t, p, *rest in nodes for r in [rest[0] if rest else None]],
            "edges": edges}


def near_caps(scale: float = 1.0) -> dict[str, dict]:
    """name -> graph document, each just under one cap times `scale`."""
    out = {}
    # Parameters: one wide Linear, ~0.95 of the cap.
    width = int(math.sqrt(MAX_PARAMETERS * scale * 0.95))
    out["parameters"] = _doc("params", [("x", "input", {"shape": [width]}),
                                        ("fc", "linear", {"out_features": width}),
                                        ("o", "output", {})], ["x -> fc", "fc -> o"])
    # Activations: a chain of tanh over one big tensor, ~0.95 of the total.
    links = 7
    size = int(MAX_TOTAL_ACTIVATIONS * scale * 0.95 / (links + 1)) // 64
    nodes = [("x", "input", {"shape": [64, size]})] + [(f"t{i}", "tanh", {}) for i in range(links)]
    out["activations"] = _doc("acts", [*nodes, ("o", "output", {})],
                              [f"{a[0]} -> {b[0]}" for a, b in zip(nodes, [*nodes[1:], ("o",)],
                                                                   strict=True)])
    # A loop whose iterations each keep their activations (and have their own weights).
    steps = 1000
    # Each step keeps four (B, feat) values in the count (h, x, tanh's and mul's outputs).
    feat = max(1, int(MAX_TOTAL_ACTIVATIONS * scale * 0.9 / (4 * steps + 2)))
    body = {"nodes": [{"id": "h", "type": "body_input", "params": {"role": "state", "shape": [feat]}},
                      {"id": "x", "type": "body_input", "params": {}},
                      {"id": "t", "type": "tanh", "params": {}},
                      {"id": "w", "type": "parameter", "params": {"shape": [1]}},
                      {"id": "m", "type": "mul", "params": {}},
                      {"id": "h_next", "type": "body_output",
                       "params": {"role": "state", "state": "h"}}],
            "edges": [{"from": ["h", "y"], "to": ["t", "x"]},
                      {"from": ["t", "y"], "to": ["m", "a"]},
                      {"from": ["w", "y"], "to": ["m", "b"]},
                      {"from": ["m", "y"], "to": ["h_next", "x"]}]}
    out["loop"] = _doc("loop", [("x", "input", {"shape": [feat]}),
                                ("lp", "loop", {"count": steps}, {"body": body}),
                                ("o", "output", {})], ["x -> lp.h", "x -> lp.x", "lp.h -> o"])
    # Compute: attention over a long sequence (quadratic in its length).
    e = 8
    length = int(math.sqrt(MAX_MACS * scale * 0.9 / (2 * e)))
    out["attention"] = _doc("attn", [("x", "input", {"shape": [length, e]}),
                                     ("a", "multihead_attention", {"num_heads": 2}),
                                     ("o", "output", {})],
                            ["x -> a.q", "x -> a.k", "x -> a.v", "a -> o"])
    return out


PROBE = r"""
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(1)
from engine.core.analysis import analyze
from engine.runtime.compiler import compile_graph, example_inputs
from engine.core.fileformat import loads


def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024


for path in sys.argv[2:]:
    graph = loads(open(path).read())
    analysis = analyze(graph)
    gc.collect()
    open("/proc/self/clear_refs", "w").write("5")   # reset the peak (VmHWM) to what is in use
    base = rss("VmHWM:")
    t0 = time.perf_counter()
    model = compile_graph(graph, analysis)
    # Inputs that need gradients: autograd keeps every activation, as in training.
    inputs = [t.requires_grad_() if t.is_floating_point() else t for t in example_inputs(graph, 2)]
    out = model(*inputs)
    peak = rss("VmHWM:")
    print(json.dumps({"ok": analysis.ok, "params": analysis.total_params,
                      "activations": analysis.activation_values, "macs": analysis.macs,
                      "peak_bytes": peak - base, "seconds": time.perf_counter() - t0}), flush=True)
    del model, out
"""


def measure(docs: dict[str, dict], tmp: Path, *, timeout: float = 600) -> dict[str, dict]:
    """Compile and run each graph at batch size 2 in one fresh process (Linux: the peak is
    reset between graphs); name -> its memory and time."""
    paths = []
    for name, doc in docs.items():
        path = tmp / f"caps_{name}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    proc = subprocess.run([sys.executable, "-c", PROBE, str(REPO), *paths], capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    lines = proc.stdout.strip().splitlines()[-len(docs):]
    return {name: json.loads(line) for name, line in zip(docs, lines, strict=True)}


def estimate_bytes(result: dict, batch: int = 2) -> int:
    """What the analysis's counts say a forward pass at `batch` holds: float32 weights plus
    every kept activation."""
    return 4 * (result["params"] + batch * result["activations"])
