"""Runs a killed run worker or a killed `picsaris process` left STARTED are marked failed, so
the UI shows what happened and their photos (left on their way, not `failed`) are taken up again
by the bucket sensor's stale-photo relaunch or the next `picsaris process` (orchestration/abandoned_runs.py)."""

import dagster as dg

from picsaris_pipeline.orchestration.abandoned_runs import fail_abandoned_runs
from picsaris_pipeline.orchestration.resources import DatabaseResource
from picsaris_pipeline.sensors.quiet import NO_ABANDONED_RUNS
from picsaris_pipeline.services.leases import Claimer, new_holder_id


@dg.sensor(
    name="abandoned_run_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs failed that were left STARTED by a run worker or a picsaris process that "
    "is gone (its pid on this host, or its lease ran out); their photos are then run again.",
)
def abandoned_run_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SkipReason:
    repo = database.repository()
    claimer = Claimer(repo, new_holder_id(), database.settings.lease_seconds)
    try:
        found = fail_abandoned_runs(context.instance, claimer, claimer.seconds)
    finally:
        repo.release_leases(claimer.holder)
    for run in found:
        context.log.warning(f"run {run.run_id} of {run.job_name} marked failed: {run.reason}")
    return dg.SkipReason(f"marked {len(found)} abandoned run(s) failed" if found else NO_ABANDONED_RUNS)
