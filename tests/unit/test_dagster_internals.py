"""orchestration/dagster_internals.py holds every private Dagster name warm_runs/ uses; it was written
against one Dagster release, and says so."""

from __future__ import annotations

import ast
import importlib
import re
import tomllib

import dagster

from picsaris_pipeline.orchestration import dagster_internals
from tests.support.environment import REPO_ROOT

ADAPTER = "picsaris_pipeline/orchestration/dagster_internals.py"


def test_the_installed_dagster_is_the_one_the_adapter_was_written_for() -> None:
    assert dagster.__version__ == dagster_internals.DAGSTER_VERSION, (
        f"Dagster {dagster.__version__} is installed, but {ADAPTER} was written for "
        f"{dagster_internals.DAGSTER_VERSION}: check each private name it lists against this release "
        "(signatures and behaviour, not only that it imports), then change DAGSTER_VERSION"
    )


def test_the_adapter_names_the_pinned_dagster() -> None:
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m.group(1) for r in dependencies if (m := re.fullmatch(r"dagster==(\S+)", r.strip()))]
    assert pins == [dagster_internals.DAGSTER_VERSION], (
        f"pyproject.toml pins dagster {pins}, {ADAPTER} was written for {dagster_internals.DAGSTER_VERSION}"
    )
    assert dagster_internals.DAGSTER_VERSION in (dagster_internals.__doc__ or ""), "the docstring names the version"


def test_each_private_name_still_resolves() -> None:
    missing = []
    for module_name, name in dagster_internals.INTERNALS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            missing.append(f"{module_name} cannot be imported ({error})")
            continue
        if not hasattr(module, name):
            missing.append(f"{module_name}.{name} is gone")
    assert not missing, f"Dagster {dagster.__version__} no longer has what {ADAPTER} uses: " + "; ".join(missing)


def test_warm_runs_imports_private_dagster_only_through_the_adapter() -> None:
    """Every `dagster._*` import of warm_runs/ is in the adapter, and the adapter lists it in INTERNALS."""
    listed = set(dagster_internals.INTERNALS)
    outside, unlisted = [], []
    for path in sorted((REPO_ROOT / "picsaris_pipeline/warm_runs").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [(alias.name, "") for alias in node.names]
            else:
                continue
            for module, name in names:
                if not f"{module}.{name}".startswith("dagster._"):
                    continue
                where = f"{path.relative_to(REPO_ROOT)}:{node.lineno} imports {module} {name}".rstrip()
                if path.name != "dagster_internals.py":
                    outside.append(where)
                elif (module, name) not in listed:
                    unlisted.append(where)
    assert not outside, f"private Dagster imports outside {ADAPTER} (move them there): " + "; ".join(outside)
    assert not unlisted, f"{ADAPTER} uses names its INTERNALS does not list: " + "; ".join(unlisted)
