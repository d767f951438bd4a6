"""The CUDA paths, checked on a machine with a GPU: `python tools/gpu_check.py [OUT_DIR]`.

CI has no GPU, so this is run by hand when one is lent. For every sample graph it
1. moves the compiled module to the GPU and compares its forward pass with the CPU's;
2. trains it on the GPU for a few dozen steps with gradient flow sampled often, and on the
   CPU with the same seed, and reports both final losses;
and then drives `dprog train --device cuda` end to end (run folder, resume). It prints one
line per check and exits 1 if any failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine import compile_graph, example_inputs, load_graph  # noqa: E402
from engine.core.config import TrainingConfig  # noqa: E402
from engine.core.events import Failed, Finished, GradFlowSnapshot  # noqa: E402
from engine.runtime.trainer import train  # noqa: E402

failures: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


def forward_parity(name: str, graph) -> None:
    torch.manual_seed(0)
    module = compile_graph(graph)
    module.eval()
    inputs = example_inputs(graph, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cpu = module(*inputs)
        gpu = module.to("cuda")(*(t.to("cuda") for t in inputs))
    cpu = cpu if isinstance(cpu, tuple) else (cpu,)
    gpu = gpu if isinstance(gpu, tuple) else (gpu,)
    diff = max(float((a - b.cpu()).abs().max()) for a, b in zip(cpu, gpu, strict=True))
    check(f"{name} forward cpu vs cuda", diff < 1e-3, f"max |diff| {diff:.2e}")


def short_run(graph, device: str) -> tuple[object, int, float]:
    config = TrainingConfig.from_mapping(graph.training).with_overrides(
        steps=60, device=device, gradflow_every=10, eval_every=30)
    started = time.perf_counter()
    _, events = train(graph, config)
    flows = sum(isinstance(e, GradFlowSnapshot) for e in events)
    return events[-1], flows, time.perf_counter() - started


def training(name: str, graph) -> None:
    end_gpu, flows, seconds = short_run(graph, "cuda")
    if isinstance(end_gpu, Failed):
        check(f"{name} train on cuda", False, f"{end_gpu.kind}: {end_gpu.message}")
        return
    end_cpu, _, cpu_seconds = short_run(graph, "cpu")
    gpu_loss, cpu_loss = end_gpu.metrics.val_loss, end_cpu.metrics.val_loss
    close = abs(gpu_loss - cpu_loss) <= 0.05 * max(abs(cpu_loss), 1e-3) + 1e-3
    check(f"{name} train on cuda", isinstance(end_gpu, Finished) and flows == 6 and close,
          f"val loss {gpu_loss:.4f} (cpu {cpu_loss:.4f}), {flows} gradient-flow snapshots, "
          f"{seconds:.1f} s (cpu {cpu_seconds:.1f} s)")


def command_line(out: Path) -> None:
    run = out / "moons_cuda"
    cmd = [sys.executable, "-m", "engine.cli", "train", str(REPO / "sample_graphs/moons_mlp.json"),
           "--device", "cuda", "--epochs", "3", "--out", str(run), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    files = sorted(p.name for p in run.iterdir()) if run.exists() else []
    check("dprog train --device cuda", done.returncode == 0 and "weights.pt" in files,
          f"exit {done.returncode}; {' '.join(files)}; {done.stdout.strip()[-200:]}"
          f"{done.stderr.strip()[-300:]}")
    again = subprocess.run([*cmd[:4], "--resume", str(run), "--epochs", "5", "--device", "cuda",
                            "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=300)
    check("dprog train --resume on cuda", again.returncode == 0,
          f"exit {again.returncode}; {again.stdout.strip()[-200:]}{again.stderr.strip()[-300:]}")


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dprog_gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    check("cuda available", torch.cuda.is_available(),
          f"torch {torch.__version__}, {torch.cuda.get_device_name() if torch.cuda.is_available() else '-'}")
    if not torch.cuda.is_available():
        return 1
    for path in sorted((REPO / "sample_graphs").glob("*.json")):
        graph = load_graph(path)
        forward_parity(path.stem, graph)
        training(path.stem, graph)
    command_line(out)
    print(f"{len(failures)} failed: {failures}" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
