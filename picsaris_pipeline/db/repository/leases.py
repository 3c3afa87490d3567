"""Work leases: which process holds which item (picsaris_pipeline/services/leases.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository.base import RepositoryBase, _now, _utc
from picsaris_pipeline.db.repository.rows import Lease


class LeasesRepository(RepositoryBase):
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

    def leases_on(self, kind: str, item_ids: Sequence[str]) -> dict[str, Lease]:
        """item id -> (holder, expires_at) of the leases on these items, running or expired."""
        if not item_ids:
            return {}
        query = sa.select(t.work_leases).where(t.work_leases.c.kind == kind)
        found: dict[str, Lease] = {}
        with self._read() as conn:
            for start in range(0, len(item_ids), 500):
                chunk = list(item_ids[start : start + 500])
                for row in conn.execute(query.where(t.work_leases.c.item_id.in_(chunk))):
                    found[row.item_id] = Lease(row.holder, _utc(row.expires_at))
        return found


def _insert_or_nothing(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that does nothing where the row exists (ON CONFLICT DO NOTHING, both dialects)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _seconds(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)
