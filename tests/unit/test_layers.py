"""The package's layers, as docs/ARCHITECTURE.md draws them: only the orchestration layer imports
Dagster, the domain imports nothing of ours but the domain and errors, and no module imports itself
back through another (an import cycle works or breaks by the order modules happen to load in)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "picsaris_pipeline"
# The orchestration layer: the code location, its assets and sensors, what builds runs and
# resources, and the run launcher the instance config names.
ORCHESTRATION = ("definitions", "assets", "sensors", "orchestration", "warm_runs")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path, top_level_only: bool) -> set[str]:
    """Absolute names of what a module imports (a type-checking-only import is not an import)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if top_level_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue  # imported when called, not when the module loads
        nodes.append(node)
        pending.extend(ast.iter_child_nodes(node))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _layer(name: str) -> str:
    return name.split(".")[1] if "." in name else ""


def test_only_the_orchestration_layer_imports_dagster() -> None:
    importing = sorted(
        name
        for name, path in MODULES.items()
        if _layer(name) not in ORCHESTRATION
        and any(
            imported == "dagster" or imported.startswith(("dagster.", "dagster_"))
            for imported in _imports(name, path, False)
        )
    )
    assert importing == [], f"outside the orchestration layer {ORCHESTRATION}, these import dagster: {importing}"


def test_the_domain_depends_on_nothing_else_of_ours() -> None:
    allowed = ("picsaris_pipeline.domain", "picsaris_pipeline.errors")
    leaks = {
        name: sorted(
            i
            for i in _imports(name, path, False)
            if i.startswith("picsaris_pipeline") and not i.startswith(allowed) and i != "picsaris_pipeline"
        )
        for name, path in MODULES.items()
        if _layer(name) == "domain"
    }
    assert {name: found for name, found in leaks.items() if found} == {}


def test_no_import_cycles() -> None:
    graph = {
        name: {i for i in _imports(name, path, True) if i in MODULES and i != name} for name, path in MODULES.items()
    }
    cycles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    assert cycles == [], f"import cycles (top-level imports): {cycles}"


def test_lower_layers_do_not_import_the_orchestration_layer_or_the_cli() -> None:
    upper = tuple(f"picsaris_pipeline.{layer}" for layer in (*ORCHESTRATION, "cli"))
    reaching_up = {
        name: sorted(i for i in _imports(name, path, False) if i.startswith(upper))
        for name, path in MODULES.items()
        if _layer(name) not in (*ORCHESTRATION, "cli") and name != "picsaris_pipeline"
    }
    assert {name: found for name, found in reaching_up.items() if found} == {}
