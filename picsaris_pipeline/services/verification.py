"""The first per-photo step: verify the upload and write the image every later step reads."""

from __future__ import annotations

import logging
from typing import Any

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain import imaging, near_duplicates
from picsaris_pipeline.domain.keys import verified_image_key
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.domain.thumbnails import THUMB_SIDE, draw
from picsaris_pipeline.errors import BadInputError, NotFoundError
from picsaris_pipeline.services.step_result import StepResult, reject, skipped
from picsaris_pipeline.services.timing import Stopwatch
from picsaris_pipeline.services.verified_images import _VERIFIED
from picsaris_pipeline.storage import ObjectStore

logger = logging.getLogger("picsaris.photos")


def verify_upload(repo: Repository, store: ObjectStore, photo_id: str) -> StepResult:
    """Check the uploaded bytes against what intake recorded, find exact duplicates in the event,
    decode, find near-duplicates (the same shot re-encoded by another phone, domain/near_duplicates.py),
    and write the upright, RGB, <= 2400 px JPEG that every later step reads."""
    # The thumbnail's drawing stays with the other pictures of the photo (services/photos.py).
    from picsaris_pipeline.services.photos import _reduced, _store_thumbnail

    photo = repo.get_photo(photo_id)
    if photo.status in (PhotoStatus.DUPLICATE, PhotoStatus.REJECTED):
        return skipped(photo)  # bad input stays bad; a `failed` photo is processed again from here
    watch = Stopwatch()
    with watch.lap("fetch"):
        # Size first, from the listing: an object far larger than declared is never downloaded.
        info = store.head(photo.object_key)
        if info is None:
            return reject(repo, photo, "the uploaded file is missing from the bucket", watch)
        if info.size > photo.declared_size:
            return reject(
                repo, photo, f"file is {info.size} bytes, more than the {photo.declared_size} declared", watch
            )
        try:
            data = store.get(photo.object_key)
        except NotFoundError:
            return reject(repo, photo, "the uploaded file is missing from the bucket", watch)
    sha = imaging.sha256_hex(data)
    if sha != photo.declared_sha256:
        return reject(
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
            return reject(repo, photo, str(error), watch, sha256=sha)
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
