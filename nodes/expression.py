"""The Expression block's language: elementwise formulas over named inputs, with their dtypes.

`torch.where(a > b, a * torch.sigmoid(c), 0.0)` is parsed with `ast` and checked against an
allow-list: numbers, the input names (`a`, `b`, ... `z`, as many as the block has inputs),
`+ - * / ** %`, unary minus, the comparisons `< <= > >= == !=`, `&`, `|` and `~` on
comparisons' results, and calls of a fixed set of elementwise `torch.*` functions
(`FUNCTIONS`). Anything else - attribute access beyond `torch.<fn>`, subscripts, strings,
lambdas, comprehensions, chained comparisons, `x if c else y`, names like `__import__` - is
refused with a message that names the offending part. Code is re-emitted from the checked tree
with `ast.unparse`, so the file's text itself never reaches the generated source.

`result_dtype` works out what the formula gives (float, long or bool) from its inputs' dtypes
the way torch promotes them, refusing what torch would refuse when the model runs: arithmetic
on bool masks, `%` and `**` on integers (a zero divisor or a negative power raises there),
float-only functions of masks.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping

MAX_LENGTH = 500
MAX_NODES = 200
MAX_CONSTANT = 1e12
NAMES = "abcdefghijklmnopqrstuvwxyz"   # the inputs' names, in port order
MAX_INPUTS = len(NAMES)


def input_names(count: int) -> tuple[str, ...]:
    """The names of an Expression's first `count` inputs: a, b, c, ..."""
    return tuple(NAMES[:max(0, min(count, MAX_INPUTS))])


# What each function gives: "float" (integers promote to float, as torch.exp does), "same"
# (its argument's dtype), "promote" (its arguments' dtypes promoted), "where" (the promotion
# of its second and third arguments; the first must be a bool mask).
FUNCTIONS: dict[str, tuple[int, tuple[str, ...], str]] = {
    # name: (number of arguments, allowed keyword arguments, result)
    "sigmoid": (1, (), "float"), "tanh": (1, (), "float"), "relu": (1, (), "same"),
    "exp": (1, (), "float"), "log": (1, (), "float"), "log1p": (1, (), "float"),
    "expm1": (1, (), "float"), "sqrt": (1, (), "float"), "rsqrt": (1, (), "float"),
    "abs": (1, (), "same"), "sin": (1, (), "float"), "cos": (1, (), "float"),
    "sign": (1, (), "same"), "square": (1, (), "same"), "erf": (1, (), "float"),
    "clamp": (1, ("min", "max"), "same"), "minimum": (2, (), "promote"),
    "maximum": (2, (), "promote"), "min": (2, (), "promote"), "max": (2, (), "promote"),
    "where": (3, (), "where"),
}
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod)
_UNARYOPS = (ast.USub, ast.UAdd)
_COMPARISONS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_LOGIC = (ast.BitAnd, ast.BitOr)
_RANK = {"bool": 0, "long": 1, "float": 2}


class ExpressionError(ValueError):
    pass


def parse(text: str, names: tuple[str, ...]) -> ast.Expression:
    """Parse and check `text`; raise ExpressionError saying what is not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"is not a valid expression ({e.msg})") from None
    except (ValueError, MemoryError, RecursionError):
        raise ExpressionError("is not a valid expression") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ExpressionError(f"has more than {MAX_NODES} parts")
    _check(tree.body, names)
    return tree


_FOLD = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
         ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b, ast.Mod: lambda a, b: a % b}


def _fold(node: ast.BinOp, a: float, b: float) -> float:
    """The value of an all-constant operation, worked out in floats.

    Python evaluates such parts itself when the model runs, on exact ints: `9**9**9**9` would
    never finish and `1/0` would raise there. Floats overflow quickly instead, so a part that
    is too big, divides by zero or turns complex is refused here.
    """
    try:
        value = _FOLD[type(node.op)](float(a), float(b))
    except (ArithmeticError, ValueError):
        value = math.inf
    if not isinstance(value, float) or not math.isfinite(value) or abs(value) > MAX_CONSTANT:
        raise ExpressionError(f"has a constant part {ast.unparse(node)[:40]} that does not "
                              f"evaluate to a number within ±{MAX_CONSTANT:g}")
    return value


def _check(node: ast.AST, names: tuple[str, ...]) -> float | None:
    """Check `node`; return its value when it is made of constants only, else None."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
        left, right = _check(node.left, names), _check(node.right, names)
        return None if left is None or right is None else _fold(node, left, right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, _LOGIC):
        for side in (node.left, node.right):
            if _check(side, names) is not None:
                raise ExpressionError("combines a constant with & or |; they join masks")
        return None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARYOPS):
        value = _check(node.operand, names)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        if _check(node.operand, names) is not None:
            raise ExpressionError("uses ~ on a constant; it inverts a mask")
        return None
    if isinstance(node, ast.Compare):
        return _check_comparison(node, names)
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ExpressionError(f"uses {type(v).__name__} constant {v!r}; only numbers are allowed")
        if not math.isfinite(v) or abs(v) > MAX_CONSTANT:
            raise ExpressionError(f"uses constant {v!r} outside ±{MAX_CONSTANT:g}")
        return v
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ExpressionError(f"uses unknown name {node.id!r}; inputs are {', '.join(names)}")
        return None
    if isinstance(node, ast.Call):
        _check_call(node, names)
        return None
    raise ExpressionError(f"uses {type(node).__name__}, which is not allowed")


def _check_comparison(node: ast.Compare, names: tuple[str, ...]) -> None:
    # `a < b < c` means `a < b and b < c` in Python, which tensors refuse to evaluate.
    if len(node.ops) != 1:
        raise ExpressionError("chains comparisons; join them with & instead: (a < b) & (b < c)")
    if not isinstance(node.ops[0], _COMPARISONS):
        raise ExpressionError(f"uses {type(node.ops[0]).__name__}, which is not allowed")
    values = [_check(side, names) for side in (node.left, node.comparators[0])]
    if None not in values:
        raise ExpressionError("compares constants only; a comparison needs an input")
    return None


def _check_call(node: ast.Call, names: tuple[str, ...]) -> None:
    fn = node.func
    if not (isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name)
            and fn.value.id == "torch" and fn.attr in FUNCTIONS):
        raise ExpressionError("calls something other than torch." + "/".join(sorted(FUNCTIONS)))
    arity, keywords, result = FUNCTIONS[fn.attr]
    if len(node.args) != arity:
        raise ExpressionError(f"calls torch.{fn.attr} with {len(node.args)} arguments, not {arity}")
    for i, arg in enumerate(node.args):
        if isinstance(arg, ast.Starred):
            raise ExpressionError("uses *arguments")
        # torch.<fn> takes tensors only: torch.maximum(a, 0) fails when the model runs.
        # torch.where takes numbers for its two values, not for its condition.
        if _check(arg, names) is not None and not (result == "where" and i > 0):
            raise ExpressionError(f"passes a constant to torch.{fn.attr}, which needs an input "
                                  "in " + ("its condition" if result == "where" else "each argument"))
    seen = set()
    for kw in node.keywords:
        if kw.arg not in keywords:
            raise ExpressionError(f"passes {kw.arg or '**'}= to torch.{fn.attr}")
        if kw.arg in seen:   # ast.parse accepts this; compiling the generated code would not
            raise ExpressionError(f"passes {kw.arg}= to torch.{fn.attr} twice")
        seen.add(kw.arg)
        if not isinstance(kw.value, ast.Constant | ast.UnaryOp):
            raise ExpressionError(f"passes a non-constant {kw.arg}= to torch.{fn.attr}")
        _check(kw.value, ())
    # torch.clamp(a) with neither bound raises when the model runs, not when it is built.
    if keywords and not seen:
        raise ExpressionError(f"calls torch.{fn.attr} without {' or '.join(keywords)}=")


# --- dtypes ------------------------------------------------------------------------------------


def result_dtype(tree: ast.Expression, dtypes: Mapping[str, str]) -> str:
    """The dtype ("float", "long" or "bool") the checked expression gives when its inputs have
    `dtypes` (by name); ExpressionError for what torch would refuse when the model runs."""
    return _dtype(tree.body, dtypes)


def _constant_dtype(value: float) -> str:
    return "long" if isinstance(value, int) else "float"


def _promote(*dtypes: str) -> str:
    return max(dtypes, key=_RANK.__getitem__)


def _dtype(node: ast.AST, dtypes: Mapping[str, str]) -> str:
    """The dtype of one checked part; constants count as weak numbers (a long input plus 1
    stays long, plus 0.5 becomes float), as torch treats Python numbers."""
    if isinstance(node, ast.Constant):
        return _constant_dtype(node.value)
    if isinstance(node, ast.Name):
        return dtypes[node.id]
    if isinstance(node, ast.UnaryOp):
        inner = _dtype(node.operand, dtypes)
        if isinstance(node.op, ast.Invert):
            return _need_masks(node, [inner], "~")
        if inner == "bool":
            raise ExpressionError("negates a mask; use ~ to invert it")
        return inner
    if isinstance(node, ast.BinOp):
        sides = [_dtype(node.left, dtypes), _dtype(node.right, dtypes)]
        if isinstance(node.op, _LOGIC):
            return _need_masks(node, sides, "&" if isinstance(node.op, ast.BitAnd) else "|")
        return _arithmetic(node, sides)
    if isinstance(node, ast.Compare):
        sides = [_dtype(node.left, dtypes), _dtype(node.comparators[0], dtypes)]
        if "bool" in sides and not isinstance(node.ops[0], ast.Eq | ast.NotEq):
            raise ExpressionError("orders masks with < or >; compare numbers, or masks with == or !=")
        return "bool"
    return _call_dtype(node, dtypes)


def _need_masks(node: ast.AST, sides: list[str], op: str) -> str:
    if any(s != "bool" for s in sides):
        raise ExpressionError(f"uses {op} on numbers in {ast.unparse(node)[:40]}; {op} joins "
                              "masks, the results of comparisons")
    return "bool"


def _arithmetic(node: ast.BinOp, sides: list[str]) -> str:
    if "bool" in sides:
        raise ExpressionError(f"does arithmetic on a mask in {ast.unparse(node)[:40]}; turn it "
                              "into numbers with torch.where(mask, 1.0, 0.0)")
    if isinstance(node.op, ast.Div):
        return "float"
    result = _promote(*sides)
    # An integer % 0 or ** -1 raises when the model runs; with floats they give inf or nan.
    if result == "long" and isinstance(node.op, ast.Mod | ast.Pow):
        raise ExpressionError(f"uses {'%' if isinstance(node.op, ast.Mod) else '**'} on integers "
                              f"in {ast.unparse(node)[:40]}; make one side float (a * 1.0)")
    return result


def _call_dtype(node: ast.Call, dtypes: Mapping[str, str]) -> str:
    name = node.func.attr
    _, _, result = FUNCTIONS[name]
    args = [_dtype(a, dtypes) for a in node.args]
    if result == "where":
        if args[0] != "bool":
            raise ExpressionError("calls torch.where with a condition that is not a mask; "
                                  "compare first: torch.where(a > 0, a, b)")
        values = args[1:]
    else:
        values = args
    if "bool" in values:
        raise ExpressionError(f"passes a mask to torch.{name}; turn it into numbers with "
                              "torch.where(mask, 1.0, 0.0)")
    if result == "float":
        return "float"
    if result == "same" and node.keywords:   # clamp's bounds promote like a constant operand
        return _promote(args[0], *(_constant_dtype(_bound(k.value)) for k in node.keywords))
    return _promote(*values)


def _bound(node: ast.AST) -> float:
    """The value of a checked constant keyword (a number, or a negated one)."""
    if isinstance(node, ast.UnaryOp):
        value = _bound(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    return node.value


# --- names and re-emission ---------------------------------------------------------------------


def used_names(tree: ast.Expression) -> list[str]:
    """Input names the expression reads, in first-use order."""
    seen: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id != "torch" and node.id not in seen:
            seen.append(node.id)
    return seen


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: Mapping[str, str]):
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(self.mapping.get(node.id, node.id), node.ctx), node)


def render(text: str, names: tuple[str, ...], variables: Mapping[str, str]) -> str:
    """Re-emit the checked expression with input names replaced by generated variables."""
    tree = parse(text, names)
    return ast.unparse(_Rename(variables).visit(tree))
