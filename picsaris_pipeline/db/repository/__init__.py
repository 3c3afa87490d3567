"""Every read and write of the application database, through bound parameters only.

Writes are idempotent: re-running any step for a photo replaces its rows for the same detector or
model version instead of adding to them, so a retried or repeated run never duplicates anything.
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from picsaris_pipeline.db.repository.attendees import AttendeesRepository
from picsaris_pipeline.db.repository.base import SETTLED_REFERENCES, RepositoryBase, translate_db_error
from picsaris_pipeline.db.repository.candidates import CandidatesRepository, PolicyWrite
from picsaris_pipeline.db.repository.clusters import ClustersRepository
from picsaris_pipeline.db.repository.duplicates import DuplicatesRepository
from picsaris_pipeline.db.repository.engine_ids import EngineIdsRepository
from picsaris_pipeline.db.repository.erasure import ErasureRepository
from picsaris_pipeline.db.repository.events import EventsRepository
from picsaris_pipeline.db.repository.faces import FacesRepository
from picsaris_pipeline.db.repository.health import HealthRepository
from picsaris_pipeline.db.repository.leases import LeasesRepository
from picsaris_pipeline.db.repository.matches import MatchesRepository
from picsaris_pipeline.db.repository.model_versions import ModelVersionsRepository
from picsaris_pipeline.db.repository.outbox import OutboxRepository
from picsaris_pipeline.db.repository.photos import PhotosRepository
from picsaris_pipeline.db.repository.rows import (
    CANDIDATE_CONFIRMED,
    CANDIDATE_PROPOSED,
    CANDIDATE_REFUSED,
    CandidateRow,
)
from picsaris_pipeline.db.repository.summary_reads import SummaryFrames, SummaryReadsRepository
from picsaris_pipeline.errors import ConfigurationError

__all__ = [
    "CANDIDATE_CONFIRMED",
    "CANDIDATE_PROPOSED",
    "CANDIDATE_REFUSED",
    "SETTLED_REFERENCES",
    "CandidateRow",
    "PolicyWrite",
    "Repository",
    "SummaryFrames",
    "connect",
    "dispose_all",
    "translate_db_error",
    "unshared",
]


class Repository(
    ErasureRepository,
    DuplicatesRepository,
    CandidatesRepository,
    PhotosRepository,
    AttendeesRepository,
    EventsRepository,
    ModelVersionsRepository,
    EngineIdsRepository,
    FacesRepository,
    MatchesRepository,
    OutboxRepository,
    ClustersRepository,
    LeasesRepository,
    HealthRepository,
    SummaryReadsRepository,
    RepositoryBase,
):
    """Every aggregate's reads and writes over one engine (each aggregate is a module of this package)."""


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the CLI, the webserver and run processes read while one writes; busy_timeout makes a
    # writer wait for the lock instead of failing at once; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Erased rows are overwritten, not just unlinked: a deleted guest's name must not survive in
    # the file's free pages (docs/RELIABILITY.md, the privacy sweep).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _new_engine(url: str) -> Engine:
    engine = sa.create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _configure_sqlite)
    return engine


def connect(url: str, migrate: bool = True) -> Repository:
    """A repository on the database at url; the engine and its migration run once per process."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _new_engine(url)
            if migrate:
                from picsaris_pipeline.db.migrate import upgrade

                try:
                    upgrade(engine)
                except DBAPIError as error:
                    engine.dispose()
                    raise translate_db_error(error) from error
                except ConfigurationError:
                    engine.dispose()  # a database this release cannot upgrade (db/migrate.py)
                    raise
            _engines[url] = engine
    return Repository(engine)


def unshared(url: str) -> Repository:
    """A repository over an engine of its own, neither migrated nor shared with connect's callers,
    for a holder that disposes of it (the pg_notify publisher, which reads and writes no table).
    Builds the engine without connecting; a URL or driver it cannot use is a ConfigurationError."""
    try:
        return Repository(_new_engine(url))
    except (sa.exc.ArgumentError, ImportError) as error:
        raise ConfigurationError(f"cannot use the database URL: {error}") from error


def dispose_all() -> None:
    """Close every pooled connection (tests; forked processes)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
