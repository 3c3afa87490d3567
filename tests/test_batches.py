"""Batch runs: one Dagster run over a range of photo partitions (bursts, `picsaris process`). Each
photo keeps its own status and metadata, and one bad photo never fails its batch."""

import dagster as dg
import pytest

from picsaris_pipeline.assets.photos import faces_detected, verified_upload
from picsaris_pipeline.domain import PhotoStatus
from picsaris_pipeline.partitions import PHOTO_PARTITIONS, batch_tags, contiguous_batches

from .pipeline_helpers import partition_metadata, run_failure_sensor


@pytest.fixture
def obama(pipeline, event, shared_photos):
    attendee = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    assert pipeline.run_attendee(attendee.id).success
    return attendee


def test_contiguous_batches_follow_partition_order_and_never_span_a_photo_not_wanted():
    order = ["a", "b", "x", "c", "d", "e", "f", "g"]
    assert contiguous_batches(["g", "a", "b", "c", "d", "e", "f"], order, size=3) == [
        ["a", "b"],
        ["c", "d", "e"],
        ["f", "g"],
    ]
    assert contiguous_batches(["z"], order) == []  # no partition yet: nothing to run
    assert contiguous_batches([], order) == []


def test_a_batch_run_publishes_each_photo_with_its_own_status_and_metadata(pipeline, event, obama, shared_photos):
    names = ["obama_2.jpg", "noface_dog.jpg", "group_obama_and_biden.jpg", "obama_4.jpg"]
    photos = [pipeline.upload(event, obama, shared_photos[n].path.read_bytes(), n) for n in names]
    corrupt = pipeline.upload(event, obama, shared_photos["obama_3.jpg"].path.read_bytes()[:5000], "broken.jpg")
    ids = [photos[0].id, corrupt.id, *[p.id for p in photos[1:]]]

    result = pipeline.run_batch(ids)

    assert result.success
    assert result.dagster_run.tags["dagster/asset_partition_range_start"] == ids[0]
    statuses = {pid: pipeline.repo.get_photo(pid).status for pid in ids}
    assert statuses[corrupt.id] is PhotoStatus.REJECTED
    assert all(statuses[p.id] is PhotoStatus.PUBLISHED for p in photos)
    verified = partition_metadata(result, "verified_upload")
    assert set(verified) == set(ids)
    assert verified[corrupt.id]["status"] == "rejected" and "truncated" in str(verified[corrupt.id]["reason"]).lower()
    assert verified[ids[0]]["file_name"] == "obama_2.jpg" and verified[ids[0]]["batch_photos"] == 5
    faces = partition_metadata(result, "faces_detected")
    assert [faces[p.id]["faces"] for p in photos] == [shared_photos[n].faces_expected for n in names]
    assert faces[corrupt.id]["step_skipped"] is True
    published = partition_metadata(result, "matches_published")
    assert published[photos[0].id]["matched"] == "Barack Obama"
    assert published[photos[1].id]["matches"] == 0
    matched = sorted(m.photo_id for m in pipeline.repo.list_matches(event.id))
    assert matched == sorted([photos[0].id, photos[2].id, photos[3].id])
    # One run, four steps: the batch's partitions share the run's fixed cost.
    assert len(pipeline.instance.get_runs()) == 2  # the attendee's run and this one


def test_a_photo_that_fails_in_a_batch_is_marked_failed_and_the_rest_go_on(pipeline, event, obama, shared_photos):
    names = ("obama_2.jpg", "biden_1.jpg", "obama_4.jpg")
    first, broken, last = [pipeline.upload(event, obama, shared_photos[n].path.read_bytes(), n) for n in names]
    ids = [first.id, broken.id, last.id]
    pipeline.instance.add_dynamic_partitions(PHOTO_PARTITIONS, ids)
    for photo in (first, last):
        assert pipeline.run_photo(photo.id, [verified_upload]).success
    # Break the middle photo for real: marked verified, but its verified image was never written.
    pipeline.repo.update_photo(broken.id, PhotoStatus.VERIFIED)

    result = pipeline.run_batch(ids, assets=[faces_detected])

    assert result.success
    failed = pipeline.repo.get_photo(broken.id)
    assert failed.status is PhotoStatus.FAILED
    assert failed.reason.startswith("faces_detected: ") and "verified" in failed.reason
    assert [pipeline.repo.get_photo(p.id).status for p in (first, last)] == [PhotoStatus.FACES_DETECTED] * 2
    detected = partition_metadata(result, "faces_detected")
    assert detected[broken.id]["status"] == "failed" and detected[first.id]["faces"] == 1


def test_a_partition_whose_photo_is_unknown_fails_alone(pipeline, event, obama, shared_photos):
    first = pipeline.upload(event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "a.jpg")
    last = pipeline.upload(event, obama, shared_photos["obama_4.jpg"].path.read_bytes(), "b.jpg")
    unknown = "ph_" + "0" * 24
    result = pipeline.run_batch([first.id, unknown, last.id])
    assert result.success
    assert partition_metadata(result, "verified_upload")[unknown]["status"] == "failed"
    assert partition_metadata(result, "matches_published")[unknown]["status"] == "failed"
    assert [pipeline.repo.get_photo(p.id).status for p in (first, last)] == [PhotoStatus.PUBLISHED] * 2


def test_a_failed_batch_run_marks_its_unfinished_photos_failed_and_leaves_finished_ones(pipeline, event, shared_photos):
    guest = pipeline.repo.add_attendee(event.id, "Guest", True, None, None)
    done = pipeline.upload(event, guest, shared_photos["obama_4.jpg"].path.read_bytes(), "o.jpg")
    pending = pipeline.upload(event, guest, shared_photos["obama_2.jpg"].path.read_bytes(), "p.jpg")
    assert pipeline.run_photo(done.id).success
    pipeline.instance.add_dynamic_partitions(PHOTO_PARTITIONS, [pending.id])
    # A misconfigured deployment fails the whole step: an unknown face model.
    from picsaris_pipeline.resources import FaceEngineResource

    result = dg.materialize(
        [faces_detected],
        instance=pipeline.instance,
        resources={**pipeline.resources, "face_engine": FaceEngineResource(engine="dlib", model_version="no-such")},
        tags=batch_tags([done.id, pending.id]),
        raise_on_error=False,
    )
    assert not result.success
    run_failure_sensor(pipeline, result)
    assert pipeline.repo.get_photo(done.id).status is PhotoStatus.PUBLISHED
    failed = pipeline.repo.get_photo(pending.id)
    assert failed.status is PhotoStatus.FAILED and failed.reason.startswith(f"run {result.run_id[:8]} failed")
