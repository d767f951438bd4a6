"""Row 3: how the engine scales - analysis, code generation, compile() and exec per 1,000 nodes.

For generated chains, DAGs (fan-out and skip connections) and loops nested three deep, at 10,
100, 1,000 and 5,000 nodes, each round times the stages one after another on the same graph:

- analyze: `engine.analyze`, validation and shape inference in its one pass;
- codegen: `engine.core.codegen.generate` given that analysis (the exported text);
- compile: Python's `compile()` of that text;
- exec: running the compiled module body (defining the classes);
- init (reported, not part of the target): instantiating the module, which is torch's
  parameter initialisation.

Each figure is the median over rounds, as wall time and as this process's CPU time (which a
busy machine inflates far less); the target applies to analyze + codegen + compile + exec.

    python -m bench.engine_scaling [--quick]
"""

from __future__ import annotations

import gc
import sys
import time

from bench.common import median

SIZES = (10, 100, 1000, 5000)
STAGES = ("analyze", "codegen", "compile", "exec")
TARGET_MS_PER_1K = 50.0


def _measure(graph, rounds: int, init: bool) -> dict:
    from engine.core.analysis import analyze
    from engine.core.codegen import generate

    wall: dict[str, list[float]] = {s: [] for s in (*STAGES, "init")}
    cpu: dict[str, list[float]] = {s: [] for s in (*STAGES, "init")}

    def stage(name: str, fn, *args):
        w, c = time.perf_counter(), time.process_time()
        value = fn(*args)
        cpu[name].append(time.process_time() - c)
        wall[name].append(time.perf_counter() - w)
        return value

    source = ""
    for _ in range(rounds):
        gc.collect()
        analysis = stage("analyze", analyze, graph)
        generated = stage("codegen", generate, graph, analysis)
        source = generated.source
        code = stage("compile", compile, source, "<bench>", "exec")
        namespace: dict = {"__name__": "bench_generated"}
        stage("exec", exec, code, namespace)
        if init:
            stage("init", namespace[generated.class_name])
    result = {"wall_ms": {s: 1000 * median(v) for s, v in wall.items() if v},
              "cpu_ms": {s: 1000 * median(v) for s, v in cpu.items() if v},
              "lines": source.count("\n"), "rounds": rounds}
    for clock in ("wall_ms", "cpu_ms"):
        result[clock]["engine"] = sum(result[clock][s] for s in STAGES)
    return result


def run(quick: bool = False, smoke: bool = False) -> dict:
    import torch

    from bench.graphs import KINDS, count_nodes

    torch.manual_seed(0)
    sizes = (10, 100) if smoke else SIZES
    out: dict = {"sizes": list(sizes), "graphs": {}}
    for kind, make in KINDS.items():
        rows = {}
        for size in sizes:
            graph = make(size)
            nodes = count_nodes(graph)
            rounds = 2 if smoke else (3 if size >= 5000 else 5) if quick else \
                (5 if size >= 5000 else 11)
            measured = _measure(graph, rounds, init=size <= (100 if quick or smoke else 1000))
            per_1k = {clock: {s: v * 1000 / nodes for s, v in measured[clock].items()}
                      for clock in ("wall_ms", "cpu_ms")}
            rows[size] = {"nodes": nodes, **measured, "per_1k": per_1k}
        out["graphs"][kind] = rows
    # The target is about sizes where per-node costs dominate: 1,000 nodes and up (a 10-node
    # graph is mostly the file header; smoke runs, which stop at 100, judge nothing).
    floor = 1000 if max(sizes) >= 1000 else max(sizes)
    big = [r for rows in out["graphs"].values() for size, r in rows.items() if size >= floor]
    out["worst_engine_per_1k"] = {clock: max(r["per_1k"][clock]["engine"] for r in big)
                                  for clock in ("wall_ms", "cpu_ms")}
    # Flat per node: the cost per node at the largest size against 1,000 nodes.
    flat = {}
    for kind, rows in out["graphs"].items():
        if 1000 in rows and max(rows) > 1000:
            flat[kind] = rows[max(rows)]["per_1k"]["cpu_ms"]["engine"] / \
                rows[1000]["per_1k"]["cpu_ms"]["engine"]
    out["flatness"] = flat
    out["target"] = TARGET_MS_PER_1K
    out["met"] = out["worst_engine_per_1k"]["cpu_ms"] <= TARGET_MS_PER_1K if floor >= 1000 \
        else None
    return out


def table(result: dict) -> list[str]:
    head = f"{'graph':<8}{'nodes':>7}" + "".join(f"{s:>9}" for s in (*STAGES, "engine")) + \
        f"{'(wall)':>9}{'init':>9}"
    lines = ["ms per 1,000 nodes (CPU time; engine = analyze+codegen+compile+exec; "
             "init = torch, excluded)", head]
    for kind, rows in result["graphs"].items():
        for r in rows.values():
            cpu, wall = r["per_1k"]["cpu_ms"], r["per_1k"]["wall_ms"]
            init = f"{cpu['init']:>9.1f}" if "init" in cpu else f"{'-':>9}"
            lines.append(f"{kind:<8}{r['nodes']:>7}" + "".join(f"{cpu[s]:>9.1f}" for s in STAGES)
                         + f"{cpu['engine']:>9.1f}{wall['engine']:>9.1f}{init}")
    return lines


if __name__ == "__main__":
    print("\n".join(table(run(quick="--quick" in sys.argv, smoke="--smoke" in sys.argv))))
