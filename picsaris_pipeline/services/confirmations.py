"""A guest's answer to a candidate match ("is this you?"), as the upload API and `picsaris match
confirm|refuse` call it.

A candidate is a face below the policy's confident bar but above its loose one, proposed to the
nearest guest alone on their private topic (services/policy_matching.py). Confirmed: it becomes a
match (announced like any other) and, the guest consenting, one more reference for their later
photos. Refused: it is never proposed again, nor matched to that guest in that photo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from picsaris_pipeline.db.repository import CANDIDATE_CONFIRMED, CANDIDATE_REFUSED, Repository
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.errors import BadInputError
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services.delivery import deliver
from picsaris_pipeline.services.photos import match_photo

logger = logging.getLogger("picsaris.confirmations")


@dataclass(frozen=True)
class Answer:
    photo_id: str
    attendee_id: str
    status: str  # confirmed | refused
    changed: bool  # False: the same answer was already recorded (answering twice is harmless)
    matched: bool  # the guest is now matched in the photo


def confirm(
    repo: Repository, publisher: RealtimePublisher, photo_id: str, attendee_id: str, min_similarity: float
) -> Answer:
    """The guest says "this is me": the candidate becomes a match (and a reference) and is announced."""
    candidate = repo.get_candidate(photo_id, attendee_id)
    attendee = repo.get_attendee(attendee_id)
    if not attendee.consent:
        raise BadInputError(f"attendee {attendee_id} has not consented to face matching; nothing to confirm")
    changed = repo.decide_candidate(photo_id, attendee_id, CANDIDATE_CONFIRMED)
    photo = repo.get_photo(photo_id)
    rows = []
    if photo.status is PhotoStatus.PUBLISHED:
        rows = match_photo(repo, photo, candidate.model_version, min_similarity)
        deliver(repo, publisher, photo.id)
    matched = any(a == attendee_id for _, a, _ in rows)
    logger.info("attendee %s confirmed photo %s (matched: %s)", attendee_id, photo_id, matched)
    return Answer(photo_id, attendee_id, CANDIDATE_CONFIRMED, changed, matched)


def refuse(repo: Repository, photo_id: str, attendee_id: str) -> Answer:
    """The guest says "not me": the candidate is never proposed to them again."""
    repo.get_attendee(attendee_id)
    changed = repo.decide_candidate(photo_id, attendee_id, CANDIDATE_REFUSED)
    logger.info("attendee %s refused photo %s", attendee_id, photo_id)
    return Answer(photo_id, attendee_id, CANDIDATE_REFUSED, changed, False)
