"""`picsaris process`: run pending attendees and photos through the asset graph, in this process,
on the configured Dagster instance (so every run shows in the UI afterwards).

Running in this process loads the face models once for all photos instead of once per run.
"""

from __future__ import annotations

import os
import queue
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from picsaris_pipeline.abandoned_runs import fail_abandoned_runs
from picsaris_pipeline.db.repository import Repository, connect
from picsaris_pipeline.discovery import STALE_AFTER
from picsaris_pipeline.domain import PhotoStatus
from picsaris_pipeline.leases import ATTENDEE, PHOTO, Claimer, LeaseKeeper
from picsaris_pipeline.partitions import (
    ATTENDEE_JOB,
    ATTENDEE_PARTITIONS,
    EVENT_PARTITIONS,
    EVENT_SUMMARY_JOB,
    EVENT_TAG,
    HEALTH_CHECKS_JOB,
    HOLDER_TAG,
    PHOTO_JOB,
    PHOTO_PARTITIONS,
    REEMBED_PHOTO_JOB,
    UPLOADER_TAG,
    PhotoRef,
    batched_runs,
    ensure_partitions,
    run_photo_ids,
    run_tags,
)
from picsaris_pipeline.services.guest_import import BuiltReference
from picsaris_pipeline.services.intake import expire_abandoned_uploads
from picsaris_pipeline.services.photos import mark_failed
from picsaris_pipeline.settings import Settings
from picsaris_pipeline.storage import ObjectStore

# The full event log is in the instance (and the UI); the terminal only needs warnings.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

Progress = Callable[[str, int, int], None]  # (what, done, total)

_INSTANCE_YAML = """\
# Embedded default instance, written by picsaris on first use: SQLite storage under this folder.
# Runs queued by the daemon (./dev ui, backfills) start two at a time: one per core of a laptop.
concurrency:
  runs:
    max_concurrent_runs: 2
run_queue:
  dequeue_interval_seconds: 1
# Runs fork from a worker that has already imported the code location and loaded the face models.
run_launcher:
  module: picsaris_pipeline.warm_runs.launcher
  class: WarmRunLauncher
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
    # Leased by another process when this one reached them: (kind, id); waited for at the end.
    left_to_others: list[tuple[str, str]] = field(default_factory=list)
    by_others: int = 0  # of those, how many the other process finished
    abandoned_runs: list[str] = field(default_factory=list)  # runs left STARTED by a killed process, now failed

    @property
    def ok(self) -> bool:
        return not self.failures


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step's error as one readable line (without Dagster's exception class path)."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            line = event.step_failure_data.error.message.strip().splitlines()[0]
            return re.sub(r"^(?:[a-z_][\w]*\.)+[A-Z]\w*: ", "", line)
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
    sensor does; `retry_failed` runs such photos again.

    Each photo and attendee is claimed with a lease just before its run (leases.py), so two
    processes at once split the work; what another process holds is waited for at the end, and
    taken up if that process dies. Runs a killed process left STARTED are marked failed first."""
    summary = ProcessSummary()
    with LeaseKeeper(repo, still_pending=StillPending(model_version, include_failed=retry_failed)) as keeper:
        claimer = keeper.claimer
        summary.abandoned_runs += [run.run_id for run in fail_abandoned_runs(instance, claimer, claimer.seconds)]
        attendees = repo.attendees_needing_reference(model_version, event_id)
        expire_abandoned_uploads(repo, store)
        photos = repo.photos_to_process(event_id, include_failed=retry_failed)
        if only_photos is not None:
            wanted = set(only_photos)
            attendees = []
            photos = [p for p in photos if p.id in wanted]
        ensure_partitions(instance, ATTENDEE_PARTITIONS, [a.id for a in attendees])
        ensure_partitions(instance, PHOTO_PARTITIONS, [p.id for p in photos])
        work = _work_for(attendees, photos)
        with ExitStack() as exits:  # worker processes finish exiting while the event views refresh
            common_tags = run_tags("cli")
            _execute(instance, repo, work, common_tags, summary, progress, exits=exits, claimer=claimer)
            _finish_left_to_others(instance, repo, model_version, claimer, common_tags, summary)
            if work:
                events = sorted({a.event_id for a in attendees} | {p.event_id for p in photos})
                _refresh_event_views(instance, events, summary)
    return summary


def _work_for(attendees: Sequence[Any], photos: Sequence[Any]) -> list[SingleItem]:
    return _items_for(PHOTO_JOB, attendees, photos)


def _items_for(photo_job: str, attendees: Sequence[Any], photos: Sequence[Any]) -> list[SingleItem]:
    work = [(ATTENDEE_JOB, a.id, run_tags(event=a.event_id)) for a in attendees]
    work += [(photo_job, p.id, run_tags(event=p.event_id, uploader=p.uploader_id, photo=p.id)) for p in photos]
    return work


@dataclass(frozen=True)
class StillPending:
    """Which claimed items still need their run (Claimer.still_pending); picklable, for workers."""

    model_version: str
    include_failed: bool = False
    reembed: bool = False

    def __call__(self, repo: Repository, kind: str, keys: list[str]) -> set[str]:
        wanted = set(keys)
        if kind not in (ATTENDEE, PHOTO):  # the leases on runs (abandoned_runs.py) are not work items
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


# How often a process waiting for another's leases looks again.
WAIT_FOR_OTHERS_SECONDS = 1.0


def _finish_left_to_others(
    instance: dg.DagsterInstance,
    repo: Repository,
    model_version: str,
    claimer: Claimer,
    common_tags: dict[str, str],
    summary: ProcessSummary,
) -> None:
    """Wait until what other processes held is done, so `picsaris process` still returns when
    the work is done; what a holder that died left (its lease ran out) is claimed and run here.
    A photo the other process failed stays failed (no retry here)."""
    while summary.left_to_others:
        left, summary.left_to_others = summary.left_to_others, []
        attendee_ids = {key for kind, key in left if kind == "attendee"}
        photo_ids = {key for kind, key in left if kind == "photo"}
        attendees = [a for a in repo.attendees_needing_reference(model_version) if a.id in attendee_ids]
        photos = [p for p in repo.photos_to_process() if p.id in photo_ids]
        summary.by_others += len(left) - len(attendees) - len(photos)
        if not attendees and not photos:
            return
        # Runs of the holder that died are marked failed as soon as its lease ran out.
        summary.abandoned_runs += [run.run_id for run in fail_abandoned_runs(instance, claimer, claimer.seconds)]
        _execute(instance, repo, _work_for(attendees, photos), common_tags, summary, None, claimer=claimer, workers=1)
        if len(summary.left_to_others) == len(attendees) + len(photos):  # all still held elsewhere
            time.sleep(WAIT_FOR_OTHERS_SECONDS)


def reembed_pending(
    instance: dg.DagsterInstance,
    repo: Repository,
    model_version: str,
    event_id: str | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
) -> ProcessSummary:
    """Re-embed under model_version, in this process: every consenting attendee's selfie without a
    reference under it, then every published photo not yet embedded and matched under it (job
    reembed_photo: the photo stays published with its current matches). Only what is missing is
    done, so an interrupted re-embedding resumes where it stopped; limit stops after that many runs
    (a batch). Each event cuts over to model_version by itself once it is complete."""
    summary = ProcessSummary()
    attendees = repo.attendees_missing_version(model_version, event_id)
    photos = repo.photos_missing_version(model_version, event_id)
    ensure_partitions(instance, ATTENDEE_PARTITIONS, [a.id for a in attendees])
    ensure_partitions(instance, PHOTO_PARTITIONS, [p.id for p in photos])
    work = _items_for(REEMBED_PHOTO_JOB, attendees, photos)
    if limit is not None:
        work = work[:limit]
    # Leases as in process_pending: what another process holds is left to it (not waited for).
    with (
        LeaseKeeper(repo, still_pending=StillPending(model_version, reembed=True)) as keeper,
        ExitStack() as exits,
    ):  # workers finish exiting while views refresh
        summary.abandoned_runs += [run.run_id for run in fail_abandoned_runs(instance, keeper.claimer, keeper.seconds)]
        tags = run_tags("cli", reembed=model_version)
        _execute(instance, repo, work, tags, summary, progress, exits=exits, claimer=keeper.claimer)
        if work:
            events = sorted({a.event_id for a in attendees} | {p.event_id for p in photos})
            _refresh_event_views(instance, events, summary)
    return summary


WorkItem = tuple[str, tuple[str, ...], dict[str, str]]  # (job name, partition keys of one run, tags)
Work = list[WorkItem]

# Below this many runs, starting worker processes (imports and model loads, ~3 s each) costs more
# than the second core gives back.
MIN_RUNS_PER_WORKER = 8


def default_batch_size() -> int:
    """PICSARIS_BATCH_SIZE (1: one run per photo), else MAX_PHOTOS_PER_BATCH."""
    return Settings.from_env().batch_size


def _batched(instance: dg.DagsterInstance, photos: list[SingleItem], workers: int) -> Work:
    """Photo runs grouped into batch runs (partition ranges) of one job and one event. Batches are
    smaller when there are few photos per worker, so that no worker is left idle at the end while
    another finishes a long batch."""
    size = max(1, min(default_batch_size(), len(photos) // (4 * workers)))
    order = instance.get_dynamic_partitions(PHOTO_PARTITIONS)
    by_job: dict[str, list[PhotoRef]] = {}
    for job_name, key, tags in photos:
        by_job.setdefault(job_name, []).append((key, tags.get(EVENT_TAG, ""), tags.get(UPLOADER_TAG)))
    return [
        (job_name, tuple(batch), tags)
        for job_name, refs in by_job.items()
        for batch, tags in batched_runs(refs, order, size)
    ]


def default_workers() -> int:
    """PICSARIS_WORKERS, else one worker per core."""
    return Settings.from_env().workers


def _failed_in_batch(result: dg.ExecuteInProcessResult) -> dict[str, str]:
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


def _execute(
    instance: dg.DagsterInstance,
    repo: Repository,
    work: list[SingleItem],
    common_tags: dict[str, str],
    summary: ProcessSummary,
    progress: Progress | None,
    workers: int | None = None,
    exits: ExitStack | None = None,
    claimer: Claimer | None = None,
) -> None:
    """Run the work, attendees before photos (photos are matched against their references). Photo
    runs are spread over this process and worker processes, one per core, each keeping its models
    loaded; every run is still one Dagster run on the configured instance. Worker processes that
    are done are left to exit on their own until `exits` closes (joined here without it)."""
    attendees = [(job, (key,), tags) for job, key, tags in work if job == ATTENDEE_JOB]
    photos = [item for item in work if item[0] != ATTENDEE_JOB]
    done = 0

    def record(
        job_name: str, keys: tuple[str, ...], ok: bool, message: str, run_id: str, failed_in_run: dict[str, str]
    ) -> None:
        """One run's outcome, per photo: a batch run succeeds with the photos it marked failed."""
        nonlocal done
        kind = "attendee" if job_name == ATTENDEE_JOB else "photo"
        for key in keys:
            done += 1
            if message == LEFT_TO_OTHERS:
                summary.left_to_others.append((kind, key))
            elif ok and key not in failed_in_run:
                summary.attendees += kind == "attendee"
                summary.photos += kind == "photo"
            elif ok:
                summary.failures.append((kind, key, failed_in_run[key]))
            else:
                summary.failures.append((kind, key, message))
                if job_name == PHOTO_JOB:  # a failed re-embedding leaves the published photo as it is
                    mark_failed(repo, key, f"run {run_id[:8]} failed: {message}")
            if progress:
                progress(kind, done, len(work))

    if claimer is not None:
        common_tags = {**common_tags, HOLDER_TAG: claimer.holder}
    for outcome in _run_inline(instance, attendees, common_tags, claimer):
        record(*outcome)
    count = min(workers or default_workers(), len(photos) // MIN_RUNS_PER_WORKER)
    runs = _batched(instance, photos, max(1, count))
    if count > 1:
        outcomes = _run_in_workers(instance, runs, common_tags, count, exits, claimer)
    else:
        outcomes = _run_inline(instance, runs, common_tags, claimer)
    for outcome in outcomes:
        record(*outcome)


SingleItem = tuple[str, str, dict[str, str]]  # (job name, partition key, tags): one photo or attendee
# (job name, keys, run succeeded, failure message, run id, photos a successful batch run marked failed)
Outcome = tuple[str, tuple[str, ...], bool, str, str, dict[str, str]]
# The message of an outcome for keys another process holds a lease on: not run here.
LEFT_TO_OTHERS = "leased by another process"


def _run_inline(
    instance: dg.DagsterInstance, work: Iterable[WorkItem], common_tags: dict[str, str], claimer: Claimer | None = None
) -> Iterator[Outcome]:
    """Each run of `work` (taken lazily: it may be shared with other processes), in this process.
    With a claimer, only the keys it wins a lease on are run (the rest come back LEFT_TO_OTHERS),
    and each run's leases are released once its outcome is taken."""
    from picsaris_pipeline.definitions import defs

    jobs: dict[str, Any] = {}
    for job_name, keys, tags in work:
        if job_name not in jobs:
            jobs[job_name] = defs.resolve_job_def(job_name)
        runs = [(keys, tags)]
        kind = ATTENDEE if job_name == ATTENDEE_JOB else PHOTO
        if claimer is not None:
            won = claimer.claim(kind, keys)
            if kind == PHOTO and (busy := _photos_in_other_runs(instance, won)):
                claimer.release(kind, list(busy))
                won = [key for key in won if key not in busy]
            if len(won) < len(keys):
                yield job_name, tuple(k for k in keys if k not in won), True, LEFT_TO_OTHERS, "", {}
                runs = _regrouped(instance, won, tags)
        for run_keys, tags_of_run in runs:
            result = jobs[job_name].execute_in_process(
                partition_key=run_keys[0] if len(run_keys) == 1 else None,
                instance=instance,
                raise_on_error=False,
                run_config=QUIET_CONSOLE,
                tags={**tags_of_run, **common_tags},  # a batch run's tags carry its range (batched_runs)
            )
            message = "" if result.success else _failure_message(result)
            failed = _failed_in_batch(result) if result.success and len(run_keys) > 1 else {}
            yield job_name, run_keys, result.success, message, result.run_id, failed
            if claimer is not None:  # after the outcome is recorded (a failed photo is marked failed first)
                claimer.release(kind, run_keys)


def _photos_in_other_runs(instance: dg.DagsterInstance, keys: Sequence[str]) -> set[str]:
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


def _regrouped(
    instance: dg.DagsterInstance, won: list[str], tags: dict[str, str]
) -> list[tuple[tuple[str, ...], dict[str, str]]]:
    """The part of a batch this process won a lease on, as runs over contiguous partitions."""
    # One photo is a run by itself: no partition order to read. Its uploader is not in the batch's tags.
    order = won if len(won) == 1 else instance.get_dynamic_partitions(PHOTO_PARTITIONS)
    event = tags.get(EVENT_TAG, "")
    runs = batched_runs([(key, event, None) for key in won], order, len(won))
    return [(tuple(batch), batch_run_tags) for batch, batch_run_tags in runs]


def _claim(work: Work, next_index: Any) -> Iterator[WorkItem]:
    """The runs no process has taken yet, one at a time. Whoever is free takes the next, so a
    process dealt the slow group photos does not leave the others idle at the end."""
    while True:
        with next_index.get_lock():
            index = next_index.value
            next_index.value = index + 1
        if index >= len(work):
            return
        yield work[index]


def _run_in_workers(
    instance: dg.DagsterInstance,
    work: Work,
    common_tags: dict[str, str],
    count: int,
    exits: ExitStack | None,
    claimer: Claimer | None = None,
) -> Iterator[Outcome]:
    """The work shared by this process and `count - 1` spawned ones; outcomes as they finish. This
    process has imported Dagster and the code location already, so it starts on the first run at
    once while the others boot (~2-3 s of imports and model loads each)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a process holding DB and thread state
    outcomes = context.Queue()
    next_index = context.Value("q", 0)
    # Workers claim under this process's holder id, whose keeper renews their leases too.
    lease = (
        None
        if claimer is None
        else (claimer.repo.url_with_password(), claimer.holder, claimer.seconds, claimer.still_pending)
    )
    processes = [
        context.Process(target=_worker, args=(work, next_index, common_tags, outcomes, lease), daemon=True)
        for _ in range(count - 1)
    ]
    for process in processes:
        process.start()
    pending = {key for _, keys, _ in work for key in keys}  # per key: a batch may come back in parts
    finished = False
    try:
        for outcome in _run_inline(instance, _claim(work, next_index), common_tags, claimer):
            pending.difference_update(outcome[1])
            yield outcome
            yield from _reported(outcomes, pending, processes, wait=False)
        yield from _reported(outcomes, pending, processes, wait=True)
        finished = True
    finally:
        if finished and exits is not None:
            # Every run has reported: nothing waits on the workers' interpreter shutdown (~0.5 s).
            exits.callback(_reap, processes)
        else:
            _reap(processes)
    for job_name, keys, _ in work:  # a worker that died (killed, out of memory) leaves its run undone
        if undone := tuple(key for key in keys if key in pending):
            yield job_name, undone, False, "its worker process exited before finishing it", "", {}


def _reported(outcomes: Any, pending: set[str], processes: list[Any], wait: bool) -> Iterator[Outcome]:
    """Outcomes the worker processes have reported: those already queued, or with `wait` every one
    until nothing is pending or every worker is gone."""
    while pending:
        workers_gone = all(not process.is_alive() for process in processes)
        try:
            item = outcomes.get(timeout=0.5 if workers_gone else 5) if wait else outcomes.get_nowait()
        except queue.Empty:
            if not wait or workers_gone:  # (and nothing left in the queue: the rest will never come)
                return
            continue
        if item[0] == "crashed":
            raise RuntimeError(f"a worker process failed: {item[1]}")
        pending.difference_update(item[1])
        yield item


def _reap(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()


def _worker(
    work: Work, next_index: Any, common_tags: dict[str, str], outcomes: Any, lease: tuple[str, str, int, Any] | None
) -> None:
    try:
        instance = dagster_instance(Settings.from_env())
        claimer = None if lease is None else Claimer(connect(lease[0]), lease[1], lease[2], lease[3])
        for outcome in _run_inline(instance, _claim(work, next_index), common_tags, claimer):
            outcomes.put(outcome)
    except BaseException as error:  # reported to the parent, which stops with it
        outcomes.put(("crashed", f"{type(error).__name__}: {error}", False, "", "", {}))
        raise


def _refresh_event_views(instance: dg.DagsterInstance, event_ids: list[str], summary: ProcessSummary) -> None:
    """Bring what ops look at up to date: the touched events' summaries and the health checks."""
    from picsaris_pipeline.definitions import defs

    ensure_partitions(instance, EVENT_PARTITIONS, event_ids)
    summary_job = defs.resolve_job_def(EVENT_SUMMARY_JOB)
    for event_id in event_ids:
        result = summary_job.execute_in_process(
            partition_key=event_id,
            instance=instance,
            raise_on_error=False,
            run_config=QUIET_CONSOLE,
            tags=run_tags("cli", event=event_id),
        )
        if not result.success:
            summary.failures.append(("event summary", event_id, _failure_message(result)))
    checks = defs.resolve_job_def(HEALTH_CHECKS_JOB).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE, tags=run_tags("cli")
    )
    if not checks.success:
        summary.failures.append(("health checks", "-", _failure_message(checks)))


# -- guest-list import ------------------------------------------------------------------------
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
        _refresh_event_views(self.instance, list(event_ids), summary)
        return summary.failures
