"""One photo through the matching policy (match_policy.decide) with what the database holds: every
reference of every consenting guest, the guests' earlier "this is me" / "not me" answers, and the
candidate tier's private messages."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from picsaris_pipeline.db.repository import CANDIDATE_CONFIRMED, CANDIDATE_REFUSED, PolicyWrite, Repository
from picsaris_pipeline.domain.match_policy import (
    DEFAULT_POLICY,
    MatchPolicy,
    attendee_scores,
    crowding_bias,
    decide,
    guest_crowding,
)
from picsaris_pipeline.domain.model import Photo
from picsaris_pipeline.realtime import RealtimeMessage
from picsaris_pipeline.services import face_quality


def policy_for(min_similarity: float | None) -> MatchPolicy:
    """The policy under a configured confident bar (PICSARIS_MATCH_THRESHOLD); None: the default."""
    if min_similarity is None or abs(min_similarity - DEFAULT_POLICY.min_similarity) < 1e-9:
        return DEFAULT_POLICY
    return DEFAULT_POLICY.with_min_similarity(min_similarity)


def collection_policy_id(min_similarity: float) -> str:
    """Collection engines (Rekognition) match server-side and keep the plain threshold rule."""
    return f"collection-s{min_similarity:g}"


@dataclass(frozen=True)
class PhotoDecision:
    rows: list[tuple[str, str, float]]  # (face_id, attendee_id, similarity): the matches
    candidates: list[tuple[str, str, float]]  # proposed to that guest alone
    references: list[tuple[str, str, np.ndarray, str]]  # (face_id, attendee_id, vector, source)


def decide_photo(
    repo: Repository,
    photo: Photo,
    model_version: str,
    policy: MatchPolicy,
    matchable: Sequence[bool] | np.ndarray | None = None,
) -> PhotoDecision:
    """The policy's decision for one photo under one model version. matchable: per face of the
    photo (in face order), False for a face the quality gate says is not fit to match."""
    face_ids, vectors = repo.photo_vectors(photo.id, model_version)
    attendee_ids, owners, references = repo.event_reference_sets(photo.event_id, model_version)
    scores = attendee_scores(vectors, references, owners, len(attendee_ids))
    column = {attendee: i for i, attendee in enumerate(attendee_ids)}
    row_of = {face: i for i, face in enumerate(face_ids)}
    excluded = np.zeros(scores.shape, dtype=bool)
    forced: list[tuple[int, int]] = []
    for attendee, (status, face) in repo.photo_candidates(photo.id).items():
        if attendee not in column:
            continue  # withdrew consent or left: neither matched nor proposed
        if status == CANDIDATE_REFUSED:
            excluded[:, column[attendee]] = True
        elif status == CANDIDATE_CONFIRMED and face in row_of:
            forced.append((row_of[face], column[attendee]))
    # The detector's quality gate: a face too small, blurred or turned away is neither matched nor proposed.
    mask = face_quality.matchable_mask(repo, face_ids) if matchable is None else np.asarray(matchable, dtype=bool)
    # Crowding is measured on the sign-up selfies alone (event_reference_sets lists them first, one
    # per guest), so a guest's bar does not drift as confirmed faces are added to their references.
    bias = None
    if policy.crowding_weight:
        bias = crowding_bias(_event_crowding(references[: len(attendee_ids)], policy.crowding_neighbours), policy)
    decision = decide(scores, policy, mask, excluded, forced, bias)
    confirmed = set(forced)
    rows = [(face_ids[a.face_index], attendee_ids[a.attendee_index], a.similarity) for a in decision.matches]
    candidates = [(face_ids[a.face_index], attendee_ids[a.attendee_index], a.similarity) for a in decision.candidates]
    new_references = [
        (face_ids[a.face_index], attendee_ids[a.attendee_index], vectors[a.face_index], "matched")
        for a in decision.references
        if (a.face_index, a.attendee_index) not in confirmed
    ]
    new_references += [
        (face_ids[face], attendee_ids[attendee], vectors[face], "confirmed") for face, attendee in forced
    ]
    return PhotoDecision(rows, candidates, new_references)


# Crowding of the last few guest lists seen, keyed by the selfies' bytes: every photo of a batch
# shares its event's list, and comparing 400 selfies with each other costs ~8 ms a photo otherwise.
_CROWDING: dict[tuple[bytes, int], np.ndarray] = {}


def _event_crowding(selfies: np.ndarray, neighbours: int) -> np.ndarray:
    key = (hashlib.blake2b(np.ascontiguousarray(selfies).tobytes(), digest_size=16).digest(), neighbours)
    if key not in _CROWDING:
        if len(_CROWDING) >= 8:
            _CROWDING.clear()
        _CROWDING[key] = guest_crowding(selfies, neighbours)
    return _CROWDING[key]


def policy_write(policy: MatchPolicy, decision: PhotoDecision, announce: bool) -> PolicyWrite:
    """What replace_matches writes beside the matches. Candidates are proposed under the version
    guests see only; a re-embedding in progress leaves them alone."""
    return PolicyWrite(
        policy.id,
        candidates=decision.candidates if announce else None,
        references=decision.references,
        max_references=policy.max_references - 1,  # the selfie is one
    )


def candidate_messages(event_id: str, photo_id: str, attendee_ids: Sequence[str]) -> list[RealtimeMessage]:
    """One private message per candidate guest, on that guest's own topic only: never the event's
    gallery. Its payload differs from a match's, so a confirmation re-sends as "photo_matched"."""
    return [
        RealtimeMessage(
            f"attendee:{attendee_id}",
            "photo_candidate",
            {"event_id": event_id, "photo_id": photo_id, "candidate": True},
            private=True,
        )
        for attendee_id in attendee_ids
    ]
