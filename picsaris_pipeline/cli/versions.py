"""The face model versions: `picsaris models`, `reembed`, `event versions|cutover|prune`."""

from __future__ import annotations

import sys

import click

from picsaris_pipeline.cli.common import Progress, one_line_errors
from picsaris_pipeline.errors import BadInputError
from picsaris_pipeline.orchestration.app import App


@click.command()
def models() -> None:
    """The face model versions the configured engine offers, the default first."""
    from picsaris_pipeline.faces import model_versions

    with one_line_errors():
        for version in model_versions(App.from_env().settings.face_engine):
            click.echo(version)


@click.command("versions")
@click.argument("event_id")
def event_versions(event_id: str) -> None:
    """The event's active model version, what each version holds, and how far a re-embedding is."""
    from picsaris_pipeline.services.versions import cut_over_status

    with one_line_errors():
        app = App.from_env()
        configured = app.engine.model_version
        status = cut_over_status(app.repo, event_id, configured)
        click.echo(f"active: {status.active or '(none yet)'}")
        click.echo(f"configured: {configured}")
        for version, rows in sorted(app.repo.model_versions_in_use(event_id).items()):
            click.echo(f"stored: {version} ({rows} rows of vectors, engine ids and matches)")
        if not status.current:
            click.echo(
                f"re-embedding to {configured}: {status.photos_left} photo(s) and "
                f"{status.attendees_left} attendee(s) left"
            )


@click.command("cutover")
@click.argument("event_id")
@click.option("--force", is_flag=True, help="Switch even though photos or selfies lack the new version.")
def event_cutover(event_id: str, force: bool) -> None:
    """Make the configured model version the one guests see (done by itself once the event is complete)."""
    from picsaris_pipeline.services.versions import cut_over_status

    with one_line_errors():
        app = App.from_env()
        status = cut_over_status(app.repo, event_id, app.engine.model_version)
        if status.current:
            click.echo(f"event {event_id} already shows {status.target}", err=True)
            return
        if not status.complete and not force:
            raise BadInputError(
                f"{status.photos_left} photo(s) and {status.attendees_left} attendee(s) have no {status.target} "
                f"yet: run `picsaris reembed --event {event_id}` first (or --force, and guests lose those matches)"
            )
        app.repo.set_active_model_version(event_id, status.target)
        click.echo(f"event {event_id} now shows {status.target} (was {status.active})", err=True)


@click.command("prune")
@click.argument("event_id")
def event_prune(event_id: str) -> None:
    """Delete the event's vectors, engine faces and matches of model versions other than its active one."""
    from picsaris_pipeline.services.versions import prune_old_versions

    with one_line_errors():
        app = App.from_env()
        deleted = prune_old_versions(app.repo, event_id, app.engine)
        rows = sum(count for table, count in deleted.items() if table != "versions")
        click.echo(f"pruned {deleted.get('versions', 0)} old version(s) of event {event_id}: {rows} row(s)", err=True)


@click.command()
@click.option("--event", "event_id", default=None, help="Only this event (default: every event).")
@click.option("--limit", type=int, default=None, help="Stop after this many runs (re-run to go on).")
@click.option(
    "--pending",
    type=click.Choice(["photos", "attendees"]),
    default=None,
    help="Only print the partition keys still to do, comma-separated (for `dagster job backfill`).",
)
def reembed(event_id: str | None, limit: int | None, pending: str | None) -> None:
    """Re-embed photos and selfies under the configured model version. Guests keep the old matches
    until each event is complete under the new version, then it cuts over by itself. With
    PICSARIS_DAGSTER_URL set this launches backfills on that webserver; otherwise it runs here."""
    from picsaris_pipeline.services.versions import cut_over_status

    with one_line_errors():
        app = App.from_env()
        target = app.engine.model_version
        if event_id:
            app.repo.get_event(event_id)
        attendees = app.repo.attendees_missing_version(target, event_id)
        photos = app.repo.photos_missing_version(target, event_id)
        if pending:
            click.echo(",".join(a.id for a in attendees) if pending == "attendees" else ",".join(p.id for p in photos))
            return
        if app.settings.dagster_url:
            _reembed_through_webserver(app, target, [a.id for a in attendees], [p.id for p in photos])
            return
        total = len(attendees) + len(photos)
        if limit is not None:
            total = min(total, limit)
        _run_reembed(app, target, event_id, total, limit)
        events = [app.repo.get_event(event_id)] if event_id else app.repo.list_events()
        for item in events:
            status = cut_over_status(app.repo, item.id, target)
            if status.current:
                click.echo(f"event {item.id}: shows {target}", err=True)
            else:
                click.echo(
                    f"event {item.id}: still shows {status.active}; {status.photos_left} photo(s) and "
                    f"{status.attendees_left} attendee(s) left for {target}",
                    err=True,
                )


def _run_reembed(app: App, target: str, event_id: str | None, total: int, limit: int | None) -> None:
    from picsaris_pipeline.orchestration.runner import reembed_pending

    progress = Progress(f"re-embedding ({target})", total) if total else None
    try:
        summary = reembed_pending(
            app.instance, app.repo, target, event_id, progress.advance if progress else None, limit=limit
        )
    finally:
        if progress:
            progress.close()
    click.echo(f"re-embedded {summary.attendees} attendee(s) and {summary.photos} photo(s)", err=True)
    for kind, key, message in summary.failures:
        click.echo(f"failed: {kind} {key}: {message}", err=True)
    if not summary.ok:
        sys.exit(1)


def _reembed_through_webserver(app: App, target: str, attendee_ids: list[str], photo_ids: list[str]) -> None:
    from picsaris_pipeline.orchestration.jobs import reembed_assets
    from picsaris_pipeline.orchestration.launcher import DagsterLauncher
    from picsaris_pipeline.orchestration.partitions import ATTENDEE_PARTITIONS, PHOTO_PARTITIONS, run_tags

    launcher = DagsterLauncher(str(app.settings.dagster_url))
    tags = run_tags("reembed", reembed=target)
    if attendee_ids:
        launcher.add_partitions(ATTENDEE_PARTITIONS, attendee_ids)
        backfill = launcher.launch_backfill(
            ["attendee_reference", "attendee_matches"], attendee_ids, f"re-embed selfies ({target})", tags
        )
        click.echo(f"backfill {backfill}: {len(attendee_ids)} selfie(s)")
    if photo_ids:
        launcher.add_partitions(PHOTO_PARTITIONS, photo_ids)
        backfill = launcher.launch_backfill(
            reembed_assets(app.settings.face_engine), photo_ids, f"re-embed photos ({target})", tags
        )
        click.echo(f"backfill {backfill}: {len(photo_ids)} photo(s)")
    if not attendee_ids and not photo_ids:
        click.echo(f"nothing to re-embed: everything has {target}", err=True)
