"""YuNet, the small-face detector, through OpenCV's `cv2.FaceDetectorYN`.

dlib's HOG detector misses faces under ~40 px (group shots from the back of a room); YuNet finds
them down to ~10 px at a fraction of HOG's time (docs/QUALITY.md, "Detection";
bench/quality_groups.py). The ONNX network ships inside this package (models/yunet/: licence and
provenance beside it), so nothing is downloaded at run time.
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from picsaris_pipeline.errors import ConfigurationError
from picsaris_pipeline.faces.engine import FaceBox

MODEL_FILE = "yunet_n_dynamic.onnx"
# Detect on a copy whose longer side is at most this; boxes are mapped back to full size. A 2400 px
# photo is seen at half size, so its 20 px faces are 10 px to the network, the least it finds.
DETECT_MAX_SIDE = 1600
# Measured (bench/quality_groups.py, ../shared/faces): composed LFW faces of 16-31 px score >= 0.79,
# larger ones >= 0.90, Biden's close-up 0.90; false faces on plain backgrounds score < 0.45, the
# horses' landscape 0.55, the dogs' collage up to 0.87 on 217-306 px dog faces. A face seen large is
# seen sharply, so a genuine one scores high: large boxes must clear a higher bar than small ones.
SCORE_THRESHOLD = 0.75
LARGE_FACE_PX = 64  # box width in the image YuNet saw
LARGE_FACE_SCORE = 0.88
NMS_THRESHOLD = 0.3
TOP_K = 5000
DETECTOR_VERSION = f"yunet-n-max{DETECT_MAX_SIDE}-t{SCORE_THRESHOLD:g}-large{LARGE_FACE_PX}t{LARGE_FACE_SCORE:g}"


class YuNetDetector:
    """One OpenCV detector per thread (it keeps per-input-size state), built on first use."""

    _local: ClassVar[threading.local] = threading.local()

    @staticmethod
    def _model_bytes() -> np.ndarray:
        model = resources.files("picsaris_pipeline.faces").joinpath("models", "yunet", MODEL_FILE)
        if not model.is_file():
            raise ConfigurationError(f"the YuNet model {MODEL_FILE} is missing from the package (reinstall it)")
        return np.frombuffer(model.read_bytes(), dtype=np.uint8)

    @classmethod
    def _detector(cls) -> Any:
        detector = getattr(cls._local, "detector", None)
        if detector is None:
            import cv2

            # From bytes, so a zipped install works as well as a directory. OpenCV 5 logs a warning
            # on every creation that its new graph engine ignores the (default) target: nothing to
            # act on, so its log is quiet for the creation only.
            empty = np.zeros(0, dtype=np.uint8)
            level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            try:
                detector = cv2.FaceDetectorYN.create(
                    "onnx", cls._model_bytes(), empty, (320, 320), SCORE_THRESHOLD, NMS_THRESHOLD, TOP_K
                )
            finally:
                cv2.utils.logging.setLogLevel(level)
            cls._local.detector = detector
        return detector

    def detect(self, image: Image.Image) -> list[tuple[FaceBox, np.ndarray]]:
        """Faces of an RGB image with YuNet's 5 landmarks (eyes, nose tip, mouth corners) in
        full-size coordinates, largest first."""
        scale = min(1.0, DETECT_MAX_SIDE / max(image.size))
        small = image
        if scale < 1.0:
            small = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
        bgr = np.ascontiguousarray(np.asarray(small)[:, :, ::-1])
        detector = self._detector()
        detector.setInputSize((small.width, small.height))
        _, rows = detector.detect(bgr)
        found: list[tuple[FaceBox, np.ndarray]] = []
        for row in rows if rows is not None else []:
            if row[2] >= LARGE_FACE_PX and row[14] < LARGE_FACE_SCORE:
                continue
            x, y, w, h = (float(v) / scale for v in row[:4])
            box = FaceBox(
                left=max(0, round(x)),
                top=max(0, round(y)),
                right=min(image.width, round(x + w)),
                bottom=min(image.height, round(y + h)),
                score=float(row[14]),
            )
            if box.width > 0 and box.height > 0:
                found.append((box, np.asarray(row[4:14], dtype=np.float64).reshape(5, 2) / scale))
        return sorted(found, key=lambda item: item[0].area, reverse=True)
