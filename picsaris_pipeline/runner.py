"""`picsaris process`: run pending attendees and photos through the asset graph, in this process,
on the configured Dagster instance (so every run shows in the UI afterwards).

Running in this process loads the face models once for all photos instead of once per run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.partitions import (
    ATTENDEE_JOB,
    ATTENDEE_PARTITIONS,
    EVENT_PARTITIONS,
    EVENT_SUMMARY_JOB,
    EVENT_TAG,
    HEALTH_CHECKS_JOB,
    PHOTO_JOB,
    PHOTO_PARTITIONS,
    PHOTO_TAG,
    UPLOADER_TAG,
)
from picsaris_pipeline.services.intake import expire_abandoned_uploads
from picsaris_pipeline.services.photos import mark_failed
from picsaris_pipeline.settings import Settings
from picsaris_pipeline.storage import ObjectStore

# The full event log is in the instance (and the UI); the terminal only needs warnings.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

Progress = Callable[[str, int, int], None]  # (what, done, total)

_INSTANCE_YAML = """\
# Embedded default instance, written by picsaris on first use: SQLite storage under this folder.
telemetry:
  enabled: false
"""


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The configured instance: $DAGSTER_HOME if set, else SQLite under $PICSARIS_HOME/dagster."""
    if not os.environ.get("DAGSTER_HOME"):
        home = settings.dagster_home
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text(_INSTANCE_YAML)
        os.environ["DAGSTER_HOME"] = str(home)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


@dataclass
class ProcessSummary:
    attendees: int = 0
    photos: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, id, error)

    @property
    def ok(self) -> bool:
        return not self.failures


def _ensure_partitions(instance: dg.DagsterInstance, name: str, keys: list[str]) -> None:
    existing = set(instance.get_dynamic_partitions(name))
    missing = [key for key in keys if key not in existing]
    if missing:
        instance.add_dynamic_partitions(name, missing)


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            return event.step_failure_data.error.message.strip().splitlines()[0]
    return "run failed"


def process_pending(
    instance: dg.DagsterInstance,
    repo: Repository,
    store: ObjectStore,
    model_version: str,
    event_id: str | None = None,
    progress: Progress | None = None,
    retry_failed: bool = False,
    only_photos: Sequence[str] | None = None,
) -> ProcessSummary:
    """Attendees first (so this batch's photos are matched against them), then photos. A photo whose
    run fails after its step retries is marked `failed` with the error, as the daemon's failure
    sensor does; `retry_failed` runs such photos again."""
    from picsaris_pipeline.definitions import defs

    summary = ProcessSummary()
    attendees = repo.attendees_needing_reference(model_version, event_id)
    expire_abandoned_uploads(repo, store)
    photos = repo.photos_to_process(event_id, include_failed=retry_failed)
    if only_photos is not None:
        wanted = set(only_photos)
        attendees = []
        photos = [p for p in photos if p.id in wanted]
    _ensure_partitions(instance, ATTENDEE_PARTITIONS, [a.id for a in attendees])
    _ensure_partitions(instance, PHOTO_PARTITIONS, [p.id for p in photos])

    work = [(ATTENDEE_JOB, a.id, {EVENT_TAG: a.event_id}) for a in attendees]
    work += [(PHOTO_JOB, p.id, {EVENT_TAG: p.event_id, UPLOADER_TAG: p.uploader_id, PHOTO_TAG: p.id}) for p in photos]
    jobs = {name: defs.resolve_job_def(name) for name in (ATTENDEE_JOB, PHOTO_JOB)}
    for done, (job_name, key, tags) in enumerate(work, start=1):
        result = jobs[job_name].execute_in_process(
            partition_key=key,
            instance=instance,
            raise_on_error=False,
            run_config=QUIET_CONSOLE,
            tags={**tags, "picsaris/source": "cli"},
        )
        kind = "attendee" if job_name == ATTENDEE_JOB else "photo"
        if result.success:
            summary.attendees += kind == "attendee"
            summary.photos += kind == "photo"
        else:
            message = _failure_message(result)
            summary.failures.append((kind, key, message))
            if kind == "photo":
                mark_failed(repo, key, f"run {result.run_id[:8]} failed: {message}")
        if progress:
            progress(kind, done, len(work))
    if work:
        events = sorted({a.event_id for a in attendees} | {p.event_id for p in photos})
        _refresh_event_views(instance, events, summary)
    return summary


def _refresh_event_views(instance: dg.DagsterInstance, event_ids: list[str], summary: ProcessSummary) -> None:
    """Bring what ops look at up to date: the touched events' summaries and the health checks."""
    from picsaris_pipeline.definitions import defs

    _ensure_partitions(instance, EVENT_PARTITIONS, event_ids)
    summary_job = defs.resolve_job_def(EVENT_SUMMARY_JOB)
    for event_id in event_ids:
        result = summary_job.execute_in_process(
            partition_key=event_id,
            instance=instance,
            raise_on_error=False,
            run_config=QUIET_CONSOLE,
            tags={EVENT_TAG: event_id, "picsaris/source": "cli"},
        )
        if not result.success:
            summary.failures.append(("event summary", event_id, _failure_message(result)))
    checks = defs.resolve_job_def(HEALTH_CHECKS_JOB).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE, tags={"picsaris/source": "cli"}
    )
    if not checks.success:
        summary.failures.append(("health checks", "-", _failure_message(checks)))
