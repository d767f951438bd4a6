"""The PyTorch importer (issue 14): textbook models import, compile, load the original
weights strictly and compute the same; what cannot be imported is refused clearly."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision_models
from torch import nn

import engine
from engine.core.config import TrainingConfig
from engine.core.graph import Edge, Graph, Node, replace_node
from engine.runtime.importer import ImportRefused, import_module

SAMPLES = Path(__file__).parent.parent / "sample_graphs"


# --- textbook models --------------------------------------------------------------------------


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.bn1 = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.bn1(self.fc1(x)))))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU())
        self.layers = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, 2), BasicBlock(16, 16))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class TransformerBlock(nn.Module):
    """nanoGPT's block, with torch's MultiheadAttention for its attention."""

    def __init__(self, d=16, heads=2):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.drop(self.proj(F.gelu(self.fc(self.ln_2(x)))))


class CausalSelfAttention(nn.Module):
    """nanoGPT's own attention (its flash path, torch >= 2.0), as model.py writes it: the
    sizes read with x.size(), q, k, v split, viewed into heads and transposed."""

    def __init__(self, n_embd=16, n_head=2, dropout=0.0, bias=True):
        super().__init__()
        assert n_embd % n_head == 0
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head = n_head
        self.n_embd = n_embd
        self.dropout = dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0,
            is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        y = self.resid_dropout(self.c_proj(y))
        return y


class NanoMLP(nn.Module):
    def __init__(self, n_embd=16, dropout=0.0, bias=True):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = self.c_fc(x)
        x = self.gelu(x)
        x = self.c_proj(x)
        x = self.dropout(x)
        return x


class LayerNorm(nn.Module):
    """ LayerNorm but with an optional bias. PyTorch doesn't support simply bias=False """
    # nanoGPT's own, verbatim

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class NanoBlock(nn.Module):
    """nanoGPT's Block, with its own LayerNorm class."""

    def __init__(self, n_embd=16, n_head=2, bias=True):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, bias=bias)
        self.ln_2 = LayerNorm(n_embd, bias=bias)
        self.mlp = NanoMLP(n_embd, bias=bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class NanoGPT(nn.Module):
    def __init__(self, vocab=20, block_size=8, n_embd=16):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, n_embd), wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([NanoBlock(n_embd) for _ in range(2)]), ln_f=LayerNorm(n_embd, True)))
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight   # nanoGPT ties them this way round

    def forward(self, idx):
        _, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab=20, d=16):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.h0 = TransformerBlock(d)
        self.h1 = TransformerBlock(d)
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight   # tied, as in GPT-2

    def forward(self, idx):
        return self.lm_head(self.ln_f(self.h1(self.h0(self.wte(idx)))))


class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(6, 12, num_layers=2, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1])


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 12, batch_first=True, bidirectional=True)
        self.head = nn.Linear(24, 4)

    def forward(self, x):
        out, (_h, _c) = self.lstm(x)
        return self.head(out[:, -1])


def _ids(*shape):
    return torch.randint(0, 20, shape)


MODELS = {
    "mlp": (MLP, lambda: torch.randn(4, 8)),
    "lenet": (LeNet, lambda: torch.randn(2, 1, 28, 28)),
    "resnet": (ResNet, lambda: torch.randn(2, 3, 16, 16)),
    "transformer": (TransformerBlock, lambda: torch.randn(2, 5, 16)),
    "gpt": (TinyGPT, lambda: _ids(2, 7)),
    "nanogpt_block": (NanoBlock, lambda: torch.randn(2, 5, 16)),
    "nanogpt": (NanoGPT, lambda: _ids(2, 8)),
    "gru": (GRUClassifier, lambda: torch.randn(3, 5, 6)),
    "lstm": (LSTMClassifier, lambda: torch.randn(3, 5, 6)),
    # torchvision's own architectures (see torchvision_models.py for why a copy)
    "resnet18": (torchvision_models.resnet18, lambda: torch.randn(2, 3, 64, 64)),
    "mobilenet_v2": (torchvision_models.mobilenet_v2, lambda: torch.randn(2, 3, 64, 64)),
}


def _trained_like(model: nn.Module) -> nn.Module:
    """Weights and running statistics away from their initial values, as after training."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                t.add_(torch.rand(t.shape, generator=gen) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def imported():
    """Each textbook model, imported once: (model, x, Imported)."""
    out = {}
    for name, (cls, x) in MODELS.items():
        torch.manual_seed(0)
        model, inp = _trained_like(cls()), x()
        out[name] = (model, inp, import_module(model, inp))
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_textbook_model_imports_with_its_weights_and_outputs(name, imported):
    model, x, result = imported[name]
    compiled = engine.compile_graph(result.graph).eval()
    compiled.load_state_dict(result.state_dict(model.state_dict()), strict=True)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-6)
    assert engine.validate(result.graph) == [] or all(
        d.severity != "error" for d in engine.validate(result.graph))


@pytest.mark.parametrize("name", ["mlp", "lenet", "gru", "lstm"])
def test_flat_models_keep_their_state_dict_keys(name, imported):
    model, _, result = imported[name]
    assert result.same_keys
    compiled = engine.compile_graph(result.graph)
    compiled.load_state_dict(model.state_dict(), strict=True)


def test_container_keys_are_kept(imported):
    """Modules inside an nn.Sequential keep their keys (`layers.1.downsample.0.weight`): the
    nodes are labelled with their paths, which the generated code holds in nn.ModuleDicts."""
    model, _, result = imported["resnet"]
    assert result.same_keys
    compiled = engine.compile_graph(result.graph)
    compiled.load_state_dict(model.state_dict(), strict=True)
    assert result.graph.node("layers_1").label == "layers.1"
    code = engine.export_python(result.graph)
    assert 'self.layers["1"] = BasicBlock2()' in code
    assert 'self.downsample["0"] = nn.Conv2d(' in code


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_torchvision_models_keep_every_key_and_their_structure(name, imported):
    """Strict loading of the model's own state_dict; each BasicBlock variant or
    InvertedResidual variant is a function, and torchvision's Conv2dNormActivation (an
    nn.Sequential subclass) is a container, not a function."""
    model, x, result = imported[name]
    assert result.same_keys
    compiled = engine.compile_graph(result.graph).eval()
    compiled.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-6)
    g = result.graph
    calls = [n for n in g.nodes if n.type == "call"]
    if name == "resnet18":
        assert [n.label for n in calls] == [f"layer{i}.{j}" for i in range(1, 5) for j in (0, 1)]
        assert len(g.functions) == 7   # layer1's two blocks are alike; layers 2-4 differ
    else:
        assert len(calls) == 17 and all(n.label.startswith("features.") for n in calls)
        assert g.node("features_0_0").label == "features.0.0"
        assert not any("activation" in f for f in g.functions)


def test_torchvision_itself_when_it_imports():
    """The real torchvision, where its wheel works with this torch (not on CPU-only machines
    whose torchvision wheel is a CUDA build: then this test is skipped, saying so)."""
    try:
        from torchvision import models
    except Exception as e:   # ImportError, or a CUDA wheel's RuntimeError against CPU torch
        pytest.skip(f"torchvision does not import here: {type(e).__name__}: {e}")
    for make in (models.resnet18, models.mobilenet_v2):
        torch.manual_seed(0)
        model, x = _trained_like(make(weights=None)), torch.randn(2, 3, 64, 64)
        result = import_module(model, x)
        assert result.same_keys
        compiled = engine.compile_graph(result.graph).eval()
        compiled.load_state_dict(model.state_dict(), strict=True)
        with torch.no_grad():
            assert torch.allclose(compiled(x), model(x), atol=1e-6)


def test_nanogpt_keeps_its_keys_its_tie_and_its_attention_ops(imported):
    """nanoGPT's own attention arrives as blocks (Split, Reshape, Permute, SDPA with causal
    on), its ModuleDict/ModuleList as module paths (`transformer.h.0`), its position ids as
    a Positions block, and wte tied to lm_head."""
    _, _, result = imported["nanogpt"]
    assert result.same_keys
    g = result.graph
    blocks = [g.node(c).label for c in ("transformer_h_0", "transformer_h_1")]
    assert blocks == ["transformer.h.0", "transformer.h.1"]
    body = g.functions[g.node("transformer_h_0").params["function"]].body
    attn = g.functions[body.node("attn").params["function"]].body
    types = [n.type for n in attn.nodes]
    assert types.count("reshape") == 4 and types.count("permute") == 4, types
    (sdpa,) = [n for n in attn.nodes if n.type == "scaled_dot_product_attention"]
    assert sdpa.params == {"causal": True}
    assert "positions" in [n.type for n in g.nodes]
    ties = {n.id: dict(n.ties) for n in g.nodes if n.ties}
    assert ties == {"lm_head": {"weight": ("transformer_wte", "weight")}}


def test_nanogpts_own_layer_norm_keeps_its_keys_with_or_without_bias():
    """F.layer_norm with the module's own parameters: a LayerNorm block without affine,
    times the Parameter block `weight` (plus `bias`), keys unchanged."""
    for bias in (True, False):
        torch.manual_seed(0)
        model = _trained_like(NanoBlock(bias=bias))
        x = torch.randn(2, 5, 16)
        result = import_module(model, x)
        assert result.same_keys, [k for k, v in result.keys.items() if k != v]
        g = result.graph
        ln = g.functions[g.node("ln_1").params["function"]].body
        assert sorted(n.type for n in ln.nodes) == sorted(
            ["body_input", "parameter", "layer_norm", "mul", "body_output"]
            + ["parameter", "add"] * bias)
        compiled = engine.compile_graph(g).eval()
        compiled.load_state_dict(model.state_dict(), strict=True)
        with torch.no_grad():
            assert torch.allclose(compiled(x), model(x), atol=1e-5)


def test_elementwise_ops_and_constants_become_expressions():
    class Formulae(nn.Module):
        def forward(self, x):
            y = torch.where(x > 0, x, 0.1 * x) + 1
            return torch.cos(y).clamp(min=-0.5) * (1 - x) ** 2

    model = Formulae()
    x = torch.randn(3, 4)
    result = import_module(model, x)
    exprs = [n.params["expr"] for n in result.graph.nodes if n.type == "expression"]
    assert exprs == ["a > 0", "0.1 * a", "torch.where(a, b, c)", "a + 1", "torch.cos(a)",
                     "torch.clamp(a, min=-0.5)", "1 - a", "a ** 2"], exprs
    compiled = engine.compile_graph(result.graph)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-6)


def test_a_buffer_of_one_value_becomes_a_constant_and_others_are_refused():
    class Offset(nn.Module):
        def __init__(self, fill):
            super().__init__()
            self.register_buffer("offset", fill, persistent=False)
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x) + self.offset

    result = import_module(Offset(torch.full((3,), 0.5)), torch.randn(2, 3))
    (const,) = [n for n in result.graph.nodes if n.type == "constant"]
    assert const.params == {"shape": (3,), "value": 0.5}
    with pytest.raises(ImportRefused, match="buffer or constant tensor"):
        import_module(Offset(torch.arange(3.0)), torch.randn(2, 3))


def test_a_forward_that_differs_while_training_is_refused():
    class Sampling(nn.Module):
        def __init__(self):
            super().__init__()
            self.mu = nn.Linear(4, 2)

        def forward(self, x):
            mu = self.mu(x)
            return mu + torch.randn_like(mu) if self.training else mu

    with pytest.raises(ImportRefused, match=r"another path while training.*test_importer\.py"):
        import_module(Sampling(), torch.randn(2, 4))
    # nanoGPT's `dropout_p=self.dropout if self.training else 0` with dropout on: the block
    # has one dropout for both modes, so the import asks for the setting to be one value.
    with pytest.raises(ImportRefused, match=r"other settings while training.*0\.1"):
        import_module(CausalSelfAttention(dropout=0.1), torch.randn(2, 5, 16))


def test_keys_that_are_not_attribute_names_are_renamed_one_to_one():
    class Upper(nn.Module):
        def __init__(self):
            super().__init__()
            self.Proj = nn.Linear(3, 4)
            self.head = nn.Sequential(nn.Linear(4, 2))

        def forward(self, x):
            return self.head(self.Proj(x))

    model = Upper()
    result = import_module(model, torch.randn(2, 3))
    assert result.keys == {"Proj.weight": "proj.weight", "Proj.bias": "proj.bias",
                           "head.0.weight": "head.0.weight", "head.0.bias": "head.0.bias"}
    compiled = engine.compile_graph(result.graph)
    compiled.load_state_dict(result.state_dict(model.state_dict()), strict=True)


def test_a_module_path_taken_twice_gets_an_attribute_of_its_own():
    """Two nodes labelled with one path (or a path under a module) cannot both live there:
    the later one falls back to a plain attribute, and the code still runs."""
    nodes = [Node("x", "input", {"shape": (3,)}),
             Node("a", "linear", {"out_features": 3}, label="seq.0"),
             Node("b", "linear", {"out_features": 3}, label="seq.0"),
             Node("c", "linear", {"out_features": 2}, label="seq.0.w"),
             Node("y", "output")]
    ids = [n.id for n in nodes]
    g = Graph(tuple(nodes), tuple(Edge((a, "y"), (b, "x")) for a, b in itertools.pairwise(ids)),
              name="clash")
    keys = [k for k in engine.compile_graph(g).state_dict() if k.endswith(".weight")]
    assert keys == ["seq.0.weight", "seq_0_2.weight", "seq_0_w.weight"]
    # A key nn.ModuleDict itself refuses (one of its attributes) is never used as one.
    clash = Graph((Node("x", "input", {"shape": (3,)}),
                   Node("a", "linear", {"out_features": 2}, label="seq.keys"),
                   Node("y", "output")), (Edge(("x", "y"), ("a", "x")), Edge(("a", "y"), ("y", "x"))),
                  name="keys")
    assert list(engine.compile_graph(clash).state_dict()) == ["seq_keys.weight", "seq_keys.bias"]


def test_tied_weights_become_a_tie(imported):
    _, _, result = imported["gpt"]
    assert result.graph.node("lm_head").ties == {"weight": ("wte", "weight")}


def test_submodules_become_functions_and_keep_their_keys(imported):
    """A class used twice with the same settings is one function with two calls, and a
    function's call keeps the submodule's name: GPT's keys all come through unchanged."""
    g = imported["gpt"][2].graph
    assert list(g.functions) == ["transformer_block"]
    assert [n.id for n in g.nodes if n.type == "call"] == ["h0", "h1"]
    assert imported["gpt"][2].same_keys
    # A class whose instances differ (channels, a downsample) is one function per variant.
    g = imported["resnet"][2].graph
    assert [n.params["function"] for n in g.nodes if n.type == "call"] == \
        ["basic_block", "basic_block_2", "basic_block_3"]
    body = g.functions["basic_block"].body
    assert [n.type for n in body.nodes][:3] == ["body_input", "conv2d", "batch_norm2d"]


def test_flat_import_inlines_every_submodule():
    torch.manual_seed(0)
    model = _trained_like(ResNet())
    g = import_module(model, torch.randn(2, 3, 16, 16), flat=True).graph
    assert not g.functions and "layers_1_downsample_0" in g


def test_layout_runs_left_to_right_by_depth(imported):
    g = imported["lenet"][2].graph
    xs = [n.pos[0] for n in g.nodes]
    assert xs == sorted(xs) and len(set(xs)) == len(g.nodes)   # a chain: one node per column
    g = imported["resnet"][2].graph
    for e in g.edges:
        assert g.node(e.src[0]).pos[0] < g.node(e.dst[0]).pos[0]


# --- refusals ---------------------------------------------------------------------------------


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return x


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.conv(x))


class Reflect(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")

    def forward(self, x):
        return self.conv(x)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(self.fc(x))


def test_data_dependent_control_flow_is_refused_naming_the_line():
    with pytest.raises(ImportRefused, match=r"data-dependent.*test_importer\.py:\d+ \(if x\.sum"):
        import_module(DataDependent(), torch.randn(2, 4))


def test_a_module_with_no_block_is_refused_naming_it_and_its_line():
    with pytest.raises(ImportRefused, match=r"PixelShuffle.*test_importer\.py:\d+.*no dprog block"):
        import_module(Unsupported(), torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("model, x, what", [
    (Reflect(), torch.randn(1, 3, 8, 8), "padding_mode='reflect'"),
    (nn.Sequential(nn.Conv2d(3, 8, (3, 5))), torch.randn(1, 3, 8, 8), r"\(3, 5\) is not one int"),
    (nn.Sequential(nn.BatchNorm1d(4, eps=1e-3)), torch.randn(2, 4), "eps=0.001"),
    (nn.Sequential(nn.GRU(4, 4)), torch.randn(3, 2, 4), "batch_first=False"),
    (Shared(), torch.randn(2, 4), "called more than once"),
])
def test_what_a_block_cannot_express_is_refused_not_changed(model, x, what):
    with pytest.raises(ImportRefused, match=what):
        import_module(model, x)


def test_a_final_state_in_torch_layout_is_refused():
    class LastState(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(4, 4, batch_first=True)

        def forward(self, x):
            return self.gru(x)[1]

    with pytest.raises(ImportRefused, match="item 1"):
        import_module(LastState(), torch.randn(2, 3, 4))


# --- round trips ------------------------------------------------------------------------------


def _load_source(source: str, path: Path):
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["lenet", "resnet", "gpt", "nanogpt", "resnet18",
                                  "mobilenet_v2"])
def test_export_of_an_import_equals_the_original_and_imports_again(name, imported, tmp_path):
    model, x, result = imported[name]
    from engine.runtime.export import class_name_of

    source = engine.export_python(result.graph)
    mod = _load_source(source, tmp_path / f"imported_{name}.py")
    exported = getattr(mod, class_name_of(source))().eval()
    exported.load_state_dict(result.state_dict(model.state_dict()), strict=True)
    with torch.no_grad():
        assert torch.allclose(exported(x), model(x), atol=1e-6)
    # Importing the export gives the same graph. Only names may differ: the ids of weightless
    # nodes (a ReLU module `stem_2` comes back as the function call `relu`) and of functions
    # (class BasicBlock2 comes back as basic_block2).
    again = import_module(exported, x)
    assert _shape_of(again.graph) == _shape_of(result.graph)
    assert again.same_keys


def _shape_of(graph):
    """The graph up to names: types, params, layout (column and row: a column's width
    follows its titles) and bodies, node by node."""
    def region(g):
        columns = sorted({n.pos[0] for n in g.nodes})
        return [(n.type, (columns.index(n.pos[0]), n.pos[1]),
                 {k: v for k, v in n.params.items() if k != "function"},
                 region(graph.functions[n.params["function"]].body) if n.type == "call" else None)
                for n in g.nodes], len(g.edges)
    return region(graph)


def test_sample_graph_exports_import_again(tmp_path):
    """Every sample graph → model.py → import: those that import compute the same; the others
    are refused cleanly. The README's coverage line counts these."""
    from engine.runtime.compiler import example_inputs
    from engine.runtime.export import class_name_of

    ok, refused = [], {}
    for path in sorted(SAMPLES.glob("*.json")):
        graph = engine.load_graph(path)
        source = engine.export_python(graph)
        mod = _load_source(source, tmp_path / f"sample_{path.stem}.py")
        torch.manual_seed(0)
        model = getattr(mod, class_name_of(source))().eval()
        xs = example_inputs(graph, 2)
        try:
            result = import_module(model, xs)
        except ImportRefused as e:
            refused[path.stem] = str(e)
            continue
        compiled = engine.compile_graph(result.graph).eval()
        compiled.load_state_dict(result.state_dict(model.state_dict()), strict=True)
        with torch.no_grad():
            a, b = compiled(*xs), model(*xs)
        a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
        assert all(torch.allclose(u, v, atol=1e-6) for u, v in zip(a, b, strict=True))
        ok.append(path.stem)
    print(json.dumps({"imported": ok, "refused": refused}, indent=1))
    # Refused, each saying why: loops and a halting branch (fx traces without values), a
    # weightless body called 40 times with one tensor as two arguments, and sampling that
    # only happens while training.
    assert set(refused) == {"adaptive_depth", "projectile", "rnn_scan", "vae"}, refused
    assert "data-dependent" in refused["adaptive_depth"] and "data-dependent" in refused["rnn_scan"]
    assert "do not trace alike" in refused["projectile"]
    assert "another path while training" in refused["vae"]
    assert len(ok) == len(list(SAMPLES.glob("*.json"))) - 4


# --- the command line -------------------------------------------------------------------------

CLI_MODEL = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        return self.head(self.features(x))


class Branchy(nn.Module):
    def forward(self, x):
        return x if x.mean() > 0 else -x
'''


def test_cli_imports_a_file_with_weights(tmp_path, capsys):
    from engine.cli.main import main

    src = tmp_path / "mynet.py"
    src.write_text(CLI_MODEL, encoding="utf-8")
    out, weights = tmp_path / "net.json", tmp_path / "weights.pt"
    code = main(["import", f"{src}:Net", "--args", '{"width": 6}', "--input-shape", "2,3,8,8",
                 "-o", str(out), "--weights", str(weights)])
    assert code == 0, capsys.readouterr().err
    graph = engine.load_graph(out)
    assert [n.type for n in graph.nodes] == ["input", "conv2d", "relu", "adaptive_avg_pool2d",
                                             "flatten", "linear", "output"]
    state = torch.load(weights, weights_only=True)
    engine.compile_graph(graph).load_state_dict(state, strict=True)
    assert "features.0.weight" in state   # the model's own keys

    code = main(["import", f"{src}:Branchy", "--input-shape", "2,3", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "data-dependent" in err and "mynet.py:" in err
    assert main(["import", f"{src}:Nope", "--input-shape", "2,3", "-o", str(out)]) == 2


# --- fine-tuning from imported weights ---------------------------------------------------------


def test_import_weights_are_where_training_starts(tmp_path, capsys):
    """`dprog import --weights` names the file in the graph's training.weights (relative to
    the graph); a run starts from it, and a new head (another out_features) starts fresh."""
    from engine.cli.main import main
    from engine.runtime.trainer import Trainer, start_from_weights

    src = tmp_path / "mynet.py"
    src.write_text(CLI_MODEL, encoding="utf-8")
    (tmp_path / "w").mkdir()
    out = tmp_path / "net.json"
    assert main(["import", f"{src}:Net", "--input-shape", "2,3,8,8", "-o", str(out),
                 "--weights", str(tmp_path / "w" / "net.pt")]) == 0, capsys.readouterr().err
    graph = engine.load_graph(out)
    assert graph.training == {"weights": "w/net.pt"}
    state = torch.load(tmp_path / "w" / "net.pt", weights_only=True)

    def started(graph):
        config = TrainingConfig.from_mapping(
            {**graph.training, "dataset": {"name": "digits", "size": 8, "channels": 3},
             "steps": 1, "lr": 1e-9, "gradflow_every": 0})
        trainer = Trainer(graph, config, base_dir=tmp_path)
        trainer.setup()
        return trainer

    module = engine.compile_graph(graph)   # the file's 5 classes: all 4 tensors fit
    note = start_from_weights(module, str(tmp_path / "w" / "net.pt"), torch.device("cpu"))
    assert note == "started from net.pt: 4 of 4 tensors"
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key])
    head = next(n for n in graph.nodes if n.type == "linear")
    tuned = replace_node(graph, dataclasses.replace(head, params={**head.params,
                                                                  "out_features": 10}))
    trainer = started(tuned)
    assert trainer.weights_note == ("started from net.pt: 2 of 4 tensors; head.weight, "
                                    "head.bias start fresh, as their shapes changed")
    assert torch.equal(trainer.module.state_dict()["features.0.weight"], state["features.0.weight"])


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"not a zip", "not a file torch.save wrote"),
    ("pickle", "pickled Python objects"),
    ({"x.weight": torch.zeros(2)}, "none of its 1 tensors fits this graph"),
    ([1, 2], "not a state_dict"),
])
def test_weights_that_cannot_start_a_run_are_refused_naming_the_file(tmp_path, content, message):
    from engine.runtime.trainer import TrainingError, start_from_weights

    path = tmp_path / "w.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "pickle":   # a hostile file: weights_only refuses to load its code
        torch.save({"w": torch.zeros(1), "run": print}, path)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(TrainingError, match=message) as info:
        start_from_weights(nn.Linear(2, 2), str(path), torch.device("cpu"))
    assert "training.weights" in str(info.value) and "w.pt" in str(info.value)


def test_cli_help_says_the_file_is_run(capsys):
    from engine.cli.main import main

    with pytest.raises(SystemExit):
        main(["import", "--help"])
    assert "is RUN" in " ".join(capsys.readouterr().out.split())


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        return torch.tanh(self.norm(self.fc(x)))


class Siamese(nn.Module):
    """One encoder instance applied to both inputs: shared weights."""

    def __init__(self):
        super().__init__()
        self.enc = Encoder()
        self.head = nn.Linear(16, 1)

    def forward(self, a, b):
        return self.head(torch.cat([self.enc(a), self.enc(b)], dim=1))


def test_a_shared_submodule_becomes_a_weight_group():
    torch.manual_seed(0)
    model, xs = _trained_like(Siamese()), (torch.randn(3, 6), torch.randn(3, 6))
    result = import_module(model, xs)
    calls = [n for n in result.graph.nodes if n.type == "call"]
    assert [(n.id, dict(n.params)) for n in calls] == [
        ("enc", {"function": "encoder", "weights": "enc"}),
        ("enc_2", {"function": "encoder", "weights": "enc"})]
    assert result.same_keys
    compiled = engine.compile_graph(result.graph).eval()
    compiled.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(compiled(*xs), model(*xs), atol=1e-6)
    with pytest.raises(ImportRefused, match="called more than once"):
        import_module(model, xs, flat=True)


def test_engine_from_torch_gives_the_graph():
    torch.manual_seed(0)
    graph = engine.from_torch(MLP().eval(), torch.randn(4, 8))
    assert [n.type for n in graph.nodes] == ["input", "linear", "batch_norm1d", "relu", "dropout",
                                             "linear", "output"]


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.randn(3))
        self.fc = nn.Linear(3, 2)
        self.register_buffer("offset", torch.ones(2))

    def forward(self, x):
        return self.fc(x * self.gain)


def test_a_bare_parameter_becomes_a_parameter_block_and_a_buffer_is_refused():
    torch.manual_seed(0)
    model, x = Scaled().eval(), torch.randn(2, 3)
    with pytest.raises(ImportRefused, match="never uses: offset"):
        import_module(model, x)
    del model.offset
    result = import_module(model, x)
    assert result.graph.node("gain").type == "parameter" and result.same_keys
    compiled = engine.compile_graph(result.graph).eval()
    compiled.load_state_dict(model.state_dict(), strict=True)
    assert torch.allclose(compiled(x), model(x), atol=1e-6)

    class Buffered(Scaled):
        def forward(self, x):
            return self.fc(x) + self.offset

    with pytest.raises(ImportRefused, match="buffer or constant tensor"):
        import_module(Buffered(), x)


class ClassicLeNet(nn.Module):
    """LeNet as tutorials write it: functional ops, `x.view(-1, 16 * 4 * 4)`."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2 = nn.Linear(16 * 4 * 4, 120), nn.Linear(120, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, 16 * 4 * 4)
        return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


class FlattenBySize(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        x = self.conv(x)
        return F.softmax(self.fc(x.view(x.size(0), -1)), dim=-1)


@pytest.mark.parametrize("model, x", [(ClassicLeNet(), torch.randn(2, 1, 28, 28)),
                                      (FlattenBySize(), torch.randn(3, 1, 8, 8))])
def test_tutorial_idioms_import(model, x):
    """The reshapes tutorials write to flatten (-1 standing for the batch, or x.size(0)),
    and F.softmax as fx records it (with its hidden `_stacklevel` keyword)."""
    result = import_module(model.eval(), x)
    assert "reshape" in [n.type for n in result.graph.nodes]
    compiled = engine.compile_graph(result.graph).eval()
    compiled.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-6)
        bigger = torch.randn(5, *x.shape[1:])   # the batch stays free
        assert torch.allclose(compiled(bigger), model(bigger), atol=1e-6)


def test_a_reshape_across_the_batch_is_refused():
    class Folding(nn.Module):
        def forward(self, x):
            return x.view(-1, 4)   # (B, 2, 4) → (B·2, 4)

    with pytest.raises(ImportRefused, match="batch"):
        import_module(Folding(), torch.randn(3, 2, 4))


class _Unsqueeze0(nn.Module):
    def forward(self, x):
        return x.unsqueeze(0).sum(1)


class _SqueezeAll(nn.Module):
    def forward(self, x):
        return x.squeeze()


class _Halves(nn.Module):
    def forward(self, y):
        return y[:, :y.size(1) // 2] * y.size(-1) ** -0.5


class _Keywords(nn.Module):
    def forward(self, x):
        return (-2.0) ** x.transpose(dim0=1, dim1=2)


def test_shape_forms_that_depend_on_the_batch_are_refused_even_at_batch_one():
    """With an example batch of 1, dim 0 looks like any other size 1: a reshape that
    adds or drops the batch dim must still be refused, not imported for one batch size."""
    with pytest.raises(ImportRefused, match="before the batch"):
        import_module(_Unsqueeze0(), torch.randn(1, 4))
    with pytest.raises(ImportRefused, match="squeeze"):
        import_module(_SqueezeAll(), torch.randn(1, 1, 4))


@pytest.mark.parametrize("model, x", [(_Halves(), torch.randn(2, 6)),
                                      (_Keywords(), torch.randn(2, 3, 4))])
def test_computed_sizes_keywords_and_negative_constants_import(model, x):
    result = import_module(model, x)
    with torch.no_grad():
        assert torch.allclose(engine.compile_graph(result.graph)(x), model(x), atol=1e-6,
                              equal_nan=True)


def test_an_example_that_does_not_fit_is_refused_in_one_line(capfd):
    with pytest.raises(ImportRefused, match=r"failed on example inputs of shape \(2, 5\).*"
                       r"mat1 and mat2.*give the shapes the model expects"):
        import_module(nn.Linear(3, 2), torch.randn(2, 5))
    assert "Traceback" not in capfd.readouterr().err


def test_importing_again_runs_the_files_as_they_are_now(tmp_path):
    """The studio imports in its own process: a sibling module the file imports is not kept
    from one import to the next, and nothing is left on sys.path or in sys.modules."""
    from engine.runtime.import_file import load_model

    (tmp_path / "widths.py").write_text("WIDTH = 3\n", encoding="utf-8")
    (tmp_path / "net_again.py").write_text(
        "from torch import nn\nfrom widths import WIDTH\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(2, WIDTH)\n\n    def forward(self, x):\n"
        "        return self.fc(x)\n", encoding="utf-8")
    path_before, modules_before = list(sys.path), set(sys.modules)
    assert load_model(tmp_path / "net_again.py", "Net", {}).fc.out_features == 3
    (tmp_path / "widths.py").write_text("WIDTH = 5\n", encoding="utf-8")
    assert load_model(tmp_path / "net_again.py", "Net", {}).fc.out_features == 5
    assert sys.path == path_before
    assert not {"widths", "net_again"} & (set(sys.modules) - modules_before)
    assert not (tmp_path / "__pycache__").exists()   # nothing written into the user's folder


class _GlobalAveragePool(nn.Module):
    """Global average pooling written as a mean over both spatial dims."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        h = self.conv(x)
        return self.fc(h.mean([2, 3])) + h.sum((-1, -2), keepdim=True).flatten(1)[:, :2]


def test_a_reduction_over_several_dims_is_one_block_per_dim():
    model = _GlobalAveragePool().eval()
    x = torch.randn(2, 3, 8, 8)
    result = import_module(model, x)
    means = [n.params for n in result.graph.nodes if n.type == "mean"]
    sums = [n.params for n in result.graph.nodes if n.type == "sum"]
    assert means == [{"dim": 3}, {"dim": 2}]
    assert sums == [{"dim": 3, "keepdim": True}, {"dim": 2, "keepdim": True}]
    compiled = engine.compile_graph(result.graph).eval()
    compiled.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)
    with pytest.raises(ImportRefused, match="batch"):
        import_module(_Over(), torch.randn(2, 3))


class _Over(nn.Module):
    def forward(self, x):
        return x.sum([0, 1])
