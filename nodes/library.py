"""The block library: every block dprog offers, one `BlockSpec` each, grouped by category.

`REGISTRY` is built explicitly from the lists below; importing this module registers
nothing anywhere else. To add a block, write one spec in the right list (see README,
"Adding a block").
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

X = (Port("x"),)
AB = (Port("a"), Port("b"))
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
    q, k, v = s
    for t, port in zip(s, "qkv", strict=True):
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
    return [q]


def attention_kwargs(p: ParamValues, s: InTypes) -> dict:
    q, k, v = s
    kw = non_default(dict(embed_dim=q.shape[-1], num_heads=p["num_heads"]),
                     dict(dropout=p["dropout"], bias=p["bias"]), dict(dropout=0.0, bias=True))
    kw["batch_first"] = True
    if k.shape[-1] != q.shape[-1]:
        kw["kdim"] = k.shape[-1]
    if v.shape[-1] != q.shape[-1]:
        kw["vdim"] = v.shape[-1]
    return kw


def attention_count(p: ParamValues, s: InTypes) -> int:
    e, kd, vd = (t.shape[-1] for t in s)
    bias = 4 * e if p["bias"] else 0
    return e * (e + kd + vd) + e * e + bias


def attention_macs(p: ParamValues, s: InTypes) -> int:
    """Projections, plus scores and their weighted sum: T_q·T_k·E twice (quadratic in T)."""
    (_, tq, e), (_, tk, kd), (_, _, vd) = (t.shape for t in s)
    return tq * e * 2 * e + tk * e * (kd + vd) + 2 * tq * tk * e


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


def numbered_ports(prefix: str, count: int) -> tuple[Port, ...]:
    return tuple(Port(f"{prefix}{i}") for i in range(count))


def loss_rule(target_dtype: str):
    def rule(p: ParamValues, s: InTypes) -> list[TensorType]:
        pred, target = s
        if target_dtype == "long":
            need_rank(pred, [2], "logits (B, classes)", "input")
            if target.shape != pred.shape[:1]:
                raise ShapeError(f"expects class ids {fmt_shape(pred.shape[:1])} but gets "
                                 f"{fmt_shape(target.shape)}", port="target")
        # Exactly the prediction's shape: torch warns on a broadcast target (mse, l1) or
        # refuses it (bce_with_logits), so a broadcasting target validated but failed to run.
        elif target.shape != pred.shape:
            raise ShapeError(f"target {fmt_shape(target.shape)} does not match prediction "
                             f"{fmt_shape(pred.shape)}", port="target")
        if p["reduction"] != "none":
            return [TensorType(())]
        # reduction="none" keeps one loss per element: per sample for cross-entropy, and the
        # prediction's whole shape for the others (this said (B,) for them too).
        return [TensorType(pred.shape[:1] if target_dtype == "long" else pred.shape)]
    return rule


def expression_rule(p: ParamValues, s: InTypes) -> list[TensorType]:
    names = tuple("abcd"[: p["inputs"]])
    try:
        tree = expression.parse(p["expr"], names)
    except expression.ExpressionError as e:
        raise ShapeError(f"expression {e}", param="expr", code="bad_expression") from None
    used = expression.used_names(tree)
    if not used:
        raise ShapeError("expression uses none of its inputs", param="expr", code="bad_expression")
    return [TensorType(broadcast(*(s[names.index(n)].shape for n in used)))]


def expression_template(p: ParamValues, s: InTypes) -> str:
    """The checked formula as a template, each input name its `{name}` placeholder. The tree
    holds only numbers, names, operators and torch calls, so its text has no other braces."""
    names = tuple("abcd"[: p["inputs"]])
    return expression.render(p["expr"], names, {n: "{" + n + "}" for n in names})


def expression_ports(node) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    return tuple(Port(c) for c in "abcd"[: _param(node, "inputs", 2)]), (Port("y"),)


def _param(node, name: str, default):
    value = node.params.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 64 else default


def structural(p: ParamValues, s: InTypes) -> list[TensorType]:
    raise AssertionError("the engine infers this block's shapes itself")


# The Parameter block's initial values: a template per `init` choice.
PARAMETER_INITS = {
    "zeros": "torch.zeros({shape})", "ones": "torch.ones({shape})",
    "normal": "torch.randn({shape}) * {scale}", "uniform": "(torch.rand({shape}) * 2 - 1) * {scale}",
}


# --- the blocks --------------------------------------------------------------------

IO = [
    BlockSpec(
        type="input", title="Input", category="Data", kind="input",
        doc="A model input: one argument of forward(), a batch of tensors of this per-sample shape.",
        outputs=(Port("y"),), shape=structural,
        params=(ShapeParam("shape", (2,), "per-sample shape, without the batch dim"),
                Choice("dtype", "float", ("float", "long"), "long for token ids fed to Embedding")),
    ),
    BlockSpec(
        type="output", title="Output", category="Data", kind="output",
        doc="A model output: what forward() returns (several Outputs return a tuple).",
        inputs=X, outputs=(), shape=structural, input_dtypes=ANY_DTYPE,
    ),
    BlockSpec(
        type="constant", title="Constant", category="Data",
        doc="A fixed tensor filled with one value; it broadcasts against batched tensors.",
        shape=lambda p, s: [TensorType(tuple(p["shape"]))],
        params=(Float("value", 0.0, "the fill value", min=-1e12, max=1e12),
                ShapeParam("shape", (1,), "its shape (no batch dim)")),
        emit="buffer", template="torch.full({shape}, {value})",
        args=lambda p, s: dict(shape=tuple(p["shape"]), value=p["value"]),
    ),
    BlockSpec(
        type="parameter", title="Parameter", category="Data",
        doc="A learnable tensor, trained like any weight; it broadcasts against batched tensors.",
        shape=lambda p, s: [TensorType(tuple(p["shape"]))],
        count=lambda p, s: numel(p["shape"]),
        params=(ShapeParam("shape", (1,), "its shape (no batch dim)"),
                Choice("init", "normal", tuple(PARAMETER_INITS), "initial values"),
                Float("scale", 0.1, "std (normal) or half-width (uniform) of the initial values",
                      min=0.0, max=1e6)),
        emit="parameter", template=lambda p, s: PARAMETER_INITS[p["init"]],
        args=lambda p, s: dict(shape=tuple(p["shape"]), scale=p["scale"]),
    ),
]

LAYERS = [
    BlockSpec(
        type="linear", title="Linear", category="Layers",
        doc="Affine map over the last dimension: y = x Wᵀ + b.",
        inputs=X, params=(Int("out_features", 16, "output features", min=1, max=1 << 20),
                          Bool("bias", True, "learn an additive bias")),
        module="torch.nn.Linear", shape=linear_rule,
        init=lambda p, s: non_default(dict(in_features=s[0].shape[-1], out_features=p["out_features"]),
                                      dict(bias=p["bias"]), dict(bias=True)),
        count=lambda p, s: s[0].shape[-1] * p["out_features"] + (p["out_features"] if p["bias"] else 0),
        macs=lambda p, s: numel(s[0].shape) * p["out_features"],
        legacy_types=("dense",),  # the draft format's name for it
    ),
    *(
        BlockSpec(
            type=type_, title=title, category="Layers", doc=doc, inputs=X,
            params=(Int("out_channels", 16, "output channels", min=1, max=1 << 16),
                    Int("kernel_size", 3, "kernel width (square for 2-D)", min=1, max=64),
                    Int("stride", 1, "step between kernel positions", min=1, max=64),
                    Int("padding", pad, "zeros added on each side", min=0, max=64),
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
        for type_, title, module, dims, transpose, pad, doc in [
            ("conv1d", "Conv1d", "torch.nn.Conv1d", 1, False, 1,
             "1-D convolution over (B, C, L): a sliding filter along the sequence."),
            ("conv2d", "Conv2d", "torch.nn.Conv2d", 2, False, 1,
             "2-D convolution over (B, C, H, W) images."),
            ("conv_transpose2d", "ConvTranspose2d", "torch.nn.ConvTranspose2d", 2, True, 0,
             "Transposed 2-D convolution: upsamples (B, C, H, W)."),
        ]
    ),
    BlockSpec(
        type="embedding", title="Embedding", category="Layers",
        doc="Looks up a learned vector for each integer token id.",
        inputs=X, input_dtypes={"x": ("long",)}, module="torch.nn.Embedding",
        params=(Int("num_embeddings", 100, "vocabulary size: ids run 0..n-1", min=1, max=1 << 22),
                Int("embedding_dim", 16, "size of each vector", min=1, max=1 << 16)),
        shape=lambda p, s: [TensorType((*s[0].shape, p["embedding_dim"]))],
        init=lambda p, s: dict(num_embeddings=p["num_embeddings"], embedding_dim=p["embedding_dim"]),
        count=lambda p, s: p["num_embeddings"] * p["embedding_dim"],
        id_inputs=(IdInput("x", count_param="num_embeddings"),),
    ),
    BlockSpec(
        type="multihead_attention", title="MultiheadAttention", category="Layers",
        doc="Scaled dot-product attention with several heads over (B, T, E) sequences.",
        inputs=(Port("q", "queries"), Port("k", "keys"), Port("v", "values")),
        params=(Int("num_heads", 2, "attention heads; must divide E", min=1, max=256),
                Float("dropout", 0.0, "dropout on attention weights", min=0.0, max=0.99),
                Bool("bias", True, "learn projection biases")),
        module="torch.nn.MultiheadAttention", shape=attention_rule, init=attention_kwargs,
        template="{self}({q}, {k}, {v}, need_weights=False)[0]", count=attention_count,
        macs=attention_macs,
    ),
]

CELLS = [
    BlockSpec(
        type="rnn_cell", title="RNNCell", category="Recurrent",
        doc="One Elman RNN step: h' = tanh(W x + U h + b).",
        inputs=(Port("x"), Port("h", "previous hidden state")), outputs=(Port("h"),),
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
        inputs=(Port("x"), Port("h", "previous hidden state")), outputs=(Port("h"),),
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
        inputs=(Port("x"), Port("h", "previous hidden state"), Port("c", "previous cell state")),
        outputs=(Port("h"), Port("c")),
        params=(Int("hidden_size", 32, "hidden state size", min=1, max=1 << 16),
                Bool("bias", True, "learn biases")),
        module="torch.nn.LSTMCell", shape=cell_rule(4, True), template="{self}({x}, ({h}, {c}))",
        init=lambda p, s: non_default(dict(input_size=s[0].shape[-1], hidden_size=p["hidden_size"]),
                                      dict(bias=p["bias"]), dict(bias=True)),
        count=cell_count(4), macs=cell_count(4),
    ),
]

POOLING = [
    *(
        BlockSpec(
            type=type_, title=title, category="Pooling", doc=doc, inputs=X, shape=pool_rule,
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
        inputs=X, params=(ShapeParam("output_size", (1, 1), "output (H, W)", max_dims=2),),
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
        inputs=X, params=(Float("momentum", 0.1, "running-statistics update rate", min=0.0, max=1.0),
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
        inputs=X, params=(Float("momentum", 0.1, "running-statistics update rate", min=0.0, max=1.0),
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
        inputs=X, params=(Int("dims", 1, "how many trailing dims to normalize over", min=1, max=7),
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
        doc="Zeroes random elements while training, scaling the rest by 1/(1-p).",
        inputs=X, params=(Float("p", 0.5, "probability of zeroing", min=0.0, max=0.99),),
        module="torch.nn.Dropout", shape=same, init=lambda p, s: dict(p=p["p"]),
    ),
]

ACTIVATIONS = [
    BlockSpec(type="relu", title="ReLU", category="Activations", doc="max(x, 0).",
              inputs=X, function="torch.relu", shape=same, dead_units=("y",)),
    BlockSpec(type="leaky_relu", title="LeakyReLU", category="Activations",
              doc="x where positive, slope·x elsewhere.", inputs=X, shape=same,
              params=(Float("negative_slope", 0.01, "slope for negative inputs", min=0.0, max=1.0),),
              function="torch.nn.functional.leaky_relu",
              args=lambda p, s: dict(negative_slope=p["negative_slope"])),
    BlockSpec(type="gelu", title="GELU", category="Activations",
              doc="Gaussian error linear unit, x·Φ(x).", inputs=X, shape=same,
              params=(Choice("approximate", "none", ("none", "tanh"), "exact or tanh approximation"),),
              function="torch.nn.functional.gelu",
              args=lambda p, s: {} if p["approximate"] == "none" else {"approximate": "tanh"}),
    BlockSpec(type="silu", title="SiLU", category="Activations", doc="x·sigmoid(x), a.k.a. swish.",
              inputs=X, function="torch.nn.functional.silu", shape=same),
    BlockSpec(type="tanh", title="Tanh", category="Activations", doc="Hyperbolic tangent, in (-1, 1).",
              inputs=X, function="torch.tanh", shape=same),
    BlockSpec(type="sigmoid", title="Sigmoid", category="Activations", doc="1 / (1 + e^-x), in (0, 1).",
              inputs=X, function="torch.sigmoid", shape=same),
    *(
        BlockSpec(type=type_, title=title, category="Activations", doc=doc, inputs=X,
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
              inputs=X, input_dtypes=ANY_DTYPE, function="torch.flatten", shape=flatten_rule,
              template=lambda p, s: "{x}.flatten(" + str(p["start_dim"]) + (
                  f", {p['end_dim']})" if p["end_dim"] != -1 else ")"),
              params=(Int("start_dim", 1, "first dim to merge (never the batch dim 0)", min=-8, max=7),
                      Int("end_dim", -1, "last dim to merge", min=-8, max=7)),
              args=lambda p, s: dict(start_dim=p["start_dim"], end_dim=p["end_dim"])),
    BlockSpec(type="reshape", title="Reshape", category="Shape",
              doc="Gives each sample a new shape with the same number of values; -1 infers one dim.",
              inputs=X, input_dtypes=ANY_DTYPE, shape=reshape_rule, template=reshape_template,
              params=(ShapeParam("shape", (-1,), "new per-sample shape", allow_negative_one=True),)),
    BlockSpec(type="permute", title="Permute", category="Shape",
              doc="Reorders the non-batch dims, e.g. [2, 1] swaps (B, T, F) into (B, F, T).",
              inputs=X, input_dtypes=ANY_DTYPE, shape=permute_rule,
              params=(ShapeParam("dims", (2, 1), "new order of dims 1..n"),),
              template=lambda p, s: "{x}.permute(0, " + ", ".join(map(str, p["dims"])) + ")"),
    BlockSpec(type="concat", title="Concat", category="Shape",
              doc="Joins tensors along one dim; the others must match.",
              input_dtypes=ANY_DTYPE, shape=concat_rule, function="torch.cat",
              params=(Int("inputs", 2, "how many tensors to join", min=2, max=8),
                      Int("dim", -1, "the dim to join along", min=-8, max=7)),
              ports=lambda n: (numbered_ports("x", _param(n, "inputs", 2)), (Port("y"),)),
              template=lambda p, s: "torch.cat([" + ", ".join(f"{{x{i}}}" for i in range(len(s)))
              + f"], dim={p['dim']})"),
    BlockSpec(type="split", title="Split", category="Shape",
              doc="Cuts a tensor into pieces of the given sizes along one dim.",
              inputs=X, input_dtypes=ANY_DTYPE, shape=split_rule,
              params=(ShapeParam("sections", (1, 1), "size of each piece", max_dims=8),
                      Int("dim", -1, "the dim to cut", min=-8, max=7)),
              # Without a sections param the default (1, 1) applies: two pieces, two ports.
              ports=lambda n: (X, numbered_ports("y", len(n.params.get("sections", (1, 1)) or ())
                                                 or 1)),
              # One section: take the only piece, not the 1-tuple torch.split returns.
              template=lambda p, s: f"torch.split({{x}}, {list(p['sections'])!r}, dim={p['dim']})"
              + ("[0]" if len(p["sections"]) == 1 else "")),
    BlockSpec(type="select", title="Select", category="Shape",
              doc="Picks one index along a dim, dropping that dim: x[:, i].",
              inputs=X, input_dtypes=ANY_DTYPE, shape=select_rule,
              params=(Int("dim", 1, "the dim to index", min=-8, max=7),
                      Int("index", 0, "the index (negative counts from the end)", min=-(1 << 20),
                          max=1 << 20)),
              template=lambda p, s: index_prefix(norm_dim(p["dim"], s[0].rank)) + f"{p['index']}]"),
    BlockSpec(type="slice", title="Slice", category="Shape",
              doc="Keeps a range along one dim: x[:, start:stop:step].",
              inputs=X, input_dtypes=ANY_DTYPE, shape=slice_rule,
              params=(Int("dim", 1, "the dim to slice", min=-8, max=7),
                      Int("start", 0, "first index kept", min=-(1 << 20), max=1 << 20),
                      Int("stop", 1, "index where the range ends (excluded)", min=-(1 << 20),
                          max=1 << 20),
                      Int("step", 1, "stride", min=1, max=1 << 20)),
              template=lambda p, s: index_prefix(norm_dim(p["dim"], s[0].rank))
              + f"{p['start']}:{p['stop']}" + (f":{p['step']}" if p["step"] != 1 else "") + "]"),
]

MATH = [
    *(
        BlockSpec(type=type_, title=title, category="Math", doc=doc, inputs=AB, shape=elementwise,
                  template=template)
        for type_, title, template, doc in [
            ("add", "Add", "{a} + {b}", "Elementwise a + b, with broadcasting."),
            ("sub", "Sub", "{a} - {b}", "Elementwise a - b, with broadcasting."),
            ("mul", "Mul", "{a} * {b}", "Elementwise a · b, with broadcasting."),
            ("div", "Div", "{a} / {b}", "Elementwise a / b, with broadcasting."),
        ]
    ),
    BlockSpec(type="matmul", title="MatMul", category="Math", doc="Matrix product a @ b.",
              inputs=AB, shape=matmul_rule, template="{a} @ {b}",
              macs=lambda p, s: numel(matmul_rule(p, s)[0].shape) * numel(s[0].shape[-1:])),
    *(
        BlockSpec(type=type_, title=title, category="Math", doc=doc, inputs=X, shape=reduce_rule,
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
              params=(Float("ord", 2.0, "the p of the p-norm", min=0.0, max=1e3),
                      Int("dim", -1, "the dim to reduce", min=-8, max=7),
                      Bool("keepdim", False, "keep the reduced dim with size 1")),
              args=lambda p, s: dict(ord=p["ord"], dim=p["dim"], keepdim=p["keepdim"])),
    BlockSpec(type="expression", title="Expression", category="Math",
              doc="Elementwise formula over inputs a..d, e.g. a * torch.sigmoid(b) + 0.5.",
              shape=expression_rule, ports=expression_ports, template=expression_template,
              params=(String("expr", "a + b", "the formula; torch.<fn> for functions", max_len=500),
                      Int("inputs", 2, "how many inputs (a, b, c, d)", min=1, max=4))),
]

LOSSES = [
    *(
        BlockSpec(type=type_, title=title, category="Losses", doc=doc, loss=True,
                  inputs=(Port("input", "prediction"), Port("target")),
                  input_dtypes={"input": ("float",), "target": (target,)},
                  shape=loss_rule(target), function=function,
                  # Class ids run 0..C-1 for logits (B, C).
                  id_inputs=(IdInput("target", count_dim=("input", 1)),) if target == "long" else (),
                  params=(Choice("reduction", "mean", ("mean", "sum", "none"),
                                 "how to combine per-element losses"),),
                  args=lambda p, s: {} if p["reduction"] == "mean" else {"reduction": p["reduction"]})
        for type_, title, function, target, doc in [
            ("cross_entropy", "CrossEntropy", "torch.nn.functional.cross_entropy", "long",
             "Softmax cross-entropy between logits (B, C) and class ids (B,)."),
            ("mse", "MSE", "torch.nn.functional.mse_loss", "float", "Mean squared error."),
            ("bce_with_logits", "BCEWithLogits", "torch.nn.functional.binary_cross_entropy_with_logits",
             "float", "Binary cross-entropy on logits, computed stably."),
            ("l1", "L1", "torch.nn.functional.l1_loss", "float", "Mean absolute error."),
        ]
    ),
]

CONTROL = [
    BlockSpec(
        type="loop", title="Loop", category="Control", kind="loop", regions=("body",),
        doc="Runs its body repeatedly: N times, once per sequence step, or until a halt score says stop.",
        shape=structural, ports=loop_ports, input_dtypes=ANY_DTYPE, skips_weights=loop_skips_weights,
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
        skips_weights=branch_skips_weights,
        params=(Choice("mode", "per_sample", tuple(BRANCH_MODES), control.choices_doc(BRANCH_MODES)),
                Float("threshold", 0.0, "the condition is true above this", min=-1e6, max=1e6)),
    ),
    BlockSpec(
        type="body_input", title="Body input", category="Control", kind="body_input",
        doc="An input of a loop or branch body; its id names the matching port outside.",
        outputs=(Port("y"),), shape=structural,
        params=(Choice("role", "context", tuple(INPUT_ROLES), control.choices_doc(INPUT_ROLES)),
                ShapeParam("shape", (16,), "state: per-sample shape used when the port outside is "
                           "not connected (the state then starts at zeros)")),
    ),
    BlockSpec(
        type="body_output", title="Body output", category="Control", kind="body_output",
        doc="A result of a loop or branch body; its id names the matching port outside.",
        inputs=X, outputs=(), shape=structural, input_dtypes=ANY_DTYPE,
        params=(Choice("role", "output", tuple(OUTPUT_ROLES), control.choices_doc(OUTPUT_ROLES)),
                String("state", "", "state: the id of the body input this updates", max_len=64)),
    ),
]

CATEGORIES = ("Data", "Layers", "Recurrent", "Pooling", "Normalization", "Activations", "Shape",
              "Math", "Losses", "Control")

BLOCKS: tuple[BlockSpec, ...] = (*IO, *LAYERS, *CELLS, *POOLING, *NORMALIZATION, *ACTIVATIONS,
                                 *SHAPING, *MATH, *LOSSES, *CONTROL)
REGISTRY: dict[str, BlockSpec] = {spec.type: spec for spec in BLOCKS}
LEGACY_TYPES: dict[str, str] = {old: spec.type for spec in BLOCKS for old in spec.legacy_types}


def lookup(type_: str) -> BlockSpec | None:
    """The spec for a block type, following renames of older files."""
    return REGISTRY.get(LEGACY_TYPES.get(type_, type_))
