"""The rows of `picsaris photos` and `picsaris matches` (columns: README.md, "The command line"),
shared by the CLI and the report so the two always print the same columns with the same values."""

from __future__ import annotations

from typing import Any

from picsaris_pipeline.domain import MatchRow, Photo

MATCH_COLUMNS = ("photo_id", "file_name", "attendee_id", "attendee_name", "similarity", "model_version")
PHOTO_COLUMNS = ("photo_id", "file_name", "status", "reason", "faces", "matches")
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
