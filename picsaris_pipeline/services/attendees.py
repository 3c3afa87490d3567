"""Per-attendee steps: sign-up selfie -> reference vector, then matching against the event's
existing faces so a guest who signs up late still finds the photos they are already in."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import PurePath

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain import imaging
from picsaris_pipeline.domain.model import Attendee, PhotoStatus, ReferenceStatus
from picsaris_pipeline.errors import BadInputError, NotFoundError
from picsaris_pipeline.faces.engine import FaceEngine
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services import versions
from picsaris_pipeline.services.delivery import deliver
from picsaris_pipeline.services.discovery import STALE_AFTER
from picsaris_pipeline.services.engine_strategy import LateJoiner, strategy_for
from picsaris_pipeline.services.photos import match_photo
from picsaris_pipeline.services.timing import Stopwatch
from picsaris_pipeline.storage import ObjectStore

logger = logging.getLogger("picsaris.attendees")

NO_CONSENT = "no consent: no face data is kept"
SELFIE_DELETED = f"{NO_CONSENT}; the selfie image was deleted from the bucket"
NEW_SELFIE_NEEDED = (
    "consent given, but the selfie image was deleted when there was no consent: a new selfie is needed "
    "(services.attendees.replace_selfie, or sign up again)"
)
# A selfie the bucket still lacks this long after sign-up is not coming (the same window after
# which the bucket sensor relaunches a lost run).
SELFIE_MISSING_AFTER = STALE_AFTER


def build_reference(
    repo: Repository, store: ObjectStore, engine: FaceEngine, attendee_id: str
) -> tuple[Attendee, dict, dict]:
    """Turn the attendee's selfie into a reference vector under the engine's model version.
    Returns (attendee, details, timings); an unusable selfie marks the attendee rejected with a reason."""
    attendee = repo.get_attendee(attendee_id)
    watch = Stopwatch()
    if not attendee.consent:
        return _without_consent(repo, store, engine, attendee), {}, watch.ms
    if attendee.selfie_key is None:
        reason = NEW_SELFIE_NEEDED if attendee.selfie_file_name else "no sign-up selfie"
        repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, reason)
        return repo.get_attendee(attendee.id), {}, watch.ms
    try:
        with watch.lap("fetch"):
            data = store.get(attendee.selfie_key)
        with watch.lap("decode"):
            image = imaging.decode_photo(data).image
    except NotFoundError:
        # Sign-up writes the record before the selfie lands: wait for it, but not for ever.
        missing_for = datetime.now(UTC) - attendee.created_at
        if missing_for > SELFIE_MISSING_AFTER:
            reason = (
                f"the selfie is missing from the bucket {int(missing_for.total_seconds() // 60)} minutes after "
                "sign-up: a new selfie is needed"
            )
            repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, reason)
        else:
            repo.set_reference_status(attendee.id, ReferenceStatus.PENDING, "the selfie is not in the bucket yet")
        return repo.get_attendee(attendee.id), {}, watch.ms
    except BadInputError as error:
        repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, f"selfie unusable: {error}")
        return repo.get_attendee(attendee.id), {}, watch.ms
    enrolment = strategy_for(engine).enroll(repo, attendee, image, watch)
    if enrolment.consent_lost:
        return _without_consent(repo, store, engine, repo.get_attendee(attendee.id)), enrolment.details, watch.ms
    return repo.get_attendee(attendee.id), enrolment.details, watch.ms


def _without_consent(repo: Repository, store: ObjectStore, engine: FaceEngine, attendee: Attendee) -> Attendee:
    """No consent, no biometric data: the selfie is never turned into a reference (any old one goes),
    and once that decision is recorded the selfie image itself is deleted from the bucket."""
    forget_enrollments(repo, engine, attendee)  # the engine's side first, outside the transaction
    with repo.unit_of_work():  # "no consent" is recorded only with the vectors gone
        repo.drop_attendee_vectors(attendee.id)
        repo.set_reference_status(attendee.id, ReferenceStatus.NO_CONSENT, NO_CONSENT)
    return delete_selfie_without_consent(repo, store, attendee)


def delete_selfie_without_consent(repo: Repository, store: ObjectStore, attendee: Attendee) -> Attendee:
    """Delete the selfie image of an attendee whose lack of consent is recorded, then record that it
    is gone (reason says so; consent given back later asks for a new selfie). Idempotent."""
    if attendee.selfie_key is None:
        return repo.get_attendee(attendee.id)
    store.delete(attendee.selfie_key)
    return repo.forget_selfie(attendee.id, SELFIE_DELETED, NEW_SELFIE_NEEDED)


def replace_selfie(
    repo: Repository, store: ObjectStore, attendee_id: str, selfie: bytes, selfie_file_name: str
) -> Attendee:
    """A new sign-up selfie (after the old one was deleted for lack of consent, or never arrived):
    stored at the contract key first, then recorded, so the reference is pending only once the
    image is there; the attendee's next run builds it."""
    from picsaris_pipeline.domain.keys import normalise_extension, selfie_key
    from picsaris_pipeline.services.intake import MAX_UPLOAD_BYTES, content_type_for

    attendee = repo.get_attendee(attendee_id)
    if not selfie:
        raise BadInputError("the selfie file is empty")
    if len(selfie) > MAX_UPLOAD_BYTES:
        raise BadInputError(f"selfie is {len(selfie)} bytes; the limit is {MAX_UPLOAD_BYTES}")
    name = PurePath(selfie_file_name).name or "selfie.jpg"
    ext = normalise_extension(PurePath(name).suffix or "jpg")
    key = selfie_key(attendee.event_id, attendee.id, ext)
    store.put(key, selfie, content_type_for(name))
    if attendee.selfie_key and attendee.selfie_key != key:
        store.delete(attendee.selfie_key)  # the old selfie under another extension
    return repo.set_selfie(attendee.id, name, ext)


def forget_enrollments(repo: Repository, engine: FaceEngine | None, attendee: Attendee) -> None:
    """Remove the attendee's users and selfie faces from the engine's collections of every model
    version, then our record of them (nothing to do on the engine's side for vector engines)."""
    strategy = strategy_for(engine)
    for version, user_id, face_id in repo.engine_users_of(attendee.id):
        strategy.forget_enrollment(attendee.event_id, version, user_id, face_id)
    repo.drop_engine_users(attendee.id)


def match_late_joiner(
    repo: Repository,
    publisher: RealtimePublisher,
    attendee_id: str,
    model_version: str,
    min_similarity: float,
    engine: FaceEngine | None = None,
) -> list[str]:
    """Re-match the already published photos that hold a face close to this attendee's reference.
    Returns the ids of the photos where the attendee is now matched. Under a re-embedding, the last
    selfie done may complete the event under the new version, which then cuts over."""
    found = _match_late_joiner(repo, publisher, attendee_id, model_version, min_similarity, engine)
    attendee = repo.get_attendee(attendee_id)
    if attendee.consent and attendee.reference_status is ReferenceStatus.READY:
        repo.mark_attendee_version(attendee, model_version)
    versions.maybe_cut_over(repo, attendee.event_id, model_version)
    return found


def _match_late_joiner(
    repo: Repository,
    publisher: RealtimePublisher,
    attendee_id: str,
    model_version: str,
    min_similarity: float,
    engine: FaceEngine | None,
) -> list[str]:
    attendee = repo.get_attendee(attendee_id)
    if not attendee.consent:
        return []
    strategy = strategy_for(engine)
    joiner = LateJoiner(attendee, model_version, min_similarity)
    photo_ids = strategy.late_joiner_photos(repo, joiner)
    if photo_ids is None:
        return []
    found: list[str] = []
    for photo_id in sorted(photo_ids):
        photo = repo.find_photo(photo_id)
        if photo is None or photo.event_id != attendee.event_id:
            continue
        if photo.status not in (PhotoStatus.EMBEDDED, PhotoStatus.PUBLISHED):
            continue
        # Embedded photos too: their own matching may already have read the references without this
        # attendee; re-matching is idempotent, and only published photos are announced here.
        rows = match_photo(repo, photo, model_version, min_similarity, strategy)  # enqueues what changed
        if photo.status is PhotoStatus.PUBLISHED and any(a == attendee.id for _, a, _ in rows):
            found.append(photo_id)
            deliver(repo, publisher, photo.id)
    return strategy.with_clusters(repo, publisher, joiner, found)
