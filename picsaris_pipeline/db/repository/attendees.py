"""Attendees: sign-up, consent, selfies and their reference vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import (
    SETTLED_REFERENCES,
    _from_blobs,
    _has_row,
    _lock_attendees,
    _narrowed,
    _now,
    _store_reference,
    _to_blob,
)
from picsaris_pipeline.db.repository.events import EventsRepository
from picsaris_pipeline.db.repository.rows import References, _attendee
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.keys import selfie_key
from picsaris_pipeline.domain.model import Attendee, ReferenceStatus, checked_name


class AttendeesRepository(EventsRepository):
    def add_attendee(
        self, event_id: str, name: str, consent: bool, selfie_file_name: str | None, selfie_ext: str | None
    ) -> Attendee:
        self.get_event(event_id)
        name = checked_name(name, "an attendee")
        attendee_id = new_id()
        self._insert_new(
            t.attendees,
            attendee_id,
            event_id=event_id,
            name=name,
            consent=consent,
            selfie_key=selfie_key(event_id, attendee_id, selfie_ext) if selfie_ext else None,
            selfie_file_name=selfie_file_name,
            reference_status=ReferenceStatus.PENDING.value,
            reason=None,
        )
        return self.get_attendee(attendee_id)

    def attendees_by_ids(self, attendee_ids: Sequence[str]) -> dict[str, Attendee]:
        """The attendees among these ids (malformed or unknown ids are simply absent)."""
        return self._by_ids(t.attendees, attendee_ids, _attendee)

    def set_consent(self, attendee_id: str, consent: bool) -> list[str]:
        """Give or withdraw consent. Withdrawing deletes the attendee's reference vectors, engine
        users and matches under every model version, in one transaction, and returns the ids of the
        photos they were matched in (to be re-matched and re-announced without them). Giving it
        back leaves the selfie pending, for a new reference to be built."""
        attendee = self.get_attendee(attendee_id)
        with self._tx() as conn:
            # First, so a writer of face data that re-read consent finishes before this runs (and
            # this transaction's deletes see what it stored), or waits and then sees no consent.
            _lock_attendees(conn, [attendee.id], share=False)
            photo_ids = sorted(
                {
                    r.photo_id
                    for r in conn.execute(
                        sa.select(t.matches.c.photo_id).where(t.matches.c.attendee_id == attendee.id)
                    ).all()
                }
            )
            if consent:
                status, reason = ReferenceStatus.PENDING, None
            else:
                conn.execute(t.matches.delete().where(t.matches.c.attendee_id == attendee.id))
                conn.execute(t.attendee_vectors.delete().where(t.attendee_vectors.c.attendee_id == attendee.id))
                conn.execute(t.engine_users.delete().where(t.engine_users.c.attendee_id == attendee.id))
                conn.execute(
                    t.attendee_model_versions.delete().where(t.attendee_model_versions.c.attendee_id == attendee.id)
                )
                status, reason = ReferenceStatus.NO_CONSENT, "consent withdrawn: no face data is kept"
            conn.execute(
                t.attendees.update()
                .where(t.attendees.c.id == attendee.id)
                .values(consent=consent, reference_status=status.value, reason=reason, updated_at=_now())
            )
        return [] if consent else photo_ids

    def get_attendee(self, attendee_id: str) -> Attendee:
        return self._by_id(t.attendees, attendee_id, "attendee", _attendee)

    def list_attendees(self, event_id: str) -> list[Attendee]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t.attendees).where(t.attendees.c.event_id == event_id).order_by(t.attendees.c.id)
            ).all()
        return [_attendee(r) for r in rows]

    def set_reference_status(self, attendee_id: str, status: ReferenceStatus, reason: str | None = None) -> None:
        with self._tx() as conn:
            conn.execute(
                t.attendees.update()
                .where(t.attendees.c.id == attendee_id)
                .values(reference_status=status.value, reason=reason, updated_at=_now())
            )

    def attendees_needing_reference(self, model_version: str, event_id: str | None = None) -> list[Attendee]:
        """Attendees with a selfie but no reference (vector or engine user) under this model version,
        not yet rejected."""
        has_vector = _has_row(t.attendee_vectors, "attendee_id", t.attendees.c.id, model_version) | _has_row(
            t.engine_users, "attendee_id", t.attendees.c.id, model_version
        )
        query = (
            sa.select(t.attendees)
            .where(t.attendees.c.selfie_key.is_not(None))
            .where(~has_vector)
            .where(t.attendees.c.reference_status.not_in([status.value for status in SETTLED_REFERENCES]))
            .order_by(t.attendees.c.id)
        )
        query = _narrowed(query, (t.attendees.c.event_id, event_id))
        with self._read() as conn:
            return [_attendee(r) for r in conn.execute(query).all()]

    def store_attendee_vector(self, attendee: Attendee, model_version: str, vector: np.ndarray) -> bool:
        """Store the reference vector and mark it ready, in the transaction that re-reads consent:
        False (nothing stored) if the attendee withdrew consent since the vector was computed."""
        with self._tx() as conn:
            # Replace, not add: re-running an attendee under the same version leaves one vector.
            return _store_reference(
                conn,
                attendee,
                t.attendee_vectors,
                model_version,
                {"dimension": int(vector.shape[-1]), "vector": _to_blob(vector)},
            )

    def drop_attendee_vectors(self, attendee_id: str) -> None:
        with self._tx() as conn:
            conn.execute(t.attendee_vectors.delete().where(t.attendee_vectors.c.attendee_id == attendee_id))
            # The extra references too (match policy): confirmed and strongly matched faces.
            conn.execute(t.attendee_references.delete().where(t.attendee_references.c.attendee_id == attendee_id))

    def event_references(self, event_id: str, model_version: str) -> References:
        """Reference vectors of the event's consenting attendees under one model version."""
        query = _consenting_vectors(t.attendee_vectors, event_id, model_version).order_by(
            t.attendee_vectors.c.attendee_id
        )
        return References(*self._owned_vectors(query))

    def attendee_vector(self, attendee_id: str, model_version: str) -> np.ndarray | None:
        query = sa.select(t.attendee_vectors.c.vector, t.attendee_vectors.c.dimension).where(
            (t.attendee_vectors.c.attendee_id == attendee_id) & (t.attendee_vectors.c.model_version == model_version)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _from_blobs([row.vector], row.dimension)[0]

    def forget_selfie(self, attendee_id: str, reason: str, reason_if_consenting: str) -> Attendee:
        """Record that the attendee's selfie image was deleted from the bucket (its key is cleared;
        the file name stays, so we know there was one) with the reason. If consent came back while
        it was being deleted, the attendee cannot become ready without a new selfie: rejected with
        reason_if_consenting."""
        with self._tx() as conn:
            consent = _lock_attendees(conn, [attendee_id], share=False).get(attendee_id)
            values: dict[str, Any] = {"selfie_key": None, "reason": reason, "updated_at": _now()}
            if consent:
                values |= {"reference_status": ReferenceStatus.REJECTED.value, "reason": reason_if_consenting}
            conn.execute(t.attendees.update().where(t.attendees.c.id == attendee_id).values(**values))
        return self.get_attendee(attendee_id)

    def set_selfie(self, attendee_id: str, selfie_file_name: str, selfie_ext: str) -> Attendee:
        """A new sign-up selfie for an attendee (after the old one was deleted): its key under the
        upload contract, and the reference pending again."""
        attendee = self.get_attendee(attendee_id)
        key = selfie_key(attendee.event_id, attendee.id, selfie_ext)
        with self._tx() as conn:
            conn.execute(
                t.attendees.update()
                .where(t.attendees.c.id == attendee.id)
                .values(
                    selfie_key=key,
                    selfie_file_name=selfie_file_name[:255],
                    reference_status=ReferenceStatus.PENDING.value,
                    reason=None,
                    updated_at=_now(),
                )
            )
        return self.get_attendee(attendee.id)


def _consenting_vectors(table: sa.Table, event_id: str, model_version: str) -> sa.Select[Any]:
    """(owner: attendee id, vector, dimension) of table's rows for the event's consenting attendees
    under one model version (their selfie vectors, or their extra references)."""
    return (
        sa.select(table.c.attendee_id.label("owner"), table.c.vector, table.c.dimension)
        .join(t.attendees, t.attendees.c.id == table.c.attendee_id)
        .where(table.c.event_id == event_id)
        .where(table.c.model_version == model_version)
        .where(t.attendees.c.consent.is_(True))
    )
