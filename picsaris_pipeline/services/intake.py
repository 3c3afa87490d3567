"""Intake: what the upload API does for a phone (README.md, "How it works"). Photo bytes never pass
through here in production; the phone PUTs them straight to the bucket with the presigned ticket."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePath

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain import imaging
from picsaris_pipeline.domain.keys import normalise_extension
from picsaris_pipeline.domain.model import Attendee, Photo, PhotoStatus
from picsaris_pipeline.errors import BadInputError
from picsaris_pipeline.storage import ObjectStore, UploadTicket

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # a 48 MP HEIC is ~10 MB, a 48 MP JPEG ~25 MB
UPLOAD_TTL_SECONDS = 15 * 60
CONTENT_TYPES = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/webp": "webp",
}
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class UploadRequest:
    """Either a ticket to PUT the bytes with, or the existing photo these bytes duplicate."""

    photo: Photo
    ticket: UploadTicket | None
    duplicate: bool


def content_type_for(file_name: str) -> str:
    guessed = mimetypes.guess_type(file_name)[0]
    suffix = PurePath(file_name).suffix.lower()
    if suffix in (".heic", ".heif"):
        return "image/" + suffix[1:]
    if suffix == ".webp":
        return "image/webp"
    return guessed or "application/octet-stream"


def request_upload(
    repo: Repository,
    store: ObjectStore,
    event_id: str,
    uploader_id: str,
    sha256: str,
    size: int,
    content_type: str,
    file_name: str,
) -> UploadRequest:
    sha256 = sha256.lower()
    if not _SHA_RE.match(sha256):
        raise BadInputError("sha256 must be 64 hex characters")
    if size <= 0:
        raise BadInputError("the file is empty")
    if size > MAX_UPLOAD_BYTES:
        raise BadInputError(f"file is {size} bytes; the limit is {MAX_UPLOAD_BYTES}")
    ext = CONTENT_TYPES.get(content_type.lower())
    if ext is None:
        raise BadInputError(f"content type {content_type!r} not accepted; send {', '.join(CONTENT_TYPES)}")
    uploader = repo.get_attendee(uploader_id)
    if uploader.event_id != event_id:
        raise BadInputError(f"attendee {uploader_id} is not a member of event {event_id}")
    existing = repo.first_photo_with_sha(event_id, sha256)
    if existing is not None:
        return UploadRequest(existing, None, duplicate=True)
    retry = repo.pending_upload_of(uploader_id, sha256)
    if retry is not None:  # the same phone trying again after a failed PUT: same record, new ticket
        return UploadRequest(retry, store.presign_put(retry.object_key, retry.content_type, UPLOAD_TTL_SECONDS), False)
    photo = repo.create_photo(
        event_id, uploader_id, PurePath(file_name).name or "photo", content_type, sha256, size, ext
    )
    return UploadRequest(photo, store.presign_put(photo.object_key, content_type, UPLOAD_TTL_SECONDS), duplicate=False)


def complete_upload(
    repo: Repository,
    store: ObjectStore,
    photo_id: str,
    on_uploaded: Callable[[Photo], object] | None = None,
    on_deferred: Callable[[Photo], object] | None = None,
) -> Photo:
    """The phone says the PUT finished: check the object, mark the photo uploaded, launch its run
    (on_uploaded). With on_deferred given, a photo whose uploader already has another photo waiting
    to be run is queued for the batch sensor instead, and on_deferred announces it (adds its
    partition): a guest sharing a burst of photos gets them run in batches, not one run each."""
    photo = repo.get_photo(photo_id)
    if photo.status is not PhotoStatus.PENDING_UPLOAD:
        return photo  # a repeated "complete" from a flaky connection changes nothing
    info = store.head(photo.object_key)
    if info is None:
        raise BadInputError(f"photo {photo_id} was not uploaded (no object at its key)")
    if info.size != photo.declared_size:
        reason = f"uploaded {info.size} bytes, declared {photo.declared_size}"
        repo.transition(photo.id, PhotoStatus.PENDING_UPLOAD, PhotoStatus.REJECTED, reason)
        return repo.get_photo(photo.id)
    # Conditional: of two "complete" calls racing (a flaky phone, the sensor), one launches the run.
    won = repo.transition(photo.id, PhotoStatus.PENDING_UPLOAD, PhotoStatus.UPLOADED)
    photo = repo.get_photo(photo.id)
    if won and on_uploaded is not None:
        if on_deferred is not None and repo.defer_to_batch(photo.id):
            on_deferred(photo)
        else:
            on_uploaded(photo)
    return photo


# Tickets live 15 minutes; an hour later the bytes are not coming.
ABANDONED_AFTER = timedelta(hours=1)


def expire_abandoned_uploads(repo: Repository, store: ObjectStore, now: datetime | None = None) -> list[str]:
    """Reject photo records whose bytes never arrived, so they do not wait forever; a record whose
    object did arrive (the phone never said "complete") is left for the sensor to pick up."""
    expired = []
    for photo in repo.abandoned_uploads((now or datetime.now(UTC)) - ABANDONED_AFTER):
        if store.head(photo.object_key) is None and repo.transition(
            photo.id, PhotoStatus.PENDING_UPLOAD, PhotoStatus.REJECTED, "the upload never arrived (ticket expired)"
        ):
            expired.append(photo.id)
    return expired


def register_attendee(
    repo: Repository,
    store: ObjectStore,
    event_id: str,
    name: str,
    consent: bool,
    selfie: bytes | None,
    selfie_file_name: str | None,
) -> Attendee:
    """Sign-up: the attendee record and their selfie at the contract key."""
    ext = None
    if selfie is not None:
        if not selfie:
            raise BadInputError("the selfie file is empty")
        if len(selfie) > MAX_UPLOAD_BYTES:
            raise BadInputError(f"selfie is {len(selfie)} bytes; the limit is {MAX_UPLOAD_BYTES}")
        ext = normalise_extension(PurePath(selfie_file_name or "selfie.jpg").suffix or "jpg")
    attendee = repo.add_attendee(event_id, name, consent, selfie_file_name, ext)
    if selfie is not None and attendee.selfie_key:
        store.put(attendee.selfie_key, selfie, content_type_for(selfie_file_name or "selfie.jpg"))
    return attendee


def sha256_of(data: bytes) -> str:
    return imaging.sha256_hex(data)
