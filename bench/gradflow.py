"""What gradient-flow measurement costs, per training step, on every sample graph.

Everything is interleaved in one process, with one Trainer per setting (same seed, same
batches), so the machine's noise hits all settings alike; figures are medians of ratios.

- K=1: single steps alternate between a trainer that measures every step and one that never
  does; the overhead is the median of time(measured) / time(plain), minus one. A snapshot
  every K steps then costs that overhead / K, which is the `derived` figure.
- K=default, measured directly: rounds time a block of steps with the default K and the same
  block with it off; the overhead is the median of the block-time ratios, minus one. Noisier
  on a busy machine (a block is seconds long), hence the derived figure beside it.

    python bench/gradflow.py [--quick]        # prints a table, then the JSON result
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine import load_graph  # noqa: E402
from engine.core.config import TrainingConfig  # noqa: E402
from engine.runtime.trainer import Trainer  # noqa: E402

SAMPLES = sorted(p.stem for p in (ROOT / "sample_graphs").glob("*.json"))


class _Discard:
    def put(self, event) -> None:
        pass


def _trainers(name: str, every: list[int], graph=None) -> dict[int, Trainer]:
    graph = graph if graph is not None else load_graph(ROOT / "sample_graphs" / f"{name}.json")
    base = TrainingConfig.from_mapping(graph.training)
    out = {}
    for k in every:
        trainer = Trainer(graph, base.with_overrides(gradflow_every=k, device="cpu"),
                          events=_Discard())
        trainer.setup()
        out[k] = trainer
    return out


def _time_step(trainer: Trainer, index: torch.Tensor) -> float:
    start = time.perf_counter()
    trainer.train_step(index)
    return time.perf_counter() - start


def _time_block(trainer: Trainer, batches: list[torch.Tensor]) -> float:
    return sum(_time_step(trainer, index) for index in batches)


def run(quick: bool = False, *, graphs=None) -> dict:
    """{"default_k", "graphs": {name: {"step_ms", "overhead": {"1", "K", "K derived"}}},
    "median": {same keys}}; overheads are fractions of a plain training step.

    `graphs` ({name: Graph}; default: every sample) is what `python -m bench` row 2 passes."""
    k = TrainingConfig().gradflow_every
    rounds, block = (3, 2 * k) if quick else (9, 4 * k)
    result: dict = {"default_k": k, "rounds": rounds, "block_steps": block,
                    "threads": torch.get_num_threads(), "graphs": {}}
    for name, graph in (graphs or dict.fromkeys(SAMPLES)).items():
        trainers = _trainers(name, [0, 1, k], graph)
        first = trainers[0]
        first.sampler.set_epoch(0)
        order = torch.tensor(list(first.sampler))
        batches = [order[i * first.rank_batch:(i + 1) * first.rank_batch]
                   for i in range(min(block, first.steps_per_epoch))]
        batches = (batches * (block // len(batches) + 1))[:block]
        for trainer in trainers.values():   # warm up: first-call costs are not the probe's
            _time_block(trainer, batches[:3])
        every, plain, blocks = [], [], []
        for r in range(rounds):
            for i, index in enumerate(batches):   # alternate which goes first
                pair = (trainers[1], trainers[0]) if (r + i) % 2 else (trainers[0], trainers[1])
                times = {id(t): _time_step(t, index) for t in pair}
                every.append(times[id(trainers[1])])
                plain.append(times[id(trainers[0])])
            off, on = _time_block(trainers[0], batches), _time_block(trainers[k], batches)
            blocks.append(on / off)
        per_step = statistics.median(e / p for e, p in zip(every, plain, strict=True)) - 1
        result["graphs"][name] = {"step_ms": 1000 * statistics.median(plain), "overhead": {
            "1": per_step, str(k): statistics.median(blocks) - 1, f"{k} derived": per_step / k}}
    keys = ["1", str(k), f"{k} derived"]
    result["median"] = {key: statistics.median(g["overhead"][key]
                                               for g in result["graphs"].values()) for key in keys}
    return result


def main() -> None:
    result = run(quick="--quick" in sys.argv)
    k = result["default_k"]
    keys = ["1", str(k), f"{k} derived"]
    print(f"gradient-flow overhead per training step, {result['threads']} torch thread(s), "
          f"{result['rounds']} rounds of {result['block_steps']} steps")
    print(f"{'graph':<16}{'step ms':>9}{'K=1':>9}{f'K={k}':>9}{f'K={k} (K=1 / {k})':>18}")
    for name, g in [*result["graphs"].items(), ("median", {"overhead": result["median"]})]:
        ms = f"{g['step_ms']:.2f}" if "step_ms" in g else ""
        print(f"{name:<16}{ms:>9}" + "".join(f"{g['overhead'][key]:>{w}.1%}"
                                            for key, w in zip(keys, (9, 9, 18), strict=True)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
