"""The shape of the code: the domain in app/ stays usable without the TUI (no textual, no screens
at import time), and no import cycle among the modules of app/ and screens/."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import app

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "screens")
UI_TOOLKITS = ("textual", "textual_serve")


def module_files() -> dict[str, Path]:
    """Every module of app/ and screens/ by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def domain_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(app.__path__, prefix="app.")]
    return sorted(n for n in names if n != "app.__main__")


def is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def walk_imports(tree: ast.AST, *, functions: bool = True, type_checking: bool = True,
                 ) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of ``tree``; optionally not those inside functions (run only when
    called) or inside ``if TYPE_CHECKING:`` (never run)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if functions:
                yield from walk_imports(child, functions=functions, type_checking=type_checking)
        elif is_type_checking_block(child):
            if type_checking:
                yield from walk_imports(child, functions=functions, type_checking=type_checking)
            assert isinstance(child, ast.If)
            for other in child.orelse:  # the else branch does run
                yield from walk_imports(ast.Module(body=[other], type_ignores=[]),
                                        functions=functions, type_checking=type_checking)
        else:
            yield from walk_imports(child, functions=functions, type_checking=type_checking)


def imported_names(module: str, path: Path, **which: bool) -> set[str]:
    """Dotted names ``module`` imports: ``from a import b`` gives ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in walk_imports(tree, **which):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative: resolved against this module's package
            package = module.split(".")
            package = package[: len(package) - node.level + (1 if is_package else 0)]
            base = ".".join([*package, base] if base else package)
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of app/ and screens/ it imports anywhere: at module level, inside
    ``if TYPE_CHECKING:`` (a cycle of types is still a cycle of knowledge) and inside functions.
    A ``"module:Class"`` string resolved with importlib (screens.steps) is no import statement;
    the test of the step table checks that each one names a step screen."""
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {name for name in imported_names(module, path) if name in modules}
        graph[module] = targets - {module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, as the sorted modules of each strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def test_no_domain_module_imports_textual() -> None:
    offenders = []
    for module, path in module_files().items():
        if module.split(".")[0] != "app":
            continue
        if any(name.split(".")[0] in UI_TOOLKITS for name in imported_names(module, path)):
            offenders.append(module)
    assert offenders == []


def test_no_domain_module_imports_screens_at_import_time() -> None:
    """app/ may start the wizard (app.cli, lazily) but never needs screens/ to be imported."""
    offenders = []
    for module, path in module_files().items():
        if module.split(".")[0] != "app":
            continue
        names = imported_names(module, path, functions=False)
        if any(name.split(".")[0] == "screens" for name in names):
            offenders.append(module)
    assert offenders == []


def test_importing_every_domain_module_leaves_textual_unloaded() -> None:
    modules = domain_modules()
    assert "app.cli" in modules and "app.steps" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{UI_TOOLKITS!r} or m == 'screens' or m.startswith('screens.'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


def test_no_import_cycle_among_app_and_screens() -> None:
    cycles = find_cycles(import_graph())
    assert cycles == [], f"import cycles: {cycles}"


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}, "g": set()}
    assert find_cycles(graph) == [["a", "b", "c"], ["e", "f"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import app.plan\n"
        "from app import onboard\n"
        "from screens.widgets import nav_bar\n"
        "from . import steps\n"
        "if TYPE_CHECKING:\n"
        "    from screens.app import RegwizApp\n"
        "def later():\n"
        "    from screens.help import HelpScreen\n"
    )
    path = tmp_path / "mod.py"
    path.write_text(source)
    names = imported_names("screens.mod", path)
    assert {"app.plan", "app.onboard", "screens.widgets.nav_bar", "screens.steps",
            "screens.app", "screens.help"} <= names
    assert "screens.app" not in imported_names("screens.mod", path, type_checking=False)
    assert "screens.help" not in imported_names("screens.mod", path, functions=False)


def test_no_code_accepts_host_keys_silently() -> None:
    for folder in PACKAGES:
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert "AutoAddPolicy" not in text, path
            assert "WarningPolicy" not in text, path
