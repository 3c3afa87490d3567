"""The realtime outbox: messages enqueued with the matches they announce, sent later."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import RepositoryBase, _narrowed, _now, _utc
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.model import Photo, PhotoStatus
from picsaris_pipeline.errors import PicsarisError
from picsaris_pipeline.realtime import OutboxMessage, RealtimeMessage


class OutboxRepository(RepositoryBase):
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
        query = _narrowed(query, (t.realtime_outbox.c.photo_id, photo_id))
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

    def notify(self, channel: str, payloads: Sequence[str]) -> None:
        """PostgreSQL's pg_notify(channel, payload) for each payload, all in one transaction, so
        listeners hear them at commit, in order, or none of them."""
        try:
            with self._tx() as conn:
                conn.execute(_NOTIFY, [{"channel": channel, "payload": payload} for payload in payloads])
        except DBAPIError as error:  # one translate_db_error leaves as it is: the server refused the call
            raise PicsarisError(f"pg_notify on {self.url_without_password()} failed: {error}") from error


_NOTIFY = sa.text("SELECT pg_notify(:channel, :payload)")


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
