"""The repository on SQLite and on the machine's PostgreSQL: the same tests, both databases."""

import numpy as np
import pytest

from picsaris_pipeline.db.repository import connect
from picsaris_pipeline.domain.model import PhotoStatus, ReferenceStatus
from picsaris_pipeline.errors import BadInputError, NotFoundError
from picsaris_pipeline.faces.engine import FaceBox

SHA = "a" * 64
V1, V2 = "model-v1", "model-v2"


@pytest.fixture
def repo(database_url):
    return connect(database_url)


@pytest.fixture
def event(repo):
    return repo.create_event("Wedding")


@pytest.fixture
def guest(repo, event):
    return repo.add_attendee(event.id, "Ada", True, "ada.jpg", "jpg")


def _photo(repo, event, guest, sha=SHA):
    return repo.create_photo(event.id, guest.id, "IMG_0001.JPG", "image/jpeg", sha, 1234, "jpg")


def _boxes(n):
    return [FaceBox(10 * i, 10, 10 * i + 8, 18, 0.9) for i in range(n)]


def test_event_round_trip(repo, event):
    assert repo.get_event(event.id) == event
    assert event in repo.list_events()


def test_the_repository_says_which_database_it_is_on(repo, database_url):
    assert repo.is_sqlite is database_url.startswith("sqlite")
    assert repo.dialect_name == ("sqlite" if repo.is_sqlite else "postgresql")
    # The URL another process connects with: the same database, password included.
    assert repo.url_with_password() == database_url
    assert connect(repo.url_with_password()).get_event(repo.create_event("Shared").id).name == "Shared"


def test_unknown_and_malformed_ids_are_clear_errors(repo):
    with pytest.raises(NotFoundError):
        repo.get_event("01" + "A" * 24)
    with pytest.raises(BadInputError):
        repo.get_event("'; drop table events; --")


def test_attendee_gets_a_contract_selfie_key(repo, event, guest):
    assert guest.selfie_key == f"events/{event.id}/selfies/{guest.id}.jpg"
    assert guest.reference_status is ReferenceStatus.PENDING


def test_uploader_must_belong_to_the_event(repo, event, guest):
    other = repo.create_event("Other party")
    with pytest.raises(BadInputError, match="not a member"):
        repo.create_photo(other.id, guest.id, "x.jpg", "image/jpeg", SHA, 1, "jpg")


def test_new_photo_is_pending_upload_at_its_contract_key(repo, event, guest):
    photo = _photo(repo, event, guest)
    assert photo.status is PhotoStatus.PENDING_UPLOAD
    assert photo.object_key == f"events/{event.id}/photos/{guest.id}/{photo.id}.jpg"


def test_photos_to_process_skips_pending_uploads_and_terminal_photos(repo, event, guest):
    waiting, uploaded, done = (_photo(repo, event, guest, sha=c * 64) for c in "bcd")
    repo.update_photo(uploaded.id, PhotoStatus.UPLOADED)
    repo.update_photo(done.id, PhotoStatus.PUBLISHED)
    assert [p.id for p in repo.photos_to_process()] == [uploaded.id]
    assert waiting.id not in [p.id for p in repo.photos_to_process(event.id)]


def test_first_photo_with_sha_finds_the_earliest_original(repo, event, guest):
    first, second = _photo(repo, event, guest), _photo(repo, event, guest)
    for photo in (first, second):
        repo.update_photo(photo.id, PhotoStatus.UPLOADED)
    assert repo.first_photo_with_sha(event.id, SHA).id == first.id


def test_photos_still_waiting_for_their_bytes_are_not_originals(repo, event, guest):
    _photo(repo, event, guest)
    assert repo.first_photo_with_sha(event.id, SHA) is None


def test_replacing_the_same_faces_keeps_rows_and_vectors(repo, event, guest):
    photo = _photo(repo, event, guest)
    faces = repo.replace_faces(photo, "det-v1", _boxes(2))
    repo.store_face_vectors(photo, faces, V1, np.ones((2, 4), dtype=np.float32))
    again = repo.replace_faces(photo, "det-v1", _boxes(2))
    assert [f.id for f in again] == [f.id for f in faces]
    assert len(repo.photo_vectors(photo.id, V1)[0]) == 2


def test_different_faces_replace_the_old_ones(repo, event, guest):
    photo = _photo(repo, event, guest)
    repo.replace_faces(photo, "det-v1", _boxes(3))
    assert len(repo.replace_faces(photo, "det-v1", _boxes(1))) == 1
    assert len(repo.get_faces(photo.id)) == 1


def test_vectors_are_kept_per_model_version_and_never_mixed(repo, event, guest):
    photo = _photo(repo, event, guest)
    faces = repo.replace_faces(photo, "det-v1", _boxes(2))
    repo.store_face_vectors(photo, faces, V1, np.full((2, 4), 1.0, dtype=np.float32))
    repo.store_face_vectors(photo, faces, V2, np.full((2, 4), 2.0, dtype=np.float32))
    repo.store_face_vectors(photo, faces, V1, np.full((2, 4), 3.0, dtype=np.float32))  # a re-run
    _ids, v1 = repo.photo_vectors(photo.id, V1)
    assert v1.shape == (2, 4) and np.all(v1 == 3.0)
    assert np.all(repo.photo_vectors(photo.id, V2)[1] == 2.0)
    owners, event_vectors = repo.event_face_vectors(event.id, V2)
    assert owners == [photo.id, photo.id] and event_vectors.shape == (2, 4)


def test_event_references_leave_out_attendees_without_consent(repo, event, guest):
    shy = repo.add_attendee(event.id, "Shy", False, "shy.jpg", "jpg")
    repo.store_attendee_vector(guest, V1, np.ones(4, dtype=np.float32))
    repo.store_attendee_vector(shy, V1, np.ones(4, dtype=np.float32))
    ids, vectors = repo.event_references(event.id, V1)
    assert ids == [guest.id] and vectors.shape == (1, 4)
    assert repo.get_attendee(guest.id).reference_status is ReferenceStatus.READY
    assert repo.event_references(event.id, V2).attendee_ids == []


def test_attendees_needing_reference_is_per_model_version(repo, event, guest):
    repo.store_attendee_vector(guest, V1, np.ones(4, dtype=np.float32))
    assert repo.attendees_needing_reference(V1) == []
    assert [a.id for a in repo.attendees_needing_reference(V2, event.id)] == [guest.id]


def test_replacing_matches_is_idempotent(repo, event, guest):
    photo = _photo(repo, event, guest)
    face = repo.replace_faces(photo, "det-v1", _boxes(1))[0]
    for _ in range(3):
        repo.replace_matches(photo, V1, [(face.id, guest.id, 0.8)])
    rows = repo.list_matches(event.id)
    assert len(rows) == 1 and rows[0].attendee_name == "Ada" and rows[0].model_version == V1
    assert repo.match_counts(event.id) == {photo.id: 1}
    repo.replace_matches(photo, V1, [])
    assert repo.list_matches(event.id) == []


def test_deleting_a_photo_erases_its_faces_vectors_and_matches(repo, event, guest):
    photo = _photo(repo, event, guest)
    faces = repo.replace_faces(photo, "det-v1", _boxes(1))
    repo.store_face_vectors(photo, faces, V1, np.ones((1, 4), dtype=np.float32))
    repo.replace_matches(photo, V1, [(faces[0].id, guest.id, 0.9)])
    repo.delete_photo(photo.id)
    assert repo.find_photo(photo.id) is None
    assert repo.get_faces(photo.id) == [] and repo.event_face_vectors(event.id, V1)[0] == []
    assert repo.list_matches(event.id) == []


def test_deleting_an_attendee_erases_their_vectors_matches_and_uploads(repo, event, guest):
    other = repo.add_attendee(event.id, "Bo", True, "bo.jpg", "jpg")
    photo = _photo(repo, event, other)
    face = repo.replace_faces(photo, "det-v1", _boxes(1))[0]
    repo.store_attendee_vector(guest, V1, np.ones(4, dtype=np.float32))
    repo.replace_matches(photo, V1, [(face.id, guest.id, 0.9)])
    own = _photo(repo, event, guest, sha="e" * 64)
    repo.delete_attendee(guest.id)
    assert repo.attendee_vector(guest.id, V1) is None
    assert repo.list_matches(event.id) == []
    assert repo.find_photo(own.id) is None and repo.find_photo(photo.id) is not None


def test_an_unreachable_database_is_a_retryable_error(tmp_path):
    from picsaris_pipeline.errors import RetryableError

    with pytest.raises(RetryableError, match="database unavailable"):
        connect("postgresql+psycopg2://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_a_wrong_database_name_is_a_configuration_error(postgres_server):
    from picsaris_pipeline.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="does not exist"):
        connect(postgres_server.rsplit("/", 1)[0] + "/no_such_database_here")


def test_a_dropped_connection_inside_a_query_is_retryable(postgres_server):
    import sqlalchemy as sa

    from picsaris_pipeline.errors import RetryableError

    repo = connect(postgres_server)
    with pytest.raises(RetryableError), repo._read() as conn:  # the repository's own boundary
        conn.execute(sa.text("select pg_terminate_backend(pg_backend_pid())"))
        conn.execute(sa.text("select 1"))
    repo.list_events()  # the pool recovers (pre-ping) and the next call works
