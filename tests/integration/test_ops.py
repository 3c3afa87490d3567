"""What ops see and act on: pictures of what was found, asset checks, and failed runs marked failed."""

import io
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
from PIL import Image

from picsaris_pipeline.assets.photos import faces_detected
from picsaris_pipeline.db import schema as t
from picsaris_pipeline.definitions import defs
from picsaris_pipeline.domain.keys import thumbnail_key
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.domain.thumbnails import DrawnFace, draw
from picsaris_pipeline.faces.dlib_engine import DEFAULT_MODEL
from picsaris_pipeline.services import health
from picsaris_pipeline.services.thumbnail_route import route_port
from tests.support.db_helpers import update_rows
from tests.support.pipeline_helpers import metadata, run_failure_sensor

GREEN = np.array([46, 160, 67])


def _obama(pipeline, event, shared_photos):
    attendee = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    assert pipeline.run_attendee(attendee.id).success
    return attendee


def test_materializations_link_a_thumbnail_and_carry_no_picture_or_name(pipeline, event, shared_photos):
    obama = _obama(pipeline, event, shared_photos)
    photo = pipeline.upload(event, obama, shared_photos["group_two_people.jpg"].path.read_bytes(), "two.jpg")
    result = pipeline.run_photo(photo.id)
    for asset in ("verified_upload", "faces_detected", "matches_published"):
        assert metadata(result, asset)["picture"] == f"http://127.0.0.1:{route_port()}/photos/{photo.id}/thumb.jpg"
    published = metadata(result, "matches_published")
    assert published["matched_attendee_ids"] == [obama.id] and "preview" not in published
    assert not any(
        text in repr(metadata(result, asset))
        for asset in ("verified_upload", "faces_detected", "embeddings_stored", "matches_published")
        for text in ("two.jpg", "Barack Obama", "base64", "boxes")
    )
    thumb = Image.open(io.BytesIO(pipeline.store.get(thumbnail_key(event.id, photo.id)))).convert("RGB")
    assert max(thumb.size) == 1024
    # The matched face is boxed and labelled in green.
    assert (np.abs(np.asarray(thumb, dtype=int) - GREEN).sum(axis=2) < 60).sum() > 200


def test_boxes_are_scaled_from_full_size_to_the_thumbnail():
    image = Image.new("RGB", (2000, 1000), "white")
    small = draw(image, [DrawnFace(1000, 500, 1200, 700)], 200, image.size)
    assert small.size == (200, 100)
    pixels = np.asarray(small)
    assert (pixels[50:70, 100] != 255).any()  # left edge of the box at x=100 in the thumbnail


def test_consent_check_fails_when_a_match_names_someone_without_consent(pipeline, event, shared_photos):
    obama = _obama(pipeline, event, shared_photos)
    photo = pipeline.upload(event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "o.jpg")
    assert pipeline.run_photo(photo.id).success
    assert health.matches_without_consent(pipeline.repo).passed
    # Consent withdrawn without the matches being removed: exactly what the check exists to catch.
    update_rows(pipeline.repo, t.attendees, consent=False)
    finding = health.matches_without_consent(pipeline.repo)
    assert not finding.passed and finding.count == 1 and photo.id in finding.examples[0]


def test_stuck_photos_are_reported_after_the_bound(pipeline, event, shared_photos):
    guest = pipeline.repo.add_attendee(event.id, "Guest", True, None, None)
    photo = pipeline.upload(event, guest, shared_photos["obama_4.jpg"].path.read_bytes(), "o.jpg")
    assert health.stuck_photos(pipeline.repo, timedelta(minutes=15)).passed
    later = datetime.now(UTC) + timedelta(minutes=16)
    finding = health.stuck_photos(pipeline.repo, timedelta(minutes=15), now=later)
    assert not finding.passed and finding.examples[0].startswith(photo.id)


def test_missing_references_counts_only_consenting_attendees(pipeline, event, shared_photos):
    pipeline.attendee(event, "No consent", shared_photos["biden_1.jpg"].path, consent=False)
    waiting = pipeline.attendee(event, "Waiting", shared_photos["biden_2.jpg"].path)
    finding = health.missing_references(pipeline.repo, DEFAULT_MODEL)
    assert finding.count == 1 and waiting.id in finding.examples[0]


def test_the_health_checks_job_evaluates_every_check(pipeline):
    job = defs.resolve_job_def("ops_health_checks")
    result = job.execute_in_process(instance=pipeline.instance, resources=pipeline.resources)
    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert evaluations == {
        "no_matches_without_consent": True,
        "no_stuck_photos": True,
        "references_complete": True,
        "realtime_outbox_backlog": True,
        "no_version_mixing": True,
        "active_version_complete": True,
        "vectors_well_formed": True,
        "no_face_data_without_consent": True,
    }


def test_photo_runs_do_not_carry_the_checks():
    node_names = {node.name for node in defs.resolve_job_def("process_photo").graph.node_defs}
    assert node_names == {"verified_upload", "faces_detected", "embeddings_stored", "matches_published"}


def test_a_failed_run_marks_its_photo_failed_with_the_error(pipeline, event, shared_photos):
    guest = pipeline.repo.add_attendee(event.id, "Guest", True, None, None)
    photo = pipeline.upload(event, guest, shared_photos["obama_4.jpg"].path.read_bytes(), "o.jpg")
    # Break the run for real: detection finds no verified image to read.
    pipeline.repo.update_photo(photo.id, PhotoStatus.VERIFIED)
    pipeline.instance.add_dynamic_partitions("photos", [photo.id])
    result = dg.materialize(
        [faces_detected],
        partition_key=photo.id,
        instance=pipeline.instance,
        resources=pipeline.resources,
        raise_on_error=False,
    )
    assert not result.success
    run_failure_sensor(pipeline, result)
    failed = pipeline.repo.get_photo(photo.id)
    assert failed.status is PhotoStatus.FAILED and failed.reason.startswith(f"run {result.run_id[:8]} failed")


def test_a_late_failure_does_not_undo_a_published_photo(pipeline, event, shared_photos):
    guest = pipeline.repo.add_attendee(event.id, "Guest", True, None, None)
    photo = pipeline.upload(event, guest, shared_photos["obama_4.jpg"].path.read_bytes(), "o.jpg")
    assert pipeline.run_photo(photo.id).success
    assert pipeline.repo.mark_failed(photo.id, "old run crashed") is False
    assert pipeline.repo.get_photo(photo.id).status is PhotoStatus.PUBLISHED
