"""Intake as the upload API calls it: tickets, duplicates, completion, abandoned uploads."""

from datetime import UTC, datetime, timedelta

import pytest

from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.errors import BadInputError
from picsaris_pipeline.services.intake import (
    complete_upload,
    expire_abandoned_uploads,
    request_upload,
    sha256_of,
)
from picsaris_pipeline.storage import put_via_ticket

DATA = b"\xff\xd8 some jpeg bytes"
SHA = sha256_of(DATA)


@pytest.fixture
def guest(pipeline, event):
    return pipeline.repo.add_attendee(event.id, "Guest", True, None, None)


def _request(pipeline, event, guest, data=DATA, **overrides):
    args = dict(sha256=sha256_of(data), size=len(data), content_type="image/jpeg", file_name="IMG_1.JPG")
    args.update(overrides)
    return request_upload(pipeline.repo, pipeline.store, event.id, guest.id, **args)


def test_a_request_creates_a_pending_photo_and_a_ticket_for_its_contract_key(pipeline, event, guest):
    request = _request(pipeline, event, guest)
    assert not request.duplicate and request.photo.status is PhotoStatus.PENDING_UPLOAD
    assert request.ticket.key == request.photo.object_key
    assert request.ticket.expires_at - datetime.now(UTC) <= timedelta(minutes=15)


def test_bytes_the_event_already_has_answer_duplicate_with_the_existing_photo(pipeline, event, guest):
    first = _request(pipeline, event, guest)
    put_via_ticket(first.ticket, DATA)
    complete_upload(pipeline.repo, pipeline.store, first.photo.id)
    again = _request(pipeline, event, guest, file_name="copy.jpg")
    assert again.duplicate and again.photo.id == first.photo.id and again.ticket is None


def test_a_retry_after_a_failed_put_gets_a_fresh_ticket_for_the_same_record(pipeline, event, guest):
    first = _request(pipeline, event, guest)  # the PUT never happened
    retry = _request(pipeline, event, guest)
    assert not retry.duplicate and retry.photo.id == first.photo.id and retry.ticket is not None


def test_another_guest_with_bytes_not_yet_uploaded_is_not_told_duplicate(pipeline, event, guest):
    _request(pipeline, event, guest)
    other = pipeline.repo.add_attendee(event.id, "Other", True, None, None)
    theirs = request_upload(pipeline.repo, pipeline.store, event.id, other.id, SHA, len(DATA), "image/jpeg", "x.jpg")
    assert not theirs.duplicate and theirs.ticket is not None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sha256": "xyz"}, "64 hex"),
        ({"size": 0}, "empty"),
        ({"size": 60 * 1024 * 1024}, "limit"),
        ({"content_type": "image/gif"}, "not accepted"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(pipeline, event, guest, overrides, message):
    with pytest.raises(BadInputError, match=message):
        _request(pipeline, event, guest, **overrides)


def test_only_members_of_the_event_may_upload(pipeline, event, guest):
    other_event = pipeline.event("Another party")
    with pytest.raises(BadInputError, match="not a member"):
        request_upload(pipeline.repo, pipeline.store, other_event.id, guest.id, SHA, 10, "image/jpeg", "a.jpg")


def test_completing_without_the_object_is_refused(pipeline, event, guest):
    request = _request(pipeline, event, guest)
    with pytest.raises(BadInputError, match="was not uploaded"):
        complete_upload(pipeline.repo, pipeline.store, request.photo.id)


def test_an_object_of_another_size_than_declared_is_rejected(pipeline, event, guest):
    request = _request(pipeline, event, guest)
    put_via_ticket(request.ticket, DATA + b"more")
    photo = complete_upload(pipeline.repo, pipeline.store, request.photo.id)
    assert photo.status is PhotoStatus.REJECTED and "declared" in photo.reason


def test_a_repeated_complete_launches_once(pipeline, event, guest):
    request = _request(pipeline, event, guest)
    put_via_ticket(request.ticket, DATA)
    launched = []
    for _ in range(3):
        complete_upload(pipeline.repo, pipeline.store, request.photo.id, on_uploaded=launched.append)
    assert [p.id for p in launched] == [request.photo.id]


def test_uploads_that_never_arrived_expire_but_unannounced_ones_wait_for_the_sensor(pipeline, event, guest):
    lost = _request(pipeline, event, guest)
    unannounced = _request(pipeline, event, guest, data=DATA + b"2")
    put_via_ticket(unannounced.ticket, DATA + b"2")
    later = datetime.now(UTC) + timedelta(hours=2)
    assert expire_abandoned_uploads(pipeline.repo, pipeline.store, now=later) == [lost.photo.id]
    assert pipeline.repo.get_photo(lost.photo.id).reason == "the upload never arrived (ticket expired)"
    assert pipeline.repo.get_photo(unannounced.photo.id).status is PhotoStatus.PENDING_UPLOAD
