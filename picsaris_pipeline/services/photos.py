"""Per-photo steps after verification (services/verification.py): detect faces, store
embeddings, match and publish; and the thumbnails drawn along the way."""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.keys import thumbnail_key, verified_image_key
from picsaris_pipeline.domain.model import STOPPED_STATUSES, MatchRow, Photo, PhotoStatus
from picsaris_pipeline.domain.thumbnails import THUMB_SIDE, DrawnFace, draw, open_reduced, to_jpeg
from picsaris_pipeline.faces.engine import FaceEngine
from picsaris_pipeline.realtime import RealtimePublisher, photo_messages
from picsaris_pipeline.services import face_clusters, policy_matching, versions
from picsaris_pipeline.services.delivery import deliver
from picsaris_pipeline.services.engine_strategy import EngineStrategy, strategy_for
from picsaris_pipeline.services.listings import SIMILARITY_DIGITS
from picsaris_pipeline.services.step_result import StepResult, reject, skipped
from picsaris_pipeline.services.thumbnail_route import thumbnail_link
from picsaris_pipeline.services.timing import Stopwatch
from picsaris_pipeline.services.verification import verify_upload
from picsaris_pipeline.services.verified_images import _VERIFIED, _RecentImages
from picsaris_pipeline.storage import ObjectStore

# verify_upload and StepResult are this module's steps for the assets and the CLI too.
__all__ = ["StepResult", "detect_faces", "mark_failed", "match_photo", "publish_matches", "verify_upload"]

logger = logging.getLogger("picsaris.photos")


def _store_thumbnail(store: ObjectStore, photo: Photo, picture: Any) -> str:
    key = thumbnail_key(photo.event_id, photo.id)
    store.put(key, to_jpeg(picture), "image/jpeg")
    return thumbnail_link(store, photo.event_id, photo.id)


# A reduced copy of each verified image, from which every thumbnail and preview of the photo is
# drawn: shrinking the 2400 px image (and copying it first, as draw() does) once instead of per
# picture, and matches_published no longer reads and decodes the stored JPEG again.
_REDUCED: _RecentImages[tuple[Image.Image, Image.Image]] = _RecentImages()  # key -> (image, copy)
# At least twice the thumbnail's side: Pillow's thumbnail() itself reduces by an integer factor to
# about that before resampling, so the pictures come out as they would from the full image.
_REDUCED_SIDE = 2 * THUMB_SIDE


def _reduced(key: str, image: Image.Image) -> Image.Image:
    """A reduced copy of `image`, the verified image stored under `key`; made once per image."""
    cached = _REDUCED.get(key)
    if cached is not None and cached[0] is image:
        return cached[1]
    factor = max(1, min(image.width, image.height, max(image.size) // _REDUCED_SIDE))
    small = image.reduce(factor) if factor > 1 else image
    _REDUCED.put(key, (image, small))
    return small


def detect_faces(repo: Repository, store: ObjectStore, engine: FaceEngine, photo_id: str) -> StepResult:
    """Find and store the faces of the verified photo, the engine's way (services/engine_strategy.py)."""
    photo = repo.get_photo(photo_id)
    if photo.status in STOPPED_STATUSES:
        return skipped(photo)
    watch = Stopwatch()
    detection = strategy_for(engine).detect(repo, store, photo, watch)
    if detection.rejected is not None:
        return reject(repo, photo, detection.rejected, watch)
    faces, image = detection.faces, detection.image
    details: dict[str, Any] = {"engine": engine.name, "detector_version": engine.detector_version}
    details |= detection.details
    with watch.lap("thumbnail"):
        drawn = [DrawnFace(f.left, f.top, f.right, f.bottom) for f in faces]
        small = _reduced(verified_image_key(photo.event_id, photo.id), image)
        thumbnail_url = _store_thumbnail(store, photo, draw(small, drawn, THUMB_SIDE, image.size))
    _advance(repo, photo, PhotoStatus.FACES_DETECTED, face_count=len(faces))
    return StepResult(
        repo.get_photo(photo.id),
        PhotoStatus.FACES_DETECTED,
        thumbnail_url=thumbnail_url,
        details={"faces": len(faces), **details},  # no boxes: the thumbnail shows them
        timings_ms=watch.ms,
    )


def store_embeddings(repo: Repository, store: ObjectStore, engine: FaceEngine, photo_id: str) -> StepResult:
    """Give every detected face a representation under the engine's model version: a vector in our
    database (dlib), or, for a collection engine, the engine face id IndexFaces stored, checked here
    to exist for every face (no vectors exist on that path)."""
    photo = repo.get_photo(photo_id)
    if photo.status in STOPPED_STATUSES:
        return skipped(photo)
    faces = repo.get_faces(photo.id, engine.detector_version)
    watch = Stopwatch()
    details = strategy_for(engine).represent(repo, store, photo, faces, watch)
    _advance(repo, photo, PhotoStatus.EMBEDDED)
    return StepResult(repo.get_photo(photo.id), PhotoStatus.EMBEDDED, details=details, timings_ms=watch.ms)


def _advance(repo: Repository, photo: Photo, status: PhotoStatus, **fields: Any) -> None:
    """Move a photo along its steps; a published photo being re-embedded under another model version
    stays published (guests keep its current matches until the event cuts over)."""
    if photo.status is PhotoStatus.PUBLISHED:
        if fields:
            repo.update_photo(photo.id, **fields)
        return
    repo.update_photo(photo.id, status, **fields)


def mark_failed(repo: Repository, photo_id: str, reason: str) -> bool:
    """A run gave up on this photo: record why, unless the photo already finished (a late failure
    of a re-run must not undo a published photo). True if the status changed."""
    changed = repo.mark_failed(photo_id, reason)
    if changed:
        logger.warning("photo %s failed: %s", photo_id, reason)
    return changed


def match_photo(
    repo: Repository,
    photo: Photo,
    model_version: str,
    min_similarity: float,
    strategy: EngineStrategy | None = None,
) -> list[tuple[str, str, float]]:
    """Recompute a photo's matches against the event's consenting attendees, same version only, the
    strategy's way (default: our vectors through the matching policy, services/policy_matching.py;
    a collection engine's strategy asks it per face with SearchUsers and keeps the threshold rule).
    Either way each face gets at most one attendee and each attendee at most one face."""
    matching = strategy or strategy_for(None)
    announce = versions.announce(repo.get_event(photo.event_id), model_version)
    decision = matching.decide(repo, photo, model_version, min_similarity, announce)
    rows = decision.rows
    messages = []
    if announce:
        messages = photo_messages(photo.event_id, photo.id, [attendee for _, attendee, _ in rows], model_version)
        messages += policy_matching.candidate_messages(photo.event_id, photo.id, [a for _, a, _ in decision.candidates])
    if repo.replace_matches(photo, model_version, rows, messages, policy=decision.write):
        # An attendee withdrew consent while this photo was matched: nothing was stored (the write
        # re-reads consent); match again, now without them.
        return match_photo(repo, photo, model_version, min_similarity, matching)
    return rows


def publish_matches(
    repo: Repository,
    store: ObjectStore,
    publisher: RealtimePublisher,
    photo_id: str,
    model_version: str,
    min_similarity: float,
    engine: FaceEngine | None = None,
) -> StepResult:
    photo = repo.get_photo(photo_id)
    if photo.status in STOPPED_STATUSES:
        return skipped(photo)
    watch = Stopwatch()
    strategy = strategy_for(engine)
    with watch.lap("match"):
        rows = match_photo(repo, photo, model_version, min_similarity, strategy)
        # Marked done under the version only together with published: a cut-over never counts a
        # photo a crash left half way.
        with repo.unit_of_work():
            repo.mark_photo_version(photo, model_version, photo.face_count or 0)
            face_clusters.place_photo_faces(repo, photo, model_version)  # unknown faces join their person's cluster
            cut_over = versions.maybe_cut_over(repo, photo.event_id, model_version)
            repo.update_photo(photo.id, PhotoStatus.PUBLISHED)
    active = repo.get_event(photo.event_id).active_model_version
    with watch.lap("publish"):
        delivery = deliver(repo, publisher, photo.id)
    matched = repo.list_matches(photo.event_id, photo_id=photo.id, model_version=model_version)
    with watch.lap("thumbnail"):
        thumbnail_url = _matched_pictures(repo, store, photo, _face_labels(matched), strategy.detector_version)
    return StepResult(
        repo.get_photo(photo.id),
        PhotoStatus.PUBLISHED,
        details={
            "matches": len(rows),
            "matched_attendee_ids": sorted({m.attendee_id for m in matched}),  # ids, never names
            "model_version": model_version,
            "active_model_version": active,
            "event_cut_over": cut_over,
            "min_similarity": round(min_similarity, SIMILARITY_DIGITS),  # 1 - 0.55 is 0.44999999999999996
            "realtime_messages": delivery.sent,
            "realtime_pending": delivery.pending,
            "publisher": publisher.name,
        },
        timings_ms=watch.ms,
        thumbnail_url=thumbnail_url,
    )


def _face_labels(matched: list[MatchRow]) -> dict[str, str]:
    """Face id -> what its box says: the guest and how sure the match is ("Ada 0.62")."""
    return {m.face_id: f"{m.attendee_name} {m.similarity:.2f}" for m in matched}


def _matched_pictures(
    repo: Repository, store: ObjectStore, photo: Photo, labels_by_face: dict[str, str], detector: str | None
) -> str:
    """The stored picture with face boxes, matched faces labelled (in the bucket, erasable; Dagster
    only gets the link)."""
    key = verified_image_key(photo.event_id, photo.id)
    verified = _VERIFIED.get(key)  # in memory unless another process ran the earlier steps
    image = _reduced(key, verified) if verified is not None else open_reduced(store.get(key), THUMB_SIDE)
    full_size = (photo.width or image.width, photo.height or image.height)
    faces = repo.get_faces(photo.id, detector)  # one detector's faces: a re-embedding may hold two
    drawn = [DrawnFace(f.left, f.top, f.right, f.bottom, labels_by_face.get(f.id)) for f in faces]
    return _store_thumbnail(store, photo, draw(image, drawn, THUMB_SIDE, full_size))


def redraw_thumbnail(repo: Repository, store: ObjectStore, photo_id: str, model_version: str) -> bool:
    """Draw the photo's thumbnail again from its current matches (after a guest withdrew consent,
    so their name is no longer on it). False when the photo has no verified image to draw from."""
    photo = repo.get_photo(photo_id)
    if store.head(verified_image_key(photo.event_id, photo.id)) is None:
        return False
    matched = repo.list_matches(photo.event_id, photo_id=photo.id, model_version=model_version)
    labels = _face_labels(matched)
    faces = repo.get_faces(photo.id)
    # One detector's faces (a re-embedding may hold two): the matched faces', else the first found.
    detectors = [f.detector_version for f in faces if f.id in labels] or [f.detector_version for f in faces]
    detector = detectors[0] if detectors else None
    _matched_pictures(repo, store, photo, labels, detector)
    return True
