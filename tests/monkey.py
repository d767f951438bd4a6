"""The monkey's random user actions and invariant checks, shared by the headless monkey
(tests/test_app_monkey.py, on a bare `AppState`) and the real-window one
(tests/gui/studio_monkey.py, on the studio's own `AppState` while every view redraws).

Each step is a random user action - add, connect, disconnect, delete, move, paste,
duplicate, cut, param edits (valid and invalid values), labels, training settings, auto-
layout, undo, redo, enter/leave a body, save/open a temp file, open a broken file,
autosave (and check a second studio would be offered the autosave). After each step:
- the graph is valid data: rebuilding it re-checks every Graph/Node invariant, every param
  passes its spec's check, `analyze` does not raise, and it round-trips through JSON
  (each new graph once; every 32nd one and every saved file also through the JSON Schema,
  which is slow);
- a refused action changed nothing and recorded nothing;
- every so often, undoing everything returns the exact graph the session started from
  (or last opened), and redoing everything returns the exact current graph;
- the generated code never fails for a graph the analysis accepts.

Pure: no dearpygui, no torch, no pytest.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from app.commands import (
    AddNode,
    Analyses,
    AutoLayout,
    Connect,
    Disconnect,
    MoveNodes,
    RenameGraph,
    SetLabel,
    SetParam,
    SetTraining,
)
from app.recovery import Recovery
from app.state import AppState
from engine.core.fileformat import dumps, graph_from_document, graph_to_document, loads
from engine.core.graph import ID_PATTERN, Graph, Node
from nodes import REGISTRY, lookup
from nodes.spec import Param

COMMON = ["input", "output", "linear", "tanh", "relu", "add", "mul", "concat", "expression",
          "loop", "branch", "body_input", "body_output", "flatten", "reshape", "layer_norm"]


def rebuild(graph: Graph) -> Graph:
    """The same graph built afresh, so every constructor check runs again."""
    nodes = tuple(Node(n.id, n.type, dict(n.params), n.pos, n.label,
                       {k: rebuild(r) for k, r in n.regions.items()}) for n in graph.nodes)
    return Graph(nodes, graph.edges, name=graph.name, training=dict(graph.training))


def check_data(graph: Graph, analyses: Analyses, *, schema: bool = True) -> None:
    """Valid data; `schema=False` skips the (slow: ~1 ms per node) JSON Schema check and
    round-trips through the same JSON document without it."""
    assert rebuild(graph) == graph
    for path, node in graph.walk():
        assert ID_PATTERN.fullmatch(node.id), path
        spec = lookup(node.type)
        assert spec is not None, path
        for name, value in node.params.items():
            param = spec.param(name)
            assert param is not None and param.check(value) is None, (path, name, value)
    analyses.of(graph)    # analyze, unless the state already did for this very graph
    if schema:
        assert loads(dumps(graph)) == graph
    else:   # the same document, without the pretty-printer and the schema (both slow)
        text = json.dumps(graph_to_document(graph), allow_nan=False)
        assert graph_from_document(json.loads(text)) == graph


def random_value(rng: random.Random, param: Param) -> Any:
    """Mostly sensible values, sometimes out of range, sometimes the wrong type."""
    roll = rng.random()
    if roll < 0.1:
        return rng.choice([None, "junk", -1, 2.5, True, [1, "a"], float("nan"), 10**12, [], {}])
    if param.kind == "int":
        lo = int(param.min) if param.min is not None else -4
        hi = int(min(param.max if param.max is not None else 64, lo + 64))
        return rng.randint(lo - (roll < 0.2), hi + (roll < 0.2))
    if param.kind == "float":
        lo = param.min if param.min is not None else -2.0
        hi = min(param.max if param.max is not None else 2.0, lo + 4.0)
        return rng.uniform(lo, hi)
    if param.kind == "bool":
        return rng.random() < 0.5
    if param.kind == "choice":
        return rng.choice(param.choices)
    if param.kind == "shape":
        return [rng.randint(1, 8) for _ in range(rng.randint(1, 3))]
    if param.kind == "string":
        return rng.choice(["a + b", "a * b", "h", "x", "tanh(a)", "", "a +", "y", "a < b",
                           "torch.where(a > b, a, 0.0)"])
    if param.kind == "floats":
        return [round(rng.uniform(-3, 3), 3) for _ in range(rng.randint(0, 4))]
    return None


def new_state(tmp_path: Path, graph: Graph | None = None) -> AppState:
    """An AppState fit for a monkey: recovery in `tmp_path / "state"`, unlimited history."""
    return AppState(graph, recovery=Recovery(tmp_path / "state"), history_limit=None)


class Monkey:
    """Random user actions on an `AppState`, with the invariants checked after each one.

    `state` defaults to a fresh one whose recovery lives in `tmp_path / "state"`; a caller
    that passes its own (the studio's) must give it that recovery directory and no history
    limit, since `check_history` undoes everything back to the first graph.
    """

    def __init__(self, seed: int, tmp_path: Path, state: AppState | None = None):
        self.rng = random.Random(seed)
        self.path = tmp_path / "monkey.json"
        self.state = state if state is not None else new_state(tmp_path)
        self.base = self.state.graph      # undoing everything must come back to this
        self.counts: dict[str, int] = {}
        self.checked: dict[int, Graph] = {}   # graphs already checked, by identity
        self.tmp = tmp_path
        # Autosave timestamps on the monotonic clock, jumped forward (see act_autosave).
        self.clock = time.monotonic()
        self.last_action = ""

    # -- picking things --

    def here(self) -> Graph:
        return self.state.current_graph()

    def some_ids(self, k: int | None = None) -> list[str]:
        ids = [n.id for n in self.here().nodes]
        if not ids:
            return []
        k = k or self.rng.randint(1, min(3, len(ids)))
        return self.rng.sample(ids, min(k, len(ids)))

    def ports(self, node: Node, side: int) -> list[str]:
        spec = lookup(node.type)
        try:
            return [p.name for p in spec.port_lists(node)[side]]
        except Exception:
            return []

    def pos(self) -> tuple[float, float]:
        return (self.rng.uniform(-500, 2000), self.rng.uniform(-500, 2000))

    # -- actions: each returns the command result (True/False) --

    def act_add(self):
        s = self.state
        type_ = self.rng.choice(COMMON if self.rng.random() < 0.8 else sorted(REGISTRY))
        params = {}
        spec = REGISTRY[type_]
        if spec.params and self.rng.random() < 0.3:
            p = self.rng.choice(spec.params)
            params[p.name] = random_value(self.rng, p)
        node_id = None
        if self.rng.random() < 0.1:
            node_id = self.rng.choice(["fc", "h", "x", "y", "9bad", "h_next", "a" * 70, "loop1",
                                      "cond", "count", "iterations"])
        return s.do(AddNode(s.region, type_, self.pos(), params or None, node_id))

    def act_connect(self):
        s = self.state
        nodes = self.here().nodes
        if len(nodes) < 2:
            return None
        src, dst = self.rng.choice(nodes), self.rng.choice(nodes)
        outs, ins = self.ports(src, 1), self.ports(dst, 0)
        if not outs or not ins:
            return None
        out = self.rng.choice(outs) if self.rng.random() < 0.95 else "bogus"
        return s.do(Connect(s.region, (src.id, out), (dst.id, self.rng.choice(ins))))

    def act_disconnect(self):
        edges = self.here().edges
        if not edges:
            return None
        return self.state.do(Disconnect(self.state.region, self.rng.choice(edges)))

    def act_delete(self):
        self.state.select(self.some_ids())
        return self.state.delete_selection()

    def act_move(self):
        ids = self.some_ids()
        return self.state.do(MoveNodes(self.state.region, tuple((i, self.pos()) for i in ids)))

    def act_param(self):
        ids = self.some_ids(1)
        if not ids:
            return None
        node = self.here().node(ids[0])
        spec = lookup(node.type)
        if not spec.params:
            return None
        p = self.rng.choice(spec.params)
        name = p.name if self.rng.random() < 0.95 else "no_such_param"
        return self.state.do(SetParam(self.state.region, node.id, name, random_value(self.rng, p)))

    def act_label(self):
        ids = self.some_ids(1)
        if not ids:
            return None
        text = self.rng.choice(["", "hidden", "x" * 250, "é ü", "class", "a b"])
        return self.state.do(SetLabel(self.state.region, ids[0], text))

    def act_training(self):
        key, value = self.rng.choice([("lr", 0.1), ("lr", -1.0), ("epochs", 3), ("momentum", 7.0),
                                      ("optimizer", "sgd"), ("optimizer", "warp"), ("steps", None),
                                      ("dataset", {"name": "spirals"}), ("batch_size", 0)])
        return self.state.do(SetTraining(((key, value),)))

    def act_rename(self):
        return self.state.do(RenameGraph(self.rng.choice(["model", "net 2", "", "m" * 300])))

    def act_layout(self):
        return self.state.do(AutoLayout(self.state.region))

    def act_copy_paste(self):
        s = self.state
        s.select(self.some_ids())
        roll = self.rng.random()
        if roll < 0.3:
            return s.duplicate()
        if roll < 0.45:
            return s.cut()
        s.copy()
        if self.rng.random() < 0.5:
            self.act_enter_leave()   # paste somewhere else, maybe into a body
        if self.rng.random() < 0.2 and s.clipboard_text:
            return s.paste_text(s.clipboard_text, at=self.pos())
        return s.paste(at=self.pos() if self.rng.random() < 0.5 else None)

    def act_undo(self):
        return self.state.undo()

    def act_redo(self):
        return self.state.redo()

    def act_enter_leave(self):
        s = self.state
        if s.region and self.rng.random() < 0.4:
            s.leave_region(self.rng.randint(1, 2))
            return None
        holders = [n for n in self.here().nodes if n.regions]
        if holders:
            node = self.rng.choice(holders)
            s.enter_region(node.id, self.rng.choice(sorted(node.regions)))
        return None

    def act_save_open(self):
        s = self.state
        self.check_history()
        assert s.save(self.path), s.status
        assert not s.dirty
        saved = s.graph
        assert s.open(self.path), s.status
        assert s.graph == saved and not s.can_undo and not s.dirty
        self.base = s.graph
        return None

    def act_autosave(self):
        s = self.state
        # Never behind the real clock: a studio around this state autosaves on it too, and
        # a write stamped earlier than its last one would be skipped as "too soon".
        self.clock = max(self.clock, time.monotonic()) + self.rng.choice([0.5, 3.0, 6.0])
        s.maybe_autosave(now=self.clock)
        if s.dirty and self.rng.random() < 0.3:
            # A second studio starting now would be offered exactly this graph.
            self.clock += 100.0
            s.maybe_autosave(now=self.clock)
            pending = AppState(recovery=Recovery(self.tmp / "state")).pending_recovery()
            assert pending is not None and pending.graph == s.graph
        return None

    def act_open_bad(self):
        s = self.state
        bad = self.tmp / "bad.json"
        bad.write_text(self.rng.choice(["{", "[]", '{"format": "dprog-graph", "version": 9}',
                                        dumps(s.graph)[: self.rng.randint(0, 200)]]))
        before, depth = s.graph, len(s._undo)
        if not s.open(bad):
            assert s.graph is before and len(s._undo) == depth and s.status_level == "error"
            s.set_status("(monkey: the broken file was refused)")
        else:   # a prefix that happened to be a whole file
            self.base = s.graph
        return None

    ACTIONS = (("add", 14), ("connect", 16), ("disconnect", 4), ("delete", 5), ("move", 4),
               ("param", 12), ("label", 2), ("training", 2), ("rename", 1), ("layout", 1),
               ("copy_paste", 5), ("undo", 8), ("redo", 4), ("enter_leave", 6), ("save_open", 1),
               ("autosave", 1), ("open_bad", 1))

    # -- checks --

    def check_history(self) -> None:
        """Undo everything back to the base graph, then redo everything back again."""
        s = self.state
        current, region, selection = s.graph, s.region, s.selection
        redo_depth = len(s._redo)
        n = 0
        while s.can_undo:
            assert s.undo()
            n += 1
        assert s.graph is self.base
        for _ in range(n):
            assert s.redo()
        assert s.graph is current and len(s._redo) == redo_depth
        s.set_region(region)
        s.select(selection)

    def step(self, k: int) -> None:
        s = self.state
        weights = dict(self.ACTIONS)
        size = sum(1 for _ in s.graph.walk())
        if size > 40:   # keep graphs small enough to check every step
            weights["delete"] *= 4
            weights["add"] //= 2
        name = self.rng.choices(list(weights), list(weights.values()))[0]
        self.last_action = name
        before, depth = s.graph, len(s._undo)
        result = getattr(self, f"act_{name}")()
        if result is False and name not in ("undo", "redo", "copy_paste", "delete", "save_open"):
            # A refused command changed nothing and recorded nothing.
            assert s.graph is before and len(s._undo) == depth, (name, s.status)
            assert s.status_level in ("warning", "info"), s.status
        assert s.status_level != "error", (name, s.status)
        self.counts[f"{name}:{result}"] = self.counts.get(f"{name}:{result}", 0) + 1
        self.step_checks(k)

    def step_checks(self, k: int) -> None:
        """The invariants that hold after any step, whoever took it."""
        s = self.state
        if id(s.graph) not in self.checked or self.checked[id(s.graph)] is not s.graph:
            # Each new graph once; every 32nd (and every file opened) through the schema too.
            check_data(s.graph, s.analyses, schema=len(self.checked) % 32 == 0)
            if len(self.checked) > 20_000:
                self.checked.clear()
            self.checked[id(s.graph)] = s.graph
        s.current_graph()                 # the region always exists
        assert s.selection <= {n.id for n in s.current_graph().nodes}
        if k % 20 == 0:
            error = s.code_error
            assert not (error or "").startswith("the code generator failed"), error
            if s.analysis.ok:
                assert error is None and s.code
        if k % 250 == 0:
            self.check_history()
