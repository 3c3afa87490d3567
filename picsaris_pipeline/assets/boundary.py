"""Where project errors become Dagster's: retry later, or fail without retrying."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from picsaris_pipeline.errors import PicsarisError, RetryableError
from picsaris_pipeline.services.photos import StepResult

# Steps retry with exponential back-off and jitter (1 s, 2 s, 4 s, each ±50%), so a throttled
# service or a restarted database is waited out without every run retrying in lockstep.
STEP_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# Steps that call the face engine share this Dagster pool. Its limit (dagster.yaml's
# `concurrency.pools`) caps concurrent engine calls across all runs: Rekognition's default quota is
# a few transactions per second per account and region, and dlib is bound by the machine's cores.
FACE_ENGINE_POOL = "face_engine"


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
    metadata: dict[str, Any] = {
        "status": result.status.value,
        "event_id": photo.event_id,
        "uploader_id": photo.uploader_id,
        "file_name": photo.file_name,
        "step_skipped": result.skipped,
    }
    if result.reason:
        metadata["reason"] = result.reason
    metadata.update(result.details)
    metadata.update(extra)
    if result.thumbnail_url:
        metadata["thumbnail"] = dg.MetadataValue.url(result.thumbnail_url)
    if result.preview_markdown:
        metadata["preview"] = dg.MetadataValue.md(result.preview_markdown)
    if result.timings_ms:
        metadata["timings_ms"] = dg.MetadataValue.json(result.timings_ms)
        metadata["step_ms"] = round(sum(result.timings_ms.values()), 1)
    return {k: v for k, v in metadata.items() if not isinstance(v, list)} | {
        k: dg.MetadataValue.json(v) for k, v in metadata.items() if isinstance(v, list)
    }


def run_step(step: Callable[[], StepResult], **extra: Any) -> dg.MaterializeResult:
    with dagster_errors():
        result = step()
    return dg.MaterializeResult(metadata=photo_metadata(result, **extra))
