"""Auto-layout: blocks in columns by depth, left to right, ordered to cross fewer wires.

`layered_positions(graph)` puts each node in the column of its longest path from a source
(so every wire points right), orders each column by the barycentre of its neighbours (a
few down/up sweeps, ties kept in the previous order), and spaces columns and rows on a
grid. Given the blocks' drawn sizes (`sizes`), a column or row that a big block (one with
a long problem line, say) would not fit in grows to fit it with a gap, so no two blocks
overlap.
Deterministic for a given graph. Wires that form a cycle (an error the analysis reports)
do not stop it: those nodes go one column after their placed predecessors.

Pure: no dearpygui, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.core.graph import Graph

ORIGIN = (40.0, 60.0)
SPACING = (200.0, 130.0)   # column width, row height: the sample graphs' grid
GAP = (50.0, 30.0)         # the least room between drawn blocks: across (for wires), down
SWEEPS = 4
Size = tuple[float, float]


def layers(graph: Graph) -> dict[str, int]:
    """node id -> column: the length of the longest wire path reaching it from a source."""
    preds: dict[str, set[str]] = {n.id: set() for n in graph.nodes}
    succs: dict[str, set[str]] = {n.id: set() for n in graph.nodes}
    for e in graph.edges:
        if e.src[0] != e.dst[0]:
            preds[e.dst[0]].add(e.src[0])
            succs[e.src[0]].add(e.dst[0])
    pending = {i: len(p) for i, p in preds.items()}
    layer: dict[str, int] = {}
    ready = [n.id for n in graph.nodes if pending[n.id] == 0]
    while True:
        while ready:
            node_id = ready.pop()
            layer[node_id] = max((layer[p] + 1 for p in preds[node_id]), default=0)
            for s in succs[node_id]:
                pending[s] -= 1
                if pending[s] == 0:
                    ready.append(s)
        stuck = [n.id for n in graph.nodes if n.id not in layer]
        if not stuck:
            return layer
        # A cycle: place its first node after whatever of its inputs is placed, and go on.
        first = stuck[0]
        pending[first] = 0
        layer[first] = max((layer[p] + 1 for p in preds[first] if p in layer), default=0)
        for s in succs[first]:
            if s not in layer:
                pending[s] -= 1
                if pending[s] <= 0:
                    ready.append(s)


def columns(graph: Graph) -> list[list[str]]:
    """Node ids per column, each column ordered to reduce crossings (barycentre sweeps)."""
    layer = layers(graph)
    if not layer:
        return []
    preds: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    succs: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        if e.src[0] != e.dst[0]:
            preds[e.dst[0]].append(e.src[0])
            succs[e.src[0]].append(e.dst[0])
    cols: list[list[str]] = [[] for _ in range(max(layer.values()) + 1)]
    # Start from the current vertical order, so a layout the user shaped stays recognisable.
    for n in sorted(graph.nodes, key=lambda n: n.pos[1]):
        cols[layer[n.id]].append(n.id)
    rank = {i: r for col in cols for r, i in enumerate(col)}

    def reorder(col: list[str], neighbours: dict[str, list[str]]) -> list[str]:
        def centre(node_id: str) -> float:
            near = [rank[m] for m in neighbours[node_id]]
            return sum(near) / len(near) if near else rank[node_id]

        return sorted(col, key=lambda i: (centre(i), rank[i]))

    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        order = range(1, len(cols)) if down else range(len(cols) - 2, -1, -1)
        for c in order:
            cols[c] = reorder(cols[c], preds if down else succs)
            rank.update({i: r for r, i in enumerate(cols[c])})
    return cols


def layered_positions(graph: Graph, *, origin: tuple[float, float] = ORIGIN,
                      spacing: tuple[float, float] = SPACING,
                      sizes: Mapping[str, Size] | None = None) -> dict[str, tuple[float, float]]:
    """node id -> (x, y) for every node of `graph` (one region; bodies are laid out apart).
    `sizes` (node id -> drawn width, height) widens a column, or lowers the rows below a
    block, wherever the grid would not leave `GAP` around a block."""
    sizes = sizes or {}
    out: dict[str, tuple[float, float]] = {}
    x = origin[0]
    for col in columns(graph):
        y = origin[1]
        for node_id in col:
            out[node_id] = (x, y)
            y += max(spacing[1], sizes.get(node_id, (0.0, 0.0))[1] + GAP[1])
        x += max(spacing[0], max((sizes.get(i, (0.0, 0.0))[0] for i in col), default=0.0) + GAP[0])
    return out
