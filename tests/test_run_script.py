"""`./run`, the set-up script of a fresh clone: it says what each first-launch step does and
how far along it is, and `./run studio` opens the moons_mlp sample as a copy (issue 16).

The script runs on a copy of itself, in a folder whose `python3`, `.venv/bin/python` and
`.venv/bin/dprog` are stand-ins that record how they were called, so nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from helpers import REPO

FAKE_PYTHON = """#!/usr/bin/env bash
# A stand-in interpreter: `-c "import torch"` fails until torch is "installed".
here="$(cd "$(dirname "$0")" && pwd)"
if [ "$1" = "-c" ]; then [ -f "$here/torch" ]; exit $?; fi
if [ "$1 $2" = "-m pip" ]; then
    echo "pip $*"
    case "$*" in *torch==*) touch "$here/torch";; esac
    exit 0
fi
echo "python $*"
"""
FAKE_PYTHON3 = """#!/usr/bin/env bash
# A stand-in for `python3 -m venv DIR`: a venv whose python is the stand-in above.
mkdir -p "$3/bin"
cp "$(dirname "$0")/fake_python" "$3/bin/python"
cp "$(dirname "$0")/fake_dprog" "$3/bin/dprog"
"""
FAKE_DPROG = """#!/usr/bin/env bash
echo "dprog $*"
"""


def tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "clone"
    root.mkdir()
    shutil.copy(REPO / "run", root / "run")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    tools = tmp_path / "tools"
    tools.mkdir()
    for name, text in (("python3", FAKE_PYTHON3), ("fake_python", FAKE_PYTHON),
                       ("fake_dprog", FAKE_DPROG)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{tools}:{os.environ['PATH']}")
    return root, env


def run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(root / "run"), *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_first_launch_counts_its_steps_then_later_ones_are_silent(tmp_path: Path) -> None:
    root, env = tree(tmp_path)
    first = run(root, env, "studio")
    assert first.returncode == 0, first.stderr
    steps = [line for line in first.stderr.splitlines() if line.startswith("dprog: [")]
    assert [s.split("]")[0] for s in steps] == ["dprog: [1/3", "dprog: [2/3", "dprog: [3/3"]
    assert "virtual environment" in steps[0]
    assert "torch 2.13.0" in steps[1] and "MB" in steps[1] and "minute" in steps[1]
    assert "dependencies" in steps[2]
    assert "minutes" in first.stderr.splitlines()[0], "the first line says how long it takes"
    assert "set-up done in" in first.stderr
    assert "pip -m pip install" in first.stdout, "pip's own output is shown, not hidden"
    again = run(root, env, "studio")
    assert again.returncode == 0 and again.stderr == "", again.stderr


def test_studio_without_a_graph_opens_the_sample_as_a_copy(tmp_path: Path) -> None:
    root, env = tree(tmp_path)
    done = run(root, env, "studio")
    assert done.stdout.strip().splitlines()[-1] == "dprog --sample moons_mlp"
    done = run(root, env, "studio", "mine.json")
    assert done.stdout.strip().splitlines()[-1] == "dprog mine.json"
