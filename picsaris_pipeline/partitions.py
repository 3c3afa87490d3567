"""The two dynamic partition sets: one partition per photo and one per attendee (keys are ids)."""

import dagster as dg

photo_partitions = dg.DynamicPartitionsDefinition(name="photos")
attendee_partitions = dg.DynamicPartitionsDefinition(name="attendees")

PHOTO_JOB = "process_photo"
ATTENDEE_JOB = "process_attendee"
EVENT_TAG = "picsaris/event"
UPLOADER_TAG = "picsaris/uploader"
