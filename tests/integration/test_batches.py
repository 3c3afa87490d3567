"""Batch runs: one Dagster run over a range of photo partitions (bursts, `picsaris process`). Each
photo keeps its own status and metadata, and one bad photo never fails its batch."""

import sqlite3
from contextlib import contextmanager

import dagster as dg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from picsaris_pipeline.assets.photos import faces_detected, verified_upload
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.orchestration.partitions import (
    PHOTO_PARTITIONS,
    batch_tags,
    batched_runs,
    contiguous_batches,
    ensure_partitions,
)
from tests.support.pipeline_helpers import partition_metadata, run_failure_sensor


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


def test_batched_runs_tag_a_lone_photo_as_itself_and_a_batch_by_its_range_per_event():
    order = ["a", "b", "c", "d"]
    photos = [("a", "e1", "u1"), ("b", "e1", "u2"), ("c", "e2", "u3"), ("d", "e1", None)]
    assert batched_runs(photos, order, source="batch") == [
        (
            ["a", "b"],
            {
                "picsaris/event": "e1",
                "picsaris/batch": "2",
                "dagster/asset_partition_range_start": "a",
                "dagster/asset_partition_range_end": "b",
                "picsaris/source": "batch",
            },
        ),
        (["d"], {"picsaris/event": "e1", "picsaris/photo": "d", "picsaris/source": "batch"}),  # no uploader known
        (["c"], {"picsaris/event": "e2", "picsaris/uploader": "u3", "picsaris/photo": "c", "picsaris/source": "batch"}),
    ]


@contextmanager
def another_process_adds_first(keys: list[str]):
    """Between Dagster's read of the existing partitions and its insert, another writer (its own
    SQLite connection, as a second `picsaris process` or the sensor would be) adds `keys`: the
    window in which CI saw the unique key fail. Fires once."""
    pending = list(keys)

    def before_insert(conn, cursor, statement, parameters, context, executemany):
        if not pending or not statement.startswith("INSERT INTO dynamic_partitions"):
            return
        other = sqlite3.connect(conn.engine.url.database)
        with other:
            other.executemany(
                "INSERT INTO dynamic_partitions (partitions_def_name, partition) VALUES (?, ?)",
                [(PHOTO_PARTITIONS, key) for key in pending],
            )
        other.close()
        pending.clear()

    event.listen(Engine, "before_cursor_execute", before_insert)
    try:
        yield
    finally:
        event.remove(Engine, "before_cursor_execute", before_insert)


def test_partitions_another_process_adds_at_the_same_moment_are_not_an_error(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(PHOTO_PARTITIONS, ["a"])
        with another_process_adds_first(["c"]), pytest.raises(IntegrityError):
            instance.add_dynamic_partitions(PHOTO_PARTITIONS, ["b", "c"])  # Dagster alone fails here

        with another_process_adds_first(["e"]):
            ensure_partitions(instance, PHOTO_PARTITIONS, ["a", "d", "e", "f", "d"])

        assert instance.get_dynamic_partitions(PHOTO_PARTITIONS) == ["a", "c", "e", "d", "f"]


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
    assert verified[ids[0]]["uploader_id"] == obama.id and verified[ids[0]]["batch_photos"] == 5
    assert "file_name" not in verified[ids[0]]  # guest-supplied text stays out of Dagster
    faces = partition_metadata(result, "faces_detected")
    assert [faces[p.id]["faces"] for p in photos] == [shared_photos[n].faces_expected for n in names]
    assert faces[corrupt.id]["step_skipped"] is True
    published = partition_metadata(result, "matches_published")
    assert published[photos[0].id]["matched_attendee_ids"] == [obama.id]
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
    from picsaris_pipeline.orchestration.resources import FaceEngineResource

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


def test_a_photo_failing_its_re_embedding_in_a_batch_is_reported_and_stays_published(
    picsaris_home, shared_photos, monkeypatch
):
    import subprocess
    import sys
    from pathlib import Path

    from picsaris_pipeline.domain.keys import verified_image_key
    from picsaris_pipeline.orchestration.app import App
    from tests.support.cli_runner import picsaris

    event = picsaris("event", "create", "Re-embedding in batches").strip()
    guest = picsaris("attendee", "add", event, "--name", "Obama", "--selfie", str(shared_photos["obama_1.jpg"].path))
    names = ["obama_2.jpg", "obama_3.jpg", "obama_4.jpg", "biden_1.jpg", "noface_dog.jpg", "group_two_people.jpg"]
    names += ["kit_harington_1.jpg", "rose_leslie_2.jpg"]
    photo_ids = picsaris("upload", event, "--uploader", guest.strip(), *[str(shared_photos[n].path) for n in names])
    photo_ids = photo_ids.split()
    picsaris("process")
    app = App.from_env()
    broken = photo_ids[2]  # its verified image is gone: re-embedding cannot read the pixels
    app.store.delete(verified_image_key(event, broken))

    # A separate process, as on-call runs it (nothing cached from the first pass).
    env = {**os_environ(), "PICSARIS_FACE_MODEL": "dlib-resnet-v1-5pt-j4", "PICSARIS_WORKERS": "1"}
    picsaris_bin = Path(sys.executable).parent / "picsaris"
    result = subprocess.run([str(picsaris_bin), "reembed"], env=env, capture_output=True, text=True, timeout=600)

    assert result.returncode == 1, result.stderr
    assert "re-embedded 1 attendee(s) and 7 photo(s)" in result.stderr
    # A re-embedding detects again first (a version may name another detector): that step finds no pixels.
    assert f"failed: photo {broken}: faces_detected: " in result.stderr
    assert app.repo.get_photo(broken).status is PhotoStatus.PUBLISHED  # guests keep its j0 matches
    runs = [r for r in app.instance.get_runs() if r.job_name == "reembed_photo"]
    assert any("picsaris/batch" in r.tags for r in runs) and all(r.status.value == "SUCCESS" for r in runs)


def os_environ() -> dict[str, str]:
    import os

    return dict(os.environ)
