"""Giving and withdrawing consent to be matched, as the API calls it when a guest changes their mind.

Withdrawal takes effect everywhere at once: the guest's reference vectors, Rekognition user and
selfie face, and matches under every model version are deleted; so are the vectors (and Rekognition
faces) of the faces in event photos that were matched to them, which are their face data too (the
boxes stay, unnamed). Each photo they were matched in is matched again without them and re-announced
to the event's gallery with the new guest list, and its thumbnail is drawn again without their name.
Dagster holds no picture or name of theirs (its event log cannot be erased); `picsaris privacy scrub`
cleans instances written before that rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.model import Attendee, PhotoStatus, ReferenceStatus
from picsaris_pipeline.faces.engine import FaceEngine
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services.attendees import NEW_SELFIE_NEEDED, delete_selfie_without_consent, forget_enrollments
from picsaris_pipeline.services.delivery import deliver
from picsaris_pipeline.services.engine_strategy import strategy_for
from picsaris_pipeline.services.photos import match_photo, redraw_thumbnail
from picsaris_pipeline.services.versions import active_version
from picsaris_pipeline.storage import ObjectStore

logger = logging.getLogger("picsaris.consent")


@dataclass
class Withdrawal:
    """What a withdrawal deleted, for the guest's (and the operator's) confirmation."""

    photo_ids: list[str] = field(default_factory=list)  # photos they were matched in, re-matched without them
    matches: int = 0  # match rows (every model version)
    face_vectors: int = 0  # vectors of their faces in event photos
    engine_faces: int = 0  # Rekognition faces of their faces in event photos
    thumbnails_redrawn: int = 0
    selfie_deleted: bool = False  # their sign-up selfie image, from the bucket

    def describe(self) -> str:
        selfie = ", their reference and their selfie image" if self.selfie_deleted else " and their reference"
        return (
            f"deleted {self.matches} match(es) in {len(self.photo_ids)} photo(s), {self.face_vectors} face vector(s)"
            f" and {self.engine_faces} engine face(s) of their faces in event photos{selfie}; "
            f"redrew {self.thumbnails_redrawn} thumbnail(s) without their name"
        )


def withdraw_everywhere(
    repo: Repository,
    store: ObjectStore | None,
    engine: FaceEngine,
    publisher: RealtimePublisher,
    attendee_id: str,
    min_similarity: float,
) -> Withdrawal:
    """Withdraw consent and delete the guest's face data everywhere; the counts of what went."""
    attendee = repo.get_attendee(attendee_id)
    forgotten = forget_matched_faces(repo, engine, attendee)
    repo.delete_private_messages(attendee.id)
    photo_ids = _withdraw(repo, engine, publisher, attendee.id, min_similarity)
    redrawn, selfie_deleted = 0, False
    if store is not None:
        redrawn = redraw_thumbnails(repo, store, engine, attendee.event_id, photo_ids)
        # Without consent no face data is kept, the selfie image included: consent given back
        # needs a new selfie (`picsaris attendee consent ID --give --selfie PATH`).
        selfie_deleted = delete_selfie_without_consent(repo, store, repo.get_attendee(attendee.id)).selfie_key is None
        selfie_deleted = selfie_deleted and attendee.selfie_key is not None
    return Withdrawal(
        photo_ids, forgotten.matches, forgotten.face_vectors, forgotten.engine_faces, redrawn, selfie_deleted
    )


@dataclass
class ForgottenFaces:
    matches: int
    face_vectors: int
    engine_faces: int


def forget_matched_faces(repo: Repository, engine: FaceEngine | None, attendee: Attendee) -> ForgottenFaces:
    """Delete the representations (vectors; Rekognition faces) of the faces in event photos that are
    matched to the attendee: their face data as much as their selfie's. The boxes stay, unnamed."""
    matched_faces = repo.faces_matched_to(attendee.id)
    face_ids = sorted({face_id for face_id, _ in matched_faces})
    # The engine's copies first: if it fails, our records still say what to delete on the next try.
    by_version: dict[str, list[str]] = {}
    for _, version, external in repo.engine_faces_of(face_ids):
        by_version.setdefault(version, []).append(external)
    strategy = strategy_for(engine)
    for version, externals in by_version.items():
        strategy.forget_faces(attendee.event_id, version, externals)
    vectors, engine_faces = repo.delete_face_representations(face_ids)
    return ForgottenFaces(len(matched_faces), vectors, engine_faces)


def redraw_thumbnails(
    repo: Repository, store: ObjectStore, engine: FaceEngine | None, event_id: str, photo_ids: list[str]
) -> int:
    """Draw the thumbnails of these photos again from their current matches (names of guests who
    withdrew or were erased disappear); returns how many were redrawn."""
    event = repo.get_event(event_id)
    version = active_version(event, engine.model_version) if engine is not None else event.active_model_version
    if version is None:
        return 0
    return sum(redraw_thumbnail(repo, store, photo_id, version) for photo_id in photo_ids if repo.find_photo(photo_id))


def withdraw_consent(
    repo: Repository, engine: FaceEngine, publisher: RealtimePublisher, attendee_id: str, min_similarity: float
) -> list[str]:
    """withdraw_everywhere without a bucket (thumbnails are not redrawn). Returns the ids of the
    photos that were re-matched without the attendee."""
    return withdraw_everywhere(repo, None, engine, publisher, attendee_id, min_similarity).photo_ids


def _withdraw(
    repo: Repository, engine: FaceEngine, publisher: RealtimePublisher, attendee_id: str, min_similarity: float
) -> list[str]:
    attendee = repo.get_attendee(attendee_id)
    forget_enrollments(repo, engine, attendee)
    repo.withhold_faces_of(attendee.id)  # their faces leave the unknown-face clusters for good
    photo_ids = repo.set_consent(attendee.id, False)
    version = active_version(repo.get_event(attendee.event_id), engine.model_version)
    rematch = strategy_for(engine).serving(version)
    for photo_id in photo_ids:
        photo = repo.get_photo(photo_id)
        if photo.status is not PhotoStatus.PUBLISHED:
            continue
        if rematch is None:
            continue  # the active version's collection is not this engine's: its photos keep the others' matches
        match_photo(repo, photo, version, min_similarity, rematch)
        deliver(repo, publisher, photo.id)
    logger.info("attendee %s withdrew consent; %d photo(s) re-matched", attendee.id, len(photo_ids))
    return photo_ids


@dataclass
class ConsentGiven:
    """The attendee after consent came back, and the photos sent back for a re-run."""

    attendee: Attendee
    rerun_photo_ids: list[str] = field(default_factory=list)


def give_consent(repo: Repository, attendee_id: str) -> ConsentGiven:
    """The selfie becomes pending again; the attendee's next run builds the reference and finds them
    in the photos already published (as for a late joiner). The photos whose faces lost their data at
    a withdrawal are sent back for a re-run (the faces are embedded again and matched). A selfie
    deleted while there was no consent cannot come back: the attendee is rejected with the reason
    that a new one is needed."""
    repo.set_consent(attendee_id, True)
    attendee = repo.get_attendee(attendee_id)
    if attendee.selfie_key is None and attendee.selfie_file_name:
        repo.set_reference_status(attendee.id, ReferenceStatus.REJECTED, NEW_SELFIE_NEEDED)
        attendee = repo.get_attendee(attendee_id)
    rerun = repo.reset_for_rerun(repo.photos_with_forgotten_faces(attendee.event_id))
    return ConsentGiven(attendee, rerun)
