"""The embedded-default face engine: a face detector (YuNet by default, or dlib's HOG), dlib's 5-point
landmarks and its ResNet descriptor.

Model files come from the `face_recognition_models` package. Its `__init__` imports the deprecated
`pkg_resources`, so the files are located through importlib's spec instead of importing it.
The 68-point landmark model it also ships is trained on data licensed for non-commercial use
only, so it is never loaded here.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image

from picsaris_pipeline.domain.matching import DEFAULT_MIN_SIMILARITY
from picsaris_pipeline.errors import ConfigurationError
from picsaris_pipeline.faces.engine import EngineVersions, FaceBox, VectorFaceEngine
from picsaris_pipeline.faces.quality import FaceQuality, measure

if TYPE_CHECKING:
    from picsaris_pipeline.settings import Settings

# Detecting at full 2400 px costs ~2 s a photo; at <= 1200 px with one upsampling pass it costs
# ~0.3 s and still finds faces down to ~40 px in the full image. Boxes are mapped back to full size.
DETECT_MAX_SIDE = 1200
DETECT_UPSAMPLE = 1
# Measured on ../shared/faces: the weakest true face scores 0.22; the mission patch on scikit-image's
# astronaut scores 0.12 as PNG and 0.17 re-encoded as JPEG. 0.2 keeps every annotated face and
# drops that false positive.
DETECT_THRESHOLD = 0.2
DETECTOR_VERSION = f"dlib-hog-v1-max{DETECT_MAX_SIDE}-up{DETECT_UPSAMPLE}-t{DETECT_THRESHOLD:g}"


DETECTORS = ("yunet", "hog")


@dataclass(frozen=True)
class LocalModel:
    version: str
    num_jitters: int
    description: str
    detector: str = "hog"  # one of DETECTORS

    @property
    def detector_version(self) -> str:
        if self.detector == "yunet":
            from picsaris_pipeline.faces import yunet

            return yunet.DETECTOR_VERSION
        return DETECTOR_VERSION


# All use dlib_face_recognition_resnet_model_v1 (128-d); jittering averages the descriptor over
# randomly perturbed crops: slower, slightly more robust. Their vectors are close but not the same,
# so they are distinct versions and are never compared with each other. A different detector gives
# different boxes, so different vectors of the same face: a detector change is a new version too
# (the version string names it), re-detected and re-embedded by `picsaris reembed`.
# YuNet comes first, the default: it finds the small faces of group shots HOG misses
# (docs/QUALITY.md, "Detection"); the HOG versions stay selectable with PICSARIS_FACE_MODEL.
LOCAL_MODELS: dict[str, LocalModel] = {
    model.version: model
    for model in (
        LocalModel(
            "yunet-dlib-resnet-v1-5pt-j0", 0, "YuNet detector, dlib ResNet v1, 5-point alignment, no jitter", "yunet"
        ),
        LocalModel("dlib-resnet-v1-5pt-j0", 0, "dlib HOG detector, ResNet v1, 5-point alignment, no jitter"),
        LocalModel("dlib-resnet-v1-5pt-j4", 4, "dlib HOG detector, ResNet v1, 5-point alignment, 4 jitters"),
    )
}
DEFAULT_MODEL = next(iter(LOCAL_MODELS))


def _models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("face_recognition_models is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _offered(model_version: str | None) -> str:
    version = model_version or DEFAULT_MODEL
    if version not in LOCAL_MODELS:
        raise ConfigurationError(f"unknown face model {version!r} for engine dlib; offered: {', '.join(LOCAL_MODELS)}")
    return version


class _DlibModels:
    """The three dlib models, loaded once per process (~0.3-0.8 s) under a lock."""

    _lock = threading.Lock()
    _loaded: ClassVar[_DlibModels | None] = None

    def __init__(self) -> None:
        import dlib

        directory = _models_dir()
        self.detector: Any = dlib.get_frontal_face_detector()
        self.landmarks: Any = dlib.shape_predictor(str(directory / "shape_predictor_5_face_landmarks.dat"))
        self.descriptor: Any = dlib.face_recognition_model_v1(
            str(directory / "dlib_face_recognition_resnet_model_v1.dat")
        )
        self.dlib = dlib

    @classmethod
    def get(cls) -> _DlibModels:
        if cls._loaded is None:
            with cls._lock:
                if cls._loaded is None:
                    cls._loaded = cls()
        return cls._loaded


class DlibEngine(VectorFaceEngine):
    name = "dlib"
    default_min_similarity = DEFAULT_MIN_SIMILARITY
    dimension = 128
    _instances: ClassVar[dict[str, DlibEngine]] = {}

    def __init__(self, model_version: str | None = None) -> None:
        version = _offered(model_version)
        self.model = LOCAL_MODELS[version]
        self.model_version = version
        self.detector_version = self.model.detector_version

    @classmethod
    def offered_versions(cls) -> list[str]:
        return list(LOCAL_MODELS)

    @classmethod
    def versions_for(cls, model_version: str | None) -> EngineVersions:
        version = _offered(model_version)
        return EngineVersions(cls.name, LOCAL_MODELS[version].detector_version, version)

    @classmethod
    def for_settings(cls, settings: Settings | None, model_version: str | None) -> DlibEngine:
        return cls.shared(model_version)  # local models: nothing in the settings changes them

    @classmethod
    def shared(cls, model_version: str | None = None) -> DlibEngine:
        version = model_version or DEFAULT_MODEL
        if version not in cls._instances:
            cls._instances[version] = cls(version)
        return cls._instances[version]

    @classmethod
    def preload(cls, settings: Settings) -> str | None:
        # Loading the models is 0.3-0.8 s per process; children share the pages copy-on-write.
        import cv2

        # OpenCV's own thread pool is native threads that threading.active_count() cannot see: the
        # warm-up below would start it, and a child forked while a pool thread held its mutex hung
        # forever in YuNet's detect (seen once in CI; gdb: the child's only thread in
        # pthread_mutex_lock inside cv2). Sequential OpenCV keeps this process single-threaded;
        # runs are parallel as processes anyway.
        cv2.setNumThreads(0)
        engine = cls.shared(settings.face_model)
        engine.detect(Image.new("RGB", (64, 64)))
        return engine.model_version

    def detect(self, image: Image.Image) -> list[FaceBox]:
        if self.model.detector == "yunet":
            from picsaris_pipeline.faces.yunet import YuNetDetector

            return [box for box, _ in YuNetDetector().detect(image)]
        return self._detect_hog(image)

    def _detect_hog(self, image: Image.Image) -> list[FaceBox]:
        models = _DlibModels.get()
        scale = min(1.0, DETECT_MAX_SIDE / max(image.size))
        small = image
        if scale < 1.0:
            small = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
        rects, scores, _ = models.detector.run(np.asarray(small), DETECT_UPSAMPLE, DETECT_THRESHOLD)
        boxes = [
            FaceBox(
                left=max(0, round(rect.left() / scale)),
                top=max(0, round(rect.top() / scale)),
                right=min(image.width, round(rect.right() / scale)),
                bottom=min(image.height, round(rect.bottom() / scale)),
                score=float(score),
            )
            for rect, score in zip(rects, scores, strict=True)
        ]
        return sorted(boxes, key=lambda box: box.area, reverse=True)

    def embed(self, image: Image.Image, boxes: Sequence[FaceBox]) -> np.ndarray:
        if not boxes:
            return np.zeros((0, self.dimension), dtype=np.float32)
        models = _DlibModels.get()
        pixels = np.asarray(image)
        shapes = self._shapes(pixels, boxes)
        descriptors = models.descriptor.compute_face_descriptor(pixels, shapes, self.model.num_jitters)
        return np.asarray([np.asarray(d) for d in descriptors], dtype=np.float32)

    @staticmethod
    def _shapes(pixels: np.ndarray, boxes: Sequence[FaceBox]) -> Any:
        models = _DlibModels.get()
        shapes = models.dlib.full_object_detections()
        for box in boxes:
            # Landmarks on the full-size image: the aligned 150x150 chip is sharper than from the
            # reduced copy used for detection, which matters for small faces in group shots.
            rect = models.dlib.rectangle(box.left, box.top, box.right, box.bottom)
            shapes.append(models.landmarks(pixels, rect))
        return shapes

    def quality(self, image: Image.Image, boxes: Sequence[FaceBox]) -> list[FaceQuality]:
        """Size, sharpness and yaw of each face (faces/quality.py), from the same 5 landmarks the
        descriptor aligns with, whichever detector found the box."""
        if not boxes:
            return []
        shapes = self._shapes(np.asarray(image), boxes)
        landmarks = [np.asarray([(p.x, p.y) for p in shape.parts()], dtype=np.float64) for shape in shapes]
        return measure(image, boxes, landmarks)
