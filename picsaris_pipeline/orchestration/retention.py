"""Archiving an event: its photo and attendee partitions and its finished runs (with their event
logs, asset check executions and captured logs) leave Dagster's storage; its records, matches,
images and galleries stay (docs/OPERATIONS.md, "Archiving an event"). Which events are due:
services/retention.py; the sensor: sensors/retention.py.

Dagster's own `retention:` settings (dagster.yaml) only purge schedule and sensor ticks; runs and
their event logs stay until deleted one by one with `instance.delete_run`, which is what this does
for the event's runs. A run that also ran for another event's photos or attendees (a range run
started by hand across events) keeps its history; photos erased since belong to nobody.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.errors import BadInputError, NotFoundError
from picsaris_pipeline.orchestration.dagster_internals import compact_sqlite_storage, forget_deleted_run
from picsaris_pipeline.orchestration.erasure import archive_event_partitions
from picsaris_pipeline.orchestration.partitions import (
    EVENT_TAG,
    PARTITION_TAG,
    PHOTO_PARTITIONS,
    RANGE_END_TAG,
    RANGE_START_TAG,
)

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
_TAG_CHUNK = 500  # partition keys per run query: re-embedding runs carry a partition but no event tag


@dataclass(frozen=True)
class Archive:
    """What archiving an event removed from Dagster, and what it kept."""

    event_id: str
    partitions: int
    runs_deleted: int
    runs_kept: int  # finished runs that also ran for something outside the event
    recorded: bool  # False: archived before (this call removed what came since), or not complete
    complete: bool = True  # False: the time budget ran out; runs are left for the next call

    def describe(self) -> str:
        if not self.complete:
            return f"deleted {self.runs_deleted} finished run(s) of event {self.event_id} so far; more to go"
        text = (
            f"removed {self.partitions} partition(s) and {self.runs_deleted} finished run(s) of event "
            f"{self.event_id}; its photos and matches are kept"
        )
        if self.runs_kept:
            text += f" ({self.runs_kept} run(s) also covering other events kept)"
        return text


def archive_event(
    repo: Repository,
    instance: dg.DagsterInstance,
    event_id: str,
    now: datetime | None = None,
    budget_seconds: float | None = None,
) -> Archive:
    """Delete the event's finished runs, then its partitions (a range run's photos are read from the
    partition order, so runs go first), compact SQLite storage, and record the archiving. Running
    it again removes what arrived since (a late upload's partition and run).

    Dagster deletes runs one by one (a few transactions each, ~25 ms apiece on SQLite here: an
    estimated minute for the ~750 runs of a 12,000-photo event). With `budget_seconds` (a sensor
    tick's share of its time limit) it stops deleting once the budget is spent and returns an
    incomplete Archive, touching neither the partitions nor the record: the next call carries on
    where this one stopped."""
    started = time.monotonic()
    repo.get_event(event_id)
    keys = {event_id, *(p.id for p in repo.list_photos(event_id)), *(a.id for a in repo.list_attendees(event_id))}
    order = instance.get_dynamic_partitions(PHOTO_PARTITIONS)
    position = {key: index for index, key in enumerate(order)}  # once, not a list scan per run
    deleted = kept = 0
    for run in _finished_runs(instance, event_id, sorted(keys - {event_id})):
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            return Archive(event_id, 0, deleted, kept, recorded=False, complete=False)
        if _covers_another_event(repo, event_id, run_keys(run.tags, order, position) - keys):
            kept += 1
            continue
        instance.delete_run(run.run_id)
        forget_deleted_run(instance, run.run_id)
        # The run's captured stdout/stderr: its folder on the local compute log manager.
        instance.compute_log_manager.delete_logs(prefix=[run.run_id])
        deleted += 1
    partitions = archive_event_partitions(repo, instance, event_id)
    if deleted or partitions:
        compact_sqlite_storage(instance)
    recorded = repo.mark_archived(event_id, now)
    return Archive(event_id, partitions, deleted, kept, recorded)


def run_keys(tags: Mapping[str, str], order: Sequence[str], position: Mapping[str, int]) -> set[str]:
    """The partition keys a run ran for, as far as they can still be read: none for a run without
    partitions; a range's two ends, and what lies between while they are still partitions (once
    they are gone, erased or archived, only the ends are known)."""
    if key := tags.get(PARTITION_TAG):
        return {key}
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    ends = {k for k in (start, end) if k}
    if not (start and end and start in position and end in position):
        return ends
    first, last = position[start], position[end]
    return ends | set(order[first : last + 1])


def _covers_another_event(repo: Repository, event_id: str, others: set[str]) -> bool:
    """Whether any of these keys, which are not the event's, is a photo or attendee of another event
    (a key of nobody's is an erased photo's or attendee's)."""
    for key in others:
        photo = repo.find_photo(key)
        if photo is not None and photo.event_id != event_id:
            return True
        try:
            if repo.get_attendee(key).event_id != event_id:
                return True
        except (NotFoundError, BadInputError):
            continue
    return False


def _finished_runs(instance: dg.DagsterInstance, event_id: str, keys: Sequence[str]) -> Iterable[dg.DagsterRun]:
    """The finished runs tagged with the event, and those of its partitions that carry no event tag
    (re-embedding backfills), each once."""
    seen: set[str] = set()
    filters = [dg.RunsFilter(tags={EVENT_TAG: event_id}, statuses=FINISHED)]
    filters += [
        dg.RunsFilter(tags={PARTITION_TAG: list(keys[i : i + _TAG_CHUNK])}, statuses=FINISHED)
        for i in range(0, len(keys), _TAG_CHUNK)
    ]
    for runs_filter in filters:
        for run in instance.get_runs(runs_filter):
            if run.run_id not in seen:
                seen.add(run.run_id)
                yield run
