"""Per-photo steps: verify the upload, detect faces, store embeddings, match and publish."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from PIL import Image

from picsaris_pipeline import imaging, near_duplicates
from picsaris_pipeline.db.repository import PolicyWrite, Repository
from picsaris_pipeline.domain import STOPPED_STATUSES, MatchRow, Photo, PhotoStatus
from picsaris_pipeline.errors import BadInputError, NotFoundError, PicsarisError
from picsaris_pipeline.faces.engine import CollectionFaceEngine, FaceBox, FaceEngine, VectorFaceEngine
from picsaris_pipeline.keys import thumbnail_key, verified_image_key
from picsaris_pipeline.matching import assign_scores
from picsaris_pipeline.partitions import MAX_PHOTOS_PER_BATCH
from picsaris_pipeline.realtime import RealtimePublisher, photo_messages
from picsaris_pipeline.services import face_clusters, face_quality, policy_matching, versions
from picsaris_pipeline.services.delivery import deliver
from picsaris_pipeline.services.timing import Stopwatch
from picsaris_pipeline.storage import ObjectStore
from picsaris_pipeline.thumbnail_route import thumbnail_link
from picsaris_pipeline.thumbnails import THUMB_SIDE, DrawnFace, draw, open_reduced, to_jpeg

logger = logging.getLogger("picsaris.photos")
_T = TypeVar("_T")


@dataclass
class StepResult:
    """What a step did to one photo; becomes the materialization's metadata."""

    photo: Photo
    status: PhotoStatus
    reason: str | None = None
    skipped: bool = False  # the photo stopped earlier (duplicate, rejected, failed)
    details: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    thumbnail_url: str | None = None  # link to the stored thumbnail (thumbnail_route: no picture in Dagster)


def _skipped(photo: Photo) -> StepResult:
    return StepResult(photo, photo.status, photo.reason, skipped=True)


def _reject(repo: Repository, photo: Photo, reason: str, watch: Stopwatch, **details: Any) -> StepResult:
    logger.info("photo %s rejected: %s", photo.id, reason)
    repo.update_photo(photo.id, PhotoStatus.REJECTED, reason=reason, **details)
    return StepResult(repo.get_photo(photo.id), PhotoStatus.REJECTED, reason, timings_ms=watch.ms)


def verify_upload(repo: Repository, store: ObjectStore, photo_id: str) -> StepResult:
    """Check the uploaded bytes against what intake recorded, find exact duplicates in the event,
    decode, find near-duplicates (the same shot re-encoded by another phone, near_duplicates.py),
    and write the upright, RGB, <= 2400 px JPEG that every later step reads."""
    photo = repo.get_photo(photo_id)
    if photo.status in (PhotoStatus.DUPLICATE, PhotoStatus.REJECTED):
        return _skipped(photo)  # bad input stays bad; a `failed` photo is processed again from here
    watch = Stopwatch()
    with watch.lap("fetch"):
        # Size first, from the listing: an object far larger than declared is never downloaded.
        info = store.head(photo.object_key)
        if info is None:
            return _reject(repo, photo, "the uploaded file is missing from the bucket", watch)
        if info.size > photo.declared_size:
            return _reject(
                repo, photo, f"file is {info.size} bytes, more than the {photo.declared_size} declared", watch
            )
        try:
            data = store.get(photo.object_key)
        except NotFoundError:
            return _reject(repo, photo, "the uploaded file is missing from the bucket", watch)
    sha = imaging.sha256_hex(data)
    if sha != photo.declared_sha256:
        return _reject(
            repo,
            photo,
            f"SHA-256 mismatch: declared {photo.declared_sha256[:12]}…, received {sha[:12]}…",
            watch,
            sha256=sha,
        )
    first = repo.first_photo_with_sha(photo.event_id, sha)
    if first is not None and first.id != photo.id and first.id < photo.id:
        repo.update_photo(
            photo.id,
            PhotoStatus.DUPLICATE,
            sha256=sha,
            duplicate_of=first.id,
            reason=f"same bytes as photo {first.id}",  # ids only: reasons reach Dagster's metadata
        )
        return StepResult(
            repo.get_photo(photo.id), PhotoStatus.DUPLICATE, f"duplicate of {first.id}", timings_ms=watch.ms
        )
    with watch.lap("decode"):
        try:
            decoded = imaging.decode_photo(data)
        except BadInputError as error:
            return _reject(repo, photo, str(error), watch, sha256=sha)
    with watch.lap("near_duplicates"):
        found = near_duplicates.fingerprint(decoded.image, decoded.original_width * decoded.original_height)
        # An image too flat to hash (grey, white, dark, a thin strip) is never compared: all such
        # images share a hash, and none of them is anyone's duplicate.
        original = None if found.too_flat else repo.claim_near_duplicate(photo.id, found, sha)
    replaced: dict[str, Any] = {}
    if original is not None and original.better is not None:
        # This copy is clearly better than the one kept so far: guests see this one from now on.
        logger.info("photo %s replaces its near-duplicate %s (%s)", photo.id, original.photo_id, original.better)
        replaced = {"replaced_duplicate": original.photo_id, "replaced_because": original.better}
    elif original is not None:
        # The same shot from another phone: never detected, embedded or matched a second time.
        logger.info("photo %s is a near-duplicate of %s (distance %d)", photo.id, original.photo_id, original.distance)
        return StepResult(
            repo.get_photo(photo.id),
            PhotoStatus.DUPLICATE,
            original.reason,
            details={
                "duplicate_of": original.photo_id,
                "hash_distance": original.distance,  # no hash: a photo's fingerprint stays out of Dagster
                "fine_hash_distance": original.fine_distance,
            },
            timings_ms=watch.ms,
        )
    width, height = decoded.image.size
    with watch.lap("store_verified"):
        key = verified_image_key(photo.event_id, photo.id)
        verified_jpeg = imaging.encode_jpeg(decoded.image)
        store.put(key, verified_jpeg, "image/jpeg")
        verified = imaging.load_rgb(verified_jpeg)
        _VERIFIED.put(key, verified)
        thumbnail_url = _store_thumbnail(store, photo, draw(_reduced(key, verified), [], THUMB_SIDE, (width, height)))
    repo.update_photo(
        photo.id,
        PhotoStatus.VERIFIED,
        reason=None,
        sha256=sha,
        width=width,
        height=height,
        source_format=decoded.source_format,
    )
    details = {
        "source_format": decoded.source_format,
        "original_size": f"{decoded.original_width}x{decoded.original_height}",
        "verified_size": f"{width}x{height}",
        "exif_orientation": decoded.orientation,
        "bytes": len(data),
        **replaced,
    }
    if found.too_flat:
        details["near_duplicate_check"] = f"skipped: {found.too_flat}"
    if decoded.frames > 1:
        details["frames"] = decoded.frames
    return StepResult(
        repo.get_photo(photo.id),
        PhotoStatus.VERIFIED,
        details=details,
        timings_ms=watch.ms,
        thumbnail_url=thumbnail_url,
    )


def _store_thumbnail(store: ObjectStore, photo: Photo, picture: Any) -> str:
    key = thumbnail_key(photo.event_id, photo.id)
    store.put(key, to_jpeg(picture), "image/jpeg")
    return thumbnail_link(store, photo.event_id, photo.id)


class _RecentImages(Generic[_T]):
    """The last few verified images decoded in this process. A photo's steps run one after another
    in one process (a batch run's steps each go through all its photos), so detection and embedding
    reuse the pixels verification just wrote instead of downloading and decoding the 2400 px JPEG
    twice more. Filled only by whoever writes the image, so it never holds pixels other than the
    stored JPEG's. Sized for a batch: 16 images of 2400 x 1600 are ~185 MB."""

    def __init__(self, size: int = MAX_PHOTOS_PER_BATCH) -> None:
        self._size = size
        self._images: OrderedDict[str, _T] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, image: _T) -> None:
        with self._lock:
            self._images[key] = image
            self._images.move_to_end(key)
            while len(self._images) > self._size:
                self._images.popitem(last=False)

    def get(self, key: str) -> _T | None:
        with self._lock:
            return self._images.get(key)


_VERIFIED: _RecentImages[Image.Image] = _RecentImages()
# A reduced copy of each of those images, from which every thumbnail and preview of the photo is
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


def _load_verified(store: ObjectStore, photo: Photo) -> Image.Image:
    key = verified_image_key(photo.event_id, photo.id)
    cached = _VERIFIED.get(key)
    if cached is not None:
        return cached
    image = imaging.load_rgb(store.get(key))
    _VERIFIED.put(key, image)
    return image


def detect_faces(repo: Repository, store: ObjectStore, engine: FaceEngine, photo_id: str) -> StepResult:
    """Find the faces of the verified photo. A collection engine (Rekognition) finds them with
    IndexFaces, which also stores them in the event's collection: the engine face ids are recorded
    with the faces, and a re-run first removes the faces its previous run indexed."""
    photo = repo.get_photo(photo_id)
    if photo.status in STOPPED_STATUSES:
        return _skipped(photo)
    watch = Stopwatch()
    details: dict[str, Any] = {"engine": engine.name, "detector_version": engine.detector_version}
    if isinstance(engine, CollectionFaceEngine):
        with watch.lap("load"):
            jpeg = store.get(verified_image_key(photo.event_id, photo.id))
            image = _VERIFIED.get(verified_image_key(photo.event_id, photo.id)) or imaging.load_rgb(jpeg)
        with watch.lap("index"):
            earlier = [external for _, _, external in repo.photo_engine_faces(photo.id, engine.model_version)]
            if earlier:
                engine.forget_faces(photo.event_id, earlier)
            try:
                indexed = engine.index_photo(photo.event_id, photo.id, jpeg, image.size)
            except BadInputError as error:  # the service refused the image: no retry can help
                return _reject(repo, photo, str(error), watch)
        faces = repo.replace_faces(photo, engine.detector_version, [face.box for face in indexed])
        collection = engine.collection_id(photo.event_id)
        repo.store_engine_faces(
            photo, faces, engine.model_version, collection, [face.external_face_id for face in indexed]
        )
        details |= {"collection": collection, "model_version": engine.model_version}
    elif isinstance(engine, VectorFaceEngine):
        with watch.lap("load"):
            image = _load_verified(store, photo)
        with watch.lap("detect"):
            boxes = engine.detect(image)
        faces = repo.replace_faces(photo, engine.detector_version, boxes)
        with watch.lap("quality"):
            qualities = engine.quality(image, boxes)
        if qualities is not None:
            repo.store_face_quality(faces, qualities)
            details["unmatchable_faces"] = sum(not q.matchable for q in qualities)
    else:
        raise TypeError(f"unsupported face engine {engine!r}")
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
        return _skipped(photo)
    faces = repo.get_faces(photo.id, engine.detector_version)
    watch = Stopwatch()
    if isinstance(engine, CollectionFaceEngine):
        stored = repo.photo_engine_faces(photo.id, engine.model_version)
        recorded = {face_id: external for face_id, _, external in stored}
        missing = [f.id for f in faces if f.id not in recorded]
        if missing:
            raise PicsarisError(
                f"{len(missing)} face(s) of photo {photo.id} have no {engine.name} face id under "
                f"{engine.model_version}: re-run faces_detected for this photo"
            )
        _advance(repo, photo, PhotoStatus.EMBEDDED)
        return StepResult(
            repo.get_photo(photo.id),
            PhotoStatus.EMBEDDED,
            details={
                "representation": f"{engine.name} collection faces (the engine keeps no vectors for us)",
                "collection": engine.collection_id(photo.event_id),
                "model_version": engine.model_version,
                "engine_face_ids": [recorded[f.id] for f in faces],
                "faces": len(faces),
            },
            timings_ms=watch.ms,
        )
    if not isinstance(engine, VectorFaceEngine):
        raise TypeError(f"unsupported face engine {engine!r}")
    if faces:
        with watch.lap("load"):
            image = _load_verified(store, photo)
        with watch.lap("embed"):
            vectors = engine.embed(image, [FaceBox(f.left, f.top, f.right, f.bottom, f.score) for f in faces])
    else:
        vectors = np.zeros((0, engine.dimension), dtype=np.float32)
    repo.store_face_vectors(photo, faces, engine.model_version, vectors)
    _advance(repo, photo, PhotoStatus.EMBEDDED)
    return StepResult(
        repo.get_photo(photo.id),
        PhotoStatus.EMBEDDED,
        details={
            "representation": "vectors",
            "vectors": len(faces),
            "model_version": engine.model_version,
            "dimension": engine.dimension,
        },
        timings_ms=watch.ms,
    )


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
    engine: CollectionFaceEngine | None = None,
) -> list[tuple[str, str, float]]:
    """Recompute a photo's matches against the event's consenting attendees, same version only.
    Vectors go through the matching policy (services/policy_matching.py: margin, several references
    per guest, candidates proposed privately); a collection engine (engine given) is asked per face
    with SearchUsers and keeps the threshold rule. Either way each face gets at most one attendee and
    each attendee at most one face."""
    announce = versions.announce(repo.get_event(photo.event_id), model_version)
    candidates: list[tuple[str, str, float]] = []
    if engine is not None:
        scores, face_ids, attendee_ids = _engine_scores(repo, engine, photo, model_version, min_similarity)
        # Faces too small or blurred to trust are counted but match nobody (the policy path applies
        # the same gate in decide_photo).
        scores = face_quality.gate_scores(scores, face_quality.matchable_mask(repo, face_ids))
        assignments = assign_scores(scores, min_similarity)
        rows = [(face_ids[a.face_index], attendee_ids[a.attendee_index], a.similarity) for a in assignments]
        write = PolicyWrite(policy_matching.collection_policy_id(min_similarity), candidates=None)
    else:
        policy = policy_matching.policy_for(min_similarity)
        decision = policy_matching.decide_photo(repo, photo, model_version, policy)
        rows, candidates = decision.rows, decision.candidates
        write = policy_matching.policy_write(policy, decision, announce)
    if engine is None:  # a late joiner's claimed cluster (clusters need vectors: none on a collection engine)
        rows, proposed = face_clusters.with_claimed_faces(repo, photo, model_version, rows, min_similarity, candidates)
        if write.candidates is not None:  # candidates are proposed under the version guests see only
            candidates = proposed
            write = dataclasses.replace(write, candidates=candidates)
    messages = []
    if announce:
        messages = photo_messages(photo.event_id, photo.id, [attendee for _, attendee, _ in rows], model_version)
        messages += policy_matching.candidate_messages(photo.event_id, photo.id, [a for _, a, _ in candidates])
    if repo.replace_matches(photo, model_version, rows, messages, policy=write):
        # An attendee withdrew consent while this photo was matched: nothing was stored (the write
        # re-reads consent); match again, now without them.
        return match_photo(repo, photo, model_version, min_similarity, engine)
    return rows


def _engine_scores(
    repo: Repository, engine: CollectionFaceEngine, photo: Photo, model_version: str, min_similarity: float
) -> tuple[np.ndarray, list[str], list[str]]:
    """The (faces, attendees) similarity matrix from one SearchUsers per face; users the engine
    knows but we do not count as consenting attendees of this event (deleted, withdrawn) are dropped."""
    if engine.model_version != model_version:
        raise PicsarisError(f"the engine serves {engine.model_version}, asked to match under {model_version}")
    enrolled = repo.enrolled_attendees(photo.event_id, model_version)
    faces = repo.photo_engine_faces(photo.id, model_version)
    attendee_ids = sorted(set(enrolled.values()))
    column = {attendee: i for i, attendee in enumerate(attendee_ids)}
    scores = np.zeros((len(faces), len(attendee_ids)), dtype=np.float32)
    if attendee_ids:
        for row, (_, _, external_face_id) in enumerate(faces):
            for user_id, similarity in engine.search_users(photo.event_id, external_face_id, min_similarity):
                attendee = enrolled.get(user_id)
                if attendee is not None:
                    scores[row, column[attendee]] = similarity
    return scores, [face_id for face_id, _, _ in faces], attendee_ids


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
        return _skipped(photo)
    watch = Stopwatch()
    collection_engine = engine if isinstance(engine, CollectionFaceEngine) else None
    with watch.lap("match"):
        rows = match_photo(repo, photo, model_version, min_similarity, collection_engine)
        repo.mark_photo_version(photo, model_version, photo.face_count or 0)
        face_clusters.place_photo_faces(repo, photo, model_version)  # unknown faces join their person's cluster
        cut_over = versions.maybe_cut_over(repo, photo.event_id, model_version)
    repo.update_photo(photo.id, PhotoStatus.PUBLISHED)
    active = repo.get_event(photo.event_id).active_model_version
    with watch.lap("publish"):
        delivery = deliver(repo, publisher, photo.id)
    matched = repo.list_matches(photo.event_id, photo_id=photo.id, model_version=model_version)
    with watch.lap("thumbnail"):
        detector = engine.detector_version if engine is not None else None
        thumbnail_url = _matched_pictures(repo, store, photo, _face_labels(matched), detector)
    return StepResult(
        repo.get_photo(photo.id),
        PhotoStatus.PUBLISHED,
        details={
            "matches": len(rows),
            "matched_attendee_ids": sorted({m.attendee_id for m in matched}),  # ids, never names
            "model_version": model_version,
            "active_model_version": active,
            "event_cut_over": cut_over,
            "min_similarity": min_similarity,
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
