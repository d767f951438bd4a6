"""A block is its spec: adding one touches one file.

Blocks written here, in the test, and put in the registry for its duration, validate,
compile, export and train (gradient flow included) with no other file knowing their types:
a dead-unit activation, a submodule whose weights a step may skip, an id-consuming lookup
bounded by a param and a loss whose class ids are bounded by an inferred dim. And a scan of
`engine/` and `app/` proves no code there compares block types, beyond a short list of
names that are something else too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from helpers import REPO, build, import_file

import engine
from engine.core.analysis import analyze
from engine.core.config import TrainingConfig
from engine.core.events import Finished, GradFlowSnapshot
from engine.runtime.compiler import example_inputs
from engine.runtime.trainer import Trainer, _may_skip_weights
from nodes import BLOCKS, REGISTRY
from nodes.library import X, need_rank, same
from nodes.spec import BlockSpec, IdInput, Int, Port
from nodes.types import BATCH, ShapeError, TensorType

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RELU6 = BlockSpec(
    type="test_relu6", title="ReLU6", category="Activations", doc="min(max(x, 0), 6).",
    inputs=X, function="torch.nn.functional.relu6", shape=same, dead_units=("y",))
AFFINE = BlockSpec(
    type="test_affine", title="Affine", category="Layers", doc="A Linear of a given width.",
    inputs=X, params=(Int("width", 8, "output features", min=1, max=64),),
    module="torch.nn.Linear",
    init=lambda p, s: dict(in_features=s[0].shape[-1], out_features=p["width"]),
    shape=lambda p, s: [s[0].with_shape((*s[0].shape[:-1], p["width"]))],
    count=lambda p, s: (s[0].shape[-1] + 1) * p["width"],
    skips_weights=lambda p: p["width"] > 32)   # a made-up rule, to see the trainer ask it


def bag_rule(p, s):
    need_rank(s[0], [2], "token ids (B, T)")
    return [TensorType((BATCH, p["dim"]))]


BAG = BlockSpec(
    type="test_bag", title="EmbeddingBag", category="Layers", doc="Mean of the ids' vectors.",
    inputs=X, input_dtypes={"x": ("long",)}, module="torch.nn.EmbeddingBag",
    params=(Int("vocab", 3, "ids run 0..vocab-1", min=1, max=1000), Int("dim", 4, min=1, max=64)),
    init=lambda p, s: dict(num_embeddings=p["vocab"], embedding_dim=p["dim"]), shape=bag_rule,
    id_inputs=(IdInput("x", count_param="vocab"),))


def nll_rule(p, s):
    need_rank(s[0], [2], "log-probabilities (B, classes)", "input")
    if s[1].shape != s[0].shape[:1]:
        raise ShapeError("one class id per sample", port="target")
    return [TensorType(())]


NLL = BlockSpec(
    type="test_nll", title="NLL", category="Losses", doc="Negative log-likelihood.", loss=True,
    inputs=(Port("input"), Port("target")), input_dtypes={"input": ("float",), "target": ("long",)},
    template="torch.nn.functional.nll_loss({input}, {target})", shape=nll_rule,
    id_inputs=(IdInput("target", count_dim=("input", 1)),))

NEW = (RELU6, AFFINE, BAG, NLL)


@pytest.fixture
def new_blocks(monkeypatch):
    for spec in NEW:
        assert spec.type not in REGISTRY
        monkeypatch.setitem(REGISTRY, spec.type, spec)


def lookup_graph():
    return build([("ids", "input", {"shape": [5], "dtype": "long"}), ("bag", "test_bag"),
                  ("aff", "test_affine", {"width": 6}), ("act", "test_relu6"), ("out", "output")],
                 ["ids -> bag", "bag -> aff", "aff -> act", "act -> out"], name="bag")


def loss_graph(width: int = 16):
    """Moons, with the graph computing its own loss through the new blocks."""
    return build([("x", "input", {"shape": [2]}), ("target", "input", {"shape": [], "dtype": "long"}),
                  ("aff", "test_affine", {"width": width}), ("act", "test_relu6"),
                  ("fc", "linear", {"out_features": 2}), ("lsm", "log_softmax"),
                  ("nll", "test_nll"), ("loss", "output"), ("pred", "output")],
                 ["x -> aff", "aff -> act", "act -> fc", "fc -> lsm", "lsm -> nll.input",
                  "target -> nll.target", "nll -> loss", "lsm -> pred"], name="nll",
                 training={"dataset": {"name": "moons", "n_samples": 120}, "epochs": 1,
                           "batch_size": 32, "loss": "graph", "gradflow_every": 1})


def test_new_blocks_validate_compile_and_export(new_blocks, tmp_path):
    for graph in (lookup_graph(), loss_graph()):
        assert engine.validate(graph) == [], graph.name
        torch.manual_seed(0)
        compiled = engine.compile_graph(graph)
        path = tmp_path / f"{graph.name}.py"
        path.write_text(engine.export_python(graph), encoding="utf-8")
        module = import_file(path, f"dprog_test_new_block_{graph.name}")
        exported = getattr(module, module.__all__[0])()
        exported.load_state_dict(compiled.state_dict())
        inputs = example_inputs(graph, 8, generator=torch.Generator().manual_seed(1))
        want, got = compiled(*inputs), exported(*inputs)
        for a, b in zip(want if isinstance(want, tuple) else (want,),
                        got if isinstance(got, tuple) else (got,), strict=True):
            assert torch.equal(a, b)


def test_id_inputs_bound_the_example_ids(new_blocks):
    (ids,) = example_inputs(lookup_graph(), 256, generator=torch.Generator().manual_seed(0))
    assert ids.dtype == torch.int64 and int(ids.max()) == 2          # vocab 3, from the param
    _, target = example_inputs(loss_graph(), 256, generator=torch.Generator().manual_seed(0))
    assert int(target.max()) == 1                                      # 2 classes, from (B, 2)


def test_new_blocks_train_with_gradient_flow(new_blocks):
    graph = loss_graph()
    events = []
    trainer = Trainer(graph, TrainingConfig.from_mapping(graph.training), events=type(
        "Sink", (), {"put": staticmethod(events.append)})())
    end = trainer.run()
    assert isinstance(end, Finished), end
    snapshots = [e for e in events if isinstance(e, GradFlowSnapshot)]
    assert snapshots and all(set(s.dead_units) == {"act"} for s in snapshots)
    dead, units = snapshots[-1].dead_units["act"]
    assert units == 16 and 0 <= dead <= units
    assert snapshots[-1].nodes["aff"].grad_rms > 0


def test_a_spec_says_whether_a_step_may_skip_its_weights(new_blocks):
    for width, skips in ((16, False), (48, True)):
        graph = loss_graph(width)
        assert _may_skip_weights(graph, analyze(graph)) is skips


# --- no code outside nodes/ knows a block by its type ---------------------------------------------

OP_TYPES = {t for spec in BLOCKS if spec.kind == "op" for t in (spec.type, *spec.legacy_types)}
# (file, name) → why comparing that name there is not block knowledge
ALLOWED = {
    **{(path, name): "the training config's built-in losses (engine.core.config.LOSSES), "
       "applied to the model's output (the trainer) or checked against the data before a "
       "run (the dataset-fit check, the same rules); not blocks"
       for path in ("engine/runtime/trainer.py", "engine/data/fit.py")
       for name in ("cross_entropy", "mse", "l1", "bce_with_logits")},
    ("engine/core/codegen.py", "parameter"): "the emission kind 'parameter' "
    "(nodes.spec.EMIT_KINDS) that the Parameter block and any other may declare; not a block",
    ("engine/runtime/trainer.py", "parameter"): "the emission kind 'parameter': a program "
    "reports the values of the tensors its blocks emit as learnable; not a block",
}


def _strings(node: ast.AST):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for item in node.elts:
            yield from _strings(item)


def _name(node: ast.AST) -> str | None:
    return getattr(node, "id", getattr(node, "attr", None))


def compared_names(tree: ast.AST):
    """Every string compared (==, in, ...), matched (`case`), used as a dict key, looked up
    (`lookup("...")`) or indexed (`REGISTRY["..."]`) in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                yield from _strings(side)
        elif isinstance(node, ast.MatchValue):
            yield from _strings(node.value)
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                if key is not None:
                    yield from _strings(key)
        elif isinstance(node, ast.Call) and _name(node.func) == "lookup":
            for arg in node.args:
                yield from _strings(arg)
        elif isinstance(node, ast.Subscript) and _name(node.value) == "REGISTRY":
            yield from _strings(node.slice)


def test_engine_and_app_compare_no_block_types():
    found = set()
    for package in ("engine", "app"):
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            rel = path.relative_to(REPO).as_posix()
            found |= {(rel, name) for name in compared_names(tree) if name in OP_TYPES}
    assert sorted(found - set(ALLOWED)) == [], "block knowledge belongs in the block's spec"
    assert sorted(set(ALLOWED) - found) == [], "allowed but no longer there: drop it from ALLOWED"


def test_the_scan_sees_type_comparisons():
    tree = ast.parse('if node.type == "relu" or t in ("conv2d", "x"):\n'
                     '    spec = lookup("embedding")\n'
                     'match kind:\n    case "dropout": pass\n'
                     'RULES = {"linear": 1}\n')
    assert set(compared_names(tree)) & OP_TYPES == {"relu", "conv2d", "embedding", "dropout",
                                                    "linear"}


def test_specs_name_real_ports_and_params():
    for spec in (*BLOCKS, *NEW):
        inputs = {p.name for p in spec.inputs}
        outputs = {p.name for p in spec.outputs}
        assert set(spec.dead_units) <= outputs, spec.type
        for ids in spec.id_inputs:
            assert ids.port in inputs, spec.type
            assert ids.count_param is None or spec.param(ids.count_param) is not None, spec.type
            assert ids.count_dim is None or ids.count_dim[0] in inputs, spec.type
    with pytest.raises(ValueError):
        IdInput("x")


def test_this_file_is_where_the_new_blocks_live():
    """The new types appear in no other file of the repo."""
    names = [spec.type for spec in NEW]
    here = Path(__file__).resolve()
    for path in REPO.rglob("*.py"):
        if ".venv" in path.parts or path.resolve() == here:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not any(name in text for name in names), path
