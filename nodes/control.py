"""The control-flow vocabulary: loop modes, branch modes and body roles, one row each.

A Loop or Branch node holds sub-graphs (its bodies). Body input and Body output blocks form
a body's signature, and each has a *role* that says how its value crosses the boundary.
Everything the rest of dprog knows about those words lives in the tables below: the Loop
and Branch specs build their `mode` and `role` choices from them, the analysis and the code
generator look up their per-mode rules by these names (`engine.core.analysis.LOOP_RULES`,
`engine.core.codegen.LOOP_EMITTERS`), and a test checks that every row has both rules.

Adding a loop mode means adding a `LoopMode` row here and its two rules there.

Pure data: no torch, no engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .spec import Port

BODY_INPUT, BODY_OUTPUT = "body_input", "body_output"


@dataclass(frozen=True)
class Role:
    """How a value crosses a body's boundary."""

    name: str
    side: str   # BODY_INPUT or BODY_OUTPUT
    doc: str


CONTEXT = Role("context", BODY_INPUT, "the same value every step")
STATE_IN = Role("state", BODY_INPUT, "carried between iterations")
SEQUENCE = Role("sequence", BODY_INPUT, "one step of a sequence (scan)")
OUTPUT = Role("output", BODY_OUTPUT, "a result (stacked per step in a scan)")
STATE_OUT = Role("state", BODY_OUTPUT, "the next value of a state input")
HALT = Role("halt", BODY_OUTPUT, "the while loop's halt score")

INPUT_ROLES: dict[str, Role] = {r.name: r for r in (CONTEXT, STATE_IN, SEQUENCE)}
OUTPUT_ROLES: dict[str, Role] = {r.name: r for r in (OUTPUT, STATE_OUT, HALT)}
DEFAULT_ROLE = {BODY_INPUT: CONTEXT.name, BODY_OUTPUT: OUTPUT.name}


@dataclass(frozen=True)
class LoopMode:
    """One way a Loop runs its body.

    `inputs`/`outputs`: the body roles this mode admits. `requires`: roles a body must have
    (a scan needs a sequence, a while loop a halt score). `extra_outputs`: ports the loop
    adds beyond its body's signature.
    """

    name: str
    doc: str
    inputs: frozenset[str]
    outputs: frozenset[str]
    requires: tuple[str, ...] = ()
    extra_outputs: tuple[Port, ...] = ()


REPEAT = LoopMode("repeat", "repeat N times (from the count param, or a `count` input)",
                  frozenset({"context", "state"}), frozenset({"output", "state"}))
SCAN = LoopMode("scan", "scan over a sequence dim, stacking per-step outputs",
                frozenset({"context", "state", "sequence"}), frozenset({"output", "state"}),
                requires=("sequence",))
WHILE = LoopMode("while", "run while not halted, at most max_iters times",
                 frozenset({"context", "state"}), frozenset({"output", "state", "halt"}),
                 requires=("halt",),
                 extra_outputs=(Port("iterations", "steps each sample took, as floats (B,)"),))

LOOP_MODES: dict[str, LoopMode] = {m.name: m for m in (REPEAT, SCAN, WHILE)}


@dataclass(frozen=True)
class BranchMode:
    name: str
    doc: str


PER_SAMPLE = BranchMode("per_sample", "both bodies run; the results are mixed by the mask "
                        "cond > threshold")
HARD = BranchMode("hard", "one body runs for the whole batch, chosen by the batch mean of cond")

BRANCH_MODES: dict[str, BranchMode] = {m.name: m for m in (PER_SAMPLE, HARD)}
BRANCH_INPUT_ROLES = frozenset({"context"})
BRANCH_OUTPUT_ROLES = frozenset({"output"})


# --- reading a body's signature ------------------------------------------------------------


def boundary(region: Any, kind: str) -> list:
    """The body's Body input (`kind` BODY_INPUT) or Body output nodes, in node order."""
    return [n for n in getattr(region, "nodes", ()) if n.type == kind]


def role(node: Any) -> str:
    """A boundary node's role; a missing or non-text role reads as the default for its side
    (the analysis reports a bad value; everything else must not crash on it first)."""
    value = node.params.get("role", DEFAULT_ROLE.get(node.type, ""))
    return value if isinstance(value, str) else DEFAULT_ROLE.get(node.type, "")


def with_role(region: Any, kind: str, name: str) -> list:
    """The boundary nodes of one side with this role."""
    return [n for n in boundary(region, kind) if role(n) == name]


def _param(node: Any, name: str, default: str) -> str:
    value = node.params.get(name, default)
    return value if isinstance(value, str) else default


def loop_ports(node: Any) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    """A loop's ports come from its body: one input per body input (a state's may stay
    unconnected, then it starts at zeros), plus `count` when repeating from the data; one
    output per state and per plain result, plus the mode's own extras."""
    body = node.regions.get("body")
    mode = _param(node, "mode", REPEAT.name)
    inputs = [Port(n.id, optional=role(n) == STATE_IN.name) for n in boundary(body, BODY_INPUT)]
    if mode == REPEAT.name and _param(node, "count_from", "param") == "input":
        inputs.append(Port("count", "iterations to run, from the data (its max over the batch)"))
    outputs = [Port(n.id) for n in with_role(body, BODY_INPUT, STATE_IN.name)]
    outputs += [Port(n.id) for n in with_role(body, BODY_OUTPUT, OUTPUT.name)]
    extra = LOOP_MODES[mode].extra_outputs if mode in LOOP_MODES else ()
    return tuple(inputs), (*outputs, *extra)


def branch_ports(node: Any) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    """A branch's inputs are the condition and its bodies' inputs; its outputs theirs."""
    then = node.regions.get("then")
    inputs = (Port("cond", "taken where cond > threshold"),)
    inputs += tuple(Port(n.id) for n in boundary(then, BODY_INPUT))
    return inputs, tuple(Port(n.id) for n in boundary(then, BODY_OUTPUT))


def function_ports(body: Any) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    """A Call's ports: one input per Body input of its function's body, one output per Body
    output, named by their ids, in node order."""
    return (tuple(Port(n.id) for n in boundary(body, BODY_INPUT)),
            tuple(Port(n.id) for n in boundary(body, BODY_OUTPUT)))


def call_ports(node: Any) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    """A Call node on its own has no ports: they come from the function it names, which only
    the main graph knows (`engine.core.analysis` and `function_ports` resolve them)."""
    return (), ()


# A Call's `weights` param: "own" gives the call a fresh copy of the function's weights;
# any other value names a weight group, whose calls all run one module.
OWN_WEIGHTS = "own"
FUNCTION_INPUT_ROLES = frozenset({CONTEXT.name})
FUNCTION_OUTPUT_ROLES = frozenset({OUTPUT.name})


def loop_skips_weights(p: Mapping[str, Any]) -> bool:
    """Unshared weights belong to one iteration each, so a loop that may stop before its last
    (a while loop, a count from the data) can leave the later iterations' without a gradient."""
    return not p["share_weights"] and (p["mode"] == WHILE.name or p["count_from"] == "input")


def branch_skips_weights(p: Mapping[str, Any]) -> bool:
    """A hard branch runs one body per step; the other's weights get no gradient."""
    return p["mode"] == HARD.name


def choices_doc(rows: Mapping[str, Any]) -> str:
    """'repeat: ...; scan: ...' for a param's tooltip."""
    return "; ".join(f"{name}: {row.doc}" for name, row in rows.items())
