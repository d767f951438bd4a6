"""`python -m engine.cli check|export|blocks`: exit codes, output, and one clear line (never a
traceback) for anything it cannot read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import REPO, SAMPLE_NAMES, subprocess_env

import engine
from engine import cli
from nodes import CATEGORIES, REGISTRY

SAMPLES = REPO / "sample_graphs"


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=subprocess_env(), timeout=60)


def call(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_valid_graph_exits_0_and_lists_shapes_and_counts():
    result = run_cli("check", str(SAMPLES / "moons_mlp.json"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "valid" in out.splitlines()[0] and "354 parameters" in out.splitlines()[0]
    row = next(line for line in out.splitlines() if line.split()[:2] == ["fc1", "Linear"])
    assert "(B, 16)" in row and row.split()[-1] == "48"
    assert result.stderr == ""


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_check_every_sample(capsys, name):
    code, out, _ = call(capsys, "check", str(SAMPLES / f"{name}.json"))
    assert code == 0 and "valid" in out
    if name == "rnn_scan":
        assert "rnn/body/from_input" in out   # rows for nodes inside bodies too


def write(tmp_path: Path, name: str, doc) -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def broken_graph(tmp_path: Path) -> Path:
    doc = json.loads((SAMPLES / "moons_mlp.json").read_text())
    doc["nodes"][2]["type"] = "frobnicate"
    return write(tmp_path, "broken.json", doc)


def test_check_invalid_graph_exits_1_with_the_diagnostic(capsys, tmp_path):
    code, out, _ = call(capsys, "check", str(broken_graph(tmp_path)))
    assert code == 1
    assert "INVALID" in out and "[unknown_block]" in out and "act1" in out


def hostile_files(tmp_path: Path) -> list[Path]:
    moons = (SAMPLES / "moons_mlp.json").read_text()
    doc = json.loads(moons)
    doc["nodes"][1]["id"] = "fc1\n__import__('os').system('touch dprog_pwned_marker')"
    newer = json.loads(moons)
    newer["version"] = 99
    evil_key = json.loads(moons)
    evil_key["training"]["dataset"]["two\nlines\r\u2028"] = [1]
    return [
        write(tmp_path, "truncated.json", moons[:200]),
        write(tmp_path, "hostile_id.json", doc),
        write(tmp_path, "newer.json", newer),
        write(tmp_path, "evil_key.json", evil_key),
        write(tmp_path, "nan.json", moons.replace('"out_features": 16', '"out_features": NaN', 1)),
        write(tmp_path, "deep.json", "[" * 50_000 + "]" * 50_000),
        write(tmp_path, "list.json", "[]"),
        write(tmp_path, "empty.json", ""),
        tmp_path / "missing.json",
        tmp_path,   # a directory
        tmp_path / "binary.json",   # written by the test
    ]


@pytest.mark.parametrize("command", ["check", "export"])
def test_unreadable_files_give_one_line_and_exit_2(capsys, tmp_path, command, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = hostile_files(tmp_path)
    files[-1].write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    for path in files:
        code, out, err = call(capsys, command, str(path))
        assert code == 2, (path, out, err)
        assert out == ""
        assert len(err.strip().splitlines()) == 1 and err.startswith("dprog: "), err
        assert "Traceback" not in err
    assert not (tmp_path / "dprog_pwned_marker").exists()


def test_bad_usage_exits_2(capsys):
    for args in (["check"], ["check", "a.json", "b.json"], ["export"], ["blocks", "x", "y"],
                 ["check", "--nope", "a.json"]):
        with pytest.raises(SystemExit) as info:
            cli.main(args)
        assert info.value.code == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_subprocess_failure_has_no_traceback(tmp_path):
    result = run_cli("check", str(hostile_files(tmp_path)[0]))
    assert result.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert run_cli("check").returncode == 2


def test_blocks_lists_every_block_type(capsys):
    code, out, _ = call(capsys, "blocks")
    assert code == 0
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")
              and not line.startswith("    ")}
    assert listed == set(REGISTRY)
    code, out, _ = call(capsys, "blocks", "control")
    assert code == 0 and "loop" in out and "linear" not in out


def test_blocks_of_an_unknown_category_exits_2_and_lists_the_categories(capsys):
    code, out, err = call(capsys, "blocks", "nosuch")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "'nosuch'" in err
    assert all(category in err for category in CATEGORIES), err
    code, out, err = call(capsys, "blocks", "activation")   # a near miss gets a suggestion
    assert code == 2 and "did you mean 'Activations'" in err
    code, out, _ = call(capsys, "blocks", "ReLu")   # a block's own type shows that block
    assert code == 0 and out.split()[:2] == ["Activations", "relu"]


def test_export_of_an_invalid_graph_exits_1(capsys, tmp_path):
    target = tmp_path / "model.py"
    code, _out, err = call(capsys, "export", str(broken_graph(tmp_path)), "-o", str(target))
    assert code == 1 and "[unknown_block]" in err and not target.exists()


def test_export_to_an_unwritable_place_exits_2(capsys, tmp_path):
    code, _, err = call(capsys, "export", str(SAMPLES / "moons_mlp.json"), "-o",
                        str(tmp_path / "no" / "such" / "dir" / "model.py"))
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_export_to_stdout(capsys):
    code, out, _ = call(capsys, "export", str(SAMPLES / "rnn_scan.json"))
    assert code == 0 and "class RnnScan(nn.Module):" in out


@pytest.mark.slow
def test_exported_files_run_in_a_fresh_python_with_only_torch(tmp_path, samples, capsys):
    out = tmp_path / "models"
    out.mkdir()
    first, *others = SAMPLE_NAMES
    result = run_cli("export", str(SAMPLES / f"{first}.json"), "-o", str(out / f"{first}.py"))
    assert result.returncode == 0 and result.stdout == "", result.stderr
    for name in others:   # the same command, in this process (a python start each is slow)
        code, _, err = call(capsys, "export", str(SAMPLES / f"{name}.json"), "-o",
                            str(out / f"{name}.py"))
        assert code == 0, err
    # Inputs as the engine makes them (token ids within range, probabilities in [0, 1)),
    # handed over as plain tensors; the child knows only torch.
    import torch

    expected = {}
    for name in SAMPLE_NAMES:
        graph = samples[name]
        torch.save(list(engine.example_inputs(graph, 3, generator=torch.Generator().manual_seed(0))),
                   out / f"{name}_inputs.pt")
        analysis = engine.analyze(graph)
        expected[name] = [tuple(3 if d == "B" else d for d in analysis.inputs[n.id]["x"].shape)
                          for n in graph.nodes if n.type == "output"]
    script = textwrap.dedent("""
        import importlib, sys
        for blocked in ("engine", "nodes", "app"):
            sys.modules[blocked] = None     # only torch (and the stdlib) may be used
        import torch
        torch.manual_seed(0)
        for name in {names!r}:
            module = importlib.import_module(name)
            model = getattr(module, module.__all__[0])()
            out = model(*torch.load(name + "_inputs.pt", weights_only=True))
            outs = out if isinstance(out, tuple) else (out,)
            print(name, [tuple(o.shape) for o in outs])
    """).format(names=list(SAMPLE_NAMES))
    env = subprocess_env()
    del env["PYTHONPATH"]
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=out, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        name, shapes = line.split(" ", 1)
        assert shapes == str(expected[name]), name
    assert len(result.stdout.splitlines()) == len(SAMPLE_NAMES)
