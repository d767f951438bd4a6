"""On a machine with a GPU: the program samples and the blocks that hold tensors, on CUDA.

    python tools/cuda_check.py          # prints one line per check, exits 1 on a failure

What the CPU test suite cannot see: that a held tensor (a causal mask, the shape noise is
drawn like), Positions' `device=`, the trainer's program mode and text generation all follow
the model to the GPU. The graphs come from tools/make_samples.py (no graph files, so no
jsonschema is needed). A few steps each: a minute at most.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import torch  # noqa: E402
from make_samples import SAMPLES  # noqa: E402

from engine.core.config import TrainingConfig  # noqa: E402
from engine.core.events import Finished  # noqa: E402
from engine.core.graph import Edge, Graph, Node  # noqa: E402
from engine.runtime.compiler import compile_graph  # noqa: E402
from engine.runtime.generate import generate_text  # noqa: E402
from engine.runtime.trainer import train  # noqa: E402


def check(name: str, fn) -> bool:
    started = time.perf_counter()
    try:
        detail = fn()
    except Exception as e:   # report and go on
        print(f"FAIL {name}: {type(e).__name__}: {e}")
        return False
    print(f"ok   {name} ({time.perf_counter() - started:.1f} s) {detail or ''}")
    return True


def trained(sample: str, **overrides):
    graph = SAMPLES[sample]()
    config = TrainingConfig.from_mapping(graph.training).with_overrides(device="cuda", **overrides)
    trainer, events = train(graph, config)
    if not isinstance(events[-1], Finished):
        raise RuntimeError(getattr(events[-1], "message", events[-1]))
    return graph, trainer, events[-1]


def noise_of_a_shape() -> str:
    graph = Graph((Node("n", "normal", {"shape": (2, 3)}), Node("o", "output", {})),
                  (Edge(("n", "y"), ("o", "x")),), name="noise")
    out = compile_graph(graph).cuda()()
    assert out.is_cuda and out.shape == (2, 3)
    return str(out.device)


def main() -> int:
    if not torch.cuda.is_available():
        print("no GPU here: nothing to check")
        return 2
    print("torch", torch.__version__, torch.cuda.get_device_name())
    results = [
        check("noise of a given shape on the module's device", noise_of_a_shape),
        check("projectile, 40 steps", lambda: trained("projectile", steps=40)[2].metrics),
        check("vae, 1 epoch", lambda: trained("vae", epochs=1)[2].metrics),
    ]
    gpt = {}

    def char_gpt() -> str:
        gpt["graph"], gpt["trainer"], end = trained("char_gpt", epochs=1)
        return str(end.metrics)

    results.append(check("char_gpt, 1 epoch (causal mask, positions)", char_gpt))
    if gpt:
        results.append(check("generate text on the GPU", lambda: repr(generate_text(
            gpt["graph"], gpt["trainer"].module, "The ", 40, temperature=0.8))))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
