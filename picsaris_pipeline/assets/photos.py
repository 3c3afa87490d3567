"""The per-photo asset chain. Each body reads its partition and calls one service function."""

import dagster as dg

from picsaris_pipeline.assets.boundary import STEP_RETRY_POLICY, run_step
from picsaris_pipeline.partitions import photo_partitions
from picsaris_pipeline.resources import DatabaseResource, FaceEngineResource, ObjectStoreResource, RealtimeResource
from picsaris_pipeline.services import photos

GROUP = "photos"


@dg.asset(retry_policy=STEP_RETRY_POLICY, partitions_def=photo_partitions, group_name=GROUP, kinds={"pillow", "s3"})
def verified_upload(
    context: dg.AssetExecutionContext, database: DatabaseResource, object_store: ObjectStoreResource
) -> dg.MaterializeResult:
    """The guest's upload checked and normalised: declared SHA-256 verified, exact duplicates in the
    event found, JPEG/PNG/HEIC/WebP decoded, EXIF orientation applied, converted to RGB and resized
    to at most 2400 px (stored as a derived JPEG). Undecodable photos end `rejected` with a reason."""
    return run_step(lambda: photos.verify_upload(database.repository(), object_store.store(), context.partition_key))


@dg.asset(
    retry_policy=STEP_RETRY_POLICY,
    partitions_def=photo_partitions,
    group_name=GROUP,
    deps=[verified_upload],
    kinds={"dlib"},
)
def faces_detected(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    face_engine: FaceEngineResource,
) -> dg.MaterializeResult:
    """Face boxes found in the verified photo (detected on a reduced copy, mapped back), stored with
    the detector version."""
    return run_step(
        lambda: photos.detect_faces(
            database.repository(), object_store.store(), face_engine.get(), context.partition_key
        )
    )


@dg.asset(
    retry_policy=STEP_RETRY_POLICY,
    partitions_def=photo_partitions,
    group_name=GROUP,
    deps=[faces_detected],
    kinds={"dlib", "numpy"},
)
def embeddings_stored(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    face_engine: FaceEngineResource,
) -> dg.MaterializeResult:
    """One vector per detected face, stored under the embedding model version that made it."""
    return run_step(
        lambda: photos.store_embeddings(
            database.repository(), object_store.store(), face_engine.get(), context.partition_key
        )
    )


@dg.asset(
    retry_policy=STEP_RETRY_POLICY,
    partitions_def=photo_partitions,
    group_name=GROUP,
    deps=[embeddings_stored],
    kinds={"numpy", "sql"},
)
def matches_published(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    face_engine: FaceEngineResource,
    realtime: RealtimeResource,
) -> dg.MaterializeResult:
    """The photo's faces matched against the event's consenting attendees (same model version only),
    written to the database and announced to the matched guests' galleries."""
    engine = face_engine.get()
    return run_step(
        lambda: photos.publish_matches(
            database.repository(),
            object_store.store(),
            realtime.publisher(),
            context.partition_key,
            engine.model_version,
            face_engine.threshold(),
        )
    )
