"""Privacy at the command line: what an erasure reports, `picsaris privacy scrub` (Dagster's own
storage) and `picsaris thumbnails serve` (the read-only route the Dagster UI links to)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from picsaris_pipeline.cli.common import one_line_errors
from picsaris_pipeline.orchestration.app import App


def erase(what: Callable[[App], Any], describe: Callable[[Any], str]) -> None:
    """Run an erasure (orchestration/erasure.py) with the configured stores and report it. The Dagster instance
    is only built inside the erasure, last: a broken Dagster store must not keep the person's data
    in the database and the bucket."""
    with one_line_errors():
        done = what(App.from_env())
        click.echo(describe(done), err=True)
        report_erasure(done)


def report_erasure(done: Any) -> None:
    """What an erasure did; exit status 1 when a store could not be reached (the rest is erased)."""
    click.echo(done.describe(), err=True)
    for store in done.unreached:
        click.echo(
            f"error: not reached: {store}; everything else is erased: run `picsaris privacy scrub` once it is repaired",
            err=True,
        )
    if done.unreached:
        sys.exit(1)


def scrub_old_dagster_metadata(app: App) -> None:
    """Once per instance: remove names and previews that versions before this one left in Dagster."""
    from picsaris_pipeline.orchestration.privacy_scrub import scrub_once

    try:
        scrubbed = scrub_once(app.instance)
    except Exception as error:  # Dagster's storage is not the guest's data: report, do not fail
        click.echo(f"warning: Dagster storage not reached ({error}); run `picsaris privacy scrub` later", err=True)
        return
    if scrubbed:
        click.echo(f"scrubbed {scrubbed} old Dagster event(s) holding names or previews", err=True)


@click.command("scrub")
@click.option("--dry-run", is_flag=True, help="Only count what would be rewritten.")
def privacy_scrub(dry_run: bool) -> None:
    """Remove the face previews, names, file names and face boxes that versions before this one
    wrote into Dagster's event log, cached materializations and asset check executions."""
    from picsaris_pipeline.orchestration.privacy_scrub import scrub_instance

    with one_line_errors():
        counts = scrub_instance(App.from_env().instance, dry_run=dry_run)
    verb = "would rewrite" if dry_run else "rewrote"
    for table, count in counts.items():
        click.echo(f"{table}\t{count}")
    click.echo(f"{verb} {sum(counts.values())} stored Dagster event(s) holding personal data", err=True)


@click.command("serve")
@click.option("--port", type=int, default=None, help="Default: PICSARIS_THUMBNAIL_PORT or 3071.")
def thumbnails_serve(port: int | None) -> None:
    """Serve derived/<photo>/thumb.jpg at http://127.0.0.1:PORT/photos/<photo_id>/thumb.jpg until
    interrupted; an erased photo answers 404."""
    from picsaris_pipeline.services.thumbnail_route import make_server, route_port

    with one_line_errors():
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
