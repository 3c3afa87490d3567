"""Withdrawing consent removes a guest everywhere at once and re-announces the photos without them;
giving it back finds them again. On dlib and on Rekognition (over HTTP, tests/support/rekognition_server.py)."""

from __future__ import annotations

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.domain.model import ReferenceStatus
from picsaris_pipeline.services.consent import give_consent, withdraw_consent
from tests.support.cli_runner import picsaris
from tests.support.db_helpers import count_rows
from tests.support.publishers import RecordingPublisher


def _group_event(pipeline, event, shared_photos):
    obama, biden = pipeline.signed_up(
        event, ("Barack Obama", shared_photos["obama_1.jpg"].path), ("Joe Biden", shared_photos["biden_2.jpg"].path)
    )
    photos = [
        pipeline.upload(event, biden, shared_photos[name].path.read_bytes(), name)
        for name in ("group_two_people.jpg", "obama_2.jpg", "biden_1.jpg")
    ]
    for photo in photos:
        assert pipeline.run_photo(photo.id).success
    return obama, biden, photos


def test_withdrawing_consent_removes_every_match_and_vector_and_re_announces_the_photos(pipeline, event, shared_photos):
    obama, biden, photos = _group_event(pipeline, event, shared_photos)
    engine = pipeline.resources["face_engine"].get()
    assert {m.attendee_id for m in pipeline.repo.list_matches(event.id)} == {obama.id, biden.id}
    gallery = RecordingPublisher()

    rematched = withdraw_consent(pipeline.repo, engine, gallery, obama.id, 0.45)

    assert sorted(rematched) == sorted(p.id for p in photos[:2])  # the two photos he was in
    assert {m.attendee_id for m in pipeline.repo.list_matches(event.id)} == {biden.id}
    assert count_rows(pipeline.repo, t.attendee_vectors, attendee_id=obama.id) == 0
    assert count_rows(pipeline.repo, t.matches, attendee_id=obama.id) == 0
    attendee = pipeline.repo.get_attendee(obama.id)
    assert attendee.consent is False and attendee.reference_status is ReferenceStatus.NO_CONSENT
    # The event's gallery hears the group photo's new guest list: Biden only.
    group_messages = [
        m for m in gallery.sent if m.payload.get("photo_id") == photos[0].id and m.topic.startswith("event:")
    ]
    assert group_messages and group_messages[-1].payload["attendee_ids"] == [biden.id]
    # Running the photos again never brings him back.
    for photo in photos:
        pipeline.repo.reset_for_rerun([photo.id])
        assert pipeline.run_photo(photo.id).success
    assert obama.id not in {m.attendee_id for m in pipeline.repo.list_matches(event.id)}


def test_giving_consent_back_finds_the_guest_again(pipeline, event, shared_photos):
    obama, _, photos = _group_event(pipeline, event, shared_photos)
    engine = pipeline.resources["face_engine"].get()
    withdraw_consent(pipeline.repo, engine, RecordingPublisher(), obama.id, 0.45)
    again = give_consent(pipeline.repo, obama.id).rerun_photo_ids
    assert pipeline.repo.get_attendee(obama.id).reference_status is ReferenceStatus.PENDING
    # His faces' vectors went with the withdrawal: those photos are embedded again.
    assert sorted(again) == sorted(p.id for p in photos[:2])
    assert pipeline.run_attendee(obama.id).success  # reference, then found as a late joiner
    for photo_id in again:
        assert pipeline.run_photo(photo_id).success
    found = {m.photo_id for m in pipeline.repo.list_matches(event.id) if m.attendee_id == obama.id}
    assert found == {photos[0].id, photos[1].id}


def test_the_cli_withdraws_consent(picsaris_home, shared_photos):
    event_id = picsaris("event", "create", "Consent").strip()
    obama = picsaris("attendee", "add", event_id, "--name", "Obama", "--selfie", str(shared_photos["obama_1.jpg"].path))
    obama = obama.strip()
    picsaris("upload", event_id, "--uploader", obama, str(shared_photos["obama_2.jpg"].path))
    picsaris("process")
    assert "Obama" in picsaris("matches", event_id)
    picsaris("attendee", "consent", obama, "--withdraw")
    assert "Obama" not in picsaris("matches", event_id)
    picsaris("process")  # nothing pending brings him back
    assert "Obama" not in picsaris("matches", event_id)
    # The withdrawal deleted his selfie image too: consent comes back with a new one.
    picsaris("attendee", "consent", obama, "--give", "--selfie", str(shared_photos["obama_1.jpg"].path))
    picsaris("process")
    assert "Obama" in picsaris("matches", event_id)


def test_withdrawing_consent_on_rekognition_deletes_the_user_and_selfie_face(
    pipeline, event, shared_photos, monkeypatch
):
    from picsaris_pipeline.faces.rekognition import RekognitionEngine
    from picsaris_pipeline.orchestration.resources import FaceEngineResource
    from tests.support.rekognition_server import RekognitionServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with RekognitionServer() as server:
        monkeypatch.setenv("PICSARIS_REKOGNITION_ENDPOINT_URL", server.url)
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        RekognitionEngine._instances.clear()
        pipeline.resources["face_engine"] = FaceEngineResource(engine="rekognition")
        obama, biden, _ = _group_event(pipeline, event, shared_photos)
        engine = pipeline.resources["face_engine"].get()
        collection = server.state.collections[f"picsaris-{event.id}-v7_0"]
        assert obama.id in collection.users

        withdraw_consent(pipeline.repo, engine, RecordingPublisher(), obama.id, 0.80)

        assert obama.id not in collection.users
        assert not [f for f in collection.faces.values() if f.external_image_id == f"selfie:{obama.id}"]
        assert count_rows(pipeline.repo, t.engine_users, attendee_id=obama.id) == 0
        assert {m.attendee_id for m in pipeline.repo.list_matches(event.id)} == {biden.id}
        assert server.state.validation_errors == []
        RekognitionEngine._instances.clear()
