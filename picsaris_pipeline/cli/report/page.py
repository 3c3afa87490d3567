"""The report's static page: inline CSS, no JavaScript, no external URLs, every name and file
name HTML-escaped (they come from guests), each face box drawn over its photo's thumbnail."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from picsaris_pipeline.domain.escaping import html_text
from picsaris_pipeline.domain.model import Attendee, Event, MatchRow, Photo
from picsaris_pipeline.services.face_clusters import UnknownPerson
from picsaris_pipeline.services.summary import METRIC_LABELS, EventSummary, cost_cells, totals_cells

PLACEHOLDER_SIZE = (240, 180)
MATCHED_COLOUR = "green"
UNMATCHED_COLOUR = "orange"


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
        _summary_table(data.summary),
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


def _costs_table(summary: EventSummary) -> str:
    """What the event is billed at the configured unit prices, and what it would cost on AWS
    Rekognition (a local engine such as dlib is billed nothing per call)."""
    rows = "\n".join(
        f"<tr><th>{_e(item)}</th><td>{_e(quantity)}</td>" + "".join(f"<td>{_dollars(v)}</td>" for v in money) + "</tr>"
        for item, quantity, *money in cost_cells(summary)
    )
    header = "<tr><th>item</th><th>quantity</th><th>unit price</th><th>cost</th><th>cost on Rekognition</th></tr>"
    return '<h2>Cost</h2>\n<table class="summary">\n' + header + "\n" + rows + "\n</table>"


def _dollars(amount: str) -> str:
    return f"${_e(amount)}" if amount else ""


def _summary_table(summary: EventSummary) -> str:
    cells = "\n".join(
        f'<tr><th scope="row">{_e(METRIC_LABELS.get(metric, metric))}</th><td class="value">{_e(value)}</td></tr>'
        for metric, value in totals_cells(summary)
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
