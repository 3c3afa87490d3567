"""Giving and withdrawing consent to be matched, as the API calls it when a guest changes their mind.

Withdrawal takes effect everywhere at once: the guest's reference vectors, Rekognition user and
selfie face, and matches under every model version are deleted, and each photo they were matched in
is matched again without them (another guest may now be found in that face) and re-announced to
the event's gallery with the new guest list.
"""

from __future__ import annotations

import logging

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain import PhotoStatus
from picsaris_pipeline.faces.engine import CollectionFaceEngine, FaceEngine
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services.attendees import forget_enrollments
from picsaris_pipeline.services.delivery import deliver
from picsaris_pipeline.services.photos import match_photo
from picsaris_pipeline.services.versions import active_version

logger = logging.getLogger("picsaris.consent")


def withdraw_consent(
    repo: Repository, engine: FaceEngine, publisher: RealtimePublisher, attendee_id: str, min_similarity: float
) -> list[str]:
    """Returns the ids of the photos that were re-matched without the attendee."""
    attendee = repo.get_attendee(attendee_id)
    forget_enrollments(repo, engine, attendee)
    repo.withhold_faces_of(attendee.id)  # their faces leave the unknown-face clusters for good
    photo_ids = repo.set_consent(attendee.id, False)
    version = active_version(repo.get_event(attendee.event_id), engine.model_version)
    rematch_engine = engine if isinstance(engine, CollectionFaceEngine) and engine.model_version == version else None
    for photo_id in photo_ids:
        photo = repo.get_photo(photo_id)
        if photo.status is not PhotoStatus.PUBLISHED:
            continue
        if isinstance(engine, CollectionFaceEngine) and rematch_engine is None:
            continue  # the active version's collection is not this engine's: its photos keep the others' matches
        match_photo(repo, photo, version, min_similarity, rematch_engine)
        deliver(repo, publisher, photo.id)
    logger.info("attendee %s withdrew consent; %d photo(s) re-matched", attendee.id, len(photo_ids))
    return photo_ids


def give_consent(repo: Repository, attendee_id: str) -> None:
    """The selfie becomes pending again; the attendee's next run builds the reference and finds them
    in the photos already published (as for a late joiner)."""
    repo.set_consent(attendee_id, True)
