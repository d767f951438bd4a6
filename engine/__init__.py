"""dprog's engine: the graph model, validation, the compiler to torch, training and export.

The stable Python API:

    load_graph(path) -> Graph           save_graph(graph, path)
    validate(graph) -> list[Diagnostic] analyze(graph) -> Analysis
    compile_graph(graph) -> nn.Module   export_python(graph) -> str
    example_inputs(graph, batch_size) -> tuple[Tensor, ...]
    from_torch(module, example_inputs) -> Graph   (engine.runtime.importer: also the weights)
    Trainer(graph, config=None, events=queue) -> .start() / .run(), pause/resume/stop

The layers, each a package whose docstring says what it may import, in dependency order:

    core/         pure: graph, file format, config, analysis, codegen, events (no torch)
    incremental/  pure: the studio's caches, which redo only what an edit reached
    runtime/      torch: compiler, trainer, gradient flow, run folders, export of weights
    data/         datasets: the built-in registry and the file readers (numpy, no torch)
    cli/          the `dprog` subcommands

Importing `engine` loads only the core; the names backed by torch are loaded on first use,
so `import engine` stays fast.
"""

from .core.analysis import Analysis, Diagnostic, GraphError, analyze, validate
from .core.codegen import export_python
from .core.fileformat import GraphFileError, load_graph, save_graph
from .core.graph import Edge, Function, Graph, Node

_TORCH_BACKED = {
    "compile_graph": "runtime.compiler", "example_inputs": "runtime.compiler",
    "node_for_exception": "runtime.compiler", "Trainer": "runtime.trainer",
    "from_torch": "runtime.importer",
}

__all__ = ["Analysis", "Diagnostic", "Edge", "Function", "Graph", "GraphError", "GraphFileError", "Node", "Trainer",
           "analyze", "compile_graph", "example_inputs", "export_python", "from_torch", "load_graph",
           "node_for_exception", "save_graph", "validate"]


def __getattr__(name: str):
    if name in _TORCH_BACKED:
        from importlib import import_module

        return getattr(import_module(f".{_TORCH_BACKED[name]}", __name__), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
