"""Which detected faces may be matched: the quality gate between detection and the match policy.

A face too small, blurred or turned away (faces/quality.py, measured at detection) stays counted in
its photo but is never matched, so its unreliable vector can neither find a guest nor be taken for one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from picsaris_pipeline.db.repository import Repository


def matchable_mask(repo: Repository, face_ids: Sequence[str]) -> np.ndarray:
    """A boolean per face id, in order: True if the face may be matched. Faces never measured
    (detected before quality was recorded, or by a collection engine) may be."""
    unmatchable = repo.unmatchable_face_ids(face_ids)
    return np.asarray([face_id not in unmatchable for face_id in face_ids], dtype=bool)


def gate_scores(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A (faces, attendees) similarity matrix in which unmatchable faces can match nobody."""
    gated = scores.copy()
    gated[~mask] = -np.inf
    return gated
