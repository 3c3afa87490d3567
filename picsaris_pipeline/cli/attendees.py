"""`picsaris attendee add|import|list|consent|delete`: the guests of an event."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from picsaris_pipeline.cli.common import Progress, emit, format_option, one_line_errors
from picsaris_pipeline.cli.privacy import erase, scrub_old_dagster_metadata
from picsaris_pipeline.errors import PicsarisError
from picsaris_pipeline.orchestration.app import App


@click.command("add")
@click.argument("event_id")
@click.option("--name", required=True, help="The attendee's display name.")
@click.option("--selfie", "selfie", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-consent", is_flag=True, help="Never match this attendee in photos.")
def attendee_add(event_id: str, name: str, selfie: Path, no_consent: bool) -> None:
    """Sign an attendee up with their selfie; prints the attendee id."""
    from picsaris_pipeline.services.intake import register_attendee

    with one_line_errors():
        app = App.from_env()
        added = register_attendee(app.repo, app.store, event_id, name, not no_consent, selfie.read_bytes(), selfie.name)
        click.echo(added.id)
        if app.settings.dagster_url:
            # As the API does at sign-up; the bucket sensor would find the selfie otherwise.
            from picsaris_pipeline.orchestration.launcher import DagsterLauncher

            try:
                DagsterLauncher(app.settings.dagster_url).launch_attendee(added)
            except PicsarisError as error:
                click.echo(f"warning: {added.id}: signed up, but its run was not launched: {error}", err=True)


@click.command("import")
@click.argument("event_id")
@click.argument("guest_list", type=click.Path(exists=True, path_type=Path))
def attendee_import(event_id: str, guest_list: Path) -> None:
    """Sign up a guest list in one go: a folder of selfies named after each guest (Jane_Doe.jpg), or
    a CSV `name,selfie[,consent]` (paths relative to the CSV). Builds their references here; prints
    `attendee_id,name` rows; a refused file is reported and the others still go."""
    from picsaris_pipeline.orchestration.runner import ImportedReferences
    from picsaris_pipeline.services.guest_import import IMPORT_COLUMNS, import_guests, read_guest_list

    with one_line_errors():
        app = App.from_env()
        entries, refused = read_guest_list(guest_list)
        for refusal in refused:
            click.echo(f"refused {refusal.source}: {refusal.reason}", err=True)
        bars: dict[str, Progress] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                for bar in bars.values():
                    bar.close()
                bars[phase] = Progress(phase, total)
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
        emit(
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


@click.command("list")
@click.argument("event_id")
@format_option
def attendee_list(event_id: str, fmt: str) -> None:
    """The event's attendees with their consent and the state of their reference."""
    from picsaris_pipeline.services.guest_import import ATTENDEE_COLUMNS, attendee_row

    with one_line_errors():
        app = App.from_env()
        app.repo.get_event(event_id)
        emit([attendee_row(a) for a in app.repo.list_attendees(event_id)], ATTENDEE_COLUMNS, fmt)


@click.command("consent")
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
    with one_line_errors():
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
            scrub_old_dagster_metadata(app)
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


@click.command("delete")
@click.argument("attendee_id")
def attendee_delete(attendee_id: str) -> None:
    """Erase an attendee's biometric data everywhere (selfie, vectors, matches, their uploads)."""
    from picsaris_pipeline.orchestration import erasure

    erase(
        lambda app: erasure.delete_attendee(app.repo, app.store, lambda: app.instance, attendee_id, app.engine),
        lambda done: f"deleted attendee {attendee_id} and {len(done.photo_ids)} photo(s) they uploaded",
    )
