"""Events and the model version their guests see."""

from __future__ import annotations

import sqlalchemy as sa

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import RepositoryBase, _now
from picsaris_pipeline.db.repository.rows import _event
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.model import Event, checked_name


class EventsRepository(RepositoryBase):
    def create_event(self, name: str, active_model_version: str | None = None) -> Event:
        name = checked_name(name, "an event")
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
