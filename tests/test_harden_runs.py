"""`dprog train` and its run folders under faults: signals, a second writer, a full disk,
text or settings that cannot be saved, and damaged checkpoints.

The promise each test holds it to: a run never loses its last complete checkpoint, never
hangs, and always ends with one line that says what was kept and how to go on; a run folder
that resumes always resumes exactly (same step, same weights, logs no longer than the state).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import resource
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import REPO, build, moons_graph, subprocess_env, without_hanging

import engine.core.fileformat as fileformat
from engine.cli import main
from engine.core.fileformat import save_graph
from engine.runtime.checkpoint import (
    STATE,
    CheckpointError,
    RunLock,
    load_state,
    save_run,
    tensor_bytes,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FILES = ("weights.pt", "state.pt", "graph.json", "config.json", "model.py")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".cut")))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES}


def train_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["train", *args, "--quiet", "--device", "cpu"])
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def graph_file(tmp_path) -> Path:
    path = tmp_path / "tiny.json"
    save_graph(moons_graph(epochs=100_000), path)
    return path


def start_train(graph_file: Path, out: Path, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "train", str(graph_file), "--out", str(out),
         "--checkpoint-every", "5", "--quiet", "--device", "cpu", *extra],
        cwd=REPO, env=subprocess_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, **popen)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# --- signals: SIGTERM and SIGHUP stop like Ctrl-C -----------------------------------------


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_save_then_exit(tmp_path, graph_file, capsys, signum, code):
    out = tmp_path / "run"
    process = start_train(graph_file, out)
    try:
        wait_for(out / "metrics.jsonl", process)   # the first epoch ran
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, err
    line = one_line(err)
    assert signal.Signals(signum).name in line and f"--resume {out}" in line
    stopped = int(line.split("stopped at step ")[1].split()[0])
    assert leftovers(out) == [] and (out / ".lock").read_text() != ""
    assert load_state(out)["step"] == stopped   # the stop wrote the step it stopped at
    assert {p.name for p in out.iterdir()} >= set(FILES)
    # And the folder resumes.
    assert train_cli(capsys, "--resume", str(out), "--steps", str(stopped + 2))[0] == 0
    assert load_state(out)["step"] == stopped + 2


def test_a_signal_before_training_starts_stops_at_once(tmp_path, graph_file, capsys,
                                                        monkeypatch):
    import engine.cli.train as cli_train

    def load_then_signal(path):
        os.kill(os.getpid(), signal.SIGTERM)   # lands while the graph is being read
        return fileformat.load_graph(path)

    monkeypatch.setattr(cli_train, "load_graph", load_then_signal)
    out = tmp_path / "run"
    code, err = train_cli(capsys, str(graph_file), "--out", str(out))
    assert code == 143 and "before training started" in one_line(err)
    assert not out.exists()


def test_a_second_signal_stops_without_saving_and_keeps_the_last_checkpoint(
        tmp_path, graph_file, capsys, monkeypatch):
    import engine.runtime.trainer as trainer_module

    out = tmp_path / "run"
    calls = []
    kept: dict[str, bytes] = {}

    def save_then_be_killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:   # the third checkpoint: SIGTERM, then SIGTERM again mid-save
            kept.update(snapshot(out))
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return save_run(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "save_run", save_then_be_killed)
    code, err = train_cli(capsys, str(graph_file), "--out", str(out), "--checkpoint-every", "2")
    assert code == 143
    assert "second SIGTERM without saving" in one_line(err) and "step 4" in err
    assert snapshot(out) == kept and leftovers(out) == []
    assert load_state(out)["step"] == 4


def test_the_launcher_passes_sigterm_to_every_rank(tmp_path, graph_file):
    out = tmp_path / "run"
    process = start_train(graph_file, out, "--nproc", "2", "--batch-size", "32")
    try:
        wait_for(out / "state.pt", process, timeout=180)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert "SIGTERM" in err and "Traceback" not in err and leftovers(out) == []
    load_state(out)


# --- one writer per run folder -------------------------------------------------------------


HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from engine.runtime.checkpoint import RunLock
lock = RunLock(sys.argv[2]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_second_writer_is_refused_naming_the_first_and_a_dead_one_never_blocks(
        tmp_path, graph_file, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(REPO), str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, err = train_cli(capsys, str(graph_file), "--out", str(out), "--steps", "3")
        line = one_line(err)
        assert code == 2 and f"pid {holder.pid}" in line and "another dprog train" in line
        assert sorted(p.name for p in out.iterdir()) == [".lock"]   # nothing was written
        # The launcher refuses before it starts any process.
        code, err = train_cli(capsys, str(graph_file), "--out", str(out), "--nproc", "2")
        assert code == 2 and f"pid {holder.pid}" in one_line(err)
    finally:
        holder.kill()   # SIGKILL: the lock file stays, the lock goes with the process
        holder.wait()
        holder.stdout.close()
    assert train_cli(capsys, str(graph_file), "--out", str(out), "--steps", "3")[0] == 0
    with RunLock(out):   # and it was released at the end
        pass


def test_the_lock_names_its_holder_even_in_a_hostile_folder(tmp_path):
    (tmp_path / ".lock").write_text('{"pid": "\\u001b[2J", "host": [], "started": 1e999}')
    with RunLock(tmp_path) as lock:
        record = json.loads((tmp_path / ".lock").read_text())
        assert record["pid"] == os.getpid()
        with pytest.raises(CheckpointError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert lock._fd is None


# --- a full disk: the last complete checkpoint is kept, and said ------------------------


def test_a_checkpoint_that_cannot_be_written_leaves_the_previous_one(
        tmp_path, graph_file, capsys, monkeypatch):
    out = tmp_path / "run"
    real_stage = fileformat._stage
    state = {"checkpoints": 0}
    kept: dict[str, bytes] = {}

    def disk_fills(path, data):
        if path.name == "weights.pt":
            state["checkpoints"] += 1
            if state["checkpoints"] == 3:
                kept.update(snapshot(out))
        if state["checkpoints"] == 3 and path.name == "model.py":   # the fourth of five files
            raise OSError(28, "No space left on device")
        return real_stage(path, data)

    monkeypatch.setattr(fileformat, "_stage", disk_fills)
    code, err = train_cli(capsys, str(graph_file), "--out", str(out), "--checkpoint-every", "2")
    line = one_line(err)
    assert code == 4, err
    assert "No space left on device" in line and "step 6" in line
    assert "keeps the checkpoint of step 4" in line
    assert snapshot(out) == kept and leftovers(out) == []
    monkeypatch.setattr(fileformat, "_stage", real_stage)
    assert train_cli(capsys, "--resume", str(out), "--steps", "6")[0] == 0


def test_no_checkpoint_at_all_is_said_too(tmp_path, graph_file, capsys, monkeypatch):
    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileformat, "_stage", full)
    out = tmp_path / "run"
    code, err = train_cli(capsys, str(graph_file), "--out", str(out), "--steps", "3")
    assert code == 4 and "no checkpoint was kept" in one_line(err)
    code, err = train_cli(capsys, "--resume", str(out))
    assert code == 2 and "stopped before its first checkpoint" in one_line(err)


def limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_log_that_outgrows_the_disk_stops_the_run_with_a_checkpoint(tmp_path, graph_file,
                                                                        capsys):
    """A real write failure: RLIMIT_FSIZE makes writes past 48 KiB fail with EFBIG (Python
    ignores SIGXFSZ), as a full disk would. gradflow.jsonl outgrows it first; state.pt fits."""
    out = tmp_path / "run"
    process = start_train(graph_file, out, "--gradflow-every", "1",
                          preexec_fn=limit_file_size(48 << 10))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 4, err
    line = one_line(err)
    assert "cannot write gradflow.jsonl" in line and "keeps its checkpoint" in line
    stopped = int(line.split("stopped at step ")[1].split(",")[0])
    assert load_state(out)["step"] == stopped and leftovers(out) == []
    flows = (out / "gradflow.jsonl").read_text()
    assert flows.endswith("\n")
    steps = [json.loads(x)["step"] for x in flows.splitlines()]   # every line whole
    assert steps == sorted(steps) and steps[-1] <= stopped
    assert train_cli(capsys, "--resume", str(out), "--steps", str(stopped + 3))[0] == 0


def test_resuming_cuts_the_logs_back_to_the_checkpoint(tmp_path, graph_file, capsys):
    out = tmp_path / "run"
    assert train_cli(capsys, str(graph_file), "--out", str(out), "--steps", "14",
                     "--gradflow-every", "1")[0] == 0
    # A crash after logging past the checkpoint, mid-line.
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 99, "epoch": 9, "val_loss": 1.0}) + "\n" + '{"step": 1')
    assert train_cli(capsys, "--resume", str(out), "--steps", "21")[0] == 0
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [7, 14, 21]
    flows = [json.loads(x)["step"] for x in (out / "gradflow.jsonl").read_text().splitlines()]
    assert flows == list(range(1, 22))


# --- text and settings that cannot be saved are refused before training -----------------


@pytest.mark.parametrize("option,value,named", [
    ("--clip-grad-norm", "inf", "clip_grad_norm"),
    ("--clip-grad-norm", "nan", "clip_grad_norm"),
    ("--seed", str(2**40), "seed"),
    ("--seed", "-1", "seed"),
    ("--checkpoint-every", "-1", "--checkpoint-every"),
    ("--nproc", "0", "--nproc"),
    ("--nproc", "100000", "--nproc"),
    ("--lr", "inf", "lr"),
    ("--weight-decay", "nan", "weight_decay"),
    ("--epochs", str(10**12), "epochs"),
    ("--batch-size", "0", "batch_size"),
    ("--data", "bad\udcff.csv", "dataset"),
])
def test_settings_are_checked_before_anything_runs(tmp_path, graph_file, capsys, option,
                                                   value, named):
    out = tmp_path / "run"
    code, err = train_cli(capsys, str(graph_file), "--out", str(out), option, value)
    assert code == 2 and named in one_line(err) and not out.exists()


def test_a_folder_name_no_utf8_file_can_hold_is_refused_before_training(tmp_path, capsys):
    """A CSV beside a graph in a folder named in Latin-1: its absolute path, which the run
    folder's graph.json must record, holds a byte UTF-8 cannot write."""
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    folder.mkdir()
    (folder / "data.csv").write_text("a,b,label\n" + "".join(
        f"{i % 7},{i % 5},{i % 2}\n" for i in range(40)))
    graph = build([("x", "input", {"shape": [2]}), ("fc", "linear", {"out_features": 2}),
                   ("o", "output")], ["x -> fc", "fc -> o"],
                  training={"dataset": {"name": "csv", "path": "data.csv"}, "steps": 2})
    save_graph(graph, folder / "g.json")
    out = tmp_path / "run"
    code, err = train_cli(capsys, str(folder / "g.json"), "--out", str(out))
    assert code == 2 and "lone surrogate" in one_line(err)
    assert not out.exists()   # a folder that never got a checkpoint is not left behind


def test_what_is_printed_from_files_is_escaped(tmp_path, capsys):
    graph = moons_graph(steps=2)
    evil = tmp_path / "\x1b[2Jrun\nx"
    save_graph(graph, tmp_path / "g.json")
    code = main(["train", str(tmp_path / "g.json"), "--out", str(evil), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream
    assert "\\x1b[2Jrun\\nx" in captured.out


# --- damaged checkpoints: one line each, never torch's advice ---------------------------


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good") / "run"
    graph = tmp_path_factory.mktemp("graph") / "tiny.json"
    save_graph(moons_graph(epochs=100_000), graph)
    assert main(["train", str(graph), "--out", str(out), "--steps", "3", "--quiet",
                 "--device", "cpu"]) == 0
    return out


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def mutated(state: dict, field: str, value) -> dict:
    out = dict(state)
    if value is KeyError:
        del out[field]
    else:
        out[field] = value
    return out


STATE_CASES = {
    "negative_step": ("step", -1_000_000, "'step' must be an integer in 0.."),
    "text_step": ("step", "12", "'step'"),
    "float_step": ("step", 2.5, "'step'"),
    "bool_step": ("step", True, "'step'"),
    "tensor_step": ("step", torch.tensor([1, 2]), "'step'"),
    "huge_step": ("step", 2**80, "'step'"),
    "no_running": ("running", KeyError, "no running"),
    "no_rng": ("torch_rng", KeyError, "no torch_rng"),
    "float_rng": ("torch_rng", torch.zeros(5056), "'torch_rng'"),
    "short_rng": ("torch_rng", torch.zeros(7, dtype=torch.uint8), "does not fit"),
    "text_optimizer": ("optimizer", "adam", "'optimizer'"),
    "bad_groups": ("optimizer", {"state": {}, "param_groups": ["x"]}, "param_groups"),
    "bad_opt_state": ("optimizer", {"state": {0: "x"}, "param_groups": []}, "optimizer.state"),
    "running_shape": ("running", torch.zeros(5), "'running'"),
    "text_weights": ("weights", "w", "'weights'"),
    "no_weights_key": ("weights", {}, "no weights for"),
    "format_2": ("format", 2, "'format' must be 1"),
    # Found by tests/test_fuzz_files.py: both used to pass the checks and break the first step.
    "negative_adam_step": ("optimizer", "negative_step", "'step' must be in 0.."),
    "complex_moment": ("optimizer", "complex_moment", "float tensors"),
    # Found by `bench/fuzz.py --files`: a renamed key made Adam's step raise KeyError.
    "missing_moment": ("optimizer", "missing_moment", "lacks exp_avg_sq"),
    "list": (None, [1, 2], "not a dprog training state"),
}


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_a_damaged_state_is_refused_field_by_field(tmp_path, run_folder, capsys, case):
    field, value, expected = STATE_CASES[case]
    folder = tmp_path / "run"
    folder.mkdir()
    for name in FILES:
        (folder / name).write_bytes((run_folder / name).read_bytes())
    state = torch.load(run_folder / STATE, weights_only=True)
    if value in ("negative_step", "complex_moment", "missing_moment"):
        moments = {k: dict(v) for k, v in state["optimizer"]["state"].items()}
        if value == "negative_step":
            moments[0]["step"] = torch.tensor(-5.0)
        elif value == "missing_moment":
            moments[0]["exp_avg_sp"] = moments[0].pop("exp_avg_sq")
        else:
            moments[0]["exp_avg"] = moments[0]["exp_avg"].to(torch.complex64)
        value = {**state["optimizer"], "state": moments}
    damaged = value if field is None else mutated(state, field, value)
    (folder / STATE).write_bytes(tensor_bytes(damaged))
    code, err = train_cli(capsys, "--resume", str(folder), "--steps", "5")
    line = one_line(err)
    assert code == 2 and expected in line, line
    assert "weights_only" not in line


def test_a_checkpoint_of_another_shape_names_the_weights(tmp_path, run_folder, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in FILES:
        (folder / name).write_bytes((run_folder / name).read_bytes())
    state = torch.load(run_folder / STATE, weights_only=True)
    weights = dict(state["weights"])
    weights["fc1.weight"] = torch.zeros(3, 3)
    weights["extra"] = torch.zeros(1)
    (folder / STATE).write_bytes(tensor_bytes({**state, "weights": weights}))
    line = one_line(train_cli(capsys, "--resume", str(folder), "--steps", "5")[1])
    assert "fc1.weight is (3, 3) in the checkpoint but (16, 2)" in line and "extra" in line
    # Optimizer moments of the wrong shape are caught before the first step, too.
    optimizer = state["optimizer"]
    moments = {k: dict(v) for k, v in optimizer["state"].items()}
    moments[0]["exp_avg"] = torch.zeros(9)
    (folder / STATE).write_bytes(tensor_bytes({**state, "optimizer": {**optimizer,
                                                                      "state": moments}}))
    line = one_line(train_cli(capsys, "--resume", str(folder), "--steps", "5")[1])
    assert "exp_avg" in line and "(9,)" in line


def test_a_pickled_payload_is_refused_without_torchs_advice(tmp_path, run_folder, capsys,
                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "run"
    folder.mkdir()
    for name in FILES:
        (folder / name).write_bytes((run_folder / name).read_bytes())
    state = torch.load(run_folder / STATE, weights_only=True)
    buffer = io.BytesIO()
    torch.save({**state, "running": Payload()}, buffer)
    (folder / STATE).write_bytes(buffer.getvalue())
    code, err = train_cli(capsys, "--resume", str(folder))
    line = one_line(err)
    assert code == 2 and "could run code" in line and "system" in line
    assert "weights_only" not in err and "safe_globals" not in err
    assert not (tmp_path / "PWNED").exists()


def test_a_compressed_record_that_would_inflate_is_refused_unread(tmp_path, run_folder, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in FILES:
        (folder / name).write_bytes((run_folder / name).read_bytes())
    with zipfile.ZipFile(run_folder / STATE) as src, \
            zipfile.ZipFile(folder / STATE, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        dst.writestr("archive/data/999", b"\0" * (256 << 20))   # 256 MiB in about 256 KiB
    assert (folder / STATE).stat().st_size < 2 << 20
    code, err = train_cli(capsys, "--resume", str(folder))
    assert code == 2 and "compressed" in one_line(err)


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "fifo", "directory", "loop"])
def test_unreadable_state_files_are_one_line(tmp_path, run_folder, capsys, kind):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in FILES:
        if name != STATE:
            (folder / name).write_bytes((run_folder / name).read_bytes())
    state = folder / STATE
    good = (run_folder / STATE).read_bytes()
    if kind == "empty":
        state.write_bytes(b"")
    elif kind == "truncated":
        state.write_bytes(good[: len(good) // 2])
    elif kind == "garbage":
        state.write_bytes(os.urandom(5000))
    elif kind == "fifo":
        os.mkfifo(state)
    elif kind == "directory":
        state.mkdir()
    else:
        os.symlink(folder / "other", state)
        os.symlink(state, folder / "other")
    code, err = without_hanging(lambda: train_cli(capsys, "--resume", str(folder)))
    assert code == 2 and "state.pt" in one_line(err)


def test_load_state_accepts_what_save_run_writes(run_folder):
    state = load_state(run_folder)
    assert state["step"] == 3 and state["format"] == 1


# --- the module limit, checked before anything is built ---------------------------------


def unshared_loop(count: int, blocks: int = 20):
    specs = [("x", "body_input")] + [(f"fc{i}", "linear", {"out_features": 4})
                                     for i in range(blocks)] + [("y", "body_output")]
    body = build(specs, [f"{a[0]} -> {b[0]}" for a, b in itertools.pairwise(specs)])
    return build([("x", "input", {"shape": [4]}),
                  ("lp", "loop", {"count": count, "share_weights": False}, {"body": body}),
                  ("o", "output")], ["x -> lp.x", "lp.y -> o"])


def test_a_loop_of_10000_unshared_iterations_is_refused_by_check_and_train(tmp_path, capsys):
    from engine.runtime.trainer import Failed, train

    path = tmp_path / "loop.json"
    graph = unshared_loop(10_000)
    save_graph(graph, path)
    assert main(["check", str(path)]) == 1
    assert "torch modules" in capsys.readouterr().out
    code, err = train_cli(capsys, str(path), "--data", "moons")
    assert code == 1 and "210,001 torch modules" in err
    _, events = train(graph)
    assert isinstance(events[-1], Failed) and events[-1].kind == "invalid_graph"
    assert events[-1].node == "lp"
    assert main(["check", str(save_graph(unshared_loop(1000), path) or path)]) == 0


def test_the_config_decides_the_optimizer_settings_on_resume(tmp_path, run_folder, capsys):
    """A damaged setting in the saved optimizer (here Adam's betas) never reaches a step, and
    an option given with --resume holds: the config, not state.pt, sets lr, betas, decay."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name in FILES:
        (folder / name).write_bytes((run_folder / name).read_bytes())
    state = torch.load(run_folder / STATE, weights_only=True)
    groups = [{**g, "betas": "x", "weight_decay": -1.0} for g in state["optimizer"]["param_groups"]]
    (folder / STATE).write_bytes(tensor_bytes({**state, "optimizer": {**state["optimizer"],
                                                                      "param_groups": groups}}))
    code, err = train_cli(capsys, "--resume", str(folder), "--steps", "5",
                          "--weight-decay", "0.5")
    assert code == 0, err
    saved = torch.load(folder / STATE, weights_only=True)["optimizer"]["param_groups"][0]
    assert saved["betas"] == (0.9, 0.999) and saved["weight_decay"] == 0.5


def test_an_ignored_hangup_stays_ignored_as_under_nohup():
    from engine.cli.train import _Signals

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with _Signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
