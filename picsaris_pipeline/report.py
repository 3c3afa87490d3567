"""`picsaris report`: an event's results as files a person can open without running anything.

Writes into `out_dir/<event_id>/`:

    photos.csv    one row per photo (the columns of `picsaris photos`)
    matches.csv   one row per match under the current model version (the columns of `picsaris matches`)
    photos_by_status.csv, guests.csv, costs.csv   the same summary's other tables
    summary.csv   metric,value: the event's totals (`picsaris_pipeline.summary`, the same figures the
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from PIL import Image

from picsaris_pipeline.app import App
from picsaris_pipeline.domain import Attendee, Event, Face, MatchRow, Photo, PhotoStatus
from picsaris_pipeline.errors import BadInputError, NotFoundError
from picsaris_pipeline.escaping import html_text
from picsaris_pipeline.imaging import encode_jpeg, load_rgb
from picsaris_pipeline.keys import verified_image_key
from picsaris_pipeline.listings import match_row, photo_row
from picsaris_pipeline.services.face_clusters import UnknownPerson, unknown_people
from picsaris_pipeline.summary import TOTALS_SCHEMA, EventSummary, summarize_event

THUMB_SIDE = 480
THUMB_QUALITY = 80
PLACEHOLDER_SIZE = (240, 180)
MATCHED_COLOUR = "green"
UNMATCHED_COLOUR = "orange"

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


@dataclass(frozen=True)
class Thumbnail:
    """A written thumbnail and the factors that map verified-image pixels onto it."""

    src: str  # relative to index.html
    width: int
    height: int
    scale_x: float
    scale_y: float


@dataclass(frozen=True)
class Box:
    """A face box in thumbnail coordinates, labelled with who it matched (empty: nobody)."""

    x: float
    y: float
    width: float
    height: float
    names: tuple[str, ...]


@dataclass(frozen=True)
class ReportData:
    event: Event
    photos: list[Photo]
    attendees: list[Attendee]
    matches: list[MatchRow]
    model_version: str
    detector_version: str
    summary: EventSummary
    # Unknown-face clusters (services/face_clusters.py): ids and counts of people not signed up.
    unknown_people: list[UnknownPerson] = field(default_factory=list)


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
    data.summary.totals.write_csv(target / "summary.csv")
    data.summary.by_status.write_csv(target / "photos_by_status.csv")
    data.summary.per_attendee.write_csv(target / "guests.csv")
    data.summary.costs.write_csv(target / "costs.csv")
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
        # The report shows no costs, so it uses the default prices rather than failing on a bad
        # PICSARIS_PRICE_* setting it has no use for.
        # The configured unit prices (PICSARIS_PRICE_*): the export shows what the event costs.
        summary=summarize_event(app.repo, app.store, event.id, model_version, app.settings.prices),
        unknown_people=unknown_people(app.repo, event.id, model_version),
    )


# -- CSV ----------------------------------------------------------------------------------------
def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], schema: dict[str, Any]) -> None:
    pl.DataFrame(list(rows), schema=schema, orient="row").write_csv(path)


def _match_counts(matches: Iterable[MatchRow]) -> Counter[str]:
    # Counted from the current model version's matches (not all versions), so photos.csv,
    # matches.csv and summary.csv (which counts under the same version) agree with each other.
    return Counter(m.photo_id for m in matches)


def photo_rows(data: ReportData) -> list[dict[str, Any]]:
    counts = _match_counts(data.matches)
    return [photo_row(p, counts.get(p.id, 0)) for p in data.photos]


def match_rows(data: ReportData) -> list[dict[str, Any]]:
    return [match_row(m) for m in data.matches]


def summary_rows(data: ReportData) -> list[dict[str, Any]]:
    """The event's totals (metric, value) as summary.csv holds them."""
    return list(data.summary.totals.iter_rows(named=True))


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


# -- HTML ---------------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; background: #fafafa; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #666; margin-top: 0; }
table.summary { border-collapse: collapse; margin: 1rem 0 2rem; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 0.25rem 0.75rem; text-align: left; }
table.summary td.value { text-align: right; }
section { margin-bottom: 2.5rem; }
.photos { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; padding: 0.5rem; }
figcaption { font-size: 0.85rem; margin-top: 0.35rem; max-width: 480px; overflow-wrap: anywhere; }
.frame { position: relative; display: block; }
.frame img, .frame svg { position: absolute; left: 0; top: 0; width: 100%; height: 100%; }
.frame svg text { font-size: 14px; font-weight: bold; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.placeholder { background: #ccc; color: #444; display: flex; align-items: center; justify-content: center;
  text-align: center; font-weight: bold; }
.reason { color: #a33; }
.empty { color: #666; font-style: italic; }
"""


def _e(value: object) -> str:
    """Escape for both text and attribute values: everything shown may have come from a guest."""
    return html_text(value)


def _n(value: float) -> str:
    return f"{value:.1f}"


def render_html(data: ReportData, thumbs: Mapping[str, Thumbnail], boxes: Mapping[str, list[Box]]) -> str:
    matched_photo_ids = {m.photo_id for m in data.matches}
    body = [
        f"<h1>{_e(data.event.name)}</h1>",
        f'<p class="meta">Event {_e(data.event.id)} · face model {_e(data.model_version)} · '
        f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>",
        _summary_table(summary_rows(data)),
        _costs_table(data.summary),
        *(_guest_section(data, a, thumbs, boxes) for a in data.attendees),
        _unmatched_section([p for p in data.photos if p.id not in matched_photo_ids], thumbs, boxes),
        _unknown_people_section(data.unknown_people),
    ]
    return _page(data.event.name, "\n".join(body))


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _summary_value(value: float) -> str:
    # Counts read as counts ("3", not "3.0"); times and ratios keep two decimals.
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def _costs_table(summary: EventSummary) -> str:
    """What the event cost at the configured unit prices (the face-engine figure is what AWS
    Rekognition would bill; the embedded dlib engine itself costs nothing per call)."""
    rows = []
    for row in summary.costs.iter_rows(named=True):
        quantity = "" if row["quantity"] is None else _summary_value(row["quantity"])
        price = "" if row["unit_price_usd"] is None else f"${row['unit_price_usd']:g}"
        rows.append(
            f"<tr><th>{_e(row['item'])}</th><td>{quantity}</td><td>{price}</td><td>${row['cost_usd']:.4f}</td></tr>"
        )
    header = "<tr><th>item</th><th>quantity</th><th>unit price</th><th>cost</th></tr>"
    return '<h2>Cost</h2>\n<table class="summary">\n' + header + "\n" + "\n".join(rows) + "\n</table>"


def _summary_table(rows: Sequence[Mapping[str, Any]]) -> str:
    cells = "\n".join(
        f'<tr><th scope="row">{_e(r["metric"])}</th><td class="value">{_e(_summary_value(r["value"]))}</td></tr>'
        for r in rows
    )
    return f'<h2>Summary</h2>\n<table class="summary">\n{cells}\n</table>'


def _guest_section(
    data: ReportData, attendee: Attendee, thumbs: Mapping[str, Thumbnail], boxes: Mapping[str, list[Box]]
) -> str:
    photo_ids = {m.photo_id for m in data.matches if m.attendee_id == attendee.id}
    photos = [p for p in data.photos if p.id in photo_ids]
    if photos:
        content = _gallery(photos, thumbs, boxes)
    elif not attendee.consent:
        content = '<p class="empty">Did not consent to being found in photos.</p>'
    else:
        content = '<p class="empty">Not found in any photo yet.</p>'
    state = attendee.reference_status.value + (f": {attendee.reason}" if attendee.reason else "")
    return (
        f'<section class="guest" id="guest-{_e(attendee.id)}">\n'
        f"<h2>Guest: {_e(attendee.name)}</h2>\n"
        f'<p class="meta">{len(photos)} photo(s) · selfie {_e(state)}</p>\n{content}\n</section>'
    )


def _unmatched_section(photos: Sequence[Photo], thumbs: Mapping[str, Thumbnail], boxes: Mapping[str, list[Box]]) -> str:
    content = _gallery(photos, thumbs, boxes) if photos else '<p class="empty">None.</p>'
    return f'<section class="unmatched">\n<h2>Unmatched and rejected photos</h2>\n{content}\n</section>'


def _gallery(photos: Iterable[Photo], thumbs: Mapping[str, Thumbnail], boxes: Mapping[str, list[Box]]) -> str:
    figures = "\n".join(_figure(p, thumbs.get(p.id), boxes.get(p.id, [])) for p in photos)
    return f'<div class="photos">\n{figures}\n</div>'


def _figure(photo: Photo, thumb: Thumbnail | None, boxes: Sequence[Box]) -> str:
    visual = _placeholder(photo) if thumb is None else _framed_image(photo, thumb, boxes)
    reason = f'<br><span class="reason">{_e(photo.reason)}</span>' if photo.reason else ""
    return (
        f'<figure class="photo" data-photo-id="{_e(photo.id)}">\n{visual}\n'
        f"<figcaption>{_e(photo.file_name)} · {_e(photo.status.value)}{reason}</figcaption>\n</figure>"
    )


def _placeholder(photo: Photo) -> str:
    width, height = PLACEHOLDER_SIZE
    return f'<div class="placeholder" style="width:{width}px;height:{height}px">{_e(photo.status.value)}</div>'


def _framed_image(photo: Photo, thumb: Thumbnail, boxes: Sequence[Box]) -> str:
    # The SVG shares the image's box and viewBox is the thumbnail's pixel size, so face boxes given
    # in thumbnail pixels land on the faces at any display size.
    rects = "\n".join(_face_svg(box) for box in boxes)
    return (
        f'<div class="frame" style="width:{thumb.width}px;height:{thumb.height}px">\n'
        f'<img src="{_e(thumb.src)}" width="{thumb.width}" height="{thumb.height}" alt="{_e(photo.file_name)}">\n'
        f'<svg viewBox="0 0 {thumb.width} {thumb.height}" preserveAspectRatio="none">\n{rects}\n</svg>\n</div>'
    )


def _face_svg(box: Box) -> str:
    colour = MATCHED_COLOUR if box.names else UNMATCHED_COLOUR
    rect = (
        f'<rect x="{_n(box.x)}" y="{_n(box.y)}" width="{_n(box.width)}" height="{_n(box.height)}" '
        f'fill="none" stroke="{colour}" stroke-width="3"/>'
    )
    if not box.names:
        return rect
    # Label above the box, or just inside its top edge when the face touches the top of the photo.
    label_y = box.y - 5 if box.y >= 18 else box.y + 16
    label = ", ".join(box.names)
    return f'{rect}\n<text x="{_n(box.x)}" y="{_n(label_y)}" fill="{colour}">{_e(label)}</text>'


# -- unknown-face clusters ----------------------------------------------------------------------
UNKNOWN_PEOPLE_SCHEMA: dict[str, Any] = {"cluster_id": pl.String, "photos": pl.Int64, "faces": pl.Int64}


def unknown_people_rows(data: ReportData) -> list[dict[str, Any]]:
    return [{"cluster_id": p.cluster_id, "photos": p.photos, "faces": p.faces} for p in data.unknown_people]


def _unknown_people_section(people: Sequence[UnknownPerson]) -> str:
    """Clusters of unmatched faces, counts only: ops see who is missing, nobody's face is shown."""
    if not people:
        content = '<p class="empty">None.</p>'
    else:
        rows = "\n".join(
            f'<tr><th scope="row">{_e(p.cluster_id)}</th><td class="value">{p.photos}</td>'
            f'<td class="value">{p.faces}</td></tr>'
            for p in people
        )
        header = "<tr><th>cluster</th><th>photos</th><th>faces</th></tr>"
        content = f'<table class="summary">\n{header}\n{rows}\n</table>'
    return (
        '<section class="unknown-people">\n<h2>People not signed up</h2>\n'
        f'<p class="meta">{len(people)} person(s) seen in several photos who have not signed up</p>\n'
        f"{content}\n</section>"
    )
