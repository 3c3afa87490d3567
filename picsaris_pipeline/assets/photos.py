"""The per-photo asset chain. Each body reads its partition and calls one service function."""

from collections.abc import Callable
from functools import partial

import dagster as dg

from picsaris_pipeline.assets.attendees import attendee_reference
from picsaris_pipeline.assets.boundary import lineage_only, run_photo_step, step_asset
from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.orchestration.partitions import photo_partitions
from picsaris_pipeline.orchestration.resources import (
    DatabaseResource,
    FaceEngineResource,
    ObjectStoreResource,
    RealtimeResource,
)
from picsaris_pipeline.services import photos

GROUP = "photos"


@step_asset(photo_partitions, GROUP, kinds={"pillow", "s3"})
def verified_upload(
    context: dg.AssetExecutionContext, database: DatabaseResource, object_store: ObjectStoreResource
) -> dg.MaterializeResult:
    """The guest's upload checked and normalised: declared SHA-256 verified, exact duplicates in the
    event found, JPEG/PNG/HEIC/WebP decoded, EXIF orientation applied, converted to RGB and resized
    to at most 2400 px (stored as a derived JPEG). Undecodable photos end `rejected` with a reason."""
    return run_photo_step(context, database, lambda repo: partial(photos.verify_upload, repo, object_store.store()))


@step_asset(photo_partitions, GROUP, kinds={"dlib", "rekognition"}, deps=[verified_upload], calls_engine=True)
def faces_detected(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    face_engine: FaceEngineResource,
) -> dg.MaterializeResult:
    """Face boxes found in the verified photo, stored with the detector version. dlib detects on a
    reduced copy and maps the boxes back; Rekognition's IndexFaces detects and stores the faces in
    the event's collection in one call, and their engine face ids are recorded with the boxes."""
    return run_photo_step(
        context, database, lambda repo: partial(photos.detect_faces, repo, object_store.store(), face_engine.get())
    )


@step_asset(photo_partitions, GROUP, kinds={"dlib", "numpy", "rekognition"}, deps=[faces_detected], calls_engine=True)
def embeddings_stored(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    face_engine: FaceEngineResource,
) -> dg.MaterializeResult:
    """Every detected face's representation under the embedding model version that made it: a
    128-d vector in our database (dlib), or the face's id in the Rekognition collection of that
    face-model version (Rekognition never hands out vectors)."""
    return run_photo_step(
        context, database, lambda repo: partial(photos.store_embeddings, repo, object_store.store(), face_engine.get())
    )


@step_asset(
    photo_partitions,
    GROUP,
    kinds={"numpy", "sql", "rekognition"},
    deps=[embeddings_stored, lineage_only(attendee_reference)],  # matched against the guests' references
    calls_engine=True,
)
def matches_published(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    face_engine: FaceEngineResource,
    realtime: RealtimeResource,
) -> dg.MaterializeResult:
    """The photo's faces matched against the event's consenting attendees (same model version only):
    by vector distance (dlib) or one SearchUsers per face (Rekognition), each face to at most one
    guest; written to the database and announced to the matched guests' galleries."""

    def prepare(repo: Repository) -> Callable[[str], photos.StepResult]:
        store, publisher, engine, threshold = (
            object_store.store(),
            realtime.publisher(),
            face_engine.get(),
            face_engine.threshold(),
        )
        return lambda photo_id: photos.publish_matches(
            repo, store, publisher, photo_id, engine.model_version, threshold, engine
        )

    return run_photo_step(context, database, prepare, marks_outcome=True)
