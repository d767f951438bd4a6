"""The engine's caches: `analyze(graph, cache)` and `generate(graph, analysis, cache=...)`
give exactly what they give without one.

A cache kept across edits replays what unchanged nodes (the same objects) gave before, so
these tests walk long random edit sequences over grown graphs (loops and branches included),
the samples and generated chains, with plausible and hostile param values, rewiring and
deletions, and compare every cached result with a fresh one, field by field (for code: the
source, plain and tapped, its line map, wire numbering and module paths).
"""

from __future__ import annotations

import random

import pytest
from fuzzing.generate import grow, hostile_value, plausible_value, sample_document

from bench.graphs import chain, dag, nested_loops
from engine.analysis import AnalysisCache, analyze
from engine.codegen import CodeCache, generate
from engine.fileformat import graph_from_document
from engine.graph import Graph, connect, disconnect, edit_region, remove_nodes, set_param
from nodes import lookup


def _regions(graph: Graph, path: tuple = ()):
    yield path, graph
    for n in graph.nodes:
        for name, body in n.regions.items():
            yield from _regions(body, (*path, n.id, name))


def _edit(rng: random.Random, graph: Graph) -> Graph:
    """One random edit somewhere in the graph; unchanged nodes stay the same objects."""
    path, region = rng.choice(list(_regions(graph)))
    if not region.nodes:
        return graph
    node = rng.choice(region.nodes)
    kind = rng.random()
    if kind < 0.6:
        spec = lookup(node.type)
        if spec is None or not spec.params:
            return graph
        p = rng.choice(spec.params)
        value = plausible_value(rng, node.type, p) if rng.random() < 0.8 else hostile_value(rng, p)
        value = tuple(value) if isinstance(value, list) else value
        return edit_region(graph, list(path), lambda g: set_param(g, node.id, p.name, value))
    if kind < 0.7:
        return edit_region(graph, list(path), lambda g: remove_nodes(g, [node.id]))
    if kind < 0.85 and region.edges:
        edge = rng.choice(region.edges)
        return edit_region(graph, list(path), lambda g: disconnect(g, edge))
    other = rng.choice(region.nodes)
    port = rng.choice(["x", "a", "b", "cond", "input"])
    return edit_region(graph, list(path), lambda g: connect(g, (other.id, "y"), (node.id, port)))


_CODE: dict[int, CodeCache] = {}


def _same(graph: Graph, cache: AnalysisCache) -> None:
    fresh, cached = analyze(graph), analyze(graph, cache)
    assert cached == fresh
    if fresh.ok:   # the code, from a code cache that lives as long as the analysis cache
        code = _CODE.setdefault(id(cache), CodeCache())
        for tap in (False, True):
            assert generate(graph, cached, tap=tap, cache=code) == generate(graph, fresh, tap=tap)


@pytest.mark.parametrize("seed", range(12))
def test_random_edits_match_a_fresh_analysis(seed):
    rng = random.Random(seed)
    graph = graph_from_document(grow(rng))
    cache = AnalysisCache()
    _same(graph, cache)
    history = [graph]
    for _ in range(40):
        graph = _edit(rng, graph)
        history.append(graph)
        _same(graph, cache)
        if rng.random() < 0.15:   # undo: back to an older version, most nodes shared
            graph = rng.choice(history)
            _same(graph, cache)


@pytest.mark.parametrize("name", ["moons_mlp", "rnn_scan", "adaptive_depth", "gated_branch"])
def test_sample_edits_match(name):
    rng = random.Random(name)
    graph = graph_from_document(sample_document(name))
    cache = AnalysisCache()
    for _ in range(30):
        _same(graph, cache)
        graph = _edit(rng, graph)


def test_unchanged_nodes_are_replayed():
    cache = AnalysisCache()
    graph = dag(300)
    analyze(graph, cache)
    before = cache.hits
    edited = set_param(graph, "n100", "out_features", 16) if graph.node("n100").type == "linear" \
        else set_param(graph, "n101", "out_features", 16)
    assert analyze(edited, cache) == analyze(edited)
    assert cache.hits - before >= 2 * 290   # checks and inferences of the untouched nodes


def test_loop_bodies_and_runs():
    """Changing a loop's count changes how often its body runs: body nodes are re-inferred."""
    cache = AnalysisCache()
    graph = nested_loops(60)
    _same(graph, cache)
    edited = set_param(graph, "loop1", "count", 5)
    _same(edited, cache)
    region = ("loop1", "body", "loop2", "body")
    inner = graph.region_at(region)
    op = next(n for n in inner.nodes if n.type == "linear")
    edited = edit_region(edited, list(region), lambda g: set_param(g, op.id, "out_features", 7))
    _same(edited, cache)   # a state that no longer matches: a region_signature error


def test_generated_graphs():
    cache = AnalysisCache()
    for make in (chain, dag, nested_loops):
        graph = make(120)
        _same(graph, cache)
        broken = connect(graph, ("x", "y"), (graph.nodes[3].id, "x")) if make is not nested_loops \
            else graph
        _same(broken, cache)



def test_code_cache_reuses_unchanged_nodes():
    analyses, code = AnalysisCache(), CodeCache()
    graph = chain(400)
    generate(graph, analyze(graph, analyses), cache=code)
    edited = set_param(graph, "n201", "out_features", 17)   # n201 is a Linear: shapes change
    before = code.hits
    cached = generate(edited, analyze(edited, analyses), cache=code)
    assert cached == generate(edited, analyze(edited))
    assert code.hits - before >= 390
    assert "self.n201 = nn.Linear(in_features=16, out_features=17)" in cached.source
    assert "self.n203 = nn.Linear(in_features=17, out_features=16)" in cached.source


def test_code_cache_sees_names_taken_earlier():
    """A node relabelled to another node's name takes it first; the other becomes name_2."""
    from engine.graph import update_node

    analyses, code = AnalysisCache(), CodeCache()
    graph = chain(50)
    _same(graph, analyses)
    generate(graph, analyze(graph, analyses), cache=code)
    edited = update_node(graph, "n5", label="n10")
    cached = generate(edited, analyze(edited, analyses), cache=code)
    assert cached == generate(edited, analyze(edited))
    assert "n10_2 = torch.relu(n9)" in cached.source
