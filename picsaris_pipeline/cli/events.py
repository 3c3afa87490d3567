"""`picsaris event create|list|archive`: events themselves (their model versions: cli/versions.py)."""

from __future__ import annotations

import click

from picsaris_pipeline.cli.common import emit, one_line_errors
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.services.listings import EVENT_COLUMNS, event_rows, event_table


@click.command("create")
@click.argument("name")
def event_create(name: str) -> None:
    """Create an event; prints its id."""
    with one_line_errors():
        app = App.from_env()
        click.echo(app.repo.create_event(name, app.engine.model_version).id)


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
    """Remove the event's photo and attendee partitions from Dagster; its records stay."""
    from picsaris_pipeline.orchestration.erasure import archive_event_partitions

    with one_line_errors():
        app = App.from_env()
        removed = archive_event_partitions(app.repo, app.instance, event_id)
        click.echo(f"removed {removed} partition(s) of event {event_id}; its photos and matches are kept", err=True)
