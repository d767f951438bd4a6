"""The long fuzz run over graph files: `python bench/fuzz.py --cases 100000`.

Each case is a graph file from tests/fuzzing/generate.py (grown valid graphs and mutants of
them, mutated sample files, corrupted text), judged by tests/fuzzing/pipeline.py: the only
allowed outcomes are a clean GraphFileError, error diagnostics, or a graph that compiles
and runs its forward pass with the promised shapes. Anything else is a failure.

Cases run in worker processes (--workers, default: all cores). Each case has a soft time
limit (SIGALRM in the worker, reported as a hang) and a hard one: a worker stuck past it
(say in C code that never returns to Python) is killed with SIGKILL, the case is recorded
as a hang, and a fresh worker takes over. Workers run under an address-space limit
(--memory-gib), so an allocation the caps should have refused fails loudly instead of
swapping the machine.

Resumable: every finished group of cases is appended to --log (JSON lines); stop it with
SIGTERM or Ctrl-C, and --resume reads the log back and runs only the groups not yet done. Failing cases are written to
--out/failures/ as files `dprog check` and `--reproduce GROUP:INDEX` can replay.

Output: cases tried, failures, throughput, and a summary by outcome and by case source.

`--files N` fuzzes the other files dprog reads instead (recovery files, states, data files;
tests/fuzzing/files.py), in this process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUP_SIZE = 5          # cases per group: one grown graph, its mutants, other kinds


def _paths() -> None:
    for p in (ROOT, ROOT / "tests"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def group_cases(seed: int, group: int):
    """The cases of one group, and the routes each takes: reproducible from (seed, group)."""
    from fuzzing.generate import make_cases

    rng = random.Random(seed * 1_000_003 + group)
    cases = make_cases(rng, GROUP_SIZE)
    # The extra routes (file, CLI, round trip) load the file again; sample them.
    routes = [dict(files=rng.random() < 0.1, cli=rng.random() < 0.1, roundtrip=rng.random() < 0.2)
              for _ in cases]
    return cases, routes


def _worker(wid: int, seed: int, tasks, results, soft_s: float, memory_gib: float) -> None:
    import resource
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent handles Ctrl-C
    if memory_gib > 0:
        limit = int(memory_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _paths()
    os.environ["OMP_NUM_THREADS"] = "1"
    from fuzzing.pipeline import FuzzBug, judge, quiet_torch

    quiet_torch()
    while True:
        task = tasks.get()
        if task is None:
            return
        group, start = task
        try:
            cases, routes = group_cases(seed, group)
        except Exception as e:   # the generator itself failed: a harness bug, say so
            results.put(("generator", wid, group, 0, f"{type(e).__name__}: {e}"))
            results.put(("group_done", wid, group, start, None))
            continue
        for i in range(start, len(cases)):
            case = cases[i]
            results.put(("start", wid, group, i, time.monotonic()))
            try:
                outcome = judge(case.text, case.data, seconds=soft_s, **routes[i])
                results.put(("done", wid, group, i, [case.source.split(":")[0], outcome.kind]))
            except FuzzBug as bug:
                results.put(("bug", wid, group, i, {
                    "stage": bug.stage, "detail": bug.detail[:4000], "source": case.source,
                    "mutations": case.mutations, "text": case.text if case.data is None else None,
                    "data_hex": case.data.hex() if case.data is not None else None}))
            except MemoryError as e:
                results.put(("bug", wid, group, i, {"stage": "memory", "detail": str(e)[:500],
                                                    "source": case.source,
                                                    "mutations": case.mutations, "text": case.text}))
        results.put(("group_done", wid, group, start, None))


class Run:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.log = Path(args.log) if args.log else self.out / f"fuzz-seed{args.seed}.jsonl"
        self.outcomes: Counter = Counter()
        self.by_source: Counter = Counter()
        self.failures: list[dict] = []
        self.done_groups: set[int] = set()
        self.cases = 0
        self.pending: dict[int, dict] = {}   # group -> partial record

    def resume(self) -> None:
        if not self.log.exists():
            return
        for line in self.log.read_text().splitlines():
            rec = json.loads(line)
            self.done_groups.add(rec["group"])
            self.count(rec)

    def count(self, rec: dict) -> None:
        for src, kind in rec["outcomes"]:
            self.outcomes[kind] += 1
            self.by_source[(src, kind)] += 1
            self.cases += 1
        for f in rec["failures"]:
            self.outcomes["FAILURE"] += 1
            self.cases += 1
            self.failures.append(f)

    def record(self, group: int) -> dict:
        return self.pending.setdefault(group, {"group": group, "outcomes": [], "failures": []})

    def save_failure(self, group: int, index: int, info: dict) -> dict:
        folder = self.out / "failures"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"seed{self.args.seed}-g{group}-c{index}.json"
        if info.get("text") is not None:
            path.write_text(info["text"], encoding="utf-8", errors="surrogatepass")
        elif info.get("data_hex"):
            path.write_bytes(bytes.fromhex(info["data_hex"]))
        return {"group": group, "index": index, "file": str(path),
                **{k: v for k, v in info.items() if k not in ("text", "data_hex")}}

    def finish_group(self, group: int) -> None:
        rec = self.pending.pop(group, {"group": group, "outcomes": [], "failures": []})
        self.done_groups.add(group)
        self.count(rec)
        with self.log.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def go(self) -> int:
        args = self.args
        _paths()
        self.out.mkdir(parents=True, exist_ok=True)
        if args.resume:
            self.resume()
        elif self.log.exists():
            self.log.unlink()
        groups_needed = -(-args.cases // GROUP_SIZE)
        todo = [g for g in range(groups_needed) if g not in self.done_groups]
        print(f"fuzz: {len(todo) * GROUP_SIZE} cases to run ({self.cases} already logged), "
              f"{args.workers} workers, seed {args.seed}, log {self.log}", flush=True)
        ctx = mp.get_context("spawn")
        tasks, results = ctx.Queue(), ctx.Queue()
        workers: dict[int, mp.Process] = {}
        current: dict[int, tuple[int, int, float]] = {}   # wid -> (group, index, started)
        next_wid = 0

        def spawn() -> None:
            nonlocal next_wid
            p = ctx.Process(target=_worker, args=(next_wid, args.seed, tasks, results,
                                                  args.timeout, args.memory_gib), daemon=True)
            p.start()
            workers[next_wid] = p
            next_wid += 1

        for g in todo:
            tasks.put((g, 0))
        for _ in range(args.workers):
            spawn()
        t0 = time.monotonic()
        deadline = t0 + args.minutes * 60 if args.minutes else None

        def stop(signum, frame):   # SIGTERM (or SIGINT, ignored in background jobs) ends it
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        last_print = t0
        remaining = set(todo)
        stopping = False
        try:
            while remaining and workers:
                now = time.monotonic()
                if deadline and now > deadline and not stopping:
                    stopping = True
                    print("fuzz: time budget spent; finishing the groups in flight", flush=True)
                    while True:   # drop what has not started
                        try:
                            g, _ = tasks.get_nowait()
                            remaining.discard(g)
                        except queue.Empty:
                            break
                try:
                    msg = results.get(timeout=1.0)
                except queue.Empty:
                    msg = None
                if msg is not None:
                    kind, wid, group, index, payload = msg
                    if kind == "start":
                        current[wid] = (group, index, time.monotonic())
                    elif kind == "done":
                        self.record(group)["outcomes"].append(payload)
                        current.pop(wid, None)
                    elif kind == "bug":
                        f = self.save_failure(group, index, payload)
                        self.record(group)["failures"].append(f)
                        current.pop(wid, None)
                        print(f"FAILURE g{group}:{index} [{f['stage']}] "
                              f"{f['detail'].splitlines()[0][:160]}", flush=True)
                    elif kind == "generator":
                        self.record(group)["failures"].append(
                            {"group": group, "index": 0, "stage": "generator", "detail": payload})
                    elif kind == "group_done":
                        self.finish_group(group)
                        remaining.discard(group)
                # Hard timeouts and dead workers.
                for wid, p in list(workers.items()):
                    job = current.get(wid)
                    stuck = job and time.monotonic() - job[2] > args.timeout + args.grace
                    if stuck or not p.is_alive():
                        if p.is_alive():
                            p.kill()
                        p.join(5)
                        del workers[wid]
                        current.pop(wid, None)
                        if job:
                            group, index, _ = job
                            cases, _routes = group_cases(args.seed, group)
                            case = cases[index]
                            info = {"stage": "hang" if stuck else "died",
                                    "detail": f"worker {'killed after' if stuck else 'died at'} "
                                              f"{time.monotonic() - job[2]:.0f} s "
                                              f"(exit code {p.exitcode})",
                                    "source": case.source, "mutations": case.mutations,
                                    "text": case.text}
                            f = self.save_failure(group, index, info)
                            self.record(group)["failures"].append(f)
                            print(f"FAILURE g{group}:{index} [{info['stage']}] {info['detail']}",
                                  flush=True)
                            if index + 1 < GROUP_SIZE:
                                tasks.put((group, index + 1))
                            else:
                                self.finish_group(group)
                                remaining.discard(group)
                        if remaining and not stopping:
                            spawn()
                if time.monotonic() - last_print > args.progress:
                    last_print = time.monotonic()
                    self.progress(t0)
        except KeyboardInterrupt:
            print("fuzz: interrupted; the log keeps what finished (--resume goes on)", flush=True)
        finally:
            for _ in workers:
                tasks.put(None)
            for p in workers.values():
                p.join(10)
                if p.is_alive():
                    p.kill()
        self.summary(t0)
        return 1 if self.failures else 0

    def progress(self, t0: float) -> None:
        elapsed = time.monotonic() - t0
        print(f"  {self.cases} cases, {len(self.failures)} failures, {elapsed:.0f} s", flush=True)

    def summary(self, t0: float) -> None:
        elapsed = time.monotonic() - t0
        print()
        print(f"cases tried: {self.cases}")
        print(f"failures:    {len(self.failures)}")
        print(f"wall time this run: {elapsed:.0f} s")
        print("outcomes:")
        for kind in ("unreadable", "invalid", "ok", "FAILURE"):
            n = self.outcomes[kind]
            print(f"  {kind:<11} {n:>7}  ({100 * n / max(1, self.cases):.1f}%)")
        print("by source:")
        for (src, kind), n in sorted(self.by_source.items()):
            print(f"  {src:<7} {kind:<11} {n:>7}")
        if self.failures:
            print("failures by stage and first line:")
            seen = Counter((f["stage"], f["detail"].splitlines()[0][:120] if f["detail"] else "")
                           for f in self.failures)
            for (stage, line), n in seen.most_common():
                print(f"  {n:>5}  [{stage}] {line}")


def caps(args) -> int:
    """Run the graphs that sit just under each analysis cap, at full size, and report their
    peak memory and time at batch size 2 (autograd on) against the analysis's estimate."""
    import tempfile

    _paths()
    from fuzzing.caps import estimate_bytes, measure, near_caps

    with tempfile.TemporaryDirectory() as tmp:
        results = measure(near_caps(args.caps_scale), Path(tmp), timeout=1800)
    worst = 0.0
    for name, r in results.items():
        est = estimate_bytes(r)
        if est > 64 << 20:   # small graphs are all allocator noise
            worst = max(worst, r["peak_bytes"] / est)
        print(f"{name:<12} valid={r['ok']}  params={r['params']:,}  activations/sample="
              f"{r['activations']:,}  macs/sample={r['macs']:,}  estimate={est / 2**30:.2f} GiB  "
              f"peak={r['peak_bytes'] / 2**30:.2f} GiB  time={r['seconds']:.1f} s")
    print(f"worst peak / estimate: {worst:.2f}")
    return 0 if all(r["ok"] for r in results.values()) else 1


def kills(args) -> int:
    """The crash-safety kill test of tests/test_crash_safety.py, with more kills."""
    import tempfile

    _paths()
    from fuzzing.crash import kill_loop

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            stats = kill_loop(Path(tmp), args.kills, seed=args.seed)
        except AssertionError as e:
            print(f"FAILURE: {e}")
            return 1
    print(f"kills: {stats['kills']}, failures: 0, killed mid-write: {stats['kills_mid_write']}, "
          f"file was version 0/1: {stats.get('file_is_version_0', 0)}/"
          f"{stats.get('file_is_version_1', 0)}, most orphaned temp files at once: "
          f"{stats['max_orphans']}, one save takes ~{stats['cycle_ms']} ms, "
          f"{time.monotonic() - t0:.0f} s")
    return 0


def files(args) -> int:
    """The other files dprog reads, `--files N` damaged ones of each kind: recovery files,
    states (each one restored then takes a training step) and CSV, .npy and .npz data; and
    `--kills` more SIGKILLs of checkpoint writers. The promises of tests/test_fuzz_files.py:
    each case loads or is refused with its own error, within --timeout seconds."""
    import tempfile

    _paths()
    with tempfile.TemporaryDirectory() as tmp:
        failures = _fuzz_files(Path(tmp), args.files, args.seed, args.timeout)
    for kind, found in failures.items():
        print(f"{kind}: {args.files} cases, {len(found)} failures")
        for line in found[:5]:
            print(f"  {line}")
    return 1 if any(failures.values()) else 0


def _fuzz_files(tmp: Path, count: int, seed: int, timeout: float) -> dict[str, list[str]]:
    import numpy as np
    import torch
    from fuzzing.files import DATA_CASES, damage_zip, recovery_case, state_case
    from helpers import moons_graph

    from app.recovery import RECOVERY_FORMAT, Recovery
    from engine.cli import main as cli
    from engine.core.fileformat import dumps, load_graph, save_graph
    from engine.data.datasets import DatasetError, load_dataset
    from engine.runtime.checkpoint import STATE, CheckpointError, load_state, restore, tensor_bytes
    from engine.runtime.compiler import compile_graph

    torch.set_num_threads(1)
    failures: dict[str, list[str]] = {}

    def judge(kind: str, how: str, action, allowed) -> None:
        start = time.monotonic()
        try:
            action()
        except allowed:
            pass
        except Exception as e:   # anything else is a bug
            failures[kind].append(f"{how}: {type(e).__name__}: {str(e)[:120]}")
        if time.monotonic() - start > timeout:
            failures[kind].append(f"{how}: took {time.monotonic() - start:.1f} s")

    np.save(tmp / "targets.npy", np.arange(40) % 2)
    for fmt, make in DATA_CASES.items():
        rng, failures[fmt] = random.Random(seed * 7 + len(fmt)), []
        for i in range(count):
            data, how = make(rng)
            path = tmp / f"case.{fmt}"
            path.write_bytes(data)
            spec = {"name": fmt, "path": str(path), **({"targets": str(tmp / "targets.npy")}
                                                       if fmt == "npy" else {})}
            judge(fmt, f"{i} {how}", lambda spec=spec: load_dataset(spec), DatasetError)
    good = {"format": RECOVERY_FORMAT, "version": 1, "file": "/tmp/work.json", "file_stamp": 1,
            "saved_at": 1.7e9, "graph": dumps(moons_graph())}
    rng, failures["recovery"] = random.Random(seed), []
    for i in range(count):
        text, how = recovery_case(rng, good)
        folder = tmp / f"recovery{i}"
        folder.mkdir()
        (folder / "recovery.json").write_bytes(text.encode("utf-8", "surrogatepass"))
        judge("recovery", f"{i} {how}", Recovery(folder).pending, ())
    save_graph(moons_graph(epochs=100_000), tmp / "g.json")
    out = tmp / "run"
    cli(["train", str(tmp / "g.json"), "--out", str(out), "--steps", "3", "--quiet"])
    state, good_bytes = torch.load(out / STATE, weights_only=True), (out / STATE).read_bytes()
    graph = load_graph(out / "graph.json")
    rng, failures["state"] = random.Random(seed), []
    for i in range(count):
        if i % 3:
            damaged, how = state_case(rng, state, torch)
            try:
                data = tensor_bytes(damaged)
            except Exception:
                continue
        else:
            data, how = damage_zip(rng, good_bytes)
        (out / STATE).write_bytes(data)

        def resume_and_step() -> None:
            module = compile_graph(graph)
            optimizer = torch.optim.Adam(module.parameters())
            restore(load_state(out), module, optimizer)
            module(torch.randn(4, 2)).sum().backward()
            optimizer.step()
        judge("state", f"{i} {how}", resume_and_step, CheckpointError)
    return failures


def reproduce(args) -> int:
    _paths()
    from fuzzing.pipeline import FuzzBug, judge

    group, index = (int(x) for x in args.reproduce.split(":"))
    cases, _routes = group_cases(args.seed, group)
    case = cases[index]
    print(f"case g{group}:{index} from {case.source}, mutations {case.mutations}")
    if args.show:
        print(case.text if case.data is None else case.data)
    try:
        print(judge(case.text, case.data, seconds=args.timeout, files=True, cli=True,
                    roundtrip=True))
        return 0
    except FuzzBug as bug:
        print(bug)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases to run (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=60.0, help="soft limit per case, s")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="after the soft limit, seconds before the worker is killed")
    parser.add_argument("--memory-gib", type=float, default=10.0,
                        help="address-space limit per worker (0: none)")
    parser.add_argument("--minutes", type=float, default=0, help="stop after this long (0: never)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--log", default=None, help="JSON-lines log (default: OUT/fuzz-seedN.jsonl)")
    parser.add_argument("--resume", action="store_true", help="skip groups already in the log")
    parser.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("--reproduce", metavar="GROUP:INDEX", help="rerun one case, verbosely")
    parser.add_argument("--show", action="store_true", help="with --reproduce: print the file")
    parser.add_argument("--caps", action="store_true",
                        help="instead of fuzzing: run graphs just under each cap, full size")
    parser.add_argument("--caps-scale", type=float, default=1.0, help="with --caps: fraction of the caps")
    parser.add_argument("--kills", type=int, default=0,
                        help="instead of fuzzing: SIGKILL a saving process this many times")
    parser.add_argument("--files", type=int, default=0, metavar="N",
                        help="instead of graphs: N damaged recovery files, states and data "
                        "files of each kind")
    args = parser.parse_args(argv)
    if args.files:
        return files(args)
    if args.kills:
        return kills(args)
    if args.caps:
        return caps(args)
    if args.reproduce:
        return reproduce(args)
    return Run(args).go()


if __name__ == "__main__":
    raise SystemExit(main())
