"""The two dynamic partition sets: one partition per photo and one per attendee (keys are ids)."""

import dagster as dg

PHOTO_PARTITIONS = "photos"
ATTENDEE_PARTITIONS = "attendees"
photo_partitions = dg.DynamicPartitionsDefinition(name=PHOTO_PARTITIONS)
attendee_partitions = dg.DynamicPartitionsDefinition(name=ATTENDEE_PARTITIONS)

PHOTO_JOB = "process_photo"
ATTENDEE_JOB = "process_attendee"
EVENT_TAG = "picsaris/event"
UPLOADER_TAG = "picsaris/uploader"
