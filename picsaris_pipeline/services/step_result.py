"""What a per-photo step did, as the materialization's metadata shows it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.model import Photo, PhotoStatus
from picsaris_pipeline.services.timing import Stopwatch

logger = logging.getLogger("picsaris.photos")


@dataclass
class StepResult:
    """What a step did to one photo; becomes the materialization's metadata."""

    photo: Photo
    status: PhotoStatus
    reason: str | None = None
    skipped: bool = False  # the photo stopped earlier (duplicate, rejected, failed)
    details: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    thumbnail_url: str | None = None  # link to the stored thumbnail (thumbnail_route: no picture in Dagster)


def skipped(photo: Photo) -> StepResult:
    return StepResult(photo, photo.status, photo.reason, skipped=True)


def reject(repo: Repository, photo: Photo, reason: str, watch: Stopwatch, **details: Any) -> StepResult:
    logger.info("photo %s rejected: %s", photo.id, reason)
    repo.update_photo(photo.id, PhotoStatus.REJECTED, reason=reason, **details)
    return StepResult(repo.get_photo(photo.id), PhotoStatus.REJECTED, reason, timings_ms=watch.ms)
