"""Per-attendee steps: sign-up selfie -> reference vector, then matching against the event's
existing faces so a guest who signs up late still finds the photos they are already in."""

from __future__ import annotations

import logging

from picsaris_pipeline import imaging
from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain import Attendee, PhotoStatus, ReferenceStatus
from picsaris_pipeline.errors import BadInputError, NotFoundError
from picsaris_pipeline.faces.engine import FaceEngine
from picsaris_pipeline.matching import candidates
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services.delivery import deliver
from picsaris_pipeline.services.photos import match_photo
from picsaris_pipeline.services.timing import Stopwatch
from picsaris_pipeline.storage import ObjectStore

logger = logging.getLogger("picsaris.attendees")


def build_reference(
    repo: Repository, store: ObjectStore, engine: FaceEngine, attendee_id: str
) -> tuple[Attendee, dict, dict]:
    """Turn the attendee's selfie into a reference vector under the engine's model version.
    Returns (attendee, details, timings); an unusable selfie marks the attendee rejected with a reason."""
    attendee = repo.get_attendee(attendee_id)
    watch = Stopwatch()
    if not attendee.consent:
        # No consent, no biometric data: the selfie is never turned into a vector (and any old one goes).
        repo.drop_attendee_vectors(attendee.id)
        repo.set_reference_status(attendee.id, ReferenceStatus.NO_CONSENT, "no consent: no face data is kept")
        return repo.get_attendee(attendee.id), {}, watch.ms
    if attendee.selfie_key is None:
        repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, "no sign-up selfie")
        return repo.get_attendee(attendee.id), {}, watch.ms
    try:
        with watch.lap("fetch"):
            data = store.get(attendee.selfie_key)
        with watch.lap("decode"):
            image = imaging.decode_photo(data).image
    except NotFoundError:
        # Sign-up writes the record before the selfie lands: wait for it rather than reject for good.
        repo.set_reference_status(attendee.id, ReferenceStatus.PENDING, "the selfie is not in the bucket yet")
        return repo.get_attendee(attendee.id), {}, watch.ms
    except BadInputError as error:
        repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, f"selfie unusable: {error}")
        return repo.get_attendee(attendee.id), {}, watch.ms
    with watch.lap("detect"):
        boxes = engine.detect(image)
    if not boxes:
        repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, "no face found in the selfie")
        return repo.get_attendee(attendee.id), {"faces_in_selfie": 0}, watch.ms
    # The largest face is the person taking the selfie; others are bystanders.
    with watch.lap("embed"):
        vector = engine.embed(image, boxes[:1])[0]
    repo.store_attendee_vector(attendee, engine.model_version, vector)
    details = {"faces_in_selfie": len(boxes), "model_version": engine.model_version}
    return repo.get_attendee(attendee.id), details, watch.ms


def match_late_joiner(
    repo: Repository, publisher: RealtimePublisher, attendee_id: str, model_version: str, min_similarity: float
) -> list[str]:
    """Re-match the already published photos that hold a face close to this attendee's reference.
    Returns the ids of the photos where the attendee is now matched."""
    attendee = repo.get_attendee(attendee_id)
    reference = repo.attendee_vector(attendee.id, model_version)
    if reference is None or not attendee.consent:
        return []
    owners, vectors = repo.event_face_vectors(attendee.event_id, model_version)
    found: list[str] = []
    for photo_id in sorted(candidates(reference, vectors, owners, min_similarity)):
        photo = repo.get_photo(photo_id)
        if photo.status not in (PhotoStatus.EMBEDDED, PhotoStatus.PUBLISHED):
            continue
        # Embedded photos too: their own matching may already have read the references without this
        # attendee; re-matching is idempotent, and only published photos are announced here.
        rows = match_photo(repo, photo, model_version, min_similarity)  # enqueues what changed
        if photo.status is PhotoStatus.PUBLISHED and any(a == attendee.id for _, a, _ in rows):
            found.append(photo_id)
            deliver(repo, publisher, photo.id)
    return found
