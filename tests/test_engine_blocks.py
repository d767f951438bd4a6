"""Every block spec: unique, defaults in range, names that resolve, defaults that build and
run with the shapes and parameter counts the analysis predicts."""

from __future__ import annotations

import importlib

import pytest
import torch
from helpers import build
from torch import nn

import engine
from engine.core.analysis import analyze
from engine.core.naming import MODULE_ATTRIBUTES, call_name
from nodes import BLOCKS, CATEGORIES, LEGACY_TYPES, REGISTRY, lookup
from nodes.spec import PARAM_KINDS

BATCH = 3


def resolve(qualified: str):
    """`torch.nn.functional.relu` -> the object, importing the longest module prefix."""
    parts = qualified.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(qualified)


def test_types_are_unique_and_legacy_names_do_not_collide():
    types = [spec.type for spec in BLOCKS]
    assert len(types) == len(set(types)) == len(REGISTRY)
    assert not set(LEGACY_TYPES) & set(REGISTRY)
    for old, new in LEGACY_TYPES.items():
        assert lookup(old) is REGISTRY[new]
    assert LEGACY_TYPES["dense"] == "linear"


@pytest.mark.parametrize("spec", BLOCKS, ids=lambda s: s.type)
def test_spec_is_well_formed(spec):
    assert spec.category in CATEGORIES
    assert spec.title and spec.doc
    names = [p.name for p in spec.params]
    assert len(names) == len(set(names))
    for p in spec.params:
        assert p.kind in PARAM_KINDS
        assert p.check(p.default) is None, (p.name, p.default)
        assert p.doc, f"{spec.type}.{p.name} has no doc (the inspector's tooltip)"
        if p.kind == "choice":
            assert p.default in p.choices
    port_names = [p.name for p in (*spec.inputs, *spec.outputs)]
    assert len(set(p.name for p in spec.inputs)) == len(spec.inputs)
    assert all(n.isidentifier() for n in port_names)
    for qualified in (spec.module, spec.function):
        if qualified:
            assert callable(resolve(qualified)), qualified
            # the short form the generated code uses names the same object
            short = call_name(qualified)
            long = short.replace("F.", "torch.nn.functional.", 1) if short.startswith("F.") \
                else short.replace("nn.", "torch.nn.", 1) if short.startswith("nn.") else short
            assert resolve(long) is resolve(qualified)
    if spec.module:
        assert issubclass(resolve(spec.module), nn.Module)


def test_module_attributes_cover_nn_module():
    # Submodules are named so they never shadow an nn.Module attribute.
    public = {a for a in dir(nn.Module) if not a.startswith("_")}
    assert public <= MODULE_ATTRIBUTES
    from engine.core.naming import MODULE_DICT_ATTRIBUTES

    assert {n for n in dir(torch.nn.ModuleDict()) if not n.startswith("_")} \
        <= MODULE_DICT_ATTRIBUTES


def state_body():
    return build([("h", "body_input", {"role": "state", "shape": [4]}),
                  ("fc", "linear", {"out_features": 4}),
                  ("h_next", "body_output", {"role": "state", "state": "h"})],
                 ["h -> fc", "fc -> h_next"])


def plain_body():
    return build([("x", "body_input"), ("fc", "linear", {"out_features": 4}), ("y", "body_output")],
                 ["x -> fc", "fc -> y"])


F4 = ([4], "float")
IMG = ([3, 8, 8], "float")
# block type -> {input port: (per-sample shape, dtype)}; blocks not listed take x: (4,) floats
INPUTS = {
    "conv1d": {"x": ([3, 10], "float")},
    "conv2d": {"x": IMG}, "conv_transpose2d": {"x": IMG}, "max_pool2d": {"x": IMG},
    "avg_pool2d": {"x": IMG}, "adaptive_avg_pool2d": {"x": IMG}, "batch_norm2d": {"x": IMG},
    "embedding": {"x": ([5], "long")},
    "multihead_attention": {"q": ([5, 4], "float"), "k": ([6, 4], "float"), "v": ([6, 4], "float")},
    "rnn_cell": {"x": F4, "h": ([32], "float")},
    "gru_cell": {"x": F4, "h": ([32], "float")},
    "lstm_cell": {"x": F4, "h": ([32], "float"), "c": ([32], "float")},
    "flatten": {"x": ([2, 3], "float")}, "permute": {"x": ([2, 3], "float")},
    "split": {"x": ([2], "float")},
    "matmul": {"a": ([3, 4], "float"), "b": ([4, 2], "float")},
    "cross_entropy": {"input": ([5], "float"), "target": ([], "long")},
    "mse": {"input": F4, "target": F4}, "bce_with_logits": {"input": F4, "target": F4},
    "bce": {"input": F4, "target": F4},   # example inputs pass through a Sigmoid: see block_graph
    "scaled_dot_product_attention": {"q": ([2, 5, 4], "float"), "k": ([2, 6, 4], "float"),
                                     "v": ([2, 6, 3], "float")},
    "lstm": {"x": ([5, 4], "float")}, "gru": {"x": ([5, 4], "float")},
    "positions": {"x": ([5, 4], "float")},
    "normal": {}, "uniform": {}, "bernoulli": {},
    "reparameterize": {"mu": F4, "logvar": F4},
    "l1": {"input": F4, "target": F4},
    "concat": {"x0": F4, "x1": ([2], "float")},
    "add": {"a": F4, "b": F4}, "sub": {"a": F4, "b": F4}, "mul": {"a": F4, "b": F4},
    "div": {"a": F4, "b": F4}, "expression": {"a": F4, "b": F4},
    "constant": {}, "parameter": {},
    "loop": {"h": F4},
    "branch": {"cond": ([], "float"), "x": F4},
}
REGIONS = {"loop": {"body": state_body}, "branch": {"then": plain_body, "else": plain_body}}
# Inputs whose values must be probabilities (the spec's `domain`): fed through a Sigmoid.
PROBABILITIES = {"bce": ("input", "target")}
STRUCTURAL = {"input", "output", "body_input", "body_output"}   # present in every graph below


def block_graph(type_: str, params: dict | None = None, inputs: dict | None = None):
    """Inputs feeding one block whose every output goes to an Output."""
    spec = REGISTRY[type_]
    inputs = INPUTS.get(type_, {"x": F4}) if inputs is None else inputs
    regions = {k: make() for k, make in REGIONS.get(type_, {}).items()}
    specs = [(f"in_{port}", "input", {"shape": shape, "dtype": dtype})
             for port, (shape, dtype) in inputs.items()]
    specs.append(("blk", type_, params or {}, regions))
    wires = []
    for port in inputs:
        if port in PROBABILITIES.get(type_, ()):
            specs.append((f"p_{port}", "sigmoid"))
            wires += [f"in_{port} -> p_{port}", f"p_{port} -> blk.{port}"]
        else:
            wires.append(f"in_{port} -> blk.{port}")
    node = engine.Node("blk", type_, params or {}, regions=regions)
    for port in spec.port_lists(node)[1]:
        specs.append((f"out_{port.name}", "output"))
        wires.append(f"blk.{port.name} -> out_{port.name}")
    return build(specs, wires, name=f"{type_} block")


def check_runs(graph):
    """Compile and run; outputs must have the analysed shapes and dtypes and the module the
    analysed parameter count."""
    analysis = analyze(graph)
    assert analysis.ok, [str(d) for d in analysis.diagnostics]
    torch.manual_seed(0)
    model = engine.compile_graph(graph)
    assert sum(p.numel() for p in model.parameters()) == analysis.total_params
    inputs = engine.example_inputs(graph, BATCH, generator=torch.Generator().manual_seed(0))
    out = model(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    expected = [analysis.inputs[n.id]["x"] for n in graph.nodes if n.type == "output"]
    assert len(outs) == len(expected)
    dtypes = {"float": torch.float32, "long": torch.int64, "bool": torch.bool}
    for tensor, t in zip(outs, expected, strict=True):
        assert tuple(tensor.shape) == tuple(BATCH if d == "B" else d for d in t.shape), t
        assert tensor.dtype == dtypes[t.dtype]
    return model, analysis


# A Call needs a function defined in its graph: tests/test_functions.py builds and runs those.
@pytest.mark.parametrize("type_", sorted(set(REGISTRY) - STRUCTURAL - {"call"}))
def test_defaults_build_and_run(type_):
    check_runs(block_graph(type_))


VARIANTS = [
    ("linear", {"out_features": 7, "bias": False}, None),
    ("linear", {"out_features": 3}, {"x": ([2, 5], "float")}),
    ("conv2d", {"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 0, "dilation": 2,
                "groups": 1, "bias": False}, None),
    ("conv2d", {"out_channels": 6, "groups": 3}, None),
    ("conv1d", {"out_channels": 2, "kernel_size": 5, "padding": 0}, None),
    ("conv_transpose2d", {"out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1,
                          "output_padding": 1}, None),
    ("multihead_attention", {"num_heads": 4, "bias": False},
     {"q": ([5, 8], "float"), "k": ([6, 3], "float"), "v": ([6, 5], "float")}),
    ("lstm_cell", {"hidden_size": 3, "bias": False},
     {"x": F4, "h": ([3], "float"), "c": ([3], "float")}),
    ("gru_cell", {"hidden_size": 3}, {"x": F4, "h": ([3], "float")}),
    ("rnn_cell", {"hidden_size": 3, "nonlinearity": "relu"}, {"x": F4, "h": ([3], "float")}),
    ("layer_norm", {"dims": 2, "affine": True}, {"x": ([3, 4], "float")}),
    ("layer_norm", {"affine": False}, None),
    ("batch_norm1d", {"momentum": 0.2}, {"x": ([4, 6], "float")}),
    ("batch_norm2d", {"affine": False}, None),
    ("embedding", {"num_embeddings": 7, "embedding_dim": 3}, {"x": ([2, 2], "long")}),
    ("parameter", {"shape": [2, 3], "init": "uniform", "scale": 2.0}, None),
    ("parameter", {"shape": [4], "init": "zeros"}, None),
    ("constant", {"shape": [2, 1], "value": -3.5}, None),
    ("split", {"sections": [1, 2, 3], "dim": 1}, {"x": ([6, 2], "float")}),
    ("slice", {"dim": 2, "start": -4, "stop": 7, "step": 2}, {"x": ([2, 7], "float")}),
    ("select", {"dim": -1, "index": -1}, {"x": ([2, 3], "float")}),
    ("reshape", {"shape": [2, -1]}, {"x": ([3, 4], "float")}),
    ("reshape", {"shape": [3, 2, 2]}, {"x": ([12], "float")}),
    ("permute", {"dims": [3, 1, 2]}, {"x": ([2, 3, 4], "float")}),
    ("flatten", {"start_dim": 2}, {"x": ([2, 3, 4], "float")}),
    ("concat", {"inputs": 3, "dim": 1}, {"x0": F4, "x1": F4, "x2": ([1], "float")}),
    ("max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}, None),
    ("avg_pool2d", {"kernel_size": 4}, None),
    ("adaptive_avg_pool2d", {"output_size": [2, 3]}, None),
    ("norm", {"ord": 1.0, "keepdim": True, "dim": 0}, {"x": ([3, 2], "float")}),
    ("max", {"dim": 1, "keepdim": True}, {"x": ([3, 2], "float")}),
    ("softmax", {"dim": 1}, {"x": ([3, 2], "float")}),
    ("gelu", {"approximate": "tanh"}, None),
    ("leaky_relu", {"negative_slope": 0.2}, None),
    ("dropout", {"p": 0.0}, None),
    ("expression", {"expr": "torch.clamp(a, min=-0.5) * c - d", "inputs": 4},
     {"a": F4, "b": F4, "c": ([1], "float"), "d": F4}),
    ("cross_entropy", {"reduction": "none"}, None),
    ("mse", {"reduction": "sum"}, None),
    ("add", {}, {"a": ([3, 1], "float"), "b": ([1, 4], "float")}),
    ("matmul", {}, {"a": ([2, 3, 4], "float"), "b": ([2, 4, 5], "float")}),
    ("loop", {"mode": "repeat", "count": 2, "share_weights": False}, None),
    ("branch", {"mode": "hard", "threshold": 0.5}, None),
]


@pytest.mark.parametrize("type_, params, inputs", VARIANTS,
                         ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(VARIANTS)])
def test_variants_build_and_run(type_, params, inputs):
    check_runs(block_graph(type_, params, inputs))


def test_every_block_has_a_default_case():
    assert set(INPUTS) <= set(REGISTRY)
    assert {t for t, _, _ in VARIANTS} <= set(REGISTRY)


def test_blocks_with_weights_count_them():
    for spec in BLOCKS:
        if spec.module and spec.type != "dropout":
            assert spec.count is not None, spec.type


def test_param_counts_match_for_every_sample(samples):
    for name, graph in samples.items():
        analysis = analyze(graph)
        model = engine.compile_graph(graph)
        assert sum(p.numel() for p in model.parameters()) == analysis.total_params, name
        # per node too, where the submodule is named after the node (loops and plain blocks)
        checked = 0
        nodes = dict(graph.walk())
        grouped: set[str] = set()   # weight groups seen: their first call counts the module
        for path, count in analysis.param_counts.items():
            node = nodes.get(path)
            group = node.params.get("weights", "own") if node and node.type == "call" else "own"
            if group != "own" and "/" not in path:   # one attribute, named after the group
                shared = sum(p.numel() for p in getattr(model, group).parameters())
                assert count == (0 if group in grouped else shared), (name, path)
                grouped.add(group)
                checked += 1
                continue
            module = model
            for node_id in path.split("/")[::2]:
                module = getattr(module, node_id, None) if module is not None else None
            if isinstance(module, nn.Parameter):   # a Parameter block's own tensor
                assert module.numel() == count, (name, path)
                checked += 1
            elif isinstance(module, nn.Module):
                # a tied tensor is counted at the node it is tied to (an LM head's weight)
                tied = sum(getattr(module, t).numel() for t in nodes[path].ties) \
                    if path in nodes else 0
                assert sum(p.numel() for p in module.parameters()) - tied == count, (name, path)
                checked += 1
        assert checked >= len([p for p in analysis.param_counts if "/" not in p]) - 1, name
