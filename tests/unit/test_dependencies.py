"""pyproject.toml declares what the code imports, and imports what it declares.

The package's imports (picsaris_pipeline/) must come from `[project] dependencies`; the tests' and
bench's from those or the `dev` extra. A declared dependency nobody imports fails too, unless
USED_WITHOUT_IMPORT says how it is used. Imports are read from the source (ast), including
`importlib.util.find_spec("name")` / `importlib.import_module("name")` with a literal name, and
mapped to the installed distribution that provides them.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from tests.support.environment import REPO_ROOT

PACKAGE = "picsaris_pipeline"

# Declared runtime dependencies that no module imports, and why they are declared all the same.
USED_WITHOUT_IMPORT = {
    "dagster-webserver": "the Dagster UI and GraphQL server (`dagster-webserver`, `dagster dev`) the launcher talks to",
    "dagster-graphql": "the GraphQL API the webserver serves; pinned with the Dagster family on one release",
    "dagster-aws": "deploy/dagster.yaml's scale-out block runs each run in ECS (module: dagster_aws.ecs), by name",
    "dagster-postgres": "deploy/dagster.yaml's `storage: postgres` is loaded by Dagster itself",
    "psycopg2-binary": "SQLAlchemy's postgresql+psycopg2 driver (and dagster-postgres'), loaded by URL",
    "dagster-dg-cli": "the `dg` command (dg dev, dg check defs, dg list defs), configured by [tool.dg]",
}
# Declared dev dependencies that no test or bench script imports.
DEV_USED_WITHOUT_IMPORT = {
    "pytest-timeout": "a pytest plugin: the `timeout` in [tool.pytest.ini_options]",
    "ruff": "the linter and formatter (./dev lint)",
    "mypy": "the type checker (./dev lint)",
}
_DYNAMIC_IMPORTS = {"find_spec", "import_module"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"pyproject.toml: cannot read the requirement {requirement!r}"
    return _normalise(match.group(1))


@cache
def _declared() -> tuple[frozenset[str], frozenset[str]]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime = frozenset(_requirement_name(r) for r in project["dependencies"])
    dev = frozenset(_requirement_name(r) for r in project["optional-dependencies"]["dev"])
    return runtime, dev


@cache
def _providers() -> dict[str, frozenset[str]]:
    """Top-level module name -> the installed distributions that provide it. top_level.txt
    (packages_distributions) first, then each distribution's file list, for wheels whose
    top_level.txt leaves a package out (dlib-bin names only its extension module)."""
    found: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        found.setdefault(module, set()).update(_normalise(d) for d in dists)
    for dist in importlib.metadata.distributions():
        name = _normalise(dist.metadata["Name"])
        for file in dist.files or ():
            top, _, rest = str(file).partition("/")
            module = top if rest else top.removesuffix(".py")
            if module.isidentifier() and module != "__pycache__":
                found.setdefault(module, set()).add(name)
    return {module: frozenset(dists) for module, dists in found.items()}


def _imports(root: Path) -> Iterator[tuple[str, str]]:
    """(top-level module, 'file:line') for each third-party import under root."""
    # bench/ imports the test helpers as `tests.support`: the repository's own package, not a dependency.
    local = {PACKAGE, "tests", root.name} | {p.stem for p in root.iterdir() if p.suffix == ".py" or p.is_dir()}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _DYNAMIC_IMPORTS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names = [node.args[0].value]
            for name in names:
                top = name.split(".")[0]
                # _typeshed exists only for type checkers (imported under TYPE_CHECKING)
                if top and top not in sys.stdlib_module_names and top not in local and top != "_typeshed":
                    yield top, f"{path.relative_to(REPO_ROOT)}:{node.lineno}"


def _undeclared(roots: list[str], allowed: frozenset[str], where: str) -> tuple[list[str], set[str]]:
    problems, used = [], set()
    providers = _providers()
    for root in roots:
        for module, place in _imports(REPO_ROOT / root):
            dists = providers.get(module)
            if not dists:
                problems.append(f"{place} imports {module!r}, which no installed distribution provides")
                continue
            if not dists & allowed:
                provided_by = ", ".join(sorted(dists))
                problems.append(f"{place} imports {module!r} (from {provided_by}), not declared in {where}")
            used |= dists & allowed
    return sorted(set(problems)), used


def test_the_package_imports_only_its_declared_dependencies() -> None:
    runtime, _ = _declared()
    problems, _ = _undeclared([PACKAGE], runtime, "[project] dependencies")
    assert not problems, "\n".join(problems)


def test_tests_and_bench_import_only_declared_dependencies() -> None:
    runtime, dev = _declared()
    problems, _ = _undeclared(["tests", "bench"], runtime | dev, "[project] dependencies or the dev extra")
    assert not problems, "\n".join(problems)


def test_every_declared_dependency_is_imported_or_says_how_it_is_used() -> None:
    runtime, dev = _declared()
    _, used = _undeclared([PACKAGE], runtime, "")
    _, dev_used = _undeclared(["tests", "bench"], dev, "")
    problems = [
        f"{name} is declared in [project] dependencies but picsaris_pipeline/ never imports it "
        "(drop it, or say in USED_WITHOUT_IMPORT how it is used)"
        for name in sorted(runtime - used - set(USED_WITHOUT_IMPORT))
    ]
    problems += [
        f"{name} is declared in the dev extra but no test or bench script imports it "
        "(drop it, or say in DEV_USED_WITHOUT_IMPORT how it is used)"
        for name in sorted(dev - dev_used - set(DEV_USED_WITHOUT_IMPORT))
    ]
    problems += [
        f"USED_WITHOUT_IMPORT names {name}, which pyproject.toml does not declare"
        for name in sorted(set(USED_WITHOUT_IMPORT) - runtime)
    ]
    problems += [
        f"DEV_USED_WITHOUT_IMPORT names {name}, which the dev extra does not declare"
        for name in sorted(set(DEV_USED_WITHOUT_IMPORT) - dev)
    ]
    assert not problems, "\n".join(problems)
