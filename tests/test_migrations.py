"""Alembic migrations build exactly the schema the code declares, on both databases."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from picsaris_pipeline.db import connect
from picsaris_pipeline.db.migrate import upgrade
from picsaris_pipeline.db.schema import metadata


def test_migrated_schema_matches_the_declared_tables(database_url):
    repo = connect(database_url)
    with repo.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_upgrading_twice_changes_nothing(database_url):
    repo = connect(database_url)
    upgrade(repo.engine)
    with repo.engine.connect() as conn:
        version = conn.execute(sa.text("select version_num from alembic_version")).scalar_one()
    assert version == "0001"
