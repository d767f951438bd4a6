"""Data files under attack: checked by type and size before they are read, streamed or capped
while they are, and every refusal one DatasetError naming the file and the limit.

Reads that used to exhaust memory run in a child process under an address-space cap
(RLIMIT_AS), so a regression is a failed test, not a machine out of memory.
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, build, subprocess_env, without_hanging

import engine.data.datasets as datasets
from engine.cli import main
from engine.core.fileformat import save_graph
from engine.data.datasets import DatasetError, load_dataset

GIB = 1 << 30


def refused(spec: dict, *match: str) -> str:
    def load() -> pytest.ExceptionInfo:
        with pytest.raises(DatasetError) as info:
            load_dataset(spec)
        return info

    info = without_hanging(load)   # some cases are FIFOs, which could block a read for ever
    for text in match:
        assert text in str(info.value), str(info.value)
    return str(info.value)


def features(n: int = 40) -> np.ndarray:
    return np.arange(n * 2, dtype=np.float32).reshape(n, 2)


# --- by type, before opening ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "npz", "npy"])
def test_a_fifo_as_data_is_refused_without_waiting(tmp_path, fmt):
    fifo = tmp_path / f"data.{fmt}"
    os.mkfifo(fifo)
    spec = {"name": fmt, "path": str(fifo)}
    if fmt == "npy":
        np.save(tmp_path / "y.npy", np.arange(40) % 2)
        spec["targets"] = str(tmp_path / "y.npy")
    refused(spec, "FIFO", str(fifo))


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_dev_zero_as_data_is_refused_as_a_device(fmt):
    refused({"name": fmt, "path": "/dev/zero"}, "character device")


@pytest.mark.parametrize("path,expected", [
    ("loop.csv", "symbolic links"),
    ("a\0b.csv", "null"),
    ("~no_such_user_here/data.csv", "home directory"),
])
def test_odd_paths_are_one_dataset_error(tmp_path, path, expected):
    if path == "loop.csv":
        os.symlink(tmp_path / "loop.csv", tmp_path / "loop.csv")
        path = str(tmp_path / "loop.csv")
    refused({"name": "csv", "path": path}, expected)


def test_dprog_train_reports_a_symlink_loop_and_a_nul_in_one_line(tmp_path, capsys):
    os.symlink(tmp_path / "loop.csv", tmp_path / "loop.csv")
    graph = build([("x", "input", {"shape": [2]}), ("o", "output")], ["x -> o"],
                  training={"dataset": {"name": "csv", "path": "loop.csv"}})
    save_graph(graph, tmp_path / "g.json")
    for args in ([str(tmp_path / "g.json")],
                 [str(tmp_path / "g.json"), "--data", str(tmp_path / "loop.csv")],
                 [str(tmp_path / "g.json"), "--data", "a\0b.csv"]):
        code = main(["train", *args, "--quiet", "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


# --- memory: streamed and capped ------------------------------------------------------------


CHILD = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
    from engine.data.datasets import DatasetError, load_dataset
    try:
        load_dataset({spec!r})
    except DatasetError as e:
        print("refused:", e)
""")


def in_capped_child(spec: dict, cap: int = GIB) -> str:
    result = subprocess.run([sys.executable, "-c", CHILD.format(cap=cap, spec=spec)],
                            capture_output=True, text=True, env=subprocess_env(), cwd=REPO,
                            timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return result.stdout


def test_a_1_gib_sparse_csv_is_refused_within_a_small_memory_cap(tmp_path):
    path = tmp_path / "sparse.csv"
    with open(path, "wb") as f:
        f.truncate(GIB)   # a gigabyte of NUL bytes and no line break, using no disk
    out = in_capped_child({"name": "csv", "path": str(path)})
    assert "refused" in out and "longer than 1,048,576 characters" in out


def test_a_csv_with_too_many_values_is_refused_as_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_CSV_VALUES", 1000)
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"f{i}" for i in range(100)) + ",y\n"
                    + ("1," * 100 + "0\n") * 50)
    refused({"name": "csv", "path": str(path)}, "more than 1,000 feature values", ".npz")


def write_npz(path: Path, arrays: dict[str, np.ndarray], compressed: bool = True) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as z:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            z.writestr(f"{name}.npy", buffer.getvalue())


def test_a_compressed_npz_too_large_to_hold_is_refused_from_its_header(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_FILE_VALUES", 1 << 20)
    path = tmp_path / "zeros.npz"
    write_npz(path, {"x": np.zeros((40, 1 << 16), np.float32), "y": np.arange(40) % 2})
    assert path.stat().st_size < 1 << 20   # ten megabytes of zeros in a few kilobytes
    refused({"name": "npz", "path": str(path)}, "2,621,440 values", "limit 1,048,576")


def test_a_header_promising_more_rows_than_allowed_is_refused_before_reading(tmp_path):
    path = tmp_path / "rows.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (5_000_000, 1)})
    with zipfile.ZipFile(path, "w") as z:   # the header alone: no data follows
        z.writestr("x.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:])
        buffer = io.BytesIO()
        np.save(buffer, np.arange(40) % 2)
        z.writestr("y.npy", buffer.getvalue())
    refused({"name": "npz", "path": str(path)}, "5,000,000 samples", "1,000,000")


def test_mismatched_rows_are_refused_before_either_array_is_read(tmp_path, monkeypatch):
    path = tmp_path / "pair.npz"
    write_npz(path, {"x": features(40), "y": np.arange(39) % 2})
    reads = []
    real = datasets._npy_data
    monkeypatch.setattr(datasets, "_npy_data", lambda *a: reads.append(1) or real(*a))
    refused({"name": "npz", "path": str(path)}, "40 samples", "39")
    assert reads == []


def test_an_npz_listing_thousands_of_members_is_refused_from_its_end_record(tmp_path):
    path = tmp_path / "many.npz"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(1500):
            z.writestr(f"a{i}.npy", b"")
    refused({"name": "npz", "path": str(path)}, "1,500 arrays", "limit 1,000")


def test_a_header_numpy_cannot_tokenize_is_a_dataset_error(tmp_path):
    """Found by tests/test_fuzz_files.py: numpy parses the header text with tokenize, which
    raised TokenError, not ValueError, for an unterminated dict."""
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (40, 2"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                                     + header + bytes(320))
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    refused({"name": "npy", "path": str(tmp_path / "x.npy"),
             "targets": str(tmp_path / "y.npy")}, "not a valid NumPy .npy array")


def test_a_member_flagged_as_encrypted_is_a_dataset_error(tmp_path):
    """Found by `bench/fuzz.py --files`: zipfile raises RuntimeError for it."""
    path = tmp_path / "enc.npz"
    write_npz(path, {"x": features(), "y": np.arange(40) % 2})
    data = bytearray(path.read_bytes())
    for at in range(len(data) - 4):   # set bit 0 (encrypted) of every header's flags
        if data[at:at + 4] == b"PK\x03\x04":
            data[at + 6] |= 1
        elif data[at:at + 4] == b"PK\x01\x02":
            data[at + 8] |= 1
    path.write_bytes(bytes(data))
    refused({"name": "npz", "path": str(path)}, "not a readable .npz archive", "encrypted")


def test_npy_pairs_still_load(tmp_path):
    np.save(tmp_path / "x.npy", features())
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    data = load_dataset({"name": "npy", "path": str(tmp_path / "x.npy"),
                         "targets": str(tmp_path / "y.npy")})
    assert data.input_shape == (2,) and data.num_classes == 2
    np.save(tmp_path / "big_endian.npy", features().astype(">f4"))
    data = load_dataset({"name": "npy", "path": str(tmp_path / "big_endian.npy"),
                         "targets": str(tmp_path / "y.npy")})
    assert sorted(data.x_train[:, 0].tolist() + data.x_val[:, 0].tolist()) == \
        features()[:, 0].tolist()


# --- token ids get a data message, as class ids do ----------------------------------------


def token_graph(num_embeddings: int, *, in_loop: bool = False):
    if in_loop:
        body = build([("x", "body_input", {"role": "sequence"}),
                      ("emb", "embedding", {"num_embeddings": num_embeddings, "embedding_dim": 4}),
                      ("y", "body_output", {"role": "output"})], ["x -> emb", "emb -> y"])
        core = [("scan", "loop", {"mode": "scan", "dim": 1}, {"body": body}),
                ("flat", "flatten"), ("fc", "linear", {"out_features": 2})]
        wires = ["x -> scan.x", "scan.y -> flat", "flat -> fc", "fc -> o"]
    else:
        core = [("emb", "embedding", {"num_embeddings": num_embeddings, "embedding_dim": 4}),
                ("flat", "flatten"), ("fc", "linear", {"out_features": 2})]
        wires = ["x -> emb", "emb -> flat", "flat -> fc", "fc -> o"]
    return build([("x", "input", {"shape": [3], "dtype": "long"}), *core, ("o", "output")],
                 wires)


@pytest.mark.parametrize("in_loop", [False, True], ids=["direct", "in_a_loop_body"])
def test_token_ids_past_num_embeddings_are_a_data_message(tmp_path, in_loop):
    from engine.core.config import TrainingConfig
    from engine.runtime.trainer import Failed, Finished, train

    x = np.arange(120).reshape(40, 3) % 58   # ids up to 57
    np.savez(tmp_path / "tokens.npz", x=x, y=np.arange(40) % 2)
    config = TrainingConfig.from_mapping({
        "dataset": {"name": "npz", "path": str(tmp_path / "tokens.npz"), "x_dtype": "int64"},
        "steps": 2, "batch_size": 8})
    _, events = train(token_graph(50, in_loop=in_loop), config)
    end = events[-1]
    assert isinstance(end, Failed), end
    assert "num_embeddings 50" in end.message and "at least 58" in end.message
    if in_loop:   # found by the first forward pass, named at the node, explained briefly
        assert end.kind == "error" and end.node == "scan/body/emb"
        assert end.message.startswith("node scan/body/emb: IndexError"), end.message
        assert "token id 57 >= num_embeddings 50" in end.message
    else:         # found before the first step
        assert end.kind == "data" and end.node == "emb" and "IndexError" not in end.message
        assert "token ids up to 57" in end.message
    _, events = train(token_graph(58, in_loop=in_loop), config)
    assert isinstance(events[-1], Finished)


# --- what a data file says reaches the terminal escaped ------------------------------------


def test_csv_headers_are_printed_escaped(tmp_path, capsys):
    path = tmp_path / "evil.csv"
    path.write_text('a,"\x1b]0;pwned\x07\nb",y\n1,2,0\n')
    graph = build([("x", "input", {"shape": [2]}), ("o", "output")], ["x -> o"],
                  training={"dataset": {"name": "csv", "path": str(path), "target": "nope"}})
    save_graph(graph, tmp_path / "g.json")
    code = main(["train", str(tmp_path / "g.json"), "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "no column named 'nope'" in err   # the message lists the header
    assert "\x1b" not in err and "\x07" not in err and "\\x1b]0;pwned" in err
    assert len(err.strip().splitlines()) == 1, err


def test_the_limits_named_in_the_readme():
    assert datasets.MAX_CSV_LINE == 1 << 20 and datasets.MAX_CSV_VALUES == 1 << 26
    assert datasets.MAX_FILE_VALUES == 1 << 27 and datasets.MAX_SAMPLES == 1_000_000
    assert json.loads(json.dumps(datasets.MAX_NPZ_MEMBERS)) == 1000
    assert resource.RLIMIT_AS   # the memory tests need it
