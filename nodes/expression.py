"""The Expression block's language: elementwise arithmetic and torch functions over named inputs.

`a * torch.sigmoid(b) + 0.5` is parsed with `ast` and checked against an allow-list:
numbers, the input names, `+ - * / ** %`, unary minus, and calls of a fixed set of
elementwise `torch.*` functions. Anything else - attribute access beyond `torch.<fn>`,
subscripts, strings, lambdas, comprehensions, names like `__import__` - is refused with
a message that names the offending part. Code is re-emitted from the checked tree with
`ast.unparse`, so the file's text itself never reaches the generated source.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping

MAX_LENGTH = 500
MAX_NODES = 200
MAX_CONSTANT = 1e12

# Elementwise functions only, so the result's shape is the broadcast of the inputs'.
FUNCTIONS: dict[str, tuple[int, tuple[str, ...]]] = {
    # name: (number of tensor arguments, allowed keyword arguments)
    "sigmoid": (1, ()), "tanh": (1, ()), "relu": (1, ()), "exp": (1, ()),
    "log": (1, ()), "log1p": (1, ()), "expm1": (1, ()), "sqrt": (1, ()),
    "rsqrt": (1, ()), "abs": (1, ()), "sin": (1, ()), "cos": (1, ()),
    "sign": (1, ()), "square": (1, ()), "erf": (1, ()),
    "clamp": (1, ("min", "max")), "minimum": (2, ()), "maximum": (2, ()),
}
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod)
_UNARYOPS = (ast.USub, ast.UAdd)


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
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARYOPS):
        value = _check(node.operand, names)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ExpressionError(f"uses {type(v).__name__} constant {v!r}; only numbers are allowed")
        if not math.isfinite(v) or abs(v) > MAX_CONSTANT:
            raise ExpressionError(f"uses constant {v!r} outside ±{MAX_CONSTANT:g}")
        return v
    elif isinstance(node, ast.Name):
        if node.id not in names:
            raise ExpressionError(f"uses unknown name {node.id!r}; inputs are {', '.join(names)}")
        return None
    elif isinstance(node, ast.Call):
        fn = node.func
        if not (isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name)
                and fn.value.id == "torch" and fn.attr in FUNCTIONS):
            raise ExpressionError("calls something other than torch." + "/".join(sorted(FUNCTIONS)))
        arity, keywords = FUNCTIONS[fn.attr]
        if len(node.args) != arity:
            raise ExpressionError(f"calls torch.{fn.attr} with {len(node.args)} arguments, not {arity}")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ExpressionError("uses *arguments")
            # torch.<fn> takes tensors only: torch.maximum(a, 0) fails when the model runs.
            if _check(arg, names) is not None:
                raise ExpressionError(f"passes a constant to torch.{fn.attr}, which needs an input "
                                      "in each argument")
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
        return None
    else:
        raise ExpressionError(f"uses {type(node).__name__}, which is not allowed")


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
