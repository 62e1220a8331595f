"""``lepton.shared`` is the pure core: it never imports the bindings or the worker (STYLE §8)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lepton.shared

SHARED = Path(lepton.shared.__file__).parent
FORBIDDEN = ("lepton.functions", "lepton.gpuworker", "lepton.dev", "lepton.cli")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_shared_module_imports_an_outer_layer() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in sorted(SHARED.glob("*.py"))
        for name in _imported_modules(path)
        if name.startswith(FORBIDDEN)
    }
    assert not offenders, f"lepton.shared must stay the pure core; found {sorted(offenders)}"
    assert len(list(SHARED.glob("*.py"))) > 10  # the scan really read the package


def test_importing_shared_loads_no_outer_layer() -> None:
    # A fresh interpreter, so modules other tests imported cannot hide a transitive import.
    code = (
        "import sys, lepton.shared, lepton.shared.canary, lepton.shared.registry; "
        f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
