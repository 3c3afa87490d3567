from picsaris_pipeline.sensors.batches import upload_batch_sensor
from picsaris_pipeline.sensors.bucket import bucket_sensor
from picsaris_pipeline.sensors.failures import photo_failure_sensor
from picsaris_pipeline.sensors.outbox import realtime_outbox_sensor

__all__ = ["bucket_sensor", "photo_failure_sensor", "realtime_outbox_sensor", "upload_batch_sensor"]
