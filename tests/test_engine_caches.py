"""The engine's caches: `cache.analyze(graph)` and `CodeCache().generate(graph, analysis)`
give exactly what the plain passes give.

A cache kept across edits replays what unchanged nodes (the same objects) gave before, so
these tests walk long random edit sequences over grown graphs (loops and branches included),
the samples and generated chains, with plausible and hostile param values, rewiring and
deletions, and compare every cached result with a fresh one, field by field (for code: the
source, plain and tapped, its line map, wire numbering and module paths).
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from fuzzing.generate import grow, hostile_value, plausible_value, sample_document

from bench.graphs import chain, dag, nested_loops
from engine.core.analysis import analyze
from engine.core.codegen import generate
from engine.core.fileformat import graph_from_document
from engine.core.graph import (
    Graph,
    connect,
    disconnect,
    edit_region,
    remove_nodes,
    set_function,
    set_param,
    set_tie,
)
from engine.incremental.analysis import AnalysisCache
from engine.incremental.codegen import CodeCache
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
        return _set_some_param(rng, graph, path, node)
    if kind < 0.7:
        return edit_region(graph, list(path), lambda g: remove_nodes(g, [node.id]))
    if kind < 0.85 and region.edges:
        edge = rng.choice(region.edges)
        return edit_region(graph, list(path), lambda g: disconnect(g, edge))
    other = rng.choice(region.nodes)
    port = rng.choice(["x", "a", "b", "cond", "input"])
    return edit_region(graph, list(path), lambda g: connect(g, (other.id, "y"), (node.id, port)))


def _set_some_param(rng: random.Random, graph: Graph, path: tuple, node) -> Graph:
    """One of the node's params set to a value, mostly plausible, sometimes hostile."""
    spec = lookup(node.type)
    if spec is None or not spec.params:
        return graph
    p = rng.choice(spec.params)
    value = plausible_value(rng, node.type, p) if rng.random() < 0.8 else hostile_value(rng, p)
    value = tuple(value) if isinstance(value, list) else value
    return edit_region(graph, list(path), lambda g: set_param(g, node.id, p.name, value))


_CODE: dict[int, CodeCache] = {}


def _same(graph: Graph, cache: AnalysisCache) -> None:
    fresh, cached = analyze(graph), cache.analyze(graph)
    assert cached == fresh
    if fresh.ok:   # the code, from a code cache that lives as long as the analysis cache
        code = _CODE.setdefault(id(cache), CodeCache())
        for tap in (False, True):
            assert code.generate(graph, cached, tap=tap) == generate(graph, fresh, tap=tap)


def _walk(rng: random.Random, graph: Graph, cache: AnalysisCache, edit, steps: int, *,
          jump: float, take_back: float = 0.0) -> None:
    """`steps` edits, each version checked. Now and then an undo jumps back in history (most
    nodes shared); with `take_back`, an edit that broke the graph is often undone at once,
    as a user would."""
    _same(graph, cache)
    history = [graph]
    for _ in range(steps):
        graph = edit(rng, graph)
        history.append(graph)
        _same(graph, cache)
        if take_back and not cache.analyze(graph).ok and rng.random() < take_back:
            graph = history[-2]
            _same(graph, cache)
        elif rng.random() < jump:
            graph = rng.choice(history)
            _same(graph, cache)


@pytest.mark.parametrize("seed", range(12))
def test_random_edits_match_a_fresh_analysis(seed):
    rng = random.Random(seed)
    _walk(rng, graph_from_document(grow(rng)), AnalysisCache(), _edit, 40, jump=0.15)


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
    cache.analyze(graph)
    before = cache.hits
    edited = set_param(graph, "n100", "out_features", 16) if graph.node("n100").type == "linear" \
        else set_param(graph, "n101", "out_features", 16)
    assert cache.analyze(edited) == analyze(edited)
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
    code.generate(graph, analyses.analyze(graph))
    edited = set_param(graph, "n201", "out_features", 17)   # n201 is a Linear: shapes change
    before = code.hits
    cached = code.generate(edited, analyses.analyze(edited))
    assert cached == generate(edited, analyze(edited))
    assert code.hits - before >= 390
    assert "self.n201 = nn.Linear(in_features=16, out_features=17)" in cached.source
    assert "self.n203 = nn.Linear(in_features=17, out_features=16)" in cached.source


def test_code_cache_sees_names_taken_earlier():
    """A node relabelled to another node's name takes it first; the other becomes name_2."""
    from engine.core.graph import update_node

    analyses, code = AnalysisCache(), CodeCache()
    graph = chain(50)
    _same(graph, analyses)
    code.generate(graph, analyses.analyze(graph))
    edited = update_node(graph, "n5", label="n10")
    cached = code.generate(edited, analyses.analyze(edited))
    assert cached == generate(edited, analyze(edited))
    assert "n10_2 = torch.relu(n9)" in cached.source


# -- patching: an edit that keeps ids and wires redoes only what it reaches -----------------

def _param_edit(rng: random.Random, graph: Graph) -> Graph:
    """A param edit of a random node, mostly in the main graph."""
    path, region = rng.choice([r for r in _regions(graph) if r[1].nodes] if rng.random() < 0.3
                              else [((), graph)])
    return _set_some_param(rng, graph, path, rng.choice(region.nodes))


@pytest.mark.parametrize("make", [chain, dag, nested_loops])
@pytest.mark.parametrize("seed", range(4))
def test_patched_param_edits_match(make, seed):
    """Long runs of param edits (errors that appear and go away, widths that change shapes
    downstream, loop bodies edited) and jumps back in history, on graphs big enough to patch:
    every patched analysis and generation equals a fresh one."""
    analyses = AnalysisCache()
    _walk(random.Random(seed), make(160), analyses, _param_edit, 60, jump=0.1, take_back=0.7)
    assert analyses.patches >= 30
    if make is chain:   # dag's Adds refuse most width edits; nested_loops is one big loop
        assert _CODE[id(analyses)].patches >= 5


def test_a_width_edit_patches_three_nodes():
    """One Linear's width in a 1,000-node chain: the Linear, the ReLU after it and the next
    Linear are redone; the analysis and the code of every other node are as they were."""
    analyses, code = AnalysisCache(), CodeCache()
    graph = chain(1000)
    code.generate(graph, analyses.analyze(graph))
    before = analyses.analyze(graph)
    edited = set_param(graph, "n501", "out_features", 17)
    hits, misses, patches = analyses.hits, analyses.misses, analyses.patches
    after = analyses.analyze(edited)
    assert analyses.patches == patches + 1 and after == analyze(edited)
    assert analyses.hits - hits == 2 * 1000 - 1 - 3   # all but one check and three inferences
    assert analyses.misses - misses == 3   # inferences worked out: those three
    redone = [p for p in after.outputs if after.outputs[p] is not before.outputs.get(p)]
    assert sorted(redone) == ["n501", "n502", "n503"]
    generated = code.generate(edited, after)
    assert code.patches == 1 and generated == generate(edited, analyze(edited))
    assert "self.n503 = nn.Linear(in_features=17, out_features=16)" in generated.source


def test_patching_gives_way():
    """What a patch cannot do is done node by node: a relabel (new names), an input's shape
    (the forward's arguments), and a rewire (new wires) all still give the fresh result."""
    from engine.core.graph import update_node

    analyses, code = AnalysisCache(), CodeCache()
    graph = chain(200)
    _same(graph, analyses)
    code = _CODE[id(analyses)]
    for edit in (lambda g: update_node(g, "n7", label="n9"),
                 lambda g: set_param(g, "x", "shape", (8,)),
                 lambda g: connect(g, ("n3", "y"), ("n6", "x"))):
        patches = code.patches
        graph = edit(graph)
        _same(graph, analyses)
        assert code.patches == patches


def _edit_with_functions(rng: random.Random, graph: Graph, functions: dict) -> Graph:
    """A random edit of a function body, of the main graph, or the functions dropped or put
    back (the caches must also forget what they knew once a graph has functions no more);
    a graph with ties loses or regains them the same way."""
    kind = rng.random()
    if kind < 0.4 and graph.functions:
        name = rng.choice(sorted(graph.functions))
        fn = graph.functions[name]
        return set_function(graph, name, replace(fn, body=_edit(rng, fn.body)))
    if kind < 0.5:
        return replace(graph, functions={} if graph.functions else functions)
    if kind < 0.55:
        node = rng.choice(graph.nodes)
        if node.ties:
            return set_tie(graph, node.id, next(iter(node.ties)), None)
        return set_tie(graph, node.id, "weight", (rng.choice(graph.nodes).id, "weight"))
    return _edit(rng, graph)


@pytest.mark.parametrize("seed", range(10))
def test_random_edits_with_functions_match_a_fresh_analysis(seed):
    from test_functions import GRAPHS

    rng = random.Random(seed)
    graph = GRAPHS[sorted(GRAPHS)[seed % len(GRAPHS)]]()
    functions = dict(graph.functions)
    _walk(rng, graph, AnalysisCache(), lambda rng, g: _edit_with_functions(rng, g, functions), 30,
          jump=0.15)
