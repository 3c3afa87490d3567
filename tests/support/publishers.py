"""Realtime publishers for tests: one that keeps what it was asked to send, one whose service is down."""

from __future__ import annotations

from collections.abc import Sequence

from picsaris_pipeline.errors import RetryableError
from picsaris_pipeline.realtime import RealtimeMessage, RealtimePublisher


class RecordingPublisher(RealtimePublisher):
    """Keeps what it was asked to send, as a guest's gallery would receive it."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[RealtimeMessage] = []

    def publish(self, messages: Sequence[RealtimeMessage]) -> int:
        self.sent.extend(messages)
        return len(messages)


class DownPublisher(RealtimePublisher):
    """A publisher whose service is unreachable."""

    name = "down"

    def publish(self, messages: Sequence[RealtimeMessage]) -> int:
        raise RetryableError("realtime service unreachable")
