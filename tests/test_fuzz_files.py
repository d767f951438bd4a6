"""Fuzzing the files dprog reads besides graphs: recovery files, run folders and data files,
as tests/test_fuzz_graphs.py fuzzes graph files; and kill tests for run folders, as
tests/test_crash_safety.py has for graph files.

The only allowed outcomes, each case under a time limit:
- a recovery file: offered (its graph then saves back as UTF-8), or set aside with its bytes
  kept and a one-line problem; never an exception;
- a run folder: resumed, or one CheckpointError line that never repeats torch's
  weights_only advice; through `dprog train --resume`, exit 0, 1 or 2 with one line;
- a data file: a Dataset that satisfies its own invariants, or a DatasetError.
Cases come from tests/fuzzing/files.py, seeded, so a failure names a reproducible case.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fuzzing.crash import group_kill_loop
from fuzzing.files import DATA_CASES, damage_zip, recovery_case, state_case
from fuzzing.generate import corrupt_text
from helpers import REPO, moons_graph, subprocess_env

from app.recovery import RECOVERY_FORMAT, Recovery
from engine.cli import main
from engine.core.fileformat import atomic_write_all, dumps, save_graph
from engine.data.datasets import Dataset, DatasetError, load_dataset
from engine.runtime.checkpoint import (
    STATE,
    CheckpointError,
    load_state,
    restore,
    tensor_bytes,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FILES = ("weights.pt", "state.pt", "graph.json", "config.json", "model.py")


# --- recovery files --------------------------------------------------------------------


def good_recovery() -> dict:
    graph = moons_graph()
    return {"format": RECOVERY_FORMAT, "version": 1, "file": "/tmp/work.json",
            "file_stamp": 1, "saved_at": 1_700_000_000.0, "graph": dumps(graph)}


@pytest.mark.parametrize("group", range(6))
def test_damaged_recovery_files(tmp_path, group):
    """240 damaged recovery files: never an exception, and never a damaged one left in place."""
    rng = random.Random(9_000 + group)
    good = good_recovery()
    for i in range(40):
        text, how = recovery_case(rng, good)
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        data = text.encode("utf-8", "surrogatepass")
        (folder / "recovery.json").write_bytes(data)
        recovery = Recovery(folder)
        pending = recovery.pending()
        kept = list(folder.glob("recovery.damaged-*.json"))
        if pending is not None:
            dumps(pending.graph).encode("utf-8")   # what is offered can be saved
            assert kept == [] and recovery.problem is None, how
        elif kept:
            assert kept[0].read_bytes() == data and "damaged" in recovery.problem, how
            assert "\n" not in recovery.problem, how
            assert Recovery(folder).pending() is None   # the next start is clean
        else:   # not offered because its file changed: only a valid file gets here
            assert recovery.problem is None and (folder / "recovery.json").exists(), how


# --- run folders -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz_run") / "run"
    graph = out.parent / "tiny.json"
    save_graph(moons_graph(epochs=100_000), graph)
    assert main(["train", str(graph), "--out", str(out), "--steps", "3", "--quiet",
                 "--device", "cpu"]) == 0
    return out


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in FILES:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def model_and_optimizer(folder: Path):
    from engine.core.fileformat import load_graph
    from engine.runtime.compiler import compile_graph

    module = compile_graph(load_graph(folder / "graph.json"))
    return module, torch.optim.Adam(module.parameters())


def test_damaged_states_are_refused_in_one_line(tmp_path, run_folder):
    """200 states with a field swapped for a hostile value, and 100 with damaged bytes:
    load_state and restore either work, and then a step works too, or raise CheckpointError,
    in one clean line."""
    rng = random.Random(11)
    state = torch.load(run_folder / STATE, weights_only=True)
    good = (run_folder / STATE).read_bytes()
    folder = copy_run(run_folder, tmp_path / "run")
    outcomes = {"ok": 0, "refused": 0}
    for i in range(300):
        if i < 200:
            damaged, how = state_case(rng, state, torch)
            try:
                data = tensor_bytes(damaged)
            except Exception:   # torch cannot even save it: nothing to test
                continue
        else:
            data, how = damage_zip(rng, good)
        (folder / STATE).write_bytes(data)
        module, optimizer = model_and_optimizer(folder)
        try:
            restore(load_state(folder), module, optimizer)
        except CheckpointError as e:
            message = str(e)
            assert "\n" not in message and "weights_only" not in message, (how, message)
            assert len(message) < 1000, (how, message)
            outcomes["refused"] += 1
            continue
        # What was restored must train: a damaged optimizer setting or a negative Adam step
        # used to pass here and fail (or go complex) at the first step.
        module(torch.randn(4, 2)).sum().backward()
        optimizer.step()
        outcomes["ok"] += 1
    assert outcomes["refused"] > 150, outcomes


def test_damaged_run_folders_resume_or_say_why(tmp_path, run_folder, capsys):
    """Damage to every file of a run folder, through `dprog train --resume`."""
    rng = random.Random(12)
    for i in range(18):
        folder = copy_run(run_folder, tmp_path / f"run{i}")
        name = FILES[i % len(FILES)]
        path = folder / name
        if name.endswith(".pt"):
            data, how = damage_zip(rng, path.read_bytes())
            path.write_bytes(data)
        else:
            text, how = corrupt_text(rng, path.read_text())
            path.write_bytes(text.encode("utf-8", "surrogatepass"))
        code = main(["train", "--resume", str(folder), "--steps", "4", "--quiet",
                     "--device", "cpu"])
        err = capsys.readouterr().err
        assert code in (0, 1, 2), (name, how, err)
        assert "Traceback" not in err and "weights_only" not in err, (name, how, err)
        if code:
            assert len(err.strip().splitlines()) == 1, (name, how, err)


# --- data files ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(DATA_CASES))
def test_damaged_data_files(tmp_path, fmt):
    """150 damaged files of each format: a Dataset or a DatasetError, each in a second."""
    import numpy as np

    rng = random.Random(13 + len(fmt))
    np.save(tmp_path / "targets.npy", np.arange(40) % 2)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(150):
        data, how = DATA_CASES[fmt](rng)
        path = tmp_path / f"case{i}.{fmt}"
        path.write_bytes(data)
        spec = {"name": fmt, "path": str(path)}
        if fmt == "npy":
            spec["targets"] = str(tmp_path / "targets.npy")
        try:
            dataset = load_dataset(spec)
            assert isinstance(dataset, Dataset)
            outcomes["loaded"] += 1
        except DatasetError as e:
            assert str(e), how
            outcomes["refused"] += 1
    assert outcomes["refused"] > 30, outcomes


# --- kills while a run folder is written -------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the kill test forks writers")
def test_sigkill_while_a_checkpoint_is_written(tmp_path, run_folder):
    """100 kills of writers saving a whole checkpoint (five files, a few hundred KiB): every
    file is always one version or the other, and state.pt, renamed last, is new only when
    everything is."""
    versions = []
    for tag in (0, 1):
        # Every file differs between the versions; weights.pt is big enough to take time.
        files = {name: (run_folder / name).read_bytes() + b" " * (tag + 1) for name in FILES}
        files["weights.pt"] += bytes(200_000 * (tag + 1))
        versions.append({name: files[name] for name in FILES if name != STATE}
                        | {STATE: files[STATE]})
    stats = group_kill_loop(tmp_path, versions, kills=100, seed=3)
    assert stats["kills"] == 100
    # The kills must land inside the writing too, not only between whole saves.
    assert stats.get("mid_renames", 0) + stats.get("renamed_0", 0) >= 10, stats
    # One more save, by anyone, and no temporary file of a dead writer is left.
    atomic_write_all([(tmp_path / "run" / name, data) for name, data in versions[0].items()])
    assert sorted((tmp_path / "run").glob(".*.tmp")) == []


def test_sigterm_at_random_moments_always_leaves_a_folder_that_resumes(tmp_path, capsys):
    graph_file = tmp_path / "tiny.json"
    save_graph(moons_graph(epochs=100_000), graph_file)
    rng = random.Random(4)
    for round_ in range(2):
        out = tmp_path / f"run{round_}"
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "train", str(graph_file), "--out", str(out),
             "--checkpoint-every", "1", "--quiet", "--device", "cpu"], cwd=REPO,
            env=subprocess_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while not (out / STATE).exists():
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.5))
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 143, err
        assert sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) == []
        step = load_state(out)["step"]
        for line in (out / "metrics.jsonl").read_text().splitlines():
            assert json.loads(line)["step"] <= step
        assert main(["train", "--resume", str(out), "--steps", str(step + 1), "--quiet"]) == 0
        capsys.readouterr()
