"""The engine and transaction plumbing every aggregate shares, with the helpers they have in common."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.domain.ids import is_valid_id
from picsaris_pipeline.domain.model import Attendee, ReferenceStatus
from picsaris_pipeline.errors import BadInputError, ConfigurationError, NotFoundError, RetryableError

Record = TypeVar("Record")


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_id(value: str, what: str) -> None:
    if not is_valid_id(value):
        raise BadInputError(f"not a valid {what} id: {value!r}")


def _to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _from_blobs(blobs: Sequence[bytes], dimension: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1).astype(np.float32)


def _replace_rows(conn: Connection, table: sa.Table, key: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Replace, not add: delete the rows of table whose columns equal key's values, then insert rows
    (each given key's values too), so a re-run under the same key leaves exactly these rows."""
    conn.execute(table.delete().where(sa.and_(*(table.c[name] == value for name, value in key.items()))))
    if rows:
        conn.execute(table.insert(), [{**key, **row} for row in rows])


def _narrowed(query: sa.Select[Any], *filters: tuple[sa.ColumnElement[Any], Any]) -> sa.Select[Any]:
    """query narrowed to column == value for each (column, value) whose value is given (not None, not empty)."""
    for column, value in filters:
        if value:
            query = query.where(column == value)
    return query


def _has_row(
    table: sa.Table, key: str, owner: sa.ColumnElement[Any], model_version: sa.ColumnElement[Any] | str
) -> sa.Exists:
    """Whether table holds a row for owner (its column `key`) under model_version (a value or a column)."""
    return sa.select(table.c[key]).where(table.c[key] == owner).where(table.c.model_version == model_version).exists()


def _count_and_examples(
    conn: Connection, source: sa.FromClause, condition: sa.ColumnElement[bool], examples: sa.Select[Any]
) -> tuple[int, list[Any]]:
    """How many rows of source meet condition, and the rows examples (narrowed to them) reads."""
    count = conn.execute(sa.select(sa.func.count()).select_from(source).where(condition)).scalar_one()
    return int(count), list(conn.execute(examples.where(condition)).all())


# Attendees whose selfie will never become a reference: unusable, or no consent to keep face data.
SETTLED_REFERENCES = (ReferenceStatus.REJECTED, ReferenceStatus.NO_CONSENT)


class RepositoryBase:
    """The engine every aggregate reads and writes through, with errors translated at the boundary."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The transaction of the unit of work open in each thread (a repository may serve several).
        self._work = threading.local()

    @property
    def dialect_name(self) -> str:
        """The database's SQLAlchemy dialect: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        """A SQLite database: a local file, without row locks."""
        return self.dialect_name == "sqlite"

    def url_without_password(self) -> str:
        """The database's URL for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Close the engine's pooled connections (an unshared repository's holder, when done)."""
        self.engine.dispose()

    def _owned_vectors(self, query: sa.Select[Any]) -> tuple[list[str], np.ndarray]:
        """Run a query of (owner, vector, dimension) rows: the owners' ids, and their vectors stacked."""
        with self._read() as conn:
            rows = conn.execute(query).all()
        dimension = rows[0].dimension if rows else 0
        return [r.owner for r in rows], _from_blobs([r.vector for r in rows], dimension)

    def _by_id(self, table: sa.Table, record_id: str, what: str, record: Callable[[Any], Record]) -> Record:
        """The row of table with this id, as a record: BadInputError for a malformed id, NotFoundError
        for an unknown one."""
        _check_id(record_id, what)
        with self._read() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == record_id)).first()
        if row is None:
            raise NotFoundError(f"no {what} {record_id}")
        return record(row)

    def _by_ids(self, table: sa.Table, ids: Sequence[str], record: Callable[[Any], Record]) -> dict[str, Record]:
        """The rows of table among these ids, as records by id (malformed or unknown ids are absent)."""
        wanted = [i for i in dict.fromkeys(ids) if is_valid_id(i)]
        if not wanted:
            return {}
        with self._read() as conn:
            rows = conn.execute(sa.select(table).where(table.c.id.in_(wanted))).all()
        return {r.id: record(r) for r in rows}

    def url_with_password(self) -> str:
        """The database's URL, password included, for another process to connect to the same database."""
        return self.engine.url.render_as_string(hide_password=False)

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """One transaction for every repository call in the block: they all commit together when it
        ends, or none of them does when it raises. A unit of work opened inside another joins it.
        Keep face-engine and object-store calls outside: the transaction holds its locks (SQLite's
        whole database) until the block ends."""
        if self._open_connection() is not None:
            yield
            return
        with _translated(self.engine.begin()) as conn:
            self._work.connection = conn
            try:
                yield
            finally:
                self._work.connection = None

    def _open_connection(self) -> Connection | None:
        return getattr(self._work, "connection", None)

    def _tx(self) -> Any:
        """A transaction of its own, or the open unit of work's (committed when that ends)."""
        joined = self._open_connection()
        return _translated(nullcontext(joined) if joined is not None else self.engine.begin())

    def _insert_new(self, table: sa.Table, row_id: str, **values: Any) -> None:
        """Insert a new row under `row_id`, created and updated now."""
        now = _now()
        with self._tx() as conn:
            conn.execute(table.insert().values(id=row_id, created_at=now, updated_at=now, **values))

    def _read(self) -> Any:
        # Inside a unit of work, reads go through its connection: they see its uncommitted writes.
        joined = self._open_connection()
        return _translated(nullcontext(joined) if joined is not None else self.engine.connect())


def _lock_attendees(conn: Connection, attendee_ids: Iterable[str], share: bool) -> dict[str, bool]:
    """Lock attendee rows for the rest of the transaction; returns attendee id -> consent.

    Writers of face data share the lock (Postgres `FOR SHARE`), a change of consent takes it
    alone (`FOR UPDATE`), so neither can commit between the other's read of consent and its
    writes. SQLite has no row locks: the transaction takes the database's write lock before
    reading (`BEGIN IMMEDIATE`; call this first in the transaction), which serialises it with
    every other writer."""
    ids = sorted(set(attendee_ids))
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    if not ids:
        return {}
    query = sa.select(t.attendees.c.id, t.attendees.c.consent).where(t.attendees.c.id.in_(ids))
    if conn.dialect.name == "postgresql":
        query = query.order_by(t.attendees.c.id).with_for_update(read=share)
    return {r.id: bool(r.consent) for r in conn.execute(query).all()}


def _consenting(conn: Connection, attendee_ids: Iterable[str]) -> set[str]:
    """Of these attendees, those who consent now, re-read under a shared lock (see _lock_attendees)."""
    return {attendee_id for attendee_id, consent in _lock_attendees(conn, attendee_ids, share=True).items() if consent}


def _store_reference(
    conn: Connection, attendee: Attendee, table: sa.Table, model_version: str, values: Mapping[str, Any]
) -> bool:
    """Replace the attendee's reference row of table under model_version and mark the reference
    ready, after re-reading consent in this transaction: False (nothing stored) if it was withdrawn."""
    if attendee.id not in _consenting(conn, [attendee.id]):
        return False
    key = {"attendee_id": attendee.id, "model_version": model_version}
    _replace_rows(conn, table, key, [{"event_id": attendee.event_id, **values, "created_at": _now()}])
    conn.execute(
        t.attendees.update()
        .where(t.attendees.c.id == attendee.id)
        .values(reference_status=ReferenceStatus.READY.value, reason=None, updated_at=_now())
    )
    return True


# Words in driver messages that mean the configuration is wrong, not that the database is busy.
_CONFIGURATION_WORDS = ("password authentication failed", "does not exist", "no such table", "already exists", "role ")


def translate_db_error(error: DBAPIError) -> Exception:
    """SQLAlchemy/driver errors -> the project's: retry later, or fix the configuration."""
    detail = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    if isinstance(error, IntegrityError):
        # Two writers raced on the same photo (a re-run beside a run); the retry sees the winner's rows.
        return RetryableError(f"concurrent write conflict: {detail}")
    if isinstance(error, OperationalError) and any(word in detail for word in _CONFIGURATION_WORDS):
        return ConfigurationError(f"database misconfigured: {detail}")
    if error.connection_invalidated or isinstance(error, OperationalError):
        return RetryableError(f"database unavailable: {detail}")
    return error


class _translated:
    """Context manager that translates database errors at the boundary, whether they happen when the
    connection opens, inside the block, or on commit."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def __enter__(self) -> Connection:
        try:
            return self._manager.__enter__()
        except DBAPIError as error:
            raise translate_db_error(error) from error

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        try:
            result = self._manager.__exit__(exc_type, exc, tb)  # rolls back or commits, closes
        except DBAPIError as error:
            raise translate_db_error(error) from error
        if isinstance(exc, DBAPIError):
            translated = translate_db_error(exc)
            if translated is not exc:
                raise translated from exc
        return result
