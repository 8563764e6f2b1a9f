"""The runtime executes plan.json and nothing else: no module under runtime/ imports the planner, checked
two ways (the source's imports, and the modules a fresh interpreter loads)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "runtime"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_runtime_source_imports_the_planner():
    modules = sorted(RUNTIME.rglob("*.py"))
    assert len(modules) >= 20, "the glob found too few runtime modules"
    offenders = {p.relative_to(RUNTIME).as_posix(): sorted(n for n in _imports(p) if n == "planner" or n.startswith("planner."))
                 for p in modules}
    assert not {k: v for k, v in offenders.items() if v}, f"runtime modules import the planner: {offenders}"


def test_importing_every_runtime_module_loads_no_planner_module():
    names = [".".join(("runtime", *p.relative_to(RUNTIME).with_suffix("").parts)).removesuffix(".__init__")
             for p in sorted(RUNTIME.rglob("*.py"))]
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m == 'planner' or m.startswith('planner.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing the runtime loaded {out.stdout.strip()}"
