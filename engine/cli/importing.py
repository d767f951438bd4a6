"""`dprog import FILE.py:Class`: open a PyTorch model as a graph (engine.runtime.importer).

The Python file is the user's own code and is run, exactly as `python FILE.py` would run
it; the graph written is data only, like every graph file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from ..core.files import shown
from ..runtime.import_file import DTYPES, parse_shape
from .common import EXIT_INVALID, EXIT_OK, Parser, fail


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
                        "keys, to this weights.pt, and name it in the graph's training.weights: "
                        "training (in the studio or with dprog train) starts from them")
    args = parser.parse_args(argv)
    path, _, cls_name = args.source.rpartition(":")
    if not path or not cls_name.isidentifier():
        return fail(f"{args.source}: give FILE.py:ClassName")
    try:
        shapes = [parse_shape(s) for s in args.input_shape]
        ctor = json.loads(args.args)
    except ValueError as e:
        return fail(f"{e}")
    if not isinstance(ctor, dict | list):
        return fail("--args: give a JSON object (keywords) or list (positional)")
    dtypes = list(args.input_dtype or [])
    if len(dtypes) > len(shapes):
        return fail("more --input-dtype than --input-shape")
    dtypes += ["float"] * (len(shapes) - len(dtypes))

    from ..runtime.import_file import Written, example_inputs, load_model, save_import
    from ..runtime.importer import ImportRefused, import_module

    try:
        model = load_model(path, cls_name, ctor)
    except ImportRefused as e:
        return fail(str(e))
    try:
        imported = import_module(model, example_inputs(shapes, dtypes), name=cls_name)
    except ImportRefused as e:
        return fail(f"{args.source}: not imported: {e}", EXIT_INVALID)
    try:
        written = Written(save_import(imported, model, args.output, args.weights), imported)
    except OSError as e:
        return fail(f"cannot write {shown(e.filename)} ({e.strerror})")
    print(written.describe(cls_name, args.output, args.weights), file=sys.stderr)
    return EXIT_OK
