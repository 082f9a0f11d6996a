"""The domain in app/ stays usable without the TUI: only app/tui.py may import textual."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import app

ROOT = Path(__file__).resolve().parent.parent
TUI_MODULES = {"app.tui"}


def domain_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(app.__path__, prefix="app.")]
    return sorted(n for n in names if n not in TUI_MODULES and n != "app.__main__")


def imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_domain_module_imports_textual_statically() -> None:
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        if path.relative_to(ROOT).as_posix() == "app/tui.py":
            continue
        if any(n == "textual" or n.startswith("textual.") for n in imported_names(path)):
            offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []


def test_importing_every_domain_module_leaves_textual_unloaded() -> None:
    modules = domain_modules()
    assert "app.cli" in modules and "app.steps" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


def test_no_code_accepts_host_keys_silently() -> None:
    for folder in ("app", "screens"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert "AutoAddPolicy" not in text, path
            assert "WarningPolicy" not in text, path
