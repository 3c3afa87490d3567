"""Who is in which photo: pure numpy, no I/O.

Vectors are compared by Euclidean distance (what dlib's ResNet was trained for) and reported as
similarity = 1 - distance, so that "higher is more alike" holds for every engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# dlib's own recommendation is distance 0.6. On ../shared/faces the same person is at most 0.52
# apart and different people at least 0.69, but one face in the bald-guys collage sits 0.59 from
# Lin-Manuel Miranda; 0.55 kept every true pair there. With 400 guests and 800 strangers (lfw-dev,
# bench/policy.py) 0.55 gave a fifth to a quarter of the strangers to some guest: the confident bar
# is now the match policy's (match_policy.DEFAULT_POLICY, with a margin to the second-nearest guest),
# and candidates just under it are only proposed to the guest, privately. 0.475 (similarity 0.525) is
# the bar bench/policy.py tunes on seed 1 with YuNet's faces, the default detector: 0.5 held precision
# >= 0.99 on HOG's faces but gave 0.984 on seed 1 with YuNet's (docs/QUALITY.md, "Matching policy").
DEFAULT_MAX_DISTANCE = 0.475
DEFAULT_MIN_SIMILARITY = 1.0 - DEFAULT_MAX_DISTANCE
# How much closer than the threshold a late joiner's candidate search looks (float32 rounding).
CANDIDATE_SLACK = 1e-4


@dataclass(frozen=True)
class Assignment:
    face_index: int
    attendee_index: int
    similarity: float


def similarities(faces: np.ndarray, references: np.ndarray) -> np.ndarray:
    """(n_faces, n_references) matrix of 1 - Euclidean distance."""
    if faces.size == 0 or references.size == 0:
        return np.zeros((len(faces), len(references)), dtype=np.float32)
    faces64 = faces.astype(np.float64, copy=False)
    refs64 = references.astype(np.float64, copy=False)
    # |a-b|^2 = |a|^2 + |b|^2 - 2ab: one matrix product instead of a Python loop over pairs.
    squared = (
        np.einsum("ij,ij->i", faces64, faces64)[:, None]
        + np.einsum("ij,ij->i", refs64, refs64)[None, :]
        - 2.0 * faces64 @ refs64.T
    )
    return (1.0 - np.sqrt(np.maximum(squared, 0.0))).astype(np.float32)


def assign(faces: np.ndarray, references: np.ndarray, min_similarity: float) -> list[Assignment]:
    """Match faces of one photo to attendees: each face to at most one attendee and each attendee to
    at most one face (a person appears once in a photo), best pairs first."""
    return assign_scores(similarities(faces, references), min_similarity)


def assign_scores(scores: np.ndarray, min_similarity: float) -> list[Assignment]:
    """assign() on a (faces, attendees) similarity matrix, whoever computed it (numpy here, or a
    face service that answered per face)."""
    face_idx, ref_idx = np.nonzero(scores >= min_similarity)
    order = np.argsort(-scores[face_idx, ref_idx], kind="stable")
    used_faces: set[int] = set()
    used_refs: set[int] = set()
    result: list[Assignment] = []
    for position in order:
        face, ref = int(face_idx[position]), int(ref_idx[position])
        if face in used_faces or ref in used_refs:
            continue
        used_faces.add(face)
        used_refs.add(ref)
        result.append(Assignment(face, ref, float(scores[face, ref])))
    return sorted(result, key=lambda item: item.face_index)


def candidates(
    reference: np.ndarray, faces: np.ndarray, owners: Sequence[str] | np.ndarray, min_similarity: float
) -> set[str]:
    """Owners (photo ids) of the faces close enough to one reference to be worth re-matching."""
    if faces.size == 0:
        return set()
    # One reference against a whole event (36,000 faces), in float32: |f-r|^2 = |f|^2 - 2 f.r + |r|^2
    # is one matrix-vector product and no (n, d) temporary. Its rounding is bounded by d * eps *
    # (|f| + |r|)^2 (~6e-5 for dlib's vectors of norm ~1), added to the bound so that no face within
    # the slack is lost whatever the vectors' scale; match_photo decides exactly.
    max_distance = 1.0 - (min_similarity - CANDIDATE_SLACK)
    if max_distance < 0:
        return set()
    faces32 = faces.astype(np.float32, copy=False)
    reference32 = reference.astype(np.float32, copy=False)
    face_norms2 = np.einsum("ij,ij->i", faces32, faces32)
    reference_norm2 = np.dot(reference32, reference32)
    squared = face_norms2 - 2.0 * (faces32 @ reference32) + reference_norm2
    rounding = faces32.shape[1] * np.finfo(np.float32).eps * (np.sqrt(face_norms2) + np.sqrt(reference_norm2)) ** 2
    close = squared <= max_distance * max_distance + rounding
    return {str(owners[int(i)]) for i in np.nonzero(close)[0]}
