"""The face-engine interfaces; faces/registry.py picks one from configuration.

Two kinds of engine fit the same asset graph:
- a vector engine (dlib) detects faces and returns one vector per face; vectors live in our
  database and matching is numpy here;
- a collection engine (AWS Rekognition) never returns vectors: `IndexFaces` detects faces and
  stores them in a collection per (event, model version) on the engine's side, and matching asks
  the engine (`SearchUsers`). For it, "embeddings stored" means the engine's face ids, recorded
  with the model version of the collection that holds them.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from picsaris_pipeline.faces.quality import FaceQuality
    from picsaris_pipeline.settings import Settings


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


@dataclass(frozen=True)
class IndexedFace:
    """A face a collection engine found and stored: its box in our image and its id on the engine's side."""

    box: FaceBox
    external_face_id: str


@dataclass(frozen=True)
class Enrollment:
    """An attendee registered with a collection engine from their selfie's largest face."""

    external_user_id: str
    external_face_id: str
    faces_in_image: int


class FaceEngine(abc.ABC):
    """What every engine names: the versions stored beside its results, and its match threshold."""

    name: str
    detector_version: str  # names the detector and its settings; stored on every face
    model_version: str  # names the embedding model; stored on every vector, engine face id and match
    default_min_similarity: float  # on a 0..1 scale, higher is more alike
    keeps_vectors: ClassVar[bool]

    @classmethod
    @abc.abstractmethod
    def offered_versions(cls) -> list[str]:
        """The model versions this engine offers, the default first."""

    @classmethod
    @abc.abstractmethod
    def versions_for(cls, model_version: str | None) -> EngineVersions:
        """What a model version stamps on its results (None: the default), known without loading a
        model or a client; ConfigurationError for a version this engine does not offer."""

    @classmethod
    @abc.abstractmethod
    def for_settings(cls, settings: Settings | None, model_version: str | None) -> FaceEngine:
        """The process-wide engine for a model version, built on first use."""

    def vector_dimensions(self) -> dict[str, int]:
        """Model version -> dimension of the vectors this engine stores in our database."""
        return {}

    @classmethod
    def preload(cls, settings: Settings) -> str | None:
        """Load, in a process that forks run workers afterwards, what each run would otherwise
        load on first use; the model version loaded, or None when nothing is worth sharing (a
        network client is not fork-safe: each child makes its own)."""
        return None


class VectorFaceEngine(FaceEngine):
    """Detects faces and turns each into a vector; vectors of different model versions never meet."""

    keeps_vectors = True
    dimension: int

    def vector_dimensions(self) -> dict[str, int]:
        return {self.model_version: self.dimension}

    @abc.abstractmethod
    def detect(self, image: Image.Image) -> list[FaceBox]:
        """Faces in an RGB image, largest first."""

    @abc.abstractmethod
    def embed(self, image: Image.Image, boxes: Sequence[FaceBox]) -> np.ndarray:
        """One L2-comparable float32 vector per box, shape (len(boxes), dimension)."""

    def quality(self, image: Image.Image, boxes: Sequence[FaceBox]) -> list[FaceQuality] | None:
        """Each face's quality (faces/quality.py), or None if this engine measures none (every face
        may then be matched)."""
        return None


class CollectionFaceEngine(FaceEngine):
    """Keeps faces in a collection per (event, model version) on its side and matches there."""

    keeps_vectors = False

    @abc.abstractmethod
    def collection_id(self, event_id: str) -> str:
        """The collection holding this event's faces under this engine's model version."""

    @abc.abstractmethod
    def index_photo(self, event_id: str, photo_id: str, jpeg: bytes, size: tuple[int, int]) -> list[IndexedFace]:
        """Detect and store the faces of a photo (JPEG bytes of the given size), largest first."""

    @abc.abstractmethod
    def enroll(self, event_id: str, attendee_id: str, jpeg: bytes) -> Enrollment:
        """Register an attendee from their selfie's largest face; BadInputError if there is none."""

    @abc.abstractmethod
    def search_users(self, event_id: str, external_face_id: str, min_similarity: float) -> list[tuple[str, float]]:
        """(user id, similarity 0..1) of the enrolled attendees this stored face may be."""

    @abc.abstractmethod
    def search_photos(self, event_id: str, external_face_id: str, min_similarity: float) -> set[str]:
        """Ids of the photos holding a stored face close to this one (a late joiner's candidates)."""

    @abc.abstractmethod
    def forget_faces(self, event_id: str, external_face_ids: Sequence[str]) -> None:
        """Delete stored faces (already gone is fine)."""

    @abc.abstractmethod
    def forget_photo(self, event_id: str, photo_id: str, known_face_ids: Sequence[str]) -> None:
        """Delete every stored face of a photo, including any a crashed run indexed but never recorded."""

    @abc.abstractmethod
    def drop_collection(self, event_id: str) -> None:
        """Delete the event's whole collection under this engine's model version (pruning an old version)."""

    @abc.abstractmethod
    def forget_user(self, event_id: str, external_user_id: str) -> None:
        """Delete an attendee's user (already gone is fine); their selfie faces go with forget_faces."""


@dataclass(frozen=True)
class EngineVersions:
    """What an engine configuration stamps on its results, known without loading a model or a client."""

    engine: str
    detector_version: str
    model_version: str


def model_versions(engine: str = "dlib") -> list[str]:
    """The model versions an engine offers, the default first."""
    from picsaris_pipeline.faces.registry import engine_class

    return engine_class(engine).offered_versions()


def configured_versions(engine: str = "dlib", model_version: str | None = None) -> EngineVersions:
    from picsaris_pipeline.faces.registry import engine_class

    return engine_class(engine).versions_for(model_version)


def get_engine(engine: str = "dlib", model_version: str | None = None, settings: Settings | None = None) -> FaceEngine:
    """The process-wide engine for a configuration (models and clients are built once, on first use).
    Rekognition's client comes from `settings` (default: read from the environment now)."""
    from picsaris_pipeline.faces.registry import engine_class

    return engine_class(engine).for_settings(settings, model_version)
