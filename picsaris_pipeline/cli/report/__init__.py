"""`picsaris report`: an event's results as files a person can open without running anything.

Writes into `out_dir/<event_id>/`:

    photos.csv    one row per photo (the columns of `picsaris photos`)
    matches.csv   one row per match under the current model version (the columns of `picsaris matches`)
    photos_by_status.csv, guests.csv, costs.csv   the same summary's other tables
    summary.csv   metric,value: the event's totals (`picsaris_pipeline.services.summary`, the same figures the
                  Dagster UI shows)
    index.html    a static page: the summary, each guest's photos, then unmatched and rejected photos
    images/       one JPEG thumbnail per photo that has a verified image

The page is self-contained (inline CSS, no JavaScript, no external URLs) so it can be zipped up or
mailed and still open offline, and it never runs anything a guest typed: every name and file name
comes from users and is HTML-escaped.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from PIL import Image

from picsaris_pipeline.cli.report.page import Box, ReportData, Thumbnail, render_html
from picsaris_pipeline.domain.imaging import encode_jpeg, load_rgb
from picsaris_pipeline.domain.keys import verified_image_key
from picsaris_pipeline.domain.model import Face, MatchRow, Photo, PhotoStatus
from picsaris_pipeline.errors import BadInputError, NotFoundError
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.services.face_clusters import unknown_people
from picsaris_pipeline.services.listings import match_row, photo_row
from picsaris_pipeline.services.summary import COSTS_SCHEMA, TOTALS_SCHEMA, cost_cells, summarize_event, totals_cells

THUMB_SIDE = 480
THUMB_QUALITY = 80


# Explicit schemas: an event with no photos or matches still gets CSVs with a header row, and a
# column that is empty in every row keeps its type instead of polars guessing one.
PHOTO_SCHEMA: dict[str, Any] = {
    "photo_id": pl.String,
    "file_name": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "faces": pl.Int64,
    "matches": pl.Int64,
}
MATCH_SCHEMA: dict[str, Any] = {
    "photo_id": pl.String,
    "file_name": pl.String,
    "attendee_id": pl.String,
    "attendee_name": pl.String,
    "similarity": pl.Float64,
    "model_version": pl.String,
}
SUMMARY_SCHEMA: dict[str, Any] = TOTALS_SCHEMA

# Statuses that never produce a verified image, so there is nothing to thumbnail.
_NO_IMAGE_STATUSES = frozenset(
    {PhotoStatus.PENDING_UPLOAD, PhotoStatus.UPLOADED, PhotoStatus.DUPLICATE, PhotoStatus.REJECTED}
)


def write_report(app: App, event_id: str, out_dir: Path) -> Path:
    """Write the event's report under out_dir/<event_id>/ and return the path of its index.html.

    Raises NotFoundError for an unknown event (and BadInputError for a malformed id).
    """
    # get_event validates the id as a ULID first, so it is safe to use as a directory name.
    data = _load(app, event_id)
    target = out_dir / data.event.id
    target.mkdir(parents=True, exist_ok=True)
    _write_csv(target / "photos.csv", photo_rows(data), PHOTO_SCHEMA)
    _write_csv(target / "matches.csv", match_rows(data), MATCH_SCHEMA)
    # As people read them: `photos,6`, not `photos,6.0`; seconds rounded (summary.format_total).
    _write_text_csv(target / "summary.csv", ["metric", "value"], totals_cells(data.summary))
    data.summary.by_status.write_csv(target / "photos_by_status.csv")
    data.summary.per_attendee.write_csv(target / "guests.csv")
    _write_text_csv(target / "costs.csv", list(COSTS_SCHEMA), cost_cells(data.summary))
    _write_csv(target / "unknown_people.csv", unknown_people_rows(data), UNKNOWN_PEOPLE_SCHEMA)
    thumbs = write_thumbnails(app, data, target / "images")
    boxes = {photo_id: _boxes(app, data, photo_id, thumb) for photo_id, thumb in thumbs.items()}
    index = target / "index.html"
    index.write_text(render_html(data, thumbs, boxes), encoding="utf-8")
    return index


def _load(app: App, event_id: str) -> ReportData:
    event = app.repo.get_event(event_id)
    model_version = app.shown_version(event.id)
    return ReportData(
        event=event,
        photos=app.repo.list_photos(event.id),
        attendees=app.repo.list_attendees(event.id),
        matches=app.repo.list_matches(event.id, model_version=model_version),
        model_version=model_version,
        detector_version=app.engine.detector_version,
        # The configured unit prices (PICSARIS_PRICE_*): the export shows what the event costs.
        summary=summarize_event(app.repo, app.store, event.id, model_version, app.settings.prices),
        unknown_people=unknown_people(app.repo, event.id, model_version),
    )


# -- CSV ----------------------------------------------------------------------------------------
def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], schema: dict[str, Any]) -> None:
    pl.DataFrame(list(rows), schema=schema, orient="row").write_csv(path)


def _write_text_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    pl.DataFrame(rows, schema=dict.fromkeys(header, pl.String), orient="row").write_csv(path)


def _match_counts(matches: Iterable[MatchRow]) -> Counter[str]:
    # Counted from the current model version's matches (not all versions), so photos.csv,
    # matches.csv and summary.csv (which counts under the same version) agree with each other.
    return Counter(m.photo_id for m in matches)


def photo_rows(data: ReportData) -> list[dict[str, Any]]:
    counts = _match_counts(data.matches)
    return [photo_row(p, counts.get(p.id, 0)) for p in data.photos]


def match_rows(data: ReportData) -> list[dict[str, Any]]:
    return [match_row(m) for m in data.matches]


# -- thumbnails ---------------------------------------------------------------------------------
def write_thumbnails(app: App, data: ReportData, folder: Path) -> dict[str, Thumbnail]:
    """One thumbnail per photo that has a verified image; returns them by photo id."""
    folder.mkdir(parents=True, exist_ok=True)
    thumbs: dict[str, Thumbnail] = {}
    for photo in data.photos:
        thumb = _write_thumbnail(app, photo, folder)
        if thumb is not None:
            thumbs[photo.id] = thumb
    _remove_stale(folder, {f"{photo_id}.jpg" for photo_id in thumbs})
    return thumbs


def _write_thumbnail(app: App, photo: Photo, folder: Path) -> Thumbnail | None:
    if photo.status in _NO_IMAGE_STATUSES:
        return None
    try:
        image = load_rgb(app.store.get(verified_image_key(photo.event_id, photo.id)))
    except (NotFoundError, BadInputError):
        # Missing (e.g. failed before verification) or unreadable: show the placeholder, not crash.
        return None
    full_width, full_height = image.size
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    (folder / f"{photo.id}.jpg").write_bytes(encode_jpeg(image, quality=THUMB_QUALITY))
    return Thumbnail(
        src=f"images/{photo.id}.jpg",
        width=image.width,
        height=image.height,
        scale_x=image.width / full_width,
        scale_y=image.height / full_height,
    )


def _remove_stale(folder: Path, keep: set[str]) -> None:
    # A report written again into the same folder must not keep thumbnails of photos erased since:
    # erasure of a guest's photos has to reach copies we made, too.
    for path in folder.glob("*.jpg"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def _boxes(app: App, data: ReportData, photo_id: str, thumb: Thumbnail) -> list[Box]:
    names_by_face: dict[str, list[str]] = defaultdict(list)
    for match in data.matches:
        if match.photo_id == photo_id:
            names_by_face[match.face_id].append(match.attendee_name)
    faces = app.repo.get_faces(photo_id, data.detector_version)
    return [_scaled(face, thumb, tuple(names_by_face.get(face.id, ()))) for face in faces]


def _scaled(face: Face, thumb: Thumbnail, names: tuple[str, ...]) -> Box:
    # Faces are stored in verified-image pixels; the overlay's viewBox is the thumbnail's size.
    return Box(
        x=face.left * thumb.scale_x,
        y=face.top * thumb.scale_y,
        width=(face.right - face.left) * thumb.scale_x,
        height=(face.bottom - face.top) * thumb.scale_y,
        names=names,
    )


UNKNOWN_PEOPLE_SCHEMA: dict[str, Any] = {"cluster_id": pl.String, "photos": pl.Int64, "faces": pl.Int64}


def unknown_people_rows(data: ReportData) -> list[dict[str, Any]]:
    return [{"cluster_id": p.cluster_id, "photos": p.photos, "faces": p.faces} for p in data.unknown_people]
