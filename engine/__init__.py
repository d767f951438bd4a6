"""dprog's engine: the graph model, validation, the compiler to torch, training and export.

The stable Python API:

    load_graph(path) -> Graph           save_graph(graph, path)
    validate(graph) -> list[Diagnostic] analyze(graph) -> Analysis
    compile_graph(graph) -> nn.Module   export_python(graph) -> str
    example_inputs(graph, batch_size) -> tuple[Tensor, ...]
    Trainer(graph, config=None, events=queue) -> .start() / .run(), pause/resume/stop

The pure modules (graph, fileformat, analysis, codegen, config) never import torch; the
names backed by torch are loaded on first use, so `import engine` stays fast.
"""

from .analysis import Analysis, Diagnostic, GraphError, analyze, validate
from .codegen import export_python
from .fileformat import GraphFileError, load_graph, save_graph
from .graph import Edge, Graph, Node

_TORCH_BACKED = {
    "compile_graph": "compiler", "example_inputs": "compiler", "node_for_exception": "compiler",
    "Trainer": "train",
}

__all__ = ["Analysis", "Diagnostic", "Edge", "Graph", "GraphError", "GraphFileError", "Node", "Trainer",
           "analyze", "compile_graph", "example_inputs", "export_python", "load_graph",
           "node_for_exception", "save_graph", "validate"]


def __getattr__(name: str):
    if name in _TORCH_BACKED:
        from importlib import import_module

        return getattr(import_module(f".{_TORCH_BACKED[name]}", __name__), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
