"""Alembic environment: runs on a connection handed over by migrate.upgrade, or on
PICSARIS_DATABASE_URL / sqlalchemy.url when invoked as `alembic upgrade head`."""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from picsaris_pipeline.db.migrate import VERSION_TABLE
from picsaris_pipeline.db.schema import metadata

config = context.config


def _run(connection: sa.engine.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
        # Not Alembic's default "alembic_version": Dagster's Postgres storage keeps its own revision
        # there, and production may put both in the same Supabase database.
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("PICSARIS_DATABASE_URL")
    if not url:
        raise SystemExit("set PICSARIS_DATABASE_URL (or sqlalchemy.url) to migrate")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _run(conn)
