"""Per-attendee steps: sign-up selfie -> reference vector, then matching against the event's
existing faces so a guest who signs up late still finds the photos they are already in."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import PurePath

from PIL import Image

from picsaris_pipeline import imaging
from picsaris_pipeline.db import vector_reads
from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.discovery import STALE_AFTER
from picsaris_pipeline.domain import Attendee, PhotoStatus, ReferenceStatus
from picsaris_pipeline.errors import BadInputError, NotFoundError
from picsaris_pipeline.faces.engine import CollectionFaceEngine, FaceEngine, VectorFaceEngine, collection_engine_for
from picsaris_pipeline.matching import candidates
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services import face_clusters, versions
from picsaris_pipeline.services.delivery import deliver
from picsaris_pipeline.services.photos import match_photo
from picsaris_pipeline.services.policy_matching import policy_for
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
    if isinstance(engine, CollectionFaceEngine):
        return _enroll(repo, store, engine, attendee, image, watch)
    if not isinstance(engine, VectorFaceEngine):
        raise TypeError(f"unsupported face engine {engine!r}")
    with watch.lap("detect"):
        boxes = engine.detect(image)
    if not boxes:
        repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, "no face found in the selfie")
        return repo.get_attendee(attendee.id), {"faces_in_selfie": 0}, watch.ms
    # The largest face is the person taking the selfie; others are bystanders.
    with watch.lap("embed"):
        vector = engine.embed(image, boxes[:1])[0]
    if not repo.store_attendee_vector(attendee, engine.model_version, vector):
        # Consent was withdrawn while the selfie was embedded: the write stored nothing.
        return _without_consent(repo, store, engine, repo.get_attendee(attendee.id)), {}, watch.ms
    details = {"faces_in_selfie": len(boxes), "model_version": engine.model_version}
    return repo.get_attendee(attendee.id), details, watch.ms


def _enroll(
    repo: Repository,
    store: ObjectStore,
    engine: CollectionFaceEngine,
    attendee: Attendee,
    image: Image.Image,
    watch: Stopwatch,
) -> tuple[Attendee, dict, dict]:
    """Register the attendee as a user of the event's collection from their selfie; a re-run replaces
    the earlier selfie face (a user holds at most 100 faces, and only the newest selfie counts)."""
    earlier = repo.engine_users_of(attendee.id, engine.model_version)
    try:
        with watch.lap("enroll"):
            enrollment = engine.enroll(attendee.event_id, attendee.id, imaging.encode_jpeg(image))
    except BadInputError as error:
        repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, f"selfie unusable: {error}")
        return repo.get_attendee(attendee.id), {"engine": engine.name}, watch.ms
    stale = [face for _, _, face in earlier if face != enrollment.external_face_id]
    if stale:
        engine.forget_faces(attendee.event_id, stale)
    collection = engine.collection_id(attendee.event_id)
    stored = repo.store_engine_user(
        attendee, engine.model_version, collection, enrollment.external_user_id, enrollment.external_face_id
    )
    if not stored:
        # Consent was withdrawn while the engine enrolled the selfie: nothing was recorded, and what
        # the engine holds goes too (the withdrawal could not see it to delete it).
        engine.forget_user(attendee.event_id, enrollment.external_user_id)
        engine.forget_faces(attendee.event_id, [enrollment.external_face_id])
        return _without_consent(repo, store, engine, repo.get_attendee(attendee.id)), {"engine": engine.name}, watch.ms
    details = {
        "faces_in_selfie": enrollment.faces_in_image,
        "model_version": engine.model_version,
        "engine": engine.name,
        "collection": collection,
        "engine_user_id": enrollment.external_user_id,
    }
    return repo.get_attendee(attendee.id), details, watch.ms


def _without_consent(repo: Repository, store: ObjectStore, engine: FaceEngine, attendee: Attendee) -> Attendee:
    """No consent, no biometric data: the selfie is never turned into a reference (any old one goes),
    and once that decision is recorded the selfie image itself is deleted from the bucket."""
    repo.drop_attendee_vectors(attendee.id)
    forget_enrollments(repo, engine, attendee)
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
    from picsaris_pipeline.keys import normalise_extension, selfie_key
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
    for version, user_id, face_id in repo.engine_users_of(attendee.id):
        collection_engine = collection_engine_for(engine, version)
        if collection_engine is not None:
            collection_engine.forget_user(attendee.event_id, user_id)
            collection_engine.forget_faces(attendee.event_id, [face_id])
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
    collection_engine = engine if isinstance(engine, CollectionFaceEngine) else None
    if collection_engine is not None:
        enrolled = repo.engine_users_of(attendee.id, model_version)
        if not enrolled:
            return []
        # SearchFaces from the selfie's face: the photos holding a face like it.
        photo_ids = collection_engine.search_photos(attendee.event_id, enrolled[0].face_id, min_similarity)
    else:
        reference = repo.attendee_vector(attendee.id, model_version)
        if reference is None:
            return []
        # One round trip for the event's vectors under this version only (bench/matching.py).
        owners, vectors = vector_reads.event_face_vectors(repo, attendee.event_id, model_version)
        # The policy's loose bar: a late joiner is proposed the photos below the confident one too.
        photo_ids = candidates(reference, vectors, owners, policy_for(min_similarity).candidate_similarity)
    found: list[str] = []
    for photo_id in sorted(photo_ids):
        photo = repo.find_photo(photo_id)
        if photo is None or photo.event_id != attendee.event_id:
            continue
        if photo.status not in (PhotoStatus.EMBEDDED, PhotoStatus.PUBLISHED):
            continue
        # Embedded photos too: their own matching may already have read the references without this
        # attendee; re-matching is idempotent, and only published photos are announced here.
        rows = match_photo(repo, photo, model_version, min_similarity, collection_engine)  # enqueues what changed
        if photo.status is PhotoStatus.PUBLISHED and any(a == attendee.id for _, a, _ in rows):
            found.append(photo_id)
            deliver(repo, publisher, photo.id)
    if collection_engine is None:  # a cluster of this guest's unmatched faces comes in at once
        found = face_clusters.bring_in_clusters(repo, publisher, attendee.id, model_version, min_similarity, found)
    return found
