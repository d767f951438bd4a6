"""The exported model.py against the compiled module, for every sample graph.

The studio runs the exec of exactly the text `export_python` writes; these tests hold the
written file, imported as an ordinary module in a fresh namespace, to the same numbers
(outputs and gradients, bit for bit), the same state_dict, and the house lint rules.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, SAMPLE_NAMES, import_file, kitchen_sink

import engine


def exported_module(graph, tmp_path: Path, stem: str):
    """Write export_python(graph) to tmp_path/<stem>.py and import it; return (module, class)."""
    path = tmp_path / f"{stem}.py"
    path.write_text(engine.export_python(graph), encoding="utf-8")
    module = import_file(path, f"dprog_test_export_{stem}")
    return module, getattr(module, module.__all__[0])


def run_and_grad(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]):
    """Outputs (as a tuple) and the gradient of a fixed weighted sum of them w.r.t. every param."""
    module.zero_grad(set_to_none=True)
    out = module(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    weights = torch.Generator().manual_seed(123)
    loss = sum((o.float() * torch.randn(o.shape, generator=weights)).sum()
               for o in outs if o.is_floating_point())
    loss.backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    return tuple(o.detach() for o in outs), grads


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_exported_file_matches_compiled_module(name, samples, tmp_path):
    graph = samples[name]
    torch.manual_seed(0)
    compiled = engine.compile_graph(graph)
    _, cls = exported_module(graph, tmp_path, name)
    torch.manual_seed(1)   # different initial weights, so loading really has to happen
    exported = cls()

    assert list(exported.state_dict()) == list(compiled.state_dict())
    exported.load_state_dict(compiled.state_dict(), strict=True)
    compiled.load_state_dict(exported.state_dict(), strict=True)
    for key, value in compiled.state_dict().items():
        assert torch.equal(value, exported.state_dict()[key]), key

    analysis = engine.analyze(graph)
    batched = [analysis.inputs[n.id]["x"].batched for n in graph.nodes if n.type == "output"]
    for train in (False, True):
        compiled.train(train)
        exported.train(train)
        for batch in (1, 7):
            inputs = engine.example_inputs(graph, batch, generator=torch.Generator().manual_seed(batch))
            # Random blocks (the VAE's sample) draw from torch's global generator: the same
            # seed before the call gives the same numbers in both.
            torch.manual_seed(batch)
            out_a, grads_a = run_and_grad(compiled, inputs)
            torch.manual_seed(batch)
            out_b, grads_b = run_and_grad(exported, inputs)
            assert len(out_a) == len(out_b) == len(batched)
            for a, b, has_batch in zip(out_a, out_b, batched, strict=True):
                assert not has_batch or a.shape[0] == batch
                assert torch.equal(a, b)
            assert grads_a.keys() == grads_b.keys()
            for key in grads_a:
                assert grads_a[key] is not None, f"{key} gets no gradient"
                assert torch.equal(grads_a[key], grads_b[key]), key


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_exported_file_imports_only_torch_and_names_its_class(name, samples):
    source = engine.export_python(samples[name])
    tree = ast.parse(source)
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in an export"
            roots.add(node.module.split(".")[0])
    assert "torch" in roots
    assert roots <= {"torch"} | set(sys.stdlib_module_names), roots
    assert not any(isinstance(n, ast.Call) and getattr(n.func, "id", "") in ("exec", "eval",
                                                                            "__import__")
                   for n in ast.walk(tree))

    assigned = [n for n in tree.body if isinstance(n, ast.Assign)
                and any(getattr(t, "id", None) == "__all__" for t in n.targets)]
    assert len(assigned) == 1
    names = ast.literal_eval(assigned[0].value)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert len(names) == 1 and names[0] == classes[-1], (names, classes)


def ruff_command() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return [str(beside)]
    if shutil.which("ruff") is None:
        pytest.importorskip("ruff")
    return [sys.executable, "-m", "ruff"]


def test_exported_files_pass_ruff(samples, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    # the samples, and a graph that uses every construct the generator has
    for name, graph in {**samples, "kitchen_sink": kitchen_sink()}.items():
        (out / f"{name}.py").write_text(engine.export_python(graph), encoding="utf-8")
    for config in (["--config", str(REPO / "pyproject.toml")], ["--isolated"]):
        result = subprocess.run([*ruff_command(), "check", "--no-cache", *config, str(out)],
                                capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert result.returncode == 0, f"ruff {config}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_tapped_forward_computes_the_same_and_taps_every_edge(name, samples):
    """The gradient-flow probe's `<Class>_forward(self, tap, ...)` is the forward with each
    edge read wrapped in tap(k, value); with an identity tap it must change nothing."""
    from engine.runtime.compiler import compile_class, tapped_forward

    graph = samples[name]
    compiled = compile_class(graph, tap=True)
    torch.manual_seed(0)
    model = compiled.cls()
    inputs = engine.example_inputs(graph, 4, generator=torch.Generator().manual_seed(0))
    seen = []

    def tap(k, value):
        seen.append(k)
        return value

    with torch.no_grad():
        torch.manual_seed(0)
        plain = model(*inputs)
        torch.manual_seed(0)
        tapped = tapped_forward(compiled)(model, tap, *inputs)
    plain, tapped = (v if isinstance(v, tuple) else (v,) for v in (plain, tapped))
    assert len(plain) == len(tapped)
    assert all(torch.equal(a, b) for a, b in zip(plain, tapped, strict=True))
    keys = compiled.generated.edge_keys
    assert set(seen) == set(range(len(keys)))
    edges = {e.key for e in graph.edges}
    edges |= {f"{path}/{region}/{e.key}" for path, node in graph.walk()
              for region, body in node.regions.items() for e in body.edges}
    edges |= {f"{path}/{node.params['function']}/{e.key}" for path, node in graph.walk()   # calls
              if node.type == "call" for e in graph.functions[node.params["function"]].body.edges}
    assert set(keys) == edges
    # the exported text is the same generator's output without the tapped functions
    assert compiled.generated.source.startswith(engine.export_python(graph))
