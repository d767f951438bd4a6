"""The pure rows of the dependency diagram import neither torch nor the GUI (STYLE.md).

A child python runs with `torch`, `dearpygui` and `sklearn` made unimportable and must still
load, validate and export every sample graph.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import REPO, subprocess_env

BLOCKED = ("torch", "dearpygui", "sklearn")

SCRIPT = textwrap.dedent("""
    import sys
    for name in {blocked!r}:
        sys.modules[name] = None   # `import name` now raises ImportError
    import nodes
    import engine.graph, engine.fileformat, engine.analysis, engine.codegen, engine.config
    import engine
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
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r} + ("app",)
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
