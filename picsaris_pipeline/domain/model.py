"""Domain records and the photo status machine (docs/OPERATIONS.md, "Photo statuses")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from picsaris_pipeline.errors import BadInputError

NAME_MAX_CHARS = 200  # events' and guests' names, as galleries and lists show them


def checked_name(name: str, what: str) -> str:
    """The name without surrounding blanks; BadInputError unless it has 1 to NAME_MAX_CHARS characters."""
    name = name.strip()
    if not name or len(name) > NAME_MAX_CHARS:
        raise BadInputError(f"{what} needs a name of 1 to {NAME_MAX_CHARS} characters")
    return name


class PhotoStatus(StrEnum):
    PENDING_UPLOAD = "pending_upload"
    UPLOADED = "uploaded"
    VERIFIED = "verified"
    FACES_DETECTED = "faces_detected"
    EMBEDDED = "embedded"
    PUBLISHED = "published"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def needs_processing(self) -> bool:
        """Still on its way to published (a crash may have left it half way)."""
        return self not in TERMINAL_STATUSES and self is not PhotoStatus.PENDING_UPLOAD


TERMINAL_STATUSES = frozenset({PhotoStatus.PUBLISHED, PhotoStatus.DUPLICATE, PhotoStatus.REJECTED, PhotoStatus.FAILED})
# Statuses whose photo went no further than verification: later steps have nothing to do.
STOPPED_STATUSES = frozenset({PhotoStatus.DUPLICATE, PhotoStatus.REJECTED, PhotoStatus.FAILED})


class ReferenceStatus(StrEnum):
    """An attendee's sign-up selfie: waiting, turned into a reference vector, or unusable."""

    PENDING = "pending"
    READY = "ready"
    REJECTED = "rejected"
    NO_CONSENT = "no_consent"  # never turned into a vector


@dataclass(frozen=True)
class Event:
    id: str
    name: str
    created_at: datetime
    # The model version whose matches guests see. A re-embedding under another version runs beside
    # it and takes over (cut-over) once every photo and selfie of the event has the new version.
    active_model_version: str | None = None
    ends_at: datetime | None = None  # None: a quiet period after its last upload (services/retention.py)
    archived_at: datetime | None = None  # when its Dagster partitions and runs were archived


@dataclass(frozen=True)
class Attendee:
    id: str
    event_id: str
    name: str
    consent: bool
    selfie_key: str | None
    selfie_file_name: str | None
    reference_status: ReferenceStatus
    reason: str | None
    created_at: datetime
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Photo:
    id: str
    event_id: str
    uploader_id: str
    file_name: str
    object_key: str
    content_type: str
    declared_sha256: str
    declared_size: int
    status: PhotoStatus
    reason: str | None
    sha256: str | None
    duplicate_of: str | None
    width: int | None
    height: int | None
    source_format: str | None
    face_count: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Face:
    id: str
    photo_id: str
    face_index: int
    detector_version: str
    left: int
    top: int
    right: int
    bottom: int
    score: float


@dataclass(frozen=True)
class MatchRow:
    """One "this guest appears in this photo" record, as the CLI and the API list it."""

    photo_id: str
    file_name: str
    attendee_id: str
    attendee_name: str
    similarity: float
    model_version: str
    face_id: str
