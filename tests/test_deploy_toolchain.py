"""The exported model.py passes the PyTorch toolchain: for every sample and control-flow
graph, the file imported as a user would import it works under torch.export (dynamic batch),
torch.compile(fullgraph=True) forward and backward, torch.func.functional_call and vmap,
deepcopy and pickling, float64 and torch.jit.trace, and is clean under ruff and mypy --strict.

Each check compares with the eager module on a batch whose control flow varies (loops halt
after different numbers of steps; vmap's per-sample calls against batch-of-one calls).
"""

from __future__ import annotations

import copy
import importlib.util
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from torch.func import functional_call, vmap

import engine
from engine.runtime.compiler import example_inputs, vary
from nodes import lookup
from tests.helpers import SAMPLE_NAMES, SAMPLES_DIR, control_flow_graphs
from tests.test_engine_export import ruff_command

NAMES = [*SAMPLE_NAMES, *control_flow_graphs()]

# torch's own warnings, not about the code: its tracing of torch.cond reads .grad of a
# non-leaf tensor; vmap has no fast batching rule for multi-head attention.
pytestmark = [pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf"),
              pytest.mark.filterwarnings("ignore:There is a performance drop")]


def _graph(name: str):
    graphs = control_flow_graphs()
    return graphs[name] if name in graphs else engine.load_graph(SAMPLES_DIR / f"{name}.json")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("toolchain")
    for name in NAMES:
        (folder / f"{name}.py").write_text(engine.export_python(_graph(name)), encoding="utf-8")
    return folder


class User:
    """model.py imported as a module of its own (registered, so pickle finds its classes)."""

    def __init__(self, folder: Path, name: str):
        self.graph = _graph(name)
        module_name = f"dprog_toolchain_{name}"
        spec = importlib.util.spec_from_file_location(module_name, folder / f"{name}.py")
        self.file = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = self.file
        spec.loader.exec_module(self.file)
        torch.manual_seed(0)
        self.model = getattr(self.file, self.file.__all__[0])().eval()
        self.args = _varied_inputs(self.graph, 24)

    def eager(self, model: torch.nn.Module | None = None, args=None) -> list[torch.Tensor]:
        with torch.no_grad():
            out = (model or self.model)(*(args if args is not None else self.args))
        return [t.detach() for t in (out if isinstance(out, tuple) else (out,))]


def _varied_inputs(graph, size: int) -> tuple[torch.Tensor, ...]:
    """Inputs whose samples differ in scale, so loops halt at different steps."""
    generator = torch.Generator().manual_seed(4)
    return vary(graph, example_inputs(graph, size, generator=generator),
                torch.logspace(-1.3, 0.7, size))


def _close(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 1e-5) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        x, y = x.detach().double(), y.detach().double()
        assert torch.allclose(x, y, rtol=tol, atol=tol, equal_nan=True), (x - y).abs().max()


@pytest.fixture(scope="module")
def users(exports: Path):
    made = {name: User(exports, name) for name in NAMES}
    yield made
    for name in NAMES:
        sys.modules.pop(f"dprog_toolchain_{name}", None)


@pytest.mark.parametrize("name", NAMES)
def test_torch_export_with_a_dynamic_batch(name, users):
    u = users[name]
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(u.model, example_inputs(u.graph, 3),
                                  dynamic_shapes=tuple({0: batch} for _ in u.args))
    for args in (u.args, tuple(t[:1] for t in u.args)):
        out = program.module()(*args)
        _close(u.eager(args=args), list(out) if isinstance(out, tuple) else [out])


@pytest.mark.parametrize("name", NAMES)
def test_torch_compile_fullgraph_forward_and_backward(name, users):
    """aot_eager captures the whole graph, forward and backward, without inductor's C++
    build (which would take minutes per sample on this CPU and adds nothing to the capture)."""
    u = users[name]
    torch._dynamo.reset()
    compiled = torch.compile(u.model, fullgraph=True, backend="aot_eager", dynamic=True)
    with torch.no_grad():
        out = compiled(*u.args)
    _close(u.eager(), list(out) if isinstance(out, tuple) else [out])
    train = copy.deepcopy(u.model).train()
    loss = sum(t.float().sum() for t in _as_list(torch.compile(
        train, fullgraph=True, backend="aot_eager", dynamic=True)(*u.args)))
    if loss.requires_grad:
        loss.backward()
        assert any(p.grad is not None for p in train.parameters())


def _as_list(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("name", NAMES)
def test_functional_call_and_vmap(name, users):
    """functional_call gives the module's own outputs. vmap of one sample at a time equals the
    module called on each sample alone, for models whose outputs are all per sample; a model
    that returns a loss over the batch, or takes no inputs (a program), has nothing to map
    over, and the test says which it is."""
    u = users[name]
    params = {**dict(u.model.named_parameters()), **dict(u.model.named_buffers())}
    with torch.no_grad():
        _close(u.eager(), _as_list(functional_call(u.model, params, u.args)))
    outputs = u.eager()
    if not u.args or any(t.dim() == 0 for t in outputs):
        losses = [n.id for n in u.graph.nodes if lookup(n.type).kind == "output"]
        assert not u.args or u.graph.training.get("loss") == "graph", (name, losses)
        return
    with torch.no_grad():
        args = tuple(t[:6] for t in u.args)

        def one(*sample: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = functional_call(u.model, params, tuple(t.unsqueeze(0) for t in sample))
            return tuple(t.squeeze(0) for t in _as_list(out))

        mapped = vmap(one)(*args)
        alone = [u.eager(args=tuple(t[i:i + 1] for t in args)) for i in range(6)]
    _close(list(mapped), [torch.cat([a[k] for a in alone]) for k in range(len(alone[0]))])


@pytest.mark.parametrize("name", NAMES)
def test_deepcopy_pickle_and_float64(name, users):
    u = users[name]
    _close(u.eager(), u.eager(copy.deepcopy(u.model)))
    _close(u.eager(), u.eager(pickle.loads(pickle.dumps(u.model))))
    double = copy.deepcopy(u.model).double()
    args64 = tuple(t.double() if t.is_floating_point() else t for t in u.args)
    out = u.eager(double, args64)
    assert all(t.dtype == torch.float64 for t in out if t.is_floating_point())
    _close(u.eager(), out, tol=1e-4)


@pytest.mark.filterwarnings("ignore")   # jit.trace's TracerWarnings about Python values
def test_jit_trace_keeps_the_loop_faithful(users):
    """Traced, the while loop runs all its steps masked instead of baking in the number of
    steps the tracing batch took: the trace agrees on a batch that halts differently."""
    u = users["adaptive_depth"]
    traced = torch.jit.trace(u.model, tuple(t[:2] for t in u.args), check_trace=False)
    _close(u.eager(), [traced(*u.args)])


def test_ruff_and_mypy_strict(exports: Path):
    for config in (["--config", str(Path(__file__).parents[1] / "pyproject.toml")], ["--isolated"]):
        done = subprocess.run([*ruff_command(), "check", "--no-cache", *config, str(exports)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (the dev extra has it)")
    # A cache outside the test's folder: a cold one reads torch's stubs for ~20 s.
    cache = Path(tempfile.gettempdir()) / "dprog-mypy-cache"
    done = subprocess.run([mypy, "--strict", "--cache-dir", str(cache), *map(str, sorted(
        exports.glob("*.py")))], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
