"""The face-engine interface and the registry that picks one from configuration."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from picsaris_pipeline.errors import ConfigurationError


@dataclass(frozen=True)
class FaceBox:
    """A face's bounding box in the coordinates of the image it was found in."""

    left: int
    top: int
    right: int
    bottom: int
    score: float

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return self.width * self.height


class FaceEngine(abc.ABC):
    """Detects faces and turns each into a vector; vectors of different model versions never meet."""

    name: str
    detector_version: str  # names the detector and its settings; stored on every face
    model_version: str  # names the embedding model and its settings; stored on every vector
    dimension: int

    @abc.abstractmethod
    def detect(self, image: Image.Image) -> list[FaceBox]:
        """Faces in an RGB image, largest first."""

    @abc.abstractmethod
    def embed(self, image: Image.Image, boxes: Sequence[FaceBox]) -> np.ndarray:
        """One L2-comparable float32 vector per box, shape (len(boxes), dimension)."""


def model_versions(engine: str = "dlib") -> list[str]:
    """The model versions an engine offers, the default first."""
    if engine == "dlib":
        from picsaris_pipeline.faces.dlib_engine import LOCAL_MODELS

        return list(LOCAL_MODELS)
    raise ConfigurationError(
        f"unknown face engine {engine!r}; this build offers: dlib (rekognition arrives with the production path)"
    )


def get_engine(engine: str = "dlib", model_version: str | None = None) -> FaceEngine:
    """The process-wide engine for a configuration (models load once, on first use)."""
    if engine == "dlib":
        from picsaris_pipeline.faces.dlib_engine import DlibEngine

        return DlibEngine.shared(model_version)
    raise ConfigurationError(
        f"unknown face engine {engine!r}; this build offers: dlib (rekognition arrives with the production path)"
    )
