"""Archives events PICSARIS_ARCHIVE_AFTER after they end: their partitions and finished runs leave
Dagster, their records, matches and images stay (orchestration/retention.py)."""

import dagster as dg

from picsaris_pipeline.orchestration.resources import DatabaseResource
from picsaris_pipeline.orchestration.retention import archive_event
from picsaris_pipeline.sensors.quiet import NO_EVENTS_DUE
from picsaris_pipeline.services.retention import due_for_archiving

ARCHIVING_OFF = "automatic archiving is off (PICSARIS_ARCHIVE_AFTER=off)"
# A tick must finish within Dagster's sensor time limit (60 s by default): a large event's runs are
# deleted over several ticks, this long each.
TICK_BUDGET_SECONDS = 30.0


@dg.sensor(
    name="event_archive_sensor",
    # Events end over days: every ten minutes is soon enough, and a large event whose runs take
    # several ticks to delete is done within the hour.
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Archives events PICSARIS_ARCHIVE_AFTER (default 30 days) after they end: removes their "
    "photo and attendee partitions and their finished runs from Dagster; records, matches and images stay.",
)
def event_archive_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SkipReason:
    after = database.settings.archive_after
    if after is None:
        return dg.SkipReason(ARCHIVING_OFF)
    repo = database.repository()
    # One event per tick, within a budget; an event not finished in one tick is taken up again by
    # the next (it stays unarchived until it is complete), then the next event.
    due = due_for_archiving(repo, after)
    if not due:
        return dg.SkipReason(NO_EVENTS_DUE)
    archive = archive_event(repo, context.instance, due[0].id, budget_seconds=TICK_BUDGET_SECONDS)
    context.log.info(archive.describe())
    more = f"; {len(due) - 1} more due" if len(due) > 1 else ""
    done = "archived" if archive.complete else "archiving"
    return dg.SkipReason(f"{done} event {due[0].id}: {archive.describe()}{more}")
