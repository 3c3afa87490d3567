"""Invariants an operator acts on, as plain checks over the database (the asset checks call these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.db.repository.rows import Counted
from picsaris_pipeline.settings import Settings


@dataclass(frozen=True)
class Finding:
    passed: bool
    count: int
    summary: str
    examples: list[str] = field(default_factory=list)


def _finding(count: int, passed: str, failed: str, examples: list[str] | None = None) -> Finding:
    """A check that passes when it found nothing: `passed` says so, `failed` says what it found."""
    return Finding(count == 0, count, passed if count == 0 else failed, examples or [])


def _counted_finding(found: Counted[str], passed: str, failed: str) -> Finding:
    """_finding of what a repository check counted; `failed` names the count as {count}."""
    return _finding(found.total, passed, failed.format(count=found.total), found.examples)


def stuck_after(environ: dict[str, str] | None = None) -> timedelta:
    """PICSARIS_STUCK_AFTER_MINUTES (Settings.stuck_after) from `environ`, default the process's."""
    return Settings.from_env(environ).stuck_after


def matches_without_consent(repo: Repository) -> Finding:
    count, examples = repo.matches_without_consent()
    return _finding(
        count,
        "no match names an attendee without consent",
        f"{count} match(es) name attendees without consent",
        [f"photo {photo} / attendee {attendee}" for photo, attendee in examples],
    )


def stuck_photos(repo: Repository, older_than: timedelta, now: datetime | None = None) -> Finding:
    count, photos = repo.photos_stuck_since((now or datetime.now(UTC)) - older_than)
    return _finding(
        count,
        f"no photo has been on its way for more than {older_than}",
        f"{count} photo(s) have not moved for more than {older_than}",
        [f"{p.id}: {p.status.value} since {p.updated_at:%Y-%m-%d %H:%M} UTC" for p in photos],
    )


# Delivery is retried every 30 s; five minutes of backlog means the publisher is down.
OUTBOX_BACKLOG_AFTER = timedelta(minutes=5)


def outbox_backlog(
    repo: Repository, older_than: timedelta = OUTBOX_BACKLOG_AFTER, now: datetime | None = None
) -> Finding:
    count = repo.outbox_backlog((now or datetime.now(UTC)) - older_than)
    return _finding(
        count,
        "every realtime message was delivered",
        f"{count} realtime message(s) undelivered for more than {older_than}",
    )


def missing_references(repo: Repository, model_version: str) -> Finding:
    """Consenting attendees whose selfie has no reference vector under the current model yet."""
    waiting = [a for a in repo.attendees_needing_reference(model_version) if a.consent]
    return _finding(
        len(waiting),
        f"every consenting attendee has a {model_version} reference",
        f"{len(waiting)} consenting attendee(s) have no {model_version} reference yet",
        [f"{a.id} (event {a.event_id})" for a in waiting[:20]],  # ids only: checks are kept in Dagster
    )


def version_mixing(repo: Repository) -> Finding:
    """Matches whose face or attendee has no representation under the match's own model version."""
    return _counted_finding(
        repo.version_mixing(),
        "every match compares a face and a reference of its own model version",
        "{count} match(es) pair representations of different model versions (or lost them)",
    )


def active_version_gaps(repo: Repository, configured: str) -> Finding:
    """Published photos never matched under their event's active version: guests see nothing there.
    Expected for photos published after a model change and before the event cut over."""
    return _counted_finding(
        repo.published_without_active_version(configured),
        "every published photo is matched under its event's active model version",
        "{count} published photo(s) are not matched under their event's active model version",
    )


def malformed_vectors(repo: Repository, dimensions: dict[str, int]) -> Finding:
    """Vectors with NaN or infinite values, zero length, or a dimension other than their model's
    (dimensions: model version -> expected dimension; versions not listed must agree among themselves)."""
    import numpy as np

    bad: list[str] = []
    count = 0
    seen_dimension: dict[str, int] = dict(dimensions)
    for kind, version, dimension, blob in repo.vectors_by_version():
        vector = np.frombuffer(blob, dtype="<f4")
        expected = seen_dimension.setdefault(version, dimension)
        problem = None
        if dimension != expected or vector.size != expected:
            problem = f"dimension {vector.size}, expected {expected}"
        elif not np.isfinite(vector).all():
            problem = "NaN or infinite values"
        elif not np.any(vector):
            problem = "all zeros"
        if problem:
            count += 1
            if len(bad) < 20:
                bad.append(f"{kind} vector under {version}: {problem}")
    return _finding(
        count, "every stored vector is finite and of its model's dimension", f"{count} malformed vector(s)", bad
    )


def face_data_without_consent(repo: Repository) -> Finding:
    """Attendees without consent who still have a reference vector, an engine user or a reference
    marked ready: what a withdrawal racing a selfie's embedding would leave if a write skipped its
    consent re-check."""
    return _counted_finding(
        repo.face_data_without_consent(),
        "no attendee without consent has face data",
        "{count} attendee(s) without consent still have face data",
    )
