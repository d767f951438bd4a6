"""Row 1: a compiled graph against its hand-written twin (bench/twins.py), per sample graph.

Both get the same weights (the compiled module's `state_dict` is loaded into the twin, and
their outputs are checked to agree), the same batch, the same loss and a fresh optimizer of the
graph's kind. A training step is forward + loss + backward + optimizer step. Blocks of steps
alternate between the two (ABBA), and the figure is the median over rounds of
time(compiled) / time(twin): the thread's CPU time when torch runs on one thread (the suite's
default), else wall time. A second twin is timed in the same rounds as a control: its ratio
to the first (`twin/twin`) is the noise floor of the figure on this machine.

    python -m bench.compiled [--quick]
"""

from __future__ import annotations

import sys
import time

from bench.common import ROOT, interleave, median, ratio

TARGET = 1.02


def _optimizer(kind: str, lr: float, params):
    import torch

    return {"sgd": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9),
            "adam": lambda: torch.optim.Adam(params, lr=lr),
            "adamw": lambda: torch.optim.AdamW(params, lr=lr),
            "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr)}[kind]()


def _setup(name: str):
    import torch
    import torch.nn.functional as F

    from bench.twins import TWINS
    from engine import analyze, compile_graph, example_inputs, load_graph
    from engine.core.config import TrainingConfig

    graph = load_graph(ROOT / "sample_graphs" / f"{name}.json")
    config = TrainingConfig.from_mapping(graph.training)
    torch.manual_seed(0)
    compiled = compile_graph(graph)
    twin = TWINS[name]()
    twin.load_state_dict(compiled.state_dict())
    gen = torch.Generator().manual_seed(1)
    inputs = example_inputs(graph, config.batch_size, generator=gen)
    out_shape = next(t for p, t in analyze(graph).inputs.items()
                     if "/" not in p and graph.node(p).type == "output")["x"].shape
    if config.loss == "cross_entropy":
        target = torch.randint(0, out_shape[-1], (config.batch_size,), generator=gen)
        loss_fn = F.cross_entropy
    else:
        target = torch.randn((config.batch_size, *out_shape[1:]), generator=gen)
        loss_fn = F.mse_loss
    with torch.no_grad():
        a, b = compiled(*inputs), twin(*inputs)
    difference = float((a - b).abs().max())

    def stepper(model):
        opt = _optimizer(config.optimizer, config.lr, list(model.parameters()))

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(model(*inputs), target).backward()
            opt.step()
        return step

    control = TWINS[name]()   # a second twin: twin against twin shows the noise floor
    control.load_state_dict(compiled.state_dict())
    return stepper(compiled), stepper(twin), difference, stepper(control)


def run(quick: bool = False, smoke: bool = False) -> dict:
    import torch

    from bench.twins import TWINS

    # With one torch thread every step runs on this thread, so its CPU time is the cost of
    # the step, and the time other processes take the core from us does not count.
    single = torch.get_num_threads() == 1
    clock = time.thread_time if single else time.perf_counter
    rounds = 3 if smoke else 15 if quick else 41
    block_seconds = 0.005 if smoke else 0.02 if quick else 0.05
    graphs = {}
    for name in TWINS:
        compiled_step, twin_step, difference, control_step = _setup(name)
        for _ in range(3):   # warm up all: first-call costs are nobody's steady state
            compiled_step()
            twin_step()
            control_step()
        start = time.perf_counter()
        twin_step()
        once = max(time.perf_counter() - start, 1e-5)
        steps = max(2, round(block_seconds / once))

        def block(step, n=steps):
            for _ in range(n):
                step()

        times = interleave({"compiled": lambda s=compiled_step: block(s),
                            "twin": lambda s=twin_step: block(s),
                            "control": lambda s=control_step: block(s)}, rounds, clock=clock)
        graphs[name] = {"ratio": ratio(times, "compiled", "twin"),
                        "control_ratio": ratio(times, "control", "twin"),
                        "compiled_step_ms": 1000 * median(times["compiled"]) / steps,
                        "twin_step_ms": 1000 * median(times["twin"]) / steps,
                        "steps_per_block": steps, "rounds": rounds,
                        "max_output_difference": difference}
    worst = max(g["ratio"] for g in graphs.values())
    # The control: a second twin timed like the others. How far its ratio strays from 1 is
    # what this machine's noise does to a ratio of two identical models.
    noise = max(abs(g["control_ratio"] - 1) for g in graphs.values())
    return {"graphs": graphs, "worst_ratio": worst, "noise_floor": noise, "target": TARGET,
            "met": worst <= TARGET,
            "clock": "thread CPU time" if single else "wall time"}


def table(result: dict) -> list[str]:
    lines = [f"{'graph':<16}{'compiled ms':>12}{'twin ms':>10}{'ratio':>8}{'twin/twin':>11}"
             f"{'max |diff|':>12}"]
    for name, g in result["graphs"].items():
        lines.append(f"{name:<16}{g['compiled_step_ms']:>12.3f}{g['twin_step_ms']:>10.3f}"
                     f"{g['ratio']:>8.3f}{g['control_ratio']:>11.3f}"
                     f"{g['max_output_difference']:>12.1e}")
    return lines


if __name__ == "__main__":
    print("\n".join(table(run(quick="--quick" in sys.argv))))
