"""Face quality: whether a detected face is good enough to be matched.

A face too small, too blurred or turned too far away gives a descriptor that lands anywhere: it is
counted (the photo has that many faces) but never matched, so it can neither find a guest nor be
mistaken for one. Thresholds come from bench/quality_groups.py (docs/QUALITY.md, "Detection").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from picsaris_pipeline.faces.engine import FaceBox

# bench/quality_groups.py, 50 composed photos, dlib's descriptor on YuNet's faces: under 32 px a
# stranger's face is taken for a guest 5 times in 32 (24-31 px: 4 of 14), from 32 px up 0 times in 69
# while guests are still found; below 32 px a face is counted only.
MIN_MATCH_SIDE = 32
# Variance of the Laplacian of the face reduced to at most SHARPNESS_SIDE px. Measured on composed
# LFW faces (bench/quality_groups.py): sharp ones 100-3000, darkened (x0.35) ones 60-150, the same
# faces under a Gaussian blur of a sixteenth of their width < 20.
SHARPNESS_SIDE = 64
MIN_SHARPNESS = 40.0
# Beyond this estimated yaw the far eye is hidden and the 5-point alignment fails.
MAX_YAW_DEGREES = 60.0


@dataclass(frozen=True)
class FaceQuality:
    size_px: int
    sharpness: float
    yaw_degrees: float

    @property
    def reason(self) -> str | None:
        """Why this face may not be matched, or None if it may."""
        if self.size_px < MIN_MATCH_SIDE:
            return f"smaller than {MIN_MATCH_SIDE} px"
        if self.sharpness < MIN_SHARPNESS:
            return "blurred"
        if abs(self.yaw_degrees) > MAX_YAW_DEGREES:
            return "turned away"
        return None

    @property
    def matchable(self) -> bool:
        return self.reason is None


def sharpness(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D float array."""
    laplacian = -4.0 * gray[1:-1, 1:-1] + gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
    return float(laplacian.var()) if laplacian.size else 0.0


def yaw_degrees(landmarks: np.ndarray) -> float:
    """Yaw from dlib's 5 landmarks (two corners of each eye, then the base of the nose): how far the
    nose sits from the middle of the eyes, in half inter-eye distances, read as the sine of the angle."""
    first_eye = landmarks[0:2].mean(axis=0)
    second_eye = landmarks[2:4].mean(axis=0)
    nose = landmarks[4]
    axis = second_eye - first_eye
    half = float(np.linalg.norm(axis)) / 2.0
    if half <= 0:
        return 90.0
    offset = float(np.dot(nose - (first_eye + second_eye) / 2.0, axis / (2.0 * half)))
    return math.degrees(math.asin(max(-1.0, min(1.0, offset / half))))


def measure(image: Image.Image, boxes: Sequence[FaceBox], landmarks: Sequence[np.ndarray]) -> list[FaceQuality]:
    """Quality of each face of an RGB image, given its box and its 5 landmarks (shape (5, 2))."""
    gray = image.convert("L")
    result = []
    for box, points in zip(boxes, landmarks, strict=True):
        # Reduced to a fixed side so a large face does not look sharper for its size; a small face is
        # measured as it is (enlarging it would blur it).
        side = max(3, min(SHARPNESS_SIDE, box.width, box.height))
        crop = gray.crop((box.left, box.top, box.right, box.bottom)).resize((side, side), Image.Resampling.BILINEAR)
        result.append(
            FaceQuality(
                size_px=min(box.width, box.height),
                sharpness=round(sharpness(np.asarray(crop, dtype=np.float64)), 2),
                yaw_degrees=round(yaw_degrees(points), 1),
            )
        )
    return result
