"""Engine-side ids of faces and users for collection engines such as Rekognition."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import _store_reference
from picsaris_pipeline.db.repository.faces import FacesRepository
from picsaris_pipeline.db.repository.rows import EngineFace, EngineUser
from picsaris_pipeline.domain.model import Attendee, Face, Photo


class EngineIdsRepository(FacesRepository):
    def store_engine_faces(
        self, photo: Photo, faces: Sequence[Face], model_version: str, collection_id: str, external_ids: Sequence[str]
    ) -> None:
        """Record which engine face id each of a photo's faces has under one model version (replacing
        what an earlier run recorded)."""
        if len(faces) != len(external_ids):
            raise ValueError("one engine face id per face")
        rows = [
            dict(face_id=f.id, collection_id=collection_id, external_face_id=external)
            for f, external in zip(faces, external_ids, strict=True)
        ]
        self._replace_photo_rows(t.engine_faces, photo, model_version, rows)

    def photo_engine_faces(self, photo_id: str, model_version: str | None = None) -> list[EngineFace]:
        """(face id, model version, engine face id) of a photo's faces, in face order."""
        query = (
            sa.select(t.engine_faces.c.face_id, t.engine_faces.c.model_version, t.engine_faces.c.external_face_id)
            .join(t.faces, t.faces.c.id == t.engine_faces.c.face_id)
            .where(t.engine_faces.c.photo_id == photo_id)
            .order_by(t.engine_faces.c.model_version, t.faces.c.face_index)
        )
        if model_version is not None:
            query = query.where(t.engine_faces.c.model_version == model_version)
        with self._read() as conn:
            return [EngineFace(r.face_id, r.model_version, r.external_face_id) for r in conn.execute(query).all()]

    def store_engine_user(
        self, attendee: Attendee, model_version: str, collection_id: str, user_id: str, face_id: str
    ) -> bool:
        """Record the engine's user and selfie face and mark the reference ready, in the transaction
        that re-reads consent: False (nothing recorded) if consent was withdrawn meanwhile, and the
        caller deletes what the engine enrolled."""
        with self._tx() as conn:
            return _store_reference(
                conn,
                attendee,
                t.engine_users,
                model_version,
                {"collection_id": collection_id, "external_user_id": user_id, "external_face_id": face_id},
            )

    def engine_users_of(self, attendee_id: str, model_version: str | None = None) -> list[EngineUser]:
        """(model version, engine user id, engine face id of the selfie) for an attendee."""
        query = sa.select(t.engine_users).where(t.engine_users.c.attendee_id == attendee_id)
        if model_version is not None:
            query = query.where(t.engine_users.c.model_version == model_version)
        with self._read() as conn:
            return [
                EngineUser(r.model_version, r.external_user_id, r.external_face_id)
                for r in conn.execute(query.order_by(t.engine_users.c.model_version)).all()
            ]

    def drop_engine_users(self, attendee_id: str) -> None:
        with self._tx() as conn:
            conn.execute(t.engine_users.delete().where(t.engine_users.c.attendee_id == attendee_id))

    def enrolled_attendees(self, event_id: str, model_version: str) -> dict[str, str]:
        """Engine user id -> attendee id for the event's consenting attendees under one model version."""
        query = (
            sa.select(t.engine_users.c.attendee_id, t.engine_users.c.external_user_id)
            .join(t.attendees, t.attendees.c.id == t.engine_users.c.attendee_id)
            .where(t.engine_users.c.event_id == event_id)
            .where(t.engine_users.c.model_version == model_version)
            .where(t.attendees.c.consent.is_(True))
        )
        with self._read() as conn:
            return {r.external_user_id: r.attendee_id for r in conn.execute(query).all()}
