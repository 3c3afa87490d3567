"""Where the time of each run went, from Dagster's event log."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


# -- where the time of each run went --------------------------------------------------------------
@dataclass
class RunTimes:
    run_id: str
    photo_id: str
    created: float  # enqueued (launchRun through the webserver, or the sensor's tick)
    launched: float | None  # RUN_STARTING: the daemon took it off the queue and launched it
    started: float | None  # RUN_START: the run's process is up (imports, code location loaded)
    ended: float | None
    status: str
    photos: int = 1  # partitions in the run (a range run counts them all)


def run_times(dagster_home: Path, env: dict[str, str], event_id: str) -> list[RunTimes]:
    """Creation, launch, start and end of the event's photo runs, one row per photo, from the
    instance's own records. A range run (tags dagster/asset_partition_range_start/_end, many photos
    in one run) gives a row to each photo of its range (dynamic partitions keep insertion order)."""
    import dagster as dg

    from picsaris_pipeline.orchestration.partitions import EVENT_TAG, PHOTO_JOB, PHOTO_TAG, run_photo_ids

    for key in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL"):
        if key in env:
            os.environ[key] = env[key]
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records(filters=dg.RunsFilter(tags={EVENT_TAG: event_id}))
        result = []
        for record in records:
            run = record.dagster_run
            if run.job_name != PHOTO_JOB:
                continue
            launched = None
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_STARTING):
                launched = entry.timestamp
            photos = run_photo_ids(run, instance) or [run.tags.get(PHOTO_TAG, "")]
            for photo in photos:
                result.append(
                    RunTimes(
                        run.run_id,
                        photo,
                        record.create_timestamp.timestamp(),
                        launched,
                        record.start_time,
                        record.end_time,
                        run.status.value,
                        photos=len(photos),
                    )
                )
    return result
