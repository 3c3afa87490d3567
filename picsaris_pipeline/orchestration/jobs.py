"""Jobs the sensor, the CLI and the upload API launch (their names are part of the API contract)."""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from picsaris_pipeline.assets import ATTENDEE_ASSETS, EVENT_ASSETS, PHOTO_ASSETS
from picsaris_pipeline.assets.checks import HEALTH_CHECKS
from picsaris_pipeline.assets.photos import embeddings_stored, faces_detected, matches_published
from picsaris_pipeline.faces.registry import engine_class
from picsaris_pipeline.orchestration.partitions import (
    ATTENDEE_JOB,
    EVENT_SUMMARY_JOB,
    HEALTH_CHECKS_JOB,
    PHOTO_JOB,
    REEMBED_PHOTO_JOB,
)


# In-process executor: a photo's four steps are short and sequential; one process per step would
# cost more than the face work itself.
# Checks are left out of the per-photo runs (see assets/checks.py) and run in their own job.
def _steps_job(name: str, assets: Sequence[Any], description: str) -> Any:
    """A job over one item's steps, in one process, without the checks."""
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(*assets).without_checks(),
        executor_def=dg.in_process_executor,
        description=description,
    )


photo_job = _steps_job(PHOTO_JOB, PHOTO_ASSETS, "Verify, detect, embed and match one photo.")
attendee_job = _steps_job(
    ATTENDEE_JOB, ATTENDEE_ASSETS, "Reference vector from one attendee's selfie, then match them in existing photos."
)


def reembed_assets(engine: str) -> list[str]:
    """What a re-embedding runs per photo for an engine: detection too, since a new Rekognition face
    model means a new collection, and a new local model version may name another detector (YuNet
    or HOG). The same detector finds the same boxes again, which keeps the face rows. The same for
    every registered engine; an unregistered one is a ConfigurationError, not an empty job."""
    engine_class(engine)
    return ["faces_detected", "embeddings_stored", "matches_published"]


def reembed_photo_job(engine: str) -> Any:
    """Re-embedding a published photo under the configured model: detection (faces of another
    detector are stored beside the old ones, never replacing them), embeddings and matches. The
    photo stays `published` with its current matches meanwhile."""
    steps = [
        a for a in (faces_detected, embeddings_stored, matches_published) if a.key.path[-1] in reembed_assets(engine)
    ]
    return _steps_job(
        REEMBED_PHOTO_JOB, steps, "Re-embed and re-match one photo under the configured model version (backfills)."
    )


event_summary_job = dg.define_asset_job(
    EVENT_SUMMARY_JOB,
    selection=EVENT_ASSETS,
    executor_def=dg.in_process_executor,
    description="Refresh one event's summary.",
)
health_checks_job = dg.define_asset_job(
    HEALTH_CHECKS_JOB,
    selection=dg.AssetSelection.checks(*HEALTH_CHECKS),
    description="The asset checks an operator acts on (consent, stuck photos, missing references).",
)
health_checks_schedule = dg.ScheduleDefinition(
    job=health_checks_job, cron_schedule="*/10 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING
)
