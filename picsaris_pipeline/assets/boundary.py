"""Where project errors become Dagster's: retry later, or fail without retrying."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg

from picsaris_pipeline.assets.outcomes import log_outcome
from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.errors import ConfigurationError, PicsarisError, RetryableError
from picsaris_pipeline.orchestration.dagster_internals import add_partition_metadata
from picsaris_pipeline.orchestration.resources import DatabaseResource
from picsaris_pipeline.services.photos import StepResult, mark_failed

logger = logging.getLogger("picsaris.batches")

# Steps retry with exponential back-off and jitter (1 s, 2 s, 4 s, each ±50%), so a throttled
# service or a restarted database is waited out without every run retrying in lockstep.
STEP_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# Steps that call the face engine share this Dagster pool. Its limit (deploy/dagster.yaml's
# `concurrency.pools`) caps concurrent engine calls across all runs: Rekognition's default quota is
# a few transactions per second per account and region, and dlib is bound by the machine's cores.
FACE_ENGINE_POOL = "face_engine"

# Two retries, one per layer: STEP_RETRY_POLICY retries a step, _one_of_a_batch one photo of a batch step.
# A batch run (a range of photo partitions) retries one photo's throttled or dropped call in place,
# as often and as patiently as STEP_RETRY_POLICY retries a step, so the photo does not hold up the
# rest of its batch and the step is not repeated for the photos already done.
PHOTO_ATTEMPTS = 1 + STEP_RETRY_POLICY.max_retries


def step_asset(
    partitions_def: dg.PartitionsDefinition,
    group_name: str,
    kinds: set[str],
    deps: Sequence[dg.AssetsDefinition | dg.AssetDep] = (),
    calls_engine: bool = False,
) -> Callable[[Callable[..., dg.MaterializeResult]], dg.AssetsDefinition]:
    """`dg.asset` as every pipeline step is declared: retried with back-off (STEP_RETRY_POLICY),
    one partition per photo, attendee or event, and in the face engine's pool when it calls it."""
    return dg.asset(
        retry_policy=STEP_RETRY_POLICY,
        partitions_def=partitions_def,
        group_name=group_name,
        deps=list(deps),
        kinds=kinds,
        pool=FACE_ENGINE_POOL if calls_engine else None,
    )


# An edge between the photo, attendee and event groups, drawn so the lineage reads like the flow, that
# ties no partition to another. The partitions are unrelated dynamic sets (an event's photos are
# known to the database, not to Dagster), so the only other mapping, AllPartitionMapping, makes every
# partition depend on every upstream one: measured on a test instance, one new photo in any event
# then marks every event's summary stale (and one new attendee every photo), until 100 upstream
# partitions, past which Dagster stops tracking the edge at all; and a backfill of both assets holds
# every summary until every photo is done. With no partition mapped, staleness and backfills stay
# per group, as they were; the jobs and sensors order the work.
def lineage_only(upstream: dg.AssetsDefinition) -> dg.AssetDep:
    return dg.AssetDep(upstream, partition_mapping=dg.SpecificPartitionsPartitionMapping([]))


PICTURE_LABEL = "picture"  # the metadata entry linking the photo drawn with its face boxes


@contextmanager
def dagster_errors() -> Iterator[None]:
    """RetryableError (throttling, a dropped connection) propagates, so STEP_RETRY_POLICY retries
    the step; any other project error fails it at once, since retrying bad input cannot help.
    Bad photos never get here: they are recorded as rejected and the step succeeds."""
    try:
        yield
    except RetryableError:
        raise
    except PicsarisError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error


def photo_metadata(result: StepResult, **extra: Any) -> dict[str, Any]:
    photo = result.photo
    metadata: dict[str, Any] = {}
    if result.thumbnail_url:
        # First, so it heads the partition's metadata: one click to the photo with its boxes. A link
        # only (http route locally, presigned GET on a bucket): the picture stays out of Dagster.
        metadata[PICTURE_LABEL] = dg.MetadataValue.url(result.thumbnail_url)
    metadata |= {
        "status": result.status.value,
        "event_id": photo.event_id,
        "uploader_id": photo.uploader_id,  # ids, counts and statuses only: no names, file names or pictures
        "step_skipped": result.skipped,
    }
    if result.reason:
        metadata["reason"] = result.reason
    metadata.update(result.details)
    metadata.update(extra)
    if result.timings_ms:
        metadata["timings_ms"] = dg.MetadataValue.json(result.timings_ms)
        metadata["step_ms"] = round(sum(result.timings_ms.values()), 1)
    return {k: v for k, v in metadata.items() if not isinstance(v, list)} | {
        k: dg.MetadataValue.json(v) for k, v in metadata.items() if isinstance(v, list)
    }


def _backoff(attempt: int) -> float:
    """STEP_RETRY_POLICY's delay before retry `attempt` (1, 2, 4 s ... each +-50%)."""
    return float(STEP_RETRY_POLICY.delay or 1.0) * 2**attempt * random.uniform(0.5, 1.5)


def _one_of_a_batch(step: Callable[[str], StepResult], photo_id: str) -> StepResult | str:
    """The step's result for one photo of a batch, or why the photo failed. A misconfigured
    deployment fails the whole step (every photo would fail the same way)."""
    for attempt in range(PHOTO_ATTEMPTS):
        try:
            return step(photo_id)
        except RetryableError as error:
            if attempt + 1 == PHOTO_ATTEMPTS:
                return f"gave up after {PHOTO_ATTEMPTS} attempts: {error}"
            logger.warning("photo %s: %s; retrying", photo_id, error)
            time.sleep(_backoff(attempt))
        except ConfigurationError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error
        except PicsarisError as error:
            return str(error)
        except Exception as error:  # a bug one photo hits must not cost its batch-mates their step
            logger.exception("photo %s: unexpected error", photo_id)
            return f"{type(error).__name__}: {error}"
    raise AssertionError("unreachable")


# The run's photos, by run id: the latest run only. Each `context.partition_keys` of a range run reads
# the whole `photos` partition set (120,000 keys: ~0.4 s of CPU), and a run's steps execute one after
# another in one process (the in-process executor), so its later steps reuse the first step's answer.
_run_partition_keys: dict[str, list[str]] = {}


def run_partition_keys(context: dg.AssetExecutionContext) -> list[str]:
    """`context.partition_keys`, resolved once per run in this process."""
    run_id = context.run.run_id
    if run_id not in _run_partition_keys:
        _run_partition_keys.clear()
        _run_partition_keys[run_id] = list(context.partition_keys)
    return _run_partition_keys[run_id]


def run_photo_step(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    prepare: Callable[[Repository], Callable[[str], StepResult]],
    marks_outcome: bool = False,
) -> dg.MaterializeResult:
    """The step for each photo of the run; `prepare` builds the per-photo function once per step
    (store, engine and publisher resolved once for the whole batch). A run of one photo behaves as
    a plain step: errors go to the retry policy. A batch run (a partition range) isolates its photos:
    a photo that still fails after its own retries is marked `failed` with the reason, the later
    steps skip it, and the other photos go on. Each photo's partition carries its own metadata; the
    step's summarises the batch. With `marks_outcome` (the last step) each photo's partition of the
    outcome checks (outcomes.py) is marked too."""
    with dagster_errors():
        repo = database.repository()
        step = prepare(repo)
    photo_ids = run_partition_keys(context)
    if len(photo_ids) == 1:
        with dagster_errors():
            result = step(photo_ids[0])
        if marks_outcome:
            log_outcome(context, photo_ids[0], result.status.value, result.reason)
        return dg.MaterializeResult(metadata=photo_metadata(result))
    statuses: Counter[str] = Counter()
    targeted = frozenset(photo_ids)  # the range, resolved once: each lookup of it reads every photo partition
    for photo_id in photo_ids:
        outcome = _one_of_a_batch(step, photo_id)
        if isinstance(outcome, StepResult):
            metadata = photo_metadata(outcome)
        else:
            mark_failed(repo, photo_id, f"{context.asset_key.to_user_string()}: {outcome}")
            metadata = {"status": "failed", "reason": outcome, "step_skipped": False}
        statuses[metadata["status"]] += 1
        if marks_outcome:
            log_outcome(context, photo_id, metadata["status"], metadata.get("reason"))
        add_partition_metadata(context, targeted, photo_id, metadata)
    return dg.MaterializeResult(
        metadata={"batch_photos": len(photo_ids), "batch_statuses": dg.MetadataValue.json(dict(statuses))}
    )
