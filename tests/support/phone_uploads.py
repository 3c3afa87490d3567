"""Uploads the way a phone makes them (request a ticket, PUT the bytes with it, say "upload
complete"), and waiting until photos reach a terminal status."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypedDict, Unpack

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.model import Photo
from picsaris_pipeline.services.intake import complete_upload, content_type_for, request_upload, sha256_of
from picsaris_pipeline.storage import ObjectStore, put_via_ticket

# The statuses a photo's run ends in; anything else is still on its way.
TERMINAL = ("published", "rejected", "duplicate", "failed")


class UnexpectedDuplicate(AssertionError):
    """Intake took the upload for a photo it already has, so there is no ticket to PUT with."""

    def __init__(self, file_name: str, photo_id: str) -> None:
        super().__init__(f"{file_name} was taken for a duplicate of {photo_id}")
        self.photo_id = photo_id


class UploadOptions(TypedDict, total=False):
    declared_sha: str  # the hash the phone claims; the bytes' own hash if left out
    on_uploaded: Callable[[Photo], object]  # complete_upload's callbacks: a launcher's launch_photo
    on_deferred: Callable[[Photo], object]  # ... and announce_photo


@dataclass(frozen=True)
class PhoneUpload:
    photo: Photo  # as complete_upload left it
    started: float  # time.time() before request_upload
    requested: float  # request_upload returned (the ticket)
    put_done: float  # the bytes are in the bucket: "upload complete"
    completed: float  # complete_upload (and any launch it made) returned


def upload_as_a_phone(
    repo: Repository,
    store: ObjectStore,
    event_id: str,
    uploader_id: str,
    data: bytes,
    file_name: str,
    **options: Unpack[UploadOptions],
) -> PhoneUpload:
    """request_upload -> PUT with the ticket -> complete_upload, as `picsaris upload` and the upload
    API do."""
    started = time.time()
    request = request_upload(
        repo,
        store,
        event_id,
        uploader_id,
        options.get("declared_sha") or sha256_of(data),
        len(data),
        content_type_for(file_name),
        file_name,
    )
    if request.ticket is None:
        raise UnexpectedDuplicate(file_name, request.photo.id)
    requested = time.time()
    put_via_ticket(request.ticket, data)
    put_done = time.time()
    photo = complete_upload(repo, store, request.photo.id, options.get("on_uploaded"), options.get("on_deferred"))
    return PhoneUpload(photo, started, requested, put_done, time.time())


@dataclass
class Outcome:
    status: str
    at: float  # updated_at of the terminal status (time.time() scale), written by the run itself
    reason: str | None = None


def wait_terminal(
    repo: Repository, event_id: str, photo_ids: Iterable[str], timeout: float, poll: float = 0.1
) -> dict[str, Outcome]:
    """Poll the application database until every photo is terminal or the timeout passes; each
    outcome's time is the row's own updated_at (set in the same statement as the status), so the
    poll interval adds no error. Photos missing from the result were not terminal in time."""
    wanted = set(photo_ids)
    outcomes: dict[str, Outcome] = {}
    deadline = time.monotonic() + timeout
    while True:
        for photo in repo.list_photos(event_id):
            if photo.id in wanted and photo.id not in outcomes and photo.status.value in TERMINAL:
                outcomes[photo.id] = Outcome(photo.status.value, photo.updated_at.timestamp(), photo.reason)
        if not wanted - outcomes.keys() or time.monotonic() > deadline:
            return outcomes
        time.sleep(poll)
