"""Telling guests' galleries that a photo has new matches.

The embedded default only logs what it would send; production publishers (Supabase Realtime
broadcast, pg_notify) implement the same interface.
"""

from __future__ import annotations

import abc
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

logger = logging.getLogger("picsaris.realtime")


@dataclass(frozen=True)
class RealtimeMessage:
    topic: str  # "event:{event_id}" for the event's gallery, "attendee:{attendee_id}" for one guest
    event: str  # "photo_matched"
    payload: dict[str, Any] = field(default_factory=dict)
    private: bool = True


@dataclass(frozen=True)
class OutboxMessage:
    """A message waiting in (or delivered from) the outbox."""

    id: str
    photo_id: str
    message: RealtimeMessage
    attempts: int
    created_at: datetime


def photo_messages(
    event_id: str, photo_id: str, attendee_ids: Sequence[str], model_version: str
) -> list[RealtimeMessage]:
    """One message for the event's gallery, and one on each matched guest's private topic."""
    payload = {
        "event_id": event_id,
        "photo_id": photo_id,
        "attendee_ids": list(attendee_ids),
        "model_version": model_version,
    }
    messages = [RealtimeMessage(f"event:{event_id}", "photo_matched", payload)]
    messages += [
        RealtimeMessage(f"attendee:{attendee_id}", "photo_matched", {"event_id": event_id, "photo_id": photo_id})
        for attendee_id in attendee_ids
    ]
    return messages


class RealtimePublisher(abc.ABC):
    name: str

    @abc.abstractmethod
    def publish(self, messages: Sequence[RealtimeMessage]) -> int:
        """Send messages; returns how many were sent."""


class LogPublisher(RealtimePublisher):
    """Embedded default: writes each message to the log so a developer can see what guests would get."""

    name = "log"

    def publish(self, messages: Sequence[RealtimeMessage]) -> int:
        for message in messages:
            logger.info("realtime %s %s %s", message.topic, message.event, json.dumps(message.payload, sort_keys=True))
        return len(messages)
