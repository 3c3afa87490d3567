"""Delivering the realtime outbox: batched, each message marked sent once the publisher took it;
a failed delivery stays queued with its error and is retried by the next drain."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.errors import PicsarisError
from picsaris_pipeline.realtime import RealtimePublisher

logger = logging.getLogger("picsaris.delivery")


@dataclass(frozen=True)
class Delivery:
    sent: int
    pending: int  # still queued after a failed attempt
    error: str | None = None


def deliver(repo: Repository, publisher: RealtimePublisher, photo_id: str | None = None, limit: int = 500) -> Delivery:
    queued = repo.unsent_messages(photo_id, limit)
    if not queued:
        return Delivery(0, 0)
    ids = [item.id for item in queued]
    try:
        publisher.publish([item.message for item in queued])
    except PicsarisError as error:
        # The matches are committed either way; the guests hear about them on a later drain.
        repo.note_delivery_failure(ids, str(error))
        logger.warning("realtime delivery of %d message(s) failed: %s", len(ids), error)
        return Delivery(0, len(ids), str(error))
    repo.mark_messages_sent(ids)
    return Delivery(len(ids), 0)
