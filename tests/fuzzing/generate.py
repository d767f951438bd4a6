"""Random graph files for fuzzing.

Three sources, mixed by `make_case`:
- `grow`: a valid graph grown block by block, using `analyze` as the oracle (a step that
  adds errors is undone), so most cases reach compile and forward, loops and branches
  included, with bodies grown the same way;
- `mutate`: one of ~30 structural mutations of a document (params sampled from each
  block's Param specs, in and out of range and of the wrong kind; edges rewired, dropped,
  duplicated, dangling or cyclic; nodes dropped or duplicated; block types changed; region
  signatures broken; wrong JSON types anywhere; huge, negative and non-finite numbers);
- `corrupt_text`: damage to the JSON text itself (truncation, deep nesting, NaN/Infinity
  literals, 1e999, garbage).

Every function takes a `random.Random`-like `rng`, so bench/fuzz.py drives it from a seed
and the hypothesis tests from `st.randoms()`, whose choices shrink. Pure: no torch.
"""

from __future__ import annotations

import copy
import json
import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from engine.core.analysis import analyze
from engine.core.fileformat import FORMAT, VERSION, graph_from_document
from engine.core.graph import Node
from nodes import REGISTRY
from nodes.expression import FUNCTIONS
from nodes.spec import Param
from nodes.types import BATCH, TensorType

REPO = Path(__file__).resolve().parents[2]
SAMPLES_DIR = REPO / "sample_graphs"

# --- strings that try to become code (also used by tests/test_injection.py) ----------------

MARKER_NAME = "DPROG_PWNED"
PAYLOADS = (
    "__import__('os').system('touch " + MARKER_NAME + "')",
    "x\nimport os; os.system('touch " + MARKER_NAME + "')\n",
    "'''; __import__('os').system('touch " + MARKER_NAME + "'); '''",
    '"""; __import__("os").system("touch ' + MARKER_NAME + '"); """',
    "\\",
    "a\\\n__import__('os').system('touch " + MARKER_NAME + "')",
    "a\r__import__('os').system('touch " + MARKER_NAME + "')",
    "a\u2028__import__('os').system('touch " + MARKER_NAME + "')",
    "a\x0b\x0c\x85__import__('os')",
    "{__import__('os').system('touch " + MARKER_NAME + "')}",
    "f'{__import__(\"os\")}'",
    "# comment */ -->",
    "forward", "training", "register_buffer", "super", "torch", "F", "nn", "self", "__class__",
    "__init__", "__dict__", "_modules", "_parameters", "parameters", "cuda", "to", "type",
    "eval", "exec", "print", "None", "True", "lambda", "class", "def", "return", "import",
    "tap", "step", "i", "_", "__", "x", "y", "1abc", "ünïcödé", "名前", "\x00", "\t", "",
)
NAMES = ("model", "Model", "my net", "moons_mlp", "ResNet-18", "123", "", "forward", "nn.Module",
         "class", "__main__", "Exception", "torch", "F", "名前", *PAYLOADS[:12])

# --- samples -------------------------------------------------------------------------


@cache
def _sample_texts() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(SAMPLES_DIR.glob("*.json"))}


def sample_names() -> list[str]:
    return list(_sample_texts())


def sample_document(name: str) -> dict:
    return json.loads(_sample_texts()[name])


# --- the oracle ----------------------------------------------------------------------


def _analysis(doc: dict):
    try:
        return analyze(graph_from_document(doc))
    except ValueError:   # duplicate ids or dangling edges: not a graph at all
        return None


def _has_errors(doc: dict) -> bool:
    a = _analysis(doc)
    return a is None or any(d.code != "no_output" for d in a.errors)


# --- params --------------------------------------------------------------------------

SMALL_INTS = {
    "out_features": (1, 12), "out_channels": (1, 8), "kernel_size": (1, 4), "stride": (0, 2),
    "padding": (0, 2), "output_padding": (0, 1), "dilation": (1, 2), "groups": (1, 2),
    "hidden_size": (1, 12), "num_embeddings": (1, 20), "embedding_dim": (1, 8),
    "num_heads": (1, 4), "count": (1, 3), "max_iters": (1, 4), "dims": (1, 2), "index": (-2, 2),
    "start": (-3, 3), "stop": (-3, 5), "step": (1, 2), "dim": (-3, 3), "start_dim": (1, 2),
    "end_dim": (-1, 2), "inputs": (1, 4), "num_layers": (1, 2),
}


def random_expression(rng, names: str, depth: int = 0) -> str:
    """An Expression-language formula over `names`, sometimes with forbidden parts: arithmetic,
    comparisons and their masks (& | ~), torch functions with torch.where among them."""
    r = rng.random()
    if depth >= 3 or r < 0.3:
        if rng.random() < 0.75:
            return rng.choice(names)
        return rng.choice(["0", "1", "0.5", "2", "-1", "1e-3", "3", "1e12", "1e13", "10"])
    if r < 0.55:
        op = rng.choice(["+", "-", "*", "/", "**", "%"])
        return f"({random_expression(rng, names, depth + 1)} {op} {random_expression(rng, names, depth + 1)})"
    if r < 0.62:
        return f"-{random_expression(rng, names, depth + 1)}"
    if r < 0.72:
        return _comparison(rng, names, depth)
    if r < 0.77:
        if rng.random() < 0.3:
            return f"~{_comparison(rng, names, depth)}"
        op = rng.choice(["&", "|"])
        return f"({_comparison(rng, names, depth)} {op} {_comparison(rng, names, depth)})"
    if r < 0.97:
        fn = rng.choice(sorted(FUNCTIONS))
        arity, keywords, result = FUNCTIONS[fn]
        args = [random_expression(rng, names, depth + 1) for _ in range(arity)]
        if result == "where" and rng.random() < 0.8:   # mostly a mask, as it should be
            args[0] = _comparison(rng, names, depth)
        if keywords and rng.random() < 0.5:
            args.append(f"{rng.choice(keywords)}={rng.choice(['-1', '1', '0.5', '-2.5'])}")
        return f"torch.{fn}({', '.join(args)})"
    return rng.choice(["__import__('os')", "a.__class__", "'text'", "a[0]", "lambda: 1",
                       "[a for a in b]", "torch.nn", "open('x')", "a if b else c", "b'x'",
                       "torch.sigmoid(*a)", "torch.clamp(a, min=b)", "1 < 2", "a @ b",
                       "a < b < c", "a is b", "a in b", "~1", "1 & a", "(a < b) + 1",
                       "torch.where(1, a, b)", "torch.where(a, b)", "-(a > b)", "a ^ b",
                       "torch.where(a < b, a, b).__class__", "not a < b", "a < b and b < c"])


def _comparison(rng, names: str, depth: int) -> str:
    op = rng.choice(["<", "<=", ">", ">=", "==", "!="])
    return f"({random_expression(rng, names, depth + 1)} {op} {random_expression(rng, names, depth + 1)})"


def plausible_value(rng, node_type: str, p: Param) -> Any:
    """A value a person might set: mostly small and in range."""
    if rng.random() < 0.35 and p.kind != "string":
        return list(p.default) if isinstance(p.default, tuple) else p.default
    if p.kind == "bool":
        return rng.random() < 0.5
    if p.kind == "choice":
        return rng.choice(p.choices)
    if p.kind == "int":
        lo, hi = SMALL_INTS.get(p.name, (p.min if p.min is not None else -3, 6))
        lo = max(lo, p.min) if p.min is not None else lo
        hi = min(hi, p.max) if p.max is not None else hi
        return rng.randint(int(lo), int(max(lo, hi)))
    if p.kind == "float":
        lo = max(p.min, -2.0) if p.min is not None else -2.0
        hi = min(p.max, 2.0) if p.max is not None else 2.0
        return round(rng.uniform(lo, hi), 3)
    if p.kind == "shape":
        if p.name == "dims":   # Permute: an order of dims 1..n
            dims = list(range(1, rng.randint(1, 3) + 1))
            rng.shuffle(dims)
            return dims
        if p.name == "output_size":
            return [rng.randint(1, 3) for _ in range(2)]
        dims = [rng.randint(1, 6) for _ in range(rng.randint(1 if p.name != "shape" else 0,
                                                                min(3, p.max_len)))]
        if p.allow_negative_one and dims and rng.random() < 0.5:
            dims[rng.randrange(len(dims))] = -1
        return dims or [1]
    if p.kind == "floats":
        return [round(rng.uniform(-2.0, 2.0), 3) for _ in range(rng.randint(0, 6))]
    if p.kind == "string":
        if node_type == "expression":
            if rng.random() < 0.3:   # a mask choosing between values: floats out, so it grows on
                return (f"torch.where({_comparison(rng, 'ab', 1)}, "   # two inputs, as by default
                        f"{random_expression(rng, 'ab', 2)}, {random_expression(rng, 'ab', 2)})")
            return random_expression(rng, "abcd")
        return p.default
    return p.default


def hostile_value(rng, p: Param | None) -> Any:
    """A value built to break things: boundaries, just outside them, wrong kinds, extremes."""
    lo = p.min if p and p.min is not None else -1
    hi = p.max if p and p.max is not None else 1 << 20
    pool = [
        lo, hi, int(lo) - 1, int(hi) + 1, 0, -1, 1, 2 ** 31, 2 ** 63, -(2 ** 63), 10 ** 400,
        -(10 ** 400), 10 ** 18, 1.5, -0.0, 1e308, -1e308, 5e-324, "", "abc", "a" * 300, True,
        False, [], [0], [-1], [-1, -1], [1, 2], [2 ** 40], [1] * 17, [2 ** 24, 2 ** 24],
        [1 << 24], [10 ** 400], None, {}, {"a": 1}, [1.5], [True], rng.choice(PAYLOADS),
        random_expression(rng, "abcdxyz"),
    ]
    if p is not None and p.choices:
        pool += [c.upper() for c in p.choices] + [c + " " for c in p.choices]
    if p is not None and p.kind == "int" and p.max is not None:
        pool += [int(hi), int(hi), int(lo)]   # legal but extreme: the caps must hold
    if p is not None and p.kind == "shape":
        pool += [[rng.randint(1, 1 << 24) for _ in range(rng.randint(1, p.max_len))],
                 [1 << 12, 1 << 12], [1 << 14] * 2, [4096] * 3]
    return rng.choice(pool)


# --- growing valid graphs ------------------------------------------------------------

# (block type, weight): the grower's menu. Loops and branches are added by their own code.
MENU = [
    ("linear", 10), ("tanh", 4), ("relu", 4), ("sigmoid", 2), ("gelu", 2), ("silu", 1),
    ("leaky_relu", 1), ("softmax", 1), ("log_softmax", 1), ("add", 4), ("sub", 1), ("mul", 2),
    ("div", 1), ("matmul", 1), ("mean", 2), ("sum", 1), ("max", 1), ("norm", 1),
    ("expression", 4), ("flatten", 2), ("reshape", 2), ("permute", 1), ("concat", 2),
    ("split", 2), ("select", 1), ("slice", 1), ("dropout", 1), ("layer_norm", 2),
    ("batch_norm1d", 1), ("batch_norm2d", 1), ("conv1d", 2), ("conv2d", 2),
    ("conv_transpose2d", 1), ("max_pool2d", 1), ("avg_pool2d", 1), ("adaptive_avg_pool2d", 1),
    ("embedding", 2), ("multihead_attention", 1), ("rnn_cell", 1), ("gru_cell", 1),
    ("lstm_cell", 1), ("constant", 1), ("parameter", 1), ("mse", 1), ("cross_entropy", 1),
    ("l1", 1), ("bce_with_logits", 1), ("loop", 4), ("branch", 3),
    ("scaled_dot_product_attention", 1), ("lstm", 1), ("gru", 1), ("positions", 1),
    ("normal", 1), ("uniform", 1), ("bernoulli", 1), ("reparameterize", 1), ("bce", 1),
]
INPUT_SHAPES = [[2], [4], [8], [3, 5], [10, 2], [1, 8, 8], [3, 6, 6], [2, 4, 4], [], [6, 4]]


@dataclass
class _Region:
    doc: dict
    region: dict
    prefix: str
    depth: int


class Grower:
    """Grows a valid graph one block at a time, undoing steps the analysis rejects."""

    def __init__(self, rng, *, max_steps: int = 10, max_depth: int = 2, labels: bool = True):
        self.rng = rng
        self.max_steps = max_steps
        self.max_depth = max_depth
        self.labels = labels
        self.counter = 0
        self.last = None   # the analysis of the document as it stands, when known

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def node(self, type_: str, node_id: str | None = None, **params: Any) -> dict:
        out = {"id": node_id or self.fresh(type_[:6]), "type": type_,
               "pos": [round(self.rng.uniform(0, 900), 1), round(self.rng.uniform(0, 600), 1)],
               "params": params}
        if self.labels and self.rng.random() < 0.15:
            out["label"] = self.rng.choice((*PAYLOADS, "fc", "hidden layer", "Act 1", "h"))
        return out

    def graph(self) -> dict:
        rng = self.rng
        doc = {"format": FORMAT, "version": VERSION, "name": rng.choice(NAMES), "nodes": [],
               "edges": []}
        for _ in range(rng.choice((1, 1, 1, 2))):
            shape = rng.choice(INPUT_SHAPES)
            dtype = "long" if rng.random() < 0.12 else "float"
            doc["nodes"].append(self.node("input", shape=list(shape), dtype=dtype))
        top = _Region(doc, doc, "", 0)
        for _ in range(rng.randint(1, self.max_steps)):
            self.step(top)
        types = self.available(top)
        if types:
            outs = [types[-1]] + ([rng.choice(types)] if rng.random() < 0.3 else [])
            for (src, port), _ in outs:
                out = self.node("output")
                doc["nodes"].append(out)
                doc["edges"].append({"from": [src, port], "to": [out["id"], "x"]})
        if rng.random() < 0.3:
            doc["training"] = random_training(rng)
        return doc

    def available(self, r: _Region, analysis=None) -> list[tuple[tuple[str, str], TensorType]]:
        analysis = analysis or self.last or _analysis(r.doc)
        if analysis is None:
            return []
        out = []
        for n in r.region["nodes"]:
            for port, t in analysis.outputs.get(r.prefix + n["id"], {}).items():
                out.append(((n["id"], port), t))
        return out

    def pick(self, types, want=None, *, batched=False):
        rng = self.rng
        pool = [(s, t) for s, t in types if (want is None or want(t)) and
                (not batched or t.batched)]
        if not pool:
            return None
        return pool[-1] if rng.random() < 0.4 else rng.choice(pool)

    def attempt(self, r: _Region, change) -> bool:
        """Apply `change` (which edits the documents); keep it if the graph stays valid."""
        before = copy.deepcopy(r.region)
        self.last = None
        if change() is not False:
            analysis = _analysis(r.doc)
            bad = analysis is None or any(d.code != "no_output" for d in analysis.errors)
            if not bad or self.rng.random() < 0.03:
                self.last = analysis   # the next step's `available` reuses it
                return True
        r.region.clear()
        r.region.update(before)
        return False

    def step(self, r: _Region) -> None:
        rng = self.rng
        types = self.available(r)
        if not types:
            return
        types_, weights = zip(*MENU, strict=True)
        for _ in range(4):
            type_ = rng.choices(types_, weights)[0]
            if type_ in ("loop", "branch") and r.depth >= self.max_depth:
                continue
            make = {"loop": self.loop, "branch": self.branch}.get(type_, self.op)
            if self.attempt(r, lambda t=type_, m=make: m(r, t, types)):
                return

    def op(self, r: _Region, type_: str, types) -> bool:
        rng = self.rng
        spec = REGISTRY[type_]
        params = {p.name: plausible_value(rng, type_, p) for p in spec.params
                  if rng.random() < 0.7}
        node = self.node(type_, **params)
        try:
            ins, _ = spec.port_lists(Node(node["id"], type_, params))
        except Exception:
            return False
        edges = []
        for port in ins:
            if port.optional and rng.random() < 0.75:   # a mask, an initial state: mostly unwired
                continue
            if type_ == "embedding" or (port.name == "target" and type_ == "cross_entropy"):
                src = self.pick(types, lambda t: t.dtype == "long")
            else:
                src = self.pick(types, lambda t: t.dtype == "float" or rng.random() < 0.1)
            if src is None:
                return False
            edges.append({"from": list(src[0]), "to": [node["id"], port.name]})
        r.region["nodes"].append(node)
        r.region["edges"] += edges
        return True

    def sub_grow(self, r: _Region, loop_id: str, name: str, body: dict) -> None:
        sub = _Region(r.doc, body, f"{r.prefix}{loop_id}/{name}/", r.depth + 1)
        for _ in range(self.rng.randint(0, 4)):
            self.step(sub)

    def rewire_output(self, r: _Region, body_prefix: str, body: dict, out_id: str, want) -> None:
        """Point a body output at another node of the body whose type passes `want`."""
        sub = _Region(r.doc, body, body_prefix, r.depth + 1)
        pool = [(s, t) for s, t in self.available(sub) if want(t) and s[0] != out_id]
        if not pool:
            return
        (src, port), _ = self.rng.choice(pool)
        for e in body["edges"]:
            if e["to"][0] == out_id:
                self.attempt(sub, lambda e=e: e.update({"from": [src, port]}))
                return

    def loop(self, r: _Region, type_: str, types) -> bool:
        rng = self.rng
        self.last = None
        mode = rng.choice(("repeat", "repeat", "scan", "while"))
        halt = rng.choice(("per_sample", "batch"))
        lid = self.fresh("loop")
        params = {"mode": mode, "count": rng.randint(1, 3), "max_iters": rng.randint(1, 4),
                  "threshold": round(rng.uniform(-1, 1), 2), "halt": halt,
                  "share_weights": rng.random() < 0.7}
        body = {"nodes": [], "edges": []}
        outer = []
        ctx = self.pick(types, lambda t: t.dtype == "float", batched=True)
        if ctx is None:
            return False
        body["nodes"].append(self.node("body_input", "x", role="context"))
        outer.append({"from": list(ctx[0]), "to": [lid, "x"]})
        state = None
        if rng.random() < 0.6 or (mode == "while" and halt == "per_sample"):
            src = self.pick(types, lambda t: t.dtype == "float" and t.rank >= 2, batched=True)
            if src is not None and rng.random() < 0.5:
                state = src[1]
                body["nodes"].append(self.node("body_input", "h", role="state",
                                               shape=list(state.shape[1:])))
                outer.append({"from": list(src[0]), "to": [lid, "h"]})
            else:
                shape = [rng.randint(1, 5)]
                state = TensorType((BATCH, *shape))
                body["nodes"].append(self.node("body_input", "h", role="state", shape=shape))
            body["nodes"].append(self.node("body_output", "h_next", role="state", state="h"))
            body["edges"].append({"from": ["h", "y"], "to": ["h_next", "x"]})
        if mode == "scan":
            seq = self.pick(types, lambda t: t.dtype == "float" and t.rank >= 3, batched=True)
            if seq is None:
                return False
            params["dim"] = rng.randint(1, seq[1].rank - 2)
            body["nodes"].append(self.node("body_input", "s", role="sequence"))
            outer.append({"from": list(seq[0]), "to": [lid, "s"]})
        if mode == "while":
            flat = self.node("flatten", "hf")
            fc = self.node("linear", "hl", out_features=1)
            sig = self.node("sigmoid", "hs")
            out = self.node("body_output", "halt", role="halt")
            body["nodes"] += [flat, fc, sig, out]
            body["edges"] += [{"from": ["x", "y"], "to": ["hf", "x"]},
                              {"from": ["hf", "y"], "to": ["hl", "x"]},
                              {"from": ["hl", "y"], "to": ["hs", "x"]},
                              {"from": ["hs", "y"], "to": ["halt", "x"]}]
        if not (mode == "while" and halt == "per_sample") and (state is None or rng.random() < 0.6):
            body["nodes"].append(self.node("body_output", "out", role="output"))
            body["edges"].append({"from": ["s" if mode == "scan" else "x", "y"],
                                  "to": ["out", "x"]})
        if mode == "repeat" and rng.random() < 0.2:
            params["count_from"] = "input"
            count = self.pick(types)
            if count is None:
                return False
            outer.append({"from": list(count[0]), "to": [lid, "count"]})
        node = self.node("loop", lid, **params)
        node["regions"] = {"body": body}
        r.region["nodes"].append(node)
        r.region["edges"] += outer
        if _has_errors(r.doc):
            return False
        prefix = f"{r.prefix}{lid}/body/"
        self.sub_grow(r, lid, "body", body)
        analysis = _analysis(r.doc)
        for n in list(body["nodes"]):
            if n["type"] != "body_output" or n["id"] == "halt":
                continue
            if n["params"].get("role") == "state" and state is not None:
                want = analysis.outputs.get(prefix + "h", {}).get("y")
                self.rewire_output(r, prefix, body, n["id"], lambda t, w=want: t == w)
            else:
                self.rewire_output(r, prefix, body, n["id"],
                                   lambda t: mode != "scan" or t.rank >= params.get("dim", 1))
        return True

    def branch(self, r: _Region, type_: str, types) -> bool:
        rng = self.rng
        self.last = None
        mode = rng.choice(("per_sample", "per_sample", "hard"))
        bid = self.fresh("branch")
        src = self.pick(types, lambda t: t.dtype == "float", batched=True)
        if src is None:
            return False
        cond = self.pick(types, lambda t: t.dtype == "float" and t.shape in ((BATCH,), (BATCH, 1)))
        helpers = []
        if cond is None or (mode == "hard" and rng.random() < 0.5):
            base = self.pick(types, lambda t: t.dtype == "float" and t.rank >= 1, batched=True)
            if base is None:
                return False
            mean = self.node("mean", dim=-1)
            helpers.append(mean)
            cond_src = [base[0][0], base[0][1]]
            if base[1].rank > 2:
                flat = self.node("flatten")
                helpers.insert(0, flat)
                r.region["edges"].append({"from": cond_src, "to": [flat["id"], "x"]})
                cond_src = [flat["id"], "y"]
            if base[1].rank >= 2:
                r.region["edges"].append({"from": cond_src, "to": [mean["id"], "x"]})
                cond_src = [mean["id"], "y"]
            else:
                helpers.remove(mean)
        else:
            cond_src = list(cond[0])
        r.region["nodes"] += helpers
        bodies = {name: {"nodes": [self.node("body_input", "x", role="context"),
                                   self.node("body_output", "y", role="output")],
                         "edges": [{"from": ["x", "y"], "to": ["y", "x"]}]}
                  for name in ("then", "else")}
        node = self.node("branch", bid, mode=mode, threshold=round(rng.uniform(-1, 1), 2))
        node["regions"] = bodies
        r.region["nodes"].append(node)
        r.region["edges"] += [{"from": cond_src, "to": [bid, "cond"]},
                              {"from": list(src[0]), "to": [bid, "x"]}]
        if _has_errors(r.doc):
            return False
        for name in ("then", "else"):
            self.sub_grow(r, bid, name, bodies[name])
        # Re-point both bodies' output at nodes of one type, when both bodies have one.
        analysis = _analysis(r.doc)
        then_prefix, else_prefix = f"{r.prefix}{bid}/then/", f"{r.prefix}{bid}/else/"
        then_types = {t for n in bodies["then"]["nodes"] for t in
                      analysis.outputs.get(then_prefix + n["id"], {}).values()}
        else_types = {t for n in bodies["else"]["nodes"] for t in
                      analysis.outputs.get(else_prefix + n["id"], {}).values()}
        common = sorted(then_types & else_types, key=str)
        if common:
            want = rng.choice(common)
            before = copy.deepcopy(r.region)
            for name, prefix in (("then", then_prefix), ("else", else_prefix)):
                sub = _Region(r.doc, bodies[name], prefix, r.depth + 1)
                pool = [s for s, t in self.available(sub) if t == want and s[0] != "y"]
                if pool:
                    src_y = rng.choice(pool)
                    for e in bodies[name]["edges"]:
                        if e["to"][0] == "y":
                            e["from"] = list(src_y)
            if _has_errors(r.doc):
                r.region.clear()
                r.region.update(before)
        return True


def random_training(rng) -> dict:
    out: dict[str, Any] = {}
    if rng.random() < 0.8:
        out["dataset"] = {"name": rng.choice(["moons", "circles", "xor", "digits", "file", "x"])}
        for _ in range(rng.randint(0, 3)):
            out["dataset"][rng.choice(["noise", "n_samples", "path", "seed", "extra"])] = \
                rng.choice([0.1, 100, "data.csv", rng.choice(PAYLOADS), None, True, -1])
    for key, values in (("lr", [0.01, 1e-3, 0.5]), ("batch_size", [2, 32]), ("epochs", [1, 5]),
                        ("optimizer", ["adam", "sgd"]), ("loss", ["auto", "mse"]),
                        ("seed", [0, 7]), ("steps", [None, 10]), ("clip_grad_norm", [None, 1.0])):
        if rng.random() < 0.3:
            out[key] = rng.choice(values)
    return out


def grow(rng, **kwargs: Any) -> dict:
    return Grower(rng, **kwargs).graph()


def nested_loops(rng, depth: int, count: int = 3) -> dict:
    """An Input → Loop(Loop(... Loop(tanh) ...)) → Output graph, `depth` loops deep."""
    def body(level: int) -> dict:
        inner = ({"id": "t", "type": "tanh", "params": {}} if level == depth else
                 {"id": "t", "type": "loop", "params": {"count": count}, "regions": {"body": body(level + 1)}})
        return {"nodes": [{"id": "x", "type": "body_input", "params": {"role": "context"}}, inner,
                          {"id": "y", "type": "body_output", "params": {"role": "output"}}],
                "edges": [{"from": ["x", "y"], "to": ["t", "x"]},
                          {"from": ["t", "y"], "to": ["y", "x"]}]}
    return {"format": FORMAT, "version": VERSION, "name": "nested",
            "nodes": [{"id": "x", "type": "input", "params": {"shape": [rng.randint(1, 4)]}},
                      {"id": "t", "type": "loop", "params": {"count": count}, "regions": {"body": body(1)}},
                      {"id": "o", "type": "output", "params": {}}],
            "edges": [{"from": ["x", "y"], "to": ["t", "x"]}, {"from": ["t", "y"], "to": ["o", "x"]}]}


# --- mutating documents --------------------------------------------------------------


def regions(doc: dict) -> list[dict]:
    """Every region dict in a document (the document itself first), function bodies included,
    skipping malformed parts."""
    out, stack = [], [doc]
    functions = doc.get("functions") if isinstance(doc, dict) else None
    for f in functions.values() if isinstance(functions, dict) else ():
        if isinstance(f, dict):
            stack.append(f.get("graph"))
    while stack:
        r = stack.pop()
        if not isinstance(r, dict):
            continue
        out.append(r)
        for n in r.get("nodes", []) if isinstance(r.get("nodes"), list) else []:
            if isinstance(n, dict) and isinstance(n.get("regions"), dict):
                stack += list(n["regions"].values())
    return out


def _nodes(r: dict) -> list:
    nodes = r.get("nodes")
    return [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []


def _edges(r: dict) -> list:
    edges = r.get("edges")
    return [e for e in edges if isinstance(e, dict)] if isinstance(edges, list) else []


def _pick_node(rng, doc):
    pool = [(r, n) for r in regions(doc) for n in _nodes(r)]
    return rng.choice(pool) if pool else (None, None)


def _pick_edge(rng, doc):
    pool = [(r, e) for r in regions(doc) for e in _edges(r)]
    return rng.choice(pool) if pool else (None, None)


def _ports(n: dict) -> list[str]:
    spec = REGISTRY.get(n.get("type")) if isinstance(n.get("type"), str) else None
    if spec is None:
        return ["x", "y"]
    try:
        node = Node(n["id"], n["type"], n.get("params") or {}, regions={})
        ins, outs = spec.port_lists(node)
    except Exception:
        ins, outs = spec.inputs, spec.outputs
    return [p.name for p in (*ins, *outs)] + ["x", "y", "h", "cond", "count"]


def m_param(rng, doc):
    _r, n = _pick_node(rng, doc)
    if n is None:
        return "noop"
    spec = REGISTRY.get(n.get("type")) if isinstance(n.get("type"), str) else None
    params = n.setdefault("params", {})
    if not isinstance(params, dict):
        n["params"] = params = {}
    if spec is None or not spec.params or rng.random() < 0.05:
        params[rng.choice(["bogus", "out_features", "role", "x"])] = hostile_value(rng, None)
        return "param_unknown"
    p = rng.choice(spec.params)
    if rng.random() < 0.5:
        params[p.name] = plausible_value(rng, n["type"], p)
        return "param_plausible"
    if rng.random() < 0.1:
        params.pop(p.name, None)
        return "param_dropped"
    params[p.name] = hostile_value(rng, p)
    return "param_hostile"


def m_rewire(rng, doc):
    r, e = _pick_edge(rng, doc)
    if e is None:
        return "noop"
    nodes = _nodes(r)
    if not nodes:
        return "noop"
    n = rng.choice(nodes)
    end = rng.choice(["from", "to"])
    e[end] = [n.get("id"), rng.choice(_ports(n))]
    return "edge_rewire"


def m_drop_node(rng, doc):
    r, n = _pick_node(rng, doc)
    if n is None:
        return "noop"
    r["nodes"].remove(n)
    if rng.random() < 0.5 and isinstance(r.get("edges"), list):
        r["edges"] = [e for e in r["edges"] if not isinstance(e, dict) or n.get("id") not in
                      (_end(e.get("from")), _end(e.get("to")))]
        return "node_drop_clean"
    return "node_drop_dangling"


def _end(value):
    return value[0] if isinstance(value, list) and value else None


def m_dup_node(rng, doc):
    r, n = _pick_node(rng, doc)
    if n is None:
        return "noop"
    twin = copy.deepcopy(n)
    if rng.random() < 0.5:
        twin["id"] = f"{n.get('id')}_twin"
        r["nodes"].append(twin)
        for e in list(_edges(r)):
            if _end(e.get("to")) == n.get("id") and rng.random() < 0.7:
                r["edges"].append({"from": e["from"], "to": [twin["id"], e["to"][1]]})
        return "node_dup_fresh_id"
    r["nodes"].append(twin)
    return "node_dup_same_id"


def m_drop_edge(rng, doc):
    r, e = _pick_edge(rng, doc)
    if e is None:
        return "noop"
    r["edges"].remove(e)
    return "edge_drop"


def m_dup_edge(rng, doc):
    r, e = _pick_edge(rng, doc)
    if e is None:
        return "noop"
    r["edges"].append(copy.deepcopy(e))
    return "edge_dup"


def m_add_edge(rng, doc):
    """A random wire, often from a later node to an earlier one (a cycle) or to nowhere."""
    r = rng.choice(regions(doc))
    nodes = _nodes(r)
    if not nodes or not isinstance(r.get("edges"), list):
        return "noop"
    i, j = rng.randrange(len(nodes)), rng.randrange(len(nodes))
    src, dst = nodes[max(i, j)], nodes[min(i, j)]
    kind = "edge_add_back"
    if rng.random() < 0.2:
        dst = {"id": rng.choice(["ghost", "nowhere", "x"]), "type": "relu"}
        kind = "edge_add_dangling"
    r["edges"].append({"from": [src.get("id"), rng.choice(_ports(src))],
                       "to": [dst.get("id"), rng.choice(_ports(dst))]})
    return kind


def m_type(rng, doc):
    _r, n = _pick_node(rng, doc)
    if n is None:
        return "noop"
    n["type"] = rng.choice([*REGISTRY, "dense", "Linear", "nonexistent", "", "__import__",
                            "loop", "branch", "body_input", "body_output", "input", "output"])
    return "type_change"


def m_id(rng, doc):
    r, n = _pick_node(rng, doc)
    if n is None:
        return "noop"
    others = [m.get("id") for m in _nodes(r) if m is not n]
    n["id"] = rng.choice([*(others[:1] or ["x"]), "1abc", "a-b", "", "a" * 65, "ñ", "a b",
                          "__init__", "self", "forward", None, 5, ["x"]])
    return "id_change"


def m_region(rng, doc):
    pool = [(r, n) for r in regions(doc) for n in _nodes(r) if isinstance(n.get("regions"), dict)]
    if not pool:
        _r, n = _pick_node(rng, doc)
        if n is None:
            return "noop"
        n["regions"] = {"body": {"nodes": [], "edges": []}}
        return "region_on_plain_node"
    _r, n = rng.choice(pool)
    regs = n["regions"]
    choice = rng.randrange(7)
    names = list(regs)
    if choice == 0 and names:
        del regs[rng.choice(names)]
        return "region_drop"
    if choice == 1 and len(names) == 2:
        regs[names[0]], regs[names[1]] = regs[names[1]], regs[names[0]]
        return "region_swap"
    body = regs[rng.choice(names)] if names else None
    if not isinstance(body, dict):
        return "noop"
    if choice == 2:
        body.setdefault("nodes", []).append(
            {"id": rng.choice(["extra", "x", "h"]), "type": "body_input",
             "params": {"role": rng.choice(["context", "state", "sequence", "weird"])}})
        return "region_extra_input"
    if choice == 3:
        body.setdefault("nodes", []).append(
            {"id": rng.choice(["extra_out", "y", "halt"]), "type": "body_output",
             "params": {"role": rng.choice(["output", "state", "halt"]),
                        "state": rng.choice(["h", "x", "nope", ""])}})
        return "region_extra_output"
    if choice == 4:
        for m in _nodes(body):
            if m.get("type") in ("body_input", "body_output") and isinstance(m.get("params"), dict):
                m["params"]["role"] = rng.choice(["context", "state", "sequence", "output", "halt",
                                                  "bogus", 7])
        return "region_roles"
    if choice == 5:
        regs[rng.choice(["body", "then", "else", "other"])] = copy.deepcopy(body)
        return "region_copy"
    depth = rng.choice([2, 8, 15, 16, 17, 30])
    wrapped = copy.deepcopy(body)
    for _ in range(depth):
        wrapped = {"nodes": [{"id": "x", "type": "body_input", "params": {"role": "context"}},
                             {"id": "inner", "type": "loop", "params": {"count": 1},
                              "regions": {"body": wrapped}},
                             {"id": "y", "type": "body_output", "params": {}}],
                   "edges": [{"from": ["x", "y"], "to": ["inner", "x"]},
                             {"from": ["inner", "y"], "to": ["y", "x"]}]}
    regs[names[0]] = wrapped
    return "region_nest_deep"


def m_json_type(rng, doc):
    """Replace one value anywhere in the document with a JSON value of some other type."""
    paths = list(_paths(doc))
    if not paths:
        return "noop"
    parent, key = rng.choice(paths)
    parent[key] = random_json(rng)
    return "json_wrong_type"


def m_number(rng, doc):
    paths = [(p, k) for p, k in _paths(doc) if isinstance(p[k], int | float)]
    if not paths:
        return "noop"
    parent, key = rng.choice(paths)
    parent[key] = rng.choice([10 ** 30, 2 ** 63, 10 ** 400, -(10 ** 400), -1, -(2 ** 31), 1e308,
                              -1e308, 0.5, -0.0, 2 ** 53 + 1, 1e-320, 0])
    return "number_extreme"


def m_text(rng, doc):
    """Labels, names and string params set to payloads or odd text."""
    _r, n = _pick_node(rng, doc)
    choice = rng.randrange(4)
    if choice == 0 or n is None:
        doc["name"] = rng.choice((*NAMES, "x" * 201))
        return "name"
    if choice == 1:
        n["label"] = rng.choice((*PAYLOADS, "x" * 201))
        return "label"
    if choice == 2 and isinstance(n.get("params"), dict):
        key = "expr" if n.get("type") == "expression" else rng.choice(["state", "role", "expr"])
        n["params"][key] = rng.choice(PAYLOADS)
        return "string_param"
    doc.setdefault("training", {})
    if isinstance(doc["training"], dict):
        doc["training"]["dataset"] = {"name": rng.choice(PAYLOADS)[:64], "path": rng.choice(PAYLOADS)}
    return "dataset_text"


def m_top(rng, doc):
    choice = rng.randrange(6)
    if choice == 0:
        doc["version"] = rng.choice([0, 1, 3, 99, -1, "2", 2.0, True, None, 10 ** 400])
        return "version"
    if choice == 1:
        doc["format"] = rng.choice(["dprog", "", None, "DPROG-GRAPH"])
        return "format"
    if choice == 2:
        doc.pop(rng.choice(["nodes", "edges", "format", "version", "name", "training"]), None)
        return "top_key_dropped"
    if choice == 3:
        doc[rng.choice(["extra", "Nodes", "__proto__"])] = random_json(rng)
        return "top_key_extra"
    if choice == 4:
        doc["training"] = random_training(rng)
        return "training"
    doc["version"] = 1   # a version-2 body read as the draft format: the migration must cope
    return "version_1"


def m_function(rng, doc):
    """Functions, calls, weight groups and ties gone wrong: an unknown or empty function name,
    a group name that is no identifier or joins calls of other shapes, a function calling
    itself, a tie to a missing node or tensor, a dropped function, an unknown key."""
    functions = doc.get("functions")
    names = list(functions) if isinstance(functions, dict) else []
    calls = [n for r in regions(doc) for n in _nodes(r) if n.get("type") == "call"]
    choice = rng.randrange(7)
    if choice == 0 and calls:
        n = rng.choice(calls)
        n.setdefault("params", {})["function"] = rng.choice([*names, "nope", "", "9x", 3])
        return "call_function"
    if choice == 1 and calls:
        for n in rng.sample(calls, min(len(calls), 2)):
            n.setdefault("params", {})["weights"] = rng.choice(["own", "g", "g", "not a name", 7])
        return "call_weights"
    if choice == 2 and names:
        name = rng.choice(names)
        body = functions[name].get("graph") if isinstance(functions[name], dict) else None
        if isinstance(body, dict) and isinstance(body.get("nodes"), list):
            body["nodes"].append({"id": "again", "type": "call",
                                  "params": {"function": rng.choice(names)}})
            return "function_recursion"
    if choice == 3:
        _r, n = _pick_node(rng, doc)
        if n is not None:
            _r2, other = _pick_node(rng, doc)
            n["ties"] = {rng.choice(["weight", "bias", "nope"]): [
                other.get("id") if isinstance(other, dict) else "x",
                rng.choice(["weight", "bias", "nope"])]}
            return "tie"
    if choice == 4 and names:
        del functions[rng.choice(names)]
        return "function_drop"
    if choice == 5 and names:
        f = functions[rng.choice(names)]
        if isinstance(f, dict):
            f[rng.choice(["shared_with", "code", "title"])] = rng.choice(["x", 1, None, []])
            return "function_key"
    if choice == 6:
        doc["functions"] = rng.choice([{}, [], "f", {"9": {}}, {"f": {"graph": {"nodes": [],
                                                                                 "edges": []}}}])
        return "functions_replaced"
    return "noop"


MUTATIONS = (m_param, m_param, m_param, m_rewire, m_drop_node, m_dup_node, m_drop_edge,
             m_dup_edge, m_add_edge, m_type, m_id, m_region, m_region, m_json_type, m_number,
             m_text, m_top, m_function)


def _paths(value, depth: int = 0):
    """(container, key) for every value in a document."""
    if depth > 40:
        return
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for k, v in items:
        yield value, k
        yield from _paths(v, depth + 1)


def random_json(rng, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 3 or r < 0.5:
        return rng.choice([None, True, False, 0, -1, 1.5, 10 ** 20, "", "x", "y", "linear",
                           rng.choice(PAYLOADS), 2 ** 64, -(10 ** 400)])
    if r < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["id", "type", "x", "nodes", "edges", "params", "from", "to"]):
            random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def mutate(rng, doc: dict, times: int | None = None) -> list[str]:
    """Apply 1-3 random mutations in place; returns their names."""
    return [rng.choice(MUTATIONS)(rng, doc) for _ in range(times or rng.choice((1, 1, 2, 3)))]


# --- corrupting text -----------------------------------------------------------------


def deep(kind: str, depth: int) -> str:
    return "[" * depth + "]" * depth if kind == "array" else '{"a":' * depth + "1" + "}" * depth


def corrupt_text(rng, text: str) -> tuple[str, str]:
    choice = rng.randrange(12)
    n = len(text)
    if choice == 0:
        return text[: rng.randrange(n)], "truncate"
    if choice == 1:
        i = rng.randrange(n)
        return text[:i] + text[i + rng.randint(1, 20):], "delete"
    if choice == 2:
        i = rng.randrange(n)
        return text[:i] + rng.choice(string.printable) + text[i + 1:], "flip"
    if choice in (3, 4):
        spots = [i for i, c in enumerate(text) if c.isdigit() and not text[i - 1].isdigit()
                 and text[i - 1] not in '."e']
        if not spots:
            return text + "x", "garbage"
        i = rng.choice(spots)
        j = i
        while j < n and (text[j].isdigit() or text[j] in ".eE+-"):
            j += 1
        lit = rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400", "9" * 5000,
                          "1" + "0" * 400, "1.0e-400", "-0", "0.0"])
        return text[:i] + lit + text[j:], "literal_" + lit[:8]
    if choice == 5:
        spots = [i for i, c in enumerate(text) if c == ":"]
        i = rng.choice(spots) if spots else 0
        depth = rng.choice([100, 900, 990, 1000, 5000, 100_000])
        kind = rng.choice(["array", "object"])
        return text[: i + 1] + deep(kind, depth) + "," + text[i + 1:], f"deep_{kind}"
    if choice == 6:
        return "\ufeff" + text, "bom"
    if choice == 7:
        return text + rng.choice(["x", "{}", "\x00", "]", ",", "\n\n"]), "trailing"
    if choice == 8:
        return text.replace('"version": 2', '"version": 2, "version": 1', 1), "duplicate_key"
    if choice == 9:
        return rng.choice(["", " ", "null", "[]", "{}", "1", '"x"', "[" * 100_000,
                           '{"format": "dprog-graph"}', deep("object", 100_000)]), "tiny"
    if choice == 10:
        i = rng.randrange(n)
        j = min(n, i + rng.randint(1, 200))
        return text[:j] + text[i:j] + text[j:], "duplicate_slice"
    return text.replace('"', "'", rng.randint(1, 5)), "quotes"


# --- one case ------------------------------------------------------------------------


@dataclass
class Case:
    text: str
    source: str          # "grow", "sample:<name>", "nested", "text:<sample>"
    mutations: list[str]
    data: bytes | None = None   # raw bytes for the file route (may be invalid UTF-8)


def make_cases(rng, count: int = 5) -> list[Case]:
    """`count` cases that share one grown graph (growing is the costly part): the graph as
    grown, then mutants of it, then cases of the other kinds."""
    base = grow(rng)
    cases = [Case(_dump(base), "grow", [])]
    while len(cases) < count:
        if rng.random() < 0.5:
            doc = copy.deepcopy(base)
            cases.append(Case(_dump(doc), "grow", mutate(rng, doc)))
        else:
            cases.append(make_case(rng, grown=False))
    return cases


def make_case(rng, *, grown: bool = True) -> Case:
    """One fuzz case: a grown graph or a sample, maybe mutated, maybe corrupted as text."""
    r = rng.random() if grown else rng.uniform(0.45, 1.0)
    if r < 0.45:
        doc = grow(rng)
        muts = mutate(rng, doc) if rng.random() < 0.5 else []
        return Case(_dump(doc), "grow", muts)
    if r < 0.47:
        doc = nested_loops(rng, rng.choice([2, 5, 15, 16, 17]), rng.choice([1, 2, 3, 10, 10_000]))
        return Case(_dump(doc), "nested", [])
    name = rng.choice(sample_names())
    if r < 0.85:
        doc = sample_document(name)
        muts = mutate(rng, doc)
        return Case(_dump(doc), f"sample:{name}", muts)
    text, what = corrupt_text(rng, _sample_texts()[name])
    data = None
    if rng.random() < 0.1:
        data = text.encode("utf-8", "surrogatepass")
        i = rng.randrange(len(data) + 1)
        data = data[:i] + rng.choice([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"]) + data[i:]
        what += "+bad_utf8"
    return Case(text, f"text:{name}", [what], data)


def _dump(doc: dict) -> str:
    """JSON text for a document that may hold huge ints or non-finite floats."""
    try:
        return json.dumps(doc, ensure_ascii=False)
    except ValueError:   # an int past the conversion limit: write it digit by digit
        import sys

        old = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)
        try:
            return json.dumps(doc, ensure_ascii=False)
        finally:
            sys.set_int_max_str_digits(old)
