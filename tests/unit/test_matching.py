import numpy as np
import pytest

from picsaris_pipeline.domain.matching import assign, candidates, similarities


def _unit(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def test_similarity_is_one_minus_euclidean_distance():
    faces = np.stack([_unit(0, 0), _unit(3, 4)])
    refs = np.stack([_unit(0, 0)])
    assert similarities(faces, refs)[:, 0] == pytest.approx([1.0, -4.0])


def test_empty_inputs_give_empty_matrices():
    assert similarities(np.zeros((0, 128)), np.zeros((3, 128))).shape == (0, 3)
    assert assign(np.zeros((2, 128)), np.zeros((0, 128)), 0.4) == []


def test_each_face_and_each_attendee_are_used_once_best_pair_first():
    # Two faces both close to attendee 0; face 1 is closer, so face 0 falls to attendee 1.
    refs = np.stack([_unit(0.0, 0.0), _unit(0.0, 0.3)])
    faces = np.stack([_unit(0.0, 0.2), _unit(0.0, 0.05)])
    result = assign(faces, refs, min_similarity=0.5)
    assert [(a.face_index, a.attendee_index) for a in result] == [(0, 1), (1, 0)]


def test_pairs_below_the_threshold_are_not_matched():
    result = assign(np.stack([_unit(0.0, 0.7)]), np.stack([_unit(0.0, 0.0)]), min_similarity=0.45)
    assert result == []


def test_candidates_are_the_owners_of_close_faces():
    faces = np.stack([_unit(0, 0.1), _unit(0, 2.0), _unit(0, 0.2)])
    assert candidates(_unit(0, 0), faces, ["a", "b", "c"], 0.5) == {"a", "c"}
