"""Row 7: cold start, from process start to the studio's first frame and to a trained moons_mlp.

Every figure is a fresh process, timed from just before it is started to the moment it
reports (the studio: its first `render_dearpygui_frame` returned, observed from inside `dprog
GRAPH` itself) or exits (`dprog train sample_graphs/moons_mlp.json`, with torch's default
threads as a user gets them, and with OMP_NUM_THREADS=1). Beside them: a bare `python -c
pass`, and `import torch` on its own, timed inside its process. Rounds alternate the order of
the jobs (ABBA) and each figure is the median over rounds.

    python -m bench.coldstart [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, median

TORCH_IMPORT = ("import time; t = time.perf_counter(); import torch; "
                "print(time.perf_counter() - t)")


def _wall(cmd: list[str], env: dict | None = None, timeout: float = 900) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return took, proc.stdout


def _first_frame(env: dict, graph: str) -> dict:
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "bench.studio_child", "first_frame",
                           json.dumps({"graph": graph})], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            result = json.loads(line[len("BENCH-RESULT "):])
            result["seconds"] = result["first_frame_at"] - start
            return result
    raise RuntimeError(f"the studio showed no frame (exit {proc.returncode}): "
                       f"{proc.stderr[-2000:]}")


def run(quick: bool = False, smoke: bool = False, studio: bool = True) -> dict:
    rounds = 1 if smoke else 3 if quick else 7
    graph = str(ROOT / "sample_graphs" / "moons_mlp.json")
    times: dict[str, list] = {"python": [], "torch_import": [], "first_frame": [], "train_cli": [],
                              "train_cli_1_thread": []}
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    torch_at_first_frame = []
    with tempfile.TemporaryDirectory(prefix="dprog-bench-") as tmp:
        screen = None
        if studio:
            from bench.studio import screen as make_screen

            screen = make_screen()
            vs = screen.__enter__()
        try:
            for r in range(rounds):
                jobs = ["python", "torch_import", "first_frame", "train_cli", "train_cli_1_thread"]
                for job in jobs if r % 2 == 0 else jobs[::-1]:
                    if job == "python":
                        times[job].append(_wall([sys.executable, "-c", "pass"])[0])
                    elif job == "torch_import":
                        times[job].append(float(_wall([sys.executable, "-c", TORCH_IMPORT])[1]))
                    elif job == "first_frame" and screen is not None:
                        result = _first_frame(vs.bench_env, graph)
                        times[job].append(result["seconds"])
                        torch_at_first_frame.append(result["torch_loaded"])
                    elif job.startswith("train_cli"):
                        cmd = [sys.executable, "-m", "engine.cli", "train", graph, "--quiet",
                               "--out", str(Path(tmp) / f"{job}{r}")]
                        if smoke:
                            cmd += ["--steps", "20"]
                        env = one_thread if job == "train_cli_1_thread" else None
                        times[job].append(_wall(cmd, env)[0])
        finally:
            if screen is not None:
                screen.__exit__(None, None, None)
    out = {name: median(v) if v else None for name, v in times.items()}
    out.update(rounds=rounds, all=times, smoke_train_steps=20 if smoke else None,
               torch_loaded_at_first_frame=any(torch_at_first_frame) if torch_at_first_frame
               else None)
    out["met"] = (not any(torch_at_first_frame)) if torch_at_first_frame else None
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv, smoke="--smoke" in sys.argv), indent=1))
