"""Kill a process that is saving a graph, over and over, and look at what it leaves.

A small server process (no torch) loads two versions of a big graph once, then, on
request, forks a writer child that saves them alternately to one path in an endless
loop: every tenth writer calls `save_graph`, the others `atomic_write` with the same text
already dumped (dumping touches no file and takes most of a save's time, so this keeps the
kills inside the writing). The
caller kills the child with SIGKILL at a random moment and checks the file: it must be
byte for byte one of the two versions, and at most one orphaned temporary file may be
left by each writer killed mid-save, and none that a later finished save should have
removed (a successful save deletes the orphans of writers no longer running).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from engine.core.fileformat import dumps, load_graph
from engine.core.graph import Edge, Graph, Node

REPO = Path(__file__).resolve().parents[2]

SERVER = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from engine.core.fileformat import atomic_write, loads, save_graph
target, texts = sys.argv[2], [open(p, encoding="utf-8").read() for p in sys.argv[3:5]]
graphs = [loads(t) for t in texts]
data = [t.encode("utf-8") for t in texts]
print("ready", flush=True)
for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "spawn":
        pid = os.fork()
        if pid == 0:
            try:
                i = k = int(arg)
                while True:   # every tenth writer dumps each time, as save_graph does
                    if k % 10 == 9:
                        save_graph(graphs[i % 2], target)
                    else:
                        atomic_write(target, data[i % 2])
                    i += 1
            finally:
                os._exit(1)
        print(pid, flush=True)
    elif cmd == "reap":
        os.waitpid(int(arg), 0)
        print("reaped", flush=True)
"""


def big_graph(nodes: int, tag: str) -> Graph:
    """A chain of `nodes` Linear blocks with long labels (about 300 bytes of file each)."""
    chain = [Node("x", "input", {"shape": [8]})] + [
        Node(f"n{i}", "linear", {"out_features": 8 + (tag == "b")}, pos=(10.0 * i, 5.0),
             label=f"{tag} layer {i} " * 10) for i in range(nodes)] + [Node("o", "output")]
    ids = [n.id for n in chain]
    return Graph(tuple(chain), tuple(Edge((a, "y"), (b, "x")) for a, b in itertools.pairwise(ids)),
                 name=f"big_{tag}")


def orphans(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def kill_loop(folder: Path, kills: int, *, seed: int = 0, nodes: int = 1000,
              check_load_every: int = 25) -> dict:
    """Run `kills` kill-and-check rounds; returns the figures. Raises AssertionError on the
    first round that leaves a broken or foreign file, or orphaned temp files piling up."""
    rng = random.Random(seed)
    versions = [dumps(big_graph(nodes, "a")), dumps(big_graph(nodes, "b"))]
    assert versions[0] != versions[1]
    sources = []
    for i, text in enumerate(versions):
        sources.append(folder / f"version{i}.json")
        sources[-1].write_text(text, encoding="utf-8")
    target = folder / "graph.json"
    target.write_text(versions[0], encoding="utf-8")   # an old file exists from the start
    expected = [v.encode("utf-8") for v in versions]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(REPO), str(target), *map(str, sources)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    stats: Counter = Counter()
    try:
        assert server.stdout.readline().strip() == "ready"
        # How long one save takes, so the kills spread over a few of them.
        start = time.perf_counter()
        server.stdin.write("spawn 1\n")
        server.stdin.flush()
        pid = int(server.stdout.readline())
        before = target.stat().st_mtime_ns
        while target.stat().st_mtime_ns == before and time.perf_counter() - start < 30:
            time.sleep(0.001)
        cycle = max(0.005, time.perf_counter() - start)
        os.kill(pid, signal.SIGKILL)
        server.stdin.write(f"reap {pid}\n")
        server.stdin.flush()
        server.stdout.readline()
        stats["cycle_ms"] = round(cycle * 1000)
        for k in range(kills):
            inode = target.stat().st_ino
            before_left = orphans(target)
            server.stdin.write(f"spawn {k}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            if k % 2:   # a random moment of its first few saves
                time.sleep(rng.uniform(0, 4 * cycle))
            else:       # soon after it opens its temp file: aim at the writing itself
                deadline = time.perf_counter() + 2
                while not list(folder.glob(f".{target.name}.{pid}.*.tmp")) and \
                        time.perf_counter() < deadline:
                    pass
                time.sleep(rng.uniform(0, cycle / 2))
            os.kill(pid, signal.SIGKILL)
            server.stdin.write(f"reap {pid}\n")
            server.stdin.flush()
            assert server.stdout.readline().strip() == "reaped"
            data = target.read_bytes()
            assert data in expected, f"kill {k}: the file is neither version ({len(data)} bytes)"
            stats[f"file_is_version_{expected.index(data)}"] += 1
            if k % check_load_every == 0:
                assert dumps(load_graph(target)) == versions[expected.index(data)]
                stats["loaded"] += 1
            left = orphans(target)
            mine = [p for p in left if f".{pid}." in p.name]
            stats["kills_mid_write"] += bool(mine)   # the kill landed between mkstemp and rename
            # Each save renames a new file into place. Writer k saves version k % 2 first, so
            # the other version under a new inode means it finished two saves, and the first
            # one's clean-up (which runs before the second starts) removed every older orphan.
            saved = target.stat().st_ino != inode
            two_saves = saved and expected.index(data) != k % 2
            assert set(left) <= set(before_left) | set(mine), f"kill {k}: foreign temp files {left}"
            if two_saves:
                assert left == mine, f"kill {k}: orphans survived a finished save: {left}"
            stats["max_orphans"] = max(stats["max_orphans"], len(left))
            stats["writers_that_saved_twice"] += two_saves
            stats["kills"] += 1
    finally:
        server.stdin.close()
        server.wait(30)
        server.stdout.close()
    return dict(stats)


# --- run folders: several files saved together ------------------------------------------

GROUP_SERVER = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from engine.core.fileformat import atomic_write_all
folder, names = sys.argv[2], sys.argv[3].split(",")
versions = [[(os.path.join(folder, n), open(os.path.join(src, n), "rb").read()) for n in names]
            for src in sys.argv[4:6]]
print("ready", flush=True)
for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "spawn":
        pid = os.fork()
        if pid == 0:
            try:
                while True:   # the same version again and again
                    atomic_write_all(versions[int(arg)])
            finally:
                os._exit(1)
        print(pid, flush=True)
    elif cmd == "reap":
        os.waitpid(int(arg), 0)
        print("reaped", flush=True)
"""


def group_kill_loop(folder: Path, versions: list[dict[str, bytes]], kills: int, *,
                    seed: int = 0) -> dict:
    """Kill writers of a group of files (a run folder's checkpoint, its last file last) at
    random moments. Each round starts from a folder holding the old version of every file and
    a writer saving the new one; after the kill every file must be whole, and the new files
    must be a prefix of the list: the renames run in order, so the last file new means every
    file is new. Returns the figures; AssertionError on the first round that breaks that."""
    rng = random.Random(seed)
    names = list(versions[0])
    sources = []
    for i, files in enumerate(versions):
        src = folder / f"version{i}"
        src.mkdir()
        for name, data in files.items():
            (src / name).write_bytes(data)
        sources.append(src)
    target = folder / "run"
    target.mkdir()
    server = subprocess.Popen([sys.executable, "-c", GROUP_SERVER, str(REPO), str(target),
                               ",".join(names), *map(str, sources)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    stats: Counter = Counter()
    try:
        assert server.stdout.readline().strip() == "ready"
        cycle = _save_time(server, target, names, versions)
        stats["cycle_ms"] = round(cycle * 1000, 1)
        for k in range(kills):
            new = k % 2
            for name, data in versions[1 - new].items():
                (target / name).write_bytes(data)
            server.stdin.write(f"spawn {new}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            time.sleep(rng.uniform(0, 1.5 * cycle))   # within the first save or two
            os.kill(pid, signal.SIGKILL)
            server.stdin.write(f"reap {pid}\n")
            server.stdin.flush()
            assert server.stdout.readline().strip() == "reaped"
            found = []
            for name in names:
                data = (target / name).read_bytes()
                assert data in (versions[0][name], versions[1][name]), \
                    f"kill {k}: {name} is neither version ({len(data)} bytes)"
                found.append(data == versions[new][name])
            renamed = found.index(False) if False in found else len(found)
            assert found == [True] * renamed + [False] * (len(found) - renamed), \
                f"kill {k}: renamed out of order: {dict(zip(names, found, strict=True))}"
            stats[f"renamed_{renamed}"] += 1
            stats["mid_renames"] += 0 < renamed < len(found)
            stats["max_orphans"] = max(stats["max_orphans"], len(list(target.glob(".*.tmp"))))
            stats["kills"] += 1
    finally:
        server.stdin.close()
        server.wait(30)
        server.stdout.close()
    return dict(stats)


def _save_time(server, target: Path, names: list[str], versions) -> float:
    """How long one writer takes to save the group the first time (from spawn to the last
    file renamed)."""
    for name, data in versions[0].items():
        (target / name).write_bytes(data)
    start = time.perf_counter()
    server.stdin.write("spawn 1\n")
    server.stdin.flush()
    pid = int(server.stdout.readline())
    last = target / names[-1]
    while last.read_bytes() != versions[1][names[-1]] and time.perf_counter() - start < 30:
        time.sleep(0.0005)
    cycle = time.perf_counter() - start
    os.kill(pid, signal.SIGKILL)
    server.stdin.write(f"reap {pid}\n")
    server.stdin.flush()
    server.stdout.readline()
    return max(cycle, 0.001)
