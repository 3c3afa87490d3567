"""Bulk reads of stored face vectors that the row-by-row repository reads are too slow for.

A late joiner is compared with every face of the event under one model version: 36,000 vectors of
512 bytes in a large event. Read as rows, most of the time goes to the per-row machinery rather
than the data (bench/matching.py, side by side with `Repository.event_face_vectors`):

- PostgreSQL: a plain SELECT sends each bytea hex-encoded (36 MB of text for 18 MB of vectors),
  which the server encodes and psycopg2 decodes and wraps in one Python object per value. Here the
  rows come as `COPY ... TO STDOUT (FORMAT binary)` (raw bytes, no hex) and are cut into ids and
  one float32 matrix by numpy in a single pass, since every record has the same layout. One
  aggregated row (string_agg) was measured too and is slower: building the 18 MB value costs the
  server more than sending the rows.
- SQLite: one row of two group_concat aggregates (the ids, and the vectors concatenated byte for
  byte) instead of 36,000 tuples.

Both return exactly what `Repository.event_face_vectors` returns (photo id per face, vectors in the
same order as the ids) and fall back to it whenever the data is not in the expected shape.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence

import numpy as np
from sqlalchemy.exc import DBAPIError

from picsaris_pipeline.db.repository import Repository, translate_db_error

# A photo id per face: a list of str, or a numpy array of str (the PostgreSQL read; indexing it
# gives numpy.str_, a str).
Owners = Sequence[str] | np.ndarray

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_TRAILER = b"\xff\xff"

_POSTGRES_QUERY = (
    "COPY (SELECT photo_id, vector FROM face_vectors WHERE event_id = %s AND model_version = %s) "
    "TO STDOUT WITH (FORMAT binary)"
)
# Both aggregates see the same rows in the same order, so the n-th id goes with the n-th vector.
_SQLITE_QUERY = (
    "SELECT count(*), min(length(vector)), max(length(vector)), group_concat(photo_id, ','), "
    "CAST(group_concat(vector, x'') AS BLOB) FROM face_vectors WHERE event_id = ? AND model_version = ?"
)


def event_face_vectors(repo: Repository, event_id: str, model_version: str) -> tuple[Owners, np.ndarray]:
    """(photo id per face, float32 vectors) for every face of an event under one model version, as
    `Repository.event_face_vectors` returns them, in one round trip."""
    dialect = repo.engine.dialect.name
    if dialect == "postgresql" and repo.engine.dialect.driver == "psycopg2":
        read = _postgres(repo, event_id, model_version)
    elif dialect == "sqlite":
        read = _sqlite(repo, event_id, model_version)
    else:
        read = None
    if read is None:
        return repo.event_face_vectors(event_id, model_version)
    return read


def _postgres(repo: Repository, event_id: str, model_version: str) -> tuple[Owners, np.ndarray] | None:
    sink = io.BytesIO()
    engine = repo.engine
    try:
        with engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.copy_expert(cursor.mogrify(_POSTGRES_QUERY, (event_id, model_version)), sink)
            finally:
                cursor.close()
    except engine.dialect.loaded_dbapi.Error as error:  # the raw cursor bypasses SQLAlchemy's wrapping
        wrapped = DBAPIError.instance(
            _POSTGRES_QUERY, None, error, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect
        )
        raise (translate_db_error(wrapped) if isinstance(wrapped, DBAPIError) else wrapped) from error
    return parse_copy_pairs(sink.getbuffer())


def parse_copy_pairs(data: bytes | memoryview) -> tuple[np.ndarray, np.ndarray] | None:
    """Split a binary COPY of (id text, vector bytea) rows into ids and an (n, d) float32 matrix.
    Every record must have the same id length and vector length (ids are 26-character ULIDs, and a
    model version has one dimension); None when they do not, for the caller to read another way."""
    view = memoryview(data).cast("B")
    header = len(_COPY_SIGNATURE) + 8
    if len(view) < header + 2 or view[: len(_COPY_SIGNATURE)] != _COPY_SIGNATURE:
        raise ValueError("not a binary COPY stream")
    (extension,) = struct.unpack_from("!I", view, len(_COPY_SIGNATURE) + 4)
    start = header + extension
    end = len(view) - len(_COPY_TRAILER)
    if view[end:] != _COPY_TRAILER:
        raise ValueError("binary COPY stream without its trailer")
    if start == end:
        return np.empty(0, dtype="U26"), np.zeros((0, 0), dtype=np.float32)
    fields, id_length = struct.unpack_from("!hi", view, start)
    if fields != 2 or id_length < 0 or start + 6 + id_length + 4 > end:
        return None
    (vector_length,) = struct.unpack_from("!i", view, start + 6 + id_length)
    if vector_length <= 0 or vector_length % 4:
        return None
    record = np.dtype(
        [
            ("fields", ">i2"),
            ("id_length", ">i4"),
            ("id", f"S{id_length}"),
            ("vector_length", ">i4"),
            ("vector", "<f4", (vector_length // 4,)),
        ]
    )
    if (end - start) % record.itemsize:
        return None
    rows = np.frombuffer(view, dtype=record, offset=start, count=(end - start) // record.itemsize)
    if not (
        (rows["fields"] == 2).all()
        and (rows["id_length"] == id_length).all()
        and (rows["vector_length"] == vector_length).all()
    ):
        return None
    # Copies: the records are packed (unaligned) and the caller's buffer is released afterwards.
    vectors = np.ascontiguousarray(rows["vector"], dtype=np.float32)
    return rows["id"].astype(f"U{id_length}"), vectors


def _sqlite(repo: Repository, event_id: str, model_version: str) -> tuple[list[str], np.ndarray] | None:
    try:
        with repo.engine.connect() as conn:
            row = conn.exec_driver_sql(_SQLITE_QUERY, (event_id, model_version)).one()
    except DBAPIError as error:
        raise translate_db_error(error) from error
    count, shortest, longest, ids, blob = row
    if not count:
        return [], np.zeros((0, 0), dtype=np.float32)
    owners = ids.split(",") if ids is not None else []
    if shortest != longest or shortest % 4 or len(owners) != count or len(blob) != count * shortest:
        return None  # ids with commas, mixed dimensions: the row-by-row read says what is there
    return owners, np.frombuffer(blob, dtype="<f4").reshape(count, -1).astype(np.float32, copy=False)
