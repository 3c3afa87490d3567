"""Driving the bucket sensor the way the daemon does: photos whose bytes reached the bucket unannounced,
one tick, and the tick's partition requests applied."""

from __future__ import annotations

import dagster as dg

from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.sensors.bucket import bucket_sensor

UNDECODED_JPEG = b"\xff\xd8 not really decoded by the sensor"


def dropped_photo(pipeline, event, guest, status=PhotoStatus.PENDING_UPLOAD):
    """A photo whose bytes reached the bucket but whose upload nobody announced."""
    photo = pipeline.repo.create_photo(event.id, guest.id, "p.jpg", "image/jpeg", "a" * 64, len(UNDECODED_JPEG), "jpg")
    pipeline.store.put(photo.object_key, UNDECODED_JPEG)
    if status is not PhotoStatus.PENDING_UPLOAD:
        pipeline.repo.update_photo(photo.id, status)
    return photo


def bucket_tick(pipeline, cursor=None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=pipeline.instance, cursor=cursor, resources=pipeline.resources)
    return bucket_sensor(context)


def apply_partition_requests(pipeline, result: dg.SensorResult) -> None:
    """What the daemon does with a tick's partition requests."""
    for request in result.dynamic_partitions_requests or []:
        pipeline.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
