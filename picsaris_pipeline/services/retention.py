"""When an event is over, and which events are due for archiving (docs/OPERATIONS.md, "Archiving an
event"). Archiving itself (Dagster's partitions and runs) is orchestration/retention.py's.

An event ends at its `ends_at` (`picsaris event create --ends-at`). Events without one end when
their guests stop uploading: QUIET_PERIOD after their last photo arrived, or after they were created
if none ever did. An event is archived once, PICSARIS_ARCHIVE_AFTER after it ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.model import Event

# Uploads trickle in for days after a wedding or a party; a week without one means the event is over.
QUIET_PERIOD = timedelta(days=7)


def event_end(event: Event, last_upload: datetime | None) -> datetime:
    """When the event is over: its end time if it has one, else a quiet period after its last upload."""
    if event.ends_at is not None:
        return event.ends_at
    return max(event.created_at, last_upload or event.created_at) + QUIET_PERIOD


def due_for_archiving(repo: Repository, archive_after: timedelta, now: datetime | None = None) -> list[Event]:
    """The events not archived yet whose end lies `archive_after` or more before `now`, oldest first."""
    now = now or datetime.now(UTC)
    return [event for event, last in repo.unarchived_events() if event_end(event, last) + archive_after <= now]
