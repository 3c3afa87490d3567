"""The bucket sensor through build_sensor_context on a real (temporary) Dagster instance; and every
sensor's idle tick, which the terminal of `./dev ui` leaves out (sensors/quiet.py)."""

import dagster as dg
import pytest

from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.keys import verified_image_key
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.orchestration.partitions import attendee_partitions, photo_partitions
from picsaris_pipeline.sensors import bucket_sensor, realtime_outbox_sensor, upload_batch_sensor
from picsaris_pipeline.sensors.abandoned import abandoned_run_sensor
from picsaris_pipeline.sensors.quiet import is_idle_reason
from picsaris_pipeline.sensors.retention import event_archive_sensor
from picsaris_pipeline.services.discovery import ScanCursor, scan_bucket
from tests.support.bucket_sensor import UNDECODED_JPEG, apply_partition_requests, bucket_tick, dropped_photo


@pytest.fixture
def guest(pipeline, event):
    return pipeline.repo.add_attendee(event.id, "Guest", True, None, None)


def test_unannounced_uploads_get_a_partition_and_one_keyed_run(pipeline, event, guest):
    photos = [dropped_photo(pipeline, event, guest) for _ in range(3)]
    result = bucket_tick(pipeline)
    assert sorted(r.partition_key for r in result.run_requests) == sorted(p.id for p in photos)
    assert {r.run_key for r in result.run_requests} == {f"photo:{p.id}" for p in photos}
    assert all(r.job_name == "process_photo" and r.tags["picsaris/uploader"] == guest.id for r in result.run_requests)
    (request,) = result.dynamic_partitions_requests
    assert request.partitions_def_name == photo_partitions.name and len(request.partition_keys) == 3


def test_a_repeated_tick_launches_nothing_twice(pipeline, event, guest):
    dropped_photo(pipeline, event, guest)
    first = bucket_tick(pipeline)
    apply_partition_requests(pipeline, first)
    second = bucket_tick(pipeline, first.cursor)
    third = bucket_tick(pipeline, second.cursor)  # a full new pass over the bucket
    assert len(first.run_requests) == 1 and second.run_requests == [] and third.run_requests == []


def test_objects_without_an_intake_record_are_ignored(pipeline, event, guest):
    stranger = f"events/{event.id}/photos/{guest.id}/{new_id()}.jpg"
    pipeline.store.put(stranger, UNDECODED_JPEG)
    pipeline.store.put("events/not-a-contract-key.jpg", UNDECODED_JPEG)
    result = bucket_tick(pipeline)
    assert result.run_requests == []
    scan = scan_bucket(pipeline.store, pipeline.repo, ScanCursor(), set(), set())
    assert {key for key, _ in scan.ignored} == {stranger, "events/not-a-contract-key.jpg"}


def test_a_key_that_disagrees_with_its_record_is_ignored(pipeline, event, guest):
    photo = dropped_photo(pipeline, event, guest)
    other = pipeline.repo.add_attendee(event.id, "Other", True, None, None)
    forged = f"events/{event.id}/photos/{other.id}/{photo.id}.jpg"
    pipeline.store.delete(photo.object_key)
    pipeline.store.put(forged, UNDECODED_JPEG)
    assert bucket_tick(pipeline).run_requests == []


def test_photos_already_processed_are_not_requested(pipeline, event, guest):
    dropped_photo(pipeline, event, guest, PhotoStatus.PUBLISHED)
    dropped_photo(pipeline, event, guest, PhotoStatus.REJECTED)
    assert bucket_tick(pipeline).run_requests == []


def test_a_burst_larger_than_the_cap_continues_next_tick(pipeline, event, guest):
    photos = [dropped_photo(pipeline, event, guest) for _ in range(7)]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        scan = scan_bucket(
            pipeline.store,
            pipeline.repo,
            ScanCursor.parse(cursor),
            set(pipeline.instance.get_dynamic_partitions(photo_partitions.name)),
            set(),
            max_runs=3,
            page_size=2,
        )
        pipeline.instance.add_dynamic_partitions(photo_partitions.name, scan.photo_ids)
        seen += scan.photo_ids
        cursor = scan.cursor.serialize()
    assert sorted(seen) == sorted(p.id for p in photos)  # nothing missed, nothing twice


def test_derived_images_are_skipped_without_listing_them(pipeline, event, guest):
    photo = dropped_photo(pipeline, event, guest)
    for n in range(5):
        pipeline.store.put(verified_image_key(event.id, photo.id).replace("verified", f"v{n}"), UNDECODED_JPEG)
    scan = scan_bucket(pipeline.store, pipeline.repo, ScanCursor(), set(), set())
    assert scan.photo_ids == [photo.id] and scan.keys_seen == 1 and scan.ignored == []


def test_selfies_of_pending_attendees_get_attendee_runs(pipeline, event, shared_photos):
    attendee = pipeline.attendee(event, "Obama", shared_photos["obama_1.jpg"].path)
    result = bucket_tick(pipeline)
    (run,) = result.run_requests
    assert (run.job_name, run.partition_key, run.run_key) == (
        "process_attendee",
        attendee.id,
        f"attendee:{attendee.id}",
    )
    assert result.dynamic_partitions_requests[0].partitions_def_name == attendee_partitions.name


def test_an_unreadable_cursor_starts_a_new_pass():
    assert ScanCursor.parse("{not json") == ScanCursor()
    assert ScanCursor.parse(ScanCursor("events/x", 3).serialize()) == ScanCursor("events/x", 3)


def test_sensor_evaluates_through_the_definitions(pipeline, event, guest):
    from picsaris_pipeline.definitions import defs

    photo = dropped_photo(pipeline, event, guest)
    # evaluate_tick resolves partition keys against the instance, which it loads from a ref. The
    # context is closed (`with`): the instance it opens sets Dagster's current defs-state storage,
    # which would otherwise outlive it and break later definitions loads in this process.
    with dg.build_sensor_context(
        instance_ref=pipeline.instance.get_ref(), definitions=defs, resources=pipeline.resources
    ) as context:
        data = bucket_sensor.evaluate_tick(context)
    assert [r.partition_key for r in data.run_requests] == [photo.id]


def test_attendee_requests_pass_dagsters_own_job_validation(pipeline, event, shared_photos):
    # Through evaluate_tick, which checks every RunRequest's job against the sensor's declared jobs.
    from picsaris_pipeline.definitions import defs

    attendee = pipeline.attendee(event, "Obama", shared_photos["obama_1.jpg"].path)
    with dg.build_sensor_context(
        instance_ref=pipeline.instance.get_ref(), definitions=defs, resources=pipeline.resources
    ) as context:  # closed, as above
        data = bucket_sensor.evaluate_tick(context)
    assert [(r.job_name, r.partition_key) for r in data.run_requests] == [("process_attendee", attendee.id)]


def test_a_photo_whose_run_never_happened_is_requested_again_after_the_stale_window(pipeline, event, guest):
    from datetime import UTC, datetime

    from picsaris_pipeline.services.discovery import STALE_AFTER

    photo = dropped_photo(pipeline, event, guest, PhotoStatus.UPLOADED)
    pipeline.instance.add_dynamic_partitions(photo_partitions.name, [photo.id])  # launch failed after this
    partitions = set(pipeline.instance.get_dynamic_partitions(photo_partitions.name))
    fresh = scan_bucket(pipeline.store, pipeline.repo, ScanCursor(), partitions, set())
    assert fresh.photo_ids == [] and fresh.stale_photo_ids == []
    later = datetime.now(UTC) + STALE_AFTER * 1.5
    stale = scan_bucket(pipeline.store, pipeline.repo, ScanCursor(), partitions, set(), now=later)
    assert stale.stale_photo_ids == [photo.id]


def _skip_message(result: dg.SensorResult | dg.SkipReason) -> str | None:
    skip = result.skip_reason if isinstance(result, dg.SensorResult) else result
    return skip.skip_message if skip else None


@pytest.mark.parametrize(
    "sensor",
    [bucket_sensor, upload_batch_sensor, realtime_outbox_sensor, abandoned_run_sensor, event_archive_sensor],
    ids=lambda s: s.name,
)
def test_a_tick_with_nothing_to_do_skips_with_an_idle_reason(pipeline, sensor):
    result = sensor(dg.build_sensor_context(instance=pipeline.instance, resources=pipeline.resources))
    assert not (isinstance(result, dg.SensorResult) and result.run_requests)
    assert is_idle_reason(_skip_message(result)), _skip_message(result)


def test_a_tick_that_found_uploads_is_not_idle(pipeline, event, guest):
    dropped_photo(pipeline, event, guest)
    result = bucket_tick(pipeline)
    assert result.run_requests and result.skip_reason is None


def test_a_skip_that_tells_the_operator_something_is_not_idle():
    # What the outbox and abandoned-run sensors report after doing something (their own wording).
    assert not is_idle_reason("delivered 0 queued message(s); 2 still failing")
    assert not is_idle_reason("marked 1 abandoned run(s) failed")
    assert not is_idle_reason(None)
