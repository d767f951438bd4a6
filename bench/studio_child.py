"""The studio side of rows 4-8: run in a subprocess on a virtual screen by bench/studio.py.

    python -m bench.studio_child MODE JSON-ARGS      # prints one JSON line: the measurements

Modes:
- first_frame {graph}: `dprog GRAPH` itself (engine.cli.main), observed: the wall-clock time
  of its first rendered frame, and whether torch was imported by then.
- edit {size, rounds}: one SetParam on a {size}-node chain with the Code tab showing: the
  `AppState.do` plus the studio's own work (`step()`) in each frame until its code panel shows
  the new code (the editor, inspector and problems redraw in the edit's frame, the code panel
  a frame or so later); renders in between are timed apart.
- frames {sizes, rounds, frames, training}: whole-frame time and the studio's own time
  (`step()`, outside `render_dearpygui_frame`) for chains of each size, opened in turn in one
  studio, idle and (when asked) while the chain trains.
- train {graph}: press Train with the Training tab showing, run frames paced like the
  studio's own loop (60 fps cap) until the run ends, report the trainer's
  seconds.
- memory {size, seconds}: peak RSS after showing a {size}-node chain for a while (with
  the Code tab showing, torch loaded in the background as usual).
- headless_train {graph, out}: `dprog train GRAPH` itself (engine.cli.main), observed: the
  trainer's seconds, for row 6's comparison (needs no screen).

The studio is driven through its public build/step API (`app.studio.build_studio`,
`Studio.step`, `Studio.frame`), the same one the GUI tests use.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FPS = 60.0


def _emit(result: dict) -> None:
    sys.stdout.write("BENCH-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def first_frame(args: dict) -> None:
    import dearpygui.dearpygui as dpg

    render = dpg.render_dearpygui_frame

    def observed() -> None:
        render()
        _emit({"first_frame_at": time.time(), "torch_loaded": "torch" in sys.modules,
               "engine_train_loaded": "engine.runtime.trainer" in sys.modules})
        os._exit(0)

    dpg.render_dearpygui_frame = observed
    from app.main import main

    main([args["graph"]])


def _studio(graph, *, width: int = 1600, height: int = 1000):
    from app.studio import build_studio

    return build_studio(graph, width=width, height=height)


def _show_tab(studio, tabs: str, tab: str) -> None:
    import dearpygui.dearpygui as dpg

    dpg.set_value(getattr(studio, tabs), getattr(studio, tab))


def edit(args: dict) -> None:
    """One SetParam, then the studio's frames until its code panel shows the new code.

    The studio redraws the editor, inspector and problems in the frame of the edit and lets
    the code panel catch up in a later frame (app/views/code.py), so the edit's cost is the
    `do` plus the studio's own work (`step()`) in every frame until the panel's lines hold
    the new code; renders between those frames, and the panel's rate limit, are not the
    edit's work and are reported apart (`code_wall_ms`: from `do` to the panel caught up).
    """
    import dearpygui.dearpygui as dpg

    from app.commands import SetParam
    from bench.graphs import chain
    from engine.core.analysis import analyze
    from engine.core.codegen import generate

    size, rounds = args["size"], args["rounds"]
    studio = _studio(chain(size))
    _show_tab(studio, "right_tabs", "code_tab")
    linears = [n.id for n in studio.state.graph.nodes if n.type == "linear"]
    target = linears[len(linears) // 2]
    studio.state.select([target])   # the inspector shows the node being edited
    for _ in range(5):
        studio.frame()
        time.sleep(0.2)

    def code_shows(value: int) -> bool:
        want = f"self.{target} = nn.Linear(in_features=16, out_features={value})"
        return any(line.strip() == want for line in studio.code.texts)

    do_ms, first_ms, work_ms, wall_ms, render_ms, engine_ms, frames_needed = [], [], [], [], [], [], []
    for i in range(rounds):
        value = 17 if i % 2 == 0 else 16    # a new width: new shapes downstream, new code
        time.sleep(0.25)   # past the code panel's rate limit, as after a pause in typing
        start = time.perf_counter()
        ok = studio.state.do(SetParam((), target, "out_features", value))
        done = time.perf_counter()
        if not ok:
            raise RuntimeError(f"SetParam was rejected: {studio.state.status}")
        work = done - start
        steps = 0
        while True:
            t = time.perf_counter()
            studio.step()
            stepped = time.perf_counter()
            work += stepped - t
            steps += 1
            if steps == 1:
                first_ms.append(1000 * (done - start + stepped - t))
            if code_shows(value) or steps >= 50:
                break
            dpg.render_dearpygui_frame()
            render_ms.append(1000 * (time.perf_counter() - stepped))
        wall_ms.append(1000 * (time.perf_counter() - start))
        dpg.render_dearpygui_frame()
        do_ms.append(1000 * (done - start))
        work_ms.append(1000 * work)
        frames_needed.append(steps)
        # What the engine alone takes for this graph, without a cache (outside the window).
        graph = studio.state.graph
        t = time.perf_counter()
        generate(graph, analyze(graph))
        engine_ms.append(1000 * (time.perf_counter() - t))
    _emit({"size": size, "rounds": rounds, "edit_ms": statistics.median(work_ms),
           "do_ms": statistics.median(do_ms), "first_frame_ms": statistics.median(first_ms),
           "code_wall_ms": statistics.median(wall_ms),
           "frames_until_code": statistics.median(frames_needed),
           "render_ms": statistics.median(render_ms) if render_ms else None,
           "engine_uncached_ms": statistics.median(engine_ms),
           "code_updated": all(n < 50 for n in frames_needed),
           "all_edit_ms": [round(t, 2) for t in work_ms]})
    studio.close()


def _timed_frames(studio, n: int) -> tuple[list[float], list[float]]:
    """n frames of the studio's own loop, paced like it: (frame seconds, own seconds) each."""
    import dearpygui.dearpygui as dpg

    frames, own = [], []
    for _ in range(n):
        budget = 1.0 / FPS
        start = time.perf_counter()
        studio.step()
        stepped = time.perf_counter()
        dpg.render_dearpygui_frame()
        end = time.perf_counter()
        frames.append(end - start)
        own.append(stepped - start)
        spare = budget - (end - start)
        if spare > 0:
            time.sleep(spare)
    return frames, own


def _wait(predicate, timeout: float, studio) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        studio.frame()
        time.sleep(0.01)
    return False


def frames(args: dict) -> None:
    from app.training import ACTIVE, RUNNING
    from bench.graphs import imported_vision, trainable_chain
    from engine.core.fileformat import save_graph

    sizes, rounds, n = args["sizes"], args["rounds"], args["frames"]
    folder = Path(tempfile.mkdtemp(prefix="dprog-bench-"))
    paths = {}
    for size in sizes:
        if size:
            paths[size] = folder / f"chain{size}.json"
            save_graph(trainable_chain(size, name=f"chain{size}"), paths[size])
    for name in args.get("imported", []):   # keyed by name beside the chains' sizes
        sizes = [*sizes, name]
        paths[name] = folder / f"{name}.json"
        save_graph(imported_vision(name), paths[name])
    studio = _studio(None)
    _show_tab(studio, "dock_tabs", "metrics_tab")
    _wait(lambda: studio.torch_ready, 120.0, studio)   # the background import, as users get it
    run = studio.run
    samples: dict = {f"{mode}:{s}": {"frame": [], "own": []} for s in sizes
                     for mode in ("idle", "training")}
    notes: list[str] = []
    for r in range(rounds):
        order = sizes if r % 2 == 0 else sizes[::-1]
        for size in order:
            if size:
                studio.state.open(paths[size])
            else:
                studio.state.new()
            studio.fit_view()
            for _ in range(10):   # the rebuild and first draws of a new document
                studio.frame()
            f, o = _timed_frames(studio, n)
            samples[f"idle:{size}"]["frame"].append(statistics.median(f))
            samples[f"idle:{size}"]["own"].append(statistics.median(o))
            if not (args["training"] and size):
                continue
            studio.train()
            if not _wait(lambda: run.status == RUNNING and run.step >= 20, 300.0, studio):
                notes.append(f"{size} nodes: training did not get going ({run.status}: "
                             f"{run.message})")
                run.stop()
                _wait(lambda: run.status not in ACTIVE, 60.0, studio)
                continue
            for _ in range(5):
                studio.frame()
            f, o = _timed_frames(studio, n)
            if run.status != RUNNING:
                notes.append(f"{size} nodes: the run ended while measuring ({run.status}: "
                             f"{run.message})")
            samples[f"training:{size}"]["frame"].append(statistics.median(f))
            samples[f"training:{size}"]["own"].append(statistics.median(o))
            run.stop()
            _wait(lambda: run.status not in ACTIVE, 60.0, studio)
    _emit({"sizes": sizes, "rounds": rounds, "frames_per_block": n, "samples": samples,
           "notes": notes})
    studio.close()


def train(args: dict) -> None:
    from app.training import ACTIVE, FINISHED
    from engine.core.fileformat import load_graph

    graph = load_graph(args["graph"])
    studio = _studio(graph)
    _show_tab(studio, "dock_tabs", "metrics_tab")
    _wait(lambda: studio.torch_ready, 120.0, studio)
    run = studio.run
    studio.train()
    frames_ms, own_ms = [], []
    deadline = time.monotonic() + args.get("timeout", 600)
    while run.status in ACTIVE and time.monotonic() < deadline:
        f, o = _timed_frames(studio, 1)
        frames_ms.append(1000 * f[0])
        own_ms.append(1000 * o[0])
    for _ in range(3):
        studio.frame()
    _emit({"status": run.status, "finished": run.status == FINISHED,
           "seconds": run.finished_seconds, "steps": run.step, "message": run.message,
           "frames": len(frames_ms), "frame_ms": statistics.median(frames_ms) if frames_ms else None,
           "own_ms": statistics.median(own_ms) if own_ms else None,
           "grad_snapshots": run.grad_version, "recolors": studio.gradients.recolors,
           "plot_updates": studio.run_panel.plot_updates})
    studio.close()


def memory(args: dict) -> None:
    from bench.graphs import chain

    graph = chain(args["size"]) if args["size"] else None
    studio = _studio(graph)
    _show_tab(studio, "right_tabs", "code_tab")
    deadline = time.monotonic() + args["seconds"]
    count = 0
    while time.monotonic() < deadline or not studio.torch_ready:
        studio.frame()
        count += 1
        time.sleep(0.005)
        if time.monotonic() > deadline + 120:
            break
    status = _proc_status()
    _emit({"size": args["size"], "peak_rss_mib": status.get("VmHWM", 0) / 1024,
           "rss_mib": status.get("VmRSS", 0) / 1024,
           "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "frames": count, "torch_loaded": "torch" in sys.modules})
    studio.close()


def headless_train(args: dict) -> None:
    """`dprog train GRAPH` itself (engine.cli.main), observed: the trainer's seconds."""
    import engine.runtime.trainer as train_module

    run = train_module.Trainer.run
    ends: list = []

    def observed(self):
        end = run(self)
        ends.append(end)
        return end

    train_module.Trainer.run = observed
    from engine.cli import main

    code = main(["train", args["graph"], "--quiet", "--out", args["out"]])
    end = ends[-1] if ends else None
    _emit({"exit": code, "seconds": getattr(end, "seconds", None),
           "steps": getattr(end, "step", None), "kind": type(end).__name__})


def _proc_status() -> dict[str, int]:
    """VmHWM (peak resident set), VmRSS and friends from /proc/self/status, in KiB."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


MODES = {"first_frame": first_frame, "edit": edit, "frames": frames, "train": train,
         "memory": memory, "headless_train": headless_train}

if __name__ == "__main__":
    MODES[sys.argv[1]](json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
