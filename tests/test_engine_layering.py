"""The dependency direction of STYLE.md, proved two ways.

1. Statically: every import in `nodes/`, `engine/` and `app/` (function-level ones included)
   is read from the source, and each package may import only the rows below it:

       nodes  <-  engine.core  <-  engine.incremental, engine.data, engine.runtime  <-  engine.cli  <-  app

   The core imports neither torch, numpy nor dearpygui; the runtime imports no GUI; `engine`
   never imports `app`; and no two modules import each other, directly or in a circle.
2. Dynamically: a child python with `torch`, `dearpygui` and `sklearn` made unimportable
   loads, validates and exports every sample graph through the pure rows.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO, subprocess_env

PACKAGES = ("nodes", "engine", "app")

# package → the first-party packages it may import (itself included), most specific first.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "nodes": ("nodes",),
    "engine.core": ("nodes", "engine.core"),
    "engine.incremental": ("nodes", "engine.core", "engine.incremental"),
    "engine.data": ("nodes", "engine.core", "engine.data"),
    "engine.runtime": ("nodes", "engine.core", "engine.data", "engine.runtime"),
    "engine.cli": ("nodes", "engine.core", "engine.data", "engine.runtime", "engine.cli"),
    "engine": ("nodes", "engine"),   # the facade, engine/__init__.py
    "app": ("nodes", "engine", "app"),
}
# package → third-party packages it must never import, at any depth of a function.
NEVER: dict[str, tuple[str, ...]] = {
    "nodes": ("torch", "numpy", "dearpygui", "sklearn"),
    "engine.core": ("torch", "numpy", "dearpygui", "sklearn"),
    "engine.incremental": ("torch", "numpy", "dearpygui", "sklearn"),
    "engine.data": ("torch", "dearpygui"),
    "engine.runtime": ("dearpygui",),
    "engine.cli": ("dearpygui",),
    "engine": ("dearpygui",),
}
# The studio's model is drawn and tested without a GUI, and is importable before torch is.
APP_MODEL = ("app.state", "app.commands", "app.layout", "app.recovery", "app.training",
             "app.training_data")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def first_party_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def imports(path: Path, module: str, known: set[str]) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import in the file. A name from a
    package that is itself a module (`from engine.runtime import export`) counts as that
    module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in known else target), node.lineno, id(node) in top


def owner(module: str, table: dict) -> str | None:
    """The most specific package in `table` that `module` belongs to."""
    best = None
    for pkg in table:
        if (module == pkg or module.startswith(pkg + ".")) and (best is None or len(pkg) > len(best)):
            best = pkg
    return best


def import_graph() -> dict[str, list[tuple[str, int, bool]]]:
    modules = first_party_modules()
    known = set(modules)
    return {name: list(imports(path, name, known)) for name, path in modules.items()}


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, int, bool]]]:
    return import_graph()


def test_every_package_has_a_docstring_saying_what_it_may_import():
    for pkg in ("engine.core", "engine.incremental", "engine.data", "engine.runtime", "engine.cli"):
        path = REPO / pkg.replace(".", "/") / "__init__.py"
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"{path}: say what the package may import"


def test_no_arrow_runs_back_up(graph):
    wrong = []
    for module, found in graph.items():
        pkg = owner(module, MAY_IMPORT)
        for target, line, _ in found:
            root = target.split(".")[0]
            if root in PACKAGES:
                allowed = MAY_IMPORT[pkg]
                if not any(target == a or target.startswith(a + ".") for a in allowed):
                    wrong.append(f"{module}:{line} imports {target}")
            elif root in NEVER.get(owner(module, NEVER) or "", ()):
                wrong.append(f"{module}:{line} imports {target}")
    assert wrong == []


def test_the_studio_model_imports_no_gui_and_no_torch_at_import(graph):
    wrong = [f"{module}:{line} imports {target}"
             for module in APP_MODEL if module in graph
             for target, line, at_top in graph[module]
             if target.split(".")[0] == "dearpygui"
             or (target.split(".")[0] == "torch" and at_top)
             or (at_top and target.startswith(("engine.runtime", "app.views", "app.studio")))]
    assert wrong == []


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles(graph):
    edges = {module: {t for t, _, _ in found if t in graph and t != module}
             for module, found in graph.items()}
    assert cycles(edges) == []


def test_the_checks_catch_what_they_should():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert owner("engine.core.graph", MAY_IMPORT) == "engine.core"
    assert owner("engine", MAY_IMPORT) == "engine"
    assert owner("engine.runtime.trainer", NEVER) == "engine.runtime"


BLOCKED = ("torch", "dearpygui", "sklearn")

SCRIPT = textwrap.dedent("""
    import importlib, pkgutil, sys
    for name in {blocked!r}:
        sys.modules[name] = None   # `import name` now raises ImportError
    import nodes, engine, engine.core, engine.incremental, engine.data
    for package in (nodes, engine.core, engine.incremental, engine.data):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
    import app.state, app.commands, app.layout, app.recovery, app.training, app.training_data
    from pathlib import Path

    for path in sorted(Path({samples!r}).glob("*.json")):
        graph = engine.load_graph(path)
        assert engine.validate(graph) == [], path
        source = engine.export_python(graph)
        assert "class " in source
    try:
        engine.compile_graph
    except ImportError:
        pass
    else:
        raise SystemExit("compile_graph imported without torch?")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r}
                    and sys.modules[m] is not None)
    print("LOADED", loaded)
    print("OK")
""")


def test_pure_modules_work_without_torch_gui_or_sklearn():
    script = SCRIPT.format(blocked=BLOCKED, samples=str(REPO / "sample_graphs"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["LOADED []", "OK"], result.stdout


# The engine reads top to bottom (issue 11): no function in it longer than a screen.
MAX_FUNCTION_LINES = 60


def test_no_engine_function_is_longer_than_a_screen():
    long = []
    for package in ("core", "incremental", "runtime", "data", "cli"):
        for path in sorted((REPO / "engine" / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO)}: {node.name} ({lines} lines)")
    assert long == [], "split these into named steps"
