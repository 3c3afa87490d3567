"""Where the repository is, which Postgres the tests use, and what a missing real part means."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The console scripts (picsaris, dagster-webserver, dagster-daemon) of the Python running the tests.
BIN = Path(sys.executable).parent
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("PICSARIS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def missing(reason: str) -> None:
    """Skip locally; fail under CI=true, where every real part must be present."""
    # Imported here: the benchmarks import this package without pytest installed in their path.
    import pytest

    if IN_CI:
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


@contextmanager
def fresh_database(admin_url: str, prefix: str) -> Iterator[str]:
    """Create a uniquely named database next to admin_url's; drop it (closing our pools) afterwards."""
    import sqlalchemy as sa

    from picsaris_pipeline.db.repository import dispose_all

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # pre_ping: the server may have been restarted since (the fault tests do that)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        dispose_all()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
