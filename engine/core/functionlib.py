"""A user's block library: functions exported to `<name>.dprog-lib.json` and imported into
another graph.

A library file is data, exactly as a graph file is: `{"format": "dprog-lib", "version": 1,
"functions": {name: function}}`, each function written as in a graph file. Loading it goes
through the graph file's own checks (size and type of the file, nesting, text, the JSON
schema, ids), so nothing in it can become code, and every refusal names the file and place.

Exporting takes the chosen functions and every function they call, so the file stands on its
own. Importing adds the file's functions to a graph; a name the graph already uses is refused
(`on_clash="refuse"`, the default, naming the clashes and the fix) or the imported function is
renamed (`on_clash="rename"`: `block` becomes `block2`, and the Calls inside the imported
bodies follow). Imported functions are never merged with the graph's own, even when equal.

Pure: no torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .fileformat import (
    FORMAT,
    MAX_FILE_BYTES,
    VERSION,
    GraphFileError,
    _format,
    atomic_write,
    function_document,
    graph_from_document,
    parse_document,
)
from .files import FileRefused, read_regular
from .graph import Function, Graph, Node

LIB_FORMAT = "dprog-lib"
LIB_VERSION = 1
LIB_SUFFIX = ".dprog-lib.json"
CLASH_RULES = ("refuse", "rename")


def called(graph: Graph, names: Iterable[str]) -> list[str]:
    """`names` and every function they call, directly or not, in a stable order."""
    out: list[str] = []
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name in out or name not in graph.functions:
            continue
        out.append(name)
        for _, node in graph.functions[name].body.walk():
            callee = node.params.get("function") if node.type == "call" else None
            if isinstance(callee, str):
                todo.append(callee)
    return out


def library_text(graph: Graph, names: Iterable[str]) -> str:
    """The library file holding functions `names` of `graph`, and those they call."""
    names = list(names)
    unknown = [n for n in names if n not in graph.functions]
    if unknown:
        raise KeyError(f"the graph defines no function {', '.join(map(repr, unknown))}")
    functions = {name: function_document(graph.functions[name])
                 for name in sorted(called(graph, names))}
    doc = {"format": LIB_FORMAT, "version": LIB_VERSION, "functions": functions}
    return _format(doc, "") + "\n"


def export_library(graph: Graph, names: Iterable[str], path: str | os.PathLike) -> Path:
    """Write the library file (atomically); `.dprog-lib.json` is added to a bare name."""
    path = Path(path)
    if not path.name.endswith(LIB_SUFFIX):
        path = path.with_name(path.name + LIB_SUFFIX)
    atomic_write(path, library_text(graph, names).encode("utf-8"))
    return path


def parse_library(text: str, source: str = "<library>") -> dict[str, Function]:
    """The functions of a library file's text; GraphFileError naming the place if it is bad."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        doc = None   # parse_document below says where, with the graph file's own rules
    if isinstance(doc, dict):
        if doc.get("format") != LIB_FORMAT:
            raise GraphFileError(f"{source}: $.format: not a dprog library (format must be "
                                 f"{LIB_FORMAT!r})")
        if doc.get("version") != LIB_VERSION:
            raise GraphFileError(f"{source}: $.version: library version {doc.get('version')!r} is "
                                 f"not {LIB_VERSION}, the one this dprog understands")
        extra = sorted(set(doc) - {"format", "version", "functions"})
        if extra:
            raise GraphFileError(f"{source}: $: unknown key {extra[0]!r}; a library holds only "
                                 "format, version and functions")
        if not isinstance(doc.get("functions"), dict):
            raise GraphFileError(f"{source}: $.functions: must be an object of functions by name")
        # The functions checked as those of an empty graph file: every rule of that format.
        text = json.dumps({"format": FORMAT, "version": VERSION, "nodes": [], "edges": [],
                           "functions": doc["functions"]})
    return dict(graph_from_document(parse_document(text, source), source).functions)


def load_library(path: str | os.PathLike) -> dict[str, Function]:
    path = Path(path)
    try:
        text = read_regular(path, MAX_FILE_BYTES).decode("utf-8")
    except FileRefused as e:
        raise GraphFileError(f"{path}: {e}") from None
    except FileNotFoundError:
        raise GraphFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise GraphFileError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise GraphFileError(f"{path}: cannot read ({e.strerror or e})") from None
    return parse_library(text, str(path))


def add_functions(graph: Graph, functions: Mapping[str, Function], *, on_clash: str = "refuse",
                  source: str = "<library>") -> tuple[Graph, dict[str, str]]:
    """`graph` with `functions` added, and the name each got (renamed ones differ).

    on_clash "refuse": a name the graph already defines raises ValueError naming them all and
    the fix; "rename": the newcomer takes a fresh name, and the calls inside the added bodies
    follow it."""
    if on_clash not in CLASH_RULES:
        raise ValueError(f"on_clash must be one of {', '.join(CLASH_RULES)}, not {on_clash!r}")
    clashes = sorted(set(functions) & set(graph.functions))
    if clashes and on_clash == "refuse":
        raise ValueError(f"{source}: this graph already defines {', '.join(map(repr, clashes))}; "
                         "rename or delete yours, or import with renaming")
    names: dict[str, str] = {}
    taken = Graph(functions={**graph.functions, **{n: f for n, f in functions.items()
                                                   if n not in graph.functions}})
    for name in functions:
        if name in graph.functions:
            names[name] = taken.fresh_function_name(name)
            taken = replace(taken, functions={**taken.functions, names[name]: functions[name]})
        else:
            names[name] = name
    added = {names[n]: replace(f, body=rename_calls(f.body, names)) for n, f in functions.items()}
    return replace(graph, functions={**graph.functions, **added}), names


def import_library(graph: Graph, path: str | os.PathLike, *, on_clash: str = "refuse",
                   ) -> tuple[Graph, dict[str, str]]:
    """`graph` with the library file's functions added (see `add_functions`)."""
    return add_functions(graph, load_library(path), on_clash=on_clash, source=str(path))


def rename_calls(body: Graph, names: Mapping[str, str]) -> Graph:
    """`body` with every Call (in nested bodies too) naming a renamed function renamed."""
    def node(n: Node) -> Node:
        regions = {k: rename_calls(r, names) for k, r in n.regions.items()}
        callee: Any = n.params.get("function") if n.type == "call" else None
        params = n.params
        if isinstance(callee, str) and names.get(callee, callee) != callee:
            params = {**params, "function": names[callee]}
        if params is n.params and all(regions[k] is r for k, r in n.regions.items()):
            return n
        return replace(n, params=params, regions=regions)

    nodes = tuple(node(n) for n in body.nodes)
    if all(a is b for a, b in zip(nodes, body.nodes, strict=True)):
        return body
    return replace(body, nodes=nodes)
