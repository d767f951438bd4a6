"""Training faults the shape inference cannot see coming, and runs cut short at any moment.

- Out of memory: a layer whose activations fit the analysis caps per sample, but not this
  machine at this batch size, is caught at run time, reported naming the node and the size
  asked for, and the process goes on training other graphs. The real test runs in a child
  process whose address space is capped (RLIMIT_AS), so torch's own CPU allocator refuses.
- Stop, pause and Ctrl-C at random moments, with a checkpoint written after every step: the
  worker thread always ends, no temp file is left behind, and the run folder always loads and
  resumes. The studio's `TrainingRun` (which owns the worker) is held to the same.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, import_file, moons_graph, next_event, subprocess_env

from app.training import ACTIVE, PAUSED, RUNNING, STOPPED, TrainingRun
from engine.core.events import CheckpointSaved, Failed, Finished, Paused, StepMetrics, Stopped
from engine.core.fileformat import save_graph
from engine.runtime.checkpoint import load_state
from engine.runtime.trainer import (
    Trainer,
    _allocation_size,
    is_out_of_memory,
    train,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trainer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("dprog-trainer", "dprog-train")]


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---- out of memory --------------------------------------------------------------------------------


OOM_CHILD = textwrap.dedent("""
    import json, resource, sys
    sys.path.insert(0, "tests")
    import torch
    from helpers import build
    from engine.runtime.trainer import train

    torch.set_num_threads(1)
    small = build([("x", "input", {"shape": [2]}), ("fc", "linear", {"out_features": 2}),
                   ("logits", "output", {})], ["x -> fc", "fc -> logits"],
                  training={"dataset": {"name": "moons", "n_samples": 200}, "epochs": 1})
    # 1,000,000 values per sample pass every analysis cap; 256 samples of them are 1 GB.
    wide = build([("x", "input", {"shape": [2]}), ("wide", "linear", {"out_features": 1_000_000}),
                  ("fc", "linear", {"out_features": 2}), ("logits", "output", {})],
                 ["x -> wide", "wide -> fc", "fc -> logits"],
                 training={"dataset": {"name": "moons", "n_samples": 600}, "batch_size": 256,
                           "epochs": 1})
    train(small)   # everything imported and warm before the cap
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    limit = size + 600 * 2**20   # room for the weights and their Adam state, not the activations
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    trainer, events = train(wide)
    end = events[-1]
    _, after = train(small)   # the same process goes on
    print(json.dumps({"kind": end.kind, "node": end.node, "message": end.message,
                      "step": end.step, "after": type(after[-1]).__name__}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_out_of_memory_at_run_time_names_the_node_and_the_process_goes_on():
    child = subprocess.run([sys.executable, "-c", OOM_CHILD], capture_output=True, text=True,
                           timeout=300, env=subprocess_env(), cwd=REPO)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["kind"] == "out_of_memory" and report["node"] == "wide", report
    assert report["step"] == 0                                   # no step completed
    assert "node wide: out of memory" in report["message"]
    assert "1.02 GB" in report["message"] and "batch_size (now 256)" in report["message"]
    assert report["after"] == "Finished"
    assert "Traceback" not in child.stderr


def test_a_cuda_style_out_of_memory_in_a_block_is_reported_and_the_weights_kept():
    trainer = Trainer(moons_graph())
    trainer.setup()
    before = {k: v.clone() for k, v in trainer.module.state_dict().items()}

    def exhausted(x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; "
                                     "79.1 GiB total capacity)")

    trainer.module.fc2.forward = exhausted
    end = trainer.run()
    assert isinstance(end, Failed) and end.kind == "out_of_memory" and end.node == "fc2"
    assert end.message.startswith("node fc2: out of memory at step 1 (it asked for 2.00 GiB")
    for k, v in trainer.module.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in trainer.module.parameters())   # released


def test_what_counts_as_out_of_memory():
    cpu = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't "
                       "allocate memory: you tried to allocate 1024000000 bytes. Error code 12")
    assert is_out_of_memory(cpu) and _allocation_size(str(cpu)) == "1.02 GB"
    assert is_out_of_memory(MemoryError()) and _allocation_size("") is None
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert _allocation_size("CUDA out of memory. Tried to allocate 20.00 MiB") == "20.00 MiB"
    assert _allocation_size("you tried to allocate 512 bytes") == "512 bytes"
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))   # only the allocator's errors


# ---- stop, pause, Ctrl-C at any moment --------------------------------------------------------------


def test_stopping_at_random_moments_leaves_a_folder_that_resumes(tmp_path):
    """Checkpoints after every step, so a stop can land while one is being written."""
    rng = random.Random(0)
    graph = moons_graph(epochs=100000)
    for round_ in range(6):
        out = tmp_path / f"run{round_}"
        trainer = Trainer(graph, out_dir=out, checkpoint_every=1)
        trainer.start()
        next_event(trainer.events, CheckpointSaved)
        if round_ % 2:   # half the rounds pause first, then stop while paused
            trainer.pause()
            next_event(trainer.events, Paused)
        time.sleep(rng.uniform(0, 0.05))
        trainer.stop()
        stopped = next_event(trainer.events, Stopped)
        trainer.join(10)
        assert not trainer._thread.is_alive()
        assert temp_files(out) == []
        state = load_state(out, torch.device("cpu"))
        assert int(state["step"]) == stopped.step   # the stop wrote the step it stopped at
        module = import_file(out / "model.py", f"stopped_model_{round_}").Tiny()
        module.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
        resumed, events = train(graph, config_with_steps(graph, stopped.step + 3),
                                out_dir=out, resume_from=out)
        assert isinstance(events[-1], Finished) and resumed.step == stopped.step + 3
    assert trainer_threads() == []


def config_with_steps(graph, steps: int):
    from engine.core.config import TrainingConfig

    return TrainingConfig.from_mapping(graph.training).with_overrides(steps=steps, epochs=1)


def test_ctrl_c_at_random_moments_ends_dprog_train_cleanly(tmp_path):
    graph_file = tmp_path / "tiny.json"
    save_graph(moons_graph(epochs=100000), graph_file)
    rng = random.Random(1)
    for round_ in range(3):
        out = tmp_path / f"run{round_}"
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "train", str(graph_file), "--out", str(out),
             "--checkpoint-every", "1", "--quiet"],
            cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            deadline = time.monotonic() + 120
            while not (out / "state.pt").exists():   # the first checkpoint: training is under way
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "dprog train never checkpointed"
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 0.3))
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 130, err
        assert "stopped at step" in err and "--resume" in err and "Traceback" not in err
        assert temp_files(out) == []
        state = load_state(out, torch.device("cpu"))
        assert int(state["step"]) >= 1
        for line in (out / "metrics.jsonl").read_text().splitlines():
            json.loads(line)   # every line whole


# ---- the studio's side: TrainingRun -------------------------------------------------------------------


def drain_until(run: TrainingRun, done, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"run stuck in {run.status}: {run.message}"
        run.poll()
        time.sleep(0.01)


@pytest.mark.parametrize("when", ["loading", "running", "paused"])
def test_the_studio_run_stops_at_any_moment_and_its_thread_ends(when):
    run = TrainingRun()
    graph = moons_graph(epochs=100000)
    for attempt in range(2):   # and a second run starts fine after the first was stopped
        assert run.start(graph)
        if when != "loading":
            drain_until(run, lambda: run.status == RUNNING and run.step > 0)
        if when == "paused":
            run.pause()
            drain_until(run, lambda: run.status == PAUSED)
        run.stop()
        drain_until(run, lambda: run.status not in ACTIVE)
        assert run.status == STOPPED, run.message
        run.join(10)
        assert not run._thread.is_alive(), f"attempt {attempt}: the worker hung"
    assert trainer_threads() == []


def test_a_step_under_way_finishes_before_the_stop(tmp_path):
    """Stop lands between steps: the step counter never goes back and events stop with it."""
    trainer = Trainer(moons_graph(epochs=100000))
    trainer.start()
    steps = [next_event(trainer.events, StepMetrics).step for _ in range(3)]
    trainer.stop()
    stopped = next_event(trainer.events, Stopped)
    trainer.join(10)
    assert stopped.step >= steps[-1]
    leftovers = []
    while not trainer.events.empty():
        leftovers.append(trainer.events.get_nowait())
    assert leftovers == []   # Stopped is the last word
