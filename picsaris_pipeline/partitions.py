"""The two dynamic partition sets: one partition per photo and one per attendee (keys are ids)."""

import dagster as dg

PHOTO_PARTITIONS = "photos"
ATTENDEE_PARTITIONS = "attendees"
EVENT_PARTITIONS = "events"
photo_partitions = dg.DynamicPartitionsDefinition(name=PHOTO_PARTITIONS)
attendee_partitions = dg.DynamicPartitionsDefinition(name=ATTENDEE_PARTITIONS)
event_partitions = dg.DynamicPartitionsDefinition(name=EVENT_PARTITIONS)

PHOTO_JOB = "process_photo"
ATTENDEE_JOB = "process_attendee"
REEMBED_PHOTO_JOB = "reembed_photo"
EVENT_SUMMARY_JOB = "summarize_event"
HEALTH_CHECKS_JOB = "ops_health_checks"
EVENT_TAG = "picsaris/event"
UPLOADER_TAG = "picsaris/uploader"
PHOTO_TAG = "picsaris/photo"  # on every photo run, however launched: the launcher de-duplicates on it
ATTENDEE_TAG = "picsaris/attendee"  # on every attendee run launched through the webserver
REEMBED_TAG = "picsaris/reembed"  # the model version a re-embedding run works towards
