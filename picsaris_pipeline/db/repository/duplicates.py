"""Near-duplicate photos: perceptual hashes, confirmed by a second signal (near_duplicates.Fingerprint)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import _now
from picsaris_pipeline.db.repository.photos import PhotosRepository
from picsaris_pipeline.domain import near_duplicates
from picsaris_pipeline.domain.model import Photo, PhotoStatus


class DuplicatesRepository(PhotosRepository):
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
        photo, query = self._compared_with(photo_id, sa.select(t.photos.c.id, t.photos.c.perceptual_hash))
        with self._tx() as conn:
            _lock_event_hashes(conn, photo.event_id)
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
            _mark_duplicate(conn, photo_id, original_id, near.reason, _now(), sha256=sha256)
        return near

    def perceptual_hash_of(self, photo_id: str) -> int | None:
        """The photo's recorded perceptual hash (unsigned), None before it was decoded."""
        with self._read() as conn:
            value = conn.execute(sa.select(t.photos.c.perceptual_hash).where(t.photos.c.id == photo_id)).scalar()
        return None if value is None else near_duplicates.from_signed(int(value))

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
        photo, query = self._compared_with(
            photo_id,
            sa.select(t.photos.c.id, t.photos.c.perceptual_hash, t.photos.c.status).where(
                t.photos.c.near_duplicate_fingerprint.is_not(None)
            ),
        )
        with self._tx() as conn:
            _lock_event_hashes(conn, photo.event_id)
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
            _mark_duplicate(conn, photo_id, verdict.photo_id, verdict.reason, _now(), sha256=sha256)
        return verdict

    def _compared_with(self, photo_id: str, query: sa.Select[Any]) -> tuple[Photo, sa.Select[Any]]:
        """The photo, and query narrowed to the photos of its event it is compared with (who counts
        and re-runs: see claim_perceptual_hash)."""
        photo = self.get_photo(photo_id)
        with self._read() as conn:
            checked_before = (
                conn.execute(sa.select(t.photos.c.perceptual_hash).where(t.photos.c.id == photo_id)).scalar_one()
                is not None
            )
        query = (
            query.where(t.photos.c.event_id == photo.event_id)
            .where(t.photos.c.perceptual_hash.is_not(None))
            .where(t.photos.c.id != photo_id)
            .where(t.photos.c.status.not_in([s.value for s in _NOT_COUNTED]))
            .order_by(t.photos.c.id)
        )
        if checked_before:
            query = query.where(t.photos.c.id < photo_id)
        return photo, query

    @staticmethod
    def _hand_over_to_better_copy(conn: Connection, kept_id: str, better_id: str, why: str) -> None:
        """The kept copy becomes a duplicate of the better one. Its matches go (the better copy is
        matched by its own steps, so its guests find it there); its faces and vectors stay for
        erasure to remove (late joiners are only matched to embedded or published photos)."""
        now = _now()
        _mark_duplicate(conn, kept_id, better_id, near_duplicates.replaced_reason(better_id, why), now)
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


_NOT_COUNTED = (PhotoStatus.DUPLICATE, PhotoStatus.REJECTED, PhotoStatus.FAILED)


def _mark_duplicate(
    conn: Connection, photo_id: str, original_id: str, reason: str, now: datetime, **values: Any
) -> None:
    """The photo becomes a duplicate of original_id, with the reason (and any other column values)."""
    conn.execute(
        t.photos.update()
        .where(t.photos.c.id == photo_id)
        .values(status=PhotoStatus.DUPLICATE.value, duplicate_of=original_id, reason=reason, updated_at=now, **values)
    )


def _lock_event_hashes(conn: Connection, event_id: str) -> None:
    """Serialise the event's near-duplicate checks: an advisory lock on Postgres; SQLite's single
    write lock does it there, taken by the transaction's first write."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _near_duplicate_lock(event_id)})


def _near_duplicate_lock(event_id: str) -> int:
    """A Postgres advisory lock key per event (a collision only makes two events wait for each other)."""
    digest = hashlib.blake2b(f"picsaris near-duplicates {event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
