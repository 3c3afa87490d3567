"""The asset graph through dg.materialize on a Dagster test instance, with real photos and dlib."""

import io

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from picsaris_pipeline.assets import PHOTO_ASSETS
from picsaris_pipeline.assets.outcomes import NOT_A_DUPLICATE, UPLOAD_ACCEPTED
from picsaris_pipeline.db.schema import face_vectors, faces, matches
from picsaris_pipeline.definitions import build_definitions
from picsaris_pipeline.domain.keys import thumbnail_key, verified_image_key
from picsaris_pipeline.domain.match_policy import DEFAULT_POLICY
from picsaris_pipeline.domain.model import PhotoStatus, ReferenceStatus
from picsaris_pipeline.domain.thumbnails import MATCHED, THUMB_SIDE, UNMATCHED
from picsaris_pipeline.faces.dlib_engine import DEFAULT_MODEL
from picsaris_pipeline.orchestration.resources import DatabaseResource
from tests.support.db_helpers import count_rows
from tests.support.pipeline_helpers import metadata


@pytest.fixture
def obama(pipeline, event, shared_photos):
    attendee = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    assert pipeline.run_attendee(attendee.id).success
    return attendee


def test_a_real_photo_is_verified_detected_embedded_and_matched(pipeline, event, obama, shared_photos):
    photo = pipeline.upload(event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "obama_2.jpg")
    result = pipeline.run_photo(photo.id)
    assert result.success
    assert pipeline.repo.get_photo(photo.id).status is PhotoStatus.PUBLISHED
    assert metadata(result, "verified_upload")["status"] == "verified"
    assert metadata(result, "faces_detected")["faces"] == 1
    assert metadata(result, "embeddings_stored")["model_version"] == DEFAULT_MODEL
    published = metadata(result, "matches_published")
    assert published["matched_attendee_ids"] == [obama.id] and published["matches"] == 1
    assert "timings_ms" in published and published["realtime_messages"] == 2
    assert published["min_similarity"] == DEFAULT_POLICY.min_similarity == 0.525  # rounded for people, no float noise
    assert pipeline.store.head(verified_image_key(event.id, photo.id)) is not None


def test_attendee_reference_metadata_names_the_model(pipeline, event, shared_photos):
    attendee = pipeline.attendee(event, "Joe Biden", shared_photos["biden_2.jpg"].path)
    result = pipeline.run_attendee(attendee.id)
    assert metadata(result, "attendee_reference")["reference_status"] == "ready"
    assert metadata(result, "attendee_reference")["model_version"] == DEFAULT_MODEL


def test_a_corrupt_photo_ends_rejected_and_its_run_succeeds(pipeline, event, obama, shared_photos):
    data = shared_photos["obama_3.jpg"].path.read_bytes()[:5000]
    photo = pipeline.upload(event, obama, data, "broken.jpg")
    result = pipeline.run_photo(photo.id)
    assert result.success
    stored = pipeline.repo.get_photo(photo.id)
    assert stored.status is PhotoStatus.REJECTED and "corrupt or truncated" in stored.reason
    assert metadata(result, "verified_upload")["reason"] == stored.reason
    assert metadata(result, "matches_published")["step_skipped"] is True


def _outcomes(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str | None], dg.AssetCheckEvaluation]:
    """The outcome checks' evaluations of a run, by (check, photo partition)."""
    return {(e.check_name, e.partition): e for e in result.get_asset_check_evaluations()}


def test_a_rejected_photo_fails_the_upload_accepted_check_on_its_own_partition(pipeline, event, obama, shared_photos):
    photo = pipeline.upload(event, obama, shared_photos["obama_3.jpg"].path.read_bytes()[:5000], "broken.jpg")
    outcomes = _outcomes(pipeline.run_photo(photo.id))
    accepted = outcomes[(UPLOAD_ACCEPTED, photo.id)]
    assert not accepted.passed and accepted.severity is dg.AssetCheckSeverity.ERROR
    assert accepted.description == f"rejected: {pipeline.repo.get_photo(photo.id).reason}"
    # It names the partition's verified_upload: the UI's partition list counts it as current.
    (upload,) = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("verified_upload"), asset_partitions=[photo.id]), limit=1
    ).records
    assert accepted.target_materialization_data.storage_id == upload.storage_id
    assert outcomes[(NOT_A_DUPLICATE, photo.id)].passed


def test_a_batch_marks_each_photo_partition_with_its_own_outcome(pipeline, event, obama, shared_photos):
    good_bytes = shared_photos["obama_2.jpg"].path.read_bytes()
    good = pipeline.upload(event, obama, good_bytes, "good.jpg")
    broken = pipeline.upload(event, obama, good_bytes[:5000], "broken.jpg")
    copy = pipeline.repo.create_photo(
        event.id, obama.id, "copy.jpg", "image/jpeg", good.declared_sha256, len(good_bytes), "jpg"
    )
    pipeline.store.put(copy.object_key, good_bytes)
    pipeline.repo.update_photo(copy.id, PhotoStatus.UPLOADED)
    result = pipeline.run_batch([good.id, broken.id, copy.id])
    assert result.success  # a corrupt photo is an outcome: its batch-mates go on
    outcomes = _outcomes(result)
    passed = {key: evaluation.passed for key, evaluation in outcomes.items()}
    assert passed == {
        (UPLOAD_ACCEPTED, good.id): True,
        (NOT_A_DUPLICATE, good.id): True,
        (UPLOAD_ACCEPTED, broken.id): False,
        (NOT_A_DUPLICATE, broken.id): True,
        (UPLOAD_ACCEPTED, copy.id): True,
        (NOT_A_DUPLICATE, copy.id): False,
    }
    assert outcomes[(NOT_A_DUPLICATE, copy.id)].severity is dg.AssetCheckSeverity.WARN
    assert pipeline.repo.get_photo(good.id).status is PhotoStatus.PUBLISHED


def test_the_picture_is_large_enough_to_read_and_boxes_unmatched_faces_in_orange(pipeline, event, obama, shared_photos):
    photo = pipeline.upload(event, obama, shared_photos["group_two_people.jpg"].path.read_bytes(), "two.jpg")
    assert metadata(pipeline.run_photo(photo.id), "matches_published")["picture"].endswith(f"/{photo.id}/thumb.jpg")
    picture = np.asarray(Image.open(io.BytesIO(pipeline.store.get(thumbnail_key(event.id, photo.id)))), dtype=int)
    assert max(picture.shape[:2]) == THUMB_SIDE
    for colour in (MATCHED, UNMATCHED):  # one guest matched, one stranger
        assert (np.abs(picture - np.array(colour)).sum(axis=2) < 60).sum() > 200


def test_bytes_that_do_not_match_the_declared_sha256_are_rejected(pipeline, event, obama, shared_photos):
    data = shared_photos["biden_1.jpg"].path.read_bytes()
    photo = pipeline.upload(event, obama, data, "biden.jpg", declared_sha="0" * 64)
    assert pipeline.run_photo(photo.id).success
    stored = pipeline.repo.get_photo(photo.id)
    assert stored.status is PhotoStatus.REJECTED and "SHA-256 mismatch" in stored.reason


def test_an_object_missing_from_the_bucket_is_rejected_not_retried(pipeline, event, obama, shared_photos):
    photo = pipeline.upload(event, obama, shared_photos["obama_4.jpg"].path.read_bytes(), "gone.jpg")
    pipeline.store.delete(photo.object_key)
    assert pipeline.run_photo(photo.id).success
    assert pipeline.repo.get_photo(photo.id).reason == "the uploaded file is missing from the bucket"


def test_exact_duplicate_in_the_event_ends_duplicate_pointing_at_the_first(pipeline, event, obama, shared_photos):
    data = shared_photos["obama_4.jpg"].path.read_bytes()
    first = pipeline.upload(event, obama, data, "a.jpg")
    # Two phones racing past intake's duplicate check: both records exist, the second must not be matched.
    second = pipeline.repo.create_photo(
        event.id, obama.id, "b.jpg", "image/jpeg", first.declared_sha256, len(data), "jpg"
    )
    pipeline.store.put(second.object_key, data)
    pipeline.repo.update_photo(second.id, PhotoStatus.UPLOADED)
    assert pipeline.run_photo(first.id).success and pipeline.run_photo(second.id).success
    duplicate = pipeline.repo.get_photo(second.id)
    assert duplicate.status is PhotoStatus.DUPLICATE and duplicate.duplicate_of == first.id
    assert pipeline.repo.match_counts(event.id) == {first.id: 1}


def test_rerunning_a_photo_duplicates_no_faces_vectors_or_matches(pipeline, event, obama, shared_photos):
    photo = pipeline.upload(event, obama, shared_photos["group_two_people.jpg"].path.read_bytes(), "two.jpg")
    for _ in range(2):
        assert pipeline.run_photo(photo.id).success
    assert count_rows(pipeline.repo, faces, photo_id=photo.id) == 2
    assert count_rows(pipeline.repo, face_vectors, photo_id=photo.id) == 2
    assert count_rows(pipeline.repo, matches, photo_id=photo.id) == 1


def test_a_late_joiner_is_matched_in_photos_processed_before_they_signed_up(pipeline, event, obama, shared_photos):
    photo = pipeline.upload(event, obama, shared_photos["group_two_people.jpg"].path.read_bytes(), "two.jpg")
    assert pipeline.run_photo(photo.id).success
    assert [m.attendee_name for m in pipeline.repo.list_matches(event.id)] == ["Barack Obama"]
    biden = pipeline.attendee(event, "Joe Biden", shared_photos["biden_2.jpg"].path)
    result = pipeline.run_attendee(biden.id)
    assert metadata(result, "attendee_matches")["photos_matched"] == 1
    assert sorted(m.attendee_name for m in pipeline.repo.list_matches(event.id)) == ["Barack Obama", "Joe Biden"]


def test_a_late_joiners_name_is_drawn_on_the_pictures_they_are_matched_in(pipeline, event, shared_photos):
    uploader = pipeline.attendee(event, "Photographer", shared_photos["biden_2.jpg"].path, consent=False)
    photo = pipeline.upload(event, uploader, shared_photos["obama_2.jpg"].path.read_bytes(), "obama.jpg")
    assert pipeline.run_photo(photo.id).success

    def matched_pixels() -> int:
        picture = np.asarray(Image.open(io.BytesIO(pipeline.store.get(thumbnail_key(event.id, photo.id)))), dtype=int)
        return int((np.abs(picture - np.array(MATCHED)).sum(axis=2) < 60).sum())

    assert matched_pixels() < 50  # a stranger's orange box only
    obama = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    result = pipeline.run_attendee(obama.id)
    assert metadata(result, "attendee_matches")["pictures_redrawn"] == 1
    assert matched_pixels() > 200


def test_attendees_without_consent_are_never_matched(pipeline, event, obama, shared_photos):
    biden = pipeline.attendee(event, "Joe Biden", shared_photos["biden_2.jpg"].path, consent=False)
    assert pipeline.run_attendee(biden.id).success
    photo = pipeline.upload(event, obama, shared_photos["biden_1.jpg"].path.read_bytes(), "biden.jpg")
    assert pipeline.run_photo(photo.id).success
    assert pipeline.repo.list_matches(event.id) == []


def test_a_selfie_without_a_face_marks_the_attendee_rejected(pipeline, event, shared_photos):
    attendee = pipeline.attendee(event, "Dog", shared_photos["noface_dog.jpg"].path)
    result = pipeline.run_attendee(attendee.id)
    assert result.success
    stored = pipeline.repo.get_attendee(attendee.id)
    assert stored.reference_status is ReferenceStatus.REJECTED and stored.reason == "no face found in the selfie"


def test_an_exif_rotated_phone_photo_is_turned_upright_before_detection(pipeline, event, obama, shared_photos):
    upright = Image.open(shared_photos["obama_4.jpg"].path)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated 90° clockwise; viewers turn it back
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_270).save(buffer, "JPEG", quality=92, exif=exif)
    photo = pipeline.upload(event, obama, buffer.getvalue(), "IMG_1234.JPG")
    result = pipeline.run_photo(photo.id)
    assert metadata(result, "verified_upload")["exif_orientation"] == 8
    assert metadata(result, "matches_published")["matched_attendee_ids"] == [obama.id]


def test_no_face_data_is_kept_for_an_attendee_without_consent(pipeline, event, shared_photos):
    shy = pipeline.attendee(event, "Joe Biden", shared_photos["biden_2.jpg"].path, consent=False)
    result = pipeline.run_attendee(shy.id)
    assert metadata(result, "attendee_reference")["reference_status"] == "no_consent"
    assert pipeline.repo.attendee_vector(shy.id, DEFAULT_MODEL) is None
    assert pipeline.repo.attendees_needing_reference(DEFAULT_MODEL) == []


def test_a_selfie_not_yet_in_the_bucket_leaves_the_attendee_pending(pipeline, event, shared_photos):
    attendee = pipeline.attendee(event, "Joe Biden", shared_photos["biden_2.jpg"].path)
    pipeline.store.delete(attendee.selfie_key)
    assert pipeline.run_attendee(attendee.id).success
    assert pipeline.repo.get_attendee(attendee.id).reference_status is ReferenceStatus.PENDING


def test_a_late_joiner_is_matched_in_a_photo_still_between_embedding_and_publishing(
    pipeline, event, obama, shared_photos
):
    photo = pipeline.upload(event, obama, shared_photos["biden_1.jpg"].path.read_bytes(), "b.jpg")
    assert pipeline.run_photo(photo.id, PHOTO_ASSETS[:3]).success  # verified, detected, embedded; not matched
    assert pipeline.repo.get_photo(photo.id).status is PhotoStatus.EMBEDDED
    biden = pipeline.attendee(event, "Joe Biden", shared_photos["biden_2.jpg"].path)
    assert pipeline.run_attendee(biden.id).success
    assert [m.attendee_name for m in pipeline.repo.list_matches(event.id)] == ["Joe Biden"]


def test_a_step_whose_database_is_unreachable_is_retried_with_back_off_then_fails(
    pipeline, event, obama, shared_photos
):
    photo = pipeline.upload(event, obama, shared_photos["obama_4.jpg"].path.read_bytes(), "o.jpg")
    unreachable = DatabaseResource(url="postgresql+psycopg2://x@127.0.0.1:1/none?connect_timeout=2")
    result = pipeline.run_photo(photo.id, PHOTO_ASSETS[:1], database=unreachable)
    assert not result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 3


def test_the_lineage_joins_the_photo_attendee_and_event_groups_without_tying_partitions():
    graph = build_definitions().resolve_asset_graph()
    parents = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["matches_published"] == {"embeddings_stored", "attendee_reference"}
    assert parents["event_summary"] == {"matches_published", "attendee_matches"}
    across = [("matches_published", "attendee_reference"), ("event_summary", "matches_published")]
    for child, parent in across:  # no partition mapped: staleness and backfills stay within each group
        mapping = graph.get_partition_mapping(dg.AssetKey(child), dg.AssetKey(parent))
        assert mapping == dg.SpecificPartitionsPartitionMapping([])
