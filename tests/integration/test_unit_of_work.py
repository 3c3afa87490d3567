"""The repository's unit of work on SQLite and on the machine's PostgreSQL: repository calls inside
one commit together or not at all."""

from dataclasses import replace

import pytest

from picsaris_pipeline.db.repository import connect
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.model import PhotoStatus, ReferenceStatus
from picsaris_pipeline.errors import RetryableError
from picsaris_pipeline.faces.engine import FaceBox
from tests.support.db_helpers import commits

DETECTOR = "detector-v1"


class Crash(Exception):
    """A failure in the middle of a unit of work."""


@pytest.fixture
def repo(database_url):
    return connect(database_url)


@pytest.fixture
def photo(repo):
    event = repo.create_event("Wedding")
    guest = repo.add_attendee(event.id, "Ada", True, "ada.jpg", "jpg")
    return repo.create_photo(event.id, guest.id, "IMG_0001.JPG", "image/jpeg", "a" * 64, 1234, "jpg")


def _boxes(n):
    return [FaceBox(10 * i, 10, 10 * i + 8, 18, 0.9) for i in range(n)]


def test_a_crash_after_the_first_write_leaves_nothing_written(repo, photo):
    with pytest.raises(Crash), repo.unit_of_work():
        faces = repo.replace_faces(photo, DETECTOR, _boxes(2))
        assert len(faces) == 2  # reads inside see the unit's own writes
        repo.update_photo(photo.id, PhotoStatus.FACES_DETECTED, face_count=2)
        raise Crash
    assert repo.get_faces(photo.id, DETECTOR) == []
    assert repo.get_photo(photo.id).status is photo.status


def test_the_normal_path_commits_once_and_only_at_the_end(repo, photo, database_url):
    other = connect(database_url)  # another connection from the pool, as another process would read
    with commits(repo) as count, repo.unit_of_work():
        repo.replace_faces(photo, DETECTOR, _boxes(3))
        repo.update_photo(photo.id, PhotoStatus.FACES_DETECTED, face_count=3)
        repo.set_reference_status(photo.uploader_id, ReferenceStatus.REJECTED, "no face found in the selfie")
        assert other.get_faces(photo.id, DETECTOR) == []
        assert other.get_photo(photo.id).status is photo.status
    assert count[0] == 1
    assert len(other.get_faces(photo.id, DETECTOR)) == 3
    assert other.get_photo(photo.id).face_count == 3
    assert other.get_attendee(photo.uploader_id).reference_status is ReferenceStatus.REJECTED


def test_a_nested_unit_joins_the_outer_one(repo, photo):
    with pytest.raises(Crash), repo.unit_of_work():
        with repo.unit_of_work():
            repo.replace_faces(photo, DETECTOR, _boxes(1))
        repo.update_photo(photo.id, PhotoStatus.FACES_DETECTED, face_count=1)
        raise Crash
    # The inner block's end committed nothing: the outer crash took its faces too.
    assert repo.get_faces(photo.id, DETECTOR) == []


def test_a_database_error_inside_is_translated_and_rolls_everything_back(repo, photo):
    unknown = replace(photo, id=new_id())  # no such photo: its faces break the foreign key
    with pytest.raises(RetryableError, match="concurrent write conflict"), repo.unit_of_work():
        repo.update_photo(photo.id, PhotoStatus.FACES_DETECTED, face_count=1)
        repo.replace_faces(unknown, DETECTOR, _boxes(1))
    assert repo.get_photo(photo.id).status is photo.status


def test_the_repository_works_as_before_once_a_unit_has_ended(repo, photo):
    with pytest.raises(Crash), repo.unit_of_work():
        raise Crash
    with commits(repo) as count:
        repo.replace_faces(photo, DETECTOR, _boxes(1))
        repo.update_photo(photo.id, PhotoStatus.FACES_DETECTED, face_count=1)
    assert count[0] == 2  # each call its own transaction again
    assert len(repo.get_faces(photo.id, DETECTOR)) == 1
