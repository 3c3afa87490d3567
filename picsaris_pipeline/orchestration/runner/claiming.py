"""Which process runs what: the work still pending behind a lease, photos another launcher's run
holds, and the next run for whichever process is free."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.orchestration.partitions import (
    EVENT_TAG,
    HOLDER_TAG,
    PHOTO_JOB,
    PHOTO_PARTITIONS,
    batched_runs,
    run_photo_ids,
)
from picsaris_pipeline.orchestration.runner.reporting import (
    Work,
    WorkItem,
)
from picsaris_pipeline.services.discovery import STALE_AFTER
from picsaris_pipeline.services.leases import ATTENDEE, PHOTO


@dataclass(frozen=True)
class StillPending:
    """Which claimed items still need their run (Claimer.still_pending); picklable, for workers."""

    model_version: str
    include_failed: bool = False
    reembed: bool = False

    def __call__(self, repo: Repository, kind: str, keys: list[str]) -> set[str]:
        wanted = set(keys)
        if kind not in (ATTENDEE, PHOTO):  # the leases on runs (orchestration/abandoned_runs.py) are not work items
            return wanted
        if kind == ATTENDEE:
            listed = (
                repo.attendees_missing_version(self.model_version)
                if self.reembed
                else repo.attendees_needing_reference(self.model_version)
            )
            return {a.id for a in listed} & wanted
        photos = repo.photos_by_ids(keys).values()
        if self.reembed:
            return {
                p.id
                for p in photos
                if p.status is PhotoStatus.PUBLISHED and self.model_version not in repo.photo_versions(p.id)
            }
        return {
            p.id
            for p in photos
            if p.status.needs_processing or (self.include_failed and p.status is PhotoStatus.FAILED)
        }


def photos_in_other_runs(instance: dg.DagsterInstance, keys: Sequence[str]) -> set[str]:
    """Those of `keys` a STARTED run covers that no `picsaris process` runs (one intake or the
    daemon's sensors launched): left to it, as to a lease holder. Queued runs are not counted
    (without a daemon they never start), nor runs started over STALE_AFTER ago (stuck: the
    sensors relaunch their photos too)."""
    busy: set[str] = set()
    if not keys:
        return busy
    recent = time.time() - STALE_AFTER.total_seconds()
    started = dg.RunsFilter(job_name=PHOTO_JOB, statuses=[dg.DagsterRunStatus.STARTED])
    for record in instance.get_run_records(started):
        if HOLDER_TAG not in record.dagster_run.tags and (record.start_time or 0) > recent:
            busy.update(run_photo_ids(record.dagster_run, instance))
    return busy & set(keys)


def regrouped(
    instance: dg.DagsterInstance, won: list[str], tags: dict[str, str]
) -> list[tuple[tuple[str, ...], dict[str, str]]]:
    """The part of a batch this process won a lease on, as runs over contiguous partitions."""
    # One photo is a run by itself: no partition order to read. Its uploader is not in the batch's tags.
    order = won if len(won) == 1 else instance.get_dynamic_partitions(PHOTO_PARTITIONS)
    event = tags.get(EVENT_TAG, "")
    runs = batched_runs([(key, event, None) for key in won], order, len(won))
    return [(tuple(batch), batch_run_tags) for batch, batch_run_tags in runs]


def next_runs(work: Work, next_index: Any) -> Iterator[WorkItem]:
    """The runs no process has taken yet, one at a time. Whoever is free takes the next, so a
    process dealt the slow group photos does not leave the others idle at the end."""
    while True:
        with next_index.get_lock():
            index = next_index.value
            next_index.value = index + 1
        if index >= len(work):
            return
        yield work[index]
