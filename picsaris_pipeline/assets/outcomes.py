"""Each photo's outcome marked on its own partition, so an operator tells rejected, failed and
duplicate photos from published ones without opening them.

Why partitioned asset checks, measured on dagster-webserver 1.13.27:
- The asset's own partition list colours a partition by its materialization only (materialized,
  failed, in progress, missing: AssetPartitionStatus in the UI). "Failed" needs the run that planned
  the partition to end in failure without materializing it. A batch run materializes its whole range
  in one step, so failing one corrupt photo would fail its batch-mates too, and a bad file would
  read as a crash to the failure sensor. A rejected upload is an outcome, not an error: its step
  succeeds, and the rest of its batch goes on.
- A check with a partitions definition (a preview in 1.13) keeps one status per partition, listed
  on the check's page (verified_upload > Checks > the check > Partitions: red for failed, green for
  passed) and counted in the asset's health. The last step logs one evaluation per photo with the
  photo's partition (context.log_event), which works in batch runs too, where an AssetCheckResult
  cannot name a partition.
Two checks, so the two outcomes stay apart in those lists: rejected or failed (ERROR) and duplicate
(WARN). Running a check from the UI evaluates the photo's current status the same way.
"""

import warnings
from dataclasses import dataclass

import dagster as dg

from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.orchestration.dagster_internals import AssetCheckEvaluationTargetMaterializationData
from picsaris_pipeline.orchestration.partitions import photo_partitions
from picsaris_pipeline.orchestration.resources import DatabaseResource

# Checked on verified_upload, where an upload is accepted or not, and evaluated by the last step
# (matches_published), where every photo's outcome is known and its verified_upload is stored: the
# UI counts an evaluation only when it names the partition's latest materialization.
CHECKED_ASSET = dg.AssetKey("verified_upload")
UPLOAD_ACCEPTED = "upload_accepted"
NOT_A_DUPLICATE = "not_a_duplicate"


@dataclass(frozen=True)
class Verdict:
    check_name: str
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str


def verdicts(status: str, reason: str | None) -> list[Verdict]:
    """What the photo's status says about each outcome check (the reason names no person or file)."""
    stopped = status in (PhotoStatus.REJECTED, PhotoStatus.FAILED)
    duplicate = status == PhotoStatus.DUPLICATE
    return [
        Verdict(
            UPLOAD_ACCEPTED,
            not stopped,
            dg.AssetCheckSeverity.ERROR,
            f"{status}: {reason}" if stopped else status,
        ),
        Verdict(
            NOT_A_DUPLICATE,
            not duplicate,
            dg.AssetCheckSeverity.WARN,
            f"duplicate: {reason}" if duplicate else status,
        ),
    ]


def _checked_materialization(
    instance: dg.DagsterInstance, photo_id: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CHECKED_ASSET, asset_partitions=[photo_id]), limit=1
    ).records
    if not found:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=found[0].storage_id, run_id=found[0].run_id, timestamp=found[0].timestamp
    )


def log_outcome(context: dg.AssetExecutionContext, photo_id: str, status: str, reason: str | None) -> None:
    """Mark the photo's partition of both checks with its outcome."""
    target = _checked_materialization(context.instance, photo_id)
    for verdict in verdicts(status, reason):
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=CHECKED_ASSET,
                check_name=verdict.check_name,
                passed=verdict.passed,
                severity=verdict.severity,
                description=verdict.description,
                partition=photo_id,
                target_materialization_data=target,
            )
        )


def _outcome_check(check_name: str, description: str) -> dg.AssetChecksDefinition:
    # A partitioned check is a preview in Dagster 1.13 (chosen above, knowingly): its PreviewWarning,
    # printed by every process that loads the code location, tells operators nothing.
    def outcome(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
        photo = database.repository().find_photo(context.partition_key)
        if photo is None:
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.WARN, description="no such photo (erased)"
            )
        verdict = next(v for v in verdicts(photo.status.value, photo.reason) if v.check_name == check_name)
        return dg.AssetCheckResult(passed=verdict.passed, severity=verdict.severity, description=verdict.description)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.asset_check(
            asset=CHECKED_ASSET, name=check_name, partitions_def=photo_partitions, description=description
        )(outcome)


OUTCOME_CHECKS = [
    _outcome_check(
        UPLOAD_ACCEPTED,
        "Fails for a photo that was rejected (corrupt, wrong checksum, no image) or failed, with the reason.",
    ),
    _outcome_check(
        NOT_A_DUPLICATE, "Warns for a photo that duplicates another of its event (never matched a second time)."
    ),
]
