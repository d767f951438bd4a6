"""The recovery file can never stop the studio from starting.

A damaged autosave (any field wrong, broken or deeply nested JSON, a graph that does not load,
a FIFO, an oversized file) is set aside under a new name, kept byte for byte for the user,
and reported in the status bar; the next start is clean. The recent-files list is held to the
same: damage there is ignored. The real window's side (the offer, SIGTERM) is in
tests/gui/test_studio_recovery.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import build, without_hanging

import engine.core.fileformat as fileformat
from app.recovery import RECOVERY_FORMAT, Recovery
from app.state import AppState
from engine.core.fileformat import dumps
from engine.core.graph import Graph


def graph() -> Graph:
    return build([("x", "input", {"shape": [4]}), ("fc", "linear", {"out_features": 3}),
                  ("o", "output")], ["x -> fc", "fc -> o"])


def document(**fields) -> dict:
    return {"format": RECOVERY_FORMAT, "version": 1, "file": None, "file_stamp": None,
            "saved_at": 1_700_000_000.0, "graph": dumps(graph()), **fields}


def params_flood() -> str:
    doc = json.loads(dumps(graph()))
    doc["nodes"][1]["params"] = {f"p{i}": {"a": [i]} for i in range(60_000)}
    return json.dumps(doc)


DAMAGES = {
    "huge_saved_at": json.dumps(document(saved_at=1e300)),
    "nan_saved_at": json.dumps(document(saved_at=float("nan"))),
    "text_saved_at": json.dumps(document(saved_at="yesterday")),
    "bool_saved_at": json.dumps(document(saved_at=True)),
    "nul_in_file": json.dumps(document(file="/tmp/a\0b.json")),
    "surrogate_file": json.dumps(document(file="/tmp/\ud800.json")),
    "number_file": json.dumps(document(file=7)),
    "empty_file": json.dumps(document(file="")),
    "text_stamp": json.dumps(document(file="/nonexistent.json", file_stamp="x")),
    "nested_100000": "[" * 100_000 + "]" * 100_000,
    "nested_in_graph": json.dumps(document(graph="[" * 50_000 + "]" * 50_000)),
    "graph_not_text": json.dumps(document(graph={"nodes": []})),
    "graph_broken": json.dumps(document(graph="{")),
    "graph_params_flood": json.dumps(document(graph=params_flood())),
    "graph_surrogate": json.dumps(document(graph=dumps(graph()).replace('"fc"', '"\\ud800"', 1))),
    "version_2": json.dumps(document(version=2)),
    "not_recovery": json.dumps({"format": "something else"}),
    "list": "[]",
    "empty": "",
    "not_utf8": b"\xff\xfe{",
    "nan_literal": '{"format": "dprog-recovery", "version": NaN}',
}


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("DPROG_STATE_DIR", str(folder))
    return folder


def write(folder: Path, name: str, content: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8",
                                                                                 "surrogatepass"))
    return path


def set_aside(folder: Path) -> list[Path]:
    return sorted(folder.glob("recovery.damaged-*.json"))


@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_a_damaged_recovery_file_is_set_aside_kept_and_reported(state_dir, name):
    content = DAMAGES[name]
    path = write(state_dir, "recovery.json", content)
    before = path.read_bytes()
    state = AppState()
    assert state.pending_recovery() is None
    assert state.status_level == "warning" and "kept as recovery.damaged-" in state.status
    assert "\n" not in state.status and "\x00" not in state.status
    kept = set_aside(state_dir)
    assert len(kept) == 1 and kept[0].read_bytes() == before and not path.exists()
    # The next start is clean: nothing offered, nothing to report.
    again = AppState()
    assert again.pending_recovery() is None and again.status_level == "info"


@pytest.mark.parametrize("kind", ["fifo", "directory", "sparse_huge"])
def test_recovery_files_that_are_not_files_do_not_hang_the_start(state_dir, kind):
    state_dir.mkdir(parents=True)
    path = state_dir / "recovery.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        with open(path, "wb") as f:
            f.truncate(1 << 30)
    state = AppState()
    assert without_hanging(state.pending_recovery) is None and "damaged" in state.status
    assert len(set_aside(state_dir)) == 1 and not path.exists()


def test_a_recovery_that_cannot_be_set_aside_is_reported_and_skipped(tmp_path, monkeypatch):
    recovery = Recovery(tmp_path / "state")
    write(tmp_path / "state", "recovery.json", DAMAGES["huge_saved_at"])

    def read_only(*_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", read_only)
    assert recovery.pending() is None
    assert "could not be set aside" in recovery.problem and "Permission denied" in recovery.problem


def test_a_good_recovery_is_still_offered_and_restored(state_dir, tmp_path):
    target = tmp_path / "work.json"
    write(state_dir, "recovery.json", json.dumps(document(file=str(target))))
    state = AppState()
    pending = state.pending_recovery()
    assert pending is not None and pending.file == target and pending.graph == graph()
    assert state.restore_recovery(pending) and state.graph == graph()
    assert set_aside(state_dir) == []


def test_a_restore_that_fails_sets_the_autosave_aside(state_dir, monkeypatch):
    write(state_dir, "recovery.json", json.dumps(document()))
    state = AppState()
    pending = state.pending_recovery()

    def broken(*_):
        raise RuntimeError("the views could not take it")

    monkeypatch.setattr(state, "_reset", broken)
    assert not state.restore_recovery(pending)
    assert state.status_level == "error" and "kept as recovery.damaged-" in state.status
    assert len(set_aside(state_dir)) == 1


def test_a_big_autosave_with_a_params_flood_is_refused_before_the_schema_check(state_dir,
                                                                               monkeypatch):
    write(state_dir, "recovery.json", DAMAGES["graph_params_flood"])
    assert (state_dir / "recovery.json").stat().st_size > 1 << 20

    def reached():
        raise AssertionError("the schema check ran: the limit was not checked before it")
    monkeypatch.setattr(fileformat, "_validator", reached)
    assert AppState().pending_recovery() is None


@pytest.mark.parametrize("content", [
    "[" * 100_000 + "]" * 100_000,
    json.dumps(["/ok.json", "/a\0b.json", 7, None, "/\ud800.json", "", "/fine.json"]),
    json.dumps({"not": "a list"}),
    b"\xff",
])
def test_a_damaged_recent_list_never_stops_the_studio(state_dir, content):
    write(state_dir, "recent.json", content)
    state = AppState()
    assert all(isinstance(p, Path) and "\0" not in str(p) for p in state.recent_files)
    if isinstance(content, str) and content.startswith('["/ok'):
        assert state.recent_files == [Path("/ok.json"), Path("/fine.json")]


def test_a_fifo_as_the_recent_list_does_not_hang(state_dir):
    state_dir.mkdir(parents=True)
    os.mkfifo(state_dir / "recent.json")
    assert without_hanging(lambda: AppState().recent_files) == []
