"""The strategy of an engine that keeps faces in a collection on its side (Rekognition): it detects
and stores with IndexFaces, matches with SearchUsers and SearchFaces, and erases there too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
from PIL import Image

from picsaris_pipeline.db.repository import PolicyWrite, Repository
from picsaris_pipeline.domain import imaging
from picsaris_pipeline.domain.matching import assign_scores
from picsaris_pipeline.domain.model import Attendee, Face, Photo, ReferenceStatus
from picsaris_pipeline.errors import BadInputError, PicsarisError
from picsaris_pipeline.faces.engine import CollectionFaceEngine, FaceBox
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services import face_quality, policy_matching
from picsaris_pipeline.services.engine_strategy import Detection, EngineStrategy, Enrolment, LateJoiner, MatchDecision
from picsaris_pipeline.services.timing import Stopwatch
from picsaris_pipeline.services.verified_images import verified_jpeg_and_image
from picsaris_pipeline.storage import ObjectStore


class CollectionStrategy(EngineStrategy):
    """For it, "embeddings stored" means the engine's face ids, recorded with the model version of
    the collection that holds them; matching keeps the plain threshold rule."""

    def __init__(self, engine: CollectionFaceEngine) -> None:
        self.engine: CollectionFaceEngine = engine

    def _at(self, model_version: str) -> CollectionFaceEngine:
        """The engine serving a model version recorded in our tables: this one, or the same engine
        under an older version whose collection still holds faces."""
        if model_version == self.engine.model_version:
            return self.engine
        # The same class, so the same kind: an engine class builds only its own instances.
        return cast(CollectionFaceEngine, type(self.engine).for_settings(None, model_version))

    # -- photos ----------------------------------------------------------------------------
    def detect(self, repo: Repository, store: ObjectStore, photo: Photo, watch: Stopwatch) -> Detection:
        """IndexFaces finds the faces and also stores them in the event's collection: the engine face
        ids are recorded with the faces, and a re-run first removes the faces its previous run indexed."""
        engine = self.engine
        with watch.lap("load"):
            jpeg, image = verified_jpeg_and_image(store, photo)
        with watch.lap("index"):
            earlier = [external for _, _, external in repo.photo_engine_faces(photo.id, engine.model_version)]
            if earlier:
                engine.forget_faces(photo.event_id, earlier)
            try:
                indexed = engine.index_photo(photo.event_id, photo.id, jpeg, image.size)
            except BadInputError as error:  # the service refused the image: no retry can help
                return Detection([], image, rejected=str(error))
        collection = engine.collection_id(photo.event_id)
        with repo.unit_of_work():  # faces without their engine ids could never be matched or erased there
            faces = repo.replace_faces(photo, engine.detector_version, [face.box for face in indexed])
            repo.store_engine_faces(
                photo, faces, engine.model_version, collection, [face.external_face_id for face in indexed]
            )
        return Detection(faces, image, {"collection": collection, "model_version": engine.model_version})

    def represent(
        self, repo: Repository, store: ObjectStore, photo: Photo, faces: Sequence[Face], watch: Stopwatch
    ) -> dict[str, Any]:
        """Nothing to compute (no vectors exist on this path): the engine face id IndexFaces stored is
        checked to exist for every face."""
        engine = self.engine
        recorded = {
            face_id: external for face_id, _, external in repo.photo_engine_faces(photo.id, engine.model_version)
        }
        missing = [f.id for f in faces if f.id not in recorded]
        if missing:
            raise PicsarisError(
                f"{len(missing)} face(s) of photo {photo.id} have no {engine.name} face id under "
                f"{engine.model_version}: re-run faces_detected for this photo"
            )
        return {
            "representation": f"{engine.name} collection faces (the engine keeps no vectors for us)",
            "collection": engine.collection_id(photo.event_id),
            "model_version": engine.model_version,
            "engine_face_ids": [recorded[f.id] for f in faces],
            "faces": len(faces),
        }

    def decide(
        self, repo: Repository, photo: Photo, model_version: str, min_similarity: float, announce: bool
    ) -> MatchDecision:
        """One SearchUsers per face, then the threshold rule (no clusters: they need vectors)."""
        scores, face_ids, attendee_ids = self._scores(repo, photo, model_version, min_similarity)
        # Faces too small or blurred to trust are counted but match nobody (the policy path applies
        # the same gate in decide_photo).
        scores = face_quality.gate_scores(scores, face_quality.matchable_mask(repo, face_ids))
        assignments = assign_scores(scores, min_similarity)
        rows = [(face_ids[a.face_index], attendee_ids[a.attendee_index], a.similarity) for a in assignments]
        return MatchDecision(rows, [], PolicyWrite(self.policy_id(min_similarity), candidates=None))

    def _scores(
        self, repo: Repository, photo: Photo, model_version: str, min_similarity: float
    ) -> tuple[np.ndarray, list[str], list[str]]:
        """The (faces, attendees) similarity matrix; users the engine knows but we do not count as
        consenting attendees of this event (deleted, withdrawn) are dropped."""
        engine = self.engine
        if engine.model_version != model_version:
            raise PicsarisError(f"the engine serves {engine.model_version}, asked to match under {model_version}")
        enrolled = repo.enrolled_attendees(photo.event_id, model_version)
        faces = repo.photo_engine_faces(photo.id, model_version)
        attendee_ids = sorted(set(enrolled.values()))
        column = {attendee: i for i, attendee in enumerate(attendee_ids)}
        scores = np.zeros((len(faces), len(attendee_ids)), dtype=np.float32)
        if attendee_ids:
            for row, (_, _, external_face_id) in enumerate(faces):
                for user_id, similarity in engine.search_users(photo.event_id, external_face_id, min_similarity):
                    attendee = enrolled.get(user_id)
                    if attendee is not None:
                        scores[row, column[attendee]] = similarity
        return scores, [face_id for face_id, _, _ in faces], attendee_ids

    def policy_id(self, min_similarity: float) -> str:
        return policy_matching.collection_policy_id(min_similarity)

    def serving(self, model_version: str) -> CollectionStrategy | None:
        # Another version's collection is not this engine's: its photos keep the matches made there.
        return self if self.engine.model_version == model_version else None

    # -- attendees -------------------------------------------------------------------------
    def enroll(self, repo: Repository, attendee: Attendee, image: Image.Image, watch: Stopwatch) -> Enrolment:
        """Register the attendee as a user of the event's collection from their selfie; a re-run
        replaces the earlier selfie face (a user holds at most 100 faces, and only the newest counts)."""
        engine = self.engine
        earlier = repo.engine_users_of(attendee.id, engine.model_version)
        try:
            with watch.lap("enroll"):
                enrollment = engine.enroll(attendee.event_id, attendee.id, imaging.encode_jpeg(image))
        except BadInputError as error:
            repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, f"selfie unusable: {error}")
            return Enrolment({"engine": engine.name})
        stale = [face for _, _, face in earlier if face != enrollment.external_face_id]
        if stale:
            engine.forget_faces(attendee.event_id, stale)
        collection = engine.collection_id(attendee.event_id)
        stored = repo.store_engine_user(
            attendee, engine.model_version, collection, enrollment.external_user_id, enrollment.external_face_id
        )
        if not stored:
            # Consent was withdrawn while the engine enrolled the selfie: nothing was recorded, and what
            # the engine holds goes too (the withdrawal could not see it to delete it).
            engine.forget_user(attendee.event_id, enrollment.external_user_id)
            engine.forget_faces(attendee.event_id, [enrollment.external_face_id])
            return Enrolment({"engine": engine.name}, consent_lost=True)
        return Enrolment(
            {
                "faces_in_selfie": enrollment.faces_in_image,
                "model_version": engine.model_version,
                "engine": engine.name,
                "collection": collection,
                "engine_user_id": enrollment.external_user_id,
            }
        )

    def late_joiner_photos(self, repo: Repository, joiner: LateJoiner) -> Iterable[str] | None:
        enrolled = repo.engine_users_of(joiner.attendee.id, joiner.model_version)
        if not enrolled:
            return None
        # SearchFaces from the selfie's face: the photos holding a face like it.
        return self.engine.search_photos(joiner.attendee.event_id, enrolled[0].face_id, joiner.min_similarity)

    def with_clusters(
        self, repo: Repository, publisher: RealtimePublisher, joiner: LateJoiner, found: list[str]
    ) -> list[str]:
        return found  # clusters need vectors: none on a collection engine

    def selfie_faces(self, image: Image.Image) -> list[FaceBox] | None:
        return None  # no local detector: the engine reports a faceless selfie when enrolling

    # -- erasure ---------------------------------------------------------------------------
    def forget_enrollment(self, event_id: str, model_version: str, user_id: str, face_id: str) -> None:
        engine = self._at(model_version)
        engine.forget_user(event_id, user_id)
        engine.forget_faces(event_id, [face_id])

    def forget_faces(self, event_id: str, model_version: str, external_face_ids: Sequence[str]) -> None:
        self._at(model_version).forget_faces(event_id, external_face_ids)

    def forget_photo(self, event_id: str, photo_id: str, external_by_version: dict[str, list[str]]) -> None:
        # This engine's own version too: a crashed run may have indexed faces it never recorded.
        by_version = dict(external_by_version)
        by_version.setdefault(self.engine.model_version, [])
        for version, external_ids in by_version.items():
            self._at(version).forget_photo(event_id, photo_id, external_ids)

    def drop_collection(self, event_id: str, model_version: str) -> None:
        self._at(model_version).drop_collection(event_id)
