"""The architecture holds: api -> core <- workers -> providers.

* the import contracts of pyproject.toml's ``[tool.importlinter]`` (import-linter): providers/
  imports nothing of core, api or workers; core/ imports neither api nor workers, and of
  providers/ only the port (``providers.base``, ``providers.plugin``); workers/ does not import api;
* no import cycle among core's modules;
* no file of core/, api/ or workers/ names a concrete provider (a package under providers/) in an
  import: they reach providers through the registry and the port only;
* no hand-written Python file is over 400 lines (the generated schemas are not hand-written).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application import use_cases

configuration.configure()  # import-linter's adapters (what its command line sets up)

REPO = Path(__file__).resolve().parents[2]
MAX_LINES = 400
GENERATED = {"providers/bria/schemas_gen.py"}  # written by scripts/gen_schemas.py
# Packages under providers/ that are not providers: the one simulator process.
NOT_PROVIDERS = {"simulator"}


@pytest.fixture
def this_tree():
    """This tree first on sys.path, so the graph is built from these files whatever else is
    installed (another checkout of the project, say)."""
    sys.path.insert(0, str(REPO))
    yield
    sys.path.remove(str(REPO))


def test_import_contracts(this_tree):
    """import-linter's report is printed (and shown by pytest) when a contract is broken."""
    assert use_cases.lint_imports(config_filename=str(REPO / "pyproject.toml"), cache_dir=None, no_logo=True)


@pytest.fixture(scope="module")
def graph():
    sys.path.insert(0, str(REPO))
    try:
        return grimp.build_graph("api", "core", "workers", "providers", "cli", "migrations", cache_dir=None)
    finally:
        sys.path.remove(str(REPO))


def test_the_graph_is_this_tree(graph):
    assert "providers.bria.tailored.service" in graph.modules  # a module of this checkout


def _cycles(graph, prefix: str) -> list[list[str]]:
    """Strongly connected components (of more than one module) among the modules under ``prefix``."""
    nodes = sorted(m for m in graph.modules if m == prefix or m.startswith(prefix + "."))
    edges = {m: sorted(n for n in graph.find_modules_directly_imported_by(m) if n in nodes) for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in nodes:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_core_modules(graph):
    assert _cycles(graph, "core") == []


# --------------------------------------------------------------------------- source files
def _tracked(*patterns: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--", *patterns], cwd=REPO, capture_output=True,
                         check=True).stdout
    return [name for name in out.decode().split("\0") if name and (REPO / name).is_file()]


def _concrete_providers() -> set[str]:
    return {p.name for p in (REPO / "providers").iterdir()
            if (p / "__init__.py").is_file() and p.name not in NOT_PROVIDERS}


def _imported_names(tree: ast.AST) -> list[str]:
    """Every module an import statement names (at any depth: function-level imports too), and for
    ``from X import a`` also ``X.a`` (``a`` may be a module)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_no_core_api_or_workers_file_imports_a_concrete_provider():
    concrete = _concrete_providers()
    assert "bria" in concrete
    offenders = []
    for name in _tracked("core/*.py", "api/*.py", "workers/*.py"):
        tree = ast.parse((REPO / name).read_text(encoding="utf-8"), name)
        for module in _imported_names(tree):
            parts = module.split(".")
            if parts[0] == "providers" and len(parts) > 1 and parts[1] in concrete:
                offenders.append(f"{name}: {module}")
    assert not offenders, offenders


def test_no_hand_written_python_file_is_over_400_lines():
    sizes = {name: len((REPO / name).read_text(encoding="utf-8").splitlines()) for name in _tracked("*.py")}
    assert len(sizes) > 100
    over = {name: n for name, n in sizes.items() if n > MAX_LINES and name not in GENERATED}
    assert not over, f"over {MAX_LINES} lines: {dict(sorted(over.items(), key=lambda kv: -kv[1]))}"
