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


def _check(node: ast.AST, names: tuple[str, ...]) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
        _check(node.left, names)
        _check(node.right, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARYOPS):
        _check(node.operand, names)
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ExpressionError(f"uses {type(v).__name__} constant {v!r}; only numbers are allowed")
        if not math.isfinite(v) or abs(v) > MAX_CONSTANT:
            raise ExpressionError(f"uses constant {v!r} outside ±{MAX_CONSTANT:g}")
    elif isinstance(node, ast.Name):
        if node.id not in names:
            raise ExpressionError(f"uses unknown name {node.id!r}; inputs are {', '.join(names)}")
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
            _check(arg, names)
        for kw in node.keywords:
            if kw.arg not in keywords:
                raise ExpressionError(f"passes {kw.arg or '**'}= to torch.{fn.attr}")
            if not isinstance(kw.value, ast.Constant | ast.UnaryOp):
                raise ExpressionError(f"passes a non-constant {kw.arg}= to torch.{fn.attr}")
            _check(kw.value, ())
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
