"""How the PyTorch importer recognises each block in a traced model: one row per block and
torch form, pure data (torch is named by strings; `engine.runtime.importer` does the
matching, and reads the values).

A row says which torch targets become the block: `module:torch.nn.Linear` (a leaf module
called by the model), `function:torch.relu` (a function call, `operator.add` for `a + b`)
or `method:relu` (`x.relu()`). Then where each block param comes from and how it is read
(`HOW`): a module's attribute, or a function's argument by name. `fixed` lists what the
block cannot express: a module attribute or argument that must hold this value, or the
import is refused (a Conv2d with `padding_mode="reflect"` never silently becomes one with
zeros). `inputs` are the leading positional arguments that are wired tensors (the block's
input ports; `*x` is a list of tensors wired to x0, x1, … with param `inputs` its length), and `args` the remaining arguments in torch's order, with their defaults.
`returns` is for an op that returns a tuple: the block's output port for each item that
the model may use (None: an item dprog lays out differently, refused when used).

Adding a recognition is one row here, next to the block's spec in `library.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# How a param's value is read from the attribute or argument (the runtime has one function
# per row of this table).
HOW: dict[str, str] = {
    "value": "as it is (a number or bool)",
    "square": "an int, or a pair of equal ints (a square kernel); anything else is refused",
    "present": "True when the attribute is not None (a bias)",
    "pair": "a pair of ints, an int n meaning (n, n)",
    "rank": "how many dims: the length of a shape (LayerNorm's normalized_shape)",
    "int": "one int (a reduction over one dim; None or several dims are refused)",
    "or0": "an int, None meaning 0 (a pool's stride: 0 means the window size)",
    "scale": "a number, None meaning 0.0 (attention's scale: 0 means 1/sqrt(E))",
}


@dataclass(frozen=True)
class Recognise:
    block: str
    targets: tuple[str, ...]
    params: tuple[tuple[str, str, str], ...] = ()   # (block param, attribute or argument, HOW)
    fixed: tuple[tuple[str, Any], ...] = ()         # (attribute or argument, required value)
    inputs: tuple[str, ...] = ("x",)                # functions: wired positional args, in order
    args: tuple[tuple[str, Any], ...] = ()          # the other args, with defaults
    returns: tuple[str | None, ...] = ()            # a tuple's items → output ports
    # (mask argument, is_causal argument, block param): a causal mask buffer passed with
    # is_causal=True is the block's param turned on (the block makes that mask itself)
    causal: tuple[str, str, str] = ()

    def __post_init__(self) -> None:
        for _, _, how in self.params:
            if how not in HOW:
                raise ValueError(f"recognise {self.block}: unknown HOW {how!r}")


_CONV = (("out_channels", "out_channels", "value"), ("kernel_size", "kernel_size", "square"),
         ("stride", "stride", "square"), ("padding", "padding", "square"),
         ("dilation", "dilation", "square"), ("groups", "groups", "value"),
         ("bias", "bias", "present"))
_BN = (("momentum", "momentum", "value"), ("affine", "affine", "value"))
_BN_FIXED = (("eps", 1e-5), ("track_running_stats", True))
_POOL_FIXED = (("dilation", 1), ("ceil_mode", False), ("return_indices", False))
_AVG_FIXED = (("ceil_mode", False), ("count_include_pad", True), ("divisor_override", None))
_POOL = (("kernel_size", "kernel_size", "square"), ("stride", "stride", "square"),
         ("padding", "padding", "square"))
_FPOOL = (("kernel_size", "kernel_size", "square"), ("stride", "stride", "or0"),
          ("padding", "padding", "square"))
_FPOOL_ARGS = (("kernel_size", None), ("stride", None), ("padding", 0))
_AB = ("a", "b")


# torch's loss functions' arguments after (input, target), in order, with their defaults
_REGRESSION_ARGS = (("size_average", None), ("reduce", None), ("reduction", "mean"),
                    ("weight", None))
_BCE_ARGS = (("weight", None), ("size_average", None), ("reduce", None), ("reduction", "mean"))

RECOGNISE: tuple[Recognise, ...] = (
    Recognise("linear", ("module:torch.nn.Linear",),
              (("out_features", "out_features", "value"), ("bias", "bias", "present"))),
    Recognise("conv1d", ("module:torch.nn.Conv1d",), _CONV, (("padding_mode", "zeros"),)),
    Recognise("conv2d", ("module:torch.nn.Conv2d",), _CONV, (("padding_mode", "zeros"),)),
    Recognise("conv_transpose2d", ("module:torch.nn.ConvTranspose2d",),
              (*_CONV, ("output_padding", "output_padding", "square")), (("padding_mode", "zeros"),)),
    *(Recognise(block, (f"module:torch.nn.{cls}",),
                (("hidden_size", "hidden_size", "value"), ("num_layers", "num_layers", "value"),
                 ("bidirectional", "bidirectional", "value"), ("bias", "bias", "value"),
                 ("dropout", "dropout", "value")),
                (("batch_first", True), ("proj_size", 0)), returns=("y", None))
      for block, cls in (("gru", "GRU"), ("lstm", "LSTM"))),
    Recognise("multihead_attention", ("module:torch.nn.MultiheadAttention",),
              (("num_heads", "num_heads", "value"), ("dropout", "dropout", "value"),
               ("bias", "in_proj_bias", "present")),
              (("batch_first", True), ("bias_k", None), ("add_zero_attn", False),
               ("key_padding_mask", None), ("attn_mask", None), ("is_causal", False)),
              inputs=("q", "k", "v"),
              args=(("key_padding_mask", None), ("need_weights", True), ("attn_mask", None),
                    ("average_attn_weights", True), ("is_causal", False)),
              returns=("y", None), causal=("attn_mask", "is_causal", "causal")),
    Recognise("embedding", ("module:torch.nn.Embedding",),
              (("num_embeddings", "num_embeddings", "value"), ("embedding_dim", "embedding_dim", "value")),
              (("padding_idx", None), ("max_norm", None), ("scale_grad_by_freq", False),
               ("sparse", False))),
    Recognise("batch_norm1d", ("module:torch.nn.BatchNorm1d",), _BN, _BN_FIXED),
    Recognise("batch_norm2d", ("module:torch.nn.BatchNorm2d",), _BN, _BN_FIXED),
    Recognise("layer_norm", ("module:torch.nn.LayerNorm",),
              (("dims", "normalized_shape", "rank"), ("affine", "elementwise_affine", "value")),
              (("eps", 1e-5),)),
    Recognise("dropout", ("module:torch.nn.Dropout",), (("p", "p", "value"),)),
    Recognise("dropout", ("function:torch.nn.functional.dropout",), (("p", "p", "value"),),
              (("training", False),), args=(("p", 0.5), ("training", True), ("inplace", False))),
    Recognise("max_pool2d", ("module:torch.nn.MaxPool2d",), _POOL, _POOL_FIXED),
    Recognise("max_pool2d", ("function:torch.nn.functional.max_pool2d", "function:torch.max_pool2d"),
              _FPOOL, _POOL_FIXED, args=(*_FPOOL_ARGS, ("dilation", 1), ("ceil_mode", False),
                                         ("return_indices", False))),
    Recognise("avg_pool2d", ("module:torch.nn.AvgPool2d",), _POOL, _AVG_FIXED),
    Recognise("avg_pool2d", ("function:torch.nn.functional.avg_pool2d",), _FPOOL, _AVG_FIXED,
              args=(*_FPOOL_ARGS, ("ceil_mode", False), ("count_include_pad", True),
                    ("divisor_override", None))),
    Recognise("adaptive_avg_pool2d", ("module:torch.nn.AdaptiveAvgPool2d",),
              (("output_size", "output_size", "pair"),)),
    Recognise("adaptive_avg_pool2d", ("function:torch.nn.functional.adaptive_avg_pool2d",),
              (("output_size", "output_size", "pair"),), args=(("output_size", None),)),
    Recognise("relu", ("module:torch.nn.ReLU", "function:torch.relu",
                       "function:torch.nn.functional.relu", "method:relu"),
              args=(("inplace", False),)),
    Recognise("relu6", ("module:torch.nn.ReLU6", "function:torch.nn.functional.relu6"),
              args=(("inplace", False),)),
    Recognise("leaky_relu", ("module:torch.nn.LeakyReLU", "function:torch.nn.functional.leaky_relu"),
              (("negative_slope", "negative_slope", "value"),),
              args=(("negative_slope", 0.01), ("inplace", False))),
    Recognise("gelu", ("module:torch.nn.GELU", "function:torch.nn.functional.gelu"),
              (("approximate", "approximate", "value"),), args=(("approximate", "none"),)),
    Recognise("silu", ("module:torch.nn.SiLU", "function:torch.nn.functional.silu"),
              args=(("inplace", False),)),
    Recognise("tanh", ("module:torch.nn.Tanh", "function:torch.tanh", "method:tanh")),
    Recognise("sigmoid", ("module:torch.nn.Sigmoid", "function:torch.sigmoid", "method:sigmoid")),
    *(Recognise(block, (f"module:torch.nn.{module}", f"function:torch.{block}",
                        f"function:torch.nn.functional.{block}", f"method:{block}"),
                (("dim", "dim", "value"),), (("dtype", None),),
                # F.softmax(x, dim, _stacklevel=3, dtype=None): fx records every keyword
                args=(("dim", None), ("_stacklevel", 3), ("dtype", None)))
      for block, module in (("softmax", "Softmax"), ("log_softmax", "LogSoftmax"))),
    Recognise("flatten", ("module:torch.nn.Flatten",),
              (("start_dim", "start_dim", "value"), ("end_dim", "end_dim", "value"))),
    Recognise("flatten", ("function:torch.flatten", "method:flatten"),
              (("start_dim", "start_dim", "value"), ("end_dim", "end_dim", "value")),
              args=(("start_dim", 0), ("end_dim", -1))),
    Recognise("concat", ("function:torch.cat", "function:torch.concat"), (("dim", "dim", "value"),),
              inputs=("*x",), args=(("dim", 0),)),
    *(Recognise(block, (f"function:torch.{name}", f"method:{name}"),
                (("dim", "dim", "int"), ("keepdim", "keepdim", "value")),
                args=(("dim", None), ("keepdim", False)))
      for block, name in (("mean", "mean"), ("sum", "sum"), ("max", "amax"))),
    Recognise("scaled_dot_product_attention",
              ("function:torch.nn.functional.scaled_dot_product_attention",),
              (("causal", "is_causal", "value"), ("dropout", "dropout_p", "value"),
               ("scale", "scale", "scale")),
              (("attn_mask", None), ("enable_gqa", False)), inputs=("q", "k", "v"),
              args=(("attn_mask", None), ("dropout_p", 0.0), ("is_causal", False),
                    ("scale", None), ("enable_gqa", False))),
    Recognise("cross_entropy", ("function:torch.nn.functional.cross_entropy",
                                "module:torch.nn.CrossEntropyLoss"),
              (("reduction", "reduction", "value"),),
              (("weight", None), ("size_average", None), ("reduce", None), ("ignore_index", -100),
               ("label_smoothing", 0.0)),
              inputs=("input", "target"),
              args=(("weight", None), ("size_average", None), ("ignore_index", -100),
                    ("reduce", None), ("reduction", "mean"), ("label_smoothing", 0.0))),
    *(Recognise(block, (f"function:torch.nn.functional.{function}", f"module:torch.nn.{module}"),
                (("reduction", "reduction", "value"),),
                (("weight", None), ("size_average", None), ("reduce", None), ("pos_weight", None)),
                inputs=("input", "target"), args=args)
      for block, function, module, args in (
          ("mse", "mse_loss", "MSELoss", _REGRESSION_ARGS),
          ("l1", "l1_loss", "L1Loss", _REGRESSION_ARGS),
          ("bce", "binary_cross_entropy", "BCELoss", _BCE_ARGS),
          ("bce_with_logits", "binary_cross_entropy_with_logits", "BCEWithLogitsLoss",
           (*_BCE_ARGS, ("pos_weight", None))))),
    Recognise("add", ("function:operator.add", "function:operator.iadd", "function:torch.add", "method:add"), inputs=_AB),
    Recognise("sub", ("function:operator.sub", "function:torch.sub", "method:sub"), inputs=_AB),
    Recognise("mul", ("function:operator.mul", "function:operator.imul", "function:torch.mul", "method:mul"), inputs=_AB),
    Recognise("div", ("function:operator.truediv", "function:torch.div", "method:div"), inputs=_AB),
    Recognise("matmul", ("function:operator.matmul", "function:torch.matmul", "method:matmul"),
              inputs=_AB),
)


# What no row takes - an op with a constant operand (`x + 1`, `side > 0.0`), or an
# elementwise torch function with no block of its own (`torch.cos`) - becomes an Expression
# block (nodes/expression.py): target → its formula over {0}, {1}, … (the op's arguments: a
# wired tensor's name a, b, …, or a number written out). `torch.<fn>(…)` and `x.<fn>(…)` of
# the Expression's own functions are written as `torch.<fn>(…)` with their keywords.
_OPERATORS = {"add": "+", "iadd": "+", "sub": "-", "isub": "-", "mul": "*", "imul": "*",
              "truediv": "/", "itruediv": "/", "pow": "**", "mod": "%", "gt": ">", "lt": "<",
              "ge": ">=", "le": "<=", "eq": "==", "ne": "!=", "and_": "&", "or_": "|"}
_ARITHMETIC = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}
EXPRESSIONS: dict[str, str] = {
    **{f"function:operator.{name}": f"{{0}} {op} {{1}}" for name, op in _OPERATORS.items()},
    "function:operator.neg": "-{0}",
    "function:operator.invert": "~{0}",
    **{f"function:torch.{name}": f"{{0}} {op} {{1}}" for name, op in _ARITHMETIC.items()},
    **{f"method:{name}": f"{{0}} {op} {{1}}" for name, op in _ARITHMETIC.items()},
    "method:neg": "-{0}",
}
