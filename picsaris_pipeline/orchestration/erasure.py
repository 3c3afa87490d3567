"""Erasing a photo's or an attendee's biometric data everywhere we keep it (what and how it is
tested: docs/RELIABILITY.md, "Privacy").

Order: the face engine and the bucket, then the application database (with the realtime outbox),
then Dagster's storage last. Dagster holds ids and links only (no picture or name), so the person is
already gone once the first three are done; a broken Dagster store (a garbled SQLite file, Postgres
down) therefore never stops an erasure: the Dagster steps are tried, and what could not be reached
is reported in the returned Erasure, for `picsaris privacy scrub` or a repeated delete to finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dagster as dg

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.keys import derived_prefix
from picsaris_pipeline.faces.engine import FaceEngine
from picsaris_pipeline.orchestration.partitions import ATTENDEE_PARTITIONS, PHOTO_PARTITIONS
from picsaris_pipeline.services.attendees import forget_enrollments
from picsaris_pipeline.services.engine_strategy import strategy_for
from picsaris_pipeline.storage import ObjectStore

logger = logging.getLogger("picsaris.erasure")

# The Dagster instance, or how to build it: built only once everything else is erased.
InstanceSource = dg.DagsterInstance | Callable[[], dg.DagsterInstance] | None


@dataclass
class Erasure:
    """What an erasure deleted, and which stores it could not reach."""

    photo_ids: list[str] = field(default_factory=list)
    objects: int = 0
    dagster_partitions: int = 0
    dagster_rows_scrubbed: int = 0
    face_vectors: int = 0  # of the attendee's faces in other guests' photos
    thumbnails_redrawn: int = 0  # other guests' photos, without the attendee's name
    unreached: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unreached

    def describe(self) -> str:
        text = (
            f"{len(self.photo_ids)} photo(s), {self.objects} object(s) and "
            f"{self.dagster_partitions} Dagster partition(s) deleted"
        )
        if self.face_vectors or self.thumbnails_redrawn:
            text += (
                f", {self.face_vectors} face vector(s) of theirs in other photos deleted"
                f" and {self.thumbnails_redrawn} thumbnail(s) redrawn without their name"
            )
        if self.dagster_rows_scrubbed:
            text += f", {self.dagster_rows_scrubbed} old Dagster event(s) scrubbed"
        return text


def delete_photo(
    repo: Repository,
    store: ObjectStore,
    instance: InstanceSource,
    photo_id: str,
    engine: FaceEngine | None = None,
) -> Erasure:
    """The upload, its derived images, faces, vectors, engine-side faces (Rekognition), matches,
    outbox messages, record and partition.

    Remote copies go first: if the bucket or the engine fails half way the record is still there
    and a repeated delete finishes the job (object and face deletes are idempotent)."""
    erasure = Erasure()
    _erase_photo(repo, store, photo_id, engine, erasure)
    repo.flush_erased()
    _erase_in_dagster(instance, erasure, photo_ids=erasure.photo_ids)
    return erasure


def delete_attendee(
    repo: Repository,
    store: ObjectStore,
    instance: InstanceSource,
    attendee_id: str,
    engine: FaceEngine | None = None,
) -> Erasure:
    """The attendee's selfie, reference vectors, engine-side user and selfie face (Rekognition) and
    matches, and the photos they uploaded (with all of those photos' data)."""
    from picsaris_pipeline.services.consent import forget_matched_faces, redraw_thumbnails

    attendee = repo.get_attendee(attendee_id)
    erasure = Erasure()
    for photo in [p for p in repo.list_photos(attendee.event_id) if p.uploader_id == attendee.id]:
        _erase_photo(repo, store, photo.id, engine, erasure)
    # Their faces in other guests' photos: vectors (and Rekognition faces) go, boxes stay unnamed.
    matched_in = sorted({photo_id for _, photo_id in repo.faces_matched_to(attendee.id)})
    repo.withhold_faces_of(attendee.id)  # their faces leave the unknown-face clusters for good
    forgotten = forget_matched_faces(repo, engine, attendee)
    erasure.face_vectors = forgotten.face_vectors + forgotten.engine_faces
    forget_enrollments(repo, engine, attendee)
    if attendee.selfie_key:
        store.delete(attendee.selfie_key)
        erasure.objects += 1
    with repo.unit_of_work():  # their private messages go with their record, never one without the other
        repo.delete_private_messages(attendee.id)
        repo.delete_attendee(attendee.id)
    erasure.thumbnails_redrawn = redraw_thumbnails(repo, store, engine, attendee.event_id, matched_in)
    repo.flush_erased()
    _erase_in_dagster(instance, erasure, photo_ids=erasure.photo_ids, attendee_ids=[attendee.id])
    return erasure


def _erase_photo(
    repo: Repository, store: ObjectStore, photo_id: str, engine: FaceEngine | None, erasure: Erasure
) -> None:
    photo = repo.get_photo(photo_id)
    by_version: dict[str, list[str]] = {}
    for _, version, external in repo.photo_engine_faces(photo.id):
        by_version.setdefault(version, []).append(external)
    strategy_for(engine).forget_photo(photo.event_id, photo.id, by_version)
    store.delete(photo.object_key)
    erasure.objects += 1 + store.delete_prefix(derived_prefix(photo.event_id, photo.id))
    repo.delete_photo(photo.id)
    erasure.photo_ids.append(photo.id)


def _erase_in_dagster(
    source: InstanceSource, erasure: Erasure, photo_ids: Sequence[str], attendee_ids: Sequence[str] = ()
) -> None:
    """Drop the partitions, and scrub what older versions wrote (once per instance); any failure is
    reported, not raised."""
    if source is None:
        return
    try:
        instance = source if isinstance(source, dg.DagsterInstance) else source()
        for name, keys in ((PHOTO_PARTITIONS, photo_ids), (ATTENDEE_PARTITIONS, attendee_ids)):
            existing = set(instance.get_dynamic_partitions(name)) if keys else set()
            for key in keys:
                if key in existing:
                    instance.delete_dynamic_partition(name, key)
                    erasure.dagster_partitions += 1
        from picsaris_pipeline.orchestration.privacy_scrub import scrub_once

        erasure.dagster_rows_scrubbed = scrub_once(instance)
    except Exception as error:  # a broken Dagster store must not undo or hide the rest of the erasure
        from picsaris_pipeline.services.fault_lines import translate_fault

        known = translate_fault(error)  # a damaged file, named in one line
        detail = str(known) if known is not None else f"Dagster's storage ({type(error).__name__}: {error})"
        detail = detail.splitlines()[0] if detail else type(error).__name__
        logger.warning("Dagster storage not reached during erasure: %s", detail)
        erasure.unreached.append(detail)


def archive_event_partitions(repo: Repository, instance: dg.DagsterInstance, event_id: str) -> int:
    """Remove an archived event's photo and attendee partitions from Dagster (its records, matches
    and images stay), keeping the instance under Dagster's recommended 100,000 partitions per asset.
    Returns how many partitions were removed."""
    from picsaris_pipeline.orchestration.dagster_internals import delete_dynamic_partitions

    repo.get_event(event_id)
    removed = 0
    for name, ids in (
        (PHOTO_PARTITIONS, [p.id for p in repo.list_photos(event_id)]),
        (ATTENDEE_PARTITIONS, [a.id for a in repo.list_attendees(event_id)]),
    ):
        present = set(instance.get_dynamic_partitions(name)).intersection(ids)
        delete_dynamic_partitions(instance, name, present)
        removed += len(present)
    return removed
