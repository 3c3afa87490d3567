"""What a phone does for each file: request an upload, PUT the bytes with the ticket, complete."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from picsaris_pipeline.errors import BadInputError, ConfigurationError, PicsarisError, RetryableError
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.orchestration.launcher import DagsterLauncher
from picsaris_pipeline.services.intake import complete_upload, content_type_for, request_upload, sha256_of
from picsaris_pipeline.storage import put_via_ticket


@dataclass(frozen=True)
class UploadOutcome:
    path: Path
    photo_id: str | None
    duplicate_of: bool = False  # the event already had these bytes; photo_id is the existing photo
    error: str | None = None  # this file was refused; the others still go
    warning: str | None = None  # stored, but something after that did not work


def upload_files(
    app: App, event_id: str, uploader_id: str, paths: Sequence[Path], on_each: Callable[[], None] | None = None
) -> Iterator[UploadOutcome]:
    app.repo.get_event(event_id)
    app.repo.get_attendee(uploader_id)
    for path in paths:
        try:
            yield _upload_one(app, event_id, uploader_id, path)
        except (BadInputError, RetryableError) as error:
            # One file refused or the store briefly unavailable: say so, and go on with the rest.
            yield UploadOutcome(path, None, error=str(error))
        finally:
            if on_each:
                on_each()


def _upload_one(app: App, event_id: str, uploader_id: str, path: Path) -> UploadOutcome:
    data = path.read_bytes()
    request = request_upload(
        app.repo, app.store, event_id, uploader_id, sha256_of(data), len(data), content_type_for(path.name), path.name
    )
    if request.duplicate or request.ticket is None:
        return UploadOutcome(path, request.photo.id, duplicate_of=True)
    put_via_ticket(request.ticket, data)
    # With PICSARIS_DAGSTER_URL set, completing the upload launches the photo's run on that webserver,
    # as the upload API does; otherwise `picsaris process` (or the bucket sensor) picks it up.
    # A photo whose uploader already has one waiting is queued for the batch sensor instead.
    launcher = DagsterLauncher(app.settings.dagster_url) if app.settings.dagster_url else None
    try:
        photo = complete_upload(
            app.repo,
            app.store,
            request.photo.id,
            on_uploaded=launcher.launch_photo if launcher else None,
            on_deferred=launcher.announce_photo if launcher else None,
        )
    except (RetryableError, ConfigurationError, PicsarisError) as error:
        if isinstance(error, BadInputError):
            raise
        # The photo is stored and marked uploaded, so `picsaris process` will still run it.
        return UploadOutcome(path, request.photo.id, warning=f"uploaded, but its run was not launched: {error}")
    return UploadOutcome(path, photo.id)
