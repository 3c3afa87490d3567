"""Erasing a photo's or an attendee's biometric data everywhere we keep it (DESIGN §5)."""

from __future__ import annotations

import dagster as dg

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.faces.engine import CollectionFaceEngine, FaceEngine, collection_engine_for
from picsaris_pipeline.keys import derived_prefix
from picsaris_pipeline.partitions import ATTENDEE_PARTITIONS, PHOTO_PARTITIONS
from picsaris_pipeline.services.attendees import forget_enrollments
from picsaris_pipeline.storage import ObjectStore


def delete_photo(
    repo: Repository,
    store: ObjectStore,
    instance: dg.DagsterInstance | None,
    photo_id: str,
    engine: FaceEngine | None = None,
) -> None:
    """The upload, its derived images, faces, vectors, engine-side faces (Rekognition), matches,
    record and partition.

    Remote copies go first: if the bucket or the engine fails half way the record is still there
    and a repeated delete finishes the job (object and face deletes are idempotent)."""
    photo = repo.get_photo(photo_id)
    by_version: dict[str, list[str]] = {}
    for _, version, external in repo.photo_engine_faces(photo.id):
        by_version.setdefault(version, []).append(external)
    if isinstance(engine, CollectionFaceEngine):
        by_version.setdefault(engine.model_version, [])
    for version, external_ids in by_version.items():
        collection_engine = collection_engine_for(engine, version)
        if collection_engine is not None:
            collection_engine.forget_photo(photo.event_id, photo.id, external_ids)
    store.delete(photo.object_key)
    store.delete_prefix(derived_prefix(photo.event_id, photo.id))
    repo.delete_photo(photo.id)
    if instance is not None and instance.has_dynamic_partition(PHOTO_PARTITIONS, photo.id):
        instance.delete_dynamic_partition(PHOTO_PARTITIONS, photo.id)


def delete_attendee(
    repo: Repository,
    store: ObjectStore,
    instance: dg.DagsterInstance | None,
    attendee_id: str,
    engine: FaceEngine | None = None,
) -> list[str]:
    """The attendee's selfie, reference vectors, engine-side user and selfie face (Rekognition) and
    matches, and the photos they uploaded (with all of those photos' data). Returns the ids of the
    deleted photos."""
    attendee = repo.get_attendee(attendee_id)
    uploaded = [p for p in repo.list_photos(attendee.event_id) if p.uploader_id == attendee.id]
    for photo in uploaded:
        delete_photo(repo, store, instance, photo.id, engine)
    forget_enrollments(repo, engine, attendee)
    if attendee.selfie_key:
        store.delete(attendee.selfie_key)
    repo.withhold_faces_of(attendee.id)  # their faces leave the unknown-face clusters for good
    repo.delete_attendee(attendee.id)
    if instance is not None and instance.has_dynamic_partition(ATTENDEE_PARTITIONS, attendee.id):
        instance.delete_dynamic_partition(ATTENDEE_PARTITIONS, attendee.id)
    return [p.id for p in uploaded]


def archive_event_partitions(repo: Repository, instance: dg.DagsterInstance, event_id: str) -> int:
    """Remove an archived event's photo and attendee partitions from Dagster (its records, matches
    and images stay), keeping the instance under Dagster's recommended 100,000 partitions per asset.
    Returns how many partitions were removed."""
    repo.get_event(event_id)
    removed = 0
    for name, ids in (
        (PHOTO_PARTITIONS, [p.id for p in repo.list_photos(event_id)]),
        (ATTENDEE_PARTITIONS, [a.id for a in repo.list_attendees(event_id)]),
    ):
        existing = set(instance.get_dynamic_partitions(name))
        for key in ids:
            if key in existing:
                instance.delete_dynamic_partition(name, key)
                removed += 1
    return removed
