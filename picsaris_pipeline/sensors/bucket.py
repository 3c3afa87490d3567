"""The safety net: registers uploads found in the bucket as partitions and requests their runs."""

import time

import dagster as dg

from picsaris_pipeline.orchestration.jobs import attendee_job, photo_job
from picsaris_pipeline.orchestration.partitions import (
    ATTENDEE_JOB,
    ATTENDEE_PARTITIONS,
    PHOTO_JOB,
    PHOTO_PARTITIONS,
    attendee_partitions,
    photo_partitions,
    run_tags,
)
from picsaris_pipeline.orchestration.resources import DatabaseResource, ObjectStoreResource
from picsaris_pipeline.sensors.quiet import no_new_uploads
from picsaris_pipeline.services import leases
from picsaris_pipeline.services.discovery import STALE_AFTER, ScanCursor, scan_bucket
from picsaris_pipeline.services.leases import held_elsewhere

MAX_RUNS_PER_TICK = 200


@dg.sensor(
    name="bucket_sensor",
    jobs=[photo_job, attendee_job],
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Finds photos and selfies in the bucket whose upload nobody announced, adds their "
    "partitions and requests one run each (run keys make repeated ticks launch nothing twice).",
)
def bucket_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource, object_store: ObjectStoreResource
) -> dg.SensorResult:
    repo = database.repository()
    scan = scan_bucket(
        object_store.store(),
        repo,
        ScanCursor.parse(context.cursor),
        set(context.instance.get_dynamic_partitions(PHOTO_PARTITIONS)),
        set(context.instance.get_dynamic_partitions(ATTENDEE_PARTITIONS)),
        max_runs=MAX_RUNS_PER_TICK,
    )
    run_requests = []
    # A relaunch of a stale photo gets a run key per STALE_AFTER window: at most one per window.
    window = int(time.time() // STALE_AFTER.total_seconds())
    keyed = [(pid, f"photo:{pid}") for pid in scan.photo_ids]
    keyed += [(pid, f"photo:{pid}:relaunch:{window}") for pid in scan.stale_photo_ids]
    # Photos and attendees a `picsaris process` holds a lease on are being run there already.
    leased = held_elsewhere(repo, leases.PHOTO, [photo_id for photo_id, _ in keyed])
    keyed = [(photo_id, run_key) for photo_id, run_key in keyed if photo_id not in leased]
    photos = repo.photos_by_ids([photo_id for photo_id, _ in keyed])
    for photo_id, run_key in keyed:
        photo = photos[photo_id]
        tags = run_tags("sensor", event=photo.event_id, uploader=photo.uploader_id, photo=photo.id)
        run_requests.append(dg.RunRequest(run_key=run_key, job_name=PHOTO_JOB, partition_key=photo_id, tags=tags))
    attendees = repo.attendees_by_ids(scan.attendee_ids + scan.stale_attendee_ids)
    keyed_attendees = [(aid, f"attendee:{aid}") for aid in scan.attendee_ids]
    keyed_attendees += [(aid, f"attendee:{aid}:relaunch:{window}") for aid in scan.stale_attendee_ids]
    leased |= held_elsewhere(repo, leases.ATTENDEE, [attendee_id for attendee_id, _ in keyed_attendees])
    keyed_attendees = [(attendee_id, key) for attendee_id, key in keyed_attendees if attendee_id not in leased]
    if leased:
        context.log.info(f"{len(leased)} upload(s) left to the picsaris process running them")
    for attendee_id, run_key in keyed_attendees:
        attendee = attendees[attendee_id]
        run_requests.append(
            dg.RunRequest(
                run_key=run_key,
                job_name=ATTENDEE_JOB,
                partition_key=attendee_id,
                tags=run_tags("sensor", event=attendee.event_id),
            )
        )
    requests = []
    if scan.photo_ids:
        requests.append(photo_partitions.build_add_request(scan.photo_ids))
    if scan.attendee_ids:
        requests.append(attendee_partitions.build_add_request(scan.attendee_ids))
    if scan.ignored:
        context.log.warning(
            f"ignored {len(scan.ignored)} object(s) without an intake record, e.g. {scan.ignored[0][0]}"
        )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=requests,
        cursor=scan.cursor.serialize(),
        skip_reason=None if run_requests else dg.SkipReason(no_new_uploads(scan.keys_seen)),
    )
