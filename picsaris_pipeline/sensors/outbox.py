"""Retries realtime messages whose delivery failed (a publisher outage must not lose them)."""

import dagster as dg

from picsaris_pipeline.orchestration.resources import DatabaseResource, RealtimeResource
from picsaris_pipeline.sensors.quiet import NO_QUEUED_MESSAGES
from picsaris_pipeline.services.delivery import deliver


@dg.sensor(
    name="realtime_outbox_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Delivers realtime messages still queued in the outbox (after a failed publish).",
)
def realtime_outbox_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource, realtime: RealtimeResource
) -> dg.SkipReason:
    delivery = deliver(database.repository(), realtime.publisher())
    if delivery.error:
        context.log.warning(f"{delivery.pending} message(s) still undelivered: {delivery.error}")
    if not (delivery.sent or delivery.pending):
        return dg.SkipReason(NO_QUEUED_MESSAGES)
    return dg.SkipReason(f"delivered {delivery.sent} queued message(s); {delivery.pending} still failing")
