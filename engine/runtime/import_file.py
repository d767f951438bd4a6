"""Importing a model from a Python file, as `dprog import` and the studio's File › Import
PyTorch module… both do: find its classes, run it, import one, write the graph and weights.

The Python file is the user's own code and is run, exactly as `python FILE.py` would run it
(`load_model`); listing its classes (`module_classes`) only parses it. The graph written is
data only, like every graph file. torch is imported when a model is loaded, not with this
module, so the command line's --help and the studio's dialog stay quick.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.fileformat import atomic_write, save_graph
from ..core.files import shown
from ..core.graph import Graph

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .importer import Imported

DTYPES = ("float", "long")


def module_classes(path: str | Path) -> list[str]:
    """The classes defined at the top of the file, those deriving from a `...Module` first;
    the file is parsed, not run. [] when it cannot be read or parsed."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    except (OSError, ValueError, SyntaxError):
        return []

    def is_module(node: ast.ClassDef) -> bool:
        return any(ast.unparse(base).endswith("Module") for base in node.bases)

    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    return [n.name for n in classes if is_module(n)] + [n.name for n in classes if not is_module(n)]


def parse_shape(text: str) -> tuple[int, ...]:
    """`1,3,32,32` → (1, 3, 32, 32); ValueError saying how to write one."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"input shape {text!r}: give sizes like 1,3,32,32, batch first") from None
    if not shape or min(shape) < 1:
        raise ValueError(f"input shape {text!r}: sizes must be at least 1")
    return shape


def load_model(path: str | Path, class_name: str, args: dict | list) -> nn.Module:
    """Run the file and build its nn.Module class `class_name` with `args` (keywords, or a
    list of positional ones). Raises ImportRefused naming the file for whatever goes wrong."""
    from torch import nn

    from .importer import ImportRefused

    path = Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportRefused(f"{shown(path)}: not a Python file")
    # As `python FILE.py` would: the file's folder first on sys.path, for its own imports.
    # What it imports from there is forgotten afterwards, so that importing again in the
    # same studio runs the files as they are then, not as they were.
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    before = set(sys.modules)
    # No __pycache__ left in the user's folder; and none written means none read back stale
    # when a file changes within a second at the same size.
    write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    importlib.invalidate_caches()
    try:
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(spec.name, module)
        spec.loader.exec_module(module)   # trusted-exec: the user's own code, run on purpose
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type) or not issubclass(cls, nn.Module):
            raise ImportRefused(f"{shown(path)}: no nn.Module class {class_name!r}")
        return cls(*args) if isinstance(args, list) else cls(**args)
    except ImportRefused:
        raise
    except Exception as e:   # the user's code: report it in one line
        raise ImportRefused(f"{shown(path)}: running it failed: {type(e).__name__}: {e}") from None
    finally:
        sys.dont_write_bytecode = write_bytecode
        sys.path.remove(folder)
        for name in set(sys.modules) - before:
            where = getattr(sys.modules[name], "__file__", None) or ""
            if name == spec.name or where.startswith(folder + os.sep):
                del sys.modules[name]


def example_inputs(shapes: list[tuple[int, ...]], dtypes: list[str]) -> tuple[torch.Tensor, ...]:
    """One example tensor per forward() argument: random floats, or token ids 0/1, drawn
    from a generator of their own (torch's global one is a training run's)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return tuple(torch.randint(0, 2, s, generator=generator) if d == "long"
                 else torch.randn(s, generator=generator)
                 for s, d in zip(shapes, dtypes, strict=True))


@dataclass(frozen=True)
class Written:
    graph: Graph      # as written: with training.weights when the weights were
    imported: Imported

    @property
    def blocks(self) -> int:
        """Blocks of the main graph, its inputs and outputs left out."""
        return sum(1 for node in self.graph.nodes if node.type not in ("input", "output"))

    def describe(self, class_name: str, graph_path: str | Path,
                 weights_path: str | Path | None) -> str:
        keys = ("the model's own state_dict keys" if self.imported.same_keys
                else "renamed state_dict keys")
        return (f"wrote {shown(graph_path)}: {self.blocks} blocks, checked equal to {class_name} "
                f"({keys})" + (f"; weights in {shown(weights_path)}" if weights_path else ""))


def import_file(path: str | Path, class_name: str, args: dict | list,
                shapes: list[tuple[int, ...]], dtypes: list[str], graph_path: str | Path,
                weights_path: str | Path | None = None) -> Written:
    """Run the file, import its class, and write the graph (and the model's weights, which
    the graph's training then starts from). Raises ImportRefused, or OSError whose filename
    is the file that could not be written."""
    from .importer import import_module

    model = load_model(path, class_name, args)
    imported = import_module(model, example_inputs(shapes, dtypes), name=class_name)
    return Written(save_import(imported, model, graph_path, weights_path), imported)


def save_import(imported: Imported, model: nn.Module, graph_path: str | Path,
                weights_path: str | Path | None = None) -> Graph:
    """Write the graph; with `weights_path`, first the model's weights under the graph's
    keys, named (relative to the graph) in its training.weights, so a run starts from them.
    The graph never names weights that were not written. Returns the graph as written."""
    from .checkpoint import tensor_bytes

    graph = imported.graph
    target = weights_path
    try:
        if weights_path is not None:
            state = {k: v.detach().cpu()
                     for k, v in imported.state_dict(model.state_dict()).items()}
            atomic_write(weights_path, tensor_bytes(state))
            relative = os.path.relpath(os.path.abspath(weights_path),
                                       os.path.dirname(os.path.abspath(graph_path)))
            graph = replace(graph, training={**graph.training,
                                             "weights": Path(relative).as_posix()})
        target = graph_path
        save_graph(graph, graph_path)
    except OSError as e:   # named after the file asked for, not atomic_write's temporary one
        if target == graph_path and weights_path is not None:   # no weights without a graph
            Path(weights_path).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror or str(e), str(target)) from None
    return graph
