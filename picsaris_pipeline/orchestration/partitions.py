"""The launch contract: job names, run tags, the dynamic partition sets (keys are ids) and batch runs."""

from collections.abc import Sequence

import dagster as dg
from sqlalchemy.exc import IntegrityError

from picsaris_pipeline.settings import (
    MAX_PHOTOS_PER_BATCH,  # the launch contract: a batch run holds at most this many photos
)

PHOTO_PARTITIONS = "photos"
ATTENDEE_PARTITIONS = "attendees"
EVENT_PARTITIONS = "events"
photo_partitions = dg.DynamicPartitionsDefinition(name=PHOTO_PARTITIONS)
attendee_partitions = dg.DynamicPartitionsDefinition(name=ATTENDEE_PARTITIONS)
event_partitions = dg.DynamicPartitionsDefinition(name=EVENT_PARTITIONS)

PHOTO_JOB = "process_photo"
ATTENDEE_JOB = "process_attendee"
REEMBED_PHOTO_JOB = "reembed_photo"
EVENT_SUMMARY_JOB = "summarize_event"
HEALTH_CHECKS_JOB = "ops_health_checks"
EVENT_TAG = "picsaris/event"
UPLOADER_TAG = "picsaris/uploader"
PHOTO_TAG = "picsaris/photo"  # on every photo run, however launched: the launcher de-duplicates on it
ATTENDEE_TAG = "picsaris/attendee"  # on every attendee run launched through the webserver
BATCH_TAG = "picsaris/batch"  # on batch runs (a range of photo partitions): how many photos
REEMBED_TAG = "picsaris/reembed"  # the model version a re-embedding run works towards
SOURCE_TAG = "picsaris/source"  # what launched the run: intake, sensor, batch, cli or reembed
HOLDER_TAG = "picsaris/lease_holder"  # on every run `picsaris process` executes (services/leases.py)
# set on a run orchestration/abandoned_runs.py marked failed: its photos are run again
ABANDONED_TAG = "picsaris/abandoned"
WORKER_PID_TAG = "picsaris/run_worker_pid"  # set by warm_runs/launcher.py on each run it starts
WORKER_KIND_TAG = "picsaris/run_worker"  # "warm" (forked) or "fresh" (a new interpreter)
WORKER_HOST_TAG = "picsaris/run_worker_host"  # where the pid is: a run left STARTED is checked there
PARTITION_TAG = "dagster/partition"  # Dagster's: the partition of a one-photo (or attendee) run

# Keys per add_dynamic_partitions call: its lookup binds one parameter per key, and SQLite allows
# a limited number in one statement.
PARTITIONS_PER_ADD = 500

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def ensure_partitions(instance: dg.DagsterInstance, name: str, keys: Sequence[str], attempts: int = 5) -> None:
    """Add the keys missing from dynamic partition set `name`, in order. Dagster's
    add_dynamic_partitions looks up the keys it is given (an indexed query, not a read of the whole
    set, which costs ~0.35 s at 120,000 partitions) and inserts those it does not find. Two
    processes (the sensor and `picsaris process`, or two `process` runs) may add the same keys at
    once: the slower one hits the unique key. That is not an error here (the partition exists,
    which is all we want): look up again and add what is still missing."""
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), PARTITIONS_PER_ADD):
        chunk = wanted[start : start + PARTITIONS_PER_ADD]
        for _ in range(attempts):
            try:
                instance.add_dynamic_partitions(name, chunk)
                break
            except IntegrityError:
                continue  # another process added some of them in between
        else:
            raise RuntimeError(f"could not add partitions to {name!r}: other processes kept adding the same keys")


def batch_tags(photo_ids: list[str]) -> dict[str, str]:
    """The run tags of one run over the partitions from the first photo to the last; they must be
    contiguous in the partition set's insertion order (contiguous_batches)."""
    return {RANGE_START_TAG: photo_ids[0], RANGE_END_TAG: photo_ids[-1]}


def run_tags(
    source: str | None = None,
    *,
    event: str | None = None,
    uploader: str | None = None,
    photo: str | None = None,
    batch: Sequence[str] | None = None,
    reembed: str | None = None,
) -> dict[str, str]:
    """A run's picsaris tags, only those given; `batch` (the photos of a range run, in partition
    order) gives how many and the range. Every launcher builds its tags here, so they cannot drift."""
    tags: dict[str, str] = {}
    if event is not None:
        tags[EVENT_TAG] = event
    if uploader is not None:
        tags[UPLOADER_TAG] = uploader
    if photo is not None:
        tags[PHOTO_TAG] = photo
    if batch is not None:
        tags |= {BATCH_TAG: str(len(batch)), **batch_tags(list(batch))}
    if reembed is not None:
        tags[REEMBED_TAG] = reembed
    if source is not None:
        tags[SOURCE_TAG] = source
    return tags


PhotoRef = tuple[str, str, str | None]  # (photo id, event id, uploader id where known)


def batched_runs(
    photos: Sequence[PhotoRef], order: Sequence[str], size: int = MAX_PHOTOS_PER_BATCH, source: str | None = None
) -> list[tuple[list[str], dict[str, str]]]:
    """The runs for these photos with their tags: each event's photos cut into contiguous_batches
    of `order`. A one-photo run carries its photo's tags (event, uploader, photo); a batch run what
    its photos share (event, how many, the range). Used by the batch sensor and `picsaris process`."""
    by_event: dict[str, list[str]] = {}
    uploaders: dict[str, str | None] = {}
    for photo_id, event_id, uploader_id in photos:
        by_event.setdefault(event_id, []).append(photo_id)
        uploaders[photo_id] = uploader_id
    runs = []
    for event_id, photo_ids in by_event.items():
        for batch in contiguous_batches(photo_ids, order, size):
            if len(batch) == 1:
                tags = run_tags(source, event=event_id, uploader=uploaders[batch[0]], photo=batch[0])
            else:
                tags = run_tags(source, event=event_id, batch=batch)
            runs.append((batch, tags))
    return runs


def contiguous_batches(
    wanted: list[str], partition_order: Sequence[str], size: int = MAX_PHOTOS_PER_BATCH
) -> list[list[str]]:
    """`wanted` photos cut into batches of at most `size` whose partitions lie next to each other
    in `partition_order` (the partition set's insertion order), so that a range run from a batch's
    first photo to its last covers exactly that batch; the batches follow partition order. Photos
    without a partition are left out."""
    wanted_set = set(wanted)
    batches: list[list[str]] = []
    current: list[str] = []
    for key in partition_order:
        if key in wanted_set and len(current) < size:
            current.append(key)
            continue
        if current:
            batches.append(current)
        current = [key] if key in wanted_set else []
    if current:
        batches.append(current)
    return batches


def run_photo_ids(run: dg.DagsterRun, instance: dg.DagsterInstance) -> list[str]:
    """The photos a photo run was for: its partition, or every partition of a batch run's range."""
    if photo_id := run.tags.get(PARTITION_TAG):
        return [photo_id]
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    if not (start and end):
        return []
    keys = instance.get_dynamic_partitions(PHOTO_PARTITIONS)  # a range is their insertion order
    if start not in keys or end not in keys:
        return []
    return list(keys[keys.index(start) : keys.index(end) + 1])
