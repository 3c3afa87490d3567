"""`picsaris event create|list|archive`: events themselves (their model versions: cli/versions.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from picsaris_pipeline.cli.common import emit, one_line_errors
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.services.listings import EVENT_COLUMNS, event_rows, event_table


def _moment(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 date or time (`2026-06-20`, `2026-06-20T23:00+02:00`); without a zone, UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise click.BadParameter(f"not an ISO 8601 date or time: {value!r}") from error
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@click.command("create")
@click.argument("name")
@click.option(
    "--ends-at",
    callback=_moment,
    help="When the event is over (ISO 8601, UTC unless a zone is given); it is archived "
    "PICSARIS_ARCHIVE_AFTER later. Default: a week after its last upload.",
)
def event_create(name: str, ends_at: datetime | None) -> None:
    """Create an event; prints its id."""
    with one_line_errors():
        app = App.from_env()
        click.echo(app.repo.create_event(name, app.engine.model_version, ends_at).id)


@click.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def event_list(fmt: str) -> None:
    """Every event, oldest first: id, name, created time, photos by status and attendees."""
    with one_line_errors():
        rows = event_rows(App.from_env().repo.event_overviews())
    if fmt == "table":
        click.echo(event_table(rows), nl=False)
    else:
        emit(rows, EVENT_COLUMNS, fmt)


@click.command("archive")
@click.argument("event_id")
def event_archive(event_id: str) -> None:
    """Remove the event's photo and attendee partitions and its finished runs from Dagster now
    (event_archive_sensor does it PICSARIS_ARCHIVE_AFTER after the event ends); its records stay."""
    from picsaris_pipeline.orchestration.retention import archive_event

    with one_line_errors():
        app = App.from_env()
        click.echo(archive_event(app.repo, app.instance, event_id).describe(), err=True)
