"""The code location: assets, jobs, sensors and resources.

`defs` is built when Dagster loads the code location (module `__getattr__`), not at import: the
assets' code versions name the configured face engine's detector and model versions, so changing
`PICSARIS_FACE_MODEL` marks `embeddings_stored` and everything downstream stale, per partition,
while `faces_detected` stays fresh when only the embedding model changed (dlib). Resources still
read the rest of their configuration (one Settings) when a run first uses them.
"""

from __future__ import annotations

import functools
from typing import Any

import dagster as dg

from picsaris_pipeline.assets import ATTENDEE_ASSETS, EVENT_ASSETS, PHOTO_ASSETS
from picsaris_pipeline.assets.checks import HEALTH_CHECKS
from picsaris_pipeline.assets.outcomes import OUTCOME_CHECKS
from picsaris_pipeline.faces.engine import EngineVersions, configured_versions
from picsaris_pipeline.faces.registry import engine_class
from picsaris_pipeline.orchestration.jobs import (
    attendee_job,
    event_summary_job,
    health_checks_job,
    health_checks_schedule,
    photo_job,
    reembed_photo_job,
)
from picsaris_pipeline.orchestration.resources import (
    DatabaseResource,
    FaceEngineResource,
    ObjectStoreResource,
    RealtimeResource,
)
from picsaris_pipeline.sensors import bucket_sensor, photo_failure_sensor, realtime_outbox_sensor, upload_batch_sensor
from picsaris_pipeline.sensors.abandoned import abandoned_run_sensor
from picsaris_pipeline.sensors.retention import event_archive_sensor
from picsaris_pipeline.services.policy_matching import collection_policy_id, policy_for
from picsaris_pipeline.settings import Settings

# Bump when decoding, orientation or resizing changes what verified_upload writes.
IMAGING_CODE_VERSION = "imaging-v2"  # v2: perceptual hash, near-duplicates


def code_versions(versions: EngineVersions, match_threshold: float | None) -> dict[str, str]:
    """Asset name -> code version under one engine configuration."""
    # The match policy's id names every parameter: a change of policy makes every photo's matches stale.
    if engine_class(versions.engine).keeps_vectors:  # we match its vectors with our policy
        policy = policy_for(match_threshold).id
    else:  # a collection engine matches server-side under the plain threshold
        policy = collection_policy_id(match_threshold) if match_threshold is not None else "collection-default"
    matching = f"{versions.model_version}/{policy}"
    return {
        "verified_upload": IMAGING_CODE_VERSION,
        "faces_detected": versions.detector_version,
        "embeddings_stored": versions.model_version,
        "matches_published": matching,
        "attendee_reference": versions.model_version,
        "attendee_matches": matching,
        "event_summary": "summary-v1",
    }


def _versioned(assets: list[dg.AssetsDefinition], versions: dict[str, str]) -> list[dg.AssetsDefinition]:
    return [
        asset.map_asset_specs(lambda spec: spec.replace_attributes(code_version=versions[spec.key.path[-1]]))
        for asset in assets
    ]


@functools.lru_cache(maxsize=4)
def _build(engine: str, model: str | None, match_threshold: float | None) -> dg.Definitions:
    versions = code_versions(configured_versions(engine, model), match_threshold)
    return dg.Definitions(
        assets=_versioned([*PHOTO_ASSETS, *ATTENDEE_ASSETS, *EVENT_ASSETS], versions),
        asset_checks=[*HEALTH_CHECKS, *OUTCOME_CHECKS],
        jobs=[photo_job, attendee_job, reembed_photo_job(engine), event_summary_job, health_checks_job],
        schedules=[health_checks_schedule],
        # Runs Dagster builds itself (asset backfills, materializing from the UI): one process per
        # run, as the photo jobs, instead of one per step.
        executor=dg.in_process_executor,
        sensors=[
            bucket_sensor,
            upload_batch_sensor,
            photo_failure_sensor,
            realtime_outbox_sensor,
            abandoned_run_sensor,
            event_archive_sensor,
        ],
        resources={
            "database": DatabaseResource(),
            "object_store": ObjectStoreResource(),
            "face_engine": FaceEngineResource(),
            "realtime": RealtimeResource(),
        },
    )


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return _build(settings.face_engine, settings.face_model, settings.match_threshold)


def __getattr__(name: str) -> Any:
    if name == "defs":
        return build_definitions()
    raise AttributeError(name)


@dg.definitions
def location() -> dg.Definitions:
    """The code location for loaders that name only the module (`dg`, pyproject's [tool.dagster]):
    the module-level `__getattr__` above is invisible to their module scan, this is not."""
    return build_definitions()
