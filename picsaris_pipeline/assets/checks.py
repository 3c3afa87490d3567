"""Asset checks an operator acts on. They run on a schedule (ops_health_checks) and on demand from
the UI, not inside every photo's run, where they would add event writes to the latency path."""

from collections.abc import Callable

import dagster as dg

from picsaris_pipeline.assets.attendees import attendee_reference
from picsaris_pipeline.assets.photos import embeddings_stored, matches_published, verified_upload
from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.orchestration.resources import DatabaseResource, FaceEngineResource
from picsaris_pipeline.services import health


def _result(finding: health.Finding, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=finding.passed,
        severity=severity,
        description=finding.summary,
        metadata={"count": finding.count, "examples": dg.MetadataValue.json(finding.examples)},
    )


def _database_check(
    asset: dg.AssetsDefinition,
    name: str,
    description: str,
    finding: Callable[[Repository], health.Finding],
    severity: dg.AssetCheckSeverity,
) -> dg.AssetChecksDefinition:
    """A check whose finding needs only the application database."""

    @dg.asset_check(asset=asset, name=name, description=description)
    def database_check(database: DatabaseResource) -> dg.AssetCheckResult:
        return _result(finding(database.repository()), severity)

    return database_check


no_matches_without_consent = _database_check(
    matches_published,
    "no_matches_without_consent",
    "Must be zero: matches naming an attendee without consent.",
    health.matches_without_consent,
    dg.AssetCheckSeverity.ERROR,
)


@dg.asset_check(
    asset=verified_upload,
    description="Photos stuck in a non-terminal status longer than PICSARIS_STUCK_AFTER_MINUTES (default 15).",
)
def no_stuck_photos(database: DatabaseResource) -> dg.AssetCheckResult:
    finding = health.stuck_photos(database.repository(), database.settings.stuck_after)
    return _result(finding, dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset=attendee_reference,
    description="Consenting attendees without a reference (vector or Rekognition user) under the configured model.",
)
def references_complete(database: DatabaseResource, face_engine: FaceEngineResource) -> dg.AssetCheckResult:
    finding = health.missing_references(database.repository(), face_engine.get().model_version)
    return _result(finding, dg.AssetCheckSeverity.WARN)


realtime_outbox_backlog = _database_check(
    matches_published,
    "realtime_outbox_backlog",
    "Realtime messages of published photos still undelivered after 5 minutes (publisher down?).",
    health.outbox_backlog,
    dg.AssetCheckSeverity.WARN,
)


no_version_mixing = _database_check(
    matches_published,
    "no_version_mixing",
    "Must be zero: matches pairing a face and a reference of different model versions.",
    health.version_mixing,
    dg.AssetCheckSeverity.ERROR,
)


@dg.asset_check(
    asset=matches_published,
    description="Published photos not matched under their event's active model version (guests see nothing "
    "for them): expected between a model change and the event's cut-over, a bug otherwise.",
)
def active_version_complete(database: DatabaseResource, face_engine: FaceEngineResource) -> dg.AssetCheckResult:
    finding = health.active_version_gaps(database.repository(), face_engine.get().model_version)
    return _result(finding, dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset=embeddings_stored, description="Must be zero: stored vectors with NaN/inf values or a wrong dimension."
)
def vectors_well_formed(database: DatabaseResource, face_engine: FaceEngineResource) -> dg.AssetCheckResult:
    engine = face_engine.get()
    dimensions = engine.vector_dimensions()
    return _result(health.malformed_vectors(database.repository(), dimensions), dg.AssetCheckSeverity.ERROR)


no_face_data_without_consent = _database_check(
    attendee_reference,
    "no_face_data_without_consent",
    "Must be zero: attendees without consent who still have a reference vector, an engine user "
    "or a reference marked ready.",
    health.face_data_without_consent,
    dg.AssetCheckSeverity.ERROR,
)


HEALTH_CHECKS = [
    no_matches_without_consent,
    no_stuck_photos,
    references_complete,
    realtime_outbox_backlog,
    no_version_mixing,
    active_version_complete,
    vectors_well_formed,
    no_face_data_without_consent,
]
