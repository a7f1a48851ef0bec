"""The package layout holds: the core owns no socket, imports point one way, modules stay small.

The rule (docs/contributing.md, "Where things live"): the package root is the IO-free core;
everything that owns a zmq socket lives under ``transport/``, everything that prints for a
person under ``cli/``. Root modules never import ``transport`` or ``cli`` at module level;
the only calls back up are entry points made inside functions (`App.run`,
`App.test_client`, `Service`). These tests read the package's own source with `ast`, so the
layout cannot decay without one of them failing.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zmqservice"
MAX_LINES = 400
MAX_CYCLE = 4
"""Modules a cycle may span once imports inside functions count: an entry point (`App.run`
-> transport -> ... -> back to the core) and nothing more."""
HEAVY = ("zmq", "asyncio", "click", "rich")
"""What ``import zmqservice`` must not load."""
EDGE_LIBRARIES = ("zmq", "click", "rich")
"""What only ``transport/`` and ``cli/`` import at module level (asyncio may be imported
by core modules an async app or a test loads, as long as ``import zmqservice`` does not)."""
EDGES = ("transport", "cli")
ENTRY_POINTS = {
    # module -> the functions that may import transport/ or cli/ (inside the function)
    "zmqservice.app": {"run"},
    "zmqservice.service": {"_run_here", "_start"},
}


@attrs.define(frozen=True)
class Import:
    """One import statement of a package module, resolved to package module names."""

    module: str
    targets: tuple[str, ...]
    line: int
    function: str | None
    """The enclosing function, or None for a module-level import."""
    type_checking: bool
    externals: tuple[str, ...]
    """Top-level names of third-party or stdlib modules it imports."""


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _resolve(module: str, node: ast.ImportFrom) -> tuple[str, ...]:
    """Package modules a ``from X import a, b`` statement imports (X.a when it is a module)."""
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base.pop()
        base = base[: len(base) - node.level + 1]
        prefix = ".".join([*base, *([node.module] if node.module else [])])
    else:
        prefix = node.module or ""
    found = []
    for alias in node.names:
        submodule = f"{prefix}.{alias.name}"
        if submodule in MODULES:
            found.append(submodule)
        elif prefix in MODULES:
            found.append(prefix)
    return tuple(dict.fromkeys(found))


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module = module
        self.function: str | None = None
        self.type_checking = False
        self.imports: list[Import] = []

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            outer, self.type_checking = self.type_checking, True
            for child in node.body:
                self.visit(child)
            self.type_checking = outer
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer = self.function
        self.function = outer or node.name  # the outermost function names the entry point
        self.generic_visit(node)
        self.function = outer

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _add(self, node: ast.stmt, targets: tuple[str, ...], externals: tuple[str, ...]) -> None:
        self.imports.append(
            Import(self.module, targets, node.lineno, self.function, self.type_checking, externals)
        )

    def visit_Import(self, node: ast.Import) -> None:
        targets = tuple(a.name for a in node.names if a.name in MODULES)
        externals = tuple(a.name.split(".")[0] for a in node.names if a.name not in MODULES)
        self._add(node, targets, externals)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and not (node.module or "").startswith("zmqservice"):
            self._add(node, (), ((node.module or "").split(".")[0],))
            return
        self._add(node, _resolve(self.module, node), ())


def _imports() -> Iterator[Import]:
    for module, path in MODULES.items():
        collector = _Collector(module)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        yield from collector.imports


IMPORTS = list(_imports())


def _layer(module: str) -> str:
    parts = module.split(".")
    if module == "zmqservice.__main__":  # ``python -m zmqservice`` is the command line
        return "cli"
    return parts[1] if len(parts) > 1 and parts[1] in EDGES else "core"


def _cycles() -> list[set[str]]:
    """Strongly connected components of the import graph (TYPE_CHECKING imports left out)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        if not imp.type_checking:
            graph[imp.module].update(imp.targets)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan: the graph has a few dozen nodes
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return [c for c in components if len(c) > 1]


def test_the_scan_sees_the_package() -> None:
    """A positive control: the scan finds the layers and the imports it is about to judge."""
    assert {"zmqservice.app", "zmqservice.transport", "zmqservice.cli"} <= set(MODULES)
    assert any(
        imp.module == "zmqservice.app" and "zmqservice.transport" in imp.targets for imp in IMPORTS
    ), "App.run's import of the transport should be found"
    assert any("zmq" in imp.externals for imp in IMPORTS if _layer(imp.module) == "transport")


def test_the_core_imports_no_edge_at_module_level() -> None:
    wrong = [
        f"{imp.module}:{imp.line} imports {', '.join(imp.targets)}"
        for imp in IMPORTS
        if _layer(imp.module) == "core"
        and imp.function is None
        and not imp.type_checking
        and any(_layer(t) != "core" for t in imp.targets)
    ]
    assert wrong == []


def test_the_core_reaches_the_edges_only_from_entry_points() -> None:
    wrong = [
        f"{imp.module}:{imp.line} in {imp.function}() imports {', '.join(imp.targets)}"
        for imp in IMPORTS
        if _layer(imp.module) == "core"
        and not imp.type_checking
        and any(_layer(t) != "core" for t in imp.targets)
        and imp.function not in ENTRY_POINTS.get(imp.module, set())
    ]
    assert wrong == []


def test_the_transport_never_imports_the_cli() -> None:
    wrong = [
        f"{imp.module}:{imp.line}"
        for imp in IMPORTS
        if _layer(imp.module) == "transport" and any(_layer(t) == "cli" for t in imp.targets)
    ]
    assert wrong == []


def test_only_the_edges_import_zmq_click_or_rich_at_module_level() -> None:
    wrong = [
        f"{imp.module}:{imp.line} imports {', '.join(imp.externals)}"
        for imp in IMPORTS
        if _layer(imp.module) == "core"
        and imp.function is None
        and not imp.type_checking
        and set(imp.externals) & set(EDGE_LIBRARIES)
    ]
    assert wrong == []


def test_no_import_cycle_spans_more_than_an_entry_point() -> None:
    cycles = _cycles()
    assert all(len(c) <= MAX_CYCLE for c in cycles), sorted(map(sorted, cycles))


def test_no_module_is_over_400_lines() -> None:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}


def test_importing_the_package_loads_no_zmq_asyncio_click_or_rich() -> None:
    """A fresh interpreter, as a user's ``import zmqservice`` runs."""
    code = (
        "import sys, zmqservice; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("edge", ["zmqservice.transport", "zmqservice.cli"])
def test_the_check_would_see_an_edge_import(edge: str) -> None:
    """The light-import check is not vacuous: importing an edge does load its libraries."""
    code = f"import sys, {edge}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "zmq" in out.stdout
