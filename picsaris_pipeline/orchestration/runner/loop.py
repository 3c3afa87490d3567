"""`picsaris process` and `picsaris reembed`: the pending work, in batches, over this process and
its workers, until what other processes held is done too."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import dagster as dg

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.orchestration.abandoned_runs import fail_abandoned_runs
from picsaris_pipeline.orchestration.partition_snapshot import one_read_per_run
from picsaris_pipeline.orchestration.partitions import (
    ATTENDEE_JOB,
    ATTENDEE_PARTITIONS,
    EVENT_TAG,
    HOLDER_TAG,
    PHOTO_JOB,
    PHOTO_PARTITIONS,
    REEMBED_PHOTO_JOB,
    UPLOADER_TAG,
    PhotoRef,
    batched_runs,
    ensure_partitions,
    run_tags,
)
from picsaris_pipeline.orchestration.runner.claiming import StillPending
from picsaris_pipeline.orchestration.runner.launching import run_inline
from picsaris_pipeline.orchestration.runner.reporting import (
    LEFT_TO_OTHERS,
    ProcessSummary,
    Progress,
    SingleItem,
    Work,
    refresh_event_views,
)
from picsaris_pipeline.orchestration.runner.workers import run_in_workers
from picsaris_pipeline.services.intake import expire_abandoned_uploads
from picsaris_pipeline.services.leases import Claimer, LeaseKeeper
from picsaris_pipeline.services.photos import mark_failed
from picsaris_pipeline.settings import Settings
from picsaris_pipeline.storage import ObjectStore


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

    Each photo and attendee is claimed with a lease just before its run (services/leases.py), so two
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
        work = work_for(attendees, photos)
        with ExitStack() as exits:  # worker processes finish exiting while the event views refresh
            common_tags = run_tags("cli")
            with one_read_per_run():  # every run of `work` has its partition already (ensured above)
                execute(instance, repo, work, common_tags, summary, progress, exits=exits, claimer=claimer)
            finish_left_to_others(instance, repo, model_version, claimer, common_tags, summary)
            if work:
                events = sorted({a.event_id for a in attendees} | {p.event_id for p in photos})
                with one_read_per_run():  # the event summaries and the checks: one read between them
                    refresh_event_views(instance, events, summary)
    return summary


def work_for(attendees: Sequence[Any], photos: Sequence[Any]) -> list[SingleItem]:
    return items_for(PHOTO_JOB, attendees, photos)


def items_for(photo_job: str, attendees: Sequence[Any], photos: Sequence[Any]) -> list[SingleItem]:
    work = [(ATTENDEE_JOB, a.id, run_tags(event=a.event_id)) for a in attendees]
    work += [(photo_job, p.id, run_tags(event=p.event_id, uploader=p.uploader_id, photo=p.id)) for p in photos]
    return work


# How often a process waiting for another's leases looks again.
WAIT_FOR_OTHERS_SECONDS = 1.0


def finish_left_to_others(
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
        execute(instance, repo, work_for(attendees, photos), common_tags, summary, None, claimer=claimer, workers=1)
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
    work = items_for(REEMBED_PHOTO_JOB, attendees, photos)
    if limit is not None:
        work = work[:limit]
    # Leases as in process_pending: what another process holds is left to it (not waited for).
    with (
        LeaseKeeper(repo, still_pending=StillPending(model_version, reembed=True)) as keeper,
        ExitStack() as exits,
    ):  # workers finish exiting while views refresh
        summary.abandoned_runs += [run.run_id for run in fail_abandoned_runs(instance, keeper.claimer, keeper.seconds)]
        tags = run_tags("cli", reembed=model_version)
        execute(instance, repo, work, tags, summary, progress, exits=exits, claimer=keeper.claimer)
        if work:
            events = sorted({a.event_id for a in attendees} | {p.event_id for p in photos})
            refresh_event_views(instance, events, summary)
    return summary


# Below this many runs, starting worker processes (imports and model loads, ~3 s each) costs more
# than the second core gives back.
MIN_RUNS_PER_WORKER = 8


def default_batch_size() -> int:
    """PICSARIS_BATCH_SIZE (1: one run per photo), else MAX_PHOTOS_PER_BATCH."""
    return Settings.from_env().batch_size


def batched(instance: dg.DagsterInstance, photos: list[SingleItem], workers: int) -> Work:
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


def execute(
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
    for outcome in run_inline(instance, attendees, common_tags, claimer):
        record(*outcome)
    count = min(workers or default_workers(), len(photos) // MIN_RUNS_PER_WORKER)
    runs = batched(instance, photos, max(1, count))
    if count > 1:
        outcomes = run_in_workers(instance, runs, common_tags, count, exits, claimer)
    else:
        outcomes = run_inline(instance, runs, common_tags, claimer)
    for outcome in outcomes:
        record(*outcome)
