"""The rows of `picsaris photos`, `picsaris matches` and `picsaris event list` (columns: README.md,
"The command line"), shared by the CLI and the report so the two always print the same columns with
the same values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from picsaris_pipeline.domain.model import TERMINAL_STATUSES, MatchRow, Photo, PhotoStatus

if TYPE_CHECKING:  # listings stay free of the database layer's imports
    from picsaris_pipeline.db.repository.summary_reads import EventOverview

MATCH_COLUMNS = ("photo_id", "file_name", "attendee_id", "attendee_name", "similarity", "model_version")
PHOTO_COLUMNS = ("photo_id", "file_name", "status", "reason", "faces", "matches")
# Counted apart in `event list`, in the status machine's order; every other status is a photo
# still on its way (in_progress).
_SETTLED = tuple(status for status in PhotoStatus if status in TERMINAL_STATUSES)
_EVENT_TEXT_COLUMNS = ("event_id", "name", "created_at")
EVENT_COLUMNS = (
    *_EVENT_TEXT_COLUMNS,
    "photos",
    *(status.value for status in _SETTLED),
    "in_progress",
    "attendees",
)
# Similarities as people read them (0.483, not 0.48299998044967651).
SIMILARITY_DIGITS = 3


def match_row(match: MatchRow) -> dict[str, Any]:
    return {
        "photo_id": match.photo_id,
        "file_name": match.file_name,
        "attendee_id": match.attendee_id,
        "attendee_name": match.attendee_name,
        "similarity": round(match.similarity, SIMILARITY_DIGITS),
        "model_version": match.model_version,
    }


def photo_row(photo: Photo, matches: int) -> dict[str, Any]:
    """`faces` is None until faces were detected (the CLI prints it empty)."""
    return {
        "photo_id": photo.id,
        "file_name": photo.file_name,
        "status": photo.status.value,
        "reason": photo.reason or "",
        "faces": photo.face_count,
        "matches": matches,
    }


def event_rows(events: Sequence[EventOverview]) -> list[dict[str, Any]]:
    rows = []
    for event in events:
        counts = event.photos_by_status
        settled = {status.value: counts.get(status.value, 0) for status in _SETTLED}
        rows.append(
            {
                "event_id": event.id,
                "name": event.name,
                "created_at": event.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "photos": sum(counts.values()),
                **settled,
                "in_progress": sum(counts.values()) - sum(settled.values()),
                "attendees": event.attendees,
            }
        )
    return rows


def event_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as aligned columns for a terminal: text left, counts right, one header line."""
    # A name is one line in the table, however it was typed.
    cells = [list(EVENT_COLUMNS)] + [[" ".join(str(row[c]).split()) for c in EVENT_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(EVENT_COLUMNS))]
    numeric = [column not in _EVENT_TEXT_COLUMNS for column in EVENT_COLUMNS]
    lines = [
        "  ".join(
            cell.rjust(w) if right else cell.ljust(w) for cell, w, right in zip(line, widths, numeric, strict=True)
        )
        for line in cells
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"
