"""`picsaris report` (an event as files) and `picsaris clusters` (people who have not signed up)."""

from __future__ import annotations

from pathlib import Path

import click

from picsaris_pipeline.cli.common import emit, format_option, one_line_errors
from picsaris_pipeline.orchestration.app import App


@click.command()
@click.argument("event_id")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def report(event_id: str, out_dir: Path) -> None:
    """The event summary as CSV plus a static HTML page of each guest's photos with face boxes."""
    from picsaris_pipeline.cli.report import write_report

    with one_line_errors():
        app = App.from_env()
        index = write_report(app, event_id, out_dir)
        click.echo(str(index))


CLUSTER_COLUMNS = ("cluster_id", "photos", "faces", "photo_ids")


@click.command()
@click.argument("event_id")
@click.option("--min-photos", type=click.IntRange(min=1), default=None, help="Only clusters in this many photos [3].")
@click.option(
    "--recluster", is_flag=True, help="Cluster the event's unmatched faces again first (as its summary does)."
)
@format_option
def clusters(event_id: str, min_photos: int | None, recluster: bool, fmt: str) -> None:
    """People in the event's photos who have not signed up: clusters of unmatched faces, ids and
    counts only, most photos first."""
    from picsaris_pipeline.domain.clustering import DEFAULT_MIN_PHOTOS
    from picsaris_pipeline.services.face_clusters import recluster_event, unknown_people

    with one_line_errors():
        app = App.from_env()
        version = app.shown_version(event_id)
        if recluster:
            recluster_event(app.repo, event_id, version)
        people = unknown_people(app.repo, event_id, version, DEFAULT_MIN_PHOTOS if min_photos is None else min_photos)
        rows = [
            {"cluster_id": p.cluster_id, "photos": p.photos, "faces": p.faces, "photo_ids": " ".join(p.photo_ids)}
            for p in people
        ]
        emit(rows, CLUSTER_COLUMNS, fmt)
