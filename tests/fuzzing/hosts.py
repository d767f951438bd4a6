"""A small valid graph around each block type, for fuzzing one block's params at a time.

`host(type)` returns a document in which one node, "b", is a block of that type with its
default params, fed from Inputs of a shape it accepts and feeding Outputs; `None` for the
structural blocks (Input, Output, Loop, Branch, body ends), which the samples and the
grower cover. Pure: no torch.
"""

from __future__ import annotations

import copy
from functools import cache

from engine.core.analysis import analyze
from engine.core.fileformat import FORMAT, VERSION, graph_from_document
from engine.core.graph import Node
from nodes import REGISTRY

STRUCTURAL = ("input", "output", "loop", "branch", "body_input", "body_output")
SHAPES = ([6], [3, 6, 6], [4, 6], [2, 6, 6, 6], [], [4, 5, 6], [32], [2])


def _candidate(type_: str, shape: list[int]) -> dict:
    spec = REGISTRY[type_]
    nodes = [{"id": "x", "type": "input", "params": {"shape": shape}},
             {"id": "ids", "type": "input", "params": {"shape": [4], "dtype": "long"}},
             {"id": "cls", "type": "input", "params": {"shape": shape[:0], "dtype": "long"}},
             {"id": "b", "type": type_, "params": {}}]
    edges = []
    ins, outs = spec.port_lists(Node("b", type_, {}))
    for port in ins:
        allowed = spec.input_dtypes.get(port.name, spec.input_dtypes.get("*", ("float",)))
        src = "x" if "float" in allowed else "cls" if type_ == "cross_entropy" else "ids"
        edges.append({"from": [src, "y"], "to": ["b", port.name]})
    for i, port in enumerate(outs):
        nodes.append({"id": f"out{i}", "type": "output", "params": {}})
        edges.append({"from": ["b", port.name], "to": [f"out{i}", "x"]})
    return {"format": FORMAT, "version": VERSION, "name": f"host_{type_}", "nodes": nodes,
            "edges": edges}


@cache
def _hosts() -> dict[str, dict]:
    found = {}
    for type_ in REGISTRY:
        if type_ in STRUCTURAL:
            continue
        for shape in SHAPES:
            doc = _candidate(type_, shape)
            if analyze(graph_from_document(doc)).ok:
                found[type_] = doc
                break
    return found


def host(type_: str) -> dict | None:
    doc = _hosts().get(type_)
    return copy.deepcopy(doc) if doc is not None else None


def hosted_types() -> list[str]:
    return sorted(_hosts())
