"""Compile a graph into a live `torch.nn.Module`: generate the source, then exec it.

The text exec'd here is byte for byte what `export_python` returns. It is registered with
`linecache` under a `<dprog:...>` file name, so tracebacks show the real generated lines,
and `node_for_exception` maps a runtime error back to the node whose line raised it.
"""

from __future__ import annotations

import hashlib
import linecache
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nodes import lookup

from ..core.analysis import Analysis, analyze
from ..core.codegen import Generated, generate
from ..core.graph import Graph

# file name → generated code, for mapping tracebacks back to nodes
_SOURCES: dict[str, Generated] = {}


@dataclass(frozen=True)
class CompiledClass:
    cls: type[nn.Module]
    generated: Generated
    filename: str
    namespace: dict


def compile_class(graph: Graph, analysis: Analysis | None = None, *, tap: bool = False) -> CompiledClass:
    return _load(generate(graph, analysis, tap=tap))


def compile_graph(graph: Graph, analysis: Analysis | None = None) -> nn.Module:
    """A fresh instance of the graph's module, initialised from the torch RNG as usual."""
    return compile_class(graph, analysis).cls()


_LOADED: dict[str, CompiledClass] = {}   # by source text: recompiling an unchanged graph is free


def _load(generated: Generated) -> CompiledClass:
    hit = _LOADED.get(generated.source)
    if hit is not None:
        return hit
    source = generated.source
    digest = hashlib.sha1(source.encode()).hexdigest()[:10]
    filename = f"<dprog:{generated.class_name}:{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    # A real module in sys.modules: torch.compile and torch.export import the module of the
    # code they trace (torch.cond's bodies, say) by its name.
    module = types.ModuleType(f"dprog_generated_{digest}")
    module.__file__ = filename
    namespace = module.__dict__
    exec(compile(source, filename, "exec"), namespace)  # trusted-exec: the generator's own output
    sys.modules[module.__name__] = module
    _SOURCES[filename] = generated
    loaded = CompiledClass(namespace[generated.class_name], generated, filename, namespace)
    if len(_LOADED) >= 64:
        dropped = _LOADED.pop(next(iter(_LOADED)))
        sys.modules.pop(dropped.namespace["__name__"], None)
    _LOADED[source] = loaded
    return loaded


def node_for_exception(exc: BaseException) -> str | None:
    """The path of the node whose generated line raised `exc`, if it came from generated code."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        generated = _SOURCES.get(code.co_filename)
        if generated is not None:
            found = generated.line_nodes.get(tb.tb_lineno, found)
        tb = tb.tb_next
    return found


def tapped_forward(compiled: CompiledClass) -> Callable:
    """`<Class>_forward(module, tap, *inputs)` from a class compiled with tap=True."""
    return compiled.namespace[f"{compiled.generated.class_name}_forward"]


def example_inputs(graph: Graph, batch_size: int, *, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, ...]:
    """Random inputs the compiled module accepts, one per Input block, in argument order.

    Integer inputs stay below every bound on ids in the graph, bodies included (an Embedding's
    vocabulary, a CrossEntropy's class count): ids reach those blocks through reshapes,
    concats and loops, not only by a direct wire. Float inputs are normal, or uniform in
    [0, 1) when a block of the graph takes probabilities (`unit_inputs`, BCE's).
    """
    tensors = []
    high = _id_limit(graph)
    unit = takes_probabilities(graph)
    for node in graph.nodes:
        spec = lookup(node.type)
        if spec is None or spec.kind != "input":
            continue
        params = {**spec.defaults(), **node.params}
        shape = (batch_size, *params["shape"])
        if params["dtype"] == "long":
            tensors.append(torch.randint(0, high, shape, generator=generator))
        else:
            draw = torch.rand if unit else torch.randn
            tensors.append(draw(shape, generator=generator))
    return tuple(tensors)


def takes_probabilities(graph: Graph) -> bool:
    """Whether a block of the graph, bodies included, takes values in [0, 1] (`unit_inputs`:
    BCE's probabilities and targets), so random float inputs must stay there."""
    return any(spec is not None and spec.unit_inputs
               for spec in (lookup(node.type) for _, node in graph.walk()))


def vary(graph: Graph, tensors: tuple[torch.Tensor, ...], scales: torch.Tensor
         ) -> tuple[torch.Tensor, ...]:
    """Random inputs whose samples differ in more than noise (so loops halt at different
    steps): each float input's sample i scaled by `scales[i]`, or, for a graph that takes
    probabilities, raised to that power, which keeps it in [0, 1)."""
    unit = takes_probabilities(graph)
    out = []
    for t in tensors:
        if t.is_floating_point():
            s = scales.reshape(-1, *([1] * (t.dim() - 1))).to(t.dtype)
            t = t ** s if unit else t * s
        out.append(t)
    return tuple(out)


def _id_limit(graph: Graph) -> int:
    """One more than the largest id every input of ids in `graph` accepts (the `id_inputs` of
    its blocks' specs); 10 when nothing bounds them."""
    limits = [10]
    analysis: Analysis | None = None   # only when a bound is an inferred dim
    for path, node in graph.walk():
        spec = lookup(node.type)
        for ids in spec.id_inputs if spec is not None else ():
            if ids.count_param is not None:
                limits.append(node.params.get(ids.count_param,
                                              spec.param(ids.count_param).default))
                continue
            port, dim = ids.count_dim
            analysis = analysis or analyze(graph)
            t = analysis.inputs.get(path, {}).get(port)
            if t is not None and t.rank > dim and isinstance(t.shape[dim], int):
                limits.append(t.shape[dim])
    return max(1, min(v for v in limits if isinstance(v, int) and not isinstance(v, bool)))
