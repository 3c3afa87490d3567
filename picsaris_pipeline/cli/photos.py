"""`picsaris upload`, `photos`, `matches` and `photo delete`: an event's photos and who is in them."""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from picsaris_pipeline.cli.common import Progress, emit, format_option, one_line_errors
from picsaris_pipeline.cli.privacy import erase
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.services.listings import MATCH_COLUMNS, PHOTO_COLUMNS, match_row, photo_row


@click.command()
@click.argument("event_id")
@click.option("--uploader", required=True, help="The attendee id of the guest uploading.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def upload(event_id: str, uploader: str, paths: tuple[Path, ...]) -> None:
    """Upload photos as a phone does (request, PUT, complete); prints one photo id per path."""
    from picsaris_pipeline.cli.uploads import upload_files

    with one_line_errors():
        app = App.from_env()
        progress = Progress("uploading", len(paths)) if len(paths) > 1 else None
        refused = 0
        try:
            for outcome in upload_files(app, event_id, uploader, paths, on_each=progress.advance if progress else None):
                if outcome.error:
                    refused += 1
                    click.echo(f"\nrefused {outcome.path}: {outcome.error}", err=True)
                    continue
                if outcome.warning:
                    click.echo(f"\n{outcome.path.name}: {outcome.warning}", err=True)
                if outcome.duplicate_of:
                    click.echo(f"\n{outcome.path.name}: same bytes as photo {outcome.photo_id}", err=True)
                click.echo(outcome.photo_id)
        finally:
            if progress:
                progress.close()
    if refused:
        sys.exit(1)


def match_rows(app: App, event_id: str) -> list[dict[str, Any]]:
    return [match_row(m) for m in app.repo.list_matches(event_id, model_version=app.shown_version(event_id))]


def photo_rows(
    app: App, event_id: str, statuses: Sequence[str] = (), name_glob: str | None = None
) -> list[dict[str, Any]]:
    counts = app.repo.match_counts(event_id, app.shown_version(event_id))
    wanted = [PhotoStatus(status) for status in statuses] or None
    photos = app.repo.list_photos(event_id, wanted)
    if name_glob is not None:
        # Case-insensitive whatever the platform: phones name files IMG_1234.JPG and img_1234.jpg alike.
        photos = [p for p in photos if fnmatch.fnmatchcase(p.file_name.casefold(), name_glob.casefold())]
    return [photo_row(p, counts.get(p.id, 0)) for p in photos]


@click.command()
@click.argument("event_id")
@format_option
def matches(event_id: str, fmt: str) -> None:
    """One row per match under the event's active model version (what guests see)."""
    with one_line_errors():
        emit(match_rows(App.from_env(), event_id), MATCH_COLUMNS, fmt)


@click.command()
@click.argument("event_id")
@format_option
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in PhotoStatus]),
    help="Only photos with this status (repeatable), e.g. --status failed --status rejected.",
)
@click.option(
    "--name",
    "name_glob",
    default=None,
    metavar="GLOB",
    help="Only photos whose file name matches this glob, ignoring case, e.g. --name 'IMG_12*'.",
)
def photos(event_id: str, fmt: str, statuses: tuple[str, ...], name_glob: str | None) -> None:
    """One row per photo with its status, reason, faces and matches."""
    with one_line_errors():
        emit(photo_rows(App.from_env(), event_id, statuses, name_glob), PHOTO_COLUMNS, fmt)


@click.command("delete")
@click.argument("photo_id")
def photo_delete(photo_id: str) -> None:
    """Erase a photo and everything derived from it (faces, vectors, matches, images, partition)."""
    from picsaris_pipeline.orchestration import erasure

    erase(
        lambda app: erasure.delete_photo(app.repo, app.store, lambda: app.instance, photo_id, app.engine),
        lambda done: f"deleted photo {photo_id}",
    )
