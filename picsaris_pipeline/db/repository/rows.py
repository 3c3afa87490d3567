"""Typed records built from result rows: events, attendees, photos, match candidates, engine ids, leases."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import numpy as np

from picsaris_pipeline.db.repository.base import _utc
from picsaris_pipeline.domain.model import Attendee, Event, Photo, PhotoStatus, ReferenceStatus

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")
Example = TypeVar("Example")


def _event(row: Any) -> Event:
    return _from_row(Event, row)


def _from_row(record: type[Record], row: Any, **converted: Any) -> Record:
    """A record of the row's columns named as its fields, datetimes as UTC (SQLite's are naive);
    `converted` holds the fields whose stored value is not the record's (enums, driver numbers)."""
    values = {f.name: converted.get(f.name, getattr(row, f.name)) for f in fields(record)}
    return record(**{name: _utc(v) if isinstance(v, datetime) else v for name, v in values.items()})


def _attendee(row: Any) -> Attendee:
    return _from_row(Attendee, row, consent=bool(row.consent), reference_status=ReferenceStatus(row.reference_status))


def _photo(row: Any) -> Photo:
    return _from_row(Photo, row, declared_size=int(row.declared_size), status=PhotoStatus(row.status))


# A match candidate's status (the matching policy): proposed to the guest, then decided.
CANDIDATE_PROPOSED = "proposed"


CANDIDATE_CONFIRMED = "confirmed"


CANDIDATE_REFUSED = "refused"


@dataclass(frozen=True)
class CandidateRow:
    photo_id: str
    attendee_id: str
    event_id: str
    model_version: str
    face_id: str
    similarity: float
    policy_id: str
    status: str


def _candidate(row: Any) -> CandidateRow:
    return _from_row(CandidateRow, row, similarity=float(row.similarity))


class EngineFace(NamedTuple):
    """A photo's face as the face engine knows it, under one model version."""

    face_id: str
    model_version: str
    external_face_id: str


class RecordedEngineFace(NamedTuple):
    """An engine face recorded for a face: where it lives, to delete it from the engine."""

    event_id: str
    model_version: str
    external_face_id: str


class EngineUser(NamedTuple):
    """An attendee's user in the face engine under one model version, with its selfie face."""

    model_version: str
    user_id: str
    face_id: str


class ClaimedFace(NamedTuple):
    """A cluster face claimed by a guest, with the similarity of the claim."""

    face_id: str
    attendee_id: str
    similarity: float


class Lease(NamedTuple):
    """Who holds a lease on an item, and until when (running or expired)."""

    holder: str
    expires_at: datetime


class StoredVector(NamedTuple):
    """One stored vector (a face's or an attendee's reference) as its bytes, for checks over all of them."""

    kind: str  # "face" or "attendee"
    model_version: str
    dimension: int
    vector: bytes


class References(NamedTuple):
    """The selfie reference vectors of an event's consenting attendees, one row per attendee id."""

    attendee_ids: list[str]
    vectors: np.ndarray


class ReferenceSets(NamedTuple):
    """Every reference of an event's consenting attendees: the selfies first (one per attendee, in
    attendee order), then the extra references; owners[i] indexes attendee_ids for vectors[i]."""

    attendee_ids: list[str]
    owners: list[int]
    vectors: np.ndarray


class FaceVectors(NamedTuple):
    """Vectors with, for each, the id of what it belongs to (a face, or the photo of the face)."""

    owners: list[str]
    vectors: np.ndarray


class MatchedFace(NamedTuple):
    """A face matched to a guest, and the photo it is in."""

    face_id: str
    photo_id: str


class MatchedAttendee(NamedTuple):
    """A photo and a guest matched in it."""

    photo_id: str
    attendee_id: str


class CandidateState(NamedTuple):
    """Where a guest's candidate match in a photo stands, and the face proposed."""

    status: str
    face_id: str


class UnmatchedFace(NamedTuple):
    """A face no match points at, with its cluster row (cluster_id and state None where it has none)."""

    face_id: str
    photo_id: str
    cluster_id: str | None
    state: str | None


class Counted(NamedTuple, Generic[Example]):
    """How many rows a check found, and the first few as examples."""

    total: int
    examples: list[Example]
