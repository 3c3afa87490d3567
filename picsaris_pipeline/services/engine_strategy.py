"""What differs between the kinds of face engine, as one strategy per kind, so services call one
method instead of asking which kind of engine they hold.

- services/vector_strategy.py: an engine that returns vectors (dlib). Faces, vectors and matching
  live with us; matching runs the match policy (services/policy_matching.py). Also the strategy
  when no engine is at hand (matching and erasure over our own tables need none).
- services/collection_strategy.py: an engine that keeps faces in a collection on its side
  (Rekognition): IndexFaces, SearchUsers, SearchFaces, and erasure there too.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from picsaris_pipeline.db.repository import PolicyWrite, Repository
from picsaris_pipeline.domain.model import Attendee, Face, Photo
from picsaris_pipeline.faces.engine import CollectionFaceEngine, FaceBox, FaceEngine, VectorFaceEngine
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services.timing import Stopwatch
from picsaris_pipeline.storage import ObjectStore


@dataclass
class Detection:
    """A photo's faces as stored, and what to show about how they were found; `rejected` says why
    the engine refused the image (no retry can help)."""

    faces: list[Face]
    image: Image.Image
    details: dict[str, Any] = field(default_factory=dict)
    rejected: str | None = None


@dataclass
class MatchDecision:
    """A photo's matches (face id, attendee id, similarity), candidates proposed privately, and the
    policy written with them."""

    rows: list[tuple[str, str, float]]
    candidates: list[tuple[str, str, float]]
    write: PolicyWrite


@dataclass
class Enrolment:
    """What building an attendee's reference showed; `consent_lost` when consent was withdrawn
    meanwhile, so nothing was stored."""

    details: dict[str, Any]
    consent_lost: bool = False


@dataclass(frozen=True)
class LateJoiner:
    """An attendee whose reference is ready, to be found in the photos already matched."""

    attendee: Attendee
    model_version: str
    min_similarity: float


class EngineStrategy(abc.ABC):
    """Detect, represent, match, enrol and erase, the way one kind of engine does them."""

    engine: FaceEngine | None

    @property
    def detector_version(self) -> str | None:
        """The detector whose faces this strategy reads (None without an engine: any)."""
        return self.engine.detector_version if self.engine is not None else None

    # -- photos ----------------------------------------------------------------------------
    @abc.abstractmethod
    def detect(self, repo: Repository, store: ObjectStore, photo: Photo, watch: Stopwatch) -> Detection:
        """Find and store the verified photo's faces."""

    @abc.abstractmethod
    def represent(
        self, repo: Repository, store: ObjectStore, photo: Photo, faces: Sequence[Face], watch: Stopwatch
    ) -> dict[str, Any]:
        """Give every detected face its representation under the model version; the details to show."""

    @abc.abstractmethod
    def decide(
        self, repo: Repository, photo: Photo, model_version: str, min_similarity: float, announce: bool
    ) -> MatchDecision:
        """A photo's matches against the event's consenting attendees, one model version only."""

    @abc.abstractmethod
    def policy_id(self, min_similarity: float) -> str:
        """The id of the matching policy `decide` applies."""

    @abc.abstractmethod
    def serving(self, model_version: str) -> EngineStrategy | None:
        """This strategy if it can match under `model_version`, else None."""

    # -- attendees -------------------------------------------------------------------------
    @abc.abstractmethod
    def enroll(self, repo: Repository, attendee: Attendee, image: Image.Image, watch: Stopwatch) -> Enrolment:
        """Turn a consenting attendee's selfie into their reference under the model version; an
        unusable selfie marks them rejected with a reason."""

    @abc.abstractmethod
    def late_joiner_photos(self, repo: Repository, joiner: LateJoiner) -> Iterable[str] | None:
        """Ids of the photos that may hold a face of this attendee (their candidates to re-match);
        None when they have no reference under the model version."""

    @abc.abstractmethod
    def with_clusters(
        self, repo: Repository, publisher: RealtimePublisher, joiner: LateJoiner, found: list[str]
    ) -> list[str]:
        """`found`, plus the photos of the unknown-face clusters this attendee's reference claims."""

    @abc.abstractmethod
    def selfie_faces(self, image: Image.Image) -> list[FaceBox] | None:
        """The faces found in a selfie before sign-up, or None when the engine has no local detector."""

    # -- erasure ---------------------------------------------------------------------------
    @abc.abstractmethod
    def forget_enrollment(self, event_id: str, model_version: str, user_id: str, face_id: str) -> None:
        """Delete an attendee's user and selfie face kept on the engine's side under a model version."""

    @abc.abstractmethod
    def forget_faces(self, event_id: str, model_version: str, external_face_ids: Sequence[str]) -> None:
        """Delete faces kept on the engine's side under a model version."""

    @abc.abstractmethod
    def forget_photo(self, event_id: str, photo_id: str, external_by_version: dict[str, list[str]]) -> None:
        """Delete every face of a photo kept on the engine's side, under every model version."""

    @abc.abstractmethod
    def drop_collection(self, event_id: str, model_version: str) -> None:
        """Delete what the engine keeps of an event under an old model version."""


def strategy_for(engine: FaceEngine | None) -> EngineStrategy:
    """The strategy of an engine's kind (vectors when there is no engine): the one place that asks."""
    from picsaris_pipeline.services.collection_strategy import CollectionStrategy
    from picsaris_pipeline.services.vector_strategy import VectorStrategy

    if isinstance(engine, CollectionFaceEngine):
        return CollectionStrategy(engine)
    if engine is None or isinstance(engine, VectorFaceEngine):
        return VectorStrategy(engine)
    raise TypeError(f"unsupported face engine {engine!r}")
