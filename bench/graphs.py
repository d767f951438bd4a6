"""Generated graphs for the benchmarks: chains, DAGs, nested loops and deep MLPs of any size.

Every generator is deterministic (a seeded `random.Random` where it picks wires), lays the
nodes out on a grid so the studio can show them, and returns a graph that validates with no
errors. `size` counts every node, bodies included.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from pathlib import Path

from engine.core.graph import Edge, Graph, Node

FEATURES = 16
_OPS = ("linear", "relu", "linear", "tanh")   # a chain repeats this pattern


def _pos(i: int, columns: int = 40) -> tuple[float, float]:
    return (40.0 + 190.0 * (i % columns), 60.0 + 130.0 * (i // columns))


def _op(i: int) -> tuple[str, dict]:
    kind = _OPS[i % len(_OPS)]
    return kind, ({"out_features": FEATURES} if kind == "linear" else {})


def chain(size: int, *, name: str = "chain") -> Graph:
    """Input[16] → (Linear → ReLU → Linear → Tanh)… → Output, `size` nodes in all."""
    size = max(size, 2)
    nodes = [Node("x", "input", {"shape": [FEATURES]}, pos=_pos(0))]
    edges = []
    for i in range(1, size - 1):
        kind, params = _op(i - 1)
        nodes.append(Node(f"n{i}", kind, params, pos=_pos(i)))
        edges.append(Edge((nodes[-2].id, "y"), (nodes[-1].id, "x")))
    nodes.append(Node("out", "output", pos=_pos(size - 1)))
    edges.append(Edge((nodes[-2].id, "y"), ("out", "x")))
    return Graph(tuple(nodes), tuple(edges), name=name)


def dag(size: int, *, seed: int = 0, window: int = 8, name: str = "dag") -> Graph:
    """A DAG with fan-out and skip connections: every third node is an Add of its predecessor
    and a random node up to `window` back; the others are Linear/ReLU/Tanh of the predecessor."""
    size = max(size, 2)
    rng = random.Random(seed)
    nodes = [Node("x", "input", {"shape": [FEATURES]}, pos=_pos(0))]
    edges = []
    for i in range(1, size - 1):
        node_id, prev = f"n{i}", nodes[-1].id
        if i % 3 == 0 and i > 1:
            other = nodes[rng.randrange(max(0, i - window), i - 1)].id
            nodes.append(Node(node_id, "add", pos=_pos(i)))
            edges += [Edge((prev, "y"), (node_id, "a")), Edge((other, "y"), (node_id, "b"))]
        else:
            kind, params = _op(i - 1)
            nodes.append(Node(node_id, kind, params, pos=_pos(i)))
            edges.append(Edge((prev, "y"), (node_id, "x")))
    nodes.append(Node("out", "output", pos=_pos(size - 1)))
    edges.append(Edge((nodes[-2].id, "y"), ("out", "x")))
    return Graph(tuple(nodes), tuple(edges), name=name)


def _body(inner: list[Node], inner_edges: list[Edge], ops: int, level: int) -> Graph:
    """A loop body: state h → `ops` chain nodes (→ the nested loop, if given) → next h."""
    nodes = [Node("h", "body_input", {"role": "state", "shape": [FEATURES]}, pos=_pos(0))]
    edges = []
    for i in range(ops):
        kind, params = _op(i)
        nodes.append(Node(f"b{level}_{i}", kind, params, pos=_pos(i + 1)))
        edges.append(Edge((nodes[-2].id, "y"), (nodes[-1].id, "x")))
    for n in inner:
        nodes.append(n)
    edges += inner_edges
    if inner:
        edges.append(Edge((nodes[ops].id, "y"), (inner[0].id, "h")))
    last = (inner[0].id, "h") if inner else (nodes[-1].id, "y")
    nodes.append(Node("h_next", "body_output", {"role": "state", "state": "h"},
                      pos=_pos(len(nodes))))
    edges.append(Edge(last, ("h_next", "x")))
    return Graph(tuple(nodes), tuple(edges))


def nested_loops(size: int, *, depth: int = 3, name: str = "nested_loops") -> Graph:
    """Repeat loops nested `depth` deep, each body a chain carrying a state, `size` nodes in all
    (spread evenly over the main graph and the bodies)."""
    levels = depth + 1
    # main graph: input, output, one loop; each body: h, h_next (and the inner loop)
    fixed = 3 + 2 * depth + (depth - 1)
    per_level = max(1, (max(size, fixed + levels) - fixed) // levels)
    extra = max(size, fixed + levels) - fixed - per_level * levels
    inner: list[Node] = []
    inner_edges: list[Edge] = []
    for level in range(depth, 0, -1):
        body = _body(inner, inner_edges, per_level + (extra if level == depth else 0), level)
        inner = [Node(f"loop{level}", "loop", {"mode": "repeat", "count": 2},
                      pos=_pos(per_level + 1), regions={"body": body})]
        inner_edges = []
    nodes = [Node("x", "input", {"shape": [FEATURES]}, pos=_pos(0))]
    edges = []
    for i in range(per_level):
        kind, params = _op(i)
        nodes.append(Node(f"n{i}", kind, params, pos=_pos(i + 1)))
        edges.append(Edge((nodes[-2].id, "y"), (nodes[-1].id, "x")))
    loop = inner[0]
    nodes.append(loop)
    edges.append(Edge((nodes[-2].id, "y"), (loop.id, "h")))
    nodes.append(Node("out", "output", pos=_pos(len(nodes))))
    edges.append(Edge((loop.id, "h"), ("out", "x")))
    return Graph(tuple(nodes), tuple(edges), name=name)


def mlp(layers: int, *, width: int = 64, inputs: int = 2, classes: int = 2,
        name: str = "mlp20", training: dict | None = None) -> Graph:
    """Input → `layers` × (Linear → ReLU) → Linear → Output, with a moons training section."""
    specs = [("x", "input", {"shape": [inputs]})]
    for i in range(1, layers + 1):
        specs += [(f"fc{i}", "linear", {"out_features": width}), (f"act{i}", "relu", {})]
    specs += [("head", "linear", {"out_features": classes}), ("logits", "output", {})]
    nodes = [Node(s[0], s[1], s[2], pos=_pos(i)) for i, s in enumerate(specs)]
    edges = [Edge((a.id, "y"), (b.id, "x")) for a, b in itertools.pairwise(nodes)]
    return Graph(tuple(nodes), tuple(edges), name=name, training=training or {
        "dataset": {"name": "moons", "noise": 0.2, "n_samples": 1000}, "loss": "cross_entropy",
        "optimizer": "adam", "lr": 0.003, "batch_size": 64, "epochs": 20, "seed": 0})


MOONS = {"dataset": {"name": "moons", "noise": 0.2, "n_samples": 1000}, "loss": "cross_entropy",
         "optimizer": "adam", "lr": 0.001, "batch_size": 32, "epochs": 1000, "seed": 0}


def trainable_chain(size: int, *, name: str = "chain", training: dict | None = None) -> Graph:
    """`chain(size)` that trains on two moons: Input[2] … Linear(2) → Output (a small learning rate
    and many epochs, so a deep chain keeps training, finitely, while a benchmark watches it)."""
    graph = chain(size, name=name)
    nodes = list(graph.nodes)
    nodes[0] = Node("x", "input", {"shape": [2]}, pos=nodes[0].pos)
    if len(nodes) > 2:
        nodes[-2] = Node(nodes[-2].id, "linear", {"out_features": 2}, pos=nodes[-2].pos)
    return Graph(tuple(nodes), graph.edges, name=name, training=training or MOONS)


def count_nodes(graph: Graph) -> int:
    return sum(1 for _ in graph.walk())


KINDS = {"chain": chain, "dag": dag, "loops3": nested_loops}


def imported_vision(name: str) -> Graph:
    """torchvision's resnet18 or mobilenet_v2 architecture (the copy the importer's tests
    use), imported with 10 classes, set to fine-tune on digits as 3×32×32 images: the
    imported graphs of some hundreds of nodes row 5 opens beside the chains."""
    import importlib.util

    import torch

    from engine.runtime.importer import import_module

    path = Path(__file__).resolve().parents[1] / "tests" / "torchvision_models.py"
    spec = importlib.util.spec_from_file_location("torchvision_models", path)
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    torch.manual_seed(0)
    graph = import_module(getattr(models, name)(num_classes=10), torch.randn(2, 3, 32, 32)).graph
    training = {"dataset": {"name": "digits", "size": 32, "channels": 3}, "batch_size": 16,
                "epochs": 1000, "optimizer": "sgd", "lr": 0.001}
    return replace(graph, name=name, training=training)
