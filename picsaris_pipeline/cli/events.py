"""`picsaris event create|archive`: events themselves (their model versions: cli/versions.py)."""

from __future__ import annotations

import click

from picsaris_pipeline.app import App
from picsaris_pipeline.cli.common import one_line_errors


@click.command("create")
@click.argument("name")
def event_create(name: str) -> None:
    """Create an event; prints its id."""
    with one_line_errors():
        app = App.from_env()
        click.echo(app.repo.create_event(name, app.engine.model_version).id)


@click.command("archive")
@click.argument("event_id")
def event_archive(event_id: str) -> None:
    """Remove the event's photo and attendee partitions from Dagster; its records stay."""
    from picsaris_pipeline.erasure import archive_event_partitions

    with one_line_errors():
        app = App.from_env()
        removed = archive_event_partitions(app.repo, app.instance, event_id)
        click.echo(f"removed {removed} partition(s) of event {event_id}; its photos and matches are kept", err=True)
