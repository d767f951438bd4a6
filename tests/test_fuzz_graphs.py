"""Fuzzing graph files: malformed files get clean errors, valid ones compile and run.

Every case goes through tests/fuzzing/pipeline.py: `loads` on the text and `load_graph` on
a file, `validate`, `compile_graph`, a forward pass on `example_inputs` (batch 2) whose
outputs must have the shapes the analysis promised, a save/load round trip, and
`dprog check` run in-process. The only allowed outcomes are a GraphFileError, error
diagnostics, or a graph that does all of that; each case runs under a time limit.

Cases (about 780 judged files, seconds): the samples; seeded groups from the generator (grown
valid graphs with loops and branches, their mutants, mutated samples, corrupted text);
hypothesis-driven cases (random generator choices, wrong JSON values at random places,
every block's params set to in-range, out-of-range and wrong-kind values, text damage);
and hand-picked malformed files of each kind the hardening issue lists. A few real
`dprog check` subprocesses check exit codes and that no traceback is ever printed.
bench/fuzz.py runs the same pipeline for 100,000 cases and more.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from fuzzing.generate import (
    PAYLOADS,
    corrupt_text,
    deep,
    grow,
    hostile_value,
    m_function,
    make_case,
    make_cases,
    mutate,
    nested_loops,
    sample_document,
    sample_names,
)
from fuzzing.hosts import host, hosted_types
from fuzzing.pipeline import judge, quiet_torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodes import REGISTRY

REPO = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    quiet_torch()


def dump(doc) -> str:
    return json.dumps(doc, ensure_ascii=False)


def expect(text: str, kind: str | None = None, detail: str | None = None, **routes) -> None:
    outcome = judge(text, seconds=60, **routes)   # raises FuzzBug on anything not allowed
    if kind is not None:
        assert outcome.kind == kind, outcome
    if detail is not None:
        assert detail in outcome.detail, outcome


# --- the samples and the generator -------------------------------------------------------


@pytest.mark.parametrize("name", sample_names())
def test_samples_pass_every_route(name):
    expect((REPO / "sample_graphs" / f"{name}.json").read_text(), "ok")


@pytest.mark.parametrize("name", ["unet", "gpt_blocks", "siamese"])
def test_function_mutants(name):
    """The function samples with functions, calls, groups and ties broken (and sometimes one
    more mutation anywhere, function bodies included): every route refuses or runs them."""
    rng = random.Random(name)
    seen = set()
    for _ in range(12):
        doc = sample_document(name)
        seen.add(m_function(rng, doc))
        if rng.random() < 0.3:
            mutate(rng, doc, 1)
        expect(dump(doc), files=False, cli=False)
    assert len(seen) >= 4, seen


@pytest.mark.parametrize("group", range(16))
def test_seeded_groups(group):
    """80 cases: 16 grown graphs, their mutants, mutated samples and damaged text."""
    rng = random.Random(7_000 + group)
    for i, case in enumerate(make_cases(rng, 5)):
        judge(case.text, case.data, seconds=60, files=i == 0, cli=i < 2, roundtrip=i < 2)


def test_the_generator_reaches_every_outcome_and_block():
    """The cases above are worth something only if they get past the loader, and past the
    analysis too, with every kind of block."""
    rng = random.Random(0)
    kinds, blocks = set(), set()
    for _ in range(30):
        case = make_case(rng)
        kinds.add(judge(case.text, case.data, seconds=60, files=False, cli=False,
                        roundtrip=False).kind)
        try:
            for region in _regions(json.loads(case.text)):
                blocks.update(n.get("type") for n in region.get("nodes", []) if isinstance(n, dict))
        except (ValueError, AttributeError, TypeError, RecursionError):
            pass
    assert kinds == {"unreadable", "invalid", "ok"}
    assert {"loop", "branch", "linear", "expression", "body_input"} <= blocks


def _regions(doc):
    out, stack = [], [doc]
    while stack:
        r = stack.pop()
        if isinstance(r, dict):
            out.append(r)
            for n in r.get("nodes", []) if isinstance(r.get("nodes"), list) else []:
                if isinstance(n, dict) and isinstance(n.get("regions"), dict):
                    stack += n["regions"].values()
    return out


# --- hypothesis ----------------------------------------------------------------------------


@settings(SETTINGS, max_examples=25)
@given(st.randoms(use_true_random=False))
def test_hypothesis_generator_choices(rnd):
    case = make_case(rnd)
    judge(case.text, case.data, seconds=60, files=False, cli=False, roundtrip=False)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(10 ** 40), 10 ** 40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.sampled_from(PAYLOADS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "type", "nodes", "edges", "params", "from", "to", "x", "y", "role"]),
        inner, max_size=4),
    max_leaves=12)


def _places(value, out, depth=0):
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for k, v in items:
        out.append((value, k))
        _places(v, out, depth + 1)
    return out


@SETTINGS
@given(st.sampled_from(sample_names()), st.integers(min_value=0), JSON)
def test_hypothesis_wrong_json_anywhere(name, where, value):
    doc = sample_document(name)
    places = _places(doc, [])
    parent, key = places[where % len(places)]
    parent[key] = value
    judge(dump(doc), seconds=60, files=False, cli=False, roundtrip=False)


def param_values(p):
    """Values for one Param: its range, just outside it, extremes, and every wrong kind."""
    lo = int(p.min) if p.min is not None else -(1 << 20)
    hi = int(p.max) if p.max is not None else 1 << 20
    return st.one_of(
        st.integers(lo - 2, hi + 2), st.sampled_from([lo, hi, lo - 1, hi + 1, 0, -1]),
        st.integers(), st.floats(allow_nan=False, allow_infinity=False),
        st.floats(min_value=p.min if p.min is not None else -1e6,
                  max_value=p.max if p.max is not None else 1e6),
        st.booleans(), st.none(), st.text(max_size=12), st.sampled_from(p.choices or ("x",)),
        st.lists(st.integers(-3, 70), max_size=9), st.lists(st.integers(), max_size=3),
        st.just(10 ** 400), st.just(-(10 ** 400)))


@st.composite
def block_param(draw):
    type_ = draw(st.sampled_from(hosted_types()))
    spec = REGISTRY[type_]
    doc = host(type_)
    params = doc["nodes"][3]["params"]
    for p in draw(st.lists(st.sampled_from(spec.params), max_size=3)) if spec.params else []:
        params[p.name] = draw(param_values(p))
    if draw(st.booleans()):
        params[draw(st.sampled_from(["bogus", "x", "y"]))] = draw(JSON)
    return doc


@settings(SETTINGS, max_examples=50)
@given(block_param())
def test_hypothesis_block_params(doc):
    judge(dump(doc), seconds=60, files=False, cli=False, roundtrip=False)


@pytest.mark.parametrize("type_", hosted_types())
def test_every_block_at_its_param_extremes(type_):
    """Each param of each block at its largest legal value (the caps must hold), just past
    it, and one hostile value; the hypothesis test above covers the rest of the range."""
    rng = random.Random(type_)
    spec = REGISTRY[type_]
    expect(dump(host(type_)), "ok", files=False, cli=False, roundtrip=False)
    for p in spec.params:
        values = [hostile_value(rng, p)]
        if p.kind in ("int", "float"):
            values += [p.max, (p.max or 0) + 1]
        for value in values:
            doc = host(type_)
            doc["nodes"][3]["params"][p.name] = value
            judge(dump(doc), seconds=60, files=False, cli=False, roundtrip=False)


@SETTINGS
@given(st.sampled_from(sample_names()), st.randoms(use_true_random=False))
def test_hypothesis_damaged_text(name, rnd):
    text, _ = corrupt_text(rnd, (REPO / "sample_graphs" / f"{name}.json").read_text())
    judge(text, seconds=60, files=False, cli=False, roundtrip=False)


# --- hand-picked malformed files ---------------------------------------------------------


def moons() -> dict:
    return sample_document("moons_mlp")


@pytest.mark.parametrize("name", sample_names())
def test_truncated_anywhere(name):
    text = (REPO / "sample_graphs" / f"{name}.json").read_text()
    for cut in (0, 1, len(text) // 3, len(text) // 2, len(text) - 2):
        expect(text[:cut], "unreadable", files=cut == 1, cli=cut == 1, roundtrip=False)


@pytest.mark.parametrize("text", [
    deep("array", 100_000), deep("object", 100_000), "[" * 100_000, '{"a":' * 100_000,
    dump(moons())[:-1] + ', "x": ' + deep("array", 100_000) + "}",
    dump(moons()).replace('"params": {}', '"params": {"p": ' + deep("array", 5000) + "}", 1),
    dump(moons()).replace('[2]', deep("array", 980), 1),
    dump(moons()).replace('"shape": [2]', '"shape": ' + deep("object", 990), 1),
], ids=["array", "object", "open_array", "open_object", "extra_key", "param", "shape", "shape_obj"])
def test_deep_nesting(text):
    expect(text, "unreadable")


@pytest.mark.parametrize("depth, count, kind", [(16, 1, "ok"), (8, 3, "ok"), (17, 1, "unreadable"),
                                                (40, 1, "unreadable"), (16, 3, "invalid")])
def test_regions_nested_deep(depth, count, kind):
    expect(dump(nested_loops(random.Random(0), depth, count)), kind)


NONFINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400", "1.5e308000"]


@pytest.mark.parametrize("literal", NONFINITE)
@pytest.mark.parametrize("where", ["param", "pos", "lr", "dataset", "version", "shape"])
def test_non_finite_numbers(literal, where):
    text = dump(moons())
    target = {"param": '"out_features": 16', "pos": "[40.0, 120.0]", "lr": '"lr": 0.01',
              "dataset": '"noise": 0.2', "version": '"version": 3', "shape": '"shape": [2]'}[where]
    key = target.split(":")[0] + ": " if ":" in target else ""
    replacement = f"{key}{literal}" if key else f"[{literal}, 0]"
    if where == "shape":
        replacement = f'"shape": [{literal}]'
    assert target in text
    expect(text.replace(target, replacement, 1), "unreadable", cli=literal == "NaN")


@pytest.mark.parametrize("value, kind", [
    (10 ** 30, "invalid"), (-5, "invalid"), (0, "invalid"), (2 ** 63, "invalid"), (1.5, "invalid"),
    ("16", "invalid"), (True, "invalid"), ([16], "invalid"), (None, "unreadable"),
    ({"a": 1}, "unreadable"), (10 ** 400, "invalid"), (1 << 20, "ok"), (16.0, "invalid"),
])
def test_wrong_and_extreme_param_values(value, kind):
    doc = moons()
    doc["nodes"][1]["params"]["out_features"] = value
    expect(dump(doc), kind)


@pytest.mark.parametrize("value, kind", [
    ([-1], "invalid"), ([0], "invalid"), ([(1 << 24) + 1], "invalid"), ([1 << 24, 1 << 24], "invalid"),
    # Param lists may hold numbers (a Parameter's initial values): a shape's must be ints,
    # and few, which the analysis says.
    ([], "invalid"), ([2] * 9, "invalid"), ([2] * 17, "invalid"), ([2.5], "invalid"),
    ([2] * 4097, "unreadable"),
    ([10 ** 400], "invalid"), ("2", "invalid"), (2, "invalid"),
])
def test_wrong_input_shapes(value, kind):
    doc = moons()
    doc["nodes"][0]["params"]["shape"] = value
    expect(dump(doc), kind)


def test_pos_too_big_for_a_float():
    doc = moons()
    doc["nodes"][0]["pos"] = [10 ** 400, 0]
    expect(dump(doc), "unreadable")


def edit(doc, fn) -> str:
    fn(doc)
    return dump(doc)


@pytest.mark.parametrize("name, change, kind, code", [
    ("unknown block", lambda d: d["nodes"][2].update(type="softermax"), "invalid", "unknown_block"),
    ("legacy type", lambda d: d["nodes"][1].update(type="dense"), "ok", None),
    ("empty type", lambda d: d["nodes"][2].update(type=""), "invalid", "unknown_block"),
    ("duplicate id", lambda d: d["nodes"][2].update(id="fc1"), "unreadable", None),
    ("duplicate id in a body", lambda d: d["nodes"][3]["regions"]["body"]["nodes"][1].update(id="h"),
     "unreadable", None),
    ("dangling edge", lambda d: d["edges"].append({"from": ["ghost", "y"], "to": ["fc1", "x"]}),
     "unreadable", None),
    ("edge to unknown port", lambda d: d["edges"][0].update({"to": ["fc1", "nope"]}), "invalid",
     "unknown_port"),
    ("self loop", lambda d: d["edges"].append({"from": ["act1", "y"], "to": ["act1", "x"]}),
     "invalid", "duplicate_input"),
    ("cycle", lambda d: d["edges"].__setitem__(0, {"from": ["fc2", "y"], "to": ["fc1", "x"]}),
     "invalid", "cycle"),
    ("doubled wire", lambda d: d["edges"].append(dict(d["edges"][1])), "invalid", "duplicate_input"),
    ("no edges", lambda d: d.update(edges=[]), "invalid", "missing_input"),
    ("no nodes", lambda d: d.update(nodes=[], edges=[]), "invalid", "no_output"),
    ("node dropped", lambda d: d["nodes"].pop(2), "unreadable", None),
    ("type change", lambda d: d["nodes"][1].update(type="conv2d"), "invalid", "unknown_param"),
    ("output to tanh", lambda d: d["nodes"][-1].update(type="tanh"), "invalid", "no_output"),
    ("version 1 body", lambda d: d.update(version=1), "unreadable", None),  # no "src" edges
    ("version 5", lambda d: d.update(version=5), "unreadable", None),   # newer than dprog
    ("version string", lambda d: d.update(version="2"), "unreadable", None),
    ("format", lambda d: d.pop("format"), "unreadable", None),
    ("extra key", lambda d: d.update(extra=1), "unreadable", None),
    ("training junk", lambda d: d["training"].update(lr="fast"), "unreadable", None),
])
def test_structural_mistakes(name, change, kind, code):
    base = sample_document("adaptive_depth" if "body" in name else "moons_mlp")
    if name == "cycle" or name == "self loop" or name == "no nodes" or name == "node dropped":
        base = sample_document("moons_mlp")
    text = edit(base, change)
    expect(text, kind, code)


def branch_doc():
    return sample_document("gated_branch")


@pytest.mark.parametrize("change, code", [
    (lambda b: b["regions"]["then"]["nodes"].append(
        {"id": "z", "type": "body_input", "params": {"role": "context"}}), None),
    (lambda b: b["regions"]["then"]["nodes"][1]["params"].update(out_features=3), "region_signature"),
    (lambda b: b["regions"].pop("else"), None),
    (lambda b: b["regions"]["then"]["nodes"][0]["params"].update(role="state"), "region_signature"),
    (lambda b: b["regions"]["else"]["nodes"][2]["params"].update(role="halt"), "region_signature"),
    (lambda b: b["regions"].update(then=b["regions"]["else"]), "ok"),
    (lambda b: b["params"].update(mode="hard"), "ok"),
])
def test_region_signatures(change, code):
    doc = branch_doc()
    change(doc["nodes"][2])
    if code == "ok":
        expect(dump(doc), "ok")
    elif code is None:
        expect(dump(doc))   # refused one way or another, never a crash
    else:
        expect(dump(doc), "invalid", code)


@pytest.mark.parametrize("data", [
    b"\xff\xfe{}", b"\xef\xbb\xbf{}", b'{"format": "dprog-graph\xff"}', b"\x00" * 10,
    "{}".encode("utf-16"), b"",
])
def test_bytes_that_are_not_utf8_json(data):
    assert judge(None, data, seconds=30).kind == "unreadable"


def test_payload_strings_everywhere_a_file_has_text():
    """Labels, names, ids, string params, dataset options: refused or harmless, never code
    (tests/test_injection.py proves the "harmless" part in depth)."""
    for payload in PAYLOADS:
        doc = sample_document("adaptive_depth")
        doc["name"] = payload
        for n in doc["nodes"]:
            n["label"] = payload
        doc["nodes"][3]["regions"]["body"]["nodes"][9]["params"]["state"] = payload
        doc["training"]["dataset"]["note"] = payload
        judge(dump(doc), seconds=60, files=False, cli=False)
        doc = sample_document("moons_mlp")
        doc["nodes"][1]["id"] = payload   # the wires still name fc1: refused either way
        expect(dump(doc), "unreadable", files=False, cli=False)


# --- the real command line -----------------------------------------------------------------


@pytest.mark.parametrize("content, code", [
    ((REPO / "sample_graphs" / "rnn_scan.json").read_text(), 0),
    (edit(moons(), lambda d: d["nodes"][1]["params"].update(out_features=0)), 1),
    ((REPO / "sample_graphs" / "moons_mlp.json").read_text()[:200], 2),
    (deep("array", 100_000), 2),
    (dump(moons()).replace('"lr": 0.01', '"lr": NaN'), 2),
    (None, 2),
], ids=["valid", "invalid", "truncated", "deep", "nan", "missing"])
def test_dprog_check_in_a_subprocess(tmp_path, content, code):
    path = tmp_path / "graph.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "check", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    if code == 2:
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("dprog: ")


def test_grown_graphs_use_the_blocks_programs_need():
    """Valid grown graphs hold the random blocks, Positions, BCE, the sequence layers and
    attention, and Expressions with comparisons and masks: the long campaign judges those."""
    from engine.core.analysis import analyze
    from engine.core.fileformat import graph_from_document

    found, comparisons = set(), 0
    for seed in range(80):
        doc = grow(random.Random(seed))
        try:
            if not analyze(graph_from_document(doc)).ok:
                continue
        except ValueError:
            continue
        for region in _regions(doc):
            for n in region["nodes"]:
                found.add(n["type"])
                expr = n.get("params", {}).get("expr", "") if n["type"] == "expression" else ""
                comparisons += any(op in expr for op in ("<", ">", "==", "torch.where"))
    assert {"normal", "uniform", "bernoulli", "reparameterize", "positions", "bce"} <= found
    assert found & {"lstm", "gru"} and found & {"multihead_attention",
                                               "scaled_dot_product_attention"}
    assert comparisons >= 1
