"""The blocks programs need, each against the torch function it stands for: random noise and
the reparameterized sample (seeded), BCE, scaled dot-product and causal or masked attention,
LSTM and GRU layers, positions, cross-entropy over sequences, Parameters that start where
asked, and the Expression language's comparisons, masks and dtypes. Every one's export is
ruff-clean and gives exactly what the compiled module gives under the same seed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from helpers import REPO, build, import_file
from torch import nn

import engine
from engine.core.analysis import analyze
from nodes import REGISTRY, expression

torch.set_default_dtype(torch.float32)


def one_block(type_: str, params: dict | None = None, inputs: dict | None = None, name="blk"):
    """Inputs (port → (per-sample shape, dtype)) wired into one block, each of its outputs to
    an Output."""
    inputs = inputs if inputs is not None else {"x": ([4], "float")}
    # Inputs take floats or ids; a bool mask is a comparison of floats: `in > 0`.
    specs = [(f"in_{port}", "input", {"shape": shape, "dtype": "float" if dtype == "bool" else dtype})
             for port, (shape, dtype) in inputs.items()]
    wires = []
    for port, (_, dtype) in inputs.items():
        if dtype == "bool":
            specs.append((f"is_{port}", "expression", {"expr": "a > 0", "inputs": 1}))
            wires += [f"in_{port} -> is_{port}.a", f"is_{port} -> blk.{port}"]
        else:
            wires.append(f"in_{port} -> blk.{port}")
    specs.append(("blk", type_, params or {}))
    node = engine.Node("blk", type_, params or {})
    for port in REGISTRY[type_].port_lists(node)[1]:
        specs.append((f"out_{port.name}", "output"))
        wires.append(f"blk.{port.name} -> out_{port.name}")
    return build(specs, wires, name=name)


def compiled(graph, seed: int = 0) -> nn.Module:
    assert engine.validate(graph) == [], [str(d) for d in engine.validate(graph)]
    torch.manual_seed(seed)
    return engine.compile_graph(graph)


def outs(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


# --- random blocks: torch's global generator, so one seed gives the same numbers ------------


X = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("type_, params, draw", [
    ("normal", {}, lambda x: torch.randn_like(x)),
    ("normal", {"mean": -1.5, "std": 0.25}, lambda x: torch.randn_like(x) * 0.25 - 1.5),
    ("uniform", {"low": -2.0, "high": 3.0}, lambda x: torch.rand_like(x) * 5.0 - 2.0),
    ("uniform", {}, lambda x: torch.rand_like(x)),
    ("bernoulli", {"p": 0.3}, lambda x: torch.bernoulli(torch.full_like(x, 0.3))),
])
def test_noise_like_an_input_is_torchs_draw(type_, params, draw):
    model = compiled(one_block(type_, params))
    torch.manual_seed(7)
    got = model(X)
    torch.manual_seed(7)
    assert torch.equal(got, draw(X))
    torch.manual_seed(8)
    assert not torch.equal(model(X), got), "a fresh draw on every call"


@pytest.mark.parametrize("type_, params, mean", [
    ("normal", {"mean": 0.5, "eval": "mean"}, 0.5), ("uniform", {"low": 1.0, "high": 2.0,
                                                                 "eval": "mean"}, 1.5),
    ("bernoulli", {"p": 0.2, "eval": "mean"}, 0.2),
])
def test_noise_in_eval_mode_gives_the_mean_when_asked(type_, params, mean):
    model = compiled(one_block(type_, params)).eval()
    assert torch.equal(model(X), torch.full_like(X, mean))
    sampling = compiled(one_block(type_, {**params, "eval": "sample"})).eval()
    torch.manual_seed(3)
    first = sampling(X)
    assert not torch.equal(sampling(X), first), "eval: sample keeps drawing"


def test_noise_of_a_given_shape_is_made_on_the_modules_device_and_broadcasts():
    graph = build([("n", "normal", {"shape": [2, 3], "std": 2.0}), ("o", "output")], ["n -> o"])
    model = compiled(graph)
    assert dict(model.named_buffers()).keys() == {"n_like"} and not model.state_dict()
    torch.manual_seed(0)
    got = model()
    torch.manual_seed(0)
    assert torch.equal(got, torch.randn(2, 3) * 2.0)
    assert analyze(graph).inputs["o"]["x"].shape == (2, 3)


def test_reparameterize_is_mu_plus_sigma_times_noise():
    graph = one_block("reparameterize", {}, {"mu": ([3], "float"), "logvar": ([3], "float")})
    model = compiled(graph)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    torch.manual_seed(11)
    got = model(mu, logvar)
    torch.manual_seed(11)
    assert torch.equal(got, mu + torch.exp(0.5 * logvar) * torch.randn_like(mu))
    # differentiable in mu and logvar
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    model(mu, logvar).sum().backward()
    assert mu.grad is not None and logvar.grad is not None and logvar.grad.abs().sum() > 0
    assert torch.equal(model.eval()(mu, logvar), mu)   # eval: the mean, by default
    sample = compiled(one_block("reparameterize", {"eval": "sample"},
                                {"mu": ([3], "float"), "logvar": ([3], "float")})).eval()
    assert not torch.equal(sample(mu, logvar), mu)


def test_reparameterize_needs_matching_shapes():
    graph = one_block("reparameterize", {}, {"mu": ([3], "float"), "logvar": ([2], "float")})
    assert [(d.code, d.port) for d in engine.validate(graph)] == [("shape_mismatch", "logvar")]


# --- losses ------------------------------------------------------------------------------------


def test_bce_is_binary_cross_entropy_on_probabilities():
    p, t = torch.rand(6, 3), torch.rand(6, 3)
    for reduction in ("mean", "sum", "none"):
        graph = one_block("bce", {"reduction": reduction},
                          {"input": ([3], "float"), "target": ([3], "float")})
        assert torch.equal(compiled(graph)(p, t), F.binary_cross_entropy(p, t, reduction=reduction))


@pytest.mark.parametrize("logits, ids, classes, layout", [
    ([7], [], "auto", "dim1"),
    ([7, 5], [5], "auto", "dim1"),          # torch's (B, C, T)
    ([5, 7], [5], "auto", "last"),          # a sequence model's (B, T, C)
    ([5, 5], [5], "dim1", "dim1"),
    ([5, 5], [5], "last", "last"),
    ([3, 4, 7], [3, 4], "auto", "last"),
])
def test_cross_entropy_takes_torchs_layout_and_classes_last(logits, ids, classes, layout):
    inputs = {"input": (logits, "float"), "target": (ids, "long")}
    n_classes = logits[0] if layout == "dim1" else logits[-1]
    x = torch.randn(2, *logits)
    t = torch.randint(0, n_classes, (2, *ids))
    for reduction in ("mean", "none"):
        model = compiled(one_block("cross_entropy", {"classes": classes, "reduction": reduction},
                                   inputs))
        want = F.cross_entropy(x if layout == "dim1" else x.movedim(-1, 1), t, reduction=reduction)
        assert torch.equal(model(x, t), want)
    if layout == "last" and reduction == "mean":
        flat = F.cross_entropy(x.reshape(-1, n_classes), t.reshape(-1))
        torch.testing.assert_close(model(x, t), flat)


def test_cross_entropy_refuses_an_ambiguous_or_unfit_target():
    both = one_block("cross_entropy", {}, {"input": ([5, 5], "float"), "target": ([5], "long")})
    assert [(d.code, d.param) for d in engine.validate(both)] == [("bad_param", "classes")]
    unfit = one_block("cross_entropy", {}, {"input": ([5, 7], "float"), "target": ([6], "long")})
    assert [(d.code, d.port) for d in engine.validate(unfit)] == [("shape_mismatch", "target")]
    forced = one_block("cross_entropy", {"classes": "dim1"},
                       {"input": ([5, 7], "float"), "target": ([5], "long")})
    assert [(d.code, d.port) for d in engine.validate(forced)] == [("shape_mismatch", "target")]


# --- attention ---------------------------------------------------------------------------------

QKV = {"q": ([5, 8], "float"), "k": ([5, 8], "float"), "v": ([5, 8], "float")}


def mha_reference(model: nn.Module) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(8, 2, batch_first=True)
    ref.load_state_dict(model.blk.state_dict())
    return ref.eval()


def test_causal_attention_masks_the_future():
    model = compiled(one_block("multihead_attention", {"causal": True}, QKV)).eval()
    x = torch.randn(3, 5, 8)
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1)
    with torch.no_grad():
        got = model(x, x, x)
        assert torch.equal(got, mha_reference(model)(x, x, x, attn_mask=mask, need_weights=False)[0])
        later = x.clone()
        later[:, 3:] = torch.randn(3, 2, 8)   # change only the last two steps
        assert torch.equal(model(later, later, later)[:, :3], got[:, :3])
        assert not torch.equal(model(later, later, later)[:, 3:], got[:, 3:])
    assert dict(model.named_buffers()).keys() == {"blk_mask"} and "blk_mask" not in model.state_dict()


@pytest.mark.parametrize("dtype", ["bool", "float"])
def test_attention_takes_a_per_sample_mask_as_torch_does(dtype):
    """(B, T, S) from the data, repeated per head as torch wants it; bool True masks a key out,
    float is added to the scores."""
    model = compiled(one_block("multihead_attention", {}, {**QKV, "mask": ([5, 5], dtype)})).eval()
    x = torch.randn(3, 5, 8)
    if dtype == "bool":
        mask = torch.rand(3, 5, 5) > 0.6
        mask[..., 0] = False   # every query keeps a key
    else:
        mask = torch.randn(3, 5, 5)
    with torch.no_grad():
        got = model(x, x, x, mask.float() - 0.5 if dtype == "bool" else mask)
        want = mha_reference(model)(x, x, x, attn_mask=mask.repeat_interleave(2, dim=0),
                                    need_weights=False)[0]
    assert torch.equal(got, want)


def test_an_unbatched_mask_from_positions_and_an_expression():
    """The issue's 8-node triangle, in three: positions as a column and a row, compared."""
    graph = build([("x", "input", {"shape": [5, 8]}),
                   ("row", "positions", {"dim": 1}),
                   ("col", "positions", {"dim": 1, "aligned": True}),
                   ("future", "expression", {"expr": "a < b"}),
                   ("att", "multihead_attention", {}), ("o", "output")],
                  ["x -> row", "x -> col", "col -> future.a", "row -> future.b",
                   "x -> att.q", "x -> att.k", "x -> att.v", "future -> att.mask", "att -> o"])
    analysis = analyze(graph)
    assert analysis.ok, [str(d) for d in analysis.diagnostics]
    assert str(analysis.outputs["future"]["y"]) == "(5, 5) bool"
    masked = compiled(graph).eval()
    causal = compiled(one_block("multihead_attention", {"causal": True}, QKV)).eval()
    causal.load_state_dict({k.replace("att.", "blk."): v for k, v in masked.state_dict().items()})
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        assert torch.equal(masked(x), causal(x, x, x))


def test_causal_with_a_mask_is_refused():
    graph = one_block("multihead_attention", {"causal": True}, {**QKV, "mask": ([5, 5], "bool")})
    assert [(d.code, d.port) for d in engine.validate(graph)] == [("bad_param", "mask")]
    graph = one_block("multihead_attention", {}, {**QKV, "mask": ([4, 5], "bool")})
    assert [(d.code, d.port) for d in engine.validate(graph)] == [("shape_mismatch", "mask")]


SDPA = {"q": ([2, 5, 4], "float"), "k": ([2, 6, 4], "float"), "v": ([2, 6, 3], "float")}


@pytest.mark.parametrize("params, mask", [
    ({}, None), ({"causal": True}, None), ({"scale": 0.25}, None), ({}, ([1, 5, 6], "bool")),
    ({}, ([2, 5, 6], "float")), ({"dropout": 0.3}, None),
])
def test_scaled_dot_product_attention_is_torchs(params, mask):
    inputs = {**SDPA, **({"mask": mask} if mask else {})}
    model = compiled(one_block("scaled_dot_product_attention", params, inputs))
    q, k, v = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 6, 4), torch.randn(3, 2, 6, 3)
    args = [q, k, v]
    kwargs = {"is_causal": params.get("causal", False)}
    if params.get("scale"):
        kwargs["scale"] = params["scale"]
    if mask:
        m = torch.rand(3, *mask[0]) > 0.5 if mask[1] == "bool" else torch.randn(3, *mask[0])
        if mask[1] == "bool":
            m[..., 0] = True   # every query attends to something
        args.append(m.float() - 0.5 if mask[1] == "bool" else m)   # the graph compares > 0
        kwargs["attn_mask"] = m
    for train in (False, True):
        model.train(train)
        torch.manual_seed(5)
        got = model(*args)
        torch.manual_seed(5)
        want = F.scaled_dot_product_attention(q, k, v, dropout_p=params.get("dropout", 0.0)
                                              if train else 0.0, **kwargs)
        assert torch.equal(got, want), (params, train)


# --- recurrent layers --------------------------------------------------------------------------


@pytest.mark.parametrize("type_, params, states", [
    ("lstm", {}, False), ("lstm", {"num_layers": 2, "bidirectional": True, "hidden_size": 6}, True),
    ("gru", {}, False), ("gru", {"num_layers": 3, "hidden_size": 5, "bias": False}, True),
    ("lstm", {"num_layers": 2, "dropout": 0.0, "hidden_size": 4}, False),
])
def test_sequence_layers_are_torchs_with_the_batch_first(type_, params, states):
    h = params.get("hidden_size", 32)
    d = 2 if params.get("bidirectional") else 1
    layers = params.get("num_layers", 1)
    inputs = {"x": ([7, 3], "float")}
    if states:
        inputs["h0"] = ([layers * d, h], "float")
        if type_ == "lstm":
            inputs["c0"] = ([layers * d, h], "float")
    graph = one_block(type_, params, inputs)
    model = compiled(graph).eval()
    ref = (nn.LSTM if type_ == "lstm" else nn.GRU)(3, h, num_layers=layers, bias=params.get("bias", True),
                                                   batch_first=True, bidirectional=d == 2).eval()
    ref.load_state_dict(model.blk.state_dict())
    args = [torch.randn(4, 7, 3)] + [torch.randn(4, layers * d, h) for _ in inputs if _ != "x"]
    with torch.no_grad():
        got = outs(model(*args))
        hx = tuple(a.transpose(0, 1).contiguous() for a in args[1:])
        y, state = ref(args[0], (hx if type_ == "lstm" else hx[0]) if states else None)
    want = (y, *(s.transpose(0, 1) for s in (state if type_ == "lstm" else (state,))))
    assert len(got) == len(want) == (3 if type_ == "lstm" else 2)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    assert sum(p.numel() for p in model.parameters()) == analyze(graph).total_params
    assert [tuple(t.shape) for t in got] == [
        tuple(4 if dim == "B" else dim for dim in analyze(graph).inputs[f"out_{p}"]["x"].shape)
        for p in ("y", "h", "c")[:len(got)]]


def test_sequence_layer_mistakes_are_diagnosed():
    assert [d.code for d in engine.validate(one_block("lstm", {"dropout": 0.2}, {"x": ([5, 3], "float")}))] \
        == ["param_out_of_range"]
    half = one_block("lstm", {}, {"x": ([5, 3], "float"), "h0": ([1, 32], "float")})
    assert [d.code for d in engine.validate(half)] == ["missing_input"]
    wrong = one_block("gru", {}, {"x": ([5, 3], "float"), "h0": ([2, 32], "float")})
    assert [(d.code, d.port) for d in engine.validate(wrong)] == [("shape_mismatch", "h0")]


# --- positions and parameters ------------------------------------------------------------------


@pytest.mark.parametrize("params, want", [
    ({}, lambda: torch.arange(5)),
    ({"dim": -1}, lambda: torch.arange(3)),
    ({"dtype": "float"}, lambda: torch.arange(5, dtype=torch.float)),
    ({"aligned": True}, lambda: torch.arange(5).reshape(5, 1)),
])
def test_positions_are_arange_along_a_dim(params, want):
    model = compiled(one_block("positions", params, {"x": ([5, 3], "float")}))
    got = model(torch.randn(2, 5, 3))
    assert torch.equal(got, want()) and got.dtype == want().dtype


def test_positions_refuse_the_batch_dim():
    graph = one_block("positions", {"dim": 0}, {"x": ([5], "float")})
    assert [(d.code, d.param) for d in engine.validate(graph)] == [("param_out_of_range", "dim")]


def test_parameters_start_where_asked():
    graph = build([("c", "parameter", {"shape": [2], "init": "constant", "value": -2.5}),
                   ("v", "parameter", {"shape": [2, 2], "init": "values",
                                       "values": [1, 2.5, -3, 4]}),
                   ("s", "parameter", {"shape": [], "init": "values", "values": [7]}),
                   ("sum", "add"), ("all", "add"), ("o", "output")],
                  ["c -> sum.a", "v -> sum.b", "sum -> all.a", "s -> all.b", "all -> o"])
    model = compiled(graph, seed=123)
    assert torch.equal(model.c, torch.full((2,), -2.5))
    assert torch.equal(model.v, torch.tensor([[1.0, 2.5], [-3.0, 4.0]]))
    assert model.s.shape == () and model.s.item() == 7.0
    assert analyze(graph).total_params == 7


def test_parameter_values_must_fill_the_shape():
    graph = build([("v", "parameter", {"shape": [2, 2], "init": "values", "values": [1, 2, 3]}),
                   ("o", "output")], ["v -> o"])
    (d,) = engine.validate(graph)
    assert (d.code, d.param) == ("shape_mismatch", "values") and "3 initial values" in d.message
    graph = build([("v", "parameter", {"values": [1.0, float("nan")]}), ("o", "output")], ["v -> o"])
    assert [(d.code, d.param) for d in engine.validate(graph)] == [("bad_param", "values")]


# --- Expression: comparisons, masks, many inputs, dtypes -------------------------------------


def expression_graph(expr: str, dtypes: list[str], shapes: list | None = None):
    names = expression.input_names(len(dtypes))
    shapes = shapes or [[3]] * len(dtypes)
    specs = [(f"in_{n}", "input", {"shape": s, "dtype": "long" if d == "long" else "float"})
             for n, s, d in zip(names, shapes, dtypes, strict=True)]
    wires = []
    for n, d in zip(names, dtypes, strict=True):
        if d == "bool":   # a mask comes from a comparison
            specs.append((f"mask_{n}", "expression", {"expr": "a > 0", "inputs": 1}))
            wires += [f"in_{n} -> mask_{n}.a", f"mask_{n} -> f.{n}"]
        else:
            wires.append(f"in_{n} -> f.{n}")
    specs += [("f", "expression", {"expr": expr, "inputs": len(dtypes)}), ("o", "output")]
    return build(specs, [*wires, "f -> o"])


@pytest.mark.parametrize("expr, dtypes, want", [
    ("a < b", ["float", "float"], "bool"), ("a == 1", ["long"], "bool"),
    ("(a > 0) & ~(b > 0) | (a == b)", ["float", "float"], "bool"),
    ("torch.where(a > b, a, 0.0)", ["float", "float"], "float"),
    ("torch.where(a, b, c)", ["bool", "long", "long"], "long"),
    ("torch.where(a, b, 0.5)", ["bool", "long"], "float"),
    ("a + 1", ["long"], "long"), ("a * 1.0", ["long"], "float"), ("a / 2", ["long"], "float"),
    ("torch.exp(a)", ["long"], "float"), ("torch.abs(a) + torch.relu(a)", ["long"], "long"),
    ("torch.clamp(a, min=0)", ["long"], "long"), ("torch.clamp(a, max=0.5)", ["long"], "float"),
    ("torch.max(a, b) - torch.min(a, b)", ["long", "float"], "float"),
    ("a == b", ["bool", "bool"], "bool"),
])
def test_expression_dtypes_are_what_torch_gives(expr, dtypes, want):
    graph = expression_graph(expr, dtypes)
    analysis = analyze(graph)
    assert analysis.ok, [str(d) for d in analysis.diagnostics]
    assert analysis.outputs["f"]["y"].dtype == want
    inputs = engine.example_inputs(graph, 4, generator=torch.Generator().manual_seed(0))
    got = compiled(graph)(*inputs)
    assert got.dtype == {"float": torch.float32, "long": torch.int64, "bool": torch.bool}[want]


def test_every_function_gives_the_dtype_the_table_says():
    for name, (arity, keywords, _) in expression.FUNCTIONS.items():
        for dtype in ("float", "long"):
            if name == "where":
                expr, dtypes = "torch.where(a > 0, b, c)", [dtype, dtype, dtype]
            else:
                args = ", ".join("abc"[:arity])
                kw = f", {keywords[0]}=1" if keywords else ""
                expr, dtypes = f"torch.{name}({args}{kw})", [dtype] * arity
            graph = expression_graph(expr, dtypes)
            analysis = analyze(graph)
            assert analysis.ok, (expr, dtype, [str(d) for d in analysis.diagnostics])
            inputs = engine.example_inputs(graph, 2, generator=torch.Generator().manual_seed(0))
            got = compiled(graph)(*inputs)
            assert str(got.dtype).removeprefix("torch.") == {
                "float": "float32", "long": "int64", "bool": "bool"}[analysis.outputs["f"]["y"].dtype], \
                (expr, dtype)


def test_expression_takes_up_to_26_inputs():
    n = expression.MAX_INPUTS
    names = expression.input_names(n)
    assert names[-1] == "z" and len(names) == 26
    graph = expression_graph(" + ".join(names), ["float"] * n)
    inputs = engine.example_inputs(graph, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(compiled(graph)(*inputs), sum(inputs))
    too_many = build([("f", "expression", {"expr": "a", "inputs": 27}), ("o", "output")], ["f -> o"])
    assert "param_out_of_range" in [d.code for d in engine.validate(too_many)]


def test_old_expressions_read_the_same():
    graph = expression_graph("a * torch.sigmoid(b) + c - d", ["float"] * 4)
    a, b, c, d = (torch.randn(2, 3) for _ in range(4))
    assert torch.equal(compiled(graph)(a, b, c, d), a * torch.sigmoid(b) + c - d)


@pytest.mark.parametrize("expr, dtypes", [
    ("a % 2", ["long"]), ("a ** 2", ["long"]), ("a + b", ["bool", "float"]), ("-a", ["bool"]),
    ("torch.sigmoid(a)", ["bool"]), ("torch.where(a, b, b)", ["float", "float"]),
    ("a & b", ["float", "bool"]), ("a < b", ["bool", "float"]),
])
def test_expression_refuses_what_torch_would_refuse_when_it_runs(expr, dtypes):
    (d,) = [d for d in engine.validate(expression_graph(expr, dtypes)) if d.severity == "error"]
    assert (d.code, d.node, d.param) == ("bad_expression", "f", "expr")


# --- every new block: its export is ruff-clean and bit for bit the compiled module -----------

NEW_BLOCKS = [
    ("normal", {"std": 2.0}, {"x": ([4], "float")}),
    ("normal", {"shape": [3], "eval": "mean", "mean": 1.0}, {}),
    ("uniform", {"low": -1.0, "high": 1.0}, {"x": ([4], "float")}),
    ("bernoulli", {"p": 0.25, "shape": [2, 2]}, {}),
    ("reparameterize", {}, {"mu": ([3], "float"), "logvar": ([3], "float")}),
    ("bce", {"reduction": "sum"}, {"input": ([4], "float"), "target": ([4], "float")}),
    ("scaled_dot_product_attention", {"causal": True, "dropout": 0.2}, SDPA),
    ("multihead_attention", {"causal": True}, QKV),
    ("multihead_attention", {"dropout": 0.1}, {**QKV, "mask": ([5, 5], "float")}),
    ("lstm", {"bidirectional": True, "num_layers": 2, "dropout": 0.1},
     {"x": ([6, 3], "float"), "h0": ([4, 32], "float"), "c0": ([4, 32], "float")}),
    ("gru", {"hidden_size": 8}, {"x": ([6, 3], "float")}),
    ("positions", {"aligned": True, "dtype": "float"}, {"x": ([5, 2, 3], "float")}),
    ("cross_entropy", {"reduction": "none"}, {"input": ([5, 7], "float"), "target": ([5], "long")}),
    ("parameter", {"shape": [2, 2], "init": "values", "values": [1, 2, 3, 4]}, {}),
    ("expression", {"expr": "torch.where((a > b) | (c < 0), torch.max(a, c), -b)", "inputs": 3},
     {"a": ([4], "float"), "b": ([4], "float"), "c": ([4], "float")}),
]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("new_block_exports")
    for i, (type_, params, inputs) in enumerate(NEW_BLOCKS):
        graph = one_block(type_, params, inputs, name=f"block {i} {type_}")
        (folder / f"block_{i}.py").write_text(engine.export_python(graph), encoding="utf-8")
    return folder


@pytest.mark.parametrize("i", range(len(NEW_BLOCKS)), ids=[b[0] for b in NEW_BLOCKS])
def test_new_block_export_is_the_compiled_module(i, exports):
    type_, params, inputs = NEW_BLOCKS[i]
    graph = one_block(type_, params, inputs, name=f"block {i} {type_}")
    model = compiled(graph)
    module = import_file(exports / f"block_{i}.py", f"dprog_new_block_{i}")
    exported = getattr(module, module.__all__[0])()
    exported.load_state_dict(model.state_dict())
    example = engine.example_inputs(graph, 3, generator=torch.Generator().manual_seed(i))
    for train in (True, False):
        model.train(train)
        exported.train(train)
        torch.manual_seed(100 + i)
        a = outs(model(*example))
        torch.manual_seed(100 + i)
        b = outs(exported(*example))
        assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_new_block_exports_pass_ruff(exports):
    ruff = [str(p) for p in (REPO / ".venv" / "bin" / "ruff",) if p.exists()] or \
        [sys.executable, "-m", "ruff"]
    for config in (["--config", str(REPO / "pyproject.toml")], ["--isolated"]):
        result = subprocess.run([*ruff, "check", "--no-cache", *config, str(exports)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
