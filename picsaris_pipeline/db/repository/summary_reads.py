"""The event summary's reads: an event's photos, faces, matches and attendees as polars frames."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import RepositoryBase, _utc

_UTC = pl.Datetime("us", "UTC")
SUMMARY_PHOTO_SCHEMA: dict[str, Any] = {
    "photo_id": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "object_key": pl.String,
    "created_at": _UTC,
    "updated_at": _UTC,
}
SUMMARY_FACE_SCHEMA: dict[str, Any] = {"face_id": pl.String, "photo_id": pl.String}
SUMMARY_MATCH_SCHEMA: dict[str, Any] = {"photo_id": pl.String, "attendee_id": pl.String, "face_id": pl.String}
SUMMARY_ATTENDEE_SCHEMA: dict[str, Any] = {
    "attendee_id": pl.String,
    "name": pl.String,
    "consent": pl.Boolean,
    "reference_status": pl.String,
}


@dataclass(frozen=True)
class SummaryFrames:
    """One event's rows for its summary, each frame with exactly its SUMMARY_*_SCHEMA."""

    # photo_id, status, reason, object_key, created_at, updated_at (first publication, else updated_at)
    photos: pl.DataFrame
    faces: pl.DataFrame  # face_id, photo_id (without faces of other model versions only)
    matches: pl.DataFrame  # photo_id, attendee_id, face_id (under the model version)
    attendees: pl.DataFrame  # attendee_id, name, consent, reference_status (by id)


@dataclass(frozen=True)
class EventOverview:
    """One line of `picsaris event list`: an event and how many photos (by status) and attendees it has."""

    id: str
    name: str
    created_at: datetime  # UTC
    photos_by_status: dict[str, int]  # status value -> photos; statuses with none are left out
    attendees: int


class SummaryReadsRepository(RepositoryBase):
    def event_overviews(self) -> list[EventOverview]:
        """Every event, oldest first (ids are ULIDs), with its photos counted by status and its
        attendees counted: three grouped selects, however many photos there are."""
        with self._read() as conn:
            events = conn.execute(
                sa.select(t.events.c.id, t.events.c.name, t.events.c.created_at).order_by(t.events.c.id)
            ).all()
            photos = conn.execute(
                sa.select(t.photos.c.event_id, t.photos.c.status, sa.func.count()).group_by(
                    t.photos.c.event_id, t.photos.c.status
                )
            ).all()
            attendee_counts = conn.execute(
                sa.select(t.attendees.c.event_id, sa.func.count()).group_by(t.attendees.c.event_id)
            ).all()
        attendees = {event_id: int(count) for event_id, count in attendee_counts}
        by_status: dict[str, dict[str, int]] = {}
        for event_id, status, count in photos:
            by_status.setdefault(event_id, {})[status] = int(count)
        return [
            EventOverview(
                row.id, row.name, _utc(row.created_at), by_status.get(row.id, {}), int(attendees.get(row.id, 0))
            )
            for row in events
        ]

    def summary_frames(self, event_id: str, model_version: str) -> SummaryFrames:
        """The event's photos, faces, matches under model_version and attendees, read through one
        connection with SQLAlchemy Core selects (the same on SQLite and PostgreSQL). Database errors
        come through untranslated, as they did when services/summary.py read them itself."""
        with self.engine.connect() as conn:
            return SummaryFrames(
                photos=_read_frame(conn, _photos_query(event_id), SUMMARY_PHOTO_SCHEMA),
                faces=_read_frame(conn, _faces_query(event_id, model_version), SUMMARY_FACE_SCHEMA),
                matches=_read_frame(conn, _matches_query(event_id, model_version), SUMMARY_MATCH_SCHEMA),
                attendees=_read_frame(conn, _attendees_query(event_id), SUMMARY_ATTENDEE_SCHEMA),
            )


def conform_frame(frame: pl.DataFrame, schema: dict[str, Any]) -> pl.DataFrame:
    """Exactly the schema's columns, in its order, with its dtypes."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def _read_frame(conn: Connection, query: sa.Select[Any], schema: dict[str, Any]) -> pl.DataFrame:
    """The query's rows as a frame with exactly `schema`, also when there are none.

    Datetimes are read as whatever the driver returns (naive UTC from SQLite, aware from
    PostgreSQL) and then cast to UTC, which treats naive values as UTC: everything we store is UTC.
    """
    overrides = {name: dtype for name, dtype in schema.items() if not isinstance(dtype, pl.Datetime)}
    frame = pl.read_database(query, connection=conn, schema_overrides=overrides, infer_schema_length=None)
    assert isinstance(frame, pl.DataFrame)  # not iter_batches
    return pl.DataFrame(schema=schema) if frame.is_empty() else conform_frame(frame, schema)


def _photos_query(event_id: str) -> sa.Select[Any]:
    first_published = (
        sa.select(sa.func.min(t.photo_model_versions.c.matched_at))
        .where(t.photo_model_versions.c.photo_id == t.photos.c.id)
        .scalar_subquery()
    )
    return sa.select(
        t.photos.c.id.label("photo_id"),
        t.photos.c.status,
        t.photos.c.reason,
        t.photos.c.object_key,
        t.photos.c.created_at,
        sa.func.coalesce(first_published, t.photos.c.updated_at).label("updated_at"),
    ).where(t.photos.c.event_id == event_id)


def _faces_query(event_id: str, model_version: str) -> sa.Select[Any]:
    """The event's faces, without those that belong to another model version only (a re-embedding
    under a new Rekognition face model detects every face again, as new rows)."""

    def represented(version_matches: Any) -> Any:
        return sa.or_(
            sa.select(t.face_vectors.c.face_id)
            .where(t.face_vectors.c.face_id == t.faces.c.id)
            .where(version_matches(t.face_vectors.c.model_version))
            .exists(),
            sa.select(t.engine_faces.c.face_id)
            .where(t.engine_faces.c.face_id == t.faces.c.id)
            .where(version_matches(t.engine_faces.c.model_version))
            .exists(),
        )

    other_only = sa.and_(
        represented(lambda column: column != model_version), ~represented(lambda column: column == model_version)
    )
    return (
        sa.select(t.faces.c.id.label("face_id"), t.faces.c.photo_id)
        .where(t.faces.c.event_id == event_id)
        .where(~other_only)
    )


def _matches_query(event_id: str, model_version: str) -> sa.Select[Any]:
    return (
        sa.select(t.matches.c.photo_id, t.matches.c.attendee_id, t.matches.c.face_id)
        .where(t.matches.c.event_id == event_id)
        .where(t.matches.c.model_version == model_version)
    )


def _attendees_query(event_id: str) -> sa.Select[Any]:
    return (
        sa.select(
            t.attendees.c.id.label("attendee_id"),
            t.attendees.c.name,
            t.attendees.c.consent,
            t.attendees.c.reference_status,
        )
        .where(t.attendees.c.event_id == event_id)
        .order_by(t.attendees.c.id)
    )
