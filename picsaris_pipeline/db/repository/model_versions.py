"""Which photos and attendees are done under which model version, and pruning the others."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import (
    SETTLED_REFERENCES,
    RepositoryBase,
    _count_and_examples,
    _has_row,
    _narrowed,
    _now,
    _replace_rows,
)
from picsaris_pipeline.db.repository.rows import Counted, StoredVector, _attendee, _photo
from picsaris_pipeline.domain.model import Attendee, Photo, PhotoStatus


class ModelVersionsRepository(RepositoryBase):
    def mark_photo_version(self, photo: Photo, model_version: str, faces: int) -> None:
        """Record that a photo is embedded and matched under a model version (idempotent)."""
        key = {"photo_id": photo.id, "model_version": model_version}
        with self._tx() as conn:
            _replace_rows(
                conn, t.photo_model_versions, key, [{"event_id": photo.event_id, "faces": faces, "matched_at": _now()}]
            )

    def mark_attendee_version(self, attendee: Attendee, model_version: str) -> None:
        """Record that an attendee has a reference under a version and was searched for in the
        event's photos under it (idempotent)."""
        key = {"attendee_id": attendee.id, "model_version": model_version}
        with self._tx() as conn:
            _replace_rows(conn, t.attendee_model_versions, key, [{"event_id": attendee.event_id, "matched_at": _now()}])

    def attendees_missing_version(self, model_version: str, event_id: str | None = None) -> list[Attendee]:
        """Consenting attendees with a usable selfie not yet done under model_version (reference and
        late-joiner matching): a re-embedding's to-do for attendees."""
        done = _has_row(t.attendee_model_versions, "attendee_id", t.attendees.c.id, model_version)
        query = (
            sa.select(t.attendees)
            .where(t.attendees.c.consent.is_(True))
            .where(t.attendees.c.selfie_key.is_not(None))
            .where(t.attendees.c.reference_status.not_in([status.value for status in SETTLED_REFERENCES]))
            .where(~done)
            .order_by(t.attendees.c.id)
        )
        query = _narrowed(query, (t.attendees.c.event_id, event_id))
        with self._read() as conn:
            return [_attendee(r) for r in conn.execute(query).all()]

    def photo_versions(self, photo_id: str) -> list[str]:
        query = sa.select(t.photo_model_versions.c.model_version).where(t.photo_model_versions.c.photo_id == photo_id)
        with self._read() as conn:
            return sorted(r.model_version for r in conn.execute(query).all())

    def photos_missing_version(self, model_version: str, event_id: str | None = None) -> list[Photo]:
        """Published photos not yet embedded and matched under model_version (a re-embedding's to-do)."""
        done = _has_row(t.photo_model_versions, "photo_id", t.photos.c.id, model_version)
        query = (
            sa.select(t.photos)
            .where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
            .where(~done)
            .order_by(t.photos.c.id)
        )
        query = _narrowed(query, (t.photos.c.event_id, event_id))
        with self._read() as conn:
            return [_photo(r) for r in conn.execute(query).all()]

    def model_versions_in_use(self, event_id: str) -> dict[str, int]:
        """Model version -> rows holding it (vectors, engine ids, matches) in an event."""
        counts: dict[str, int] = {}
        tables = (t.face_vectors, t.attendee_vectors, t.engine_faces, t.engine_users, t.matches)
        with self._read() as conn:
            for table in tables:
                query = (
                    sa.select(table.c.model_version, sa.func.count())
                    .where(table.c.event_id == event_id)
                    .group_by(table.c.model_version)
                )
                for version, count in conn.execute(query).all():
                    counts[version] = counts.get(version, 0) + int(count)
        return counts

    def prune_versions(self, event_id: str, keep: str, keep_detector: str | None = None) -> dict[str, int]:
        """Delete every vector, engine id, match, message and marker of an event under versions other
        than keep, in one transaction. Returns rows deleted per table."""
        deleted: dict[str, int] = {}
        tables = (
            t.matches,
            t.realtime_outbox,
            t.face_vectors,
            t.attendee_vectors,
            t.engine_faces,
            t.engine_users,
            t.photo_model_versions,
            t.attendee_model_versions,
            t.attendee_references,  # the match policy's extra references and policy markers
            t.photo_match_policies,
        )
        with self._tx() as conn:
            for table in tables:
                result = conn.execute(
                    table.delete().where(table.c.event_id == event_id).where(table.c.model_version != keep)
                )
                deleted[table.name] = result.rowcount
            if keep_detector is not None:
                # Faces an older detector found (Rekognition indexes again under a new face model);
                # nothing refers to them any more.
                result = conn.execute(
                    t.faces.delete()
                    .where(t.faces.c.event_id == event_id)
                    .where(t.faces.c.detector_version != keep_detector)
                )
                deleted["faces"] = result.rowcount
        return deleted

    def version_mixing(self, limit: int = 20) -> Counted[str]:
        """Matches whose face or attendee has no representation under the match's own model version:
        a match that paired two versions (or lost its vectors). Returns (count, examples)."""
        version = t.matches.c.model_version
        face_has = sa.or_(
            *(_has_row(table, "face_id", t.matches.c.face_id, version) for table in (t.face_vectors, t.engine_faces))
        )
        attendee_has = sa.or_(
            *(
                _has_row(table, "attendee_id", t.matches.c.attendee_id, version)
                for table in (t.attendee_vectors, t.engine_users)
            )
        )
        bad = sa.not_(sa.and_(face_has, attendee_has))
        examples = sa.select(t.matches.c.photo_id, t.matches.c.attendee_id, t.matches.c.model_version).limit(limit)
        with self._read() as conn:
            count, rows = _count_and_examples(conn, t.matches, bad, examples)
        return Counted(count, [f"photo {r.photo_id} / attendee {r.attendee_id} ({r.model_version})" for r in rows])

    def published_without_active_version(self, fallback: str, limit: int = 20) -> Counted[str]:
        """Published photos that were never matched under their event's active version (fallback
        where an event has none): guests see nothing for them."""
        active = sa.func.coalesce(t.events.c.active_model_version, fallback)
        done = _has_row(t.photo_model_versions, "photo_id", t.photos.c.id, active)
        query = (
            sa.select(t.photos.c.id, active.label("active"))
            .join(t.events, t.events.c.id == t.photos.c.event_id)
            .where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
            .where(~done)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return Counted(len(rows), [f"photo {r.id} (active {r.active})" for r in rows[:limit]])

    def vectors_by_version(self, batch: int = 5000) -> Iterator[StoredVector]:
        """(kind, model version, dimension, blob) of every stored vector, streamed in batches."""
        for kind, table, key in (
            ("face", t.face_vectors, t.face_vectors.c.face_id),
            ("attendee", t.attendee_vectors, t.attendee_vectors.c.attendee_id),
        ):
            last = ""
            while True:
                query = (
                    sa.select(key.label("key"), table.c.model_version, table.c.dimension, table.c.vector)
                    .where(key > last)
                    .order_by(key)
                    .limit(batch)
                )
                with self._read() as conn:
                    rows = conn.execute(query).all()
                if not rows:
                    break
                for r in rows:
                    yield StoredVector(kind, r.model_version, int(r.dimension), bytes(r.vector))
                last = rows[-1].key
