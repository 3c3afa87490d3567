"""The code location: assets, jobs, sensor and resources. Nothing here reads the environment;
resources do that when a run first uses them."""

import dagster as dg

from picsaris_pipeline.assets import ATTENDEE_ASSETS, EVENT_ASSETS, PHOTO_ASSETS
from picsaris_pipeline.assets.checks import HEALTH_CHECKS
from picsaris_pipeline.jobs import (
    attendee_job,
    event_summary_job,
    health_checks_job,
    health_checks_schedule,
    photo_job,
)
from picsaris_pipeline.resources import DatabaseResource, FaceEngineResource, ObjectStoreResource, RealtimeResource
from picsaris_pipeline.sensors import bucket_sensor, photo_failure_sensor, realtime_outbox_sensor

defs = dg.Definitions(
    assets=[*PHOTO_ASSETS, *ATTENDEE_ASSETS, *EVENT_ASSETS],
    asset_checks=HEALTH_CHECKS,
    jobs=[photo_job, attendee_job, event_summary_job, health_checks_job],
    schedules=[health_checks_schedule],
    sensors=[bucket_sensor, photo_failure_sensor, realtime_outbox_sensor],
    resources={
        "database": DatabaseResource(),
        "object_store": ObjectStoreResource(),
        "face_engine": FaceEngineResource(),
        "realtime": RealtimeResource(),
    },
)
