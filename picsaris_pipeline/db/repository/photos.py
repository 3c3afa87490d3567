"""Photos: upload records and their status on the way to published."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.attendees import AttendeesRepository
from picsaris_pipeline.db.repository.base import _narrowed, _now
from picsaris_pipeline.db.repository.rows import _photo
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.keys import photo_key
from picsaris_pipeline.domain.model import Photo, PhotoStatus
from picsaris_pipeline.errors import BadInputError, NotFoundError


class PhotosRepository(AttendeesRepository):
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
        self._insert_new(
            t.photos,
            photo_id,
            event_id=event_id,
            uploader_id=uploader_id,
            file_name=file_name[:255],
            object_key=photo_key(event_id, uploader_id, photo_id, ext),
            content_type=content_type,
            declared_sha256=declared_sha256.lower(),
            declared_size=declared_size,
            status=PhotoStatus.PENDING_UPLOAD.value,
        )
        return self.get_photo(photo_id)

    def get_photo(self, photo_id: str) -> Photo:
        return self._by_id(t.photos, photo_id, "photo", _photo)

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

    def photos_by_ids(self, photo_ids: Sequence[str]) -> dict[str, Photo]:
        """The photos among these ids (malformed or unknown ids are simply absent)."""
        return self._by_ids(t.photos, photo_ids, _photo)

    def photos_to_process(self, event_id: str | None = None, include_failed: bool = False) -> list[Photo]:
        """Uploaded photos not yet at a terminal status (and failed ones if asked), oldest first."""
        pending = [s.value for s in PhotoStatus if s.needs_processing or (include_failed and s is PhotoStatus.FAILED)]
        query = sa.select(t.photos).where(t.photos.c.status.in_(pending)).order_by(t.photos.c.id)
        query = _narrowed(query, (t.photos.c.event_id, event_id))
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
