"""The late joiner's bulk read of an event's vectors (db/vector_reads.py) and its candidate search,
on SQLite and on the machine's PostgreSQL: the same faces as the row-by-row repository read, only
the requested model version, and the same photos matched in the end."""

import struct
import uuid

import numpy as np
import pytest

from picsaris_pipeline.db import vector_reads
from picsaris_pipeline.db.repository import connect
from picsaris_pipeline.domain.matching import CANDIDATE_SLACK, candidates
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.faces.engine import FaceBox
from picsaris_pipeline.realtime import LogPublisher
from picsaris_pipeline.services.attendees import match_late_joiner

V1, V2 = "model-v1", "model-v2"
DIMENSION = 128
THRESHOLD = 0.45


# -- pure functions ----------------------------------------------------------------------------


def _copy_stream(rows, extension=b""):
    """A binary COPY stream as PostgreSQL writes it, for (text, bytea) rows."""
    out = [b"PGCOPY\n\xff\r\n\x00", struct.pack("!iI", 0, len(extension)), extension]
    for text, blob in rows:
        out.append(struct.pack("!h", 2))
        for value in (text.encode(), blob):
            out.append(struct.pack("!i", len(value)) + value)
    out.append(b"\xff\xff")
    return b"".join(out)


def test_a_binary_copy_stream_splits_into_ids_and_a_float32_matrix():
    vectors = np.arange(12, dtype="<f4").reshape(3, 4) / 7
    ids = ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "01BX5ZZKBKACTAV9WEVGEMMVRZ"]
    owners, parsed = vector_reads.parse_copy_pairs(_copy_stream(zip(ids, [v.tobytes() for v in vectors], strict=True)))
    assert [str(o) for o in owners] == ids
    assert parsed.dtype == np.float32 and parsed.flags.c_contiguous and np.array_equal(parsed, vectors)
    # A header extension (allowed by the format) is skipped.
    owners, parsed = vector_reads.parse_copy_pairs(_copy_stream([(ids[0], vectors[0].tobytes())], b"\x01\x02\x03"))
    assert list(owners) == ids[:1] and np.array_equal(parsed, vectors[:1])


def test_an_empty_copy_stream_is_no_faces():
    owners, vectors = vector_reads.parse_copy_pairs(_copy_stream([]))
    assert len(owners) == 0 and vectors.shape == (0, 0)


def test_records_of_different_shapes_are_left_to_the_row_by_row_read():
    four, eight = np.ones(4, dtype="<f4").tobytes(), np.ones(8, dtype="<f4").tobytes()
    assert vector_reads.parse_copy_pairs(_copy_stream([("A" * 26, four), ("B" * 26, eight)])) is None
    assert vector_reads.parse_copy_pairs(_copy_stream([("A" * 26, four), ("B" * 25, four + b"x")])) is None
    with pytest.raises(ValueError, match="not a binary COPY"):
        vector_reads.parse_copy_pairs(b"id\tvector\n")


def _brute_force(reference, faces, owners, min_similarity):
    distances = np.linalg.norm(faces.astype(np.float64) - reference.astype(np.float64), axis=1)
    return {owners[i] for i in np.nonzero(1.0 - distances >= min_similarity)[0]}


@pytest.mark.parametrize("scale", [0.09, 1.0, 50.0])  # 0.09: dlib's vectors, of norm ~1
def test_candidates_hold_every_face_within_the_threshold_and_none_far_beyond_it(scale):
    rng = np.random.default_rng(3)
    reference = (rng.standard_normal(DIMENSION) * scale).astype(np.float32)
    # Faces at distances spread evenly around the threshold, some within a hair of it.
    directions = rng.standard_normal((4000, DIMENSION))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    distances = np.concatenate([np.linspace(0.3, 0.8, 3000), 1 - THRESHOLD + rng.uniform(-2e-4, 2e-4, 1000)])
    faces = (reference + directions * distances[:, None]).astype(np.float32)
    owners = [f"p{i}" for i in range(len(faces))]
    found = candidates(reference, faces, np.asarray(owners), THRESHOLD)
    assert all(type(owner) is str for owner in found)
    assert _brute_force(reference, faces, owners, THRESHOLD) <= found
    if scale < 1:  # larger vectors round more in float32: the search widens (never narrows) with them
        assert found <= _brute_force(reference, faces, owners, THRESHOLD - 2 * CANDIDATE_SLACK)


def test_an_impossible_threshold_finds_nothing():
    faces = np.zeros((3, DIMENSION), dtype=np.float32)
    assert candidates(faces[0], faces, ["a", "b", "c"], 1.5) == set()
    assert candidates(faces[0], np.zeros((0, DIMENSION), dtype=np.float32), [], THRESHOLD) == set()


# -- on both databases -------------------------------------------------------------------------


@pytest.fixture
def repo(database_url):
    return connect(database_url)


@pytest.fixture
def event(repo):
    return repo.create_event("Wedding", V1)


@pytest.fixture
def guest(repo, event):
    return repo.add_attendee(event.id, "Ada", True, "ada.jpg", "jpg")


def _store_photo(repo, event, uploader, vectors, model_version=V1):
    sha = uuid.uuid4().hex * 2
    photo = repo.create_photo(event.id, uploader.id, f"IMG_{sha[:6]}.JPG", "image/jpeg", sha, 1234, "jpg")
    boxes = [FaceBox(60 * i, 0, 60 * i + 50, 50, 1.0) for i in range(len(vectors))]
    faces = repo.replace_faces(photo, "det-v1", boxes)
    repo.store_face_vectors(photo, faces, model_version, np.asarray(vectors, dtype=np.float32))
    repo.update_photo(photo.id, PhotoStatus.PUBLISHED, face_count=len(vectors))
    return photo, faces


def _same_read(repo, event_id, model_version):
    owners, vectors = vector_reads.event_face_vectors(repo, event_id, model_version)
    before_owners, before_vectors = repo.event_face_vectors(event_id, model_version)
    assert [str(o) for o in owners] == before_owners
    assert vectors.dtype == np.float32 and np.array_equal(vectors, before_vectors)
    return [str(o) for o in owners], vectors


def test_the_bulk_read_is_the_row_by_row_read_of_one_model_version_and_event(repo, event, guest):
    rng = np.random.default_rng(1)
    other_event = repo.create_event("Other party", V1)
    stranger = repo.add_attendee(other_event.id, "Bo", True, "bo.jpg", "jpg")
    photos = []
    for k in range(5):
        photo, faces = _store_photo(repo, event, guest, rng.standard_normal((k % 3 + 1, DIMENSION)))
        repo.store_face_vectors(photo, faces, V2, rng.standard_normal((len(faces), DIMENSION)))  # re-embedding
        photos.append(photo)
    _store_photo(repo, event, guest, [])  # a photo without faces
    _store_photo(repo, other_event, stranger, rng.standard_normal((2, DIMENSION)))
    owners, vectors = _same_read(repo, event.id, V1)
    assert sorted(owners) == sorted(p.id for k, p in enumerate(photos) for _ in range(k % 3 + 1))
    assert vectors.shape == (len(owners), DIMENSION)
    v2_owners, v2_vectors = _same_read(repo, event.id, V2)
    assert sorted(v2_owners) == sorted(owners) and not np.array_equal(v2_vectors, vectors)
    # The fast path itself answered, not the fallback to the row-by-row read.
    fast = vector_reads._postgres if repo.dialect_name == "postgresql" else vector_reads._sqlite
    assert fast(repo, event.id, V1) is not None
    # Erasure shows at once: the next read no longer has the photo's faces.
    repo.delete_photo(photos[2].id)
    owners, _ = _same_read(repo, event.id, V1)
    assert photos[2].id not in owners and len(owners) == sum(k % 3 + 1 for k in range(5) if k != 2)


def test_an_event_without_vectors_of_that_version_reads_empty(repo, event, guest):
    _store_photo(repo, event, guest, np.ones((2, DIMENSION)), model_version=V2)
    owners, vectors = vector_reads.event_face_vectors(repo, event.id, V1)
    assert len(owners) == 0 and vectors.size == 0
    assert candidates(np.ones(DIMENSION, dtype=np.float32), vectors, owners, THRESHOLD) == set()


def _outcome(read):
    try:
        owners, vectors = read()
    except ValueError:
        return "ValueError"
    return [str(o) for o in owners], vectors.tolist()


@pytest.mark.parametrize("second", [1, 2])
def test_vectors_of_different_lengths_under_one_version_are_read_as_the_row_by_row_read_does(
    repo, event, guest, second
):
    # Cannot happen under one model version (ops checks flag malformed vectors); whatever the old read
    # makes of it (a reshaped matrix or a ValueError), the bulk read hands over to it rather than guess.
    _store_photo(repo, event, guest, np.ones((1, 8)))
    _store_photo(repo, event, guest, np.ones((second, 4)))
    fast = vector_reads._postgres if repo.dialect_name == "postgresql" else vector_reads._sqlite
    assert fast(repo, event.id, V1) is None
    assert _outcome(lambda: vector_reads.event_face_vectors(repo, event.id, V1)) == _outcome(
        lambda: repo.event_face_vectors(event.id, V1)
    )


def test_a_late_joiner_is_matched_only_under_the_requested_version_and_only_with_consent(repo, event, guest):
    rng = np.random.default_rng(5)
    people = rng.standard_normal((6, DIMENSION)).astype(np.float32) * 0.09
    joiner_face = rng.standard_normal(DIMENSION).astype(np.float32) * 0.09
    near = joiner_face + 0.01
    repo.store_attendee_vector(guest, V1, people[0])
    with_joiner = [_store_photo(repo, event, guest, [people[1], near, people[0]])[0] for _ in range(3)]
    without = [_store_photo(repo, event, guest, [people[2], people[3]])[0] for _ in range(3)]
    # Under V2 the joiner's face is in another photo only: V1's search must not find that one.
    v2_only, faces = _store_photo(repo, event, guest, [people[4]])
    repo.store_face_vectors(v2_only, faces, V2, np.asarray([near]))
    joiner = repo.add_attendee(event.id, "Late", True, "late.jpg", "jpg")
    repo.store_attendee_vector(joiner, V1, joiner_face)
    owners, vectors = _same_read(repo, event.id, V1)
    assert candidates(joiner_face, vectors, owners, THRESHOLD) == {p.id for p in with_joiner}
    found = match_late_joiner(repo, LogPublisher(), joiner.id, V1, THRESHOLD)
    assert found == sorted(p.id for p in with_joiner)
    matched = {(m.photo_id, m.attendee_id) for m in repo.list_matches(event.id)}
    assert {photo for photo, attendee in matched if attendee == joiner.id} == {p.id for p in with_joiner}
    # The uploader keeps their own face in those photos (one face per guest per photo).
    assert {(p.id, guest.id) for p in with_joiner} <= matched
    assert all((p.id, joiner.id) not in matched for p in [*without, v2_only])
    # No consent, no search.
    shy = repo.add_attendee(event.id, "Shy", False, "shy.jpg", "jpg")
    assert match_late_joiner(repo, LogPublisher(), shy.id, V1, THRESHOLD) == []
