"""The generated code of every sample graph, compared with tests/golden/<name>.py.

A change to the generator shows up here as a readable diff. After checking that the new
code reads right, rewrite the files with:

    DPROG_UPDATE_GOLDEN=1 python -m pytest tests/test_engine_golden.py
"""

from __future__ import annotations

import os

import pytest
from helpers import REPO, SAMPLE_NAMES

import engine

GOLDEN = REPO / "tests" / "golden"
UPDATE = os.environ.get("DPROG_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_generated_code_matches_golden_file(name, samples):
    source = engine.export_python(samples[name])
    path = GOLDEN / f"{name}.py"
    if UPDATE:
        path.write_text(source, encoding="utf-8")
    assert path.exists(), f"no golden file {path}; run with DPROG_UPDATE_GOLDEN=1 to write it"
    assert source == path.read_text(encoding="utf-8"), (
        f"generated code for {name} changed; if the new code is right, rerun with "
        "DPROG_UPDATE_GOLDEN=1")


def test_no_stale_golden_files():
    stale = {p.stem for p in GOLDEN.glob("*.py")} - set(SAMPLE_NAMES)
    assert not stale, f"golden files without a sample graph: {sorted(stale)}"


def test_generation_is_deterministic(samples):
    for graph in samples.values():
        assert engine.export_python(graph) == engine.export_python(graph)
