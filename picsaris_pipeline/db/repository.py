"""Every read and write of the application database, through bound parameters only.

Writes are idempotent: re-running any step for a photo replaces its rows for the same detector or
model version instead of adding to them, so a retried or repeated run never duplicates anything.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from picsaris_pipeline import near_duplicates
from picsaris_pipeline.db import schema as t
from picsaris_pipeline.domain import (
    Attendee,
    Event,
    Face,
    MatchRow,
    Photo,
    PhotoStatus,
    ReferenceStatus,
)
from picsaris_pipeline.errors import BadInputError, ConfigurationError, NotFoundError, RetryableError
from picsaris_pipeline.faces.engine import FaceBox
from picsaris_pipeline.faces.quality import FaceQuality
from picsaris_pipeline.ids import is_valid_id, new_id
from picsaris_pipeline.keys import photo_key, selfie_key
from picsaris_pipeline.realtime import OutboxMessage, RealtimeMessage


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_id(value: str, what: str) -> None:
    if not is_valid_id(value):
        raise BadInputError(f"not a valid {what} id: {value!r}")


def _to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _from_blobs(blobs: Sequence[bytes], dimension: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1).astype(np.float32)


# Attendees whose selfie will never become a reference: unusable, or no consent to keep face data.
SETTLED_REFERENCES = (ReferenceStatus.REJECTED, ReferenceStatus.NO_CONSENT)


class Repository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- plumbing ---------------------------------------------------------------------------
    def _tx(self) -> Any:
        return _translated(self.engine.begin())

    def _read(self) -> Any:
        return _translated(self.engine.connect())

    # -- events -----------------------------------------------------------------------------
    def create_event(self, name: str, active_model_version: str | None = None) -> Event:
        name = name.strip()
        if not name or len(name) > 200:
            raise BadInputError("an event needs a name of 1 to 200 characters")
        now = _now()
        event = Event(new_id(), name, now, active_model_version)
        with self._tx() as conn:
            conn.execute(
                t.events.insert().values(
                    id=event.id, name=name, active_model_version=active_model_version, created_at=now, updated_at=now
                )
            )
        return event

    def get_event(self, event_id: str) -> Event:
        _check_id(event_id, "event")
        with self._read() as conn:
            row = conn.execute(sa.select(t.events).where(t.events.c.id == event_id)).first()
        if row is None:
            raise NotFoundError(f"no event {event_id}")
        return _event(row)

    def list_events(self) -> list[Event]:
        with self._read() as conn:
            rows = conn.execute(sa.select(t.events).order_by(t.events.c.id)).all()
        return [_event(r) for r in rows]

    def set_active_model_version(self, event_id: str, model_version: str, expected: str | None = None) -> bool:
        """Switch the version guests see; conditional on the version expected to be active (None: any),
        so two runs finishing an event's re-embedding at once switch it once. True if it changed."""
        query = t.events.update().where(t.events.c.id == event_id)
        if expected is not None:
            query = query.where(
                (t.events.c.active_model_version == expected) | t.events.c.active_model_version.is_(None)
            )
        with self._tx() as conn:
            result = conn.execute(query.values(active_model_version=model_version, updated_at=_now()))
        return result.rowcount == 1

    # -- model versions ---------------------------------------------------------------------
    def mark_photo_version(self, photo: Photo, model_version: str, faces: int) -> None:
        """Record that a photo is embedded and matched under a model version (idempotent)."""
        with self._tx() as conn:
            conn.execute(
                t.photo_model_versions.delete()
                .where(t.photo_model_versions.c.photo_id == photo.id)
                .where(t.photo_model_versions.c.model_version == model_version)
            )
            conn.execute(
                t.photo_model_versions.insert().values(
                    photo_id=photo.id,
                    model_version=model_version,
                    event_id=photo.event_id,
                    faces=faces,
                    matched_at=_now(),
                )
            )

    def mark_attendee_version(self, attendee: Attendee, model_version: str) -> None:
        """Record that an attendee has a reference under a version and was searched for in the
        event's photos under it (idempotent)."""
        with self._tx() as conn:
            conn.execute(
                t.attendee_model_versions.delete()
                .where(t.attendee_model_versions.c.attendee_id == attendee.id)
                .where(t.attendee_model_versions.c.model_version == model_version)
            )
            conn.execute(
                t.attendee_model_versions.insert().values(
                    attendee_id=attendee.id, model_version=model_version, event_id=attendee.event_id, matched_at=_now()
                )
            )

    def attendees_missing_version(self, model_version: str, event_id: str | None = None) -> list[Attendee]:
        """Consenting attendees with a usable selfie not yet done under model_version (reference and
        late-joiner matching): a re-embedding's to-do for attendees."""
        done = (
            sa.select(t.attendee_model_versions.c.attendee_id)
            .where(t.attendee_model_versions.c.attendee_id == t.attendees.c.id)
            .where(t.attendee_model_versions.c.model_version == model_version)
            .exists()
        )
        query = (
            sa.select(t.attendees)
            .where(t.attendees.c.consent.is_(True))
            .where(t.attendees.c.selfie_key.is_not(None))
            .where(t.attendees.c.reference_status.not_in([status.value for status in SETTLED_REFERENCES]))
            .where(~done)
            .order_by(t.attendees.c.id)
        )
        if event_id:
            query = query.where(t.attendees.c.event_id == event_id)
        with self._read() as conn:
            return [_attendee(r) for r in conn.execute(query).all()]

    def photo_versions(self, photo_id: str) -> list[str]:
        query = sa.select(t.photo_model_versions.c.model_version).where(t.photo_model_versions.c.photo_id == photo_id)
        with self._read() as conn:
            return sorted(r.model_version for r in conn.execute(query).all())

    def photos_missing_version(self, model_version: str, event_id: str | None = None) -> list[Photo]:
        """Published photos not yet embedded and matched under model_version (a re-embedding's to-do)."""
        done = (
            sa.select(t.photo_model_versions.c.photo_id)
            .where(t.photo_model_versions.c.photo_id == t.photos.c.id)
            .where(t.photo_model_versions.c.model_version == model_version)
            .exists()
        )
        query = (
            sa.select(t.photos)
            .where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
            .where(~done)
            .order_by(t.photos.c.id)
        )
        if event_id:
            query = query.where(t.photos.c.event_id == event_id)
        with self._read() as conn:
            return [_photo(r) for r in conn.execute(query).all()]

    def model_versions_in_use(self, event_id: str) -> dict[str, int]:
        """Model version -> rows holding it (vectors, engine ids, matches) in an event."""
        counts: dict[str, int] = {}
        tables = (t.face_vectors, t.attendee_vectors, t.engine_faces, t.engine_users, t.matches)
        with self._read() as conn:
            for table in tables:
                query = (
                    sa.select(table.c.model_version, sa.func.count())
                    .where(table.c.event_id == event_id)
                    .group_by(table.c.model_version)
                )
                for version, count in conn.execute(query).all():
                    counts[version] = counts.get(version, 0) + int(count)
        return counts

    def prune_versions(self, event_id: str, keep: str, keep_detector: str | None = None) -> dict[str, int]:
        """Delete every vector, engine id, match, message and marker of an event under versions other
        than keep, in one transaction. Returns rows deleted per table."""
        deleted: dict[str, int] = {}
        tables = (
            t.matches,
            t.realtime_outbox,
            t.face_vectors,
            t.attendee_vectors,
            t.engine_faces,
            t.engine_users,
            t.photo_model_versions,
            t.attendee_model_versions,
            t.attendee_references,  # the match policy's extra references and policy markers
            t.photo_match_policies,
        )
        with self._tx() as conn:
            for table in tables:
                result = conn.execute(
                    table.delete().where(table.c.event_id == event_id).where(table.c.model_version != keep)
                )
                deleted[table.name] = result.rowcount
            if keep_detector is not None:
                # Faces an older detector found (Rekognition indexes again under a new face model);
                # nothing refers to them any more.
                result = conn.execute(
                    t.faces.delete()
                    .where(t.faces.c.event_id == event_id)
                    .where(t.faces.c.detector_version != keep_detector)
                )
                deleted["faces"] = result.rowcount
        return deleted

    def version_mixing(self, limit: int = 20) -> tuple[int, list[str]]:
        """Matches whose face or attendee has no representation under the match's own model version:
        a match that paired two versions (or lost its vectors). Returns (count, examples)."""
        face_has = sa.or_(
            sa.select(t.face_vectors.c.face_id)
            .where(t.face_vectors.c.face_id == t.matches.c.face_id)
            .where(t.face_vectors.c.model_version == t.matches.c.model_version)
            .exists(),
            sa.select(t.engine_faces.c.face_id)
            .where(t.engine_faces.c.face_id == t.matches.c.face_id)
            .where(t.engine_faces.c.model_version == t.matches.c.model_version)
            .exists(),
        )
        attendee_has = sa.or_(
            sa.select(t.attendee_vectors.c.attendee_id)
            .where(t.attendee_vectors.c.attendee_id == t.matches.c.attendee_id)
            .where(t.attendee_vectors.c.model_version == t.matches.c.model_version)
            .exists(),
            sa.select(t.engine_users.c.attendee_id)
            .where(t.engine_users.c.attendee_id == t.matches.c.attendee_id)
            .where(t.engine_users.c.model_version == t.matches.c.model_version)
            .exists(),
        )
        bad = sa.not_(sa.and_(face_has, attendee_has))
        with self._read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(t.matches).where(bad)).scalar_one()
            rows = conn.execute(
                sa.select(t.matches.c.photo_id, t.matches.c.attendee_id, t.matches.c.model_version)
                .where(bad)
                .limit(limit)
            ).all()
        return int(count), [f"photo {r.photo_id} / attendee {r.attendee_id} ({r.model_version})" for r in rows]

    def published_without_active_version(self, fallback: str, limit: int = 20) -> tuple[int, list[str]]:
        """Published photos that were never matched under their event's active version (fallback
        where an event has none): guests see nothing for them."""
        active = sa.func.coalesce(t.events.c.active_model_version, fallback)
        done = (
            sa.select(t.photo_model_versions.c.photo_id)
            .where(t.photo_model_versions.c.photo_id == t.photos.c.id)
            .where(t.photo_model_versions.c.model_version == active)
            .exists()
        )
        query = (
            sa.select(t.photos.c.id, active.label("active"))
            .join(t.events, t.events.c.id == t.photos.c.event_id)
            .where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
            .where(~done)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return len(rows), [f"photo {r.id} (active {r.active})" for r in rows[:limit]]

    def vectors_by_version(self, batch: int = 5000) -> Iterator[tuple[str, str, int, bytes]]:
        """(kind, model version, dimension, blob) of every stored vector, streamed in batches."""
        for kind, table, key in (
            ("face", t.face_vectors, t.face_vectors.c.face_id),
            ("attendee", t.attendee_vectors, t.attendee_vectors.c.attendee_id),
        ):
            last = ""
            while True:
                query = (
                    sa.select(key.label("key"), table.c.model_version, table.c.dimension, table.c.vector)
                    .where(key > last)
                    .order_by(key)
                    .limit(batch)
                )
                with self._read() as conn:
                    rows = conn.execute(query).all()
                if not rows:
                    break
                for r in rows:
                    yield kind, r.model_version, int(r.dimension), bytes(r.vector)
                last = rows[-1].key

    # -- attendees --------------------------------------------------------------------------
    def add_attendee(
        self, event_id: str, name: str, consent: bool, selfie_file_name: str | None, selfie_ext: str | None
    ) -> Attendee:
        self.get_event(event_id)
        name = name.strip()
        if not name or len(name) > 200:
            raise BadInputError("an attendee needs a name of 1 to 200 characters")
        attendee_id = new_id()
        key = selfie_key(event_id, attendee_id, selfie_ext) if selfie_ext else None
        now = _now()
        with self._tx() as conn:
            conn.execute(
                t.attendees.insert().values(
                    id=attendee_id,
                    event_id=event_id,
                    name=name,
                    consent=consent,
                    selfie_key=key,
                    selfie_file_name=selfie_file_name,
                    reference_status=ReferenceStatus.PENDING.value,
                    reason=None,
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.get_attendee(attendee_id)

    def attendees_by_ids(self, attendee_ids: Sequence[str]) -> dict[str, Attendee]:
        """The attendees among these ids (malformed or unknown ids are simply absent)."""
        wanted = [i for i in dict.fromkeys(attendee_ids) if is_valid_id(i)]
        if not wanted:
            return {}
        with self._read() as conn:
            rows = conn.execute(sa.select(t.attendees).where(t.attendees.c.id.in_(wanted))).all()
        return {r.id: _attendee(r) for r in rows}

    def photos_by_ids(self, photo_ids: Sequence[str]) -> dict[str, Photo]:
        """The photos among these ids (malformed or unknown ids are simply absent)."""
        wanted = [i for i in dict.fromkeys(photo_ids) if is_valid_id(i)]
        if not wanted:
            return {}
        with self._read() as conn:
            rows = conn.execute(sa.select(t.photos).where(t.photos.c.id.in_(wanted))).all()
        return {r.id: _photo(r) for r in rows}

    def set_consent(self, attendee_id: str, consent: bool) -> list[str]:
        """Give or withdraw consent. Withdrawing deletes the attendee's reference vectors, engine
        users and matches under every model version, in one transaction, and returns the ids of the
        photos they were matched in (to be re-matched and re-announced without them). Giving it
        back leaves the selfie pending, for a new reference to be built."""
        attendee = self.get_attendee(attendee_id)
        with self._tx() as conn:
            # First, so a writer of face data that re-read consent finishes before this runs (and
            # this transaction's deletes see what it stored), or waits and then sees no consent.
            _lock_attendees(conn, [attendee.id], share=False)
            photo_ids = sorted(
                {
                    r.photo_id
                    for r in conn.execute(
                        sa.select(t.matches.c.photo_id).where(t.matches.c.attendee_id == attendee.id)
                    ).all()
                }
            )
            if consent:
                status, reason = ReferenceStatus.PENDING, None
            else:
                conn.execute(t.matches.delete().where(t.matches.c.attendee_id == attendee.id))
                conn.execute(t.attendee_vectors.delete().where(t.attendee_vectors.c.attendee_id == attendee.id))
                conn.execute(t.engine_users.delete().where(t.engine_users.c.attendee_id == attendee.id))
                conn.execute(
                    t.attendee_model_versions.delete().where(t.attendee_model_versions.c.attendee_id == attendee.id)
                )
                status, reason = ReferenceStatus.NO_CONSENT, "consent withdrawn: no face data is kept"
            conn.execute(
                t.attendees.update()
                .where(t.attendees.c.id == attendee.id)
                .values(consent=consent, reference_status=status.value, reason=reason, updated_at=_now())
            )
        return [] if consent else photo_ids

    def get_attendee(self, attendee_id: str) -> Attendee:
        _check_id(attendee_id, "attendee")
        with self._read() as conn:
            row = conn.execute(sa.select(t.attendees).where(t.attendees.c.id == attendee_id)).first()
        if row is None:
            raise NotFoundError(f"no attendee {attendee_id}")
        return _attendee(row)

    def list_attendees(self, event_id: str) -> list[Attendee]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t.attendees).where(t.attendees.c.event_id == event_id).order_by(t.attendees.c.id)
            ).all()
        return [_attendee(r) for r in rows]

    def set_reference_status(self, attendee_id: str, status: ReferenceStatus, reason: str | None = None) -> None:
        with self._tx() as conn:
            conn.execute(
                t.attendees.update()
                .where(t.attendees.c.id == attendee_id)
                .values(reference_status=status.value, reason=reason, updated_at=_now())
            )

    def attendees_needing_reference(self, model_version: str, event_id: str | None = None) -> list[Attendee]:
        """Attendees with a selfie but no reference (vector or engine user) under this model version,
        not yet rejected."""
        has_vector = (
            sa.select(t.attendee_vectors.c.attendee_id)
            .where(t.attendee_vectors.c.attendee_id == t.attendees.c.id)
            .where(t.attendee_vectors.c.model_version == model_version)
            .exists()
        ) | (
            sa.select(t.engine_users.c.attendee_id)
            .where(t.engine_users.c.attendee_id == t.attendees.c.id)
            .where(t.engine_users.c.model_version == model_version)
            .exists()
        )
        query = (
            sa.select(t.attendees)
            .where(t.attendees.c.selfie_key.is_not(None))
            .where(~has_vector)
            .where(t.attendees.c.reference_status.not_in([status.value for status in SETTLED_REFERENCES]))
            .order_by(t.attendees.c.id)
        )
        if event_id:
            query = query.where(t.attendees.c.event_id == event_id)
        with self._read() as conn:
            return [_attendee(r) for r in conn.execute(query).all()]

    def store_attendee_vector(self, attendee: Attendee, model_version: str, vector: np.ndarray) -> bool:
        """Store the reference vector and mark it ready, in the transaction that re-reads consent:
        False (nothing stored) if the attendee withdrew consent since the vector was computed."""
        with self._tx() as conn:
            if attendee.id not in _consenting(conn, [attendee.id]):
                return False
            # Replace, not add: re-running an attendee under the same version leaves one vector.
            conn.execute(
                t.attendee_vectors.delete()
                .where(t.attendee_vectors.c.attendee_id == attendee.id)
                .where(t.attendee_vectors.c.model_version == model_version)
            )
            conn.execute(
                t.attendee_vectors.insert().values(
                    attendee_id=attendee.id,
                    model_version=model_version,
                    event_id=attendee.event_id,
                    dimension=int(vector.shape[-1]),
                    vector=_to_blob(vector),
                    created_at=_now(),
                )
            )
            conn.execute(
                t.attendees.update()
                .where(t.attendees.c.id == attendee.id)
                .values(reference_status=ReferenceStatus.READY.value, reason=None, updated_at=_now())
            )
        return True

    def drop_attendee_vectors(self, attendee_id: str) -> None:
        with self._tx() as conn:
            conn.execute(t.attendee_vectors.delete().where(t.attendee_vectors.c.attendee_id == attendee_id))
            # The extra references too (match policy): confirmed and strongly matched faces.
            conn.execute(t.attendee_references.delete().where(t.attendee_references.c.attendee_id == attendee_id))

    def event_references(self, event_id: str, model_version: str) -> tuple[list[str], np.ndarray]:
        """Reference vectors of the event's consenting attendees under one model version."""
        query = (
            sa.select(t.attendee_vectors.c.attendee_id, t.attendee_vectors.c.vector, t.attendee_vectors.c.dimension)
            .join(t.attendees, t.attendees.c.id == t.attendee_vectors.c.attendee_id)
            .where(t.attendee_vectors.c.event_id == event_id)
            .where(t.attendee_vectors.c.model_version == model_version)
            .where(t.attendees.c.consent.is_(True))
            .order_by(t.attendee_vectors.c.attendee_id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        dimension = rows[0].dimension if rows else 0
        return [r.attendee_id for r in rows], _from_blobs([r.vector for r in rows], dimension)

    def attendee_vector(self, attendee_id: str, model_version: str) -> np.ndarray | None:
        query = sa.select(t.attendee_vectors.c.vector, t.attendee_vectors.c.dimension).where(
            (t.attendee_vectors.c.attendee_id == attendee_id) & (t.attendee_vectors.c.model_version == model_version)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _from_blobs([row.vector], row.dimension)[0]

    def delete_attendee(self, attendee_id: str) -> Attendee:
        """Erase an attendee and their biometric data: reference vectors and matches (cascade), and
        the photos they uploaded with those photos' faces. Returns the deleted record."""
        attendee = self.get_attendee(attendee_id)
        with self._tx() as conn:
            conn.execute(t.matches.delete().where(t.matches.c.attendee_id == attendee_id))
            conn.execute(t.attendee_vectors.delete().where(t.attendee_vectors.c.attendee_id == attendee_id))
            conn.execute(t.engine_users.delete().where(t.engine_users.c.attendee_id == attendee_id))
            conn.execute(
                t.attendee_model_versions.delete().where(t.attendee_model_versions.c.attendee_id == attendee_id)
            )
            photo_ids = [
                r.id for r in conn.execute(sa.select(t.photos.c.id).where(t.photos.c.uploader_id == attendee_id))
            ]
            _delete_photo_rows(conn, photo_ids)
            conn.execute(t.attendees.delete().where(t.attendees.c.id == attendee_id))
        return attendee

    # -- photos -----------------------------------------------------------------------------
    def create_photo(
        self,
        event_id: str,
        uploader_id: str,
        file_name: str,
        content_type: str,
        declared_sha256: str,
        declared_size: int,
        ext: str,
    ) -> Photo:
        uploader = self.get_attendee(uploader_id)
        if uploader.event_id != event_id:
            raise BadInputError(f"attendee {uploader_id} is not a member of event {event_id}")
        photo_id = new_id()
        now = _now()
        with self._tx() as conn:
            conn.execute(
                t.photos.insert().values(
                    id=photo_id,
                    event_id=event_id,
                    uploader_id=uploader_id,
                    file_name=file_name[:255],
                    object_key=photo_key(event_id, uploader_id, photo_id, ext),
                    content_type=content_type,
                    declared_sha256=declared_sha256.lower(),
                    declared_size=declared_size,
                    status=PhotoStatus.PENDING_UPLOAD.value,
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.get_photo(photo_id)

    def get_photo(self, photo_id: str) -> Photo:
        _check_id(photo_id, "photo")
        with self._read() as conn:
            row = conn.execute(sa.select(t.photos).where(t.photos.c.id == photo_id)).first()
        if row is None:
            raise NotFoundError(f"no photo {photo_id}")
        return _photo(row)

    def find_photo(self, photo_id: str) -> Photo | None:
        try:
            return self.get_photo(photo_id)
        except (NotFoundError, BadInputError):
            return None

    def list_photos(self, event_id: str, statuses: Iterable[PhotoStatus] | None = None) -> list[Photo]:
        query = sa.select(t.photos).where(t.photos.c.event_id == event_id).order_by(t.photos.c.id)
        if statuses is not None:
            query = query.where(t.photos.c.status.in_([s.value for s in statuses]))
        with self._read() as conn:
            return [_photo(r) for r in conn.execute(query).all()]

    def photos_to_process(self, event_id: str | None = None, include_failed: bool = False) -> list[Photo]:
        """Uploaded photos not yet at a terminal status (and failed ones if asked), oldest first."""
        pending = [s.value for s in PhotoStatus if s.needs_processing or (include_failed and s is PhotoStatus.FAILED)]
        query = sa.select(t.photos).where(t.photos.c.status.in_(pending)).order_by(t.photos.c.id)
        if event_id:
            query = query.where(t.photos.c.event_id == event_id)
        with self._read() as conn:
            return [_photo(r) for r in conn.execute(query).all()]

    def first_photo_with_sha(self, event_id: str, sha256: str) -> Photo | None:
        """The earliest photo of the event whose bytes (verified, or uploaded and declared) are these.

        Photos still waiting for their bytes do not count (a PUT that failed must not turn the retry
        into a "duplicate" of nothing), nor do rejected, duplicate or failed ones."""
        not_counted = [PhotoStatus.PENDING_UPLOAD, PhotoStatus.REJECTED, PhotoStatus.DUPLICATE, PhotoStatus.FAILED]
        bytes_match = (t.photos.c.sha256 == sha256) | (
            t.photos.c.sha256.is_(None) & (t.photos.c.declared_sha256 == sha256)
        )
        query = (
            sa.select(t.photos)
            .where(t.photos.c.event_id == event_id)
            .where(bytes_match)
            .where(t.photos.c.status.not_in([s.value for s in not_counted]))
            .order_by(t.photos.c.id)
            .limit(1)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _photo(row)

    def claim_perceptual_hash(
        self,
        photo_id: str,
        perceptual_hash: int,
        sha256: str,
        max_distance: int = near_duplicates.MAX_DISTANCE,
    ) -> near_duplicates.NearDuplicate | None:
        """Record a decoded photo's perceptual hash and, in the same transaction, look for the photo
        of its event it nearly duplicates; if there is one, mark this photo `duplicate` pointing at it.

        Who counts: photos of the event whose hash is recorded (they were decoded first), except
        duplicates, rejected and failed ones. On its first check a photo is compared with all of them,
        earlier or later by id: of two copies, the one checked first stays, so a copy whose upload
        was slow never turns a photo already published into a duplicate. On a re-run (its hash was
        recorded before) it is compared with earlier photos only, so re-running an event keeps the
        same photos. The check is serialised per event (an advisory lock on Postgres; on SQLite this
        transaction writes first, which takes the database's single write lock), so two copies
        checked at the same moment cannot both pass.

        Cost: one indexed read of the event's hashes, compared with numpy (XOR and popcount)."""
        photo = self.get_photo(photo_id)
        with self._read() as conn:
            checked_before = (
                conn.execute(sa.select(t.photos.c.perceptual_hash).where(t.photos.c.id == photo_id)).scalar_one()
                is not None
            )
        not_counted = [PhotoStatus.DUPLICATE, PhotoStatus.REJECTED, PhotoStatus.FAILED]
        query = (
            sa.select(t.photos.c.id, t.photos.c.perceptual_hash)
            .where(t.photos.c.event_id == photo.event_id)
            .where(t.photos.c.perceptual_hash.is_not(None))
            .where(t.photos.c.id != photo_id)
            .where(t.photos.c.status.not_in([s.value for s in not_counted]))
            .order_by(t.photos.c.id)
        )
        if checked_before:
            query = query.where(t.photos.c.id < photo_id)
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                lock = _near_duplicate_lock(photo.event_id)
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock})
            conn.execute(
                t.photos.update()
                .where(t.photos.c.id == photo_id)
                .values(perceptual_hash=near_duplicates.to_signed(perceptual_hash), updated_at=_now())
            )
            rows = conn.execute(query).all()
            hashes = np.fromiter((row.perceptual_hash for row in rows), dtype=np.int64, count=len(rows))
            found = near_duplicates.closest(perceptual_hash, hashes, max_distance)
            if found is None:
                return None
            original_id = rows[found[0]].id
            file_name = conn.execute(sa.select(t.photos.c.file_name).where(t.photos.c.id == original_id)).scalar_one()
            near = near_duplicates.NearDuplicate(original_id, file_name, found[1])
            conn.execute(
                t.photos.update()
                .where(t.photos.c.id == photo_id)
                .values(
                    status=PhotoStatus.DUPLICATE.value,
                    duplicate_of=original_id,
                    reason=near.reason,
                    sha256=sha256,
                    updated_at=_now(),
                )
            )
        return near

    def perceptual_hash_of(self, photo_id: str) -> int | None:
        """The photo's recorded perceptual hash (unsigned), None before it was decoded."""
        with self._read() as conn:
            value = conn.execute(sa.select(t.photos.c.perceptual_hash).where(t.photos.c.id == photo_id)).scalar()
        return None if value is None else near_duplicates.from_signed(int(value))

    def pending_upload_of(self, uploader_id: str, sha256: str) -> Photo | None:
        """This uploader's photo with these declared bytes whose PUT never completed (a retry)."""
        query = (
            sa.select(t.photos)
            .where(t.photos.c.uploader_id == uploader_id)
            .where(t.photos.c.declared_sha256 == sha256)
            .where(t.photos.c.status == PhotoStatus.PENDING_UPLOAD.value)
            .order_by(t.photos.c.id)
            .limit(1)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _photo(row)

    def abandoned_uploads(self, before: datetime) -> list[Photo]:
        query = (
            sa.select(t.photos)
            .where(t.photos.c.status == PhotoStatus.PENDING_UPLOAD.value)
            .where(t.photos.c.created_at < before)
            .order_by(t.photos.c.id)
        )
        with self._read() as conn:
            return [_photo(r) for r in conn.execute(query).all()]

    def transition(self, photo_id: str, expected: PhotoStatus, new: PhotoStatus, reason: str | None = None) -> bool:
        """Move a photo from expected to new status, atomically; False if someone else moved it first."""
        with self._tx() as conn:
            changed = conn.execute(
                t.photos.update()
                .where(t.photos.c.id == photo_id)
                .where(t.photos.c.status == expected.value)
                .values(status=new.value, reason=reason, updated_at=_now())
            ).rowcount
        return bool(changed)

    def defer_to_batch(self, photo_id: str) -> bool:
        """Queue an `uploaded` photo for the batch sensor if its uploader has another photo waiting
        to be run (`uploaded`): a guest sharing many photos at once gets them run in batches instead
        of one run each. True if deferred; False: launch the photo's own run."""
        photo = self.get_photo(photo_id)
        other = t.photos.alias("other")
        busy = (
            sa.select(other.c.id)
            .where(other.c.uploader_id == photo.uploader_id)
            .where(other.c.id != photo.id)
            .where(other.c.status == PhotoStatus.UPLOADED.value)
            .exists()
        )
        with self._tx() as conn:
            changed = conn.execute(
                t.photos.update()
                .where(t.photos.c.id == photo.id)
                .where(t.photos.c.status == PhotoStatus.UPLOADED.value)
                .where(busy)
                .values(batch_queued_at=_now())
            ).rowcount
        return bool(changed)

    def take_batch_queue(self, limit: int) -> list[Photo]:
        """The photos waiting for a batch run, oldest first (at most `limit`), taken off the queue:
        whoever takes a photo requests its run. A photo that left `uploaded` meanwhile (a re-run,
        the safety-net sensor) is dropped from the queue, not taken."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(t.photos.c.id, t.photos.c.status)
                .where(t.photos.c.batch_queued_at.is_not(None))
                .order_by(t.photos.c.batch_queued_at, t.photos.c.id)
                .limit(limit)
            ).all()
            ids = [r.id for r in rows]
            if not ids:
                return []
            taken = conn.execute(
                t.photos.update()
                .where(t.photos.c.id.in_(ids))
                .where(t.photos.c.batch_queued_at.is_not(None))
                .values(batch_queued_at=None)
                .returning(t.photos.c.id)
            ).all()
        wanted = {r.id for r in rows if r.status == PhotoStatus.UPLOADED.value} & {r.id for r in taken}
        photos = self.photos_by_ids([i for i in ids if i in wanted])
        return [photos[i] for i in ids if i in photos]

    def reset_for_rerun(self, photo_ids: Sequence[str], include_rejected: bool = False) -> list[str]:
        """Send photos back to `uploaded` so their next run starts from verification. Duplicates and
        photos whose bytes never arrived are left alone; rejected ones only when asked."""
        keep = [PhotoStatus.PENDING_UPLOAD, PhotoStatus.DUPLICATE] + (
            [] if include_rejected else [PhotoStatus.REJECTED]
        )
        reset: list[str] = []
        with self._tx() as conn:
            for chunk_start in range(0, len(photo_ids), 500):
                chunk = list(photo_ids[chunk_start : chunk_start + 500])
                selected = sa.select(t.photos.c.id).where(t.photos.c.id.in_(chunk))
                selected = selected.where(t.photos.c.status.not_in([s.value for s in keep]))
                ids = [row.id for row in conn.execute(selected)]
                if ids:
                    conn.execute(
                        t.photos.update()
                        .where(t.photos.c.id.in_(ids))
                        .values(status=PhotoStatus.UPLOADED.value, reason=None, updated_at=_now())
                    )
                reset += ids
        return reset

    def update_photo(self, photo_id: str, status: PhotoStatus | None = None, **fields: Any) -> None:
        allowed = {"reason", "sha256", "duplicate_of", "width", "height", "source_format", "face_count"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values = dict(fields, updated_at=_now())
        if status is not None:
            values["status"] = status.value
        with self._tx() as conn:
            conn.execute(t.photos.update().where(t.photos.c.id == photo_id).values(**values))

    def delete_photo(self, photo_id: str) -> Photo:
        """Erase a photo's record and everything derived from it (faces, vectors, matches)."""
        photo = self.get_photo(photo_id)
        with self._tx() as conn:
            _delete_photo_rows(conn, [photo_id])
        return photo

    # -- faces and vectors ------------------------------------------------------------------
    def replace_faces(self, photo: Photo, detector_version: str, boxes: Sequence[FaceBox]) -> list[Face]:
        """Store a photo's detected faces; a re-run that finds the same boxes keeps the rows (and so
        the vectors and matches hanging off them), a different result replaces them."""
        existing = self.get_faces(photo.id, detector_version)
        same = [(f.left, f.top, f.right, f.bottom) for f in existing] == [
            (b.left, b.top, b.right, b.bottom) for b in boxes
        ]
        if same:
            return existing
        now = _now()
        with self._tx() as conn:
            conn.execute(
                t.faces.delete()
                .where(t.faces.c.photo_id == photo.id)
                .where(t.faces.c.detector_version == detector_version)
            )
            if boxes:
                conn.execute(
                    t.faces.insert(),
                    [
                        dict(
                            id=new_id(),
                            photo_id=photo.id,
                            event_id=photo.event_id,
                            detector_version=detector_version,
                            face_index=i,
                            left=b.left,
                            top=b.top,
                            right=b.right,
                            bottom=b.bottom,
                            score=b.score,
                            created_at=now,
                        )
                        for i, b in enumerate(boxes)
                    ],
                )
        return self.get_faces(photo.id, detector_version)

    def get_faces(self, photo_id: str, detector_version: str | None = None) -> list[Face]:
        query = sa.select(t.faces).where(t.faces.c.photo_id == photo_id).order_by(t.faces.c.face_index)
        if detector_version is not None:
            query = query.where(t.faces.c.detector_version == detector_version)
        with self._read() as conn:
            return [
                Face(r.id, r.photo_id, r.face_index, r.detector_version, r.left, r.top, r.right, r.bottom, r.score)
                for r in conn.execute(query).all()
            ]

    def store_face_vectors(self, photo: Photo, faces: Sequence[Face], model_version: str, vectors: np.ndarray) -> None:
        if len(faces) != len(vectors):
            raise ValueError("one vector per face")
        rows = [
            dict(face_id=f.id, dimension=int(v.shape[-1]), vector=_to_blob(v))
            for f, v in zip(faces, vectors, strict=True)
        ]
        self._replace_photo_rows(t.face_vectors, photo, model_version, rows)

    def photo_vectors(self, photo_id: str, model_version: str) -> tuple[list[str], np.ndarray]:
        query = (
            sa.select(t.face_vectors.c.face_id, t.face_vectors.c.vector, t.face_vectors.c.dimension)
            .join(t.faces, t.faces.c.id == t.face_vectors.c.face_id)
            .where(t.face_vectors.c.photo_id == photo_id)
            .where(t.face_vectors.c.model_version == model_version)
            .order_by(t.faces.c.face_index)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        dimension = rows[0].dimension if rows else 0
        return [r.face_id for r in rows], _from_blobs([r.vector for r in rows], dimension)

    def event_face_vectors(self, event_id: str, model_version: str) -> tuple[list[str], np.ndarray]:
        """(photo id per face, vectors) for every face of an event under one model version.
        Read as plain tuples and joined into one buffer: a late joiner reads all 36,000 faces of a
        large event, and row objects cost more than the matching itself (bench/matching.py)."""
        query = (
            sa.select(t.face_vectors.c.photo_id, t.face_vectors.c.vector)
            .where(t.face_vectors.c.event_id == event_id)
            .where(t.face_vectors.c.model_version == model_version)
        )
        owners: list[str] = []
        blobs: list[bytes] = []
        with self._read() as conn:
            for photo_id, vector in conn.execute(query).tuples():
                owners.append(photo_id)
                blobs.append(vector)
        dimension = len(blobs[0]) // 4 if blobs else 0
        return owners, _from_blobs(blobs, dimension)

    # -- engine-side ids (collection engines such as Rekognition) ----------------------------
    def store_engine_faces(
        self, photo: Photo, faces: Sequence[Face], model_version: str, collection_id: str, external_ids: Sequence[str]
    ) -> None:
        """Record which engine face id each of a photo's faces has under one model version (replacing
        what an earlier run recorded)."""
        if len(faces) != len(external_ids):
            raise ValueError("one engine face id per face")
        rows = [
            dict(face_id=f.id, collection_id=collection_id, external_face_id=external)
            for f, external in zip(faces, external_ids, strict=True)
        ]
        self._replace_photo_rows(t.engine_faces, photo, model_version, rows)

    def _replace_photo_rows(
        self, table: sa.Table, photo: Photo, model_version: str, rows: Sequence[dict[str, Any]]
    ) -> None:
        """Replace what an earlier run stored for the photo under the model version (per-face rows of
        face_vectors or engine_faces) with `rows`, in one transaction."""
        now = _now()
        with self._tx() as conn:
            conn.execute(
                table.delete().where(table.c.photo_id == photo.id).where(table.c.model_version == model_version)
            )
            if rows:
                common = dict(model_version=model_version, event_id=photo.event_id, photo_id=photo.id, created_at=now)
                conn.execute(table.insert(), [{**common, **row} for row in rows])

    def photo_engine_faces(self, photo_id: str, model_version: str | None = None) -> list[tuple[str, str, str]]:
        """(face id, model version, engine face id) of a photo's faces, in face order."""
        query = (
            sa.select(t.engine_faces.c.face_id, t.engine_faces.c.model_version, t.engine_faces.c.external_face_id)
            .join(t.faces, t.faces.c.id == t.engine_faces.c.face_id)
            .where(t.engine_faces.c.photo_id == photo_id)
            .order_by(t.engine_faces.c.model_version, t.faces.c.face_index)
        )
        if model_version is not None:
            query = query.where(t.engine_faces.c.model_version == model_version)
        with self._read() as conn:
            return [(r.face_id, r.model_version, r.external_face_id) for r in conn.execute(query).all()]

    def store_engine_user(
        self, attendee: Attendee, model_version: str, collection_id: str, user_id: str, face_id: str
    ) -> bool:
        """Record the engine's user and selfie face and mark the reference ready, in the transaction
        that re-reads consent: False (nothing recorded) if consent was withdrawn meanwhile, and the
        caller deletes what the engine enrolled."""
        with self._tx() as conn:
            if attendee.id not in _consenting(conn, [attendee.id]):
                return False
            conn.execute(
                t.engine_users.delete()
                .where(t.engine_users.c.attendee_id == attendee.id)
                .where(t.engine_users.c.model_version == model_version)
            )
            conn.execute(
                t.engine_users.insert().values(
                    attendee_id=attendee.id,
                    model_version=model_version,
                    event_id=attendee.event_id,
                    collection_id=collection_id,
                    external_user_id=user_id,
                    external_face_id=face_id,
                    created_at=_now(),
                )
            )
            conn.execute(
                t.attendees.update()
                .where(t.attendees.c.id == attendee.id)
                .values(reference_status=ReferenceStatus.READY.value, reason=None, updated_at=_now())
            )
        return True

    def engine_users_of(self, attendee_id: str, model_version: str | None = None) -> list[tuple[str, str, str]]:
        """(model version, engine user id, engine face id of the selfie) for an attendee."""
        query = sa.select(t.engine_users).where(t.engine_users.c.attendee_id == attendee_id)
        if model_version is not None:
            query = query.where(t.engine_users.c.model_version == model_version)
        with self._read() as conn:
            return [
                (r.model_version, r.external_user_id, r.external_face_id)
                for r in conn.execute(query.order_by(t.engine_users.c.model_version)).all()
            ]

    def drop_engine_users(self, attendee_id: str) -> None:
        with self._tx() as conn:
            conn.execute(t.engine_users.delete().where(t.engine_users.c.attendee_id == attendee_id))

    def enrolled_attendees(self, event_id: str, model_version: str) -> dict[str, str]:
        """Engine user id -> attendee id for the event's consenting attendees under one model version."""
        query = (
            sa.select(t.engine_users.c.attendee_id, t.engine_users.c.external_user_id)
            .join(t.attendees, t.attendees.c.id == t.engine_users.c.attendee_id)
            .where(t.engine_users.c.event_id == event_id)
            .where(t.engine_users.c.model_version == model_version)
            .where(t.attendees.c.consent.is_(True))
        )
        with self._read() as conn:
            return {r.external_user_id: r.attendee_id for r in conn.execute(query).all()}

    # -- matches ----------------------------------------------------------------------------
    def replace_matches(
        self,
        photo: Photo,
        model_version: str,
        rows: Sequence[tuple[str, str, float]],
        messages: Sequence[RealtimeMessage] = (),
        policy: PolicyWrite | None = None,
    ) -> set[str]:
        """Set a photo's matches under one model version to exactly rows of (face_id, attendee_id,
        similarity), in one transaction, so a re-run never duplicates or leaves stale matches; and
        enqueue the messages announcing them in the same transaction (see _enqueue). With a policy:
        the policy id on every match, the photo's candidates and new references (see _write_policy).

        The transaction first re-reads the consent of the attendees matched or proposed: if any
        withdrew it since the rows were computed, nothing is stored and their ids are returned
        (match again without them)."""
        now = _now()
        with self._tx() as conn:
            matched = {attendee_id for _, attendee_id, _ in rows}
            if policy is not None:  # a candidate is face data proposed to a guest: consent holds for it too
                matched |= {attendee_id for _, attendee_id, _ in policy.candidates or ()}
            withdrawn = matched - _consenting(conn, matched)
            if withdrawn:
                return withdrawn
            _enqueue(conn, photo, model_version, messages, now)
            conn.execute(
                t.matches.delete()
                .where(t.matches.c.photo_id == photo.id)
                .where(t.matches.c.model_version == model_version)
            )
            if rows:
                conn.execute(
                    t.matches.insert(),
                    [
                        dict(
                            photo_id=photo.id,
                            attendee_id=attendee_id,
                            model_version=model_version,
                            event_id=photo.event_id,
                            face_id=face_id,
                            similarity=float(similarity),
                            created_at=now,
                            policy_id=policy.policy_id if policy else None,
                        )
                        for face_id, attendee_id, similarity in rows
                    ],
                )
            if policy is not None:
                _write_policy(conn, photo, model_version, policy, now)
        return set()

    def list_matches(
        self, event_id: str, photo_id: str | None = None, model_version: str | None = None
    ) -> list[MatchRow]:
        query = (
            sa.select(
                t.matches.c.photo_id,
                t.photos.c.file_name,
                t.matches.c.attendee_id,
                t.attendees.c.name,
                t.matches.c.similarity,
                t.matches.c.model_version,
                t.matches.c.face_id,
            )
            .join(t.photos, t.photos.c.id == t.matches.c.photo_id)
            .join(t.attendees, t.attendees.c.id == t.matches.c.attendee_id)
            .where(t.matches.c.event_id == event_id)
            .order_by(t.matches.c.photo_id, t.attendees.c.name)
        )
        if photo_id:
            query = query.where(t.matches.c.photo_id == photo_id)
        if model_version:
            query = query.where(t.matches.c.model_version == model_version)
        with self._read() as conn:
            return [
                MatchRow(
                    r.photo_id, r.file_name, r.attendee_id, r.name, float(r.similarity), r.model_version, r.face_id
                )
                for r in conn.execute(query).all()
            ]

    # -- realtime outbox --------------------------------------------------------------------
    def unsent_messages(self, photo_id: str | None = None, limit: int = 500) -> list[OutboxMessage]:
        # Only published photos are announced: a late joiner may enqueue for a photo still on its way.
        query = (
            sa.select(t.realtime_outbox)
            .join(t.photos, t.photos.c.id == t.realtime_outbox.c.photo_id)
            .where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
            .where(t.realtime_outbox.c.sent_at.is_(None))
            .order_by(t.realtime_outbox.c.created_at, t.realtime_outbox.c.id)
            .limit(limit)
        )
        if photo_id:
            query = query.where(t.realtime_outbox.c.photo_id == photo_id)
        with self._read() as conn:
            return [
                OutboxMessage(
                    r.id,
                    r.photo_id,
                    RealtimeMessage(r.topic, r.event, json.loads(r.payload), bool(r.private)),
                    int(r.attempts),
                    _utc(r.created_at),
                )
                for r in conn.execute(query).all()
            ]

    def mark_messages_sent(self, message_ids: Sequence[str]) -> None:
        with self._tx() as conn:
            conn.execute(
                t.realtime_outbox.update()
                .where(t.realtime_outbox.c.id.in_(list(message_ids)))
                .values(sent_at=_now(), last_error=None, updated_at=_now())
            )

    def note_delivery_failure(self, message_ids: Sequence[str], error: str) -> None:
        with self._tx() as conn:
            conn.execute(
                t.realtime_outbox.update()
                .where(t.realtime_outbox.c.id.in_(list(message_ids)))
                .values(attempts=t.realtime_outbox.c.attempts + 1, last_error=error[:2000], updated_at=_now())
            )

    def outbox_backlog(self, before: datetime) -> int:
        """Messages of published photos still unsent that were enqueued before `before`."""
        joined = t.realtime_outbox.join(t.photos, t.photos.c.id == t.realtime_outbox.c.photo_id)
        condition = (
            t.realtime_outbox.c.sent_at.is_(None)
            & (t.realtime_outbox.c.created_at < before)
            & (t.photos.c.status == PhotoStatus.PUBLISHED.value)
        )
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(joined).where(condition)).scalar_one())

    # -- health ---------------------------------------------------------------------------
    def matches_without_consent(self, limit: int = 20) -> tuple[int, list[tuple[str, str]]]:
        """(count, examples of (photo_id, attendee_id)) of matches to attendees who did not consent."""
        condition = t.attendees.c.consent.is_(False)
        joined = t.matches.join(t.attendees, t.attendees.c.id == t.matches.c.attendee_id)
        with self._read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(joined).where(condition)).scalar_one()
            rows = conn.execute(
                sa.select(t.matches.c.photo_id, t.matches.c.attendee_id)
                .select_from(joined)
                .where(condition)
                .limit(limit)
            ).all()
        return int(count), [(r.photo_id, r.attendee_id) for r in rows]

    def photos_stuck_since(self, before: datetime, limit: int = 20) -> tuple[int, list[Photo]]:
        """(count, oldest examples) of photos on their way to published not updated since before."""
        condition = t.photos.c.status.in_([s.value for s in PhotoStatus if s.needs_processing]) & (
            t.photos.c.updated_at < before
        )
        with self._read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(t.photos).where(condition)).scalar_one()
            rows = conn.execute(sa.select(t.photos).where(condition).order_by(t.photos.c.updated_at).limit(limit)).all()
        return int(count), [_photo(r) for r in rows]

    def mark_failed(self, photo_id: str, reason: str) -> bool:
        """Mark a photo failed unless it already reached a terminal status; True if it changed."""
        terminal = [s.value for s in PhotoStatus if s.is_terminal]
        with self._tx() as conn:
            changed = conn.execute(
                t.photos.update()
                .where(t.photos.c.id == photo_id)
                .where(t.photos.c.status.not_in(terminal))
                .values(status=PhotoStatus.FAILED.value, reason=reason[:2000], updated_at=_now())
            ).rowcount
        return bool(changed)

    def match_counts(self, event_id: str, model_version: str | None = None) -> dict[str, int]:
        query = (
            sa.select(t.matches.c.photo_id, sa.func.count())
            .where(t.matches.c.event_id == event_id)
            .group_by(t.matches.c.photo_id)
        )
        if model_version:
            query = query.where(t.matches.c.model_version == model_version)
        with self._read() as conn:
            return {photo_id: int(count) for photo_id, count in conn.execute(query).all()}

    # -- consent and selfies (face data only where consent holds at write time) --------------
    def face_data_without_consent(self, limit: int = 20) -> tuple[int, list[str]]:
        """Attendees without consent who still have face data: a reference vector, an engine user,
        or a reference marked ready. Must be zero; returns (count, examples)."""
        has_vector = (
            sa.select(t.attendee_vectors.c.attendee_id)
            .where(t.attendee_vectors.c.attendee_id == t.attendees.c.id)
            .exists()
        )
        has_user = (
            sa.select(t.engine_users.c.attendee_id).where(t.engine_users.c.attendee_id == t.attendees.c.id).exists()
        )
        condition = t.attendees.c.consent.is_(False) & (
            has_vector | has_user | (t.attendees.c.reference_status == ReferenceStatus.READY.value)
        )
        query = sa.select(
            t.attendees.c.id, t.attendees.c.event_id, t.attendees.c.reference_status, has_vector.label("vector")
        ).where(condition)
        with self._read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(t.attendees).where(condition)).scalar_one()
            rows = conn.execute(query.order_by(t.attendees.c.id).limit(limit)).all()
        return int(count), [
            f"{r.id} (event {r.event_id}): reference {r.reference_status}, "
            f"{'a reference vector' if r.vector else 'an engine user'} kept"
            for r in rows
        ]

    def forget_selfie(self, attendee_id: str, reason: str, reason_if_consenting: str) -> Attendee:
        """Record that the attendee's selfie image was deleted from the bucket (its key is cleared;
        the file name stays, so we know there was one) with the reason. If consent came back while
        it was being deleted, the attendee cannot become ready without a new selfie: rejected with
        reason_if_consenting."""
        with self._tx() as conn:
            consent = _lock_attendees(conn, [attendee_id], share=False).get(attendee_id)
            values: dict[str, Any] = {"selfie_key": None, "reason": reason, "updated_at": _now()}
            if consent:
                values |= {"reference_status": ReferenceStatus.REJECTED.value, "reason": reason_if_consenting}
            conn.execute(t.attendees.update().where(t.attendees.c.id == attendee_id).values(**values))
        return self.get_attendee(attendee_id)

    def set_selfie(self, attendee_id: str, selfie_file_name: str, selfie_ext: str) -> Attendee:
        """A new sign-up selfie for an attendee (after the old one was deleted): its key under the
        upload contract, and the reference pending again."""
        attendee = self.get_attendee(attendee_id)
        key = selfie_key(attendee.event_id, attendee.id, selfie_ext)
        with self._tx() as conn:
            conn.execute(
                t.attendees.update()
                .where(t.attendees.c.id == attendee.id)
                .values(
                    selfie_key=key,
                    selfie_file_name=selfie_file_name[:255],
                    reference_status=ReferenceStatus.PENDING.value,
                    reason=None,
                    updated_at=_now(),
                )
            )
        return self.get_attendee(attendee.id)

    # -- privacy: a withdrawn guest's faces in other people's photos ---------------------------
    def flush_erased(self) -> None:
        """On SQLite, empty the write-ahead log into the database and truncate it, so erased rows'
        old page images do not linger in the -wal file (secure_delete has zeroed them in the database)."""
        if self.engine.dialect.name != "sqlite":
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def faces_matched_to(self, attendee_id: str) -> list[tuple[str, str]]:
        """(face id, photo id) of every event-photo face matched to the attendee, any model version."""
        query = (
            sa.select(t.matches.c.face_id, t.matches.c.photo_id)
            .where(t.matches.c.attendee_id == attendee_id)
            .distinct()
            .order_by(t.matches.c.photo_id, t.matches.c.face_id)
        )
        with self._read() as conn:
            return [(r.face_id, r.photo_id) for r in conn.execute(query).all()]

    def engine_faces_of(self, face_ids: Sequence[str]) -> list[tuple[str, str, str]]:
        """(event id, model version, engine face id) recorded for these faces."""
        if not face_ids:
            return []
        query = sa.select(
            t.engine_faces.c.event_id, t.engine_faces.c.model_version, t.engine_faces.c.external_face_id
        ).where(t.engine_faces.c.face_id.in_(list(face_ids)))
        with self._read() as conn:
            return [(r.event_id, r.model_version, r.external_face_id) for r in conn.execute(query).all()]

    def photos_with_forgotten_faces(self, event_id: str) -> list[str]:
        """Published photos of the event holding a face with neither a vector nor an engine face under
        any model version: faces whose data a withdrawal deleted (or a crashed run never stored)."""
        has_vector = sa.exists().where(t.face_vectors.c.face_id == t.faces.c.id)
        has_engine_face = sa.exists().where(t.engine_faces.c.face_id == t.faces.c.id)
        query = (
            sa.select(t.faces.c.photo_id)
            .join(t.photos, t.photos.c.id == t.faces.c.photo_id)
            .where(t.photos.c.event_id == event_id)
            .where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
            .where(~has_vector)
            .where(~has_engine_face)
            .distinct()
            .order_by(t.faces.c.photo_id)
        )
        with self._read() as conn:
            return [r.photo_id for r in conn.execute(query).all()]

    def delete_private_messages(self, attendee_id: str) -> int:
        """Delete the realtime outbox's messages on the attendee's private topic (sent or not)."""
        topic = f"attendee:{attendee_id}"
        with self._tx() as conn:
            deleted = conn.execute(t.realtime_outbox.delete().where(t.realtime_outbox.c.topic == topic)).rowcount
        return int(deleted or 0)

    def delete_face_representations(self, face_ids: Sequence[str]) -> tuple[int, int]:
        """Delete the vectors and engine-face records of these faces (their boxes stay, unnamed), in one
        transaction. Returns (vectors deleted, engine faces deleted)."""
        if not face_ids:
            return 0, 0
        ids = list(face_ids)
        with self._tx() as conn:
            vectors = conn.execute(t.face_vectors.delete().where(t.face_vectors.c.face_id.in_(ids))).rowcount
            engine_faces = conn.execute(t.engine_faces.delete().where(t.engine_faces.c.face_id.in_(ids))).rowcount
        return int(vectors or 0), int(engine_faces or 0)

    # -- work leases (leases.py) ------------------------------------------------------------
    def claim_lease(self, kind: str, item_id: str, holder: str, seconds: float, now: datetime | None = None) -> bool:
        """Take the lease on one item for `seconds` unless another holder's lease on it is still
        running; True if `holder` has it now. One row per item: the insert wins for an item nobody
        holds, the conditional update for an expired lease (or one `holder` has already), so two
        claimers never both win: SQLite serialises writers, and on Postgres the insert waits for a
        concurrent one and the update re-checks its condition on the row it waited for."""
        now = now or _now()
        values = {"kind": kind, "item_id": item_id, "holder": holder, "claimed_at": now}
        expires_at = now + _seconds(seconds)
        with self._tx() as conn:
            inserted = conn.execute(
                _insert_or_nothing(conn, t.work_leases)
                .values(**values, expires_at=expires_at)
                .on_conflict_do_nothing()
                .returning(t.work_leases.c.item_id)
            ).first()
            if inserted is not None:
                return True
            taken = conn.execute(
                t.work_leases.update()
                .where(t.work_leases.c.kind == kind)
                .where(t.work_leases.c.item_id == item_id)
                .where((t.work_leases.c.expires_at < now) | (t.work_leases.c.holder == holder))
                .values(**values, expires_at=expires_at)
            ).rowcount
        return bool(taken)

    def renew_leases(self, holder: str, seconds: float) -> int:
        """Extend every lease `holder` still has (one nobody else took after it ran out, too)."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    t.work_leases.update()
                    .where(t.work_leases.c.holder == holder)
                    .values(expires_at=_now() + _seconds(seconds))
                ).rowcount
            )

    def release_leases(self, holder: str, kind: str | None = None, item_ids: Sequence[str] | None = None) -> None:
        """Give up `holder`'s leases (of one kind, on some items); others' leases are untouched."""
        query = t.work_leases.delete().where(t.work_leases.c.holder == holder)
        if kind is not None:
            query = query.where(t.work_leases.c.kind == kind)
        if item_ids is not None:
            query = query.where(t.work_leases.c.item_id.in_(list(item_ids)))
        with self._tx() as conn:
            conn.execute(query)

    def expire_leases(self, holder: str) -> int:
        """End a holder's leases now (it is known to be dead), so the next claimer takes its work."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    t.work_leases.update()
                    .where(t.work_leases.c.holder == holder)
                    .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
                ).rowcount
            )

    def leases_on(self, kind: str, item_ids: Sequence[str]) -> dict[str, tuple[str, datetime]]:
        """item id -> (holder, expires_at) of the leases on these items, running or expired."""
        if not item_ids:
            return {}
        query = sa.select(t.work_leases).where(t.work_leases.c.kind == kind)
        found: dict[str, tuple[str, datetime]] = {}
        with self._read() as conn:
            for start in range(0, len(item_ids), 500):
                chunk = list(item_ids[start : start + 500])
                for row in conn.execute(query.where(t.work_leases.c.item_id.in_(chunk))):
                    found[row.item_id] = (row.holder, _utc(row.expires_at))
        return found

    # -- the matching policy: candidates, references, policy markers (migration 0007) ------------
    def event_reference_sets(self, event_id: str, model_version: str) -> tuple[list[str], list[int], np.ndarray]:
        """Every reference of the event's consenting attendees under one version: the selfie vectors
        and the extra references. Returns (attendee ids, owner index into them per vector, vectors)."""
        attendee_ids, selfies = self.event_references(event_id, model_version)
        index = {attendee: i for i, attendee in enumerate(attendee_ids)}
        query = (
            sa.select(
                t.attendee_references.c.attendee_id,
                t.attendee_references.c.vector,
                t.attendee_references.c.dimension,
            )
            .join(t.attendees, t.attendees.c.id == t.attendee_references.c.attendee_id)
            .where(t.attendee_references.c.event_id == event_id)
            .where(t.attendee_references.c.model_version == model_version)
            .where(t.attendees.c.consent.is_(True))
            .order_by(t.attendee_references.c.attendee_id, t.attendee_references.c.id)
        )
        with self._read() as conn:
            extra = [r for r in conn.execute(query).all() if r.attendee_id in index]
        owners = list(range(len(attendee_ids))) + [index[r.attendee_id] for r in extra]
        if not extra:
            return attendee_ids, owners, selfies
        vectors = _from_blobs([r.vector for r in extra], extra[0].dimension)
        return attendee_ids, owners, np.concatenate([selfies, vectors]) if len(selfies) else vectors

    def attendee_reference_count(self, attendee_id: str, model_version: str) -> int:
        """Extra references (beyond the selfie) of one attendee under one version."""
        query = (
            sa.select(sa.func.count())
            .select_from(t.attendee_references)
            .where(t.attendee_references.c.attendee_id == attendee_id)
            .where(t.attendee_references.c.model_version == model_version)
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def photo_candidates(self, photo_id: str) -> dict[str, tuple[str, str]]:
        """attendee id -> (status, face id) of every candidate row of one photo."""
        query = sa.select(
            t.match_candidates.c.attendee_id, t.match_candidates.c.status, t.match_candidates.c.face_id
        ).where(t.match_candidates.c.photo_id == photo_id)
        with self._read() as conn:
            return {r.attendee_id: (r.status, r.face_id) for r in conn.execute(query).all()}

    def list_candidates(
        self, event_id: str, attendee_id: str | None = None, status: str | None = None
    ) -> list[CandidateRow]:
        query = (
            sa.select(t.match_candidates)
            .where(t.match_candidates.c.event_id == event_id)
            .order_by(t.match_candidates.c.photo_id, t.match_candidates.c.attendee_id)
        )
        if attendee_id:
            query = query.where(t.match_candidates.c.attendee_id == attendee_id)
        if status:
            query = query.where(t.match_candidates.c.status == status)
        with self._read() as conn:
            return [_candidate(r) for r in conn.execute(query).all()]

    def get_candidate(self, photo_id: str, attendee_id: str) -> CandidateRow:
        _check_id(photo_id, "photo")
        _check_id(attendee_id, "attendee")
        query = sa.select(t.match_candidates).where(
            (t.match_candidates.c.photo_id == photo_id) & (t.match_candidates.c.attendee_id == attendee_id)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"attendee {attendee_id} has no candidate match in photo {photo_id}")
        return _candidate(row)

    def decide_candidate(self, photo_id: str, attendee_id: str, status: str) -> bool:
        """Mark a proposed candidate confirmed or refused. False if it was already decided that way;
        a decided candidate cannot be decided the other way (a refusal is final, so is a confirmation)."""
        if status not in (CANDIDATE_CONFIRMED, CANDIDATE_REFUSED):
            raise ValueError(f"unknown candidate decision {status!r}")
        current = self.get_candidate(photo_id, attendee_id)
        if current.status == status:
            return False
        if current.status != CANDIDATE_PROPOSED:
            raise BadInputError(
                f"attendee {attendee_id} already {current.status} photo {photo_id}; that decision is final"
            )
        now = _now()
        with self._tx() as conn:
            changed = conn.execute(
                t.match_candidates.update()
                .where(t.match_candidates.c.photo_id == photo_id)
                .where(t.match_candidates.c.attendee_id == attendee_id)
                .where(t.match_candidates.c.status == CANDIDATE_PROPOSED)
                .values(status=status, decided_at=now, updated_at=now)
            ).rowcount
        return bool(changed)

    def photo_policy(self, photo_id: str, model_version: str) -> str | None:
        query = sa.select(t.photo_match_policies.c.policy_id).where(
            (t.photo_match_policies.c.photo_id == photo_id) & (t.photo_match_policies.c.model_version == model_version)
        )
        with self._read() as conn:
            return conn.execute(query).scalar()

    def photos_matched_under_other_policy(self, event_id: str, model_version: str, policy_id: str) -> list[Photo]:
        """Published photos of the event whose last matching under this version used another policy
        (or none: matched before there was one)."""
        marker = (
            sa.select(t.photo_match_policies.c.photo_id)
            .where(t.photo_match_policies.c.model_version == model_version)
            .where(t.photo_match_policies.c.policy_id == policy_id)
        )
        query = (
            sa.select(t.photos)
            .where(t.photos.c.event_id == event_id)
            .where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
            .where(t.photos.c.id.not_in(marker))
            .order_by(t.photos.c.id)
        )
        with self._read() as conn:
            return [_photo(r) for r in conn.execute(query).all()]

    # -- face quality (faces/quality.py) ------------------------------------------------------
    def store_face_quality(self, faces: Sequence[Face], qualities: Sequence[FaceQuality]) -> None:
        """Record each face's quality, replacing what an earlier run of the same faces recorded."""
        if len(faces) != len(qualities):
            raise ValueError("one quality per face")
        if not faces:
            return
        with self._tx() as conn:
            conn.execute(t.face_quality.delete().where(t.face_quality.c.face_id.in_([f.id for f in faces])))
            conn.execute(
                t.face_quality.insert(),
                [
                    dict(
                        face_id=f.id,
                        photo_id=f.photo_id,
                        size_px=q.size_px,
                        sharpness=q.sharpness,
                        yaw_degrees=q.yaw_degrees,
                        matchable=q.matchable,
                        reason=q.reason,
                    )
                    for f, q in zip(faces, qualities, strict=True)
                ],
            )

    def face_quality_of(self, photo_id: str) -> dict[str, tuple[int, float, float, bool, str | None]]:
        """face id -> (size px, sharpness, yaw degrees, matchable, reason) for a photo's measured faces."""
        query = sa.select(t.face_quality).where(t.face_quality.c.photo_id == photo_id)
        with self._read() as conn:
            return {
                r.face_id: (r.size_px, r.sharpness, r.yaw_degrees, bool(r.matchable), r.reason)
                for r in conn.execute(query).all()
            }

    def unmatchable_face_ids(self, face_ids: Sequence[str]) -> set[str]:
        """The faces among these whose quality forbids matching (no row: matchable)."""
        if not face_ids:
            return set()
        query = (
            sa.select(t.face_quality.c.face_id)
            .where(t.face_quality.c.face_id.in_(list(face_ids)))
            .where(t.face_quality.c.matchable.is_(False))
        )
        with self._read() as conn:
            return {r.face_id for r in conn.execute(query).all()}

    # -- unknown-face clusters (services/face_clusters.py) ------------------------------------
    def unmatched_face_vectors(
        self, event_id: str, model_version: str, photo_id: str | None = None, or_matched_to: str | None = None
    ) -> tuple[list[tuple[str, str, str | None, str | None]], np.ndarray]:
        """Faces of published photos (or of one photo, whatever its status) with a vector under
        model_version that no match under it points at (or_matched_to: or a match to that
        attendee): ((face_id, photo_id, cluster_id, state) per face, vectors). cluster_id/state are
        the face's cluster row, None where it has none."""
        fv, fc = t.face_vectors, t.face_clusters
        other_match = (
            sa.select(t.matches.c.face_id)
            .where(t.matches.c.face_id == fv.c.face_id)
            .where(t.matches.c.model_version == model_version)
        )
        if or_matched_to is not None:
            other_match = other_match.where(t.matches.c.attendee_id != or_matched_to)
        matched = other_match.exists()
        query = (
            sa.select(fv.c.face_id, fv.c.photo_id, fc.c.cluster_id, fc.c.state, fv.c.vector)
            .join(t.photos, t.photos.c.id == fv.c.photo_id)
            .outerjoin(fc, sa.and_(fc.c.face_id == fv.c.face_id, fc.c.model_version == model_version))
            .where(fv.c.event_id == event_id)
            .where(fv.c.model_version == model_version)
            .where(~matched)
            .order_by(fv.c.photo_id, fv.c.face_id)
        )
        if photo_id is None:
            query = query.where(t.photos.c.status == PhotoStatus.PUBLISHED.value)
        else:
            query = query.where(fv.c.photo_id == photo_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
        dimension = len(rows[0].vector) // 4 if rows else 0
        return (
            [(r.face_id, r.photo_id, r.cluster_id, r.state) for r in rows],
            _from_blobs([r.vector for r in rows], dimension),
        )

    def replace_unclaimed_clusters(
        self, event_id: str, model_version: str, rows: Sequence[tuple[str, str, str]], only_faces: bool = False
    ) -> None:
        """Set the unclaimed cluster rows to rows of (face_id, photo_id, cluster_id): all of the
        event's under model_version, or (only_faces) just those of the faces in rows. Claimed and
        withheld rows are never touched, and a face holding one is skipped."""
        fc = t.face_clusters
        face_ids = [face_id for face_id, _, _ in rows]
        with self._tx() as conn:
            delete = fc.delete().where(fc.c.event_id == event_id).where(fc.c.model_version == model_version)
            delete = delete.where(fc.c.state == "unclaimed")
            if only_faces:
                delete = delete.where(fc.c.face_id.in_(face_ids))
            conn.execute(delete)
            kept = {
                r.face_id
                for r in conn.execute(
                    sa.select(fc.c.face_id).where(fc.c.model_version == model_version).where(fc.c.face_id.in_(face_ids))
                )
            }
            now = _now()
            fresh = [
                dict(
                    face_id=face_id,
                    model_version=model_version,
                    event_id=event_id,
                    photo_id=photo_id,
                    cluster_id=cluster_id,
                    state="unclaimed",
                    created_at=now,
                )
                for face_id, photo_id, cluster_id in rows
                if face_id not in kept
            ]
            if fresh:
                conn.execute(fc.insert(), fresh)

    def claim_cluster_faces(
        self, model_version: str, attendee_id: str, similarity_by_face: dict[str, float]
    ) -> list[str]:
        """Mark unclaimed cluster faces as the attendee's, keeping each face's similarity to their
        selfie. Returns the ids of the photos those faces are in."""
        fc = t.face_clusters
        with self._tx() as conn:
            photo_ids: set[str] = set()
            for face_id, similarity in similarity_by_face.items():
                result = conn.execute(
                    fc.update()
                    .where(fc.c.face_id == face_id)
                    .where(fc.c.model_version == model_version)
                    .where(fc.c.state == "unclaimed")
                    .values(state="claimed", attendee_id=attendee_id, similarity=float(similarity))
                    .returning(fc.c.photo_id)
                )
                photo_ids.update(r.photo_id for r in result)
        return sorted(photo_ids)

    def claimed_faces(self, photo_id: str, model_version: str) -> list[tuple[str, str, float]]:
        """(face_id, attendee_id, similarity) of the photo's cluster faces claimed by a guest who
        still consents and whose reference is ready."""
        fc = t.face_clusters
        query = (
            sa.select(fc.c.face_id, fc.c.attendee_id, fc.c.similarity)
            .join(t.attendees, t.attendees.c.id == fc.c.attendee_id)
            .where(fc.c.photo_id == photo_id)
            .where(fc.c.model_version == model_version)
            .where(fc.c.state == "claimed")
            .where(t.attendees.c.consent.is_(True))
            .where(t.attendees.c.reference_status == ReferenceStatus.READY.value)
            .order_by(fc.c.face_id)
        )
        with self._read() as conn:
            return [(r.face_id, r.attendee_id, float(r.similarity or 0.0)) for r in conn.execute(query)]

    def withhold_faces_of(self, attendee_id: str) -> int:
        """The faces a guest was matched in (every model version) or claimed through a cluster
        leave the clusters for good: withdrawn or erased, their face is not grouped as anyone's.
        Call before the matches are deleted. Returns how many faces were withheld."""
        fc = t.face_clusters
        with self._tx() as conn:
            matched = conn.execute(
                sa.select(
                    t.matches.c.face_id, t.matches.c.model_version, t.matches.c.event_id, t.matches.c.photo_id
                ).where(t.matches.c.attendee_id == attendee_id)
            ).all()
            claimed = conn.execute(
                sa.select(fc.c.face_id, fc.c.model_version).where(fc.c.attendee_id == attendee_id)
            ).all()
            cleared = dict(state="withheld", cluster_id=None, attendee_id=None, similarity=None)
            for face_id, version in claimed:
                conn.execute(
                    fc.update().where(fc.c.face_id == face_id).where(fc.c.model_version == version).values(**cleared)
                )
            now = _now()
            for face_id, version, event_id, photo_id in matched:
                key = sa.and_(fc.c.face_id == face_id, fc.c.model_version == version)
                if conn.execute(sa.select(fc.c.face_id).where(key)).first() is None:
                    conn.execute(
                        fc.insert().values(
                            face_id=face_id,
                            model_version=version,
                            event_id=event_id,
                            photo_id=photo_id,
                            created_at=now,
                            **cleared,
                        )
                    )
                else:
                    conn.execute(fc.update().where(key).values(**cleared))
        return len({face_id for face_id, _ in claimed} | {row.face_id for row in matched})

    # -- near-duplicates confirmed by a second signal (near_duplicates.Fingerprint) ----------------
    def claim_near_duplicate(
        self, photo_id: str, found: near_duplicates.Fingerprint, sha256: str
    ) -> near_duplicates.Confirmed | None:
        """claim_perceptual_hash, with proof: record the photo's hash and fingerprint and, in the same
        serialised transaction, look for the copy of this shot its event already keeps. A 64-bit hash
        match is only a candidate; near_duplicates.judge confirms it (finer hash, same shape) or not.
        Photos without a fingerprint (verified before revision 0009) are never confirmed.

        If confirmed, the copy guests see is the better one: when this photo is clearly better
        (near_duplicates.better_copy) than a kept copy that is already published, the kept one
        becomes the duplicate (pointing at this photo, as do its own duplicates), its matches and
        unsent messages are removed, and this photo goes on to be detected and matched; otherwise
        this photo is marked `duplicate`, as before. A kept copy still being processed is never
        replaced (its own steps would publish it again). Who counts, re-runs and the lock are as in
        claim_perceptual_hash."""
        photo = self.get_photo(photo_id)
        with self._read() as conn:
            checked_before = (
                conn.execute(sa.select(t.photos.c.perceptual_hash).where(t.photos.c.id == photo_id)).scalar_one()
                is not None
            )
        not_counted = [PhotoStatus.DUPLICATE, PhotoStatus.REJECTED, PhotoStatus.FAILED]
        query = (
            sa.select(t.photos.c.id, t.photos.c.perceptual_hash, t.photos.c.status)
            .where(t.photos.c.event_id == photo.event_id)
            .where(t.photos.c.perceptual_hash.is_not(None))
            .where(t.photos.c.near_duplicate_fingerprint.is_not(None))
            .where(t.photos.c.id != photo_id)
            .where(t.photos.c.status.not_in([s.value for s in not_counted]))
            .order_by(t.photos.c.id)
        )
        if checked_before:
            query = query.where(t.photos.c.id < photo_id)
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _near_duplicate_lock(photo.event_id)}
                )
            conn.execute(
                t.photos.update()
                .where(t.photos.c.id == photo_id)
                .values(
                    perceptual_hash=near_duplicates.to_signed(found.coarse),
                    near_duplicate_fingerprint=found.pack(),
                    updated_at=_now(),
                )
            )
            rows = conn.execute(query).all()
            hashes = np.fromiter((row.perceptual_hash for row in rows), dtype=np.int64, count=len(rows))
            close = np.nonzero(near_duplicates.distances(found.coarse, hashes) <= near_duplicates.MAX_DISTANCE)[0]
            if len(close) == 0:
                return None
            # Only the few candidates' fingerprints are read: the event-wide read stays 8 bytes a photo.
            candidate_ids = [rows[i].id for i in close]
            fingerprints = sa.select(t.photos.c.id, t.photos.c.near_duplicate_fingerprint).where(
                t.photos.c.id.in_(candidate_ids)
            )
            stored = {row.id: row.near_duplicate_fingerprint for row in conn.execute(fingerprints)}
            candidates = [
                (
                    rows[i].id,
                    near_duplicates.Fingerprint.unpack(near_duplicates.from_signed(int(hashes[i])), stored[rows[i].id]),
                )
                for i in close
            ]
            verdict = near_duplicates.judge(found, candidates)
            if verdict is None:
                return None
            status_of = {rows[i].id: rows[i].status for i in close}
            if verdict.better is not None and status_of[verdict.photo_id] == PhotoStatus.PUBLISHED.value:
                self._hand_over_to_better_copy(conn, verdict.photo_id, photo_id, verdict.better)
                return verdict
            verdict = near_duplicates.Confirmed(verdict.photo_id, verdict.distance, verdict.fine_distance)
            conn.execute(
                t.photos.update()
                .where(t.photos.c.id == photo_id)
                .values(
                    status=PhotoStatus.DUPLICATE.value,
                    duplicate_of=verdict.photo_id,
                    reason=verdict.reason,
                    sha256=sha256,
                    updated_at=_now(),
                )
            )
        return verdict

    @staticmethod
    def _hand_over_to_better_copy(conn: Connection, kept_id: str, better_id: str, why: str) -> None:
        """The kept copy becomes a duplicate of the better one. Its matches go (the better copy is
        matched by its own steps, so its guests find it there); its faces and vectors stay for
        erasure to remove (late joiners are only matched to embedded or published photos)."""
        now = _now()
        conn.execute(
            t.photos.update()
            .where(t.photos.c.id == kept_id)
            .values(
                status=PhotoStatus.DUPLICATE.value,
                duplicate_of=better_id,
                reason=near_duplicates.replaced_reason(better_id, why),
                updated_at=now,
            )
        )
        conn.execute(
            t.photos.update()
            .where(t.photos.c.duplicate_of == kept_id)
            .where(t.photos.c.id != better_id)
            .values(duplicate_of=better_id, updated_at=now)
        )
        conn.execute(t.matches.delete().where(t.matches.c.photo_id == kept_id))
        conn.execute(
            t.realtime_outbox.delete()
            .where(t.realtime_outbox.c.photo_id == kept_id)
            .where(t.realtime_outbox.c.sent_at.is_(None))
        )


def _lock_attendees(conn: Connection, attendee_ids: Iterable[str], share: bool) -> dict[str, bool]:
    """Lock attendee rows for the rest of the transaction; returns attendee id -> consent.

    Writers of face data share the lock (Postgres `FOR SHARE`), a change of consent takes it
    alone (`FOR UPDATE`), so neither can commit between the other's read of consent and its
    writes. SQLite has no row locks: the transaction takes the database's write lock before
    reading (`BEGIN IMMEDIATE`; call this first in the transaction), which serialises it with
    every other writer."""
    ids = sorted(set(attendee_ids))
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    if not ids:
        return {}
    query = sa.select(t.attendees.c.id, t.attendees.c.consent).where(t.attendees.c.id.in_(ids))
    if conn.dialect.name == "postgresql":
        query = query.order_by(t.attendees.c.id).with_for_update(read=share)
    return {r.id: bool(r.consent) for r in conn.execute(query).all()}


def _consenting(conn: Connection, attendee_ids: Iterable[str]) -> set[str]:
    """Of these attendees, those who consent now, re-read under a shared lock (see _lock_attendees)."""
    return {attendee_id for attendee_id, consent in _lock_attendees(conn, attendee_ids, share=True).items() if consent}


def _insert_or_nothing(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that does nothing where the row exists (ON CONFLICT DO NOTHING, both dialects)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _seconds(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)


def _enqueue(
    conn: Connection, photo: Photo, model_version: str, messages: Sequence[RealtimeMessage], now: datetime
) -> None:
    """One outbox row per (photo, topic, model version). A message identical to the stored one is
    left alone (sent or not), so a re-run sends nothing twice; a changed one (the photo's list of
    guests grew) replaces it and is sent again."""
    for message in messages:
        payload = json.dumps(message.payload, sort_keys=True)
        if _heard_under_another_version(conn, photo, model_version, message):
            continue
        key = (
            (t.realtime_outbox.c.photo_id == photo.id)
            & (t.realtime_outbox.c.topic == message.topic)
            & (t.realtime_outbox.c.model_version == model_version)
        )
        stored = conn.execute(sa.select(t.realtime_outbox.c.payload).where(key)).first()
        if stored is None:
            conn.execute(
                t.realtime_outbox.insert().values(
                    id=new_id(),
                    event_id=photo.event_id,
                    photo_id=photo.id,
                    model_version=model_version,
                    topic=message.topic,
                    event=message.event,
                    payload=payload,
                    private=message.private,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        elif stored.payload != payload:
            conn.execute(
                # The event too: a candidate ("photo_candidate") the guest confirmed becomes "photo_matched".
                t.realtime_outbox.update()
                .where(key)
                .values(payload=payload, event=message.event, sent_at=None, attempts=0, updated_at=now)
            )


# -- the matching policy (migration 0007) -------------------------------------------------------
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


@dataclass(frozen=True)
class PolicyWrite:
    """What a policy decided for one photo beyond its matches, written with them by replace_matches."""

    policy_id: str
    # (face_id, attendee_id, similarity) proposed now; None: leave the photo's candidates as they are
    candidates: Sequence[tuple[str, str, float]] | None = ()
    references: Sequence[tuple[str, str, np.ndarray, str]] = ()  # (face_id, attendee_id, vector, source)
    max_references: int = 8  # extra references per attendee and version


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


def _write_policy(conn: Connection, photo: Photo, model_version: str, policy: PolicyWrite, now: datetime) -> None:
    """The photo's proposed candidates become exactly policy.candidates (decided ones are kept: a
    refusal is never proposed again, a confirmation is a match); new references are added up to the
    cap, consenting attendees only; the photo is marked matched under the policy."""
    decided = {
        r.attendee_id
        for r in conn.execute(
            sa.select(t.match_candidates.c.attendee_id)
            .where(t.match_candidates.c.photo_id == photo.id)
            .where(t.match_candidates.c.status != CANDIDATE_PROPOSED)
        ).all()
    }
    if policy.candidates is not None:
        conn.execute(
            t.match_candidates.delete()
            .where(t.match_candidates.c.photo_id == photo.id)
            .where(t.match_candidates.c.status == CANDIDATE_PROPOSED)
        )
    fresh = [c for c in policy.candidates or () if c[1] not in decided]
    if fresh:
        conn.execute(
            t.match_candidates.insert(),
            [
                dict(
                    photo_id=photo.id,
                    attendee_id=attendee_id,
                    event_id=photo.event_id,
                    model_version=model_version,
                    face_id=face_id,
                    similarity=float(similarity),
                    policy_id=policy.policy_id,
                    status=CANDIDATE_PROPOSED,
                    decided_at=None,
                    created_at=now,
                    updated_at=now,
                )
                for face_id, attendee_id, similarity in fresh
            ],
        )
    for face_id, attendee_id, vector, source in policy.references:
        consenting = conn.execute(sa.select(t.attendees.c.consent).where(t.attendees.c.id == attendee_id)).scalar()
        held = conn.execute(
            sa.select(t.attendee_references.c.photo_id)
            .where(t.attendee_references.c.attendee_id == attendee_id)
            .where(t.attendee_references.c.model_version == model_version)
        ).all()
        if not consenting or len(held) >= policy.max_references or any(r.photo_id == photo.id for r in held):
            continue
        conn.execute(
            t.attendee_references.insert().values(
                id=new_id(),
                attendee_id=attendee_id,
                event_id=photo.event_id,
                model_version=model_version,
                photo_id=photo.id,
                face_id=face_id,
                source=source,
                dimension=int(vector.shape[-1]),
                vector=_to_blob(vector),
                created_at=now,
            )
        )
    key = (t.photo_match_policies.c.photo_id == photo.id) & (t.photo_match_policies.c.model_version == model_version)
    conn.execute(t.photo_match_policies.delete().where(key))
    conn.execute(
        t.photo_match_policies.insert().values(
            photo_id=photo.id,
            model_version=model_version,
            event_id=photo.event_id,
            policy_id=policy.policy_id,
            matched_at=now,
        )
    )


def _heard_under_another_version(conn: Connection, photo: Photo, model_version: str, message: RealtimeMessage) -> bool:
    """After a model cut-over the new version re-matches every photo: a guest who was told about a
    photo under the old version, or an event gallery told the same guest list, is not told again."""
    sent = conn.execute(
        sa.select(t.realtime_outbox.c.payload)
        .where(t.realtime_outbox.c.photo_id == photo.id)
        .where(t.realtime_outbox.c.topic == message.topic)
        .where(t.realtime_outbox.c.model_version != model_version)
        .where(t.realtime_outbox.c.sent_at.is_not(None))
    ).all()

    def comparable(payload: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in payload.items() if k != "model_version"}

    return any(comparable(json.loads(row.payload)) == comparable(message.payload) for row in sent)


def _delete_photo_rows(conn: Connection, photo_ids: Sequence[str]) -> None:
    if not photo_ids:
        return
    # Explicit deletes rather than relying on ON DELETE CASCADE, which SQLite only honours when the
    # connection enabled foreign keys; erasure of biometric data must not depend on that.
    conn.execute(t.matches.delete().where(t.matches.c.photo_id.in_(photo_ids)))
    conn.execute(t.realtime_outbox.delete().where(t.realtime_outbox.c.photo_id.in_(photo_ids)))
    conn.execute(t.face_vectors.delete().where(t.face_vectors.c.photo_id.in_(photo_ids)))
    conn.execute(t.face_quality.delete().where(t.face_quality.c.photo_id.in_(photo_ids)))
    conn.execute(t.engine_faces.delete().where(t.engine_faces.c.photo_id.in_(photo_ids)))
    conn.execute(t.face_clusters.delete().where(t.face_clusters.c.photo_id.in_(photo_ids)))
    conn.execute(t.photo_model_versions.delete().where(t.photo_model_versions.c.photo_id.in_(photo_ids)))
    conn.execute(t.faces.delete().where(t.faces.c.photo_id.in_(photo_ids)))
    conn.execute(t.photos.delete().where(t.photos.c.id.in_(photo_ids)))


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


def _near_duplicate_lock(event_id: str) -> int:
    """A Postgres advisory lock key per event (a collision only makes two events wait for each other)."""
    digest = hashlib.blake2b(f"picsaris near-duplicates {event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# Words in driver messages that mean the configuration is wrong, not that the database is busy.
_CONFIGURATION_WORDS = ("password authentication failed", "does not exist", "no such table", "already exists", "role ")


def translate_db_error(error: DBAPIError) -> Exception:
    """SQLAlchemy/driver errors -> the project's: retry later, or fix the configuration."""
    detail = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    if isinstance(error, IntegrityError):
        # Two writers raced on the same photo (a re-run beside a run); the retry sees the winner's rows.
        return RetryableError(f"concurrent write conflict: {detail}")
    if isinstance(error, OperationalError) and any(word in detail for word in _CONFIGURATION_WORDS):
        return ConfigurationError(f"database misconfigured: {detail}")
    if error.connection_invalidated or isinstance(error, OperationalError):
        return RetryableError(f"database unavailable: {detail}")
    return error


class _translated:
    """Context manager that translates database errors at the boundary, whether they happen when the
    connection opens, inside the block, or on commit."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def __enter__(self) -> Connection:
        try:
            return self._manager.__enter__()
        except DBAPIError as error:
            raise translate_db_error(error) from error

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        try:
            result = self._manager.__exit__(exc_type, exc, tb)  # rolls back or commits, closes
        except DBAPIError as error:
            raise translate_db_error(error) from error
        if isinstance(exc, DBAPIError):
            translated = translate_db_error(exc)
            if translated is not exc:
                raise translated from exc
        return result


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the CLI, the webserver and run processes read while one writes; busy_timeout makes a
    # writer wait for the lock instead of failing at once; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Erased rows are overwritten, not just unlinked: a deleted guest's name must not survive in
    # the file's free pages (DESIGN §5).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def connect(url: str, migrate: bool = True) -> Repository:
    """A repository on the database at url; the engine and its migration run once per process."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = sa.create_engine(url, pool_pre_ping=True)
            if engine.dialect.name == "sqlite":
                sa.event.listen(engine, "connect", _configure_sqlite)
            if migrate:
                from picsaris_pipeline.db.migrate import upgrade

                try:
                    upgrade(engine)
                except DBAPIError as error:
                    engine.dispose()
                    raise translate_db_error(error) from error
            _engines[url] = engine
    return Repository(engine)


def dispose_all() -> None:
    """Close every pooled connection (tests; forked processes)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
