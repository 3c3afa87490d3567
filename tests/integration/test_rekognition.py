"""The Rekognition engine through real boto3 over HTTP, against tests/support/rekognition_server.py (which
validates every request against botocore's service model and finds faces with dlib), with
scripted throttling, internal errors, bad images and access denied."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.errors import BadInputError, ConfigurationError, RetryableError
from picsaris_pipeline.faces.rekognition import (
    MAX_IMAGE_BYTES,
    RekognitionEngine,
    fit_for_rekognition,
    make_client,
)
from tests.support.cli_runner import found_by_name, picsaris, shown_matches, sign_up
from tests.support.photo_sets import EXPECTED, LATE_JOINER, SELFIES
from tests.support.pipeline_helpers import metadata
from tests.support.rekognition_server import RekognitionServer, cli_on_local_rekognition

EVENT = "01JEVENT0000000000000000AA"


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def server(aws_env):
    with RekognitionServer() as running:
        yield running
    assert running.state.validation_errors == [], "requests AWS would refuse"


def engine_for(server: RekognitionServer, max_attempts: int = 4) -> RekognitionEngine:
    return RekognitionEngine(make_client("us-east-1", server.url, max_attempts=max_attempts), "rekognition-7.0")


def jpeg(path) -> bytes:
    image = Image.open(path).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


# -- the engine on its own ------------------------------------------------------------------


def _event_with_obama(p, shared_photos):
    """An event on the Rekognition engine where Barack Obama signed up with his selfie."""
    event = p.event()
    obama = p.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    p.run_attendee(obama.id)
    return event, obama


def test_a_group_photo_is_indexed_with_one_face_id_per_face_in_pixel_boxes(server, shared_photos):
    photo = shared_photos["group_two_people.jpg"]
    size = Image.open(photo.path).size
    faces = engine_for(server).index_photo(EVENT, "01JPHOTO00000000000000000A", jpeg(photo.path), size)
    assert len(faces) == photo.faces_expected == 2
    assert len({face.external_face_id for face in faces}) == 2
    for face in faces:
        assert 0 <= face.box.left < face.box.right <= size[0] and 0 <= face.box.top < face.box.bottom <= size[1]
    assert faces[0].box.area >= faces[1].box.area  # largest first, as dlib's are
    (create,) = [params for name, params in server.state.calls if name == "CreateCollection"]
    assert create["CollectionId"] == f"picsaris-{EVENT}-v7_0"  # one collection per event and face model


def test_an_enrolled_attendee_is_found_by_search_users_and_a_stranger_is_not(server, shared_photos):
    engine = engine_for(server)
    enrollment = engine.enroll(EVENT, "01JATTENDEE0000000000000AA", jpeg(shared_photos["obama_1.jpg"].path))
    assert enrollment.external_user_id == "01JATTENDEE0000000000000AA"
    calls = [name for name, _ in server.state.calls]
    assert calls[-3:] == ["IndexFaces", "CreateUser", "AssociateFaces"]
    (obama,) = engine.index_photo(EVENT, "p-obama", jpeg(shared_photos["obama_2.jpg"].path), (1, 1))
    (kit,) = engine.index_photo(EVENT, "p-kit", jpeg(shared_photos["kit_harington_1.jpg"].path), (1, 1))
    found = engine.search_users(EVENT, obama.external_face_id, 0.80)
    assert [user for user, _ in found] == ["01JATTENDEE0000000000000AA"] and 0.8 <= found[0][1] <= 1.0
    assert engine.search_users(EVENT, kit.external_face_id, 0.80) == []
    assert engine.search_photos(EVENT, enrollment.external_face_id, 0.80) == {"p-obama"}  # never the selfie


def test_enrolling_again_reuses_the_user(server, shared_photos):
    engine = engine_for(server)
    selfie = jpeg(shared_photos["obama_1.jpg"].path)
    first = engine.enroll(EVENT, "01JATTENDEE0000000000000AA", selfie)
    second = engine.enroll(EVENT, "01JATTENDEE0000000000000AA", selfie)
    assert first.external_user_id == second.external_user_id
    collection = server.state.collections[f"picsaris-{EVENT}-v7_0"]
    assert collection.users["01JATTENDEE0000000000000AA"] == {first.external_face_id, second.external_face_id}


def test_throttling_is_retried_by_botocore_with_backoff_until_it_passes(server, shared_photos):
    engine = engine_for(server, max_attempts=4)
    engine.index_photo(EVENT, "warm-up", jpeg(shared_photos["obama_2.jpg"].path), (1, 1))  # creates the collection
    server.state.fail("IndexFaces", "ThrottlingException", times=2)
    server.state.fail("IndexFaces", "ProvisionedThroughputExceededException", times=1)
    before = server.state.count("IndexFaces")
    faces = engine.index_photo(EVENT, "p1", jpeg(shared_photos["obama_3.jpg"].path), (1, 1))
    assert len(faces) == 1
    assert server.state.count("IndexFaces") - before == 4  # three refused, the fourth went through


def test_an_internal_error_is_retried_too(server, shared_photos):
    engine = engine_for(server)
    server.state.fail("CreateCollection", "InternalServerError", times=1)
    assert len(engine.index_photo(EVENT, "p1", jpeg(shared_photos["obama_3.jpg"].path), (1, 1))) == 1
    assert server.state.count("CreateCollection") == 2


def test_a_throttling_storm_longer_than_the_attempts_is_a_retryable_error_for_the_step(server, shared_photos):
    engine = engine_for(server, max_attempts=2)
    server.state.fail("CreateCollection", "ThrottlingException", times=5)
    with pytest.raises(RetryableError, match="ThrottlingException"):
        engine.index_photo(EVENT, "p1", jpeg(shared_photos["obama_3.jpg"].path), (1, 1))


def test_an_image_rekognition_cannot_read_is_bad_input_and_never_retried(server):
    engine = engine_for(server)
    with pytest.raises(BadInputError, match="InvalidImageFormatException"):
        engine.index_photo(EVENT, "p1", b"GIF89a not really", (1, 1))
    assert server.state.count("IndexFaces") == 1


def test_access_denied_is_a_configuration_error(server, shared_photos):
    server.state.fail("CreateCollection", "AccessDeniedException")
    with pytest.raises(ConfigurationError, match=r"AccessDeniedException.*IAM"):
        engine_for(server).index_photo(EVENT, "p1", jpeg(shared_photos["obama_3.jpg"].path), (1, 1))
    assert server.state.count("CreateCollection") == 1


def test_a_collection_of_another_face_model_is_refused_not_mixed(aws_env, shared_photos):
    with (
        RekognitionServer(face_model_version="8.0") as newer,
        pytest.raises(ConfigurationError, match=r"PICSARIS_FACE_MODEL=rekognition-8\.0"),
    ):
        engine_for(newer).index_photo(EVENT, "p1", jpeg(shared_photos["obama_3.jpg"].path), (1, 1))


def test_an_unreachable_endpoint_is_retryable(aws_env):
    engine = RekognitionEngine(make_client("us-east-1", "http://127.0.0.1:9", max_attempts=1))
    with pytest.raises(RetryableError, match="cannot reach"):
        engine.search_users(EVENT, "face", 0.8)


def test_photos_over_five_megabytes_are_re_encoded_below_the_limit():
    noise = np.random.default_rng(7).integers(0, 255, (2400, 2400, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, format="JPEG", quality=100)
    assert len(out.getvalue()) > MAX_IMAGE_BYTES
    fitted = fit_for_rekognition(out.getvalue())
    assert len(fitted) <= MAX_IMAGE_BYTES and Image.open(io.BytesIO(fitted)).format == "JPEG"


def test_rekognition_signs_with_its_own_keys_not_the_buckets_r2_token(server, monkeypatch, shared_photos):
    from picsaris_pipeline.settings import Settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "r2-token-for-the-bucket")
    monkeypatch.setenv("PICSARIS_REKOGNITION_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("PICSARIS_REKOGNITION_ACCESS_KEY_ID", "AKIAREKOGNITIONONLY")
    monkeypatch.setenv("PICSARIS_REKOGNITION_SECRET_ACCESS_KEY", "secret")
    RekognitionEngine._instances.clear()
    engine = RekognitionEngine.shared(Settings.from_env())
    engine.index_photo(EVENT, "p1", jpeg(shared_photos["obama_3.jpg"].path), (1, 1))
    assert server.state.access_keys == {"AKIAREKOGNITIONONLY"}
    monkeypatch.delenv("PICSARIS_REKOGNITION_SECRET_ACCESS_KEY")
    RekognitionEngine._instances.clear()
    with pytest.raises(ConfigurationError, match="or neither"):
        RekognitionEngine.shared(Settings.from_env())


def test_a_region_is_required_without_an_endpoint():
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        make_client(None)


# -- the asset graph on Rekognition -----------------------------------------------------------
@pytest.fixture
def rekognition_pipeline(pipeline, server, monkeypatch):
    from picsaris_pipeline.orchestration.resources import FaceEngineResource

    monkeypatch.setenv("PICSARIS_REKOGNITION_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    RekognitionEngine._instances.clear()
    pipeline.resources["face_engine"] = FaceEngineResource(engine="rekognition")
    yield pipeline
    RekognitionEngine._instances.clear()


def test_the_photo_graph_indexes_searches_and_matches_on_rekognition(rekognition_pipeline, server, shared_photos):
    p = rekognition_pipeline
    event = p.event()
    obama = p.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    rose = p.attendee(event, "Rose Leslie", shared_photos["rose_leslie_1.jpg"].path, consent=False)
    assert p.run_attendee(obama.id).success and p.run_attendee(rose.id).success
    assert p.repo.get_attendee(rose.id).reference_status.value == "no_consent"
    assert [params["UserId"] for name, params in server.state.calls if name == "CreateUser"] == [obama.id]

    photo = p.upload(event, obama, shared_photos["group_two_people.jpg"].path.read_bytes(), "group.jpg")
    result = p.run_photo(photo.id)
    assert result.success
    detected = metadata(result, "faces_detected")
    assert detected["faces"] == 2 and detected["collection"] == f"picsaris-{event.id}-v7_0"
    stored = metadata(result, "embeddings_stored")
    assert "no vectors" in stored["representation"] and len(stored["engine_face_ids"]) == 2
    published = metadata(result, "matches_published")
    assert published["matched_attendee_ids"] == [obama.id] and published["model_version"] == "rekognition-7.0"
    (match,) = p.repo.list_matches(event.id)
    assert match.attendee_id == obama.id and match.similarity >= 0.8 and match.model_version == "rekognition-7.0"
    assert server.state.count("SearchUsers") == 2  # one per face


def test_a_rerun_replaces_the_photos_faces_in_the_collection_instead_of_adding(
    rekognition_pipeline, server, shared_photos
):
    p = rekognition_pipeline
    event, obama = _event_with_obama(p, shared_photos)
    photo = p.upload(event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "obama_2.jpg")
    assert p.run_photo(photo.id).success
    collection = server.state.collections[f"picsaris-{event.id}-v7_0"]
    faces_after_first = len(collection.faces)
    p.repo.reset_for_rerun([photo.id])
    assert p.run_photo(photo.id).success
    assert len(collection.faces) == faces_after_first
    assert len(p.repo.list_matches(event.id)) == 1


def test_throttled_search_is_retried_and_the_photo_still_publishes(rekognition_pipeline, server, shared_photos):
    p = rekognition_pipeline
    event, obama = _event_with_obama(p, shared_photos)
    photo = p.upload(event, obama, shared_photos["obama_3.jpg"].path.read_bytes(), "obama_3.jpg")
    server.state.fail("SearchUsers", "ThrottlingException", times=2)
    assert p.run_photo(photo.id).success
    assert p.repo.get_photo(photo.id).status is PhotoStatus.PUBLISHED
    assert [m.attendee_id for m in p.repo.list_matches(event.id)] == [obama.id]


def test_an_image_rekognition_refuses_ends_rejected_and_the_next_photo_goes_on(
    rekognition_pipeline, server, shared_photos
):
    p = rekognition_pipeline
    event, obama = _event_with_obama(p, shared_photos)
    refused = p.upload(event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "obama_2.jpg")
    fine = p.upload(event, obama, shared_photos["obama_3.jpg"].path.read_bytes(), "obama_3.jpg")
    server.state.fail("IndexFaces", "InvalidImageFormatException")
    assert p.run_photo(refused.id).success  # recorded, not crashed
    rejected = p.repo.get_photo(refused.id)
    assert rejected.status is PhotoStatus.REJECTED and "InvalidImageFormatException" in (rejected.reason or "")
    assert server.state.count("IndexFaces") == 2  # the selfie, then the refused photo once: never retried
    assert p.run_photo(fine.id).success and p.repo.get_photo(fine.id).status is PhotoStatus.PUBLISHED


def test_access_denied_fails_the_step_without_retries(rekognition_pipeline, server, shared_photos):
    p = rekognition_pipeline
    event = p.event()
    obama = p.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    photo = p.upload(event, obama, shared_photos["obama_3.jpg"].path.read_bytes(), "obama_3.jpg")
    server.state.fail("CreateCollection", "AccessDeniedException")
    result = p.run_photo(photo.id)
    assert not result.success
    assert server.state.count("CreateCollection") == 1  # no step retries for a configuration error


def test_erasure_removes_faces_and_users_from_the_collection(rekognition_pipeline, server, shared_photos):
    from picsaris_pipeline.orchestration import erasure

    p = rekognition_pipeline
    event = p.event()
    obama = p.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    kit = p.attendee(event, "Kit Harington", shared_photos["kit_harington_2.jpg"].path)
    p.run_attendee(obama.id)
    p.run_attendee(kit.id)
    photo = p.upload(event, kit, shared_photos["group_two_people.jpg"].path.read_bytes(), "group.jpg")
    assert p.run_photo(photo.id).success
    collection = server.state.collections[f"picsaris-{event.id}-v7_0"]
    engine = p.resources["face_engine"].get()
    erasure.delete_photo(p.repo, p.store, p.instance, photo.id, engine)
    assert [f for f in collection.faces.values() if f.external_image_id == photo.id] == []
    erasure.delete_attendee(p.repo, p.store, p.instance, obama.id, engine)
    assert obama.id not in collection.users
    assert [f for f in collection.faces.values() if f.external_image_id == f"selfie:{obama.id}"] == []
    assert p.repo.engine_users_of(obama.id) == []


# -- the whole event through the CLI on Rekognition ------------------------------------------
def test_the_shared_event_through_the_cli_finds_the_same_people_on_rekognition(
    server, shared_photos, picsaris_home, monkeypatch
):
    cli_on_local_rekognition(monkeypatch, server)
    RekognitionEngine._instances.clear()
    assert picsaris("models").split() == ["rekognition-7.0"]
    event_id = picsaris("event", "create", "Shared faces on Rekognition").strip()
    attendees = sign_up(event_id, SELFIES, shared_photos)
    held = {selfie for selfie, _ in SELFIES.values()} | {LATE_JOINER[1]}
    uploads = [str(p.path) for name, p in sorted(shared_photos.items()) if name not in held]
    picsaris("upload", event_id, "--uploader", attendees["Kit Harington"], *uploads)
    picsaris("process")
    picsaris("attendee", "add", event_id, "--name", LATE_JOINER[0], "--selfie", str(shared_photos[LATE_JOINER[1]].path))
    picsaris("process", "--event", event_id)

    rows = shown_matches(event_id)
    # Rekognition matches server-side under its plain threshold (no margin, no candidate tier), so
    # alex_lacamoire_1.png, only proposed to him under the local policy, is a match here.
    expected = {**EXPECTED, "Alex Lacamoire": EXPECTED["Alex Lacamoire"] | {"alex_lacamoire_1.png"}}
    assert found_by_name(rows) == expected  # the late joiner too, found with SearchFaces from the selfie
    assert {row["model_version"] for row in rows} == {"rekognition-7.0"}
    photos = json.loads(picsaris("photos", event_id, "--format", "json"))
    assert {row["status"] for row in photos} == {"published"}
    assert {row["file_name"]: row["faces"] for row in photos} == {
        row["file_name"]: shared_photos[row["file_name"]].faces_expected for row in photos
    }
    # Billing: one IndexFaces per photo and per consenting selfie, one SearchUsers per face.
    faces = sum(row["faces"] for row in photos)
    assert server.state.count("IndexFaces") == len(uploads) + 5
    assert server.state.count("SearchUsers") >= faces
    assert os.environ["PICSARIS_FACE_ENGINE"] == "rekognition"
    RekognitionEngine._instances.clear()
