"""Typed records built from result rows: events, attendees, photos, match candidates, engine ids, leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from picsaris_pipeline.db.repository.base import _utc
from picsaris_pipeline.domain import Attendee, Event, Photo, PhotoStatus, ReferenceStatus


def _event(row: Any) -> Event:
    return Event(row.id, row.name, _utc(row.created_at), row.active_model_version)


def _attendee(row: Any) -> Attendee:
    return Attendee(
        row.id,
        row.event_id,
        row.name,
        bool(row.consent),
        row.selfie_key,
        row.selfie_file_name,
        ReferenceStatus(row.reference_status),
        row.reason,
        _utc(row.created_at),
        _utc(row.updated_at),
    )


def _photo(row: Any) -> Photo:
    return Photo(
        row.id,
        row.event_id,
        row.uploader_id,
        row.file_name,
        row.object_key,
        row.content_type,
        row.declared_sha256,
        int(row.declared_size),
        PhotoStatus(row.status),
        row.reason,
        row.sha256,
        row.duplicate_of,
        row.width,
        row.height,
        row.source_format,
        row.face_count,
        _utc(row.created_at),
        _utc(row.updated_at),
    )


# A match candidate's status (the matching policy, migration 0007): proposed to the guest, then decided.
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
    return CandidateRow(
        row.photo_id,
        row.attendee_id,
        row.event_id,
        row.model_version,
        row.face_id,
        float(row.similarity),
        row.policy_id,
        row.status,
    )


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
