"""Invariants an operator acts on, as plain checks over the database (the asset checks call these)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.errors import ConfigurationError

# A photo's four steps take about a second; a quarter of an hour without progress means its run
# died or never started (queue stuck, daemon down) and someone should look.
DEFAULT_STUCK_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class Finding:
    passed: bool
    count: int
    summary: str
    examples: list[str] = field(default_factory=list)


def stuck_after(environ: dict[str, str] | None = None) -> timedelta:
    raw = (os.environ if environ is None else environ).get("PICSARIS_STUCK_AFTER_MINUTES")
    if not raw:
        return DEFAULT_STUCK_AFTER
    try:
        minutes = float(raw)
    except ValueError as error:
        raise ConfigurationError(f"PICSARIS_STUCK_AFTER_MINUTES must be a number, got {raw!r}") from error
    if minutes <= 0:
        raise ConfigurationError("PICSARIS_STUCK_AFTER_MINUTES must be positive")
    return timedelta(minutes=minutes)


def matches_without_consent(repo: Repository) -> Finding:
    count, examples = repo.matches_without_consent()
    return Finding(
        count == 0,
        count,
        "no match names an attendee without consent"
        if count == 0
        else f"{count} match(es) name attendees without consent",
        [f"photo {photo} / attendee {attendee}" for photo, attendee in examples],
    )


def stuck_photos(repo: Repository, older_than: timedelta, now: datetime | None = None) -> Finding:
    count, photos = repo.photos_stuck_since((now or datetime.now(UTC)) - older_than)
    return Finding(
        count == 0,
        count,
        f"no photo has been on its way for more than {older_than}"
        if count == 0
        else f"{count} photo(s) have not moved for more than {older_than}",
        [f"{p.id} ({p.file_name}): {p.status.value} since {p.updated_at:%Y-%m-%d %H:%M} UTC" for p in photos],
    )


# Delivery is retried every 30 s; five minutes of backlog means the publisher is down.
OUTBOX_BACKLOG_AFTER = timedelta(minutes=5)


def outbox_backlog(
    repo: Repository, older_than: timedelta = OUTBOX_BACKLOG_AFTER, now: datetime | None = None
) -> Finding:
    count = repo.outbox_backlog((now or datetime.now(UTC)) - older_than)
    return Finding(
        count == 0,
        count,
        "every realtime message was delivered"
        if count == 0
        else f"{count} realtime message(s) undelivered for more than {older_than}",
    )


def missing_references(repo: Repository, model_version: str) -> Finding:
    """Consenting attendees whose selfie has no reference vector under the current model yet."""
    waiting = [a for a in repo.attendees_needing_reference(model_version) if a.consent]
    return Finding(
        not waiting,
        len(waiting),
        f"every consenting attendee has a {model_version} reference"
        if not waiting
        else f"{len(waiting)} consenting attendee(s) have no {model_version} reference yet",
        [f"{a.id} ({a.name}, event {a.event_id})" for a in waiting[:20]],
    )
