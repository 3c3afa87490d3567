"""Erasure of attendees and photos, and of a withdrawn guest's faces in other people's photos."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.photos import PhotosRepository
from picsaris_pipeline.db.repository.rows import MatchedFace, RecordedEngineFace
from picsaris_pipeline.domain.model import Attendee, Photo, PhotoStatus


class ErasureRepository(PhotosRepository):
    def delete_attendee(self, attendee_id: str) -> Attendee:
        """Erase an attendee and their biometric data: reference vectors and matches (cascade), and
        the photos they uploaded with those photos' faces. Returns the deleted record."""
        attendee = self.get_attendee(attendee_id)
        with self._tx() as conn:
            conn.execute(t.matches.delete().where(t.matches.c.attendee_id == attendee_id))
            conn.execute(t.attendee_vectors.delete().where(t.attendee_vectors.c.attendee_id == attendee_id))
            conn.execute(t.engine_users.delete().where(t.engine_users.c.attendee_id == attendee_id))
            conn.execute(
                t.attendee_model_versions.delete().where(t.attendee_model_versions.c.attendee_id == attendee_id)
            )
            photo_ids = [
                r.id for r in conn.execute(sa.select(t.photos.c.id).where(t.photos.c.uploader_id == attendee_id))
            ]
            _delete_photo_rows(conn, photo_ids)
            conn.execute(t.attendees.delete().where(t.attendees.c.id == attendee_id))
        return attendee

    def delete_photo(self, photo_id: str) -> Photo:
        """Erase a photo's record and everything derived from it (faces, vectors, matches)."""
        photo = self.get_photo(photo_id)
        with self._tx() as conn:
            _delete_photo_rows(conn, [photo_id])
        return photo

    def flush_erased(self) -> None:
        """On SQLite, empty the write-ahead log into the database and truncate it, so erased rows'
        old page images do not linger in the -wal file (secure_delete has zeroed them in the database)."""
        if self.engine.dialect.name != "sqlite":
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def faces_matched_to(self, attendee_id: str) -> list[MatchedFace]:
        """(face id, photo id) of every event-photo face matched to the attendee, any model version."""
        query = (
            sa.select(t.matches.c.face_id, t.matches.c.photo_id)
            .where(t.matches.c.attendee_id == attendee_id)
            .distinct()
            .order_by(t.matches.c.photo_id, t.matches.c.face_id)
        )
        with self._read() as conn:
            return [MatchedFace(r.face_id, r.photo_id) for r in conn.execute(query).all()]

    def engine_faces_of(self, face_ids: Sequence[str]) -> list[RecordedEngineFace]:
        """(event id, model version, engine face id) recorded for these faces."""
        if not face_ids:
            return []
        query = sa.select(
            t.engine_faces.c.event_id, t.engine_faces.c.model_version, t.engine_faces.c.external_face_id
        ).where(t.engine_faces.c.face_id.in_(list(face_ids)))
        with self._read() as conn:
            return [
                RecordedEngineFace(r.event_id, r.model_version, r.external_face_id) for r in conn.execute(query).all()
            ]

    def photos_with_forgotten_faces(self, event_id: str) -> list[str]:
        """Published photos of the event holding a face with neither a vector nor an engine face under
        any model version: faces whose data a withdrawal deleted (or a crashed run never stored)."""
        has_vector = sa.exists().where(t.face_vectors.c.face_id == t.faces.c.id)
        has_engine_face = sa.exists().where(t.engine_faces.c.face_id == t.faces.c.id)
        query = (
            sa.select(t.faces.c.photo_id)
            .join(t.photos, t.photos.c.id == t.faces.c.photo_id)
            .where(t.photos.c.event_id == event_id)
            .where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
            .where(~has_vector)
            .where(~has_engine_face)
            .distinct()
            .order_by(t.faces.c.photo_id)
        )
        with self._read() as conn:
            return [r.photo_id for r in conn.execute(query).all()]

    def delete_private_messages(self, attendee_id: str) -> int:
        """Delete the realtime outbox's messages on the attendee's private topic (sent or not)."""
        topic = f"attendee:{attendee_id}"
        with self._tx() as conn:
            deleted = conn.execute(t.realtime_outbox.delete().where(t.realtime_outbox.c.topic == topic)).rowcount
        return int(deleted or 0)

    def delete_face_representations(self, face_ids: Sequence[str]) -> tuple[int, int]:
        """Delete the vectors and engine-face records of these faces (their boxes stay, unnamed), in one
        transaction. Returns (vectors deleted, engine faces deleted)."""
        if not face_ids:
            return 0, 0
        ids = list(face_ids)
        with self._tx() as conn:
            vectors = conn.execute(t.face_vectors.delete().where(t.face_vectors.c.face_id.in_(ids))).rowcount
            engine_faces = conn.execute(t.engine_faces.delete().where(t.engine_faces.c.face_id.in_(ids))).rowcount
        return int(vectors or 0), int(engine_faces or 0)


def _delete_photo_rows(conn: Connection, photo_ids: Sequence[str]) -> None:
    if not photo_ids:
        return
    # Explicit deletes rather than relying on ON DELETE CASCADE, which SQLite only honours when the
    # connection enabled foreign keys; erasure of biometric data must not depend on that.
    conn.execute(t.matches.delete().where(t.matches.c.photo_id.in_(photo_ids)))
    conn.execute(t.realtime_outbox.delete().where(t.realtime_outbox.c.photo_id.in_(photo_ids)))
    conn.execute(t.face_vectors.delete().where(t.face_vectors.c.photo_id.in_(photo_ids)))
    conn.execute(t.face_quality.delete().where(t.face_quality.c.photo_id.in_(photo_ids)))
    conn.execute(t.engine_faces.delete().where(t.engine_faces.c.photo_id.in_(photo_ids)))
    conn.execute(t.face_clusters.delete().where(t.face_clusters.c.photo_id.in_(photo_ids)))
    conn.execute(t.photo_model_versions.delete().where(t.photo_model_versions.c.photo_id.in_(photo_ids)))
    conn.execute(t.faces.delete().where(t.faces.c.photo_id.in_(photo_ids)))
    conn.execute(t.photos.delete().where(t.photos.c.id.in_(photo_ids)))
