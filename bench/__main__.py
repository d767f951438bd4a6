"""`python -m bench`: dprog's benchmark suite; prints a table and writes bench/results.json.

    python -m bench                 # full: every row, the figures to quote (~25-40 minutes)
    python -m bench --quick         # every row, fewer rounds (a few minutes)
    python -m bench --quick --rows 1,3,7   # only these rows (the engine-only ones need no screen)
    python -m bench --smoke         # everything tiny, to check the suite runs (CI)

Rows (see bench/README.md): 1 compiled vs hand-written, 2 gradient-flow overhead, 3 engine
scaling, 4 studio edit latency, 5 studio frame cost, 6 studio training throughput, 7 cold
start, 8 studio peak memory, 9 the traced path's eager cost and deployed models' speed.
Rows 4-6, 8 and the studio part of 7 need Xvfb (they start a
private one); without it they are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from bench.common import ROOT, git_commit, machine

ROWS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "11")
STUDIO_ROWS = {"4", "5", "6", "8"}
GRADFLOW_TARGET = 1.05


def row1(mode: dict) -> dict:
    from bench import compiled

    return compiled.run(quick=mode["quick"], smoke=mode["smoke"])


def row2(mode: dict) -> dict:
    """bench/gradflow.py's measurement, on moons_mlp, digits_cnn and a 20-layer MLP."""
    from bench import gradflow
    from bench.graphs import mlp
    from engine import load_graph

    graphs = {name: load_graph(ROOT / "sample_graphs" / f"{name}.json")
              for name in ("moons_mlp", "digits_cnn")}
    graphs["mlp20"] = mlp(20)
    if mode["smoke"]:   # bench/gradflow.py's quick mode takes ~10 s a graph: one will do
        graphs = {"moons_mlp": graphs["moons_mlp"]}
    result = gradflow.run(mode["quick"], graphs=graphs)
    k = result["default_k"]
    for g in result["graphs"].values():
        g["ratio_default"] = 1 + g["overhead"][str(k)]
        g["ratio_every_step"] = 1 + g["overhead"]["1"]
    worst = max(g["ratio_default"] for g in result["graphs"].values())
    result.update(worst_ratio_default=worst, target=GRADFLOW_TARGET, met=worst <= GRADFLOW_TARGET)
    return result


def row3(mode: dict) -> dict:
    from bench import engine_scaling

    return engine_scaling.run(quick=mode["quick"], smoke=mode["smoke"])


def row7(mode: dict) -> dict:
    from bench import coldstart

    return coldstart.run(quick=mode["quick"], smoke=mode["smoke"], studio=mode["screen"])


def row9(mode: dict) -> dict:
    from bench import deploy

    return deploy.run(quick=mode["quick"], smoke=mode["smoke"])


def row11(mode: dict) -> dict:
    from bench import experiments

    return experiments.run(quick=mode["quick"], smoke=mode["smoke"])


def studio_rows(mode: dict, rows: set[str]) -> dict:
    from bench import studio

    return studio.run(quick=mode["quick"], smoke=mode["smoke"], rows=rows,
                      threads=mode["threads"])


# -- the summary table ----------------------------------------------------------------------


def _status(met) -> str:
    return "n/a" if met is None else "met" if met else "MISSED"


def summary(rows: dict) -> list[dict]:
    out = []

    def add(row, what, measured, target, met):
        out.append({"row": row, "what": what, "result": measured, "target": target,
                    "status": _status(met)})

    def skipped(row, what, target):
        r = rows.get(row, {})
        add(row, what, f"skipped: {r.get('skipped') or r.get('error', 'not run')}"[:90], target,
            None)

    r = rows.get("1")
    if r and "graphs" in r:
        worst = max(r["graphs"], key=lambda n: r["graphs"][n]["ratio"])
        add("1", "compiled vs hand-written (fwd+bwd+step)",
            f"worst {r['worst_ratio']:.3f} ({worst}); median "
            f"{sorted(g['ratio'] for g in r['graphs'].values())[len(r['graphs']) // 2]:.3f}; "
            f"twin/twin within ±{r['noise_floor']:.3f}",
            "≤ 1.02", r["met"])
    elif "1" in rows:
        skipped("1", "compiled vs hand-written", "≤ 1.02")
    r = rows.get("2")
    if r and "graphs" in r:
        k = r["default_k"]
        parts = ", ".join(f"{n} {g['ratio_default']:.3f}/{g['ratio_every_step']:.2f}"
                          for n, g in r["graphs"].items())
        add("2", f"gradient flow K={k} / K=1 vs plain", parts, "≤ 1.05 at K=" + str(k), r["met"])
    elif "2" in rows:
        skipped("2", "gradient flow vs plain", "≤ 1.05")
    r = rows.get("3")
    if r and "graphs" in r:
        flat = ", ".join(f"{k} ×{v:.2f}" for k, v in r["flatness"].items())
        add("3", "engine ms per 1,000 nodes (analyze+codegen+compile+exec)",
            f"worst {r['worst_engine_per_1k']['cpu_ms']:.1f} CPU / "
            f"{r['worst_engine_per_1k']['wall_ms']:.1f} wall; 5k vs 1k: {flat or '-'}",
            "≤ 50, flat", r["met"])
    elif "3" in rows:
        skipped("3", "engine scaling", "≤ 50 ms / 1k")
    r = rows.get("4")
    if r and "edit_ms" in r:
        add("4", f"studio edit latency, {r['size']} nodes",
            f"{r['edit_ms']:.1f} ms (do {r['do_ms']:.1f}, edit's frame {r['first_frame_ms']:.1f};"
            f" code panel in frame {r['frames_until_code']:.0f}; engine uncached "
            f"{r['engine_uncached_ms']:.1f})", "≤ 30 ms", r["met"])
    elif "4" in rows:
        skipped("4", "studio edit latency", "≤ 30 ms")
    r = rows.get("5")
    if r and "results" in r:
        res = r["results"]
        big = max(r["sizes"])
        idle, train = res.get(f"idle:{big}"), res.get(f"training:{big}")
        text = f"{big} nodes: idle ×{idle['ratio_to_empty']:.2f} own {idle['own_ms']:.2f} ms" \
            if idle else ""
        if train:
            text += f"; training ×{train['ratio_to_empty']:.2f} own {train['own_ms']:.2f} ms"
        for name, own in r.get("own_ms_training_imported", {}).items():
            text += f"; {name} training own {own:.2f} ms"
        add("5", "studio frame cost (ratio to empty; own ms)", text, "own ≤ 2 ms training",
            r["met"])
    elif "5" in rows:
        skipped("5", "studio frame cost", "own ≤ 2 ms")
    r = rows.get("6")
    if r and "ratio" in r:
        add("6", "studio training throughput vs dprog train",
            f"{r['ratio']:.3f} ({r['studio_seconds'] or 0:.2f} s vs {r['headless_seconds'] or 0:.2f} s"
            f", {r['steps']} steps)", "≥ 0.90", r["met"])
    elif "6" in rows:
        skipped("6", "studio training throughput", "≥ 0.90")
    r = rows.get("7")
    if r and "train_cli" in r:
        ff = f"first frame {r['first_frame']:.2f} s, " if r.get("first_frame") else ""
        add("7", "cold start (torch import beside)",
            f"{ff}trained moons_mlp {r['train_cli']:.1f} s ({r['train_cli_1_thread']:.1f} s at 1 "
            f"thread); torch import {r['torch_import']:.2f} s, python {r['python']:.2f} s",
            "first frame without torch", r["met"])
    elif "7" in rows:
        skipped("7", "cold start", "first frame without torch")
    r = rows.get("8")
    if r and "peak_rss_mib" in r:
        add("8", f"studio peak memory, {r['size']} nodes",
            f"{r['peak_rss_mib']:.0f} MiB (empty graph {r['empty_rss_mib']:.0f} MiB)", "report",
            None)
    elif "8" in rows:
        skipped("8", "studio peak memory", "report")
    r = rows.get("9")
    if r and "switch" in r:
        sw = r["switch"]
        first = next(iter(sw.values()))
        deployed = r["deployed"].get("adaptive_depth", {})
        add("9", "traced path in eager; deployed vs eager (adaptive_depth)",
            f"switch ×{first['switch']:.3f} (noise ±{abs(first['noise'] - 1):.3f}); masked÷exit "
            + "/".join(f"{v['masked_vs_early_exit']:.2f}" for v in sw.values())
            + f"; cond÷if {r['cond_vs_if']:.0f}; onnxruntime ×{deployed.get('onnx_vs_eager_b64', 0):.2f}"
            f", pt2 ×{deployed.get('pt2_vs_eager_b64', 0):.2f} (b64)", "report", None)
    elif "9" in rows:
        skipped("9", "traced path and deployed models", "report")
    r = rows.get("11")
    if r and "graphs" in r:
        g = r["graphs"]
        add("11", "experiments: wire inspection and profile mode per step",
            "inspect ×" + "/".join(f"{v['inspect_ratio']:.2f}" for v in g.values())
            + ", profile ×" + "/".join(f"{v['profile_ratio']:.2f}" for v in g.values())
            + f" ({'/'.join(g)}); taps when off: "
            + str(sum(v["off_tapped_calls"] for v in g.values())),
            "off: 0 taps; on: report", r["off_free"])
    elif "11" in rows:
        skipped("11", "experiments: inspection and profiling", "off: 0 taps; on: report")
    return out


def print_table(entries: list[dict]) -> None:
    widths = [3, max(len(e["what"]) for e in entries), max(len(e["result"]) for e in entries),
              max(len(e["target"]) for e in entries), 6]
    header = ("#", "what", "result", "target", "status")
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for e in entries:
        cells = (e["row"], e["what"], e["result"], e["target"], e["status"])
        print(" | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))


def details(rows: dict) -> None:
    from bench import compiled, engine_scaling

    if "graphs" in rows.get("1", {}):
        print("\nRow 1: compiled vs hand-written twin, ms per training step")
        print("\n".join(compiled.table(rows["1"])))
    if "graphs" in rows.get("2", {}):
        r = rows["2"]
        k = r["default_k"]
        print(f"\nRow 2: gradient-flow overhead ({r['rounds']} rounds of {r['block_steps']} steps)")
        print(f"{'graph':<14}{'step ms':>9}{f'K={k}':>9}{'K=1':>9}")
        for name, g in r["graphs"].items():
            print(f"{name:<14}{g['step_ms']:>9.3f}{g['ratio_default']:>9.3f}"
                  f"{g['ratio_every_step']:>9.3f}")
    if "graphs" in rows.get("3", {}):
        print("\nRow 3: " + "\n".join(engine_scaling.table(rows["3"])))
    if "switch" in rows.get("9", {}):
        from bench import deploy

        print("\nRow 9: the traced path in eager code, and deployed models")
        print("\n".join(deploy.table(rows["9"])))
    if "graphs" in rows.get("11", {}):
        from bench import experiments

        print("\nRow 11: wire inspection and profile mode (per-step ratios to plain)")
        print("\n".join(experiments.table(rows["11"])))
    r = rows.get("5", {})
    if "results" in r:
        print(f"\nRow 5: studio frames ({r['rounds']} rounds of {r['frames_per_block']} frames)")
        print(f"{'':<16}{'frame ms':>10}{'× empty':>9}{'own ms':>9}")
        for key, v in r["results"].items():
            print(f"{key:<16}{v['frame_ms']:>10.2f}{v['ratio_to_empty']:>9.2f}{v['own_ms']:>9.3f}")
        for note in r.get("notes", []):
            print("  note:", note)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds: under a minute for "
                   "rows 1, 3 and 7's CLI part, a few minutes for everything")
    p.add_argument("--smoke", action="store_true", help="everything tiny: checks the suite runs")
    p.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows (default: all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the training rows "
                   "(default 1: steadier on a shared machine; 0 keeps torch's default)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results.json"),
                   help="where to write the results (default bench/results.json)")
    args = p.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        p.error(f"unknown rows: {', '.join(unknown)}")
    screen = bool(shutil.which("Xvfb") and shutil.which("xdotool"))
    mode = {"quick": args.quick or args.smoke, "smoke": args.smoke, "threads": args.threads or None,
            "screen": screen}

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    results: dict = {"suite": "dprog bench", "mode": "smoke" if args.smoke else
                     "quick" if args.quick else "full", "started": time.strftime(
                         "%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                     "machine": machine(), "git": git_commit(),
                     "torch_threads": torch.get_num_threads(), "rows": {}}
    runners = {"1": row1, "2": row2, "3": row3, "7": row7, "9": row9, "11": row11}
    for row in rows:
        if row in STUDIO_ROWS:
            continue
        print(f"row {row}…", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            results["rows"][row] = runners[row](mode)
        except Exception as e:   # one broken row must not lose the others
            results["rows"][row] = {"error": f"{type(e).__name__}: {e}"[-3000:]}
        results["rows"][row]["seconds"] = time.perf_counter() - t
    wanted = STUDIO_ROWS & set(rows)
    if wanted:
        if not screen:
            for row in wanted:
                results["rows"][row] = {"skipped": "needs Xvfb and xdotool"}
        else:
            print(f"rows {', '.join(sorted(wanted))} (studio)…", file=sys.stderr, flush=True)
            t = time.perf_counter()
            try:
                results["rows"].update(studio_rows(mode, wanted))
            except Exception as e:
                for row in wanted:
                    results["rows"][row] = {"error": f"{type(e).__name__}: {e}"[-3000:]}
            for row in wanted:
                results["rows"][row]["seconds"] = time.perf_counter() - t
    results["rows"] = dict(sorted(results["rows"].items()))
    results["seconds"] = time.time() - started
    results["summary"] = summary(results["rows"])
    print(f"\ndprog bench ({results['mode']}), {results['machine']['cpu']}, "
          f"{results['machine']['cores']} cores, Python {results['machine']['python']}, torch "
          f"{results['machine']['torch']} ({results['torch_threads']} thread"
          f"{'s' if results['torch_threads'] != 1 else ''}), commit "
          f"{(results['git']['commit'] or '?')[:10]}{' + changes' if results['git']['dirty'] else ''}")
    print_table(results["summary"])
    details(results["rows"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"\nwrote {out} ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
