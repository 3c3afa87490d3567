"""Health checks over the stored data: consent, stuck photos, face data kept without consent."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import RepositoryBase, _count_and_examples
from picsaris_pipeline.db.repository.rows import Counted, MatchedAttendee, _photo
from picsaris_pipeline.domain.model import Photo, PhotoStatus, ReferenceStatus


class HealthRepository(RepositoryBase):
    def matches_without_consent(self, limit: int = 20) -> Counted[MatchedAttendee]:
        """Matches to attendees who did not consent: (count, examples)."""
        condition = t.attendees.c.consent.is_(False)
        joined = t.matches.join(t.attendees, t.attendees.c.id == t.matches.c.attendee_id)
        examples = sa.select(t.matches.c.photo_id, t.matches.c.attendee_id).select_from(joined).limit(limit)
        with self._read() as conn:
            count, rows = _count_and_examples(conn, joined, condition, examples)
        return Counted(count, [MatchedAttendee(r.photo_id, r.attendee_id) for r in rows])

    def photos_stuck_since(self, before: datetime, limit: int = 20) -> Counted[Photo]:
        """Photos on their way to published not updated since before: (count, oldest examples)."""
        condition = t.photos.c.status.in_([s.value for s in PhotoStatus if s.needs_processing]) & (
            t.photos.c.updated_at < before
        )
        examples = sa.select(t.photos).order_by(t.photos.c.updated_at).limit(limit)
        with self._read() as conn:
            count, rows = _count_and_examples(conn, t.photos, condition, examples)
        return Counted(count, [_photo(r) for r in rows])

    def face_data_without_consent(self, limit: int = 20) -> Counted[str]:
        """Attendees without consent who still have face data: a reference vector, an engine user,
        or a reference marked ready. Must be zero; returns (count, examples)."""
        has_vector, has_user = (
            sa.select(table.c.attendee_id).where(table.c.attendee_id == t.attendees.c.id).exists()
            for table in (t.attendee_vectors, t.engine_users)
        )
        condition = t.attendees.c.consent.is_(False) & (
            has_vector | has_user | (t.attendees.c.reference_status == ReferenceStatus.READY.value)
        )
        examples = (
            sa.select(
                t.attendees.c.id, t.attendees.c.event_id, t.attendees.c.reference_status, has_vector.label("vector")
            )
            .order_by(t.attendees.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            count, rows = _count_and_examples(conn, t.attendees, condition, examples)
        return Counted(
            count,
            [
                f"{r.id} (event {r.event_id}): reference {r.reference_status}, "
                f"{'a reference vector' if r.vector else 'an engine user'} kept"
                for r in rows
            ],
        )
