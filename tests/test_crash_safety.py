"""Saves are atomic: a process killed at any moment leaves the old file or the new one.

The kill test (tests/fuzzing/crash.py) has a child process save a big graph in a loop,
alternating two versions, and kills it with SIGKILL at random moments: 50 times here,
as many as asked by `python bench/fuzz.py --kills N`. After every kill the file is byte
for byte one of the two versions (and loads as it); temp files orphaned by a kill never
pile up, because the next successful save removes those of writers no longer running.

What happens to an orphan: `atomic_write` writes `.NAME.PID.XXXXXXXX.tmp` beside the file,
fsyncs it, renames it over the file, and fsyncs the folder. SIGKILL before the rename
leaves that temp file (the real file is untouched); the next save of the same file by any
dprog process deletes temp files whose PID is not running. A writer that is still running
keeps its temp file, so two processes saving at once never break each other's save.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fuzzing.crash import big_graph, kill_loop, orphans

from engine.core.fileformat import atomic_write, dumps, load_graph, save_graph


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the kill test forks writers")
def test_sigkill_at_random_moments_leaves_the_old_or_the_new_file(tmp_path):
    stats = kill_loop(tmp_path, kills=50, seed=1)
    assert stats["kills"] == 50
    assert stats.get("file_is_version_0", 0) + stats.get("file_is_version_1", 0) == 50
    # The kills must land inside the writing, not only before or after it.
    assert stats["kills_mid_write"] >= 10, stats
    assert stats["writers_that_saved_twice"] >= 1, stats   # the clean-up was exercised
    # One more save, by anyone, and no orphan is left.
    save_graph(big_graph(10, "c"), tmp_path / "graph.json")
    assert orphans(tmp_path / "graph.json") == []


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "graph.json"
    save_graph(big_graph(5, "a"), path)
    old = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_graph(big_graph(5, "b"), path)
    assert path.read_bytes() == old
    assert orphans(path) == []


def test_interrupting_a_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "graph.json"
    save_graph(big_graph(5, "a"), path)
    old = path.read_bytes()
    real_replace = os.replace

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_graph(big_graph(5, "b"), path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert path.read_bytes() == old and orphans(path) == []


def test_orphans_of_dead_writers_go_and_live_ones_stay(tmp_path):
    path = tmp_path / "my.graph.json"   # dots in the name must not confuse the match
    dead = tmp_path / ".my.graph.json.999999999.abcdefgh.tmp"
    alive = tmp_path / f".my.graph.json.{os.getppid()}.abcdefgh.tmp"
    other = tmp_path / ".other.json.999999999.abcdefgh.tmp"
    for p in (dead, alive, other):
        p.write_text("half a file")
    save_graph(big_graph(3, "a"), path)
    assert not dead.exists() and alive.exists() and other.exists()
    assert dumps(load_graph(path)) == dumps(big_graph(3, "a"))


def test_saving_keeps_the_file_mode(tmp_path):
    # mkstemp makes 0600 files: a save used to make a shared graph (or model.py) private.
    path = tmp_path / "graph.json"
    save_graph(big_graph(3, "a"), path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    atomic_write(path, b"{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_read_only_folder_fails_cleanly(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "graph.json"
    save_graph(big_graph(3, "a"), path)
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):   # running as root: permissions are not enforced
            pytest.skip("root can write anywhere")
        with pytest.raises(PermissionError):
            save_graph(big_graph(3, "b"), path)
        assert dumps(load_graph(path)) == dumps(big_graph(3, "a"))
    finally:
        folder.chmod(0o700)


def test_the_kill_test_notices_a_non_atomic_save(tmp_path, monkeypatch):
    """The harness itself: a save that writes the file in place is caught at once."""
    import fuzzing.crash as crash

    monkeypatch.setattr(crash, "SERVER", crash.SERVER.replace(
        "atomic_write(target, data[i % 2])",
        "open(target, 'wb').write(data[i % 2][:len(data[i % 2]) // 2]) or "
        "open(target, 'wb').write(data[i % 2])"))
    with pytest.raises(AssertionError, match="neither version"):
        crash.kill_loop(Path(tmp_path), kills=50, seed=2)
