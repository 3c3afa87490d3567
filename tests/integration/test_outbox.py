"""Realtime messages go through an outbox: each sent once, none lost when the publisher fails."""

from datetime import UTC, datetime, timedelta

import pytest

from picsaris_pipeline.faces.dlib_engine import DEFAULT_MODEL
from picsaris_pipeline.services import health, photos
from picsaris_pipeline.services.attendees import build_reference, match_late_joiner
from picsaris_pipeline.services.delivery import deliver
from tests.support.publishers import DownPublisher, RecordingPublisher

MODEL = DEFAULT_MODEL


@pytest.fixture
def obama(pipeline, event, shared_photos):
    attendee = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    assert pipeline.run_attendee(attendee.id).success
    return attendee


def _embedded_photo(pipeline, event, uploader, data, name):
    photo = pipeline.upload(event, uploader, data, name)
    repo, store, engine = pipeline.repo, pipeline.store, pipeline.resources["face_engine"].get()
    photos.verify_upload(repo, store, photo.id)
    photos.detect_faces(repo, store, engine, photo.id)
    photos.store_embeddings(repo, store, engine, photo.id)
    return photo


def _publish(pipeline, photo, publisher):
    return photos.publish_matches(pipeline.repo, pipeline.store, publisher, photo.id, MODEL, 0.45)


def test_a_photo_is_announced_once_however_often_it_is_published(pipeline, event, obama, shared_photos):
    photo = _embedded_photo(pipeline, event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "o.jpg")
    gallery = RecordingPublisher()
    for _ in range(3):
        _publish(pipeline, photo, gallery)
    assert sorted(m.topic for m in gallery.sent) == [f"attendee:{obama.id}", f"event:{event.id}"]


def test_messages_survive_a_publisher_outage_and_are_sent_once_it_is_back(pipeline, event, obama, shared_photos):
    photo = _embedded_photo(pipeline, event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "o.jpg")
    result = _publish(pipeline, photo, DownPublisher())
    assert result.status.value == "published" and result.details["realtime_pending"] == 2
    gallery = RecordingPublisher()
    assert deliver(pipeline.repo, gallery).sent == 2
    assert deliver(pipeline.repo, gallery).sent == 0  # nothing twice
    assert len(gallery.sent) == 2


def test_a_late_joiner_gets_their_message_and_the_event_hears_the_new_list(pipeline, event, obama, shared_photos):
    photo = _embedded_photo(pipeline, event, obama, shared_photos["group_two_people.jpg"].path.read_bytes(), "2.jpg")
    gallery = RecordingPublisher()
    _publish(pipeline, photo, gallery)
    gallery.sent.clear()
    biden = pipeline.attendee(event, "Joe Biden", shared_photos["biden_2.jpg"].path)
    build_reference(pipeline.repo, pipeline.store, pipeline.resources["face_engine"].get(), biden.id)
    assert match_late_joiner(pipeline.repo, gallery, biden.id, MODEL, 0.45) == [photo.id]
    assert sorted(m.topic for m in gallery.sent) == sorted([f"attendee:{biden.id}", f"event:{event.id}"])
    event_message = next(m for m in gallery.sent if m.topic.startswith("event:"))
    assert set(event_message.payload["attendee_ids"]) == {obama.id, biden.id}  # Obama's own is not re-sent


def test_messages_of_photos_not_yet_published_wait_for_publishing(pipeline, event, obama, shared_photos):
    photo = _embedded_photo(pipeline, event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "o.jpg")
    photos.match_photo(pipeline.repo, pipeline.repo.get_photo(photo.id), MODEL, 0.45)  # as a late joiner does
    gallery = RecordingPublisher()
    assert deliver(pipeline.repo, gallery).sent == 0  # not announced before the photo is published
    _publish(pipeline, photo, gallery)
    assert len(gallery.sent) == 2


def test_the_backlog_check_flags_messages_stuck_for_minutes(pipeline, event, obama, shared_photos):
    photo = _embedded_photo(pipeline, event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "o.jpg")
    _publish(pipeline, photo, DownPublisher())
    assert health.outbox_backlog(pipeline.repo).passed  # just queued
    later = datetime.now(UTC) + timedelta(minutes=6)
    finding = health.outbox_backlog(pipeline.repo, now=later)
    assert not finding.passed and finding.count == 2


def test_deleting_a_photo_removes_its_queued_messages(pipeline, event, obama, shared_photos):
    photo = _embedded_photo(pipeline, event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "o.jpg")
    _publish(pipeline, photo, DownPublisher())
    pipeline.repo.delete_photo(photo.id)
    assert deliver(pipeline.repo, RecordingPublisher()).sent == 0
