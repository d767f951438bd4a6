"""Reading and writing graph files: versioned JSON, checked against graph.schema.json.

Guarantees:
- `load_graph` raises `GraphFileError` (a `ValueError`) naming the file and the place in it
  (`$.nodes[3].params`, or a line and column for broken JSON) for anything it cannot read;
  it never executes anything from the file.
- Only a regular file of at most 64 MiB is read (engine/core/files.py): a FIFO or a device
  is refused by its type before it is opened, so nothing hangs or reads forever.
- Before the schema sees a document, one pass refuses nesting deeper than 128 levels, any
  object or list but the node and wire lists with more than 64 entries, text longer than
  4,096 characters, and text that could never be saved back (a lone surrogate), each with
  its place: what loads can always be saved.
- Older versions are migrated step by step; a newer or unknown version is refused.
- `save_graph` writes atomically (temporary file, fsync, rename) with a fixed key order, so a
  crash leaves the old file or the new one, and files diff well.

Pure: no torch. jsonschema is imported lazily, on the first load.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from nodes import LEGACY_TYPES, lookup
from nodes.params import from_json, to_json

from .files import FileRefused, read_regular
from .graph import Edge, Function, Graph, Node, check_id

FORMAT = "dprog-graph"
VERSION = 4
FUNCTIONS_VERSION = 4   # the version that added function definitions and ties
MAX_FILE_BYTES = 64 << 20
MAX_REGION_DEPTH = 16
MAX_ELEMENTS = 20_000   # nodes and edges in all regions: ~10 s to check at most
MAX_JSON_DEPTH = 128   # arrays and objects; 16 nested regions need about 70
MAX_ITEMS = 64   # keys or items of any object or list but the node and wire lists (schema: 64)
MAX_TEXT = 4096   # characters in any string (the schema's longest, a dataset path)
SCHEMA_PATH = Path(__file__).with_name("graph.schema.json")


class GraphFileError(ValueError):
    """A graph file that cannot be read; the message names the file and the place."""


# --- migrations: each takes a version-N document and returns version N+1 ----------------


def _v1_to_v2(doc: dict) -> dict:
    """Version 1 (the draft format) kept x/y as separate keys, wrote edges as "node:port"
    strings and called the training section "train"."""

    def node(n: Mapping) -> dict:
        out = {k: v for k, v in n.items() if k not in ("x", "y")}
        if "x" in n or "y" in n:
            out["pos"] = [n.get("x", 0), n.get("y", 0)]
        if isinstance(n.get("regions"), Mapping):
            out["regions"] = {k: region(r) for k, r in n["regions"].items()}
        return out

    def end(text: Any) -> Any:
        return text.split(":", 1) if isinstance(text, str) and ":" in text else text

    def region(r: Any) -> Any:
        if not isinstance(r, Mapping):
            return r
        return {"nodes": [node(n) if isinstance(n, Mapping) else n for n in r.get("nodes", [])],
                "edges": [{"from": end(e.get("src")), "to": end(e.get("dst"))}
                          if isinstance(e, Mapping) else e for e in r.get("edges", [])]}

    out = {k: v for k, v in doc.items() if k not in ("nodes", "edges", "train")}
    out.update(region(doc))
    if "train" in doc:
        out["training"] = doc["train"]
    out["version"] = 2
    return out


def _former_defaults(version: int) -> Callable[[dict], dict]:
    """The migration to `version` of the defaults that changed in it: a node that left such
    a param out meant the default before (each param's `former_default`), which is written in,
    so an older file keeps its meaning. Version 3 gave conv1d and conv2d torch's padding 0."""

    def node(n: Any) -> Any:
        if not isinstance(n, Mapping):
            return n
        out = dict(n)
        spec = lookup(n["type"]) if isinstance(n.get("type"), str) else None
        params = n.get("params", {})
        if spec is not None and isinstance(params, Mapping):
            written = {p.name: to_json(p, p.former_default[1]) for p in spec.params
                       if p.former_default is not None and p.former_default[0] == version
                       and p.name not in params}
            if written:
                out["params"] = {**written, **params}
        if isinstance(n.get("regions"), Mapping):
            out["regions"] = {k: region(r) for k, r in n["regions"].items()}
        return out

    def region(r: Any) -> Any:
        if not isinstance(r, Mapping) or not isinstance(r.get("nodes"), list):
            return r
        return {**r, "nodes": [node(n) for n in r["nodes"]]}

    def migrate(doc: dict) -> dict:
        out = dict(region(doc))
        out["version"] = version
        return out

    return migrate


def _v3_to_v4(doc: dict) -> dict:
    """Version 4 added function definitions (`functions`, name → body); older files have none."""
    return {**doc, "functions": {}, "version": 4}


MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2, 2: _former_defaults(3), 3: _v3_to_v4}


# --- loading -------------------------------------------------------------------------------


@cache
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    # jsonschema resolves a $ref on every use, which made up about half the cost of a load
    # (~1.3 ms a node). The same schema with its $defs written in place checks exactly the
    # same things; only a recursive one (a region inside a region) stays a $ref.
    return jsonschema.Draft202012Validator(_inline_refs(schema, schema.get("$defs", {}), ()))


def _inline_refs(value: Any, defs: Mapping, stack: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        ref = value.get("$ref", "")
        name = ref.removeprefix("#/$defs/")
        if len(value) == 1 and ref.startswith("#/$defs/") and name in defs and name not in stack:
            return _inline_refs(defs[name], defs, (*stack, name))
        return {k: _inline_refs(v, defs, stack) for k, v in value.items()}
    if isinstance(value, list):
        return [_inline_refs(v, defs, stack) for v in value]
    return value


def _place(path) -> str:
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isascii() and part.isidentifier():
            out += f".{part}"
        else:   # a key from the file, quoted: a raw "\n" would split the one-line message
            out += f"[{json.dumps(part)}]"
    return out


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e400 parses as inf: refuse it like the Infinity literal, since it could never be saved.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is too large")
    return value


def _check_values(doc: Any, source: str) -> None:
    """One pass over every value before the schema sees any: nesting depth, text that could
    not be written back, and objects or lists bigger than any the schema allows. The schema's
    own messages for those print the whole value, which took minutes and gigabytes for a node
    with 100,000 params; a lone surrogate (JSON's "\\ud800") loads but can never be saved
    as UTF-8, so it would make every later save of the graph fail."""
    stack: list[tuple[Any, int, tuple | None, str | int | None]] = [(doc, 1, None, None)]
    while stack:
        entry = stack.pop()
        value, depth, _, key = entry
        if isinstance(value, str):
            _check_text(value, entry, source)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise GraphFileError(f"{source}: nested deeper than {MAX_JSON_DEPTH} levels")
        if len(value) > MAX_ITEMS and not (isinstance(value, list) and key in ("nodes", "edges")):
            raise GraphFileError(f"{source}: {_place(_parts(entry))}: {len(value):,} entries; no "
                                 f"part of a graph file but its node and wire lists holds more "
                                 f"than {MAX_ITEMS}")
        if isinstance(value, dict):
            for k, v in value.items():
                _check_text(k, (k, depth + 1, entry, k), source)
                stack.append((v, depth + 1, entry, k))
        else:
            stack.extend((v, depth + 1, entry, i) for i, v in enumerate(value))


def _parts(entry: tuple) -> list[str | int]:
    parts = []
    while entry[2] is not None:
        parts.append(entry[3])
        entry = entry[2]
    return parts[::-1]


def _check_text(text: str, entry: tuple, source: str) -> None:
    if len(text) > MAX_TEXT:
        raise GraphFileError(f"{source}: {_place(_parts(entry))}: text of {len(text):,} "
                             f"characters; the longest a graph file holds is {MAX_TEXT:,}")
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise GraphFileError(
            f"{source}: {_place(_parts(entry))}: character {e.start} is a lone surrogate "
            f"(\\u{ord(text[e.start]):04x}), which no UTF-8 file can hold, so the graph could "
            "never be saved; replace that text") from None


def parse_document(text: str, source: str = "<graph>") -> dict:
    """JSON text → a checked, current-version document (a dict)."""
    try:
        doc = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as e:
        raise GraphFileError(f"{source}: line {e.lineno}, column {e.colno}: {e.msg}") from None
    except ValueError as e:
        raise GraphFileError(f"{source}: {e}") from None
    except RecursionError:
        raise GraphFileError(f"{source}: nested too deeply") from None
    # json.loads stops near the recursion limit; nesting just below it got through and then
    # raised RecursionError while jsonschema wrote its message (repr of the nested value).
    _check_values(doc, source)
    if not isinstance(doc, dict):
        raise GraphFileError(f"{source}: $: expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise GraphFileError(f"{source}: $.format: not a dprog graph file (format must be {FORMAT!r})")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise GraphFileError(f"{source}: $.version: must be an integer")
    if version > VERSION:
        raise GraphFileError(f"{source}: $.version: file version {version} is newer than this dprog "
                             f"understands (up to {VERSION}); update dprog to open it")
    if version < 1:
        raise GraphFileError(f"{source}: $.version: unknown version {version}")
    try:
        while doc["version"] < VERSION:
            doc = MIGRATIONS[doc["version"]](doc)
    except (AttributeError, TypeError, KeyError, ValueError):
        raise GraphFileError(f"{source}: malformed version-{version} file; migration failed") from None
    _check_depth(doc, source)
    # The first few errors, the earliest in the file first: collecting every error of a
    # broken 20,000-node file costs seconds and memory for messages nobody reads.
    found = itertools.islice(_validator().iter_errors(doc), 32)
    error = min(found, key=lambda e: [(isinstance(p, str), p) for p in e.absolute_path], default=None)
    if error is not None:
        raise GraphFileError(f"{source}: {_place(error.absolute_path)}: {_short(error.message)}")
    return doc


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."


def _check_depth(doc: Mapping, source: str) -> None:
    stack = [(doc, 0, "$")]
    # Function bodies count like regions of the main graph: their nodes and nesting too.
    functions = doc.get("functions")
    for name, f in functions.items() if isinstance(functions, Mapping) else ():
        if isinstance(f, Mapping):
            stack.append((f.get("graph"), 1, f"$.functions.{name}.graph"))
    total = 0
    while stack:
        region, depth, where = stack.pop()
        if depth > MAX_REGION_DEPTH:
            raise GraphFileError(f"{source}: {where}: regions nested deeper than {MAX_REGION_DEPTH}")
        nodes = region.get("nodes") if isinstance(region, Mapping) else None
        # Checking the schema costs about half a millisecond a node or wire, so a 64 MiB file
        # of small nodes took many minutes to refuse or load; count them first.
        for key in ("nodes", "edges"):
            part = region.get(key) if isinstance(region, Mapping) else None
            total += len(part) if isinstance(part, list) else 0
        if total > MAX_ELEMENTS:
            raise GraphFileError(f"{source}: more than {MAX_ELEMENTS:,} nodes and wires in all")
        for i, n in enumerate(nodes if isinstance(nodes, list) else []):
            regions = n.get("regions") if isinstance(n, Mapping) else None
            if isinstance(regions, Mapping):
                for name, r in regions.items():
                    stack.append((r, depth + 1, f"{where}.nodes[{i}].regions.{name}"))


def _build(region: Mapping, where: str, source: str, **extra: Any) -> Graph:
    nodes = []
    for i, n in enumerate(region["nodes"]):
        regions = {name: _build(r, f"{where}.nodes[{i}].regions.{name}", source)
                   for name, r in n.get("regions", {}).items()}
        # What the schema lets through but a Node refuses: "fc1\n" matches the id pattern's
        # ^…$ (Python's $ allows a trailing newline), and a 400-digit position is a valid JSON
        # number but no float.
        try:
            check_id(n["id"])
        except ValueError as e:
            raise GraphFileError(f"{source}: {where}.nodes[{i}].id: {e}") from None
        try:
            # A renamed block type loads under its current name ("dense" -> "linear"), so the
            # rest of dprog, and the next save, only ever see current types.
            type_ = LEGACY_TYPES.get(n["type"], n["type"])
            nodes.append(Node(id=n["id"], type=type_, params=_params_from_json(type_, n.get("params", {})),
                              pos=tuple(n.get("pos", (0.0, 0.0))), label=n.get("label", ""),
                              regions=regions, ties=n.get("ties", {})))
        except (ValueError, OverflowError) as e:
            raise GraphFileError(f"{source}: {where}.nodes[{i}]: {e}") from None
    for i, e in enumerate(region["edges"]):
        for key in ("from", "to"):
            for j, part in enumerate(e[key]):
                try:
                    check_id(part)
                except ValueError:
                    raise GraphFileError(f"{source}: {where}.edges[{i}].{key}[{j}]: {part!r} is not "
                                         "a node id or port name") from None
    edges = [Edge(tuple(e["from"]), tuple(e["to"])) for e in region["edges"]]
    try:
        return Graph(nodes=tuple(nodes), edges=tuple(edges), **extra)
    except ValueError as e:
        raise GraphFileError(f"{source}: {where}: {e}") from None


def _params_from_json(type_: str, params: Mapping[str, Any]) -> dict[str, Any]:
    spec = lookup(type_)
    return {k: from_json(spec and spec.param(k), v) for k, v in params.items()}


def graph_from_document(doc: Mapping, source: str = "<graph>") -> Graph:
    functions = {name: Function(_build(f["graph"], f"$.functions.{name}.graph", source),
                                title=f.get("title", ""), doc=f.get("doc", ""),
                                category=f.get("category", ""))
                 for name, f in doc.get("functions", {}).items()}
    return _build(doc, "$", source, name=doc.get("name", "model"), training=doc.get("training", {}),
                  functions=functions)


def load_graph(path: str | os.PathLike) -> Graph:
    """Read a graph file. Raises GraphFileError naming the file and place on any problem."""
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
    return loads(text, str(path))


def loads(text: str, source: str = "<graph>") -> Graph:
    return graph_from_document(parse_document(text, source), source)


# --- saving --------------------------------------------------------------------------------


def _region_document(graph: Graph) -> dict:
    nodes = []
    for n in graph.nodes:
        out: dict[str, Any] = {"id": n.id, "type": n.type}
        if n.label:
            out["label"] = n.label
        out["pos"] = [round(n.pos[0], 1), round(n.pos[1], 1)]
        spec = lookup(n.type)
        out["params"] = {k: to_json(spec and spec.param(k), v) for k, v in sorted(n.params.items())}
        if n.ties:
            out["ties"] = {k: list(v) for k, v in sorted(n.ties.items())}
        if n.regions:
            out["regions"] = {k: _region_document(r) for k, r in sorted(n.regions.items())}
        nodes.append(out)
    edges = [{"from": list(e.src), "to": list(e.dst)} for e in graph.edges]
    return {"nodes": nodes, "edges": edges}


def function_document(function: Function) -> dict:
    """A function as written in a graph or library file: title, doc, category, body."""
    out: dict[str, Any] = {"title": function.title, "doc": function.doc}
    if function.category:
        out["category"] = function.category
    out["graph"] = _region_document(function.body)
    return out


def graph_to_document(graph: Graph) -> dict:
    # A graph without functions or ties is written as version 3, which it is: its file stays
    # as it was, and an older dprog can still open it.
    version = VERSION if graph.functions or any(n.ties for _, n in graph.walk()) \
        else FUNCTIONS_VERSION - 1
    doc: dict[str, Any] = {"format": FORMAT, "version": version, "name": graph.name}
    doc.update(_region_document(graph))
    if graph.functions:   # written only when there are some, so other files stay as they were
        doc["functions"] = {name: function_document(f) for name, f in sorted(graph.functions.items())}
    if graph.training:
        training = dict(graph.training)
        if isinstance(training.get("dataset"), Mapping):
            training["dataset"] = dict(sorted(training["dataset"].items()))
        doc["training"] = dict(sorted(training.items()))
    return doc


def dumps(graph: Graph) -> str:
    return _format(graph_to_document(graph), "") + "\n"


def _format(value: Any, indent: str) -> str:
    """JSON with two-space indents that keeps small objects and lists (edges, shapes, positions,
    short params) on one line, so a diff shows one changed node or wire as one changed line."""
    flat = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))
    nested = isinstance(value, dict | list) and any(
        isinstance(v, dict) or (isinstance(v, list) and isinstance(value, list))
        for v in (value.values() if isinstance(value, dict) else value))
    if not isinstance(value, dict | list) or (len(indent) + len(flat) <= 96 and not nested):
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_format(v, inner)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(inner + _format(v, inner) for v in value) + f"\n{indent}]"


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` so that a crash at any moment leaves the old or the new file.

    The data goes to a sibling `.NAME.PID.XXXXXXXX.tmp` first. A process killed outright
    (SIGKILL, power loss) before the rename leaves that file behind, never a half-written
    `path`; the next successful save removes such orphans of writers that are no longer
    running (tests/test_crash_safety.py).
    """
    atomic_write_all([(path, data)])


def atomic_write_all(files: Sequence[tuple[str | os.PathLike, bytes]]) -> None:
    """Replace several files together: each is written whole to its temporary sibling and
    fsynced, and only when every one is complete are they renamed into place, in order. A
    failure while writing (a full disk, an interrupt) leaves every file as it was and no
    temporary file; a crash during the renames leaves each file old or new."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            path = Path(path)
            staged.append((_stage(path, data), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for folder in dict.fromkeys(path.parent for _, path in staged):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the renames themselves durable
        finally:
            os.close(dir_fd)
    for _, path in staged:
        _remove_orphans(path)


def _stage(path: Path, data: bytes) -> str:
    """`data` in a new fsynced temporary sibling of `path`; its name. Removed on failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; keep the mode the file had (or a new file would get),
        # so that saving does not quietly make a graph or an exported model.py private.
        with os.fdopen(fd, "wb") as f:
            try:
                mode = stat.S_IMODE(os.stat(path).st_mode)
            except FileNotFoundError:
                mode = 0o666 & ~_UMASK
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def _remove_orphans(path: Path) -> None:
    """Delete temporary siblings left by writers of `path` that were killed mid-save. A file
    whose writer is still running (another process saving right now) is left alone."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.\w+\.tmp")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            match = pattern.fullmatch(entry.name)
            if match and int(match[1]) != os.getpid() and not _running(int(match[1])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True   # someone else's process, or a pid we cannot ask about: keep the file
    return True


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()   # read once, at import: os.umask can only be read by setting it


def save_graph(graph: Graph, path: str | os.PathLike) -> None:
    atomic_write(path, dumps(graph).encode("utf-8"))
