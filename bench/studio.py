"""Rows 4, 5, 6 and 8: the studio on a private Xvfb screen, driven in subprocesses.

Each measurement runs `python -m bench.studio_child MODE ARGS` on one virtual screen (started
here with tests/gui/harness.py's `VirtualScreen`) and reads back its JSON line. Comparisons
that need two processes (row 6: the studio against `dprog train`) alternate them round by
round, ABBA, and report the median of the per-round ratios.

    python -m bench.studio [--quick | --smoke]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bench.common import ROOT, median

EDIT_TARGET_MS = 30.0
OWN_TARGET_MS = 2.0
THROUGHPUT_TARGET = 0.90


class StudioBenchError(RuntimeError):
    pass


def _harness():
    gui = ROOT / "tests" / "gui"
    if str(gui) not in sys.path:
        sys.path.insert(0, str(gui))
    import harness

    return harness


@contextmanager
def screen():
    """A private Xvfb screen, with a state folder of its own so no recovery file leaks."""
    harness = _harness()
    with harness.VirtualScreen() as vs, tempfile.TemporaryDirectory(prefix="dprog-bench-") as tmp:
        vs.bench_env = vs.env({"DPROG_STATE_DIR": tmp})
        yield vs


def child(mode: str, args: dict, env: dict | None, timeout: float = 900) -> dict:
    """Run one bench.studio_child measurement and return its result."""
    proc = subprocess.run([sys.executable, "-m", "bench.studio_child", mode, json.dumps(args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT "):])
    raise StudioBenchError(f"studio child {mode} {args} exited {proc.returncode} without a "
                           f"result:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def threads_env(env: dict, threads: int | None) -> dict:
    env = dict(env)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


# -- row 4 ----------------------------------------------------------------------------------


def edit_latency(vs, quick: bool, smoke: bool) -> dict:
    size = 100 if smoke else 1000
    rounds = 4 if smoke else 15 if quick else 41
    result = child("edit", {"size": size, "rounds": rounds}, vs.bench_env)
    result.update(target_ms=EDIT_TARGET_MS, met=result["edit_ms"] <= EDIT_TARGET_MS)
    return result


# -- row 5 ----------------------------------------------------------------------------------


def frame_cost(vs, quick: bool, smoke: bool, threads: int | None) -> dict:
    sizes = [0, 100] if smoke else [0, 100, 500, 1000]
    # Imported models too (issue 14): resnet18's 95 nodes and mobilenet_v2's 206, most of
    # them inside function bodies, fine-tuning on digits.
    imported = [] if smoke else ["resnet18", "mobilenet_v2"]
    args = {"sizes": sizes, "rounds": 1 if smoke else 2 if quick else 4,
            "frames": 10 if smoke else 40 if quick else 120, "training": True,
            "imported": imported}
    raw = child("frames", args, threads_env(vs.bench_env, threads), timeout=3600)
    samples = raw["samples"]
    empty = samples["idle:0"]["frame"]
    table = {}
    for key, s in samples.items():
        if not s["frame"]:
            continue
        ratios = [f / e for f, e in zip(s["frame"], empty, strict=False)]
        table[key] = {"frame_ms": 1000 * median(s["frame"]), "own_ms": 1000 * median(s["own"]),
                      "ratio_to_empty": median(ratios)}
    big = table.get(f"training:{max(sizes)}")
    own = big["own_ms"] if big else None
    own_imported = {name: table[f"training:{name}"]["own_ms"] for name in imported
                    if f"training:{name}" in table}
    return {"sizes": sizes, "imported": imported, "rounds": args["rounds"],
            "frames_per_block": args["frames"], "results": table, "notes": raw["notes"],
            "own_ms_training_largest": own, "own_ms_training_imported": own_imported,
            "target_own_ms": OWN_TARGET_MS,
            "met": own is not None and max(sizes) >= 1000 and own <= OWN_TARGET_MS
            and len(own_imported) == len(imported)
            and all(v <= OWN_TARGET_MS for v in own_imported.values())}


# -- row 6 ----------------------------------------------------------------------------------


def training_throughput(vs, quick: bool, smoke: bool, threads: int | None) -> dict:
    from engine.core.fileformat import load_graph, save_graph
    from engine.core.graph import set_training

    steps = 100 if smoke else 1500 if quick else 6000
    rounds = 1 if smoke else 2 if quick else 4
    graph = load_graph(ROOT / "sample_graphs" / "moons_mlp.json")
    graph = set_training(graph, {**graph.training, "steps": steps})
    env = threads_env(vs.bench_env, threads)
    with tempfile.TemporaryDirectory(prefix="dprog-bench-") as tmp:
        path = Path(tmp) / "moons_mlp.json"
        save_graph(graph, path)
        rows = []
        for r in range(rounds):
            order = ("headless", "studio") if r % 2 == 0 else ("studio", "headless")
            row = {}
            for which in order:
                if which == "headless":
                    row[which] = child("headless_train", {"graph": str(path),
                                                          "out": str(Path(tmp) / f"run{r}")}, env)
                else:
                    row[which] = child("train", {"graph": str(path)}, env)
            rows.append(row)
    ok = [r for r in rows if r["studio"].get("finished") and r["headless"].get("seconds")]
    ratios = [r["headless"]["seconds"] / r["studio"]["seconds"] for r in ok]
    ratio = median(ratios) if ratios else float("nan")
    return {"graph": "moons_mlp", "steps": steps, "rounds": rounds,
            "studio_seconds": median(r["studio"]["seconds"] for r in ok) if ok else None,
            "headless_seconds": median(r["headless"]["seconds"] for r in ok) if ok else None,
            "studio_frame_ms": median(r["studio"]["frame_ms"] for r in ok) if ok else None,
            "studio_own_ms": median(r["studio"]["own_ms"] for r in ok) if ok else None,
            "ratio": ratio, "ratios": ratios, "runs": rows, "target": THROUGHPUT_TARGET,
            "met": bool(ratios) and ratio >= THROUGHPUT_TARGET}


# -- row 8 ----------------------------------------------------------------------------------


def peak_memory(vs, quick: bool, smoke: bool) -> dict:
    """Peak RSS (VmHWM) of a studio showing a 1,000-node graph, an empty one beside it; each
    a fresh process, alternating, median over rounds."""
    seconds = 1 if smoke else 3
    sizes = [0, 100] if smoke else [0, 1000]
    rounds = 1 if smoke else 2 if quick else 3
    runs: dict[str, list] = {str(s): [] for s in sizes}
    for r in range(rounds):
        for s in sizes if r % 2 == 0 else sizes[::-1]:
            runs[str(s)].append(child("memory", {"size": s, "seconds": seconds}, vs.bench_env))
    peak = {s: median(x["peak_rss_mib"] for x in v) for s, v in runs.items()}
    return {"runs": runs, "peak_rss_mib": peak[str(max(sizes))], "empty_rss_mib": peak["0"],
            "size": max(sizes), "rounds": rounds}


def run(quick: bool = False, smoke: bool = False, rows: set[str] | None = None,
        threads: int | None = None) -> dict:
    rows = rows or {"4", "5", "6", "8"}
    out: dict = {}
    with screen() as vs:
        jobs = {"4": lambda: edit_latency(vs, quick, smoke),
                "5": lambda: frame_cost(vs, quick, smoke, threads),
                "6": lambda: training_throughput(vs, quick, smoke, threads),
                "8": lambda: peak_memory(vs, quick, smoke)}
        for row, job in jobs.items():
            if row in rows:
                try:
                    out[row] = job()
                except (StudioBenchError, subprocess.TimeoutExpired) as e:
                    out[row] = {"error": str(e)[-3000:]}
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv, smoke="--smoke" in sys.argv), indent=1,
                     default=str))
    os._exit(0)
