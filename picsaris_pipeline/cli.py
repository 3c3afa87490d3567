"""`picsaris`: the command line (its commands and columns: README.md, "The command line"). Ids and
tables go to stdout, progress and errors to stderr, so scripts can capture the output."""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from picsaris_pipeline.app import App
from picsaris_pipeline.domain import PhotoStatus
from picsaris_pipeline.errors import BadInputError, PicsarisError
from picsaris_pipeline.fault_lines import FaultBoundary
from picsaris_pipeline.listings import MATCH_COLUMNS, PHOTO_COLUMNS, match_row, photo_row


@contextmanager
def _errors() -> Iterator[None]:
    """Project errors become one readable line and exit status 2, never a traceback."""
    try:
        yield
    except PicsarisError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except OSError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


def _emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(list(rows), indent=2))
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    click.echo(buffer.getvalue(), nl=False)


class _Progress:
    """A progress bar on stderr for long uploads and processing runs."""

    def __init__(self, label: str, total: int) -> None:
        self._bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
        self._bar.__enter__()

    def advance(self, *_: Any) -> None:
        self._bar.update(1)

    def close(self) -> None:
        self._bar.__exit__(None, None, None)


@click.group(cls=FaultBoundary)  # a damaged store ends in one line (fault_lines.py)
@click.option("-v", "--verbose", is_flag=True, help="Log what each step does.")
def main(verbose: bool) -> None:
    """picsaris: guests' event photos in, "this guest is in this photo" out."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


# -- events and attendees ---------------------------------------------------------------------
@main.group()
def event() -> None:
    """Create, archive and switch the model version of events."""


@event.command("create")
@click.argument("name")
def event_create(name: str) -> None:
    """Create an event; prints its id."""
    with _errors():
        app = App.from_env()
        click.echo(app.repo.create_event(name, app.engine.model_version).id)


@event.command("archive")
@click.argument("event_id")
def event_archive(event_id: str) -> None:
    """Remove the event's photo and attendee partitions from Dagster; its records stay."""
    from picsaris_pipeline.erasure import archive_event_partitions

    with _errors():
        app = App.from_env()
        removed = archive_event_partitions(app.repo, app.instance, event_id)
        click.echo(f"removed {removed} partition(s) of event {event_id}; its photos and matches are kept", err=True)


@event.command("versions")
@click.argument("event_id")
def event_versions(event_id: str) -> None:
    """The event's active model version, what each version holds, and how far a re-embedding is."""
    from picsaris_pipeline.services.versions import cut_over_status

    with _errors():
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


@event.command("cutover")
@click.argument("event_id")
@click.option("--force", is_flag=True, help="Switch even though photos or selfies lack the new version.")
def event_cutover(event_id: str, force: bool) -> None:
    """Make the configured model version the one guests see (done by itself once the event is complete)."""
    from picsaris_pipeline.services.versions import cut_over_status

    with _errors():
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


@event.command("prune")
@click.argument("event_id")
def event_prune(event_id: str) -> None:
    """Delete the event's vectors, engine faces and matches of model versions other than its active one."""
    from picsaris_pipeline.services.versions import prune_old_versions

    with _errors():
        app = App.from_env()
        deleted = prune_old_versions(app.repo, event_id, app.engine)
        rows = sum(count for table, count in deleted.items() if table != "versions")
        click.echo(f"pruned {deleted.get('versions', 0)} old version(s) of event {event_id}: {rows} row(s)", err=True)


@main.command()
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

    with _errors():
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
    from picsaris_pipeline.runner import reembed_pending

    progress = _Progress(f"re-embedding ({target})", total) if total else None
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
    from picsaris_pipeline.jobs import reembed_assets
    from picsaris_pipeline.launcher import DagsterLauncher
    from picsaris_pipeline.partitions import ATTENDEE_PARTITIONS, PHOTO_PARTITIONS, run_tags

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


@main.group()
def attendee() -> None:
    """Add or delete attendees."""


@attendee.command("add")
@click.argument("event_id")
@click.option("--name", required=True, help="The attendee's display name.")
@click.option("--selfie", "selfie", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-consent", is_flag=True, help="Never match this attendee in photos.")
def attendee_add(event_id: str, name: str, selfie: Path, no_consent: bool) -> None:
    """Sign an attendee up with their selfie; prints the attendee id."""
    from picsaris_pipeline.services.intake import register_attendee

    with _errors():
        app = App.from_env()
        added = register_attendee(app.repo, app.store, event_id, name, not no_consent, selfie.read_bytes(), selfie.name)
        click.echo(added.id)
        if app.settings.dagster_url:
            # As the API does at sign-up; the bucket sensor would find the selfie otherwise.
            from picsaris_pipeline.launcher import DagsterLauncher

            try:
                DagsterLauncher(app.settings.dagster_url).launch_attendee(added)
            except PicsarisError as error:
                click.echo(f"warning: {added.id}: signed up, but its run was not launched: {error}", err=True)


@attendee.command("import")
@click.argument("event_id")
@click.argument("guest_list", type=click.Path(exists=True, path_type=Path))
def attendee_import(event_id: str, guest_list: Path) -> None:
    """Sign up a guest list in one go: a folder of selfies named after each guest (Jane_Doe.jpg), or
    a CSV `name,selfie[,consent]` (paths relative to the CSV). Builds their references here; prints
    `attendee_id,name` rows; a refused file is reported and the others still go."""
    from picsaris_pipeline.runner import ImportedReferences
    from picsaris_pipeline.services.guest_import import IMPORT_COLUMNS, import_guests, read_guest_list

    with _errors():
        app = App.from_env()
        entries, refused = read_guest_list(guest_list)
        for refusal in refused:
            click.echo(f"refused {refusal.source}: {refusal.reason}", err=True)
        bars: dict[str, _Progress] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                for bar in bars.values():
                    bar.close()
                bars[phase] = _Progress(phase, total)
            bars[phase].advance()

        try:
            result = import_guests(
                app.repo,
                app.store,
                app.engine,
                app.publisher(),
                app.face_engine.threshold(),
                ImportedReferences(app.instance),
                event_id,
                entries,
                progress,
                lambda r: click.echo(f"\nrefused {r.source}: {r.reason}", err=True),
            )
        finally:
            for bar in bars.values():
                bar.close()
        _emit(
            [{"attendee_id": a.id, "name": a.name} for a in result.imported],
            IMPORT_COLUMNS,
            "csv",
        )
        for kind, key, message in result.failures:
            click.echo(f"failed: {kind} {key}: {message}", err=True)
        total_refused = len(refused) + len(result.refused)
        click.echo(f"imported {len(result.imported)} guest(s), refused {total_refused}", err=True)
    if not result.imported or result.failures:
        sys.exit(1)


@attendee.command("list")
@click.argument("event_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
def attendee_list(event_id: str, fmt: str) -> None:
    """The event's attendees with their consent and the state of their reference."""
    from picsaris_pipeline.services.guest_import import ATTENDEE_COLUMNS, attendee_row

    with _errors():
        app = App.from_env()
        app.repo.get_event(event_id)
        _emit([attendee_row(a) for a in app.repo.list_attendees(event_id)], ATTENDEE_COLUMNS, fmt)


@attendee.command("consent")
@click.argument("attendee_id")
@click.option("--withdraw", "action", flag_value="withdraw", help="Stop matching them and delete their face data.")
@click.option("--give", "action", flag_value="give", help="Match them again (their selfie is processed anew).")
@click.option(
    "--selfie",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="With --give: a new sign-up selfie (needed when the old one was deleted at a withdrawal).",
)
def attendee_consent(attendee_id: str, action: str | None, selfie: Path | None) -> None:
    """Withdraw or give an attendee's consent to be matched in photos."""
    from picsaris_pipeline.services.consent import give_consent, withdraw_everywhere

    if action is None:
        raise click.UsageError("give --withdraw or --give")
    if selfie is not None and action != "give":
        raise click.UsageError("--selfie goes with --give")
    with _errors():
        app = App.from_env()
        if action == "withdraw":
            withdrawal = withdraw_everywhere(
                app.repo,
                app.store,
                app.engine,
                app.publisher(),
                attendee_id,
                app.face_engine.threshold(),
            )
            click.echo(f"consent withdrawn; {withdrawal.describe()}", err=True)
            _scrub_old_dagster_metadata(app)
        else:
            given = give_consent(app.repo, attendee_id)
            if selfie is not None:
                from picsaris_pipeline.services.attendees import replace_selfie

                given.attendee = replace_selfie(app.repo, app.store, attendee_id, selfie.read_bytes(), selfie.name)
            if given.attendee.reason:  # e.g. their selfie was deleted while there was no consent
                click.echo(f"consent given; {given.attendee.reason}", err=True)
            else:
                click.echo(
                    "consent given; `picsaris process` (or the sensor) builds their reference and runs "
                    f"{len(given.rerun_photo_ids)} photo(s) again whose faces' data a withdrawal deleted",
                    err=True,
                )


@attendee.command("delete")
@click.argument("attendee_id")
def attendee_delete(attendee_id: str) -> None:
    """Erase an attendee's biometric data everywhere (selfie, vectors, matches, their uploads)."""
    from picsaris_pipeline import erasure

    with _errors():
        app = App.from_env()
        # The Dagster instance is built last, inside the erasure: a broken Dagster store must not
        # keep the person's data in the database and the bucket.
        done = erasure.delete_attendee(app.repo, app.store, lambda: app.instance, attendee_id, app.engine)
        click.echo(f"deleted attendee {attendee_id} and {len(done.photo_ids)} photo(s) they uploaded", err=True)
        _report_erasure(done)


@main.group()
def photo() -> None:
    """Delete photos."""


@photo.command("delete")
@click.argument("photo_id")
def photo_delete(photo_id: str) -> None:
    """Erase a photo and everything derived from it (faces, vectors, matches, images, partition)."""
    from picsaris_pipeline import erasure

    with _errors():
        app = App.from_env()
        done = erasure.delete_photo(app.repo, app.store, lambda: app.instance, photo_id, app.engine)
        click.echo(f"deleted photo {photo_id}", err=True)
        _report_erasure(done)


# -- uploads and processing -------------------------------------------------------------------
@main.command()
@click.argument("event_id")
@click.option("--uploader", required=True, help="The attendee id of the guest uploading.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def upload(event_id: str, uploader: str, paths: tuple[Path, ...]) -> None:
    """Upload photos as a phone does (request, PUT, complete); prints one photo id per path."""
    from picsaris_pipeline.uploads import upload_files

    with _errors():
        app = App.from_env()
        progress = _Progress("uploading", len(paths)) if len(paths) > 1 else None
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


def _run_pending(app: App, label: str, total: int, **options: Any) -> None:
    """Run pending work with a progress bar, report what happened, exit 1 if a run failed."""
    from picsaris_pipeline.runner import process_pending
    from picsaris_pipeline.services.delivery import drain

    progress = _Progress(label, total) if total else None
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
    # Work leases (leases.py): what another `picsaris process` ran meanwhile, runs a killed one left.
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


@main.command()
@click.option("--event", "event_id", default=None, help="Only this event's pending work.")
@click.option("--retry-failed", is_flag=True, help="Also run photos whose earlier run failed.")
def process(event_id: str | None, retry_failed: bool) -> None:
    """Run all pending attendees and photos through the asset graph in this process."""
    with _errors():
        app = App.from_env()
        if event_id:
            app.repo.get_event(event_id)
        total = len(app.repo.attendees_needing_reference(app.engine.model_version, event_id)) + len(
            app.repo.photos_to_process(event_id, include_failed=retry_failed)
        )
        _run_pending(app, "processing", total, event_id=event_id, retry_failed=retry_failed)


@main.command()
@click.option("--photo", "photo_ids", multiple=True, help="A photo to run again (repeatable).")
@click.option("--uploader", "uploader_id", default=None, help="Every photo this attendee uploaded.")
@click.option("--event", "event_id", default=None, help="Every photo of this event.")
@click.option("--include-rejected", is_flag=True, help="Also re-verify photos that were rejected.")
def rerun(photo_ids: tuple[str, ...], uploader_id: str | None, event_id: str | None, include_rejected: bool) -> None:
    """Run photos through the whole asset graph again (after a fix, a failure or a changed threshold)."""
    if sum(bool(x) for x in (photo_ids, uploader_id, event_id)) != 1:
        raise click.UsageError("give --photo (repeatable), --uploader or --event")
    with _errors():
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


# -- listings ---------------------------------------------------------------------------------
def match_rows(app: App, event_id: str) -> list[dict[str, Any]]:
    return [match_row(m) for m in app.repo.list_matches(event_id, model_version=app.shown_version(event_id))]


def photo_rows(app: App, event_id: str, statuses: Sequence[str] = ()) -> list[dict[str, Any]]:
    counts = app.repo.match_counts(event_id, app.shown_version(event_id))
    wanted = [PhotoStatus(status) for status in statuses] or None
    return [photo_row(p, counts.get(p.id, 0)) for p in app.repo.list_photos(event_id, wanted)]


@main.command()
@click.argument("event_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
def matches(event_id: str, fmt: str) -> None:
    """One row per match under the event's active model version (what guests see)."""
    with _errors():
        _emit(match_rows(App.from_env(), event_id), MATCH_COLUMNS, fmt)


@main.command()
@click.argument("event_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in PhotoStatus]),
    help="Only photos with this status (repeatable), e.g. --status failed --status rejected.",
)
def photos(event_id: str, fmt: str, statuses: tuple[str, ...]) -> None:
    """One row per photo with its status, reason, faces and matches."""
    with _errors():
        _emit(photo_rows(App.from_env(), event_id, statuses), PHOTO_COLUMNS, fmt)


@main.command()
def models() -> None:
    """The face model versions the configured engine offers, the default first."""
    from picsaris_pipeline.faces import model_versions

    with _errors():
        for version in model_versions(App.from_env().settings.face_engine):
            click.echo(version)


@main.command()
@click.argument("event_id")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def report(event_id: str, out_dir: Path) -> None:
    """The event summary as CSV plus a static HTML page of each guest's photos with face boxes."""
    from picsaris_pipeline.report import write_report

    with _errors():
        app = App.from_env()
        index = write_report(app, event_id, out_dir)
        click.echo(str(index))


@main.command()
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
    from picsaris_pipeline.demo import run_demo

    if (selfies is None) != (photos_dir is None):
        raise click.UsageError("give both --selfies and --photos, or neither")
    with _errors():
        ok = run_demo(App.from_env(), selfies, photos_dir, echo=click.echo)
    if not ok:
        sys.exit(1)


# -- privacy: erasure reports, scrubbing old Dagster metadata, the thumbnail route ----------------
def _report_erasure(done: Any) -> None:
    """What an erasure did; exit status 1 when a store could not be reached (the rest is erased)."""
    click.echo(done.describe(), err=True)
    for store in done.unreached:
        click.echo(
            f"error: not reached: {store}; everything else is erased: run `picsaris privacy scrub` once it is repaired",
            err=True,
        )
    if done.unreached:
        sys.exit(1)


def _scrub_old_dagster_metadata(app: App) -> None:
    """Once per instance: remove names and previews that versions before this one left in Dagster."""
    from picsaris_pipeline.privacy_scrub import scrub_once

    try:
        scrubbed = scrub_once(app.instance)
    except Exception as error:  # Dagster's storage is not the guest's data: report, do not fail
        click.echo(f"warning: Dagster storage not reached ({error}); run `picsaris privacy scrub` later", err=True)
        return
    if scrubbed:
        click.echo(f"scrubbed {scrubbed} old Dagster event(s) holding names or previews", err=True)


@main.group()
def privacy() -> None:
    """Keep Dagster's own storage free of personal data (its event log cannot be erased)."""


@privacy.command("scrub")
@click.option("--dry-run", is_flag=True, help="Only count what would be rewritten.")
def privacy_scrub(dry_run: bool) -> None:
    """Remove the face previews, names, file names and face boxes that versions before this one
    wrote into Dagster's event log, cached materializations and asset check executions."""
    from picsaris_pipeline.privacy_scrub import scrub_instance

    with _errors():
        counts = scrub_instance(App.from_env().instance, dry_run=dry_run)
    verb = "would rewrite" if dry_run else "rewrote"
    for table, count in counts.items():
        click.echo(f"{table}\t{count}")
    click.echo(f"{verb} {sum(counts.values())} stored Dagster event(s) holding personal data", err=True)


@main.group()
def thumbnails() -> None:
    """The read-only thumbnail route the Dagster UI links to on the embedded default."""


@thumbnails.command("serve")
@click.option("--port", type=int, default=None, help="Default: PICSARIS_THUMBNAIL_PORT or 3071.")
def thumbnails_serve(port: int | None) -> None:
    """Serve derived/<photo>/thumb.jpg at http://127.0.0.1:PORT/photos/<photo_id>/thumb.jpg until
    interrupted; an erased photo answers 404."""
    from picsaris_pipeline.thumbnail_route import make_server, route_port

    with _errors():
        app = App.from_env()
        server = make_server(lambda: app.repo, app.store, port or route_port(app.settings))
    click.echo(
        f"serving thumbnails on http://127.0.0.1:{server.server_address[1]}/photos/<photo_id>/thumb.jpg", err=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# -- the matching policy: candidates a guest confirms or refuses, re-matching under a new policy --
@main.group()
def match() -> None:
    """Candidate matches ("is this you?") and re-matching under the current matching policy."""


@match.command("candidates")
@click.argument("event_id")
@click.option("--attendee", "attendee_id", default=None, help="Only this attendee's candidates.")
@click.option("--status", type=click.Choice(["proposed", "confirmed", "refused"]), default=None)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
def match_candidates(event_id: str, attendee_id: str | None, status: str | None, fmt: str) -> None:
    """One row per candidate: photo_id,attendee_id,similarity,status,policy_id,model_version."""
    with _errors():
        app = App.from_env()
        app.repo.get_event(event_id)
        rows = [
            {
                "photo_id": c.photo_id,
                "attendee_id": c.attendee_id,
                "similarity": round(c.similarity, 4),
                "status": c.status,
                "policy_id": c.policy_id,
                "model_version": c.model_version,
            }
            for c in app.repo.list_candidates(event_id, attendee_id, status)
        ]
        _emit(rows, ["photo_id", "attendee_id", "similarity", "status", "policy_id", "model_version"], fmt)


@match.command("confirm")
@click.argument("photo_id")
@click.argument("attendee_id")
def match_confirm(photo_id: str, attendee_id: str) -> None:
    """The guest is in the photo: the candidate becomes a match (and a reference) and is announced."""
    from picsaris_pipeline.services.confirmations import confirm

    with _errors():
        app = App.from_env()
        answer = confirm(
            app.repo,
            app.publisher(),
            photo_id,
            attendee_id,
            app.face_engine.threshold(),
        )
        click.echo(f"confirmed; matched: {'yes' if answer.matched else 'no'}", err=True)


@match.command("refuse")
@click.argument("photo_id")
@click.argument("attendee_id")
def match_refuse(photo_id: str, attendee_id: str) -> None:
    """The guest is not in the photo: it is never proposed to them again."""
    from picsaris_pipeline.services.confirmations import refuse

    with _errors():
        app = App.from_env()
        refuse(app.repo, photo_id, attendee_id)
        click.echo("refused; never proposed again", err=True)


@match.command("rematch")
@click.option("--event", "event_id", default=None, help="Only this event (default: every event).")
def match_rematch(event_id: str | None) -> None:
    """Re-match the published photos matched under another matching policy (or before there was one)."""
    from picsaris_pipeline.services.versions import active_version, rematch_for_policy

    with _errors():
        app = App.from_env()
        events = [app.repo.get_event(event_id)] if event_id else app.repo.list_events()
        publisher = app.publisher()
        for item in events:
            version = active_version(item, app.engine.model_version)
            if version != app.engine.model_version:
                click.echo(f"event {item.id}: shows {version}, not the configured version; skipped", err=True)
                continue
            done = rematch_for_policy(app.repo, publisher, item.id, version, app.face_engine.threshold(), app.engine)
            click.echo(f"event {item.id}: {len(done)} photo(s) re-matched", err=True)


# -- unknown-face clusters --------------------------------------------------------------------
CLUSTER_COLUMNS = ("cluster_id", "photos", "faces", "photo_ids")


@main.command()
@click.argument("event_id")
@click.option("--min-photos", type=click.IntRange(min=1), default=None, help="Only clusters in this many photos [3].")
@click.option(
    "--recluster", is_flag=True, help="Cluster the event's unmatched faces again first (as its summary does)."
)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
def clusters(event_id: str, min_photos: int | None, recluster: bool, fmt: str) -> None:
    """People in the event's photos who have not signed up: clusters of unmatched faces, ids and
    counts only, most photos first."""
    from picsaris_pipeline.clustering import DEFAULT_MIN_PHOTOS
    from picsaris_pipeline.services.face_clusters import recluster_event, unknown_people

    with _errors():
        app = App.from_env()
        version = app.shown_version(event_id)
        if recluster:
            recluster_event(app.repo, event_id, version)
        people = unknown_people(app.repo, event_id, version, DEFAULT_MIN_PHOTOS if min_photos is None else min_photos)
        rows = [
            {"cluster_id": p.cluster_id, "photos": p.photos, "faces": p.faces, "photo_ids": " ".join(p.photo_ids)}
            for p in people
        ]
        _emit(rows, CLUSTER_COLUMNS, fmt)


if __name__ == "__main__":
    main()
