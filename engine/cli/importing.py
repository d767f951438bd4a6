"""`dprog import FILE.py:Class`: open a PyTorch model as a graph (engine.runtime.importer).

The Python file is the user's own code and is run, exactly as `python FILE.py` would run
it; the graph written is data only, like every graph file.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..core.fileformat import atomic_write, save_graph
from ..core.files import shown
from .common import EXIT_INVALID, EXIT_OK, Parser, fail

DTYPES = ("float", "long")


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--input-shape {text!r}: give sizes like 1,3,32,32") from None
    if not shape or min(shape) < 1:
        raise ValueError(f"--input-shape {text!r}: sizes must be at least 1")
    return shape


def cmd_import(argv: Sequence[str]) -> int:
    parser = Parser(prog="dprog import", description="Open a PyTorch nn.Module as a dprog graph: "
                    "trace it with torch.fx, map its layers and ops onto blocks, and check that "
                    "the graph, given the model's weights, computes what the model computes. "
                    "WARNING: FILE.py is your own Python code and is RUN (imported, and the "
                    "class instantiated); import only files you trust. The graph written is "
                    "data only. What cannot be imported faithfully is refused (exit 1) with "
                    "the op, its source line and what to do.")
    parser.add_argument("source", metavar="FILE.py:Class", help="the module's file and class")
    parser.add_argument("--args", default="{}", help="constructor keyword arguments as a JSON "
                        "object, or a JSON list of positional ones (default: none)")
    parser.add_argument("--input-shape", action="append", required=True, metavar="1,3,32,32",
                        help="an example input's shape, batch first; once per forward() argument")
    parser.add_argument("--input-dtype", action="append", choices=DTYPES,
                        help="float (default) or long (token ids), once per input")
    parser.add_argument("-o", "--output", required=True, help="the graph file to write")
    parser.add_argument("--weights", help="also write the model's weights, under the graph's "
                        "keys, to this weights.pt: training in the studio can start from them")
    args = parser.parse_args(argv)
    path, _, cls_name = args.source.rpartition(":")
    if not path or not cls_name.isidentifier():
        return fail(f"{args.source}: give FILE.py:ClassName")
    try:
        shapes = [_shape(s) for s in args.input_shape]
        ctor = json.loads(args.args)
    except ValueError as e:
        return fail(f"{e}")
    if not isinstance(ctor, dict | list):
        return fail("--args: give a JSON object (keywords) or list (positional)")
    dtypes = list(args.input_dtype or [])
    if len(dtypes) > len(shapes):
        return fail("more --input-dtype than --input-shape")
    dtypes += ["float"] * (len(shapes) - len(dtypes))

    import torch

    from ..runtime.importer import ImportRefused, import_module

    try:
        spec = importlib.util.spec_from_file_location(Path(path).stem, path)
        if spec is None or spec.loader is None or not Path(path).is_file():
            return fail(f"{path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(spec.name, module)
        spec.loader.exec_module(module)   # trusted-exec: the user's own code, run on purpose
        cls = getattr(module, cls_name, None)
        if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
            return fail(f"{path}: no nn.Module class {cls_name!r}")
        model = cls(*ctor) if isinstance(ctor, list) else cls(**ctor)
    except Exception as e:   # the user's code: report it in one line
        return fail(f"{path}: running it failed: {type(e).__name__}: {e}")
    torch.manual_seed(0)
    inputs = tuple(torch.randint(0, 2, s) if d == "long" else torch.randn(s)
                   for s, d in zip(shapes, dtypes, strict=True))
    try:
        imported = import_module(model, inputs, name=cls_name)
    except ImportRefused as e:
        return fail(f"{args.source}: not imported: {e}", EXIT_INVALID)
    try:
        save_graph(imported.graph, args.output)
        if args.weights:
            buffer = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in
                        imported.state_dict(model.state_dict()).items()}, buffer)
            atomic_write(args.weights, buffer.getvalue())
    except OSError as e:
        return fail(f"cannot write ({e.strerror or e})")
    n = sum(1 for node in imported.graph.nodes if node.type not in ("input", "output"))
    keys = "the model's own state_dict keys" if imported.same_keys else "renamed state_dict keys"
    print(f"wrote {shown(args.output)}: {n} blocks, checked equal to {cls_name} ({keys})"
          + (f"; weights in {shown(args.weights)}" if args.weights else ""), file=sys.stderr)
    return EXIT_OK
