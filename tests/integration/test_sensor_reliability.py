"""The bucket scan under the conditions a live event produces: listings over 1,000 keys, objects
written in the same second, uploads that land behind the cursor, concurrent uploads across ticks,
a restarted daemon, and guests whose consent came back. Nothing is missed, nothing launched twice."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest

from picsaris_pipeline.orchestration.partitions import attendee_partitions, photo_partitions
from picsaris_pipeline.services.discovery import STALE_AFTER, ScanCursor, scan_bucket
from tests.support.bucket_sensor import UNDECODED_JPEG, apply_partition_requests, bucket_tick, dropped_photo
from tests.support.db_helpers import statements_run


@pytest.fixture
def guest(pipeline, event):
    return pipeline.repo.add_attendee(event.id, "Guest", True, None, None)


def _all_requested(pipeline, max_ticks: int = 50) -> list[str]:
    """Tick like the daemon until a whole pass requests nothing new; every photo id requested."""
    requested: list[str] = []
    cursor = None
    quiet_passes = 0
    for _ in range(max_ticks):
        result = bucket_tick(pipeline, cursor)
        apply_partition_requests(pipeline, result)
        requested += [r.partition_key for r in result.run_requests]
        passes_before = ScanCursor.parse(cursor).passes
        cursor = result.cursor
        if ScanCursor.parse(cursor).passes > passes_before:
            quiet_passes = quiet_passes + 1 if not result.run_requests else 0
            if quiet_passes:
                break
    return requested


def test_a_listing_over_a_thousand_keys_is_paginated_and_read_one_query_per_page(pipeline, event, guest):
    photos = [dropped_photo(pipeline, event, guest) for _ in range(1_050)]
    with statements_run(pipeline.repo) as statements:
        scan = scan_bucket(pipeline.store, pipeline.repo, ScanCursor(), set(), set(), max_runs=5_000)
    selects = [s for s in statements if s.lstrip().lower().startswith("select") and "from photos" in s.lower()]
    assert sorted(scan.photo_ids) == sorted(p.id for p in photos)
    assert scan.keys_seen == 1_050 and scan.cursor.passes == 1
    assert len(selects) == 2  # one per page of 1,000 keys, not one per key


def test_objects_with_the_same_last_modified_second_are_all_found(pipeline, event, guest):
    photos = [dropped_photo(pipeline, event, guest) for _ in range(30)]
    same_second = time.time() // 1
    for photo in photos:
        os.utime(pipeline.store.root / photo.object_key, (same_second, same_second))
    assert sorted(_all_requested(pipeline)) == sorted(p.id for p in photos)


def test_a_slow_upload_that_lands_behind_the_cursor_is_found_on_the_next_pass(pipeline, event, guest):
    slow = pipeline.repo.create_photo(
        event.id, guest.id, "slow.jpg", "image/jpeg", "a" * 64, len(UNDECODED_JPEG), "jpg"
    )
    quick = [dropped_photo(pipeline, event, guest) for _ in range(3)]  # later ids: after slow's key
    first = bucket_tick(pipeline)
    apply_partition_requests(pipeline, first)
    assert sorted(r.partition_key for r in first.run_requests) == sorted(p.id for p in quick)
    pipeline.store.put(slow.object_key, UNDECODED_JPEG)  # its bytes arrive after the scan went past its key
    second = bucket_tick(pipeline, first.cursor)
    assert [r.partition_key for r in second.run_requests] == [slow.id]


def test_uploads_arriving_between_ticks_of_a_capped_scan_are_each_requested_once(pipeline, event, guest, monkeypatch):
    from picsaris_pipeline.sensors import bucket

    monkeypatch.setattr(bucket, "MAX_RUNS_PER_TICK", 4)
    expected = [p.id for p in (dropped_photo(pipeline, event, guest) for _ in range(6))]
    requested: list[str] = []
    cursor = None
    for tick in range(12):
        result = bucket_tick(pipeline, cursor)
        apply_partition_requests(pipeline, result)
        requested += [r.partition_key for r in result.run_requests]
        cursor = result.cursor
        if tick < 4:  # guests keep uploading while the sensor works through the burst
            expected.append(dropped_photo(pipeline, event, guest).id)
    assert sorted(requested) == sorted(expected)
    assert len(requested) == len(set(requested))


def test_a_restarted_daemon_continues_from_the_stored_cursor_without_repeating(pipeline, event, guest, monkeypatch):
    from picsaris_pipeline.sensors import bucket

    monkeypatch.setattr(bucket, "MAX_RUNS_PER_TICK", 3)
    photos = [dropped_photo(pipeline, event, guest) for _ in range(7)]
    first = bucket_tick(pipeline)
    apply_partition_requests(pipeline, first)
    # The daemon dies here; a new one reads the cursor Dagster stored for the sensor and goes on.
    rest = _all_requested_from(pipeline, first.cursor)
    requested = [r.partition_key for r in first.run_requests] + rest
    assert sorted(requested) == sorted(p.id for p in photos) and len(requested) == len(set(requested))


def _all_requested_from(pipeline, cursor: str | None) -> list[str]:
    requested: list[str] = []
    for _ in range(10):
        result = bucket_tick(pipeline, cursor)
        apply_partition_requests(pipeline, result)
        requested += [r.partition_key for r in result.run_requests]
        cursor = result.cursor
    return requested


def test_an_attendee_whose_consent_came_back_is_run_again_after_the_stale_window(pipeline, event, shared_photos):
    attendee = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    pipeline.instance.add_dynamic_partitions(attendee_partitions.name, [attendee.id])  # ran once before
    pipeline.repo.set_consent(attendee.id, False)
    pipeline.repo.set_consent(attendee.id, True)  # pending again
    partitions = set(pipeline.instance.get_dynamic_partitions(attendee_partitions.name))
    fresh = scan_bucket(pipeline.store, pipeline.repo, ScanCursor(), set(), partitions)
    assert fresh.attendee_ids == [] and fresh.stale_attendee_ids == []  # its run may be on its way
    later = datetime.now(UTC) + STALE_AFTER * 1.5
    stale = scan_bucket(pipeline.store, pipeline.repo, ScanCursor(), set(), partitions, now=later)
    assert stale.stale_attendee_ids == [attendee.id]


def test_a_withdrawn_attendees_selfie_is_never_requested(pipeline, event, shared_photos):
    attendee = pipeline.attendee(event, "Rose Leslie", shared_photos["rose_leslie_1.jpg"].path)
    pipeline.repo.set_consent(attendee.id, False)
    later = datetime.now(UTC) + STALE_AFTER * 1.5
    scan = scan_bucket(pipeline.store, pipeline.repo, ScanCursor(), set(), set(), now=later)
    assert scan.attendee_ids == [] and scan.stale_attendee_ids == []


def test_photo_partition_requests_match_the_photos_requested(pipeline, event, guest):
    photos = [dropped_photo(pipeline, event, guest) for _ in range(3)]
    result = bucket_tick(pipeline)
    (request,) = result.dynamic_partitions_requests
    assert request.partitions_def_name == photo_partitions.name
    assert sorted(request.partition_keys) == sorted(p.id for p in photos)
