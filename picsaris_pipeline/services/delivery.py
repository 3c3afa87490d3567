"""Delivering the realtime outbox: batched, each message marked sent once the publisher took it;
what a failed delivery did not send stays queued with its error and is retried by the next drain."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.errors import PicsarisError
from picsaris_pipeline.realtime import PartialDeliveryError, RealtimePublisher

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
    sent = len(ids)
    error: str | None = None
    try:
        publisher.publish([item.message for item in queued])
    except PartialDeliveryError as partial:
        # Publishers send in order: the first partial.sent went out and must never go out again.
        sent, error = partial.sent, str(partial)
    except PicsarisError as failure:
        # The matches are committed either way; the guests hear about them on a later drain.
        sent, error = 0, str(failure)
    if sent:
        repo.mark_messages_sent(ids[:sent])
    if error is None:
        return Delivery(sent, 0)
    repo.note_delivery_failure(ids[sent:], error)
    logger.warning("realtime delivery of %d of %d message(s) failed: %s", len(ids) - sent, len(ids), error)
    return Delivery(sent, len(ids) - sent, error)


def drain(repo: Repository, publisher: RealtimePublisher) -> Delivery:
    """Deliver everything still queued, batch after batch, until the outbox is empty or a batch
    fails. Where no daemon runs the outbox sensor (`picsaris process`), this is what catches
    messages a killed run committed but never sent."""
    sent = 0
    while True:
        delivery = deliver(repo, publisher)
        sent += delivery.sent
        if delivery.error or delivery.sent == 0:
            return Delivery(sent, delivery.pending, delivery.error)
