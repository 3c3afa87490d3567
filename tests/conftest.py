"""Fixtures shared by the suite: the real photos in ../shared/faces, the machine's PostgreSQL, and
an isolated embedded-default environment per test.

Where a real part is missing (no ../shared, no Postgres) tests skip with the reason, except under
CI=true, where a missing part fails the run instead of silently testing less.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.environment import PG_ADMIN_URL, REPO_ROOT, fresh_database, missing


@dataclass(frozen=True)
class SharedPhoto:
    file: str
    person: str
    faces_expected: int
    path: Path


@pytest.fixture(scope="session")
def shared_faces_dir() -> Path:
    directory = Path(os.environ.get("PICSARIS_SHARED_FACES", REPO_ROOT.parent / "shared" / "faces"))
    if not (directory / "MANIFEST.csv").exists():
        missing(f"the shared test photos are not at {directory}")
    return directory


@pytest.fixture(scope="session")
def shared_photos(shared_faces_dir: Path) -> dict[str, SharedPhoto]:
    with open(shared_faces_dir / "MANIFEST.csv", newline="") as handle:
        return {
            row["file"]: SharedPhoto(
                row["file"], row["person"], int(row["faces_expected"]), shared_faces_dir / row["file"]
            )
            for row in csv.DictReader(handle)
        }


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A database of this test session on the machine's PostgreSQL, after checking it is reachable."""
    import sqlalchemy as sa

    probe = sa.create_engine(PG_ADMIN_URL)
    try:
        with probe.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as error:
        missing(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {str(error.orig).strip().splitlines()[0]}")
    finally:
        probe.dispose()
    with fresh_database(PG_ADMIN_URL, "picsaris_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same tests on both databases; each Postgres test gets a database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    with fresh_database(request.getfixturevalue("postgres_server"), "picsaris_t") as url:
        yield url


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Any]:
    """Database, local bucket and resources wired as the code location wires them, on a test instance."""
    import dagster as dg

    from tests.support.pipeline_helpers import Pipeline

    with dg.instance_for_test() as instance:
        yield Pipeline.build(tmp_path, instance)


@pytest.fixture
def event(pipeline: Any) -> Any:
    return pipeline.event()


@pytest.fixture
def picsaris_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated embedded default: SQLite, local bucket and Dagster home under a temp folder."""
    for name in list(os.environ):
        if (name.startswith("PICSARIS_") and name != "PICSARIS_SHARED_FACES") or name in ("DAGSTER_HOME",):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("PICSARIS_HOME", str(home))
    return home
