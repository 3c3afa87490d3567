"""What runs report: the work items and outcomes passed around, the summary `picsaris process`
prints, the events' views refreshed at the end, and Dagster's record of imported references."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from picsaris_pipeline.orchestration.partition_snapshot import one_read_per_run
from picsaris_pipeline.orchestration.partitions import (
    ATTENDEE_PARTITIONS,
    EVENT_PARTITIONS,
    EVENT_SUMMARY_JOB,
    HEALTH_CHECKS_JOB,
    ensure_partitions,
    run_tags,
)
from picsaris_pipeline.orchestration.runner.instance import QUIET_CONSOLE
from picsaris_pipeline.services.guest_import import BuiltReference

Progress = Callable[[str, int, int], None]  # (what, done, total)


SingleItem = tuple[str, str, dict[str, str]]  # (job name, partition key, tags): one photo or attendee


WorkItem = tuple[str, tuple[str, ...], dict[str, str]]  # (job name, partition keys of one run, tags)


Work = list[WorkItem]


# (job name, keys, run succeeded, failure message, run id, photos a successful batch run marked failed)
Outcome = tuple[str, tuple[str, ...], bool, str, str, dict[str, str]]


# The message of an outcome for keys another process holds a lease on: not run here.
LEFT_TO_OTHERS = "leased by another process"


@dataclass
class ProcessSummary:
    attendees: int = 0
    photos: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, id, error)
    # Leased by another process when this one reached them: (kind, id); waited for at the end.
    left_to_others: list[tuple[str, str]] = field(default_factory=list)
    by_others: int = 0  # of those, how many the other process finished
    abandoned_runs: list[str] = field(default_factory=list)  # runs left STARTED by a killed process, now failed

    @property
    def ok(self) -> bool:
        return not self.failures


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step's error as one readable line (without Dagster's exception class path)."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            line = event.step_failure_data.error.message.strip().splitlines()[0]
            return re.sub(r"^(?:[a-z_][\w]*\.)+[A-Z]\w*: ", "", line)
    return "run failed"


def failed_in_batch(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """The photos a batch run marked failed (a partition materialized with status `failed`), with
    the first step's reason. Read from the run, not the photo rows: a photo failing its
    re-embedding stays `published`."""
    failed: dict[str, str] = {}
    for event in result.all_events:
        if not event.is_step_materialization or event.step_materialization_data is None:
            continue
        materialization = event.step_materialization_data.materialization
        metadata = materialization.metadata
        status = getattr(metadata.get("status"), "value", None)
        if status == "failed" and materialization.partition and materialization.partition not in failed:
            reason = getattr(metadata.get("reason"), "value", "failed")
            failed[materialization.partition] = f"{materialization.asset_key.to_user_string()}: {reason}"
    return failed


def refresh_event_views(instance: dg.DagsterInstance, event_ids: list[str], summary: ProcessSummary) -> None:
    """Bring what ops look at up to date: the touched events' summaries and the health checks."""
    from picsaris_pipeline.definitions import defs

    ensure_partitions(instance, EVENT_PARTITIONS, event_ids)
    summary_job = defs.resolve_job_def(EVENT_SUMMARY_JOB)
    for event_id in event_ids:
        with one_read_per_run():
            result = summary_job.execute_in_process(
                partition_key=event_id,
                instance=instance,
                raise_on_error=False,
                run_config=QUIET_CONSOLE,
                tags=run_tags("cli", event=event_id),
            )
        if not result.success:
            summary.failures.append(("event summary", event_id, failure_message(result)))
    with one_read_per_run():  # the checks look at every photo partition: one read of the set, not one per check
        checks = defs.resolve_job_def(HEALTH_CHECKS_JOB).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE, tags=run_tags("cli")
        )
    if not checks.success:
        summary.failures.append(("health checks", "-", failure_message(checks)))


class ImportedReferences:
    """Dagster's record of the references `picsaris attendee import` builds outside a run: the
    attendees' partitions, added at once, and per attendee a materialization of `attendee_reference`
    and `attendee_matches` with the metadata their asset bodies record; then the event's summary and
    the health checks, as `picsaris process` ends."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance

    def add_partitions(self, attendee_ids: Sequence[str]) -> None:
        ensure_partitions(self.instance, ATTENDEE_PARTITIONS, list(attendee_ids))

    def record(self, built: BuiltReference) -> None:
        attendee = built.attendee
        metadata: dict[str, Any] = {
            "event_id": attendee.event_id,
            "name": attendee.name,
            "consent": attendee.consent,
            "reference_status": attendee.reference_status.value,
            **built.details,
            "timings_ms": dg.MetadataValue.json(built.timings),
            "source": "picsaris attendee import",
        }
        if attendee.reason:
            metadata["reason"] = attendee.reason
        matches: dict[str, Any] = {
            "photos_matched": len(built.photos_matched),
            "photo_ids": dg.MetadataValue.json(built.photos_matched),
        }
        for asset, values in (("attendee_reference", metadata), ("attendee_matches", matches)):
            self.instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=asset, partition=attendee.id, metadata=values)
            )

    def finish(self, event_ids: Sequence[str]) -> list[tuple[str, str, str]]:
        summary = ProcessSummary()
        refresh_event_views(self.instance, list(event_ids), summary)
        return summary.failures
