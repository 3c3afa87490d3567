"""Nothing stays on its way forever: a photo whose run failed for good is marked `failed` with the
error, so it shows among the failed photos with its reason and `picsaris process` can retry it."""

import dagster as dg

from picsaris_pipeline.orchestration.jobs import photo_job
from picsaris_pipeline.orchestration.partitions import ABANDONED_TAG, run_photo_ids
from picsaris_pipeline.orchestration.resources import DatabaseResource
from picsaris_pipeline.services.photos import mark_failed

WILL_RETRY_TAG = "dagster/will_retry"  # set by the daemon on a failed run it is going to re-execute


@dg.run_failure_sensor(
    name="photo_failure_sensor",
    monitored_jobs=[photo_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the photo of a failed process_photo run (every photo of a failed batch run that "
    "had not finished) `failed` with its error once no retry is left.",
)
def photo_failure_sensor(context: dg.RunFailureSensorContext, database: DatabaseResource) -> dg.SkipReason | None:
    run = context.dagster_run
    if run.tags.get(WILL_RETRY_TAG) == "true":
        return dg.SkipReason(f"run {run.run_id} will be retried")
    if run.tags.get(ABANDONED_TAG) == "true":  # its photos are left on their way, to be taken up again
        return dg.SkipReason(f"run {run.run_id} was abandoned by a process that is gone; its photos run again")
    photo_ids = run_photo_ids(run, context.instance)
    if not photo_ids:
        return dg.SkipReason(f"run {run.run_id} has no photo partition")
    error = context.failure_event.message or "run failed"
    repo = database.repository()
    for photo_id in photo_ids:  # photos that reached a terminal status are left as they are
        if mark_failed(repo, photo_id, f"run {run.run_id[:8]} failed: {error}"):
            context.log.info(f"photo {photo_id} marked failed")
    return None
