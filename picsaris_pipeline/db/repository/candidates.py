"""The matching policy: candidates, extra references and policy markers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.attendees import AttendeesRepository, _consenting_vectors
from picsaris_pipeline.db.repository.base import _check_id, _from_blobs, _narrowed, _now, _to_blob
from picsaris_pipeline.db.repository.rows import (
    CANDIDATE_CONFIRMED,
    CANDIDATE_PROPOSED,
    CANDIDATE_REFUSED,
    CandidateRow,
    CandidateState,
    ReferenceSets,
    _candidate,
    _photo,
)
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.model import Photo, PhotoStatus
from picsaris_pipeline.errors import BadInputError, NotFoundError


@dataclass(frozen=True)
class PolicyWrite:
    """What a policy decided for one photo beyond its matches, written with them by replace_matches."""

    policy_id: str
    # (face_id, attendee_id, similarity) proposed now; None: leave the photo's candidates as they are
    candidates: Sequence[tuple[str, str, float]] | None = ()
    references: Sequence[tuple[str, str, np.ndarray, str]] = ()  # (face_id, attendee_id, vector, source)
    max_references: int = 8  # extra references per attendee and version


class CandidatesRepository(AttendeesRepository):
    def event_reference_sets(self, event_id: str, model_version: str) -> ReferenceSets:
        """Every reference of the event's consenting attendees under one version: the selfie vectors
        and the extra references. Returns (attendee ids, owner index into them per vector, vectors)."""
        attendee_ids, selfies = self.event_references(event_id, model_version)
        index = {attendee: i for i, attendee in enumerate(attendee_ids)}
        query = _consenting_vectors(t.attendee_references, event_id, model_version).order_by(
            t.attendee_references.c.attendee_id, t.attendee_references.c.id
        )
        with self._read() as conn:
            extra = [r for r in conn.execute(query).all() if r.owner in index]
        owners = list(range(len(attendee_ids))) + [index[r.owner] for r in extra]
        if not extra:
            return ReferenceSets(attendee_ids, owners, selfies)
        vectors = _from_blobs([r.vector for r in extra], extra[0].dimension)
        return ReferenceSets(attendee_ids, owners, np.concatenate([selfies, vectors]) if len(selfies) else vectors)

    def attendee_reference_count(self, attendee_id: str, model_version: str) -> int:
        """Extra references (beyond the selfie) of one attendee under one version."""
        query = (
            sa.select(sa.func.count())
            .select_from(t.attendee_references)
            .where(t.attendee_references.c.attendee_id == attendee_id)
            .where(t.attendee_references.c.model_version == model_version)
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def photo_candidates(self, photo_id: str) -> dict[str, CandidateState]:
        """attendee id -> (status, face id) of every candidate row of one photo."""
        query = sa.select(
            t.match_candidates.c.attendee_id, t.match_candidates.c.status, t.match_candidates.c.face_id
        ).where(t.match_candidates.c.photo_id == photo_id)
        with self._read() as conn:
            return {r.attendee_id: CandidateState(r.status, r.face_id) for r in conn.execute(query).all()}

    def list_candidates(
        self, event_id: str, attendee_id: str | None = None, status: str | None = None
    ) -> list[CandidateRow]:
        query = (
            sa.select(t.match_candidates)
            .where(t.match_candidates.c.event_id == event_id)
            .order_by(t.match_candidates.c.photo_id, t.match_candidates.c.attendee_id)
        )
        query = _narrowed(query, (t.match_candidates.c.attendee_id, attendee_id), (t.match_candidates.c.status, status))
        with self._read() as conn:
            return [_candidate(r) for r in conn.execute(query).all()]

    def get_candidate(self, photo_id: str, attendee_id: str) -> CandidateRow:
        _check_id(photo_id, "photo")
        _check_id(attendee_id, "attendee")
        query = sa.select(t.match_candidates).where(
            (t.match_candidates.c.photo_id == photo_id) & (t.match_candidates.c.attendee_id == attendee_id)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"attendee {attendee_id} has no candidate match in photo {photo_id}")
        return _candidate(row)

    def decide_candidate(self, photo_id: str, attendee_id: str, status: str) -> bool:
        """Mark a proposed candidate confirmed or refused. False if it was already decided that way;
        a decided candidate cannot be decided the other way (a refusal is final, so is a confirmation)."""
        if status not in (CANDIDATE_CONFIRMED, CANDIDATE_REFUSED):
            raise ValueError(f"unknown candidate decision {status!r}")
        current = self.get_candidate(photo_id, attendee_id)
        if current.status == status:
            return False
        if current.status != CANDIDATE_PROPOSED:
            raise BadInputError(
                f"attendee {attendee_id} already {current.status} photo {photo_id}; that decision is final"
            )
        now = _now()
        with self._tx() as conn:
            changed = conn.execute(
                t.match_candidates.update()
                .where(t.match_candidates.c.photo_id == photo_id)
                .where(t.match_candidates.c.attendee_id == attendee_id)
                .where(t.match_candidates.c.status == CANDIDATE_PROPOSED)
                .values(status=status, decided_at=now, updated_at=now)
            ).rowcount
        return bool(changed)

    def photo_policy(self, photo_id: str, model_version: str) -> str | None:
        query = sa.select(t.photo_match_policies.c.policy_id).where(
            (t.photo_match_policies.c.photo_id == photo_id) & (t.photo_match_policies.c.model_version == model_version)
        )
        with self._read() as conn:
            return conn.execute(query).scalar()

    def photos_matched_under_other_policy(self, event_id: str, model_version: str, policy_id: str) -> list[Photo]:
        """Published photos of the event whose last matching under this version used another policy
        (or none: matched before there was one)."""
        marker = (
            sa.select(t.photo_match_policies.c.photo_id)
            .where(t.photo_match_policies.c.model_version == model_version)
            .where(t.photo_match_policies.c.policy_id == policy_id)
        )
        query = (
            sa.select(t.photos)
            .where(t.photos.c.event_id == event_id)
            .where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
            .where(t.photos.c.id.not_in(marker))
            .order_by(t.photos.c.id)
        )
        with self._read() as conn:
            return [_photo(r) for r in conn.execute(query).all()]


def _write_policy(conn: Connection, photo: Photo, model_version: str, policy: PolicyWrite, now: datetime) -> None:
    """The photo's proposed candidates become exactly policy.candidates (decided ones are kept: a
    refusal is never proposed again, a confirmation is a match); new references are added up to the
    cap, consenting attendees only; the photo is marked matched under the policy."""
    decided = {
        r.attendee_id
        for r in conn.execute(
            sa.select(t.match_candidates.c.attendee_id)
            .where(t.match_candidates.c.photo_id == photo.id)
            .where(t.match_candidates.c.status != CANDIDATE_PROPOSED)
        ).all()
    }
    if policy.candidates is not None:
        conn.execute(
            t.match_candidates.delete()
            .where(t.match_candidates.c.photo_id == photo.id)
            .where(t.match_candidates.c.status == CANDIDATE_PROPOSED)
        )
    fresh = [c for c in policy.candidates or () if c[1] not in decided]
    if fresh:
        conn.execute(
            t.match_candidates.insert(),
            [
                dict(
                    photo_id=photo.id,
                    attendee_id=attendee_id,
                    event_id=photo.event_id,
                    model_version=model_version,
                    face_id=face_id,
                    similarity=float(similarity),
                    policy_id=policy.policy_id,
                    status=CANDIDATE_PROPOSED,
                    decided_at=None,
                    created_at=now,
                    updated_at=now,
                )
                for face_id, attendee_id, similarity in fresh
            ],
        )
    for face_id, attendee_id, vector, source in policy.references:
        consenting = conn.execute(sa.select(t.attendees.c.consent).where(t.attendees.c.id == attendee_id)).scalar()
        held = conn.execute(
            sa.select(t.attendee_references.c.photo_id)
            .where(t.attendee_references.c.attendee_id == attendee_id)
            .where(t.attendee_references.c.model_version == model_version)
        ).all()
        if not consenting or len(held) >= policy.max_references or any(r.photo_id == photo.id for r in held):
            continue
        conn.execute(
            t.attendee_references.insert().values(
                id=new_id(),
                attendee_id=attendee_id,
                event_id=photo.event_id,
                model_version=model_version,
                photo_id=photo.id,
                face_id=face_id,
                source=source,
                dimension=int(vector.shape[-1]),
                vector=_to_blob(vector),
                created_at=now,
            )
        )
    key = (t.photo_match_policies.c.photo_id == photo.id) & (t.photo_match_policies.c.model_version == model_version)
    conn.execute(t.photo_match_policies.delete().where(key))
    conn.execute(
        t.photo_match_policies.insert().values(
            photo_id=photo.id,
            model_version=model_version,
            event_id=photo.event_id,
            policy_id=policy.policy_id,
            matched_at=now,
        )
    )
