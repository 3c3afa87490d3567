"""The per-attendee asset chain: sign-up selfie -> reference vector -> matches in existing photos."""

import dagster as dg

from picsaris_pipeline.assets.boundary import dagster_errors, step_asset
from picsaris_pipeline.orchestration.partitions import attendee_partitions
from picsaris_pipeline.orchestration.resources import (
    DatabaseResource,
    FaceEngineResource,
    ObjectStoreResource,
    RealtimeResource,
)
from picsaris_pipeline.services import attendees
from picsaris_pipeline.services.consent import redraw_thumbnails

GROUP = "attendees"


@step_asset(attendee_partitions, GROUP, kinds={"dlib", "numpy", "rekognition"}, calls_engine=True)
def attendee_reference(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    face_engine: FaceEngineResource,
) -> dg.MaterializeResult:
    """The attendee's reference from their sign-up selfie (largest face), under the current model
    version: a vector (dlib), or a Rekognition user with the selfie's face associated. A selfie
    without a usable face marks the attendee `rejected` with a reason; no consent, no face data."""
    with dagster_errors():
        attendee, details, timings = attendees.build_reference(
            database.repository(), object_store.store(), face_engine.get(), context.partition_key
        )
    metadata = {
        "event_id": attendee.event_id,
        "consent": attendee.consent,
        "reference_status": attendee.reference_status.value,
        **details,
        "timings_ms": dg.MetadataValue.json(timings),
    }
    if attendee.reason:
        metadata["reason"] = attendee.reason
    return dg.MaterializeResult(metadata=metadata)


@step_asset(
    attendee_partitions, GROUP, kinds={"numpy", "sql", "rekognition"}, deps=[attendee_reference], calls_engine=True
)
def attendee_matches(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    face_engine: FaceEngineResource,
    realtime: RealtimeResource,
) -> dg.MaterializeResult:
    """Photos already published in the event that this attendee appears in: late joiners see the
    photos taken before they signed up, and those photos' pictures are drawn again with their name."""
    engine, repo = face_engine.get(), database.repository()
    with dagster_errors():
        found = attendees.match_late_joiner(
            repo, realtime.publisher(), context.partition_key, engine.model_version, face_engine.threshold(), engine
        )
        event_id = repo.get_attendee(context.partition_key).event_id
        redrawn = redraw_thumbnails(repo, object_store.store(), engine, event_id, found)
    return dg.MaterializeResult(
        metadata={"photos_matched": len(found), "photo_ids": dg.MetadataValue.json(found), "pictures_redrawn": redrawn}
    )
