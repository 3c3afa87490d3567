"""Alembic migrations build exactly the schema the code declares, on both databases."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from picsaris_pipeline.db.migrate import VERSION_TABLE, alembic_config
from picsaris_pipeline.db.repository import connect
from picsaris_pipeline.db.schema import metadata
from tests.support.db_helpers import migrate_again, reading


def test_migrated_schema_matches_the_declared_tables(database_url):
    repo = connect(database_url)
    with reading(repo) as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_the_revisions_read_as_one_line_of_history_without_branch_labels_or_dependencies():
    # The revision files leave out branch_labels and depends_on: Alembic reads them as absent.
    scripts = ScriptDirectory.from_config(alembic_config())
    revisions = list(scripts.walk_revisions())
    assert [r.revision for r in reversed(revisions)] == [f"{n:04d}" for n in range(1, 16)]
    assert [r.down_revision for r in reversed(revisions)] == [None] + [f"{n:04d}" for n in range(1, 15)]
    assert all(r.branch_labels == set() and r.dependencies is None for r in revisions)


def test_upgrading_twice_changes_nothing(database_url):
    repo = connect(database_url)
    migrate_again(repo)
    with reading(repo) as conn:
        version = conn.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalar_one()
    assert version == "0015"


def test_the_app_and_dagster_can_share_one_postgres_database(postgres_server, tmp_path, monkeypatch):
    # Production may keep Dagster's storage and the application tables in one Supabase database.
    import shutil

    import dagster as dg

    from tests.support.environment import REPO_ROOT

    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_server.replace("postgresql+psycopg2", "postgresql"))
    with dg.DagsterInstance.from_config(str(tmp_path)):
        pass
    repo = connect(postgres_server)
    assert repo.list_events() is not None
