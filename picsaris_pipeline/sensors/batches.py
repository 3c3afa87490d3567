"""Bursts run in batches: photos intake queued because their uploader already had one waiting are
requested here as range runs (one run over up to MAX_PHOTOS_PER_BATCH consecutive photo
partitions), so a guest sharing sixty photos costs a few runs instead of sixty."""

from collections.abc import Sequence

import dagster as dg

from picsaris_pipeline.domain.model import Photo
from picsaris_pipeline.orchestration.jobs import photo_job
from picsaris_pipeline.orchestration.partitions import PHOTO_JOB, PHOTO_PARTITIONS, batched_runs, ensure_partitions
from picsaris_pipeline.orchestration.resources import DatabaseResource
from picsaris_pipeline.sensors.quiet import NO_QUEUED_PHOTOS
from picsaris_pipeline.services.leases import PHOTO as PHOTO_LEASE
from picsaris_pipeline.services.leases import held_elsewhere

# Photos taken off the queue per tick; the rest wait for the next tick (a few seconds).
MAX_PHOTOS_PER_TICK = 200


def batch_run_requests(instance: dg.DagsterInstance, photos: Sequence[Photo], source: str) -> list[dg.RunRequest]:
    """Run requests for these photos: consecutive partitions of one event grouped into range runs
    (their partitions are added here first, in order, where missing). A photo left alone gets a
    plain one-photo run with its uploader's tags."""
    order = instance.get_dynamic_partitions(PHOTO_PARTITIONS)  # a range is this insertion order
    existing = set(order)
    missing = [photo.id for photo in photos if photo.id not in existing]
    if missing:  # read again: intake may have added partitions in between
        ensure_partitions(instance, PHOTO_PARTITIONS, missing)
        order = instance.get_dynamic_partitions(PHOTO_PARTITIONS)
    requests = []
    refs = [(photo.id, photo.event_id, photo.uploader_id) for photo in photos]
    for batch, tags in batched_runs(refs, order, source=source):
        if len(batch) == 1:  # a photo left alone: a plain one-photo run
            requests.append(
                dg.RunRequest(run_key=f"photo:{batch[0]}", job_name=PHOTO_JOB, partition_key=batch[0], tags=tags)
            )
        else:
            requests.append(dg.RunRequest(run_key=f"batch:{batch[0]}:{batch[-1]}", job_name=PHOTO_JOB, tags=tags))
    return requests


@dg.sensor(
    name="upload_batch_sensor",
    jobs=[photo_job],
    minimum_interval_seconds=2,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests batch runs (partition ranges) for the photos intake queued because their "
    "uploader already had a photo waiting: bursts run a few photos per run.",
)
def upload_batch_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SensorResult:
    repo = database.repository()
    photos = repo.take_batch_queue(MAX_PHOTOS_PER_TICK)
    if leased := held_elsewhere(repo, PHOTO_LEASE, [photo.id for photo in photos]):
        context.log.info(f"{len(leased)} queued photo(s) left to the picsaris process running them")
        photos = [photo for photo in photos if photo.id not in leased]
    if not photos:
        return dg.SensorResult(skip_reason=dg.SkipReason(NO_QUEUED_PHOTOS))
    requests = batch_run_requests(context.instance, photos, source="batch")
    context.log.info(f"{len(photos)} queued photo(s) in {len(requests)} run(s)")
    return dg.SensorResult(run_requests=requests)
