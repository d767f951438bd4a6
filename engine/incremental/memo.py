"""Per-node memory across the passes over one document's graphs: the base of the caches."""

from __future__ import annotations

from engine.core.codegen import is_module_path
from engine.core.graph import Graph, Node


class NodeMemo:
    """Entries per `Node` object for the last two passes over a document's graphs: the base of
    `AnalysisCache` and `CodeCache`. An entry is a list whose first item is the
    node itself, so an id reused by a new object after the old one died cannot be mistaken
    for it. A patch visits only the nodes it redoes, so after one the others keep their
    entries for the next full pass instead of ageing out."""

    def __init__(self) -> None:
        self._older: dict[int, list] = {}
        self._old: dict[int, list] = {}
        self._new: dict[int, list] = {}
        self.hits = 0
        self.misses = 0
        self.patches = 0   # passes that patched the last one instead of walking every node

    # A Call's check, inference and lines depend on its function's body, and a tie's on the
    # node it ties to, which no node record sees; graphs with functions or ties (and the first
    # graph after one) take a full pass instead. Whether the last graph had some:
    _had_functions = False

    def _full_pass_for(self, graph: Graph) -> bool:
        """Whether `graph` must take a full pass, everything remembered forgotten."""
        # Functions, ties and module paths are named across a class, not node by node.
        extras = bool(graph.functions) or any(n.ties or is_module_path(n.name)
                                              for _, n in graph.walk())
        full = extras or self._had_functions
        self._had_functions = extras
        if full:
            self._older, self._old, self._new = {}, {}, {}
            self._forget()
        return full

    def _forget(self) -> None:
        """Forget what a subclass keeps beyond the node entries."""

    def _earlier(self, node: Node) -> list | None:
        """This node object's entry from one of the last two passes, if it has one."""
        key = id(node)
        entry = self._old.get(key) or self._older.get(key)
        return entry if entry is not None and entry[0] is node else None

    def _end(self, patched: bool = False) -> None:
        if patched:
            self._old.update(self._new)
        else:
            self._older, self._old = self._old, self._new
        self._new = {}
