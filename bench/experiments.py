"""Row 11: what wire inspection and profile mode cost per training step, and that off they
cost nothing.

Off, the trainer runs the plain module: the row counts the tapped-forward calls of a block of
plain steps (must be 0) beside the timing. On, single steps alternate (interleaved, ABBA)
between a plain trainer, one that inspects one wire at every step (`Trainer.inspect`: its
activation and gradient statistics, a sample, channels or a heatmap), and one in profile mode
(`BlockProfiler`: a clock read and a gradient hook per wire); the figures are medians over
rounds of the per-step ratios. `read_wire` (one extra forward and backward outside a step,
plus a 2-D model's heatmap) is timed alone.

    python bench/experiments.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import interleave, median, ratio  # noqa: E402
from engine import load_graph  # noqa: E402
from engine.core.config import TrainingConfig  # noqa: E402
from engine.runtime.trainer import Trainer  # noqa: E402

GRAPHS = ("moons_mlp", "digits_cnn", "rnn_scan")


class _Discard:
    def put(self, event) -> None:
        pass


def _trainer(graph, profile: bool = False) -> Trainer:
    config = TrainingConfig.from_mapping(graph.training).with_overrides(gradflow_every=0,
                                                                         device="cpu")
    trainer = Trainer(graph, config, events=_Discard(), profile=profile)
    trainer.setup()
    return trainer


def measure(name: str, rounds: int) -> dict:
    graph = load_graph(ROOT / "sample_graphs" / f"{name}.json")
    plain, inspecting, profiled = _trainer(graph), _trainer(graph), _trainer(graph, True)
    wire = plain.edge_keys[len(plain.edge_keys) // 2]
    index = torch.arange(plain.rank_batch)
    calls = []
    real = plain.tapped
    plain.model.tapped = lambda *a: calls.append(1) or real(*a)
    for _ in range(3):   # warm up every path
        plain.train_step(index)
        inspecting.inspect(wire)
        inspecting.train_step(index)
        profiled.train_step(index)
    calls.clear()

    def inspected() -> None:
        inspecting.inspect(wire)
        inspecting.train_step(index)

    times = interleave({"plain": lambda: plain.train_step(index), "inspect": inspected,
                        "profile": lambda: profiled.train_step(index)}, rounds)
    off_taps = len(calls)
    start = time.perf_counter()
    reads = 3
    for _ in range(reads):
        plain.read_wire(wire)
    return {"wire": wire, "step_ms": median(times["plain"]) * 1e3,
            "inspect_ratio": ratio(times, "inspect", "plain"),
            "profile_ratio": ratio(times, "profile", "plain"),
            "off_tapped_calls": off_taps, "off_steps": rounds,
            "read_wire_ms": (time.perf_counter() - start) / reads * 1e3}


def run(quick: bool = False, smoke: bool = False) -> dict:
    names = GRAPHS[:1] if smoke else GRAPHS
    rounds = 10 if smoke else 60 if quick else 300
    graphs = {name: measure(name, rounds) for name in names}
    return {"graphs": graphs, "rounds": rounds,
            "off_free": all(g["off_tapped_calls"] == 0 for g in graphs.values())}


def table(result: dict) -> list[str]:
    lines = [f"{'graph':<14}{'step ms':>9}{'inspect ×':>11}{'profile ×':>11}{'read ms':>9}"
             f"{'taps off':>9}"]
    for name, g in result["graphs"].items():
        lines.append(f"{name:<14}{g['step_ms']:>9.2f}{g['inspect_ratio']:>11.3f}"
                     f"{g['profile_ratio']:>11.3f}{g['read_wire_ms']:>9.2f}"
                     f"{g['off_tapped_calls']:>9}")
    return lines


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = run(quick="--quick" in sys.argv)
    print("\n".join(table(out)))
    print(json.dumps(out, indent=1))
