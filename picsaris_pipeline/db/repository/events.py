"""Events, the model version their guests see, and when they end and were archived."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import RepositoryBase, _now, _utc
from picsaris_pipeline.db.repository.rows import _event
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.model import Event, checked_name


class EventsRepository(RepositoryBase):
    def create_event(
        self, name: str, active_model_version: str | None = None, ends_at: datetime | None = None
    ) -> Event:
        name = checked_name(name, "an event")
        event_id = new_id()
        self._insert_new(
            t.events,
            event_id,
            name=name,
            active_model_version=active_model_version,
            ends_at=_utc(ends_at) if ends_at is not None else None,
        )
        return self.get_event(event_id)

    def get_event(self, event_id: str) -> Event:
        return self._by_id(t.events, event_id, "event", _event)

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

    def unarchived_events(self) -> list[tuple[Event, datetime | None]]:
        """Every event not archived yet, oldest first, with when its last photo was uploaded (None:
        no photo): one grouped select, however many photos there are."""
        last_upload = sa.func.max(t.photos.c.created_at).label("last_upload")
        query = (
            sa.select(t.events, last_upload)
            .select_from(t.events.outerjoin(t.photos, t.photos.c.event_id == t.events.c.id))
            .where(t.events.c.archived_at.is_(None))
            .group_by(*t.events.c)
            .order_by(t.events.c.id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [(_event(r), _utc(r.last_upload) if r.last_upload is not None else None) for r in rows]

    def mark_archived(self, event_id: str, at: datetime | None = None) -> bool:
        """Record that the event was archived, unless it already was; True if this call recorded it."""
        now = _now()
        query = t.events.update().where(t.events.c.id == event_id, t.events.c.archived_at.is_(None))
        with self._tx() as conn:
            result = conn.execute(query.values(archived_at=_utc(at) if at else now, updated_at=now))
        return result.rowcount == 1
