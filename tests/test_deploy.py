"""Deployment: every graph of the test collections (the samples, the control-flow graphs and
the kitchen sink, small versions of the benchmark graphs, grown fuzz graphs) is exported as
ONNX and as a torch.export program, run in onnxruntime / as the reloaded ExportedProgram, and
compared with the compiled module here, independently of the check `deploy` runs itself.

The control flow is proven on inputs chosen to exercise it: a while Loop batch in which the
samples halt after different numbers of steps, both sides of a hard Branch, a repeat Loop
counting from the data to different counts. Then the refusals: missing packages, programs
too large to unroll, an artifact that differs, unreadable weights; and `dprog export`.

Exports are made once per session (`exported`), so each graph costs one export per format.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import engine
from bench import graphs as bench_graphs
from engine.core.graph import Graph, set_param
from engine.runtime import deploy as deploy_module
from engine.runtime.compiler import compile_graph, example_inputs
from engine.runtime.deploy import TOLERANCE, DeployError, MissingDependency, deploy
from tests.helpers import SAMPLE_NAMES, control_flow_graphs, kitchen_sink

# ONNX needs the deploy extra (`./run test` installs it); pt2 needs only torch.
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
NEEDS_ONNX = pytest.mark.skipif(not HAS_ONNX, reason="pip install 'dprog[deploy]'")
FORMATS = (pytest.param("onnx", marks=NEEDS_ONNX), "pt2")
FUZZ_SEEDS = (2, 3, 12, 13, 17)   # grown graphs with loops, branches, losses and reshapes


def _fuzz_graph(seed: int) -> Graph:
    sys.path.insert(0, str(Path(__file__).parent))
    from fuzzing.generate import grow

    from engine.core.fileformat import graph_from_document

    return graph_from_document(grow(random.Random(seed)))


def _collections() -> dict[str, Callable[[], Graph]]:
    out: dict[str, Callable[[], Graph]] = {
        f"sample:{name}": (lambda n=name: engine.load_graph(
            Path(__file__).parents[1] / "sample_graphs" / f"{n}.json")) for name in SAMPLE_NAMES}
    out.update({f"control:{name}": (lambda n=name: control_flow_graphs()[n])
                for name in control_flow_graphs()})
    out["kitchen_sink"] = kitchen_sink
    out.update({"bench:chain": lambda: bench_graphs.chain(12), "bench:dag": lambda: bench_graphs.dag(16),
                "bench:nested_loops": lambda: bench_graphs.nested_loops(24, depth=2),
                "bench:mlp": lambda: bench_graphs.mlp(3)})
    out.update({f"fuzz:{seed}": (lambda s=seed: _fuzz_graph(s)) for seed in FUZZ_SEEDS})
    return out


GRAPHS = _collections()


def _halt_on_first_feature(module: torch.nn.Module) -> None:
    """The while loop `think` halts once tanh(h + x)[0] > 0.3, with h starting at x: an
    input whose first feature is 1 halts after one step, 0.1 after three, 0.05 after six
    (the most), and a negative one never."""
    with torch.no_grad():
        module.think.score.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        module.think.score.bias.zero_()


SETUP = {"control:while_per_sample": _halt_on_first_feature,
         "control:while_batch": _halt_on_first_feature}


class Exported:
    """One graph exported in one format: the graph, the module with the weights written, the
    artifact and a way to run it."""

    def __init__(self, graph: Graph, fmt: str, folder: Path,
                 setup: Callable[[torch.nn.Module], None] | None = None):
        self.graph = graph
        torch.manual_seed(1)
        self.module = compile_graph(graph).eval()
        if setup is not None:
            setup(self.module)
        self.path = folder / f"model.{fmt}"
        self.check = deploy(graph, self.path, fmt, self.module.state_dict())
        self.run = deploy_module.FORMATS[fmt].load(self.path, deploy_module._names(graph,
                                                                                  self.module)[0])

    def compare(self, *args: torch.Tensor) -> float:
        """The largest difference between the artifact and the module on these inputs."""
        with torch.no_grad():
            want = self.module(*args)
        want = list(want) if isinstance(want, tuple) else [want]
        got = self.run(*args)
        assert len(got) == len(want)
        worst = 0.0
        for a, b in zip(want, got, strict=True):
            a, b = a.detach(), b.detach()   # a Parameter wired straight to an output
            assert a.shape == b.shape and a.dtype == b.dtype
            if a.is_floating_point():
                assert torch.equal(a.isnan(), b.isnan())
                worst = max(worst, float(((a - b).abs() / a.abs().clamp(min=1)).nan_to_num().max()))
            else:
                assert torch.equal(a, b)
        return worst


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Exported]:
    cache: dict[tuple[str, str], Exported] = {}
    root = tmp_path_factory.mktemp("deploy")

    def get(name: str, fmt: str) -> Exported:
        if (name, fmt) not in cache:
            folder = root / f"{name.replace(':', '_')}_{fmt}"
            folder.mkdir()
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                cache[name, fmt] = Exported(GRAPHS[name](), fmt, folder, SETUP.get(name))
            finally:
                torch.set_num_threads(before)
        return cache[name, fmt]
    return get


# --- every graph, both formats ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(GRAPHS))
def test_every_graph_exports_and_runs_like_the_compiled_module(name, fmt, exported):
    """The artifact has a dynamic batch and agrees with the module at batch sizes it was
    neither traced nor checked at."""
    e = exported(name, fmt)
    assert e.path.exists() and e.check.max_difference <= TOLERANCE
    for size, seed in ((1, 11), (2, 12), (7, 13), (33, 14)):
        args = example_inputs(e.graph, size, generator=torch.Generator().manual_seed(seed))
        assert e.compare(*args) <= TOLERANCE, (name, fmt, size)


# --- the control flow, on inputs that exercise it ---------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_while_loop_batch_with_mixed_halting(fmt, exported):
    """Samples of one batch halt after 1 to 6 steps; the artifact runs all six, masked, and
    gives each sample's own states and step count."""
    e = exported("control:while_per_sample", fmt)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(2)) * 0.1
    x[:, 0] = torch.tensor([1.0, 0.1, 0.05, -1.0, 0.2, 0.08, 2.0, 0.12])
    with torch.no_grad():
        _, steps = e.module(x)
    assert steps.min() == 1 and steps.max() == 6 and len(steps.unique()) >= 4, steps
    assert e.compare(x) <= TOLERANCE
    _, got_steps = e.run(x)
    assert torch.equal(got_steps, steps)


@pytest.mark.parametrize("fmt", FORMATS)
def test_adaptive_depth_with_mixed_halting(fmt, exported):
    """The sample's own while loop: deploy's check found a batch whose samples took different
    numbers of steps, and the artifact matches the module on it and on a fresh one."""
    e = exported("sample:adaptive_depth", fmt)
    low, high = e.check.steps["refine"]
    assert low < high, e.check.steps
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(3)) * 3
    assert e.compare(x) <= TOLERANCE


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_while_loop_halting_for_the_whole_batch(fmt, exported):
    """Batches that halt after different numbers of steps, the last result kept once halted."""
    e = exported("control:while_batch", fmt)
    counts = set()
    for first in (0.05, 0.1, 1.0, -1.0):
        x = torch.ones(5, 3) * 0.01
        x[:, 0] = first
        with torch.no_grad():
            counts.add(int(e.module(x)[2][0]))
        assert e.compare(x) <= TOLERANCE
    assert counts == {6, 3, 1}, counts


@pytest.mark.parametrize("fmt", FORMATS)
def test_both_sides_of_a_hard_branch(fmt, exported):
    """The artifact holds both bodies (torch.cond / ONNX If) and takes the side the data
    picks: `then` for a batch whose condition's mean is above 0, `else` (its input passed
    straight through) below."""
    e = exported("control:hard_branch", fmt)
    assert e.check.sides["route"] == ("else", "then")
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(5))
    up, down = x.clone(), x.clone()
    up[:, 0], down[:, 0] = 2.0, -2.0
    (got_down,) = e.run(down)
    assert torch.equal(got_down, down)                      # else: the input itself
    assert not torch.allclose(e.run(up)[0], up)             # then: Linear → Tanh
    assert e.compare(up) <= TOLERANCE and e.compare(down) <= TOLERANCE
    if fmt == "onnx":
        import onnx

        ops = {n.op_type for n in onnx.load(str(e.path)).graph.node}
        assert "If" in ops, ops


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_repeat_loop_counting_from_the_data(fmt, exported):
    """The count is the batch's max, clamped to 1..4: traced, all four steps run and the
    steps past the count keep what they had."""
    e = exported("control:repeat_count", fmt)
    for first in (-3.0, -0.4, 0.2, 0.6, 5.0):   # counts 1, 1, 2, 3, 4
        x = torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
        x[0, 0] = first
        assert e.compare(x) <= TOLERANCE


@pytest.mark.parametrize("fmt", FORMATS)
def test_control_flow_nested_in_a_body(fmt, exported):
    """A hard branch inside a repeat loop's body: each step decides on its own."""
    e = exported("control:nested", fmt)
    for seed in range(4):
        x = torch.randn(5, 4, generator=torch.Generator().manual_seed(seed))
        assert e.compare(x) <= TOLERANCE


# --- refusals -----------------------------------------------------------------------------------


def test_missing_onnx_packages_name_the_pip_command(monkeypatch, tmp_path, samples):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependency, match="pip install"):
        deploy(samples["moons_mlp"], tmp_path / "m.onnx", "onnx")
    assert not list(tmp_path.iterdir())


def test_a_program_too_large_to_unroll_is_refused_before_tracing(tmp_path, samples):
    graph = set_param(samples["adaptive_depth"], "refine", "max_iters", 10_000)
    with pytest.raises(DeployError, match="loop refine"):
        deploy(graph, tmp_path / "m.pt2", "pt2")
    assert not list(tmp_path.iterdir())


def test_an_artifact_that_differs_is_not_written(monkeypatch, tmp_path, samples):
    """Whatever goes wrong between the module and the file, the check catches it: here the
    reloaded program is made to be off by 1e-4, and the file never appears."""
    real = deploy_module.FORMATS["pt2"]

    def load_off(path, inputs):
        run = real.load(path, inputs)
        return lambda *args: [t + 1e-4 for t in run(*args)]

    monkeypatch.setitem(deploy_module.FORMATS, "pt2",
                        deploy_module.Format(**{**real.__dict__, "load": load_off}))
    with pytest.raises(DeployError, match=r"differs from the graph by 0\.0001"):
        deploy(samples["moons_mlp"], tmp_path / "m.pt2", "pt2")
    assert not list(tmp_path.iterdir())


def test_a_block_sampling_in_eval_mode_deploys_to_pt2_and_is_refused_for_onnx(tmp_path, samples):
    """A VAE that keeps sampling at inference: the pt2 program draws from torch's generator, so
    the check seeds both sides alike and they agree exactly. ONNX Runtime has its own
    generator, so the check could not hold: refused, naming the block and the two ways out."""
    graph = set_param(samples["vae"], "z", "eval", "sample")
    check = deploy(graph, tmp_path / "vae.pt2", "pt2")
    assert check.max_difference == 0.0
    if HAS_ONNX:
        with pytest.raises(DeployError, match=r"z keeps drawing .* eval to 'mean', or export pt2"):
            deploy(graph, tmp_path / "vae.onnx", "onnx")
        assert not (tmp_path / "vae.onnx").exists()


def test_weights_that_do_not_fit_are_refused(tmp_path, samples):
    with pytest.raises(DeployError, match="do not fit"):
        deploy(samples["moons_mlp"], tmp_path / "m.pt2", "pt2", {"fc1.weight": torch.zeros(1)})
    with pytest.raises(DeployError, match="no such file"):
        deploy_module.load_weights(tmp_path / "nowhere.pt")


# --- the command line --------------------------------------------------------------------------


@NEEDS_ONNX
def test_dprog_export_onnx_writes_checks_and_reports(tmp_path, capsys):
    """With a run's weights: exit 0, the file, and the check's numbers on stderr."""
    from engine.cli.main import main

    graph = Path(__file__).parents[1] / "sample_graphs" / "gated_branch.json"
    torch.manual_seed(0)
    weights = tmp_path / "weights.pt"
    torch.save(compile_graph(engine.load_graph(graph)).state_dict(), weights)
    out = tmp_path / "gated.onnx"
    assert main(["export", str(graph), "-o", str(out), "--weights", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert out.exists() and "onnxruntime" in err and "largest difference" in err, err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_dprog_export_refusals(tmp_path, capsys, monkeypatch):
    from engine.cli.main import main

    sample = str(Path(__file__).parents[1] / "sample_graphs" / "moons_mlp.json")
    assert main(["export", sample, "--format", "pt2"]) == 2          # no file given
    assert "-o model.pt2" in capsys.readouterr().err
    assert main(["export", sample, "--weights", "w.pt"]) == 2          # python has no weights
    assert main(["export", sample, "-o", str(tmp_path / "m.pt2"), "--weights",
                 str(tmp_path / "none.pt")]) == 1
    assert "not exported" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", sample, "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install" in err, err
    assert not list(tmp_path.iterdir())
