"""The small safe pieces of generated Python: identifiers, literals and comment text.

Everything a graph file supplies reaches the generated source only through these functions:
names are reduced to legal, unique `[a-z0-9_]` identifiers that shadow no builtin, keyword or
`nn.Module` attribute; values become the `repr` of a plain literal; text for comments and
docstrings is reduced to harmless printable characters.

Pure: the standard library only.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import re
from typing import Any

# Attributes every nn.Module already has; a submodule must never shadow one.
# (tests/test_engine_blocks.py::test_module_attributes_cover_nn_module checks this list
# against torch's nn.Module.)
MODULE_ATTRIBUTES = frozenset(["T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu", "zero_grad"])
# nn.ModuleDict's own, on top: a key equal to one is refused by its add_module
MODULE_DICT_ATTRIBUTES = MODULE_ATTRIBUTES | {"clear", "items", "keys", "pop", "update", "values"}
RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | {
    "torch", "nn", "F", "self", "tap", "i",
    # pycodestyle's ambiguous names (E741/E742): the exported file must pass ruff.
    "l", "O", "I"} | MODULE_ATTRIBUTES


class Namer:
    """Legal, unique, non-shadowing identifiers from arbitrary text."""

    def __init__(self, taken: set[str] | None = None):
        self.taken = set(RESERVED) | (taken or set())

    def __call__(self, text: str, fallback: str = "v") -> str:
        base = _base_name(str(text), fallback)
        name, i = base, 2
        while name in self.taken:
            name = f"{base}_{i}"
            i += 1
        self.taken.add(name)
        return name

    def would_give(self, calls: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
        """The names these calls would return, one after another, without taking them."""
        extra: set[str] = set()
        out = []
        for text, fallback in calls:
            base = _base_name(str(text), fallback)
            name, i = base, 2
            while name in self.taken or name in extra:
                name = f"{base}_{i}"
                i += 1
            extra.add(name)
            out.append(name)
        return tuple(out)


@functools.lru_cache(maxsize=8192)   # a pure function of its text, asked once per node
def _base_name(text: str, fallback: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40].rstrip("_")
    base = base or fallback
    if base[0].isdigit():
        base = f"{fallback}_{base}"
    return base


def snake_case(name: str) -> str:
    """`ResNet18` → `res_net18`: a class's name as a graph or function name."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower().strip("_")


def class_name(text: str, taken: set[str]) -> str:
    """A CamelCase class name from `text`, not in `taken` (which it joins)."""
    words = re.findall(r"[A-Za-z0-9]+", str(text))
    name = "".join(w[:1].upper() + w[1:] for w in words)[:60] or "Model"
    if name[0].isdigit():
        name = "Model" + name
    base, i = name, 2
    while name in taken or name in RESERVED:
        name = f"{base}{i}"
        i += 1
    taken.add(name)
    return name


def safe_text(text: str, limit: int = 80) -> str:
    """Text for comments and docstrings: printable ASCII without quotes or backslashes."""
    cleaned = "".join(c if (" " <= c <= "~" and c not in "\\\"'`") else "?" for c in str(text))
    return cleaned[:limit]


def literal(value: Any) -> str:
    """The repr of a validated param value; refuses anything that is not a plain literal."""
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and not any(c in value for c in "\"\\\n\r"):
        return f'"{value}"'   # the house style's quotes; anything unusual falls through to repr
    if isinstance(value, tuple | list):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if isinstance(value, tuple) and len(value) == 1 else (
            f"({inner})" if isinstance(value, tuple) else f"[{inner}]")
    raise TypeError(f"not a literal: {type(value).__name__}")


@functools.lru_cache(maxsize=1024)
def call_name(qualified: str) -> str:
    """`torch.nn.functional.relu` → `F.relu`, `torch.nn.Linear` → `nn.Linear`."""
    for prefix, short in (("torch.nn.functional.", "F."), ("torch.nn.", "nn.")):
        if qualified.startswith(prefix):
            return short + qualified[len(prefix):]
    return qualified
