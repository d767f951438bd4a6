"""The block library: every block dprog offers, one `BlockSpec` each, grouped by category.

`REGISTRY` is built explicitly from the lists below; importing this module registers
nothing anywhere else. To add a block, write one spec in the right list (see README,
"Adding a block"). Each port's doc states its shape rule (`dprog blocks` and the palette
show it); where a block mirrors a torch class or function, its defaults are torch's.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import control, expression
from .control import (
    BRANCH_MODES,
    INPUT_ROLES,
    LOOP_MODES,
    OUTPUT_ROLES,
    branch_ports,
    branch_skips_weights,
    loop_ports,
    loop_skips_weights,
)
from .spec import (
    BlockSpec,
    Bool,
    Choice,
    Float,
    Floats,
    Held,
    IdInput,
    Int,
    InTypes,
    ParamValues,
    Port,
    ShapeParam,
    String,
)
from .types import (
    BATCH,
    DTYPES,
    Shape,
    ShapeError,
    TensorType,
    broadcast,
    fmt_shape,
    norm_dim,
    numel,
)

X = (Port("x", "any shape"),)
AB = (Port("a", "any shape"), Port("b", "broadcasts with a"))
Y = (Port("y", "x's shape"),)
ANY_DTYPE = {"*": DTYPES}


# --- shape rule helpers -------------------------------------------------------------


def non_default(required: dict, optional: dict, defaults: dict) -> dict:
    """Constructor kwargs as a person would write them: optional ones only when not the default."""
    return {**required, **{k: v for k, v in optional.items() if v != defaults[k]}}


def same(p: ParamValues, s: InTypes) -> list[TensorType]:
    return [s[0]]


def need_rank(t: TensorType, ranks: Sequence[int], what: str, port: str = "x") -> None:
    if t.rank not in ranks:
        want = " or ".join(f"rank {r}" for r in ranks)
        raise ShapeError(f"expects {what} ({want}) but gets {fmt_shape(t.shape)}", port=port)


def conv_out(size: int, k: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def spatial(t: TensorType, p: ParamValues, dims: int, transpose: bool = False) -> Shape:
    """Output spatial dims of a conv/pool over the last `dims` dims of `t`."""
    k, s, pad = p["kernel_size"], p.get("stride") or p["kernel_size"], p.get("padding", 0)
    d = p.get("dilation", 1)
    out = []
    for size in t.shape[-dims:]:
        if transpose:
            n = (size - 1) * s - 2 * pad + d * (k - 1) + p.get("output_padding", 0) + 1
        else:
            n = conv_out(size, k, s, pad, d)
        if n < 1:
            raise ShapeError(f"kernel {k} with padding {pad} does not fit input {fmt_shape(t.shape)}",
                             param="kernel_size")
        out.append(n)
    return tuple(out)


def conv_rule(dims: int, transpose: bool = False):
    def rule(p: ParamValues, s: InTypes) -> list[TensorType]:
        (x,) = s
        need_rank(x, [dims + 2], f"(B, C{', L' if dims == 1 else ', H, W'})")
        c = x.shape[1]
        if c % p["groups"] or p["out_channels"] % p["groups"]:
            raise ShapeError(f"channels {c} → {p['out_channels']} are not divisible by groups={p['groups']}",
                             param="groups")
        # torch refuses this only when the model runs (and the shape rule alone accepted it).
        if transpose and p["output_padding"] >= max(p["stride"], p["dilation"]):
            raise ShapeError(f"output_padding {p['output_padding']} must be smaller than stride or "
                             "dilation", param="output_padding", code="param_out_of_range")
        # The first dim passes through: an unbatched (1, C, H, W) stays unbatched (torch
        # treats its 1 as the batch), where writing B here made later sizes disagree.
        return [x.with_shape((x.shape[0], p["out_channels"], *spatial(x, p, dims, transpose)))]
    return rule


def conv_count(p: ParamValues, s: InTypes, dims: int) -> int:
    c = s[0].shape[1]
    weights = c * p["out_channels"] // p["groups"] * p["kernel_size"] ** dims
    return weights + (p["out_channels"] if p["bias"] else 0)


def pool_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    need_rank(x, [4], "(B, C, H, W)")
    if p["padding"] * 2 > p["kernel_size"]:
        raise ShapeError("padding must be at most half the kernel size", param="padding",
                         code="param_out_of_range")
    return [x.with_shape((*x.shape[:2], *spatial(x, p, 2)))]


def adaptive_pool_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    need_rank(x, [4], "(B, C, H, W)")
    return [x.with_shape((*x.shape[:2], *p["output_size"]))]


def same_along_dim(p: ParamValues, s: InTypes) -> list[TensorType]:
    """The input's type, once `dim` is known to be one of its dims (softmax and kin)."""
    norm_dim(p["dim"], s[0].rank)
    return [s[0]]


def layer_norm_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    """The input's type, once the last `dims` dims are known to leave the batch dim out."""
    norm_dim(-p["dims"], s[0].rank - 1, param="dims")
    return [s[0]]


def reduce_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    d = norm_dim(p["dim"], x.rank)
    shape = list(x.shape)
    if p["keepdim"]:
        shape[d] = 1
    else:
        del shape[d]
    return [x.with_shape(shape)]


def elementwise(p: ParamValues, s: InTypes) -> list[TensorType]:
    return [TensorType(broadcast(*(t.shape for t in s)))]


def matmul_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    a, b = s
    if a.rank < 1 or b.rank < 1:
        raise ShapeError("MatMul needs tensors of rank ≥ 1")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.rank >= 2 else b.shape[0]
    if ka != kb:
        raise ShapeError(f"inner dims differ: {fmt_shape(a.shape)} @ {fmt_shape(b.shape)}", port="b")
    if b.rank == 1:
        return [TensorType(a.shape[:-1])]
    if a.rank == 1:
        return [TensorType((*b.shape[:-2], b.shape[-1]))]
    batch = broadcast(a.shape[:-2], b.shape[:-2])
    return [TensorType((*batch, a.shape[-2], b.shape[-1]))]


def linear_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    if x.rank < 2:
        raise ShapeError(f"expects (B, …, features) but gets {fmt_shape(x.shape)}")
    return [x.with_shape((*x.shape[:-1], p["out_features"]))]


def cell_rule(gates: int, with_c: bool):
    def rule(p: ParamValues, s: InTypes) -> list[TensorType]:
        x, *state = s
        need_rank(x, [2], "(B, features)")
        # As for convs, the first dim is x's own: (1, F) with a (B, H) state validated, then
        # failed with "Input batch size 1 doesn't match hidden0 batch size 2".
        hid = (x.shape[0], p["hidden_size"])
        for t, port in zip(state, ("h", "c"), strict=False):
            if t.shape != hid:
                raise ShapeError(f"expects state {fmt_shape(hid)} but gets {fmt_shape(t.shape)}",
                                 port=port)
        return [TensorType(hid)] * (2 if with_c else 1)
    return rule


def cell_count(gates: int):
    def count(p: ParamValues, s: InTypes) -> int:
        f, h = s[0].shape[-1], p["hidden_size"]
        return gates * h * (f + h) + (2 * gates * h if p["bias"] else 0)
    return count


def attention_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    q, k, v, *mask = s
    for t, port in zip(s[:3], "qkv", strict=True):
        need_rank(t, [3], "(B, T, E)", port)
    e = q.shape[-1]
    if e % p["num_heads"]:
        raise ShapeError(f"embedding size {e} is not divisible by num_heads={p['num_heads']}",
                         param="num_heads")
    if k.shape[1] != v.shape[1]:
        raise ShapeError(f"keys {fmt_shape(k.shape)} and values {fmt_shape(v.shape)} differ in length",
                         port="v")
    # One batch for all three: an unbatched (6, T, E) Parameter as keys for (B, T, E) queries
    # validated, then failed inside torch reshaping the keys per head.
    for t, port in ((k, "k"), (v, "v")):
        if t.shape[0] != q.shape[0]:
            raise ShapeError(f"{port} {fmt_shape(t.shape)} and queries {fmt_shape(q.shape)} differ in "
                             "batch size", port=port)
    check_attention_mask(p, q.shape[:1], q.shape[1], k.shape[1], mask, batched_3d=True)
    return [q]


def check_attention_mask(p: ParamValues, lead: Shape, t: int, s: int, mask: list[TensorType],
                         *, batched_3d: bool = False) -> None:
    """A mask fits queries of length t attending to s keys: (t, s), or (B, t, s) per sample
    when `batched_3d`, or anything that broadcasts to (*lead, t, s) otherwise; and it does
    not come with `causal`, which would silently take its place (torch reads the mask as the
    causal one then)."""
    if not mask:
        return
    (m,) = mask
    if p["causal"]:
        raise ShapeError("causal and a mask input cannot both be given; fold the causal mask "
                         "into yours (Positions and an Expression a < b make one)", port="mask",
                         code="bad_param")
    want = (*lead, t, s)
    if batched_3d:
        fits = m.shape in ((t, s), (lead[0], t, s))
    else:   # torch reads the last two dims as (T, S), so a mask has both
        try:
            fits = m.rank >= 2 and broadcast(m.shape, want) == want
        except ShapeError:
            fits = False
    if not fits:
        shapes = f"({t}, {s}) or {fmt_shape(want)}" if batched_3d else \
            f"of at least 2 dims that broadcasts to {fmt_shape(want)}"
        raise ShapeError(f"expects a mask {shapes} but gets {fmt_shape(m.shape)}", port="mask")


def attention_template(p: ParamValues, s: InTypes) -> str:
    """torch's MultiheadAttention takes a per-sample mask as (B·heads, T, S)."""
    extra = ""
    if len(s) == 4:
        mask = "{mask}" if s[3].rank == 2 else f"{{mask}}.repeat_interleave({p['num_heads']}, dim=0)"
        extra = f", attn_mask={mask}"
    elif p["causal"]:
        # is_causal lets torch take its fast causal kernel; the mask is what it stands for.
        extra = ", attn_mask={held}, is_causal=True"
    return "{self}({q}, {k}, {v}" + extra + ", need_weights=False)[0]"


def causal_mask(p: ParamValues, s: InTypes) -> str | None:
    """(T, S) with True above the diagonal: the keys after each query are masked out."""
    return "torch.ones({q_len}, {k_len}, dtype=torch.bool).triu(1)" if p["causal"] and len(s) == 3 \
        else None


def attention_kwargs(p: ParamValues, s: InTypes) -> dict:
    q, k, v = s[:3]
    kw = non_default(dict(embed_dim=q.shape[-1], num_heads=p["num_heads"]),
                     dict(dropout=p["dropout"], bias=p["bias"]), dict(dropout=0.0, bias=True))
    kw["batch_first"] = True
    if k.shape[-1] != q.shape[-1]:
        kw["kdim"] = k.shape[-1]
    if v.shape[-1] != q.shape[-1]:
        kw["vdim"] = v.shape[-1]
    return kw


def attention_count(p: ParamValues, s: InTypes) -> int:
    e, kd, vd = (t.shape[-1] for t in s[:3])
    bias = 4 * e if p["bias"] else 0
    return e * (e + kd + vd) + e * e + bias


def attention_macs(p: ParamValues, s: InTypes) -> int:
    """Projections, plus scores and their weighted sum: T_q·T_k·E twice (quadratic in T)."""
    (_, tq, e), (_, tk, kd), (_, _, vd) = (t.shape for t in s[:3])
    return tq * e * 2 * e + tk * e * (kd + vd) + 2 * tq * tk * e


def sdpa_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    q, k, v, *mask = s
    for t, port in zip(s[:3], "qkv", strict=True):
        if t.rank < 3:
            raise ShapeError(f"expects (B, …, T, E) but gets {fmt_shape(t.shape)}", port=port)
    for t, port in ((k, "k"), (v, "v")):
        if t.shape[:-2] != q.shape[:-2]:
            raise ShapeError(f"{port} {fmt_shape(t.shape)} and queries {fmt_shape(q.shape)} differ "
                             "before their last two dims", port=port)
    if k.shape[-1] != q.shape[-1]:
        raise ShapeError(f"keys {fmt_shape(k.shape)} and queries {fmt_shape(q.shape)} differ in "
                         "size E", port="k")
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"keys {fmt_shape(k.shape)} and values {fmt_shape(v.shape)} differ in "
                         "length", port="v")
    check_attention_mask(p, q.shape[:-2], q.shape[-2], k.shape[-2], mask)
    return [q.with_shape((*q.shape[:-1], v.shape[-1]))]


def sdpa_template(p: ParamValues, s: InTypes) -> str:
    args = ["{q}", "{k}", "{v}"]
    if len(s) == 4:
        args.append("attn_mask={mask}")
    if p["dropout"]:   # the function drops whenever asked, so it is asked only while training
        args.append("dropout_p={dropout} if self.training else 0.0")
    if p["causal"]:
        args.append("is_causal=True")
    if p["scale"]:
        args.append("scale={scale}")
    return "torch.nn.functional.scaled_dot_product_attention(" + ", ".join(args) + ")"


def sdpa_macs(p: ParamValues, s: InTypes) -> int:
    """Scores and their weighted sum: T·S·(E + Ev) per leading index."""
    q, k, v = s[:3]
    return numel(q.shape[:-2]) * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def positions_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    d = norm_dim(p["dim"], x.rank)
    if x.shape[d] == BATCH:
        raise ShapeError("counts along the batch dim, whose size is only known when the model "
                         "runs", param="dim", code="param_out_of_range")
    trailing = (1,) * (x.rank - d - 1) if p["aligned"] else ()
    n = x.shape[d]
    return [TensorType((n, *trailing), p["dtype"], high=n if p["dtype"] == "long" else None)]


def positions_template(p: ParamValues, s: InTypes) -> str:
    (x,) = s
    d = norm_dim(p["dim"], x.rank)
    dtype = ", dtype=torch.float" if p["dtype"] == "float" else ""
    text = f"torch.arange({x.shape[d]}, device={{x}}.device{dtype})"
    trailing = x.rank - d - 1
    if p["aligned"] and trailing:
        text += f".reshape({x.shape[d]}, {', '.join(['1'] * trailing)})"
    return text


def rnn_layer_rule(with_c: bool):
    """A torch RNN layer over (B, T, F), batch first: the sequence (B, T, D·H) and the final
    state as (B, layers·D, H), torch's h_n with the batch moved to the front."""
    def rule(p: ParamValues, s: InTypes) -> list[TensorType]:
        x, *states = s
        need_rank(x, [3], "(B, T, features)")
        if p["dropout"] and p["num_layers"] == 1:
            raise ShapeError("dropout acts between layers, so it needs num_layers ≥ 2",
                             param="dropout", code="param_out_of_range")
        d = 2 if p["bidirectional"] else 1
        state = (x.shape[0], p["num_layers"] * d, p["hidden_size"])
        if with_c and len(states) == 1:
            raise ShapeError("takes both h0 and c0, or neither", code="missing_input")
        for t, port in zip(states, ("h0", "c0"), strict=False):
            if t.shape != state:
                raise ShapeError(f"expects a state {fmt_shape(state)} but gets {fmt_shape(t.shape)}",
                                 port=port)
        outs = [TensorType((*x.shape[:2], d * p["hidden_size"])), TensorType(state)]
        return outs + ([TensorType(state)] if with_c else [])
    return rule


def rnn_layer_template(with_c: bool):
    def template(p: ParamValues, s: InTypes) -> str:
        if len(s) == 1:
            return "{self}({x})"
        # torch wants the states as (layers·D, B, H), contiguous for its fused kernels.
        h0 = "{h0}.transpose(0, 1).contiguous()"
        return "{self}({x}, " + (f"({h0}, {{c0}}.transpose(0, 1).contiguous()))" if with_c
                                 else f"{h0})")
    return template


def rnn_layer_count(gates: int):
    def count(p: ParamValues, s: InTypes) -> int:
        d, h = (2 if p["bidirectional"] else 1), p["hidden_size"]
        total = 0
        for layer in range(p["num_layers"]):
            features = s[0].shape[-1] if layer == 0 else d * h
            total += d * (gates * h * (features + h) + (2 * gates * h if p["bias"] else 0))
        return total
    return count


def rnn_layer_kwargs(p: ParamValues, s: InTypes) -> dict:
    kw = non_default(dict(input_size=s[0].shape[-1], hidden_size=p["hidden_size"]),
                     dict(num_layers=p["num_layers"], bias=p["bias"]), dict(num_layers=1, bias=True))
    kw["batch_first"] = True   # the graph's convention
    return {**kw, **non_default({}, dict(dropout=p["dropout"], bidirectional=p["bidirectional"]),
                                dict(dropout=0.0, bidirectional=False))}


def flatten_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    start = norm_dim(p["start_dim"], x.rank, param="start_dim")
    end = norm_dim(p["end_dim"], x.rank, param="end_dim")
    if start == 0:
        raise ShapeError("start_dim would flatten the batch dim", param="start_dim",
                         code="param_out_of_range")
    if end < start:
        raise ShapeError("end_dim comes before start_dim", param="end_dim", code="param_out_of_range")
    return [x.with_shape((*x.shape[:start], numel(x.shape[start:end + 1]), *x.shape[end + 1:]))]


def reshape_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    if not x.batched:
        raise ShapeError(f"expects a batched input but gets {fmt_shape(x.shape)}")
    have, dims = numel(x.shape[1:]), list(p["shape"])
    known = numel([d for d in dims if d != -1])
    if -1 in dims:
        if have % known:
            raise ShapeError(f"cannot reshape {fmt_shape(x.shape)} into (B, {', '.join(map(str, dims))})",
                             param="shape")
        dims[dims.index(-1)] = have // known
    elif known != have:
        raise ShapeError(f"cannot reshape {fmt_shape(x.shape)} ({have} values per item) into "
                         f"(B, {', '.join(map(str, dims))}) ({known})", param="shape")
    return [x.with_shape((BATCH, *dims))]


def reshape_template(p: ParamValues, s: InTypes) -> str:
    dims = ", ".join(str(d) for d in p["shape"])
    # -1 is taken by the user's own "infer this dim"; the batch size is then spelled out.
    return f"{{x}}.reshape({{x}}.shape[0], {dims})" if -1 in p["shape"] else f"{{x}}.reshape(-1, {dims})"


def permute_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    dims = list(p["dims"])
    if sorted(dims) != list(range(1, x.rank)):
        raise ShapeError(f"dims {dims} must order the non-batch dims 1..{x.rank - 1} of "
                         f"{fmt_shape(x.shape)}", param="dims")
    return [x.with_shape((x.shape[0], *(x.shape[d] for d in dims)))]


def index_prefix(dim: int) -> str:
    return "{x}[" + ":, " * dim


def select_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    d = norm_dim(p["dim"], x.rank)
    if x.shape[d] == BATCH:
        raise ShapeError("cannot select along the batch dim", param="dim", code="param_out_of_range")
    if not -x.shape[d] <= p["index"] < x.shape[d]:
        raise ShapeError(f"index {p['index']} is outside dim {d} of size {x.shape[d]}", param="index",
                         code="param_out_of_range")
    return [x.with_shape(x.shape[:d] + x.shape[d + 1:])]


def slice_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    d = norm_dim(p["dim"], x.rank)
    if x.shape[d] == BATCH:
        raise ShapeError("cannot slice along the batch dim", param="dim", code="param_out_of_range")
    n = len(range(*slice(p["start"], p["stop"], p["step"]).indices(x.shape[d])))
    if n == 0:
        raise ShapeError(f"slice {p['start']}:{p['stop']} of dim {d} (size {x.shape[d]}) is empty",
                         param="start", code="param_out_of_range")
    return [x.with_shape((*x.shape[:d], n, *x.shape[d + 1:]))]


def concat_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    first = s[0]
    d = norm_dim(p["dim"], first.rank)
    total = 0
    for i, t in enumerate(s):
        if t.rank != first.rank or any(a != b for j, (a, b) in enumerate(zip(t.shape, first.shape,
                                                                              strict=True)) if j != d):
            raise ShapeError(f"cannot concatenate {fmt_shape(t.shape)} with {fmt_shape(first.shape)} "
                             f"along dim {d}", port=f"x{i}")
        if t.shape[d] == BATCH:
            raise ShapeError("cannot concatenate along the batch dim", param="dim",
                             code="param_out_of_range")
        # torch.cat promotes mixed dtypes (long + float -> float), so the result would not be
        # the first input's dtype that this rule reports.
        if t.dtype != first.dtype:
            raise ShapeError(f"cannot concatenate {t.dtype} values with {first.dtype} values",
                             port=f"x{i}", code="type_mismatch")
        total += t.shape[d]
    return [first.with_shape((*first.shape[:d], total, *first.shape[d + 1:]))]


def split_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    (x,) = s
    d = norm_dim(p["dim"], x.rank)
    if sum(p["sections"]) != x.shape[d]:
        raise ShapeError(f"sections {list(p['sections'])} add up to {sum(p['sections'])}, "
                         f"not dim {d} of size {x.shape[d]}", param="sections")
    return [x.with_shape((*x.shape[:d], n, *x.shape[d + 1:])) for n in p["sections"]]


def numbered_ports(prefix: str, count: int, doc: str = "") -> tuple[Port, ...]:
    return tuple(Port(f"{prefix}{i}", doc) for i in range(count))


def loss_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    """A loss between a prediction and a float target of exactly its shape."""
    pred, target = s
    # Exactly the prediction's shape: torch warns on a broadcast target (mse, l1) or
    # refuses it (bce_with_logits), so a broadcasting target validated but failed to run.
    if target.shape != pred.shape:
        raise ShapeError(f"target {fmt_shape(target.shape)} does not match prediction "
                         f"{fmt_shape(pred.shape)}", port="target")
    # reduction="none" keeps one loss per element: the prediction's whole shape.
    return [TensorType(() if p["reduction"] != "none" else pred.shape)]


def class_layout(p: ParamValues, pred: TensorType, target: TensorType) -> str:
    """Where cross-entropy finds the class scores: "dim1" (torch's (B, C, d…) with ids
    (B, d…)) or "last" (a sequence model's (B, T, C) with ids (B, T)), as the `classes` param
    says or, on "auto", as the target's shape fits; refused when both fit and auto was asked."""
    if pred.rank < 2:
        raise ShapeError(f"expects logits (B, C) or (B, C, d…) or (B, …, C) but gets "
                         f"{fmt_shape(pred.shape)}", port="input")
    fits = {"dim1": target.shape == (*pred.shape[:1], *pred.shape[2:]),
            "last": target.shape == pred.shape[:-1]}
    if pred.rank == 2:   # (B, C) with ids (B,): both layouts are the same
        fits["last"] = False
    want = p["classes"]
    if want != "auto":
        if fits[want]:
            return want
        ids = pred.shape[:1] + pred.shape[2:] if want == "dim1" else pred.shape[:-1]
        raise ShapeError(f"expects class ids {fmt_shape(ids)} for logits {fmt_shape(pred.shape)} "
                         f"with classes at {'dim 1' if want == 'dim1' else 'the last dim'}, but "
                         f"gets {fmt_shape(target.shape)}", port="target")
    if fits["dim1"] and fits["last"]:
        raise ShapeError(f"logits {fmt_shape(pred.shape)} with ids {fmt_shape(target.shape)} read "
                         "both as (B, C, T) and as (B, T, C): set classes to dim1 or last",
                         param="classes", code="bad_param")
    if not (fits["dim1"] or fits["last"]):
        raise ShapeError(f"expects class ids {fmt_shape(pred.shape[:1] + pred.shape[2:])} (classes "
                         f"at dim 1, as torch) or {fmt_shape(pred.shape[:-1])} (classes last) for "
                         f"logits {fmt_shape(pred.shape)}, but gets {fmt_shape(target.shape)}",
                         port="target")
    return "dim1" if fits["dim1"] else "last"


def cross_entropy_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    pred, target = s
    class_layout(p, pred, target)
    # reduction="none" keeps one loss per class id: the target's shape.
    return [TensorType(() if p["reduction"] != "none" else target.shape)]


def cross_entropy_template(p: ParamValues, s: InTypes) -> str:
    pred = "{input}" if class_layout(p, *s) == "dim1" else "{input}.movedim(-1, 1)"
    reduction = "" if p["reduction"] == "mean" else ", reduction={reduction}"
    return f"F.cross_entropy({pred}, {{target}}{reduction})"


def expression_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    names = expression.input_names(p["inputs"])
    try:
        tree = expression.parse(p["expr"], names)
        used = expression.used_names(tree)
        if not used:
            raise expression.ExpressionError("uses none of its inputs")
        dtype = expression.result_dtype(tree, {n: t.dtype for n, t in zip(names, s, strict=True)})
    except expression.ExpressionError as e:
        raise ShapeError(f"expression {e}", param="expr", code="bad_expression") from None
    return [TensorType(broadcast(*(s[names.index(n)].shape for n in used)), dtype)]


def expression_template(p: ParamValues, s: InTypes) -> str:
    """The checked formula as a template, each input name its `{name}` placeholder. The tree
    holds only numbers, names, operators and torch calls, so its text has no other braces."""
    names = expression.input_names(p["inputs"])
    return expression.render(p["expr"], names, {n: "{" + n + "}" for n in names})


def expression_ports(node) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    names = expression.input_names(_param(node, "inputs", 2))
    return (tuple(Port(c, "any shape; the inputs broadcast together") for c in names),
            (Port("y", "the inputs' broadcast shape; bool for a comparison"),))


def reparameterize_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    mu, logvar = s
    if logvar.shape != mu.shape:
        raise ShapeError(f"logvar {fmt_shape(logvar.shape)} does not match mu {fmt_shape(mu.shape)}",
                         port="logvar")
    return [mu]


def noise_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    """Shaped like x when x is wired, else the `shape` param (no batch dim: it broadcasts)."""
    return [s[0]] if s else [TensorType(tuple(p["shape"]))]


def noise_template(sample: str, mean: str):
    """The forward expression of a noise block: `sample` (drawn like `{like}`), and in eval mode
    `mean` instead when the `eval` param says so. Parts that change nothing (`* 1.0`) are left
    out, so the code reads as a person writes it."""
    def template(p: ParamValues, s: InTypes) -> str:
        like = "{x}" if s else "{held}"
        drawn = sample(p).replace("LIKE", like)
        if p["eval"] == "sample":
            return drawn
        return f"{drawn} if self.training else {mean(p).replace('LIKE', like)}"
    return template


def _affine(text: str, scale: float, shift: float) -> str:
    """`text * scale + shift`, without the parts that change nothing (the numbers are
    validated floats, written as their repr)."""
    if scale != 1.0:
        text += f" * {float(scale)!r}"
    if shift != 0.0:
        text += f" {'+' if shift > 0 else '-'} {abs(float(shift))!r}"
    return text


def _full_like(value: float) -> str:
    return "torch.zeros_like(LIKE)" if value == 0.0 else f"torch.full_like(LIKE, {float(value)!r})"


def noise_like(p: ParamValues, s: InTypes) -> str | None:
    """Without an input, noise is drawn like a zero tensor of the `shape` param that the
    module holds, so that it is made on the module's device."""
    return None if s else "torch.zeros({shape})"


def noise_spec(type_: str, title: str, doc: str, params: tuple, sample, mean, args) -> BlockSpec:
    """A Random block: noise like x, or of the shape param when x is not wired."""
    return BlockSpec(
        type=type_, title=title, category="Random", doc=doc,
        inputs=(Port("x", "optional: noise shaped like x (any float tensor); unwired, the "
                          "shape param gives the shape", optional=True),),
        outputs=(Port("y", "x's shape, or the shape param's"),),
        params=(*params,
                ShapeParam("shape", (1,), "the noise's shape when x is not wired (no batch dim)"),
                Choice("eval", "sample", ("sample", "mean"),
                       "in eval mode: keep drawing (sample), or give the distribution's mean")),
        shape=noise_rule, template=noise_template(sample, mean), held=Held("like", noise_like),
        args=lambda p, s: {"shape": tuple(p["shape"]), **args(p)},
    )


def _param(node, name: str, default):
    value = node.params.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 64 else default


def structural(p: ParamValues, s: InTypes) -> list[TensorType]:
    raise AssertionError("the engine infers this block's shapes itself")


# The Parameter block's initial values: a template per `init` choice.
PARAMETER_INITS = {
    "zeros": "torch.zeros({shape})", "ones": "torch.ones({shape})",
    "normal": "torch.randn({shape}) * {scale}", "uniform": "(torch.rand({shape}) * 2 - 1) * {scale}",
    "constant": "torch.full({shape}, {value})",
    "values": "torch.tensor({values}).reshape({shape})",
}


def parameter_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    if p["init"] == "values" and len(p["values"]) != numel(p["shape"]):
        raise ShapeError(f"has {len(p['values'])} initial values but shape "
                         f"{fmt_shape(tuple(p['shape']))} holds {numel(p['shape'])}",
                         param="values")
    return [TensorType(tuple(p["shape"]))]


# --- the blocks --------------------------------------------------------------------

IO = [
    BlockSpec(
        type="input", title="Input", category="Data", kind="input",
        doc="A model input: one argument of forward(), a batch of tensors of this per-sample shape.",
        outputs=(Port("y", "(B, *shape)"),), shape=structural,
        params=(ShapeParam("shape", (2,), "per-sample shape, without the batch dim"),
                Choice("dtype", "float", ("float", "long"), "long for token ids fed to Embedding")),
    ),
    BlockSpec(
        type="output", title="Output", category="Data", kind="output",
        doc="A model output: what forward() returns (several Outputs return a tuple). With the "
            "training loss \"graph\", the first Output is the scalar loss.",
        inputs=X, outputs=(), shape=structural, input_dtypes=ANY_DTYPE,
    ),
    BlockSpec(
        type="constant", title="Constant", category="Data",
        doc="A fixed tensor filled with one value; it broadcasts against batched tensors.",
        outputs=(Port("y", "the shape param (no batch dim)"),),
        shape=lambda p, s: [TensorType(tuple(p["shape"]))],
        params=(Float("value", 0.0, "the fill value", min=-1e12, max=1e12),
                ShapeParam("shape", (1,), "its shape (no batch dim)")),
        emit="buffer", template="torch.full({shape}, {value})",
        args=lambda p, s: dict(shape=tuple(p["shape"]), value=p["value"]),
    ),
    BlockSpec(
        type="parameter", title="Parameter", category="Data",
        doc="A learnable tensor, trained like any weight; it broadcasts against batched tensors. "
            "It starts at random values, at one value (init constant) or at the numbers you give "
            "(init values).",
        outputs=(Port("y", "the shape param (no batch dim; [] is a scalar)"),),
        shape=parameter_rule,
        count=lambda p, s: numel(p["shape"]),
        params=(ShapeParam("shape", (1,), "its shape (no batch dim; empty for a scalar)"),
                Choice("init", "normal", tuple(PARAMETER_INITS),
                       "initial values: zeros, ones, normal or uniform noise of the scale, the "
                       "constant value, or the values list"),
                Float("scale", 0.1, "std (normal) or half-width (uniform) of the initial values",
                      min=0.0, max=1e6),
                Float("value", 0.0, "init constant: the starting value", min=-1e12, max=1e12),
                Floats("values", (), "init values: the starting values in row-major order, as "
                       "many as the shape holds", min=-1e12, max=1e12)),
        emit="parameter", template=lambda p, s: PARAMETER_INITS[p["init"]],
        args=lambda p, s: dict(shape=tuple(p["shape"]), scale=p["scale"], value=p["value"],
                               values=list(p["values"])),
    ),
]

LAYERS = [
    BlockSpec(
        type="linear", title="Linear", category="Layers",
        doc="Affine map over the last dimension: y = x Wᵀ + b.",
        inputs=(Port("x", "(B, …, in_features)"),), outputs=(Port("y", "(B, …, out_features)"),),
        params=(Int("out_features", 16, "output features", min=1, max=1 << 20),
                          Bool("bias", True, "learn an additive bias")),
        module="torch.nn.Linear", shape=linear_rule,
        init=lambda p, s: non_default(dict(in_features=s[0].shape[-1], out_features=p["out_features"]),
                                      dict(bias=p["bias"]), dict(bias=True)),
        count=lambda p, s: s[0].shape[-1] * p["out_features"] + (p["out_features"] if p["bias"] else 0),
        tensors=lambda p, s: {"weight": (p["out_features"], s[0].shape[-1]),
                              **({"bias": (p["out_features"],)} if p["bias"] else {})},
        macs=lambda p, s: numel(s[0].shape) * p["out_features"],
        legacy_types=("dense",),  # the draft format's name for it
    ),
    *(
        BlockSpec(
            type=type_, title=title, category="Layers", doc=doc,
            inputs=(Port("x", shapes[0]),), outputs=(Port("y", shapes[1]),),
            params=(Int("out_channels", 16, "output channels", min=1, max=1 << 16),
                    Int("kernel_size", 3, "kernel width (square for 2-D)", min=1, max=64),
                    Int("stride", 1, "step between kernel positions", min=1, max=64),
                    # torch's default since file version 3; conv1d/conv2d said 1 before
                    Int("padding", 0, "zeros added on each side", min=0, max=64,
                        former_default=None if transpose else (3, 1)),
                    *((Int("output_padding", 0, "extra size added to one side of the output",
                           min=0, max=63),) if transpose else ()),
                    Int("dilation", 1, "spacing between kernel taps", min=1, max=64),
                    Int("groups", 1, "blocked connections from inputs to outputs", min=1, max=1 << 16),
                    Bool("bias", True, "learn an additive bias")),
            module=module, shape=conv_rule(dims, transpose),
            init=lambda p, s, t=transpose: non_default(
                dict(in_channels=s[0].shape[1], out_channels=p["out_channels"],
                     kernel_size=p["kernel_size"]),
                dict(stride=p["stride"], padding=p["padding"],
                     output_padding=p["output_padding"] if t else 0,
                     dilation=p["dilation"], groups=p["groups"], bias=p["bias"]),
                dict(stride=1, padding=0, output_padding=0, dilation=1, groups=1, bias=True)),
            count=lambda p, s, d=dims: conv_count(p, s, d),
            macs=lambda p, s, d=dims, t=transpose: conv_count(p, s, d) * numel(
                s[0].shape[-d:] if t else spatial(s[0], p, d)),
        )
        for type_, title, module, dims, transpose, shapes, doc in [
            ("conv1d", "Conv1d", "torch.nn.Conv1d", 1, False, ("(B, C, L)", "(B, out_channels, L')"),
             "1-D convolution over (B, C, L): a sliding filter along the sequence."),
            ("conv2d", "Conv2d", "torch.nn.Conv2d", 2, False,
             ("(B, C, H, W)", "(B, out_channels, H', W')"),
             "2-D convolution over (B, C, H, W) images."),
            ("conv_transpose2d", "ConvTranspose2d", "torch.nn.ConvTranspose2d", 2, True,
             ("(B, C, H, W)", "(B, out_channels, H', W'), larger"),
             "Transposed 2-D convolution: upsamples (B, C, H, W)."),
        ]
    ),
    BlockSpec(
        type="embedding", title="Embedding", category="Layers",
        doc="Looks up a learned vector for each integer token id.",
        inputs=(Port("x", "token ids (…), long, in 0..num_embeddings-1"),),
        outputs=(Port("y", "(…, embedding_dim)"),),
        input_dtypes={"x": ("long",)}, module="torch.nn.Embedding",
        params=(Int("num_embeddings", 100, "vocabulary size: ids run 0..n-1", min=1, max=1 << 22),
                Int("embedding_dim", 16, "size of each vector", min=1, max=1 << 16)),
        shape=lambda p, s: [TensorType((*s[0].shape, p["embedding_dim"]))],
        init=lambda p, s: dict(num_embeddings=p["num_embeddings"], embedding_dim=p["embedding_dim"]),
        count=lambda p, s: p["num_embeddings"] * p["embedding_dim"],
        tensors=lambda p, s: {"weight": (p["num_embeddings"], p["embedding_dim"])},
        id_inputs=(IdInput("x", count_param="num_embeddings"),),
    ),
    BlockSpec(
        type="multihead_attention", title="MultiheadAttention", category="Layers",
        doc="Scaled dot-product attention with several heads over (B, T, E) sequences. causal "
            "masks out the keys after each query (a language model's self-attention).",
        inputs=(Port("q", "queries (B, T, E)"), Port("k", "keys (B, S, Ek)"),
                Port("v", "values (B, S, Ev)"),
                Port("mask", "optional: (T, S) or per sample (B, T, S); bool True masks a key "
                     "out (torch's MultiheadAttention convention), float is added to the scores",
                     optional=True)),
        outputs=(Port("y", "(B, T, E)"),),
        input_dtypes={"mask": ("bool", "float")},
        params=(Int("num_heads", 2, "attention heads; must divide E", min=1, max=256),
                Float("dropout", 0.0, "dropout on attention weights", min=0.0, max=0.99),
                Bool("bias", True, "learn projection biases"),
                Bool("causal", False, "each query attends only to keys at or before its own "
                     "position")),
        module="torch.nn.MultiheadAttention", shape=attention_rule, init=attention_kwargs,
        template=attention_template, held=Held("mask", causal_mask),
        args=lambda p, s: dict(q_len=s[0].shape[1], k_len=s[1].shape[1]),
        count=attention_count, macs=attention_macs,
    ),
    BlockSpec(
        type="scaled_dot_product_attention", title="ScaledDotProductAttention", category="Layers",
        doc="softmax(q kᵀ · scale + mask) v, torch.nn.functional.scaled_dot_product_attention: "
            "attention without weights of its own, over any leading dims (B, heads, …).",
        inputs=(Port("q", "queries (B, …, T, E)"), Port("k", "keys (B, …, S, E)"),
                Port("v", "values (B, …, S, Ev)"),
                Port("mask", "optional: broadcasts to (B, …, T, S); bool True lets a query "
                     "attend to a key (torch's convention for this function), float is added",
                     optional=True)),
        outputs=(Port("y", "(B, …, T, Ev)"),),
        input_dtypes={"mask": ("bool", "float")},
        params=(Bool("causal", False, "each query attends only to keys at or before its own "
                     "position"),
                Float("dropout", 0.0, "dropout on the attention weights, while training",
                      min=0.0, max=0.99),
                Float("scale", 0.0, "multiplies the scores; 0 means 1/sqrt(E)", min=0.0, max=1e6)),
        shape=sdpa_rule, template=sdpa_template, macs=sdpa_macs,
        args=lambda p, s: dict(dropout=p["dropout"], scale=p["scale"]),
    ),
]

CELLS = [
    BlockSpec(
        type="rnn_cell", title="RNNCell", category="Recurrent",
        doc="One Elman RNN step: h' = tanh(W x + U h + b).",
        inputs=(Port("x", "(B, features)"), Port("h", "previous hidden state (B, hidden_size)")),
        outputs=(Port("h", "(B, hidden_size)"),),
        params=(Int("hidden_size", 32, "hidden state size", min=1, max=1 << 16),
                Bool("bias", True, "learn biases"),
                Choice("nonlinearity", "tanh", ("tanh", "relu"), "the activation")),
        module="torch.nn.RNNCell", shape=cell_rule(1, False), template="{self}({x}, {h})",
        init=lambda p, s: non_default(dict(input_size=s[0].shape[-1], hidden_size=p["hidden_size"]),
                                      dict(bias=p["bias"], nonlinearity=p["nonlinearity"]),
                                      dict(bias=True, nonlinearity="tanh")),
        count=cell_count(1), macs=cell_count(1),
    ),
    BlockSpec(
        type="gru_cell", title="GRUCell", category="Recurrent",
        doc="One gated recurrent unit step.",
        inputs=(Port("x", "(B, features)"), Port("h", "previous hidden state (B, hidden_size)")),
        outputs=(Port("h", "(B, hidden_size)"),),
        params=(Int("hidden_size", 32, "hidden state size", min=1, max=1 << 16),
                Bool("bias", True, "learn biases")),
        module="torch.nn.GRUCell", shape=cell_rule(3, False), template="{self}({x}, {h})",
        init=lambda p, s: non_default(dict(input_size=s[0].shape[-1], hidden_size=p["hidden_size"]),
                                      dict(bias=p["bias"]), dict(bias=True)),
        count=cell_count(3), macs=cell_count(3),
    ),
    BlockSpec(
        type="lstm_cell", title="LSTMCell", category="Recurrent",
        doc="One long short-term memory step over hidden state h and cell state c.",
        inputs=(Port("x", "(B, features)"), Port("h", "previous hidden state (B, hidden_size)"),
                Port("c", "previous cell state (B, hidden_size)")),
        outputs=(Port("h", "(B, hidden_size)"), Port("c", "(B, hidden_size)")),
        params=(Int("hidden_size", 32, "hidden state size", min=1, max=1 << 16),
                Bool("bias", True, "learn biases")),
        module="torch.nn.LSTMCell", shape=cell_rule(4, True), template="{self}({x}, ({h}, {c}))",
        init=lambda p, s: non_default(dict(input_size=s[0].shape[-1], hidden_size=p["hidden_size"]),
                                      dict(bias=p["bias"]), dict(bias=True)),
        count=cell_count(4), macs=cell_count(4),
    ),
    *(
        BlockSpec(
            type=type_, title=title, category="Recurrent", doc=doc,
            inputs=(Port("x", "(B, T, features)"),
                    *(Port(name, "optional: the initial state (B, num_layers·D, hidden_size), D = 2 "
                                 "if bidirectional else 1", optional=True) for name in states)),
            outputs=(Port("y", "every step's output (B, T, D·hidden_size)"),
                     *(Port(name[0], "the final state (B, num_layers·D, hidden_size): torch's "
                                     f"{name[0]}_n, batch first") for name in states)),
            params=(Int("hidden_size", 32, "hidden state size", min=1, max=1 << 16),
                    Int("num_layers", 1, "stacked layers", min=1, max=64),
                    Bool("bidirectional", False, "also run the sequence backwards; outputs "
                         "concatenate both directions"),
                    Bool("bias", True, "learn biases"),
                    Float("dropout", 0.0, "dropout between layers (needs num_layers ≥ 2)",
                          min=0.0, max=0.99)),
            module=module, shape=rnn_layer_rule(len(states) == 2), init=rnn_layer_kwargs,
            template=rnn_layer_template(len(states) == 2),
            unpack="{y}, ({h}, {c})" if len(states) == 2 else "{y}, {h}",
            finish={name[0]: f"{{{name[0]}}}.transpose(0, 1)" for name in states},
            count=rnn_layer_count(gates),
            macs=lambda p, s, g=gates: rnn_layer_count(g)(p, s) * s[0].shape[1],
        )
        for type_, title, module, gates, states, doc in [
            ("lstm", "LSTM", "torch.nn.LSTM", 4, ("h0", "c0"),
             "A long short-term memory layer over a whole sequence (torch.nn.LSTM, batch first): "
             "every step's output, and the final hidden and cell states."),
            ("gru", "GRU", "torch.nn.GRU", 3, ("h0",),
             "A gated recurrent layer over a whole sequence (torch.nn.GRU, batch first): every "
             "step's output and the final hidden state."),
        ]
    ),
]

POOLING = [
    *(
        BlockSpec(
            type=type_, title=title, category="Pooling", doc=doc, shape=pool_rule,
            inputs=(Port("x", "(B, C, H, W)"),), outputs=(Port("y", "(B, C, H', W')"),),
            params=(Int("kernel_size", 2, "window size", min=1, max=64),
                    Int("stride", 0, "step between windows; 0 means the window size", min=0, max=64),
                    Int("padding", 0, "padding on each side (≤ half the window)", min=0, max=32)),
            function=function, macs=lambda p, s: numel(s[0].shape) * p["kernel_size"] ** 2,
            args=lambda p, s: dict(kernel_size=p["kernel_size"],
                                   **({"stride": p["stride"]} if p["stride"] else {}),
                                   **({"padding": p["padding"]} if p["padding"] else {})),
        )
        for type_, title, function, doc in [
            ("max_pool2d", "MaxPool2d", "torch.nn.functional.max_pool2d",
             "Keeps the largest value in each window of (B, C, H, W)."),
            ("avg_pool2d", "AvgPool2d", "torch.nn.functional.avg_pool2d",
             "Averages each window of (B, C, H, W)."),
        ]
    ),
    BlockSpec(
        type="adaptive_avg_pool2d", title="AdaptiveAvgPool2d", category="Pooling",
        doc="Averages (B, C, H, W) down to a fixed output size, whatever H and W are.",
        inputs=(Port("x", "(B, C, H, W)"),), outputs=(Port("y", "(B, C, *output_size)"),),
        params=(ShapeParam("output_size", (1, 1), "output (H, W)", max_dims=2),),
        function="torch.nn.functional.adaptive_avg_pool2d",
        args=lambda p, s: dict(output_size=tuple(p["output_size"])), shape=adaptive_pool_rule,
    ),
]


def norm_rule(ranks: Sequence[int], what: str):
    def rule(p: ParamValues, s: InTypes) -> list[TensorType]:
        need_rank(s[0], ranks, what)
        # Batch statistics need a batch: an unbatched (1, C) Constant validated, then failed
        # in training mode ("Expected more than 1 value per channel").
        if not s[0].batched:
            raise ShapeError(f"normalizes over the batch, so it needs a batched input, not "
                             f"{fmt_shape(s[0].shape)}")
        return [s[0]]
    return rule


NORMALIZATION = [
    BlockSpec(
        type="batch_norm1d", title="BatchNorm1d", category="Normalization",
        doc="Normalizes each feature over the batch: (B, C) or (B, C, L).",
        inputs=(Port("x", "(B, C) or (B, C, L)"),), outputs=Y, params=(Float("momentum", 0.1, "running-statistics update rate", min=0.0, max=1.0),
                          Bool("affine", True, "learn a scale and shift")),
        module="torch.nn.BatchNorm1d", shape=norm_rule([2, 3], "(B, C) or (B, C, L)"),
        init=lambda p, s: non_default(dict(num_features=s[0].shape[1]),
                                      dict(momentum=p["momentum"], affine=p["affine"]),
                                      dict(momentum=0.1, affine=True)),
        count=lambda p, s: 2 * s[0].shape[1] if p["affine"] else 0,
    ),
    BlockSpec(
        type="batch_norm2d", title="BatchNorm2d", category="Normalization",
        doc="Normalizes each channel of (B, C, H, W) over the batch and space.",
        inputs=(Port("x", "(B, C, H, W)"),), outputs=Y, params=(Float("momentum", 0.1, "running-statistics update rate", min=0.0, max=1.0),
                          Bool("affine", True, "learn a scale and shift")),
        module="torch.nn.BatchNorm2d", shape=norm_rule([4], "(B, C, H, W)"),
        init=lambda p, s: non_default(dict(num_features=s[0].shape[1]),
                                      dict(momentum=p["momentum"], affine=p["affine"]),
                                      dict(momentum=0.1, affine=True)),
        count=lambda p, s: 2 * s[0].shape[1] if p["affine"] else 0,
    ),
    BlockSpec(
        type="layer_norm", title="LayerNorm", category="Normalization",
        doc="Normalizes each sample over its last dims.",
        inputs=(Port("x", "(B, …) with at least `dims` dims after the batch"),), outputs=Y, params=(Int("dims", 1, "how many trailing dims to normalize over", min=1, max=7),
                          Bool("affine", True, "learn a scale and shift")),
        module="torch.nn.LayerNorm",
        shape=layer_norm_rule,
        init=lambda p, s: non_default(dict(normalized_shape=tuple(s[0].shape[-p["dims"]:])),
                                      dict(elementwise_affine=p["affine"]),
                                      dict(elementwise_affine=True)),
        count=lambda p, s: 2 * numel(s[0].shape[-p["dims"]:]) if p["affine"] else 0,
    ),
    BlockSpec(
        type="dropout", title="Dropout", category="Normalization",
        doc="Zeroes random elements while training, scaling the rest by 1/(1-p); in eval mode it "
            "passes x through.",
        inputs=X, outputs=Y, params=(Float("p", 0.5, "probability of zeroing", min=0.0, max=0.99),),
        module="torch.nn.Dropout", shape=same, init=lambda p, s: dict(p=p["p"]),
    ),
]

ACTIVATIONS = [
    BlockSpec(type="relu", title="ReLU", category="Activations", doc="max(x, 0).",
              inputs=X, outputs=Y, function="torch.relu", shape=same, dead_units=("y",)),
    BlockSpec(type="relu6", title="ReLU6", category="Activations", doc="min(max(x, 0), 6).",
              inputs=X, outputs=Y, function="torch.nn.functional.relu6", shape=same,
              dead_units=("y",)),
    BlockSpec(type="leaky_relu", title="LeakyReLU", category="Activations",
              doc="x where positive, slope·x elsewhere.", inputs=X, outputs=Y, shape=same,
              params=(Float("negative_slope", 0.01, "slope for negative inputs", min=0.0, max=1.0),),
              function="torch.nn.functional.leaky_relu",
              args=lambda p, s: dict(negative_slope=p["negative_slope"])),
    BlockSpec(type="gelu", title="GELU", category="Activations",
              doc="Gaussian error linear unit, x·Φ(x).", inputs=X, outputs=Y, shape=same,
              params=(Choice("approximate", "none", ("none", "tanh"), "exact or tanh approximation"),),
              function="torch.nn.functional.gelu",
              args=lambda p, s: {} if p["approximate"] == "none" else {"approximate": "tanh"}),
    BlockSpec(type="silu", title="SiLU", category="Activations", doc="x·sigmoid(x), a.k.a. swish.",
              inputs=X, outputs=Y, function="torch.nn.functional.silu", shape=same),
    BlockSpec(type="tanh", title="Tanh", category="Activations", doc="Hyperbolic tangent, in (-1, 1).",
              inputs=X, outputs=Y, function="torch.tanh", shape=same),
    BlockSpec(type="sigmoid", title="Sigmoid", category="Activations", doc="1 / (1 + e^-x), in (0, 1).",
              inputs=X, outputs=Y, function="torch.sigmoid", shape=same),
    *(
        BlockSpec(type=type_, title=title, category="Activations", doc=doc, inputs=X, outputs=Y,
                  function=function, params=(Int("dim", -1, "the dim that sums to one", min=-8, max=7),),
                  args=lambda p, s: dict(dim=p["dim"]),
                  shape=same_along_dim)
        for type_, title, function, doc in [
            ("softmax", "Softmax", "torch.softmax", "Exponentials normalized to sum to one along dim."),
            ("log_softmax", "LogSoftmax", "torch.log_softmax", "Logarithm of Softmax, computed stably."),
        ]
    ),
]

SHAPING = [
    BlockSpec(type="flatten", title="Flatten", category="Shape",
              doc="Merges dims start_dim..end_dim into one: (B, C, H, W) → (B, C·H·W).",
              inputs=X, outputs=(Port("y", "x's shape with dims start_dim..end_dim merged"),),
              input_dtypes=ANY_DTYPE, function="torch.flatten", shape=flatten_rule,
              template=lambda p, s: "{x}.flatten(" + str(p["start_dim"]) + (
                  f", {p['end_dim']})" if p["end_dim"] != -1 else ")"),
              params=(Int("start_dim", 1, "first dim to merge (never the batch dim 0)", min=-8, max=7),
                      Int("end_dim", -1, "last dim to merge", min=-8, max=7)),
              args=lambda p, s: dict(start_dim=p["start_dim"], end_dim=p["end_dim"])),
    BlockSpec(type="reshape", title="Reshape", category="Shape",
              doc="Gives each sample a new shape with the same number of values; -1 infers one dim.",
              inputs=(Port("x", "(B, …)"),), outputs=(Port("y", "(B, *shape)"),), input_dtypes=ANY_DTYPE, shape=reshape_rule, template=reshape_template,
              params=(ShapeParam("shape", (-1,), "new per-sample shape", allow_negative_one=True),)),
    BlockSpec(type="permute", title="Permute", category="Shape",
              doc="Reorders the non-batch dims, e.g. [2, 1] swaps (B, T, F) into (B, F, T).",
              inputs=(Port("x", "(B, d1, …, dn)"),), outputs=(Port("y", "(B, d[dims[0]], …)"),), input_dtypes=ANY_DTYPE, shape=permute_rule,
              params=(ShapeParam("dims", (2, 1), "new order of dims 1..n"),),
              template=lambda p, s: "{x}.permute(0, " + ", ".join(map(str, p["dims"])) + ")"),
    BlockSpec(type="concat", title="Concat", category="Shape",
              doc="Joins tensors along one dim; the others must match.",
              input_dtypes=ANY_DTYPE, shape=concat_rule, function="torch.cat",
              params=(Int("inputs", 2, "how many tensors to join", min=2, max=8),
                      Int("dim", -1, "the dim to join along", min=-8, max=7)),
              ports=lambda n: (numbered_ports("x", _param(n, "inputs", 2),
                                              "alike but for dim"),
                               (Port("y", "the inputs' shape, dim their sizes' sum"),)),
              template=lambda p, s: "torch.cat([" + ", ".join(f"{{x{i}}}" for i in range(len(s)))
              + f"], dim={p['dim']})"),
    BlockSpec(type="split", title="Split", category="Shape",
              doc="Cuts a tensor into pieces of the given sizes along one dim.",
              inputs=X, input_dtypes=ANY_DTYPE, shape=split_rule,
              params=(ShapeParam("sections", (1, 1), "size of each piece", max_dims=8),
                      Int("dim", -1, "the dim to cut", min=-8, max=7)),
              # Without a sections param the default (1, 1) applies: two pieces, two ports.
              ports=lambda n: (X, numbered_ports("y", len(n.params.get("sections", (1, 1)) or ())
                                                 or 1, "x's shape, dim one section's size")),
              # One section: take the only piece, not the 1-tuple torch.split returns.
              template=lambda p, s: f"torch.split({{x}}, {list(p['sections'])!r}, dim={p['dim']})"
              + ("[0]" if len(p["sections"]) == 1 else "")),
    BlockSpec(type="select", title="Select", category="Shape",
              doc="Picks one index along a dim, dropping that dim: x[:, i].",
              inputs=X, outputs=(Port("y", "x's shape without dim"),), input_dtypes=ANY_DTYPE, shape=select_rule,
              params=(Int("dim", 1, "the dim to index", min=-8, max=7),
                      Int("index", 0, "the index (negative counts from the end)", min=-(1 << 20),
                          max=1 << 20)),
              template=lambda p, s: index_prefix(norm_dim(p["dim"], s[0].rank)) + f"{p['index']}]"),
    BlockSpec(type="slice", title="Slice", category="Shape",
              doc="Keeps a range along one dim: x[:, start:stop:step].",
              inputs=X, outputs=(Port("y", "x's shape, dim as long as the range"),), input_dtypes=ANY_DTYPE, shape=slice_rule,
              params=(Int("dim", 1, "the dim to slice", min=-8, max=7),
                      Int("start", 0, "first index kept", min=-(1 << 20), max=1 << 20),
                      Int("stop", 1, "index where the range ends (excluded)", min=-(1 << 20),
                          max=1 << 20),
                      Int("step", 1, "stride", min=1, max=1 << 20)),
              template=lambda p, s: index_prefix(norm_dim(p["dim"], s[0].rank))
              + f"{p['start']}:{p['stop']}" + (f":{p['step']}" if p["step"] != 1 else "") + "]"),
    BlockSpec(type="positions", title="Positions", category="Shape",
              doc="0, 1, …, n-1: the positions along one dim of x (n its size), for a position "
                  "embedding, or compared in an Expression to make a mask.",
              inputs=(Port("x", "any shape; only its size along dim counts"),),
              outputs=(Port("y", "(n,), or aligned (n, 1, …, 1) to broadcast against x"),),
              input_dtypes=ANY_DTYPE, shape=positions_rule, template=positions_template,
              params=(Int("dim", 1, "the dim to count along (not the batch dim)", min=-8, max=7),
                      Choice("dtype", "long", ("long", "float"),
                             "long for an Embedding, float for arithmetic"),
                      Bool("aligned", False, "shape (n, 1, …, 1), one 1 per dim of x after dim, "
                           "so the positions line up with x when broadcast"))),
]

MATH = [
    *(
        BlockSpec(type=type_, title=title, category="Math", doc=doc, inputs=AB, shape=elementwise,
                  outputs=(Port("y", "the broadcast of a's and b's shapes"),), template=template)
        for type_, title, template, doc in [
            ("add", "Add", "{a} + {b}", "Elementwise a + b, with broadcasting."),
            ("sub", "Sub", "{a} - {b}", "Elementwise a - b, with broadcasting."),
            ("mul", "Mul", "{a} * {b}", "Elementwise a · b, with broadcasting."),
            ("div", "Div", "{a} / {b}", "Elementwise a / b, with broadcasting."),
        ]
    ),
    BlockSpec(type="matmul", title="MatMul", category="Math", doc="Matrix product a @ b.",
              inputs=(Port("a", "(…, n, k)"), Port("b", "(…, k, m)")),
              outputs=(Port("y", "(…, n, m), leading dims broadcast"),), shape=matmul_rule, template="{a} @ {b}",
              macs=lambda p, s: numel(matmul_rule(p, s)[0].shape) * numel(s[0].shape[-1:])),
    *(
        BlockSpec(type=type_, title=title, category="Math", doc=doc, inputs=X, shape=reduce_rule,
                  outputs=(Port("y", "x's shape without dim (size 1 with keepdim)"),),
                  params=(Int("dim", -1, "the dim to reduce", min=-8, max=7),
                          Bool("keepdim", False, "keep the reduced dim with size 1")),
                  template=lambda p, s, m=method: "{x}." + m + "(dim={dim}"
                  + (", keepdim=True)" if p["keepdim"] else ")"),
                  args=lambda p, s: dict(dim=p["dim"], keepdim=p["keepdim"]))
        for type_, title, method, doc in [
            ("mean", "Mean", "mean", "Average along one dim."),
            ("sum", "Sum", "sum", "Sum along one dim."),
            ("max", "Max", "amax", "Largest value along one dim."),
        ]
    ),
    BlockSpec(type="norm", title="Norm", category="Math", doc="Vector p-norm along one dim.",
              inputs=X, shape=reduce_rule, function="torch.linalg.vector_norm",
              outputs=(Port("y", "x's shape without dim (size 1 with keepdim)"),),
              params=(Float("ord", 2.0, "the p of the p-norm", min=0.0, max=1e3),
                      Int("dim", -1, "the dim to reduce", min=-8, max=7),
                      Bool("keepdim", False, "keep the reduced dim with size 1")),
              args=lambda p, s: dict(ord=p["ord"], dim=p["dim"], keepdim=p["keepdim"])),
    BlockSpec(type="expression", title="Expression", category="Math",
              doc="Elementwise formula over inputs a, b, c, …, e.g. a * torch.sigmoid(b) + 0.5 or "
                  "torch.where(a > b, a, 0.0): + - * / ** %, comparisons < <= > >= == != "
                  "(giving a bool mask), & | ~ on masks, and torch." + ", torch.".join(
                      sorted(expression.FUNCTIONS)) + ".",
              shape=expression_rule, ports=expression_ports, template=expression_template,
              input_dtypes=ANY_DTYPE,
              params=(String("expr", "a + b", "the formula over a, b, c, …; torch.<fn> for "
                             "functions, comparisons give masks for torch.where", max_len=500),
                      Int("inputs", 2, f"how many inputs (a, b, c, … up to "
                          f"{expression.NAMES[-1]})", min=1, max=expression.MAX_INPUTS))),
]

LOSSES = [
    BlockSpec(type="cross_entropy", title="CrossEntropy", category="Losses", loss=True,
              doc="Softmax cross-entropy between logits and class ids: (B, C) with ids (B,), "
                  "torch's (B, C, d…) with ids (B, d…), or a sequence model's (B, T, C) with ids "
                  "(B, T).",
              inputs=(Port("input", "logits (B, C), (B, C, d…) or (B, …, C)"),
                      Port("target", "class ids, long: the logits' shape without the class dim")),
              outputs=(Port("y", "() or, with reduction none, the target's shape"),),
              input_dtypes={"input": ("float",), "target": ("long",)},
              shape=cross_entropy_rule, function="torch.nn.functional.cross_entropy",
              template=cross_entropy_template,
              args=lambda p, s: {} if p["reduction"] == "mean" else {"reduction": p["reduction"]},
              # Class ids run 0..C-1, C at dim 1 or last: random ids stay below both.
              id_inputs=(IdInput("target", count_dim=("input", 1)),
                         IdInput("target", count_dim=("input", -1))),
              params=(Choice("reduction", "mean", ("mean", "sum", "none"),
                             "how to combine per-element losses"),
                      Choice("classes", "auto", ("auto", "dim1", "last"),
                             "where the class scores are: dim1 as torch, (B, C, d…); last for a "
                             "sequence model's (B, T, C); auto takes the one the target fits"))),
    *(
        BlockSpec(type=type_, title=title, category="Losses", doc=doc, loss=True,
                  inputs=(Port("input", f"{what}, any shape"), Port("target", "input's shape")),
                  outputs=(Port("y", "() or, with reduction none, input's shape"),),
                  input_dtypes={"input": ("float",), "target": ("float",)},
                  shape=loss_rule, function=function,
                  unit_inputs=("input", "target") if type_ == "bce" else (),
                  params=(Choice("reduction", "mean", ("mean", "sum", "none"),
                                 "how to combine per-element losses"),),
                  args=lambda p, s: {} if p["reduction"] == "mean" else {"reduction": p["reduction"]})
        for type_, title, function, what, doc in [
            ("mse", "MSE", "torch.nn.functional.mse_loss", "prediction", "Mean squared error."),
            ("bce_with_logits", "BCEWithLogits", "torch.nn.functional.binary_cross_entropy_with_logits",
             "logits", "Binary cross-entropy on logits, computed stably."),
            ("bce", "BCE", "torch.nn.functional.binary_cross_entropy", "probabilities in [0, 1]",
             "Binary cross-entropy between probabilities (a Sigmoid's output) and targets, both "
             "in [0, 1]; torch refuses other values when the model runs."),
            ("l1", "L1", "torch.nn.functional.l1_loss", "prediction", "Mean absolute error."),
        ]
    ),
]

RANDOM = [
    noise_spec("normal", "Normal noise",
               "Gaussian noise N(mean, std²), drawn anew on every call from torch's global "
               "generator (seeded by the trainer). Eval mode draws too, unless eval is mean.",
               (Float("mean", 0.0, "the mean", min=-1e6, max=1e6),
                Float("std", 1.0, "the standard deviation", min=0.0, max=1e6)),
               lambda p: _affine("torch.randn_like(LIKE)", p["std"], p["mean"]),
               lambda p: _full_like(p["mean"]), lambda p: {}),
    noise_spec("uniform", "Uniform noise",
               "Noise uniform in [low, high), drawn anew on every call from torch's global "
               "generator. Eval mode draws too, unless eval is mean ((low + high) / 2).",
               (Float("low", 0.0, "the lower bound", min=-1e6, max=1e6),
                Float("high", 1.0, "the upper bound", min=-1e6, max=1e6)),
               lambda p: _affine("torch.rand_like(LIKE)", p["high"] - p["low"], p["low"]),
               lambda p: _full_like((p["low"] + p["high"]) / 2), lambda p: {}),
    noise_spec("bernoulli", "Bernoulli noise",
               "Ones with probability p, else zeros, drawn anew on every call from torch's global "
               "generator. Eval mode draws too, unless eval is mean (p everywhere).",
               (Float("p", 0.5, "the probability of a one", min=0.0, max=1.0),),
               lambda p: "torch.bernoulli(torch.full_like(LIKE, {p}))",
               lambda p: "torch.full_like(LIKE, {p})",
               lambda p: dict(p=p["p"])),
    BlockSpec(
        type="reparameterize", title="Reparameterize", category="Random",
        doc="A sample z = mu + exp(0.5·logvar)·eps with eps ~ N(0, 1) from torch's global "
            "generator, differentiable in mu and logvar: a VAE's sampling step. Eval mode gives "
            "the mean mu, unless eval is sample.",
        inputs=(Port("mu", "the mean, any shape"), Port("logvar", "the log-variance, mu's shape")),
        outputs=(Port("y", "the sample z, mu's shape"),),
        params=(Choice("eval", "mean", ("mean", "sample"),
                       "in eval mode: give the mean mu, or keep sampling"),),
        shape=reparameterize_rule,
        template=lambda p, s: "{mu} + torch.exp(0.5 * {logvar}) * torch.randn_like({mu})"
        + (" if self.training else {mu}" if p["eval"] == "mean" else ""),
    ),
]

CONTROL = [
    BlockSpec(
        type="loop", title="Loop", category="Control", kind="loop", regions=("body",),
        doc="Runs its body repeatedly: N times, once per sequence step, or until a halt score says stop.",
        shape=structural, ports=loop_ports, input_dtypes=ANY_DTYPE, skips_weights=loop_skips_weights,
        ports_doc=("one per Body input of its body, named by its id (and count, repeating a "
                   "count from the data); a sequence's is scanned along dim",
                   "one per state and per plain Body output of its body (and iterations, in a "
                   "while loop); a scan stacks plain outputs along dim"),
        params=(Choice("mode", "repeat", tuple(LOOP_MODES), control.choices_doc(LOOP_MODES)),
                Int("count", 3, "repeat: how many iterations", min=1, max=10_000),
                Choice("count_from", "param", ("param", "input"),
                       "repeat: take N from the count param or from a `count` input"),
                Int("dim", 1, "scan: the sequence dim of each sequence input", min=1, max=7),
                Int("max_iters", 20, "while, and repeat from an input: the most iterations allowed",
                    min=1, max=10_000),
                Float("threshold", 0.5, "while: a sample halts once its halt score exceeds this",
                      min=-1e6, max=1e6),
                Choice("halt", "per_sample", ("per_sample", "batch"),
                       "while: halt each sample on its own (masked) or the whole batch at once"),
                Bool("share_weights", True, "one set of body weights for all iterations; off gives "
                     "each iteration its own")),
    ),
    BlockSpec(
        type="branch", title="Branch", category="Control", kind="branch", regions=("then", "else"),
        doc="Runs `then` where the condition exceeds the threshold and `else` elsewhere.",
        shape=structural, ports=branch_ports, input_dtypes=ANY_DTYPE,
        ports_doc=("cond, (B,) or (B, 1) per sample; then one per Body input of its bodies",
                   "one per Body output of its bodies"),
        skips_weights=branch_skips_weights,
        params=(Choice("mode", "per_sample", tuple(BRANCH_MODES), control.choices_doc(BRANCH_MODES)),
                Float("threshold", 0.0, "the condition is true above this", min=-1e6, max=1e6)),
    ),
    BlockSpec(
        type="call", title="Call", category="Control", kind="call",
        doc="Runs a function defined in this graph (its body, placed here); with its own copy "
            "of the function's weights, or sharing one module with every call of a weight group.",
        shape=structural, ports=control.call_ports, input_dtypes=ANY_DTYPE,
        ports_doc=("one per Body input of its function's body, named by its id",
                   "one per Body output of its function's body"),
        params=(String("function", "", "the name of the function this calls (one of the graph's "
                       "functions)", max_len=64),
                String("weights", control.OWN_WEIGHTS, "own: a fresh copy of the function's "
                       "weights for this call; a group name: one module shared by every call "
                       "naming that group", max_len=64)),
    ),
    BlockSpec(
        type="body_input", title="Body input", category="Control", kind="body_input",
        doc="An input of a loop or branch body; its id names the matching port outside.",
        outputs=(Port("y", "the value entering the body (one step of a sequence)"),),
        shape=structural,
        params=(Choice("role", "context", tuple(INPUT_ROLES), control.choices_doc(INPUT_ROLES)),
                ShapeParam("shape", (16,), "state: per-sample shape used when the port outside is "
                           "not connected (the state then starts at zeros)")),
    ),
    BlockSpec(
        type="body_output", title="Body output", category="Control", kind="body_output",
        doc="A result of a loop or branch body; its id names the matching port outside.",
        inputs=(Port("x", "any shape; a state's must match what enters"),), outputs=(), shape=structural, input_dtypes=ANY_DTYPE,
        params=(Choice("role", "output", tuple(OUTPUT_ROLES), control.choices_doc(OUTPUT_ROLES)),
                String("state", "", "state: the id of the body input this updates", max_len=64)),
    ),
]

CATEGORIES = ("Data", "Layers", "Recurrent", "Pooling", "Normalization", "Activations", "Shape",
              "Math", "Random", "Losses", "Control")

BLOCKS: tuple[BlockSpec, ...] = (*IO, *LAYERS, *CELLS, *POOLING, *NORMALIZATION, *ACTIVATIONS,
                                 *SHAPING, *MATH, *RANDOM, *LOSSES, *CONTROL)
REGISTRY: dict[str, BlockSpec] = {spec.type: spec for spec in BLOCKS}
LEGACY_TYPES: dict[str, str] = {old: spec.type for spec in BLOCKS for old in spec.legacy_types}


def lookup(type_: str) -> BlockSpec | None:
    """The spec for a block type, following renames of older files."""
    return REGISTRY.get(LEGACY_TYPES.get(type_, type_))
