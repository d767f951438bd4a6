"""The benchmark suite runs: `python -m bench --smoke`, every row, in subprocesses.

This checks that the suite works end to end (it prints its table and writes a results file
with the machine, the commit and every row asked for); it does not judge the figures, which
belong to a quiet machine and `python -m bench` (see bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def smoke_run(tmp_path, rows: str, timeout: float) -> tuple[dict, str]:
    """`python -m bench --smoke --rows ROWS`: its results file and what it printed."""
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--rows", rows,
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.slow
def test_smoke_run_writes_results(tmp_path):
    results, printed = smoke_run(tmp_path, "1,2,3,9", timeout=600)
    assert results["mode"] == "smoke"
    assert {"cpu", "cores", "python", "torch"} <= set(results["machine"])
    assert "commit" in results["git"]
    assert set(results["rows"]) == {"1", "2", "3", "9"}
    for number, row in results["rows"].items():
        assert "error" not in row, f"row {number}: {row.get('error')}"
    assert set(results["rows"]["1"]["graphs"]) == {"moons_mlp", "digits_cnn", "residual_mlp",
                                                   "rnn_scan", "gated_branch", "adaptive_depth",
                                                   "attention"}
    for g in results["rows"]["1"]["graphs"].values():   # the twins compute the same function
        assert g["max_output_difference"] < 1e-5
    assert set(results["rows"]["2"]["graphs"]) == {"moons_mlp"}   # all three in --quick
    assert set(results["rows"]["3"]["graphs"]) == {"chain", "dag", "loops3"}
    assert set(results["rows"]["9"]["deployed"]) == {"adaptive_depth"}
    assert [e["row"] for e in results["summary"]] == ["1", "2", "3", "9"]
    assert "compiled vs hand-written" in printed and "traced path" in printed


@pytest.mark.slow
@pytest.mark.gui
def test_smoke_run_of_the_studio_rows(tmp_path):
    """Rows 4-8 drive the real studio on a private Xvfb screen (about 90 s here)."""
    rows = smoke_run(tmp_path, "4,5,6,7,8", timeout=900)[0]["rows"]
    assert set(rows) == {"4", "5", "6", "7", "8"}
    for number, row in rows.items():
        assert "error" not in row and "skipped" not in row, f"row {number}: {row}"
    assert rows["4"]["code_updated"] and rows["4"]["edit_ms"] > 0
    assert {"idle:0", "idle:100", "training:100"} <= set(rows["5"]["results"])
    assert rows["6"]["steps"] > 0 and rows["6"]["ratio"] > 0
    assert rows["7"]["torch_loaded_at_first_frame"] is False   # the first frame never waits
    assert rows["8"]["peak_rss_mib"] > rows["8"]["empty_rss_mib"] > 0


def test_generated_graphs_validate():
    from bench.graphs import KINDS, count_nodes, mlp, trainable_chain
    from engine import analyze

    for make in (*KINDS.values(), trainable_chain):
        for size in (10, 100):
            graph = make(size)
            assert analyze(graph).ok
            assert count_nodes(graph) == size or make is KINDS["loops3"]
    assert analyze(mlp(20)).ok
