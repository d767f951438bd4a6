"""Odd files and hostile text, for graph files and the command line: refused early, by type
and size, with the limit named; never a hang, a memory blow-up or a traceback; and nothing
from a file reaches the terminal unescaped.

Files that would hang or exhaust memory are tried in child processes with a timeout and an
address-space cap (RLIMIT_AS), so a regression fails the test instead of the test run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, subprocess_env

import engine.core.fileformat as fileformat
from engine.core.fileformat import MAX_FILE_BYTES, GraphFileError, dumps, load_graph, loads
from engine.core.files import FileRefused, open_regular, read_regular, shown

SAMPLE = REPO / "sample_graphs" / "moons_mlp.json"
GIB = 1 << 30


def capped(limit_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    return apply


def dprog(*args: str, timeout: float = 60, memory: int = 2 * GIB, cwd: Path = REPO
          ) -> subprocess.CompletedProcess:
    """`python -m engine.cli ARGS` in a child with at most `memory` bytes of address space."""
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=subprocess_env(), timeout=timeout,
                          preexec_fn=capped(memory))


def one_clean_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dprog: "), result.stderr[-2000:]
    return lines[0]


# --- files checked by type and size before they are read ----------------------------------


def test_a_fifo_as_a_graph_is_refused_at_once(tmp_path):
    fifo = tmp_path / "graph.json"
    os.mkfifo(fifo)
    # Opening a FIFO for reading blocks until a writer comes: the timeout is that hang's guard.
    line = one_clean_line(dprog("check", str(fifo), timeout=120))
    assert "FIFO" in line
    with pytest.raises(GraphFileError, match="is a FIFO"):
        load_graph(fifo)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_device_as_a_graph_is_refused_without_reading_it(device):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    line = one_clean_line(dprog("check", device, memory=GIB, timeout=30))
    assert "character device" in line


def test_a_huge_sparse_graph_file_is_refused_by_its_size(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(4 * GIB)   # sparse: no disk used
    with pytest.raises(GraphFileError, match="larger than 64 MiB"):
        load_graph(path)
    assert "larger than 64 MiB" in one_clean_line(dprog("check", str(path), memory=GIB))


def test_a_file_that_lies_about_its_size_is_read_no_further_than_the_limit():
    # /proc files say they are empty; the cap on the read, not the size, stops a long one.
    data = read_regular("/proc/self/status", 1 << 20)
    assert b"VmRSS" in data
    with pytest.raises(FileRefused, match="larger than 16 bytes"):
        read_regular("/proc/self/status", 16)


@pytest.mark.parametrize("name", ["loop", "nul", "surrogate", "socket"])
def test_odd_paths_give_one_line(tmp_path, name):
    if name == "loop":
        path = tmp_path / "a"
        os.symlink(tmp_path / "b", path)
        os.symlink(path, tmp_path / "b")
        expected = "symbolic links"
    elif name == "nul":
        path = f"{tmp_path}/a\0b.json"
        expected = "file name"
    elif name == "surrogate":
        path = f"{tmp_path}/a\ud800.json"
        expected = "file name"
    else:
        import socket

        path = tmp_path / "s.sock"
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path))
        expected = "socket"
    with pytest.raises(GraphFileError, match=expected):
        load_graph(path)


def test_open_regular_refuses_a_fifo_swapped_in_after_the_stat(tmp_path, monkeypatch):
    """The race: stat says regular, open finds a FIFO. The non-blocking open and the fstat
    catch it."""
    fifo = tmp_path / "swapped"
    os.mkfifo(fifo)
    real = os.stat(REPO / "README.md")
    monkeypatch.setattr(os, "stat", lambda *a, **k: real)
    with pytest.raises(FileRefused, match="FIFO"):
        open_regular(fifo)


# --- limits named, and checked before the slow parts ------------------------------------


def doc_with(**node) -> dict:
    return {"format": "dprog-graph", "version": 2, "name": "m",
            "nodes": [{"id": "x", "type": "input", "params": {"shape": [2]}, **node}],
            "edges": []}


@pytest.fixture
def schema_unreached(monkeypatch):
    """The schema check, the slow part of reading a file, fails the test if it is reached."""
    def reached():
        raise AssertionError("the schema check ran: the limit was not checked before it")
    monkeypatch.setattr(fileformat, "_validator", reached)


@pytest.mark.parametrize("value", [1, {"a": [1, 2]}], ids=["numbers", "objects"])
def test_a_params_flood_is_refused_before_the_schema_check(value, schema_unreached):
    text = json.dumps(doc_with(params={f"p{i}": value for i in range(300_000)}))
    with pytest.raises(GraphFileError, match=r"\$\.nodes\[0\]\.params: 300,000 entries.*64"):
        loads(text)


def test_long_text_and_long_lists_are_refused_with_their_place():
    with pytest.raises(GraphFileError, match=r"\$\.nodes\[0\]\.label: text of 5,000,000"):
        loads(json.dumps(doc_with(label="x" * 5_000_000)))
    with pytest.raises(GraphFileError, match=r"\$\.nodes\[0\]\.params\.shape: 100,000 entries"):
        loads(json.dumps(doc_with(params={"shape": [1] * 100_000})))


def test_many_broken_nodes_report_the_first_without_collecting_every_error(monkeypatch):
    nodes = [{"id": f"n{i}", "type": "input", "params": {"shape": "x" * 999}, "pos": [1, 2, 3]}
             for i in range(15_000)]
    text = json.dumps({"format": "dprog-graph", "version": 2, "nodes": nodes, "edges": []})
    real, taken = fileformat._validator(), []

    class Counting:
        def iter_errors(self, doc):
            for error in real.iter_errors(doc):
                taken.append(error)
                yield error

    monkeypatch.setattr(fileformat, "_validator", Counting)
    with pytest.raises(GraphFileError, match=r"\$\.nodes\[0\]"):
        loads(text)
    assert 0 < len(taken) <= 32   # of some 45,000 errors in the file


# --- text that could not be written back --------------------------------------------------


@pytest.mark.parametrize("place,edit", [
    ("$.nodes[0].label", lambda d: d["nodes"][0].update(label="a\ud800b")),
    ("$.name", lambda d: d.update(name="\udfff")),
    ("$.nodes[0].params.shape", lambda d: d["nodes"][0]["params"].update(shape="\ud83d")),
    ('$.training.dataset.path', lambda d: d.update(training={"dataset": {"name": "csv",
                                                                          "path": "x\udc80"}})),
    ('$.nodes[0].params["\\ud800"]', lambda d: d["nodes"][0]["params"].update({"\ud800": 1})),
])
def test_lone_surrogates_are_refused_on_load_naming_the_place(place, edit):
    doc = doc_with()
    edit(doc)
    with pytest.raises(GraphFileError, match="lone surrogate") as caught:
        loads(json.dumps(doc))   # json.dumps writes them as \\ud800 escapes
    assert place in str(caught.value)


def test_every_graph_that_loads_can_be_saved_back():
    # Paired surrogates are one character, which UTF-8 holds: that is not refused.
    graph = loads(json.dumps(doc_with(label="emoji \ud83d\ude00 ok")))
    assert loads(dumps(graph)).nodes[0].label == "emoji \U0001f600 ok"
    dumps(graph).encode("utf-8")


# --- what reaches the terminal is escaped ----------------------------------------------


def test_shown_escapes_what_a_terminal_would_act_on():
    assert shown("plain ascii, ünïcödé, 中文 and emoji \U0001f600") == \
        "plain ascii, ünïcödé, 中文 and emoji \U0001f600"
    assert shown("\x1b[31mred\x1b]0;title\x07") == "\\x1b[31mred\\x1b]0;title\\x07"
    assert shown("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert shown("\u202egnp.exe \x9b \ud800 \u2028") == "\\u202egnp.exe \\x9b \\ud800 \\u2028"
    assert shown(shown("\x1b")) == shown("\x1b")


ESC = "\x1b]0;pwned\x07\x1b[2J"


def test_check_prints_no_escape_sequence_from_the_path_or_the_file(tmp_path):
    doc = json.loads(SAMPLE.read_text())
    doc["nodes"][1]["label"] = "fc" + ESC + "\nfake row"
    doc["nodes"][2]["type"] = "nope" + ESC
    path = tmp_path / f"evil{ESC}\nname.json"
    path.write_text(json.dumps(doc))
    result = dprog("check", str(path))
    assert result.returncode == 1
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x07" not in stream
    assert "\\x1b]0;pwned" in result.stdout
    # One line per diagnostic and per node: the newline did not split the table.
    assert not any(line.startswith("name.json") or line.startswith("fake row")
                   for line in result.stdout.splitlines())


def test_unreadable_file_messages_are_escaped(tmp_path):
    path = tmp_path / f"{ESC}.json"
    path.write_text("{not json")
    line = one_clean_line(dprog("check", str(path)))
    assert "\x1b" not in line and "\\x1b" in line
    surrogate = dprog("check", str(tmp_path / "a\udcff.json"))   # not even encodable on stdout
    assert "Traceback" not in surrogate.stderr and surrogate.returncode == 2


def test_the_graph_file_limits_are_what_the_readme_promises():
    assert MAX_FILE_BYTES == 64 << 20
