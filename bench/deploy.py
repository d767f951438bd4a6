"""Row 9: what the traced path costs in eager code, and what deployed models cost to run.

The generated code switches between eager and traced control flow with `_traced()` (see any
exported model.py). Measured here, each as an interleaved ratio of medians:

- switch: adaptive_depth's training step (forward + backward + Adam, batch 64) with the
  generated code against the same code with the `_traced()` test taken out (the code before
  the switch existed: local annotations are never evaluated); beside it the same code
  against itself, the noise floor;
- masked ÷ early exit: that step with `_traced()` forced true, so the while loop runs all
  `max_iters` steps masked, against the early break: with random weights (samples halt after
  1 to 8 steps, so the batch runs all 8 either way) and with every sample halting at once;
- torch.cond ÷ if: a hard Branch's eager forward through `torch.cond` against the Python `if`
  (why eager code keeps the `if`);
- deployed ÷ eager: inference of the ONNX model in onnxruntime and of the reloaded
  torch.export program, against the eager module, at batch 1 and 64;
- export seconds per sample, both formats, check included.

    python -m bench.deploy [--quick]
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, interleave, median, ratio


def _compiled(source: str, name: str, folder: Path):
    """The class `name` of a variant of generated code, imported from a file like a user's
    model.py (no exec of our own)."""
    module_name = f"bench_deploy_{abs(hash(source))}"
    path = folder / f"{module_name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _step(model, inputs, target):
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(*inputs)
        out = out[0] if isinstance(out, tuple) else out
        F.mse_loss(out, target.expand_as(out)).backward()
        opt.step()
    return step


def _blocks(fns: dict, seconds: float) -> dict:
    """Each callable repeated so that a block takes about `seconds` (`_blocks.n` times)."""
    for fn in fns.values():
        fn()
    start = time.perf_counter()
    next(iter(fns.values()))()
    n = max(2, round(seconds / max(time.perf_counter() - start, 1e-6)))

    def block(fn):
        return lambda: [fn() for _ in range(n)]
    _blocks.n = n
    return {k: block(fn) for k, fn in fns.items()}


def _switch_cost(graph, rounds: int, seconds: float, halt_bias: float | None) -> dict:
    """adaptive_depth's training step: the generated code against the same code without the
    `_traced()` tests (and against itself, the noise floor), and with the masked path forced
    in eager against the early exit. `halt_bias` set: every sample halts after one step."""
    import torch

    from engine import example_inputs, export_python

    source = export_python(graph)
    variants = {"generated": source, "control": source,
                "plain": source.replace("not _traced() and ", ""),
                "masked": source.replace("return (torch.compiler.is_compiling()",
                                         "return True or (torch.compiler.is_compiling()")}
    cls = source.split('__all__ = ["')[1].split('"')[0]
    models = {}
    with tempfile.TemporaryDirectory(prefix="dprog-bench-") as folder:
        for key, text in variants.items():
            torch.manual_seed(0)
            models[key] = model = _compiled(text, cls, Path(folder))()
            if halt_bias is not None:
                with torch.no_grad():
                    model.refine.score.bias.fill_(halt_bias)
    inputs = example_inputs(graph, 64, generator=torch.Generator().manual_seed(1))
    steps = {k: _step(m, inputs, torch.zeros(())) for k, m in models.items()}
    times = interleave(_blocks(steps, seconds), rounds, clock=time.thread_time)
    return {"switch": ratio(times, "generated", "plain"),
            "noise": ratio(times, "control", "generated"),
            "masked_vs_early_exit": ratio(times, "masked", "generated"),
            "step_ms": 1000 * median(times["generated"]) / _blocks.n}


def _cond_cost(rounds: int, seconds: float) -> float:
    """torch.cond ÷ a Python if, eager forward of a hard Branch over two small bodies."""
    import torch
    from torch import nn

    then, other = nn.Linear(16, 16), nn.Linear(16, 16)
    x = torch.randn(64, 16)

    def with_if():
        with torch.no_grad():
            return then(x) if x.mean() > 0 else other(x)

    def with_cond():
        with torch.no_grad():
            return torch.cond(x.mean() > 0, lambda a: then(a).clone(), lambda a: other(a).clone(),
                              (x,))

    times = interleave(_blocks({"if": with_if, "cond": with_cond}, seconds), rounds,
                       clock=time.thread_time)
    return ratio(times, "cond", "if")


def _deployed(graph, folder: Path, rounds: int, seconds: float) -> dict:
    """Export seconds and inference time of both formats against eager, batch 1 and 64."""
    import torch

    from engine import compile_graph, example_inputs
    from engine.runtime import deploy

    torch.manual_seed(0)
    module = compile_graph(graph)
    module.eval()
    names = deploy._names(graph, module)[0]
    out: dict = {}
    for fmt in ("onnx", "pt2"):
        start = time.perf_counter()
        deploy.deploy(graph, folder / f"m.{fmt}", fmt, module.state_dict())
        out[f"export_s_{fmt}"] = time.perf_counter() - start
        run = deploy.FORMATS[fmt].load(folder / f"m.{fmt}", names)
        for size in (1, 64):
            inputs = example_inputs(graph, size, generator=torch.Generator().manual_seed(2))

            def eager(inputs=inputs):
                with torch.no_grad():
                    module(*inputs)

            times = interleave(_blocks({"eager": eager, fmt: lambda i=inputs, r=run: r(*i)},
                                       seconds), rounds)
            out[f"{fmt}_vs_eager_b{size}"] = ratio(times, fmt, "eager")
    return out


def run(quick: bool = False, smoke: bool = False) -> dict:
    from engine import load_graph

    rounds = 3 if smoke else 9 if quick else 25
    seconds = 0.005 if smoke else 0.03 if quick else 0.08
    samples = {name: load_graph(ROOT / "sample_graphs" / f"{name}.json")
               for name in ("adaptive_depth", "gated_branch", "rnn_scan", "moons_mlp")}
    result: dict = {"switch": {}, "deployed": {}}
    for case, bias in (("random weights", None), ("all halt at step 1", 5.0)):
        result["switch"][case] = _switch_cost(samples["adaptive_depth"], rounds, seconds, bias)
    result["cond_vs_if"] = _cond_cost(rounds, seconds)
    with tempfile.TemporaryDirectory() as folder:
        for name in ("adaptive_depth",) if smoke else samples:
            result["deployed"][name] = _deployed(samples[name], Path(folder), rounds, seconds)
    return result


def table(result: dict) -> list[str]:
    lines = [f"{'adaptive_depth':<20}{'switch':>8}{'noise':>8}{'masked÷exit':>13}{'step ms':>9}"]
    for name, r in result["switch"].items():
        lines.append(f"{name:<20}{r['switch']:>8.3f}{r['noise']:>8.3f}"
                     f"{r['masked_vs_early_exit']:>13.2f}{r['step_ms']:>9.3f}")
    lines.append(f"torch.cond ÷ if (eager hard branch forward): {result['cond_vs_if']:.1f}")
    lines.append(f"{'graph':<16}{'export s onnx/pt2':>19}{'onnx÷eager b1/b64':>20}"
                 f"{'pt2÷eager b1/b64':>19}")
    for name, r in result["deployed"].items():
        lines.append(f"{name:<16}{r['export_s_onnx']:>9.1f}/{r['export_s_pt2']:<9.1f}"
                     f"{r['onnx_vs_eager_b1']:>10.2f}/{r['onnx_vs_eager_b64']:<9.2f}"
                     f"{r['pt2_vs_eager_b1']:>9.2f}/{r['pt2_vs_eager_b64']:<9.2f}")
    return lines


if __name__ == "__main__":
    print("\n".join(table(run(quick="--quick" in sys.argv))))
