"""Damaged files of the other kinds dprog reads: recovery files, run folders (state.pt and its
JSON siblings) and data files (CSV, .npy, .npz). Each generator takes a seeded `random.Random`
and returns what to write plus a short name of the damage, for tests/test_fuzz_files.py (a
few hundred cases per run) and bench/fuzz.py-style long runs.

The damage mixes text corruption (generate.corrupt_text: truncation, flipped bytes, huge or
non-finite literals, deep nesting), fields swapped for hostile values (generate.hostile_value
plus values of the wrong kind for each field), and byte damage to binary formats (zip
records, .npy headers). Pure: this module imports numpy, not torch; state.pt cases take the
tensors they need from the caller.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from .generate import PAYLOADS, corrupt_text, deep, hostile_value

NASTY_TEXT = ["", "\x00", "\x1b[2J", "a\nb", "\ud800", "\udcff", "\u202e", "é" * 5000,
              "/" * 5000, "~nobody/x", "../../../etc/passwd", "/dev/zero", "/proc/self/mem",
              "PWNED", *PAYLOADS[:4]]


def nasty(rng: random.Random) -> Any:
    """A value of any kind, picked to break whatever field receives it."""
    return rng.choice([hostile_value(rng, None), rng.choice(NASTY_TEXT), float("nan"),
                       float("inf"), -1e300, 1e300, 2**64, -(2**63), True, None, [], {},
                       [[[[]]]], {"graph": {}}, deep("array", 50)])


# --- recovery files ---------------------------------------------------------------------


RECOVERY_FIELDS = ("format", "version", "file", "file_stamp", "saved_at", "graph")


def recovery_case(rng: random.Random, good: dict) -> tuple[str, str]:
    """(recovery.json text, damage) from a good recovery document."""
    doc = dict(good)
    choice = rng.randrange(6)
    if choice == 0:   # one field swapped
        key = rng.choice(RECOVERY_FIELDS)
        doc[key] = nasty(rng)
        return json.dumps(doc, allow_nan=True), f"field_{key}"
    if choice == 1:   # a field dropped, or an extra one
        key = rng.choice(RECOVERY_FIELDS)
        doc.pop(key, None) if rng.random() < 0.5 else doc.update({key + "_x": nasty(rng)})
        return json.dumps(doc, allow_nan=True), f"shape_{key}"
    if choice == 2:   # the graph text inside damaged
        doc["graph"], how = corrupt_text(rng, doc["graph"])
        return json.dumps(doc), f"graph_{how}"
    if choice == 3:   # the graph replaced by another JSON value's text
        doc["graph"] = json.dumps(nasty(rng), allow_nan=True)
        return json.dumps(doc), "graph_value"
    text, how = corrupt_text(rng, json.dumps(doc))
    return text, f"text_{how}"


# --- run folders ------------------------------------------------------------------------


def state_case(rng: random.Random, state: dict, torch) -> tuple[Any, str]:
    """(an object for torch.save, damage) from a good state dict."""
    out = dict(state)
    key = rng.choice(["format", "step", "weights", "optimizer", "running", "torch_rng",
                      "optimizer.state", "optimizer.param_groups", "weights.item"])
    odd_tensors = [torch.zeros(0), torch.zeros(3, dtype=torch.int64), torch.zeros(2, 2),
                   torch.tensor(float("nan")), torch.zeros(5056, dtype=torch.uint8)[:7],
                   torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.complex64)]
    value = rng.choice([nasty(rng), rng.choice(odd_tensors)])
    if key == "optimizer.state":
        out["optimizer"] = {**state["optimizer"], "state": rng.choice([
            {0: value}, {"0": {}}, {-1: {"exp_avg": value}}, {0: {"exp_avg": value}}, value])}
    elif key == "optimizer.param_groups":
        groups = [dict(g) for g in state["optimizer"]["param_groups"]]
        groups[0][rng.choice(["params", "lr", "betas", "eps"])] = value
        out["optimizer"] = {**state["optimizer"], "param_groups": rng.choice([groups, value])}
    elif key == "weights.item":
        weights = dict(state["weights"])
        weights[rng.choice(sorted(weights))] = value
        out["weights"] = weights
    elif rng.random() < 0.2:
        del out[key]
    else:
        out[key] = value
    return out, key


def damage_zip(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Byte damage to a zip file (state.pt, .npz): flips, truncation, a lying record."""
    choice = rng.randrange(5)
    b = bytearray(data)
    if choice == 0:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b), "flip"
    if choice == 1:
        return bytes(b[: rng.randrange(len(b))]), "truncate"
    if choice == 2:   # a local or central header's sizes made to lie
        at = rng.choice([i for i in range(len(b) - 30) if b[i:i + 2] == b"PK"] or [0])
        b[at + 18:at + 26] = struct.pack("<II", rng.randrange(1 << 32), rng.randrange(1 << 32))
        return bytes(b), "sizes"
    if choice == 3:
        return bytes(b) + bytes(rng.randrange(1, 5000)), "trailing"
    return b"PK\x05\x06" + bytes(18), "empty_archive"


# --- data files -------------------------------------------------------------------------


def csv_case(rng: random.Random) -> tuple[bytes, str]:
    """A CSV file: a valid one with text damage, or odd cells."""
    rows = ["a,b,label"] + [f"{i % 7},{(i * 3) % 5},{'xy'[i % 2]}" for i in range(30)]
    choice = rng.randrange(4)
    if choice == 0:
        text, how = corrupt_text(rng, "\n".join(rows) + "\n")
        return text.encode("utf-8", "surrogatepass"), f"text_{how}"
    if choice == 1:
        i, j = rng.randrange(1, len(rows)), rng.randrange(3)
        cells = rows[i].split(",")
        cells[j] = json.dumps(nasty(rng), allow_nan=True)[:3000]
        rows[i] = ",".join(cells)
        return ("\n".join(rows) + "\n").encode("utf-8", "surrogatepass"), "cell"
    if choice == 2:
        head = rng.choice(NASTY_TEXT)
        rows[0] = f'"{head}",b,label'
        return ("\n".join(rows) + "\n").encode("utf-8", "surrogatepass"), "header"
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
    return junk, "binary"


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_case(rng: random.Random) -> tuple[bytes, str]:
    """An .npy file whose header or data is damaged or lies."""
    array = rng.choice([np.arange(80, dtype=np.float32).reshape(40, 2),
                        np.arange(40) % 2, np.array(["a", "b"] * 20)])
    data = bytearray(npy_bytes(array))
    header_end = data.index(b"\n") + 1
    choice = rng.randrange(5)
    if choice == 0:   # the header dict rewritten
        fields = {"descr": rng.choice(["<f4", "|O", "<c8", "|V8", "<M8[s]", ">i8", "<U0", "x"]),
                  "fortran_order": rng.choice([False, True, "yes"]),
                  "shape": rng.choice([(40, 2), (10**12,), (2**40, 2**40), (-1,), (), (0, 5),
                                       (40,), (1_000_001, 1)])}
        header = io.BytesIO()
        try:
            np.lib.format.write_array_header_1_0(header, fields)
        except ValueError:
            return bytes(data), "header_kept"
        return header.getvalue() + bytes(data[header_end:]), "header"
    if choice == 1:
        return bytes(data[: rng.randrange(len(data))]), "truncate"
    if choice == 2:
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(header_end)] = rng.randrange(256)
        return bytes(data), "header_flip"
    if choice == 3:
        return bytes(data[:6]) + bytes([rng.randrange(256), rng.randrange(256)]) + \
            bytes(data[8:]), "version"
    return b"\x93NUMPY" + bytes(rng.randrange(256) for _ in range(rng.randrange(2, 200))), "junk"


def npz_case(rng: random.Random) -> tuple[bytes, str]:
    """An .npz archive: members damaged, missing, renamed, or the archive bytes damaged."""
    x = np.arange(80, dtype=np.float32).reshape(40, 2)
    y = np.arange(40) % 2
    members = {"x.npy": npy_bytes(x), "y.npy": npy_bytes(y)}
    choice = rng.randrange(4)
    if choice == 0:
        name = rng.choice(sorted(members))
        members[name], how = npy_case(rng)
        how = f"member_{how}"
    elif choice == 1:
        members.pop(rng.choice(sorted(members)))
        members[rng.choice(["z.npy", "x", "../x.npy", "\x1b.npy"])] = npy_bytes(y)
        how = "names"
    else:
        how = "archive"
    buffer = io.BytesIO()
    method = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
    with zipfile.ZipFile(buffer, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    data = buffer.getvalue()
    if choice >= 2:
        data, damage = damage_zip(rng, data)
        how = f"archive_{damage}"
    return data, how


DATA_CASES: dict[str, Callable[[random.Random], tuple[bytes, str]]] = {
    "csv": csv_case, "npy": npy_case, "npz": npz_case}
