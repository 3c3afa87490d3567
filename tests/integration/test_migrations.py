"""Alembic migrations build exactly the schema the code declares, on both databases."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from picsaris_pipeline.db.migrate import (
    LAST_COMMIT_WITH_SQUASHED_REVISIONS,
    SQUASHED_REVISIONS,
    VERSION_TABLE,
    alembic_config,
    upgrade,
)
from picsaris_pipeline.db.repository import connect
from picsaris_pipeline.db.schema import metadata
from picsaris_pipeline.errors import ConfigurationError
from tests.support.db_helpers import migrate_again, reading

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrated_schema_matches_the_declared_tables(database_url):
    repo = connect(database_url)
    with reading(repo) as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_the_revisions_read_as_one_line_of_history_from_the_baseline():
    # The revision files leave out branch_labels and depends_on: Alembic reads them as absent.
    scripts = ScriptDirectory.from_config(alembic_config())
    revisions = list(reversed(list(scripts.walk_revisions())))
    assert revisions[0].revision == "0014" and revisions[0].down_revision is None  # the squashed baseline
    assert [r.down_revision for r in revisions[1:]] == [r.revision for r in revisions[:-1]]
    assert all(r.branch_labels == set() and r.dependencies is None for r in revisions)
    assert SQUASHED_REVISIONS.isdisjoint(r.revision for r in revisions)


def _database_left_at(url: str, version: str) -> None:
    """The schema at the baseline (0014), with the version table saying `version`."""
    engine = sa.create_engine(url)
    upgrade(engine, "0014")
    with engine.begin() as conn:
        conn.execute(sa.text(f"update {VERSION_TABLE} set version_num = :v"), {"v": version})
    engine.dispose()


def test_a_database_from_before_the_baseline_is_refused_with_the_way_to_upgrade_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _database_left_at(url, "0007")
    with pytest.raises(ConfigurationError) as refused:
        connect(url)
    message = str(refused.value)
    assert "at migration 0007, older than this release's baseline 0014" in message
    assert f"commit {LAST_COMMIT_WITH_SQUASHED_REVISIONS}" in message and "Upgrading the database" in message
    # Nothing was touched: the database still says 0007, and a second attempt says the same.
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalar_one() == "0007"
    engine.dispose()
    with pytest.raises(ConfigurationError, match="at migration 0007"):
        connect(url)


def test_a_database_the_squashed_migrations_took_to_0014_upgrades_to_head(tmp_path):
    # Such a database has the baseline's schema (compared table by table when the squash was made)
    # and the version 0014: the baseline is not run again over its tables.
    url = f"sqlite:///{tmp_path / 'deployed.db'}"
    _database_left_at(url, "0014")
    repo = connect(url)
    with reading(repo) as conn:
        assert conn.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalar_one() == HEAD
    assert repo.list_events() == []


def test_upgrading_twice_changes_nothing(database_url):
    repo = connect(database_url)
    migrate_again(repo)
    with reading(repo) as conn:
        version = conn.execute(sa.text(f"select version_num from {VERSION_TABLE}")).scalar_one()
    assert version == HEAD


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
