"""Health checks over the stored data: consent, stuck photos, face data kept without consent."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import RepositoryBase
from picsaris_pipeline.db.repository.rows import _photo
from picsaris_pipeline.domain import Photo, PhotoStatus, ReferenceStatus


class HealthRepository(RepositoryBase):
    def matches_without_consent(self, limit: int = 20) -> tuple[int, list[tuple[str, str]]]:
        """(count, examples of (photo_id, attendee_id)) of matches to attendees who did not consent."""
        condition = t.attendees.c.consent.is_(False)
        joined = t.matches.join(t.attendees, t.attendees.c.id == t.matches.c.attendee_id)
        with self._read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(joined).where(condition)).scalar_one()
            rows = conn.execute(
                sa.select(t.matches.c.photo_id, t.matches.c.attendee_id)
                .select_from(joined)
                .where(condition)
                .limit(limit)
            ).all()
        return int(count), [(r.photo_id, r.attendee_id) for r in rows]

    def photos_stuck_since(self, before: datetime, limit: int = 20) -> tuple[int, list[Photo]]:
        """(count, oldest examples) of photos on their way to published not updated since before."""
        condition = t.photos.c.status.in_([s.value for s in PhotoStatus if s.needs_processing]) & (
            t.photos.c.updated_at < before
        )
        with self._read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(t.photos).where(condition)).scalar_one()
            rows = conn.execute(sa.select(t.photos).where(condition).order_by(t.photos.c.updated_at).limit(limit)).all()
        return int(count), [_photo(r) for r in rows]

    def face_data_without_consent(self, limit: int = 20) -> tuple[int, list[str]]:
        """Attendees without consent who still have face data: a reference vector, an engine user,
        or a reference marked ready. Must be zero; returns (count, examples)."""
        has_vector = (
            sa.select(t.attendee_vectors.c.attendee_id)
            .where(t.attendee_vectors.c.attendee_id == t.attendees.c.id)
            .exists()
        )
        has_user = (
            sa.select(t.engine_users.c.attendee_id).where(t.engine_users.c.attendee_id == t.attendees.c.id).exists()
        )
        condition = t.attendees.c.consent.is_(False) & (
            has_vector | has_user | (t.attendees.c.reference_status == ReferenceStatus.READY.value)
        )
        query = sa.select(
            t.attendees.c.id, t.attendees.c.event_id, t.attendees.c.reference_status, has_vector.label("vector")
        ).where(condition)
        with self._read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(t.attendees).where(condition)).scalar_one()
            rows = conn.execute(query.order_by(t.attendees.c.id).limit(limit)).all()
        return int(count), [
            f"{r.id} (event {r.event_id}): reference {r.reference_status}, "
            f"{'a reference vector' if r.vector else 'an engine user'} kept"
            for r in rows
        ]
