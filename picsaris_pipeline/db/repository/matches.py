"""A photo's matches per model version, written with their announcements and policy in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import RepositoryBase, _consenting, _narrowed, _now, _replace_rows
from picsaris_pipeline.db.repository.candidates import PolicyWrite, _write_policy
from picsaris_pipeline.db.repository.outbox import _enqueue
from picsaris_pipeline.domain.model import MatchRow, Photo
from picsaris_pipeline.realtime import RealtimeMessage


class MatchesRepository(RepositoryBase):
    def replace_matches(
        self,
        photo: Photo,
        model_version: str,
        rows: Sequence[tuple[str, str, float]],
        messages: Sequence[RealtimeMessage] = (),
        policy: PolicyWrite | None = None,
    ) -> set[str]:
        """Set a photo's matches under one model version to exactly rows of (face_id, attendee_id,
        similarity), in one transaction, so a re-run never duplicates or leaves stale matches; and
        enqueue the messages announcing them in the same transaction (see _enqueue). With a policy:
        the policy id on every match, the photo's candidates and new references (see _write_policy).

        The transaction first re-reads the consent of the attendees matched or proposed: if any
        withdrew it since the rows were computed, nothing is stored and their ids are returned
        (match again without them)."""
        now = _now()
        with self._tx() as conn:
            matched = {attendee_id for _, attendee_id, _ in rows}
            if policy is not None:  # a candidate is face data proposed to a guest: consent holds for it too
                matched |= {attendee_id for _, attendee_id, _ in policy.candidates or ()}
            withdrawn = matched - _consenting(conn, matched)
            if withdrawn:
                return withdrawn
            _enqueue(conn, photo, model_version, messages, now)
            stored = [
                dict(
                    attendee_id=attendee_id,
                    event_id=photo.event_id,
                    face_id=face_id,
                    similarity=float(similarity),
                    created_at=now,
                    policy_id=policy.policy_id if policy else None,
                )
                for face_id, attendee_id, similarity in rows
            ]
            _replace_rows(conn, t.matches, {"photo_id": photo.id, "model_version": model_version}, stored)
            if policy is not None:
                _write_policy(conn, photo, model_version, policy, now)
        return set()

    def list_matches(
        self, event_id: str, photo_id: str | None = None, model_version: str | None = None
    ) -> list[MatchRow]:
        query = (
            sa.select(
                t.matches.c.photo_id,
                t.photos.c.file_name,
                t.matches.c.attendee_id,
                t.attendees.c.name,
                t.matches.c.similarity,
                t.matches.c.model_version,
                t.matches.c.face_id,
            )
            .join(t.photos, t.photos.c.id == t.matches.c.photo_id)
            .join(t.attendees, t.attendees.c.id == t.matches.c.attendee_id)
            .where(t.matches.c.event_id == event_id)
            .order_by(t.matches.c.photo_id, t.attendees.c.name)
        )
        query = _narrowed(query, (t.matches.c.photo_id, photo_id), (t.matches.c.model_version, model_version))
        with self._read() as conn:
            return [
                MatchRow(
                    r.photo_id, r.file_name, r.attendee_id, r.name, float(r.similarity), r.model_version, r.face_id
                )
                for r in conn.execute(query).all()
            ]

    def match_counts(self, event_id: str, model_version: str | None = None) -> dict[str, int]:
        query = (
            sa.select(t.matches.c.photo_id, sa.func.count())
            .where(t.matches.c.event_id == event_id)
            .group_by(t.matches.c.photo_id)
        )
        query = _narrowed(query, (t.matches.c.model_version, model_version))
        with self._read() as conn:
            return {photo_id: int(count) for photo_id, count in conn.execute(query).all()}
