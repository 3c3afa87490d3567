"""Apply Alembic migrations programmatically (the CLI and resources call this once per process)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from picsaris_pipeline.errors import ConfigurationError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "picsaris_alembic_version"
MIGRATION_LOCK_KEY = 0x70696373  # "pics": any constant shared by every process of this app

# The revisions squashed into versions/0014_baseline.py, and the last commit that still upgrades a
# database from one of them (docs/OPERATIONS.md, "Upgrading the database").
SQUASHED_REVISIONS = frozenset(f"{n:04d}" for n in range(1, 14))
LAST_COMMIT_WITH_SQUASHED_REVISIONS = "7b51671"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # The code server, the daemon and every run process connect at once on a first deploy;
            # one migrates while the others wait, then find nothing left to do.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        refuse_squashed_revision(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def refuse_squashed_revision(connection: Connection) -> None:
    """A database left at a revision older than the baseline cannot be upgraded by this code: say
    how, instead of Alembic's "Can't locate revision" (or a baseline run over existing tables)."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return
    current = connection.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalars().all()
    old = sorted(SQUASHED_REVISIONS.intersection(current))
    if old:
        raise ConfigurationError(
            f"the application database is at migration {old[0]}, older than this release's baseline 0014: "
            f"upgrade it first with picsaris-pipeline at commit {LAST_COMMIT_WITH_SQUASHED_REVISIONS} "
            "(any picsaris command migrates it, e.g. `picsaris event list`), then run this release "
            '(docs/OPERATIONS.md, "Upgrading the database")'
        )
