"""`picsaris process`, `rerun` and `demo`: pending work through the asset graph in this process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from picsaris_pipeline.cli.common import Progress, one_line_errors
from picsaris_pipeline.orchestration.app import App


def _run_pending(app: App, label: str, total: int, **options: Any) -> None:
    """Run pending work with a progress bar, report what happened, exit 1 if a run failed."""
    from picsaris_pipeline.orchestration.runner import process_pending
    from picsaris_pipeline.services.delivery import drain

    progress = Progress(label, total) if total else None
    try:
        summary = process_pending(
            app.instance,
            app.repo,
            app.store,
            app.engine.model_version,
            progress=progress.advance if progress else None,
            **options,
        )
    finally:
        if progress:
            progress.close()
    click.echo(f"processed {summary.attendees} attendee(s) and {summary.photos} photo(s)", err=True)
    # Work leases (services/leases.py): what another `picsaris process` ran meanwhile, runs a killed one left.
    if summary.by_others:
        click.echo(f"{summary.by_others} more were run by another process at the same time", err=True)
    for run_id in summary.abandoned_runs:
        click.echo(f"run {run_id[:8]} was left STARTED by a process that is gone: marked failed", err=True)
    # No daemon runs the outbox sensor here: send what earlier (failed or killed) runs left queued.
    delivery = drain(app.repo, app.publisher())
    if delivery.sent:
        click.echo(f"delivered {delivery.sent} queued realtime message(s)", err=True)
    if delivery.error:
        click.echo(f"{delivery.pending} realtime message(s) still queued: {delivery.error}", err=True)
    for kind, key, message in summary.failures:
        click.echo(f"failed: {kind} {key}: {message}", err=True)
    if not summary.ok:
        sys.exit(1)


@click.command()
@click.option("--event", "event_id", default=None, help="Only this event's pending work.")
@click.option("--retry-failed", is_flag=True, help="Also run photos whose earlier run failed.")
def process(event_id: str | None, retry_failed: bool) -> None:
    """Run all pending attendees and photos through the asset graph in this process."""
    with one_line_errors():
        app = App.from_env()
        if event_id:
            app.repo.get_event(event_id)
        total = len(app.repo.attendees_needing_reference(app.engine.model_version, event_id)) + len(
            app.repo.photos_to_process(event_id, include_failed=retry_failed)
        )
        _run_pending(app, "processing", total, event_id=event_id, retry_failed=retry_failed)


@click.command()
@click.option("--photo", "photo_ids", multiple=True, help="A photo to run again (repeatable).")
@click.option("--uploader", "uploader_id", default=None, help="Every photo this attendee uploaded.")
@click.option("--event", "event_id", default=None, help="Every photo of this event.")
@click.option("--include-rejected", is_flag=True, help="Also re-verify photos that were rejected.")
def rerun(photo_ids: tuple[str, ...], uploader_id: str | None, event_id: str | None, include_rejected: bool) -> None:
    """Run photos through the whole asset graph again (after a fix, a failure or a changed threshold)."""
    if sum(bool(x) for x in (photo_ids, uploader_id, event_id)) != 1:
        raise click.UsageError("give --photo (repeatable), --uploader or --event")
    with one_line_errors():
        app = App.from_env()
        if photo_ids:
            selected = [app.repo.get_photo(photo_id).id for photo_id in photo_ids]
        elif uploader_id:
            uploader = app.repo.get_attendee(uploader_id)
            selected = [p.id for p in app.repo.list_photos(uploader.event_id) if p.uploader_id == uploader.id]
        else:
            selected = [p.id for p in app.repo.list_photos(app.repo.get_event(str(event_id)).id)]
        reset = app.repo.reset_for_rerun(selected, include_rejected)
        click.echo(f"re-running {len(reset)} photo(s); {len(selected) - len(reset)} left as they were", err=True)
        _run_pending(app, "re-running", len(reset), only_photos=reset)


@click.command()
@click.option(
    "--selfies",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of sign-up selfies named after each attendee (e.g. Ada_Lovelace.jpg).",
)
@click.option(
    "--photos",
    "photos_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of event photos to upload.",
)
def demo(selfies: Path | None, photos_dir: Path | None) -> None:
    """The whole flow on the embedded default: an event, attendees from selfies, uploads as a phone
    makes them, the asset graph, and who was found in which photo. Uses bundled sample images
    (scikit-image's public-domain astronaut photo) unless --selfies and --photos are given."""
    from picsaris_pipeline.cli.demo import run_demo

    if (selfies is None) != (photos_dir is None):
        raise click.UsageError("give both --selfies and --photos, or neither")
    with one_line_errors():
        ok = run_demo(App.from_env(), selfies, photos_dir, echo=click.echo)
    if not ok:
        sys.exit(1)
