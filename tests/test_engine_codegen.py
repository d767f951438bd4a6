"""The code generator's tables: every loop mode, branch mode and emission kind has its
emitter, and a new block of any emission kind needs nothing but its spec."""

from __future__ import annotations

import pytest
import torch
from helpers import build

from engine.core.analysis import analyze
from engine.core.codegen import BRANCH_EMITTERS, EMITTERS, LOOP_EMITTERS, export_python
from engine.runtime.compiler import compile_graph
from nodes import BLOCKS, REGISTRY, TensorType
from nodes.control import BRANCH_MODES, LOOP_MODES
from nodes.spec import EMIT_KINDS, BlockSpec, Float, Int, Port, ShapeParam


def test_every_control_mode_has_its_emitter():
    assert set(LOOP_EMITTERS) == set(LOOP_MODES)
    assert set(BRANCH_EMITTERS) == set(BRANCH_MODES)


def test_every_emission_kind_has_its_emitter():
    assert set(EMITTERS) == set(EMIT_KINDS)
    assert {spec.emit for spec in BLOCKS} <= set(EMIT_KINDS)


# Three blocks the generator has never heard of, one per emission kind.
NEW_BLOCKS = [
    BlockSpec(type="test_ramp", title="Ramp", category="Data", doc="0, step, 2 step, ...",
              params=(Int("n", 4, min=1, max=64), Float("step", 0.5, min=-10, max=10)),
              shape=lambda p, s: [TensorType((p["n"],))],
              emit="buffer", template="torch.arange({n}) * {step}",
              args=lambda p, s: dict(n=p["n"], step=p["step"])),
    BlockSpec(type="test_gain", title="Gain", category="Data", doc="A learnable scale.",
              params=(ShapeParam("shape", (4,)), Float("start", 2.0, min=-10, max=10)),
              shape=lambda p, s: [TensorType(tuple(p["shape"]))],
              count=lambda p, s: p["shape"][0],
              emit="parameter", template=lambda p, s: "torch.full({shape}, {start})",
              args=lambda p, s: dict(shape=tuple(p["shape"]), start=p["start"])),
    BlockSpec(type="test_softsign", title="Softsign", category="Math", doc="x / (1 + |x|)",
              inputs=(Port("x"),), shape=lambda p, s: [s[0]], template="{x} / (1 + {x}.abs())"),
]


@pytest.fixture
def new_blocks(monkeypatch):
    for spec in NEW_BLOCKS:
        monkeypatch.setitem(REGISTRY, spec.type, spec)


def test_a_new_block_of_each_emission_kind_needs_only_its_spec(new_blocks):
    graph = build([("x", "input", {"shape": [4]}), ("s", "test_softsign"),
                   ("r", "test_ramp", {"step": 0.25}), ("g", "test_gain", {"start": 3.0}),
                   ("sum", "add"), ("prod", "mul"), ("out", "output")],
                  ["x -> s", "s -> sum.a", "r -> sum.b", "sum -> prod.a", "g -> prod.b",
                   "prod -> out"])
    analysis = analyze(graph)
    assert analysis.ok, analysis.diagnostics
    source = export_python(graph, analysis)
    assert "self.register_buffer('r', torch.arange(4) * 0.25, persistent=False)" in source
    assert "self.g = nn.Parameter(torch.full((4,), 3.0))" in source
    assert "s = x / (1 + x.abs())" in source
    model = compile_graph(graph, analysis)
    assert [name for name, _ in model.named_parameters()] == ["g"]
    assert list(model.state_dict()) == ["g"]   # the buffer is rebuilt, never saved
    x = torch.randn(3, 4)
    expected = (x / (1 + x.abs()) + torch.arange(4) * 0.25) * 3.0
    assert torch.equal(model(x), expected)
