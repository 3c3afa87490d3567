"""Fixtures shared by the suite: the real photos in ../shared/faces, the machine's PostgreSQL, and
an isolated embedded-default environment per test.

Where a real part is missing (no ../shared, no Postgres) tests skip with the reason, except under
CI=true, where a missing part fails the run instead of silently testing less.
"""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("PICSARIS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def missing(reason: str) -> None:
    """Skip locally; fail under CI=true, where every real part must be present."""
    if IN_CI:
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


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
    """A fresh database on the machine's PostgreSQL for this test session; dropped afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as error:
        admin.dispose()
        missing(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {str(error.orig).strip().splitlines()[0]}")
    name = f"picsaris_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from picsaris_pipeline.db.repository import dispose_all

        dispose_all()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same tests on both databases; each Postgres test gets its own schema-clean database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    import sqlalchemy as sa

    base = request.getfixturevalue("postgres_server")
    name = f"picsaris_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from picsaris_pipeline.db.repository import dispose_all

        dispose_all()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def picsaris_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated embedded default: SQLite, local bucket and Dagster home under a temp folder."""
    for name in list(os.environ):
        if (name.startswith("PICSARIS_") and name != "PICSARIS_SHARED_FACES") or name in ("DAGSTER_HOME",):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("PICSARIS_HOME", str(home))
    return home
