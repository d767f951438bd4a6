"""Graphs that validate but fail at run time, for the studio's run-failure tests.

Pure to import (numpy and the engine's graph model only; no torch, no dearpygui).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from helpers import build

from engine.core.fileformat import save_graph
from engine.core.graph import Graph

# Where token_reader's error is raised: the Embedding inside the scan Loop's body.
FAILING_NODE = "reader/body/lookup"


def spread(graph: Graph) -> Graph:
    """The same graph with its blocks side by side, so none hides another on screen."""
    nodes = tuple(replace(n, pos=(230.0 * i, 60.0 * (i % 2))) for i, n in enumerate(graph.nodes))
    return replace(graph, nodes=nodes)


def token_reader(vocabulary: int = 10) -> Graph:
    """Six token ids (B, 6) read by a scan Loop `reader` whose body looks each one up in an
    Embedding(`vocabulary`, 4) `lookup`, then a Linear head over the final state. Every
    shape and dtype fits, so it validates; with `tokens_npz` data (ids up to 19) the first
    forward pass raises IndexError in `reader/body/lookup` unless `vocabulary` >= 20."""
    body = build([("h", "body_input", {"role": "state", "shape": [4]}),
                  ("tok", "body_input", {"role": "sequence"}),
                  ("lookup", "embedding", {"num_embeddings": vocabulary, "embedding_dim": 4}),
                  ("plus", "add"),
                  ("h_next", "body_output", {"role": "state", "state": "h"})],
                 ["tok -> lookup", "h -> plus.a", "lookup -> plus.b", "plus -> h_next"])
    graph = build([("ids", "input", {"shape": [6], "dtype": "long"}),
                   ("reader", "loop", {"mode": "scan"}, {"body": spread(body)}),
                   ("head", "linear", {"out_features": 2}), ("y", "output")],
                  ["ids -> reader.tok", "reader.h -> head", "head -> y"], name="token_reader",
                  training={"dataset": {"name": "npz", "path": "tokens.npz", "x_dtype": "int64"},
                            "epochs": 2, "batch_size": 32})
    return spread(graph)


def write_token_reader(folder: Path) -> Path:
    """token_reader.json and its data tokens.npz in `folder`; returns the graph's path."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, (200, 6)).astype(np.int64)   # (N, T): ids up to 19
    np.savez(folder / "tokens.npz", x=ids, y=(ids.sum(axis=1) % 2).astype(np.int64))
    path = folder / "token_reader.json"
    save_graph(token_reader(), path)
    return path
