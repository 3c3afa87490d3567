"""Embedding-model versions per event: which one guests see, when a re-embedding may take over,
and removing an old version once nobody needs it.

Vectors, engine ids and matches of several versions coexist while a re-embedding runs; only the
event's active version is shown to guests and announced. An event cuts over to a new version by
itself as soon as every published photo has been embedded and matched under it and every
consenting attendee has a reference under it and was searched for in the photos under it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.model import Event
from picsaris_pipeline.faces.engine import FaceEngine
from picsaris_pipeline.realtime import RealtimePublisher
from picsaris_pipeline.services.engine_strategy import strategy_for

logger = logging.getLogger("picsaris.versions")


def active_version(event: Event, configured: str) -> str:
    """The version whose matches guests see: the event's, or the configured one for an event that
    has not been processed yet."""
    return event.active_model_version or configured


@dataclass(frozen=True)
class CutOverStatus:
    event_id: str
    active: str | None
    target: str
    photos_left: int  # published photos not yet embedded and matched under target
    attendees_left: int  # consenting attendees not yet referenced and searched for under target

    @property
    def complete(self) -> bool:
        return self.photos_left == 0 and self.attendees_left == 0

    @property
    def current(self) -> bool:
        return self.active == self.target


def cut_over_status(repo: Repository, event_id: str, target: str) -> CutOverStatus:
    event = repo.get_event(event_id)
    return CutOverStatus(
        event_id,
        event.active_model_version,
        target,
        len(repo.photos_missing_version(target, event_id)),
        len(repo.attendees_missing_version(target, event_id)),
    )


def maybe_cut_over(repo: Repository, event_id: str, target: str) -> bool:
    """Make target the event's active version if the event is complete under it. True if it switched."""
    event = repo.get_event(event_id)
    if event.active_model_version in (None, target):
        if event.active_model_version is None:
            repo.set_active_model_version(event_id, target)
        return False
    status = cut_over_status(repo, event_id, target)
    if not status.complete:
        return False
    switched = repo.set_active_model_version(event_id, target, expected=event.active_model_version)
    if switched:
        logger.info("event %s cut over from %s to %s", event_id, event.active_model_version, target)
    return switched


def announce(event: Event, model_version: str) -> bool:
    """Guests hear about matches of the active version only (none of a re-embedding in progress)."""
    return event.active_model_version in (None, model_version)


def prune_old_versions(repo: Repository, event_id: str, engine: FaceEngine) -> dict[str, int]:
    """Delete what an event holds under versions other than its active one: vectors, engine ids,
    matches, messages, markers, and for a collection engine the old versions' collections.
    Refuses while the configured version is not the active one (a re-embedding is under way)."""
    event = repo.get_event(event_id)
    keep = event.active_model_version
    if keep is None:
        return {}
    if keep != engine.model_version:
        from picsaris_pipeline.errors import BadInputError

        raise BadInputError(
            f"event {event_id} still shows {keep} while {engine.model_version} is configured: finish the "
            f"re-embedding (picsaris reembed --event {event_id}) and let it cut over before pruning"
        )
    old = [version for version in repo.model_versions_in_use(event_id) if version != keep]
    strategy = strategy_for(engine)
    for version in old:
        strategy.drop_collection(event_id, version)
    deleted = repo.prune_versions(event_id, keep, keep_detector=engine.detector_version)
    deleted["versions"] = len(old)
    return deleted


# -- the matching policy ----------------------------------------------------------------------
def rematch_for_policy(
    repo: Repository,
    publisher: RealtimePublisher,
    event_id: str,
    model_version: str,
    min_similarity: float,
    engine: FaceEngine | None = None,
) -> list[str]:
    """Re-match the event's published photos last matched under another policy (or before there
    was one) under the current policy, and deliver what changed. Returns the photo ids re-matched.
    The matches_published code version carries the policy id too, so Dagster shows the same photos
    stale; this is the quick way for one event (picsaris match rematch)."""
    from picsaris_pipeline.services.delivery import deliver
    from picsaris_pipeline.services.photos import match_photo

    strategy = strategy_for(engine)
    policy_id = strategy.policy_id(min_similarity)
    done: list[str] = []
    for photo in repo.photos_matched_under_other_policy(event_id, model_version, policy_id):
        match_photo(repo, photo, model_version, min_similarity, strategy)
        deliver(repo, publisher, photo.id)
        done.append(photo.id)
    if done:
        logger.info("event %s: %d photo(s) re-matched under policy %s", event_id, len(done), policy_id)
    return done
