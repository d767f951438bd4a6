"""Limits the analysis does not check yet: how many torch modules a model builds.

A Loop with its own weights per iteration builds its body's modules once per iteration. The
parameter cap does not bound that: 10,000 iterations of a body of 20 small Linear blocks hold
only a few million weights, but build 200,000 `nn.Module` objects, each about 4 KiB before
training and 9 KiB with Adam's state (measured on CPU, torch 2.13), so `dprog check` passed
the graph and `dprog train` was then killed for memory. `module_limit` says so before
anything is built, as a `too_large` diagnostic on the loop responsible.

This belongs in the analysis (engine/core/analysis.py), next to the parameter cap; it lives
here, as one function over an analysis already made, until it moves there. Callers: the
command line (check, export, train) and the trainer's setup.

Pure: no torch.
"""

from __future__ import annotations

from collections.abc import Mapping

from nodes import lookup

from .analysis import Analysis, Diagnostic, boundary_nodes, loop_iterations
from .graph import PATH_SEP, Function, Graph

MAX_MODULES = 1 << 16   # about 0.6 GiB of module objects once training


def module_count(graph: Graph, analysis: Analysis, prefix: str = "",
                 functions: Mapping[str, Function] | None = None) -> int:
    """The `nn.Module`s the compiled model holds for `graph` (a region at `prefix`), bodies
    built once per iteration for loops that do not share their weights, and a call's function
    body once per call (`functions`: the main graph's; a weight group's calls are each
    counted, an upper bound)."""
    functions = graph.functions if functions is None else functions
    total = 0
    for node in graph.nodes:
        path = prefix + node.id
        spec = lookup(node.type)
        if spec is not None and spec.module:
            total += 1
        callee = node.params.get("function") if node.type == "call" else None
        if isinstance(callee, str) and callee in functions:
            total += 1 + module_count(functions[callee].body, analysis,
                                      f"{path}{PATH_SEP}{callee}{PATH_SEP}", functions)
        for name, region in node.regions.items():
            inner = 1 + module_count(region, analysis, f"{path}{PATH_SEP}{name}{PATH_SEP}",
                                     functions)
            total += inner * _copies(node, path, analysis) + (_copies(node, path, analysis) > 1)
    return total


def _copies(node, path: str, analysis: Analysis) -> int:
    """How many copies of a loop's body the model builds (1 when its weights are shared)."""
    p = analysis.params.get(path, {})
    if node.type != "loop" or p.get("share_weights", True):
        return 1
    length = None
    for n in boundary_nodes(node.regions["body"], "body_input"):
        if n.params.get("role") == "sequence":
            length = analysis.inputs[path][n.id].shape[p["dim"]]
    return loop_iterations(p, length)


def module_limit(graph: Graph, analysis: Analysis) -> Diagnostic | None:
    """A `too_large` error when the model would build more than MAX_MODULES modules, on the
    top-level node that builds the most; None otherwise (and for graphs with errors)."""
    if not analysis.ok:
        return None
    counts = {}
    for node in graph.nodes:
        single = Graph(nodes=(node,))
        counts[node.id] = module_count(single, analysis, functions=graph.functions)
    total = sum(counts.values())
    if total <= MAX_MODULES:
        return None
    worst = max(counts, key=counts.__getitem__)
    return Diagnostic("too_large", f"the model would build {total:,} torch modules ({worst} "
                      f"alone builds {counts[worst]:,}: a loop without shared weights builds its "
                      f"body once per iteration), more than the {MAX_MODULES:,} dprog builds; "
                      "share the loop's weights or run fewer iterations", worst)


def with_limits(graph: Graph, analysis: Analysis) -> Analysis:
    """`analysis`, with the module limit's diagnostic added when the graph breaks it."""
    problem = module_limit(graph, analysis)
    if problem is not None:
        analysis.diagnostics.append(problem)
    return analysis
