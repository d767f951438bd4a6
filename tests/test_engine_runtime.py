"""Errors at run time point back at the graph: the traceback shows the generated line, and
`node_for_exception` names the node that raised, inside bodies too."""

from __future__ import annotations

import traceback

import pytest
import torch
from helpers import build

import engine


def embedding_graph():
    return build([("ids", "input", {"shape": [5], "dtype": "long"}),
                  ("emb", "embedding", {"num_embeddings": 10, "embedding_dim": 4}),
                  ("pool", "mean", {"dim": 1}), ("y", "output")],
                 ["ids -> emb", "emb -> pool", "pool -> y"])


def scan_graph():
    body = build([("h", "body_input", {"role": "state", "shape": [4]}),
                  ("tok", "body_input", {"role": "sequence"}),
                  ("lookup", "embedding", {"num_embeddings": 10, "embedding_dim": 4}),
                  ("plus", "add"),
                  ("h_next", "body_output", {"role": "state", "state": "h"})],
                 ["tok -> lookup", "h -> plus.a", "lookup -> plus.b", "plus -> h_next"])
    return build([("ids", "input", {"shape": [6], "dtype": "long"}),
                  ("reader", "loop", {"mode": "scan"}, {"body": body}), ("y", "output")],
                 ["ids -> reader.tok", "reader.h -> y"])


def nested_graph():
    """A hard branch inside a repeat loop's body, the embedding in the branch's then body."""
    then = build([("ids", "body_input"), ("v", "body_input"),
                  ("emb", "embedding", {"num_embeddings": 10, "embedding_dim": 4}),
                  ("pool", "mean", {"dim": 1}), ("plus", "add"), ("y", "body_output")],
                 ["ids -> emb", "emb -> pool", "v -> plus.a", "pool -> plus.b", "plus -> y"])
    other = build([("ids", "body_input"), ("v", "body_input"), ("y", "body_output")], ["v -> y"])
    body = build([("h", "body_input", {"role": "state", "shape": [4]}),
                  ("ids", "body_input"), ("gate", "sum", {"dim": 1, "keepdim": True}),
                  ("choose", "branch", {"mode": "hard"}, {"then": then, "else": other}),
                  ("h_next", "body_output", {"role": "state", "state": "h"})],
                 ["h -> gate", "gate -> choose.cond", "ids -> choose.ids", "h -> choose.v",
                  "choose.y -> h_next"])
    return build([("ids", "input", {"shape": [5], "dtype": "long"}),
                  ("start", "input", {"shape": [4]}),
                  ("outer", "loop", {"count": 2}, {"body": body}), ("y", "output")],
                 ["ids -> outer.ids", "start -> outer.h", "outer.h -> y"])


def raise_from(model, *inputs) -> BaseException:
    with pytest.raises((IndexError, RuntimeError)) as info:
        model(*inputs)
    return info.value


@pytest.mark.parametrize("make, node, line", [
    (embedding_graph, "emb", "emb: torch.Tensor = self.emb(ids)"),
    (scan_graph, "reader/body/lookup", "lookup: torch.Tensor = self.lookup(tok)"),
    (nested_graph, "outer/body/choose/then/emb", "emb: torch.Tensor = self.emb(ids)"),
])
def test_runtime_error_names_the_node(make, node, line):
    graph = make()
    assert engine.analyze(graph).ok
    torch.manual_seed(0)
    model = engine.compile_graph(graph)
    inputs = list(engine.example_inputs(graph, 2, generator=torch.Generator().manual_seed(0)))
    model(*inputs)   # in range: fine
    inputs[0] = inputs[0].clone()
    inputs[0][1, 2] = 10   # one id beyond the vocabulary
    if len(inputs) > 1:
        inputs[1] = torch.ones_like(inputs[1])   # take the branch with the embedding
    exc = raise_from(model, *inputs)
    assert engine.node_for_exception(exc) == node
    text = "".join(traceback.format_exception(exc))
    assert line in text, text
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<dprog:")]
    assert frames and frames[-1].line.startswith(line + "  # (B, ")


def test_node_for_exception_is_none_elsewhere():
    try:
        torch.zeros(2) @ torch.zeros(3)
    except RuntimeError as exc:
        assert engine.node_for_exception(exc) is None
    assert engine.node_for_exception(ValueError("no traceback")) is None


def test_exported_file_errors_show_real_lines(tmp_path):
    from helpers import import_file

    path = tmp_path / "model_emb.py"
    path.write_text(engine.export_python(embedding_graph()))
    module = import_file(path, "dprog_runtime_export")
    model = module.Model()
    exc = raise_from(model, torch.full((1, 5), 99))
    frames = traceback.extract_tb(exc.__traceback__)
    assert any(f.filename == str(path) and f.line.startswith("emb: torch.Tensor = self.emb(ids)") for f in frames)
