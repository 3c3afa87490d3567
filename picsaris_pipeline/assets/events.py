"""Per event: the operator's summary (photos by status and reason, matches per guest, timings, cost)."""

import dagster as dg

from picsaris_pipeline.assets.attendees import attendee_matches
from picsaris_pipeline.assets.boundary import lineage_only, step_asset
from picsaris_pipeline.assets.photos import matches_published
from picsaris_pipeline.orchestration.partitions import event_partitions
from picsaris_pipeline.orchestration.resources import DatabaseResource, FaceEngineResource, ObjectStoreResource
from picsaris_pipeline.services.face_clusters import unknown_people_metadata
from picsaris_pipeline.services.versions import active_version


@step_asset(
    event_partitions,
    "events",
    kinds={"polars"},
    deps=[lineage_only(matches_published), lineage_only(attendee_matches)],  # the event's photos and matches
)
def event_summary(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    face_engine: FaceEngineResource,
) -> dg.MaterializeResult:
    """One event at a glance, built with polars: photos by status and reason, faces and unmatched
    faces, matches per guest, duplicates, p50/p95 upload complete -> published, and what the event costs at the
    configured unit prices (PICSARIS_PRICE_*). `picsaris report` exports the same as CSV and HTML."""
    # polars is imported here, not at module level: every photo's run process loads this module, and
    # polars alone adds ~0.2 s to its start (python -X importtime).
    from picsaris_pipeline.services.summary import summarize_event, summary_markdown

    repo = database.repository()
    shown = active_version(repo.get_event(context.partition_key), face_engine.get().model_version)
    summary = summarize_event(repo, object_store.store(), context.partition_key, shown, database.settings.prices)
    unknown = unknown_people_metadata(repo, context.partition_key, shown)
    unknown["unknown_people_clusters"] = dg.MetadataValue.md(unknown["unknown_people_clusters"])
    numbers = {
        metric: summary.total(metric)
        for metric in ("photos", "published", "rejected", "duplicates", "failed", "in_progress", "matches")
    }
    return dg.MaterializeResult(
        metadata={
            "event": summary.event_name,
            "summary": dg.MetadataValue.md(summary_markdown(summary)),
            **{metric: int(value) for metric, value in numbers.items()},
            "upload_to_published_p50_s": summary.total("upload_to_published_p50_s"),
            "upload_to_published_p95_s": summary.total("upload_to_published_p95_s"),
            "cost_usd": float(summary.costs.filter(summary.costs["item"] == "total")["cost_usd"][0]),
            "model_version": summary.model_version,
            **unknown,
        }
    )
