"""The strategy of an engine that returns vectors (dlib): faces, vectors and matching live with us."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from picsaris_pipeline.db import vector_reads
from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.matching import candidates
from picsaris_pipeline.domain.model import Attendee, Face, Photo, ReferenceStatus
from picsaris_pipeline.errors import ConfigurationError
from picsaris_pipeline.faces.engine import FaceBox, VectorFaceEngine
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services import face_clusters, policy_matching
from picsaris_pipeline.services.engine_strategy import Detection, EngineStrategy, Enrolment, LateJoiner, MatchDecision
from picsaris_pipeline.services.timing import Stopwatch
from picsaris_pipeline.services.verified_images import _load_verified
from picsaris_pipeline.storage import ObjectStore


class VectorStrategy(EngineStrategy):
    """Matching goes through the match policy; nothing is kept on the engine's side, so erasing
    there is nothing. Without an engine it still matches and erases over our tables."""

    def __init__(self, engine: VectorFaceEngine | None) -> None:
        self.engine: VectorFaceEngine | None = engine

    def _engine(self) -> VectorFaceEngine:
        if self.engine is None:
            raise ConfigurationError("this step needs a face engine, and none was given")
        return self.engine

    # -- photos ----------------------------------------------------------------------------
    def detect(self, repo: Repository, store: ObjectStore, photo: Photo, watch: Stopwatch) -> Detection:
        engine = self._engine()
        with watch.lap("load"):
            image = _load_verified(store, photo)
        with watch.lap("detect"):
            boxes = engine.detect(image)
        with watch.lap("quality"):
            qualities = engine.quality(image, boxes)
        details: dict[str, Any] = {}
        with repo.unit_of_work():  # faces without their quality would all pass the quality gate
            faces = repo.replace_faces(photo, engine.detector_version, boxes)
            if qualities is not None:
                repo.store_face_quality(faces, qualities)
        if qualities is not None:
            details["unmatchable_faces"] = sum(not q.matchable for q in qualities)
        return Detection(faces, image, details)

    def represent(
        self, repo: Repository, store: ObjectStore, photo: Photo, faces: Sequence[Face], watch: Stopwatch
    ) -> dict[str, Any]:
        engine = self._engine()
        if faces:
            with watch.lap("load"):
                image = _load_verified(store, photo)
            with watch.lap("embed"):
                vectors = engine.embed(image, [FaceBox(f.left, f.top, f.right, f.bottom, f.score) for f in faces])
        else:
            vectors = np.zeros((0, engine.dimension), dtype=np.float32)
        repo.store_face_vectors(photo, list(faces), engine.model_version, vectors)
        return {
            "representation": "vectors",
            "vectors": len(faces),
            "model_version": engine.model_version,
            "dimension": engine.dimension,
        }

    def decide(
        self, repo: Repository, photo: Photo, model_version: str, min_similarity: float, announce: bool
    ) -> MatchDecision:
        """The match policy (margin, several references per guest, candidates proposed privately),
        then the faces of a late joiner's claimed cluster."""
        policy = policy_matching.policy_for(min_similarity)
        decision = policy_matching.decide_photo(repo, photo, model_version, policy)
        write = policy_matching.policy_write(policy, decision, announce)
        rows, proposed = face_clusters.with_claimed_faces(
            repo, photo, model_version, decision.rows, min_similarity, decision.candidates
        )
        if write.candidates is None:  # candidates are proposed under the version guests see only
            return MatchDecision(rows, decision.candidates, write)
        return MatchDecision(rows, proposed, dataclasses.replace(write, candidates=proposed))

    def policy_id(self, min_similarity: float) -> str:
        return policy_matching.policy_for(min_similarity).id

    def serving(self, model_version: str) -> VectorStrategy:
        return self  # vectors of every version are ours to match

    # -- attendees -------------------------------------------------------------------------
    def enroll(self, repo: Repository, attendee: Attendee, image: Image.Image, watch: Stopwatch) -> Enrolment:
        engine = self._engine()
        with watch.lap("detect"):
            boxes = engine.detect(image)
        if not boxes:
            repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, "no face found in the selfie")
            return Enrolment({"faces_in_selfie": 0})
        # The largest face is the person taking the selfie; others are bystanders.
        with watch.lap("embed"):
            vector = engine.embed(image, boxes[:1])[0]
        if not repo.store_attendee_vector(attendee, engine.model_version, vector):
            return Enrolment({}, consent_lost=True)  # the write re-read consent and stored nothing
        return Enrolment({"faces_in_selfie": len(boxes), "model_version": engine.model_version})

    def late_joiner_photos(self, repo: Repository, joiner: LateJoiner) -> Iterable[str] | None:
        reference = repo.attendee_vector(joiner.attendee.id, joiner.model_version)
        if reference is None:
            return None
        # One round trip for the event's vectors under this version only (bench/matching.py).
        owners, vectors = vector_reads.event_face_vectors(repo, joiner.attendee.event_id, joiner.model_version)
        # The policy's loose bar: a late joiner is proposed the photos below the confident one too.
        bar = policy_matching.policy_for(joiner.min_similarity).candidate_similarity
        return candidates(reference, vectors, owners, bar)

    def with_clusters(
        self, repo: Repository, publisher: RealtimePublisher, joiner: LateJoiner, found: list[str]
    ) -> list[str]:
        # A cluster of this guest's unmatched faces comes in at once.
        attendee_id, version, bar = joiner.attendee.id, joiner.model_version, joiner.min_similarity
        return face_clusters.bring_in_clusters(repo, publisher, attendee_id, version, bar, found)

    def selfie_faces(self, image: Image.Image) -> list[FaceBox]:
        return self._engine().detect(image)

    # -- erasure: a vector engine keeps nothing on its side; our rows go with the repository's deletes
    def forget_enrollment(self, event_id: str, model_version: str, user_id: str, face_id: str) -> None:
        return None

    def forget_faces(self, event_id: str, model_version: str, external_face_ids: Sequence[str]) -> None:
        return None

    def forget_photo(self, event_id: str, photo_id: str, external_by_version: dict[str, list[str]]) -> None:
        return None

    def drop_collection(self, event_id: str, model_version: str) -> None:
        return None
