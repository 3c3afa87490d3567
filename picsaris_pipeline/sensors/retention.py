"""Archives events PICSARIS_ARCHIVE_AFTER after they end: their partitions and finished runs leave
Dagster, their records, matches and images stay (orchestration/retention.py)."""

import dagster as dg

from picsaris_pipeline.orchestration.resources import DatabaseResource
from picsaris_pipeline.orchestration.retention import archive_event
from picsaris_pipeline.sensors.quiet import NO_EVENTS_DUE
from picsaris_pipeline.services.retention import due_for_archiving

ARCHIVING_OFF = "automatic archiving is off (PICSARIS_ARCHIVE_AFTER=off)"


@dg.sensor(
    name="event_archive_sensor",
    # Events end over days; an hour's delay costs nothing and keeps the tick list short.
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Archives events PICSARIS_ARCHIVE_AFTER (default 30 days) after they end: removes their "
    "photo and attendee partitions and their finished runs from Dagster; records, matches and images stay.",
)
def event_archive_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SkipReason:
    after = database.settings.archive_after
    if after is None:
        return dg.SkipReason(ARCHIVING_OFF)
    repo = database.repository()
    # One event per tick: a large event's thousands of partition deletes stay within a tick's time,
    # and the next tick (or a retried one) takes the next event.
    due = due_for_archiving(repo, after)
    if not due:
        return dg.SkipReason(NO_EVENTS_DUE)
    archive = archive_event(repo, context.instance, due[0].id)
    context.log.info(archive.describe())
    more = f"; {len(due) - 1} more due" if len(due) > 1 else ""
    return dg.SkipReason(f"archived event {due[0].id}: {archive.describe()}{more}")
