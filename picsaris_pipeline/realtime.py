"""Telling guests' galleries that a photo has new matches.

Three publishers behind one interface: the embedded default only logs what it would send;
production posts to Supabase Realtime's REST broadcast endpoint (README.md, "Production"), or raises
``pg_notify`` on a plain PostgreSQL. Messages reach a publisher through the outbox
(services/delivery.py), which marks each one sent once the publisher took it.
"""

from __future__ import annotations

import abc
import functools
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from picsaris_pipeline.errors import BadInputError, ConfigurationError, PicsarisError, RetryableError
from picsaris_pipeline.settings import REALTIME_PUBLISHERS, Settings

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("picsaris.realtime")


@dataclass(frozen=True)
class RealtimeMessage:
    topic: str  # "event:{event_id}" for the event's gallery, "attendee:{attendee_id}" for one guest
    event: str  # "photo_matched"
    payload: dict[str, Any] = field(default_factory=dict)
    private: bool = True

    def as_json(self) -> dict[str, Any]:
        """The message as Supabase's broadcast API and our pg_notify payloads carry it (**contract**)."""
        return {"topic": self.topic, "event": self.event, "payload": self.payload, "private": self.private}


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


class PartialDeliveryError(PicsarisError):
    """The first `sent` messages of a publish went out (in order), then sending failed for the rest;
    `cause` says why (a RetryableError, a ConfigurationError, ...). The caller marks the first `sent`
    as delivered, so a retry sends only the rest."""

    def __init__(self, sent: int, total: int, cause: PicsarisError) -> None:
        super().__init__(f"sent {sent} of {total} realtime message(s), then: {cause}")
        self.sent = sent
        self.total = total
        self.cause = cause


class RealtimePublisher(abc.ABC):
    name: str

    @abc.abstractmethod
    def publish(self, messages: Sequence[RealtimeMessage]) -> int:
        """Send messages in order; returns how many were sent (all of them).

        On failure nothing is sent and a PicsarisError says why (RetryableError: try again later),
        except when some leading messages were already sent: then PartialDeliveryError(sent=n),
        chained from the failure, so the caller never sends those n again."""

    def close(self) -> None:  # noqa: B027 (an optional hook: most publishers hold nothing)
        """Release connections (tests; shutdown)."""


class LogPublisher(RealtimePublisher):
    """Embedded default: writes each message to the log so a developer can see what guests would get."""

    name = "log"

    def publish(self, messages: Sequence[RealtimeMessage]) -> int:
        for message in messages:
            logger.info("realtime %s %s %s", message.topic, message.event, json.dumps(message.payload, sort_keys=True))
        return len(messages)


# -- Supabase Realtime broadcast over REST -------------------------------------------------------
BROADCAST_PATH = "/realtime/v1/api/broadcast"
_EXCERPT_CHARS = 200


class SupabaseBroadcastPublisher(RealtimePublisher):
    """Production: ``POST {SUPABASE_URL}/realtime/v1/api/broadcast`` with the service role key,
    ``{"messages": [{"topic", "event", "payload", "private"}, ...]}``, at most batch_size a request.

    supabase-py has no synchronous broadcast (realtime's ``http_send`` is async, one message a
    request, on a newer endpoint), so this speaks the documented batch endpoint with httpx, the
    HTTP stack supabase-py itself uses; the project does not depend on supabase-py. A 2xx (Supabase
    answers 202) means the batch was taken.

    Delivery is at least once on an ambiguous failure: a request that timed out after it was
    written may have been broadcast; the payload carries photo_id so a gallery can ignore a repeat.
    """

    name = "supabase"

    def __init__(
        self,
        url: str,
        service_role_key: str,
        batch_size: int = 100,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        import httpx  # here, not at import: ~0.1 s that every run process would pay for the log default

        if not re.match(r"https?://[^/]", url or ""):
            raise ConfigurationError(f"SUPABASE_URL must be the project's http(s) URL, got {url!r}")
        if not service_role_key:
            raise ConfigurationError("the Supabase publisher needs SUPABASE_SERVICE_ROLE_KEY")
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
        self.endpoint = url.rstrip("/") + BROADCAST_PATH
        try:
            httpx.URL(self.endpoint)
        except httpx.InvalidURL as error:
            raise ConfigurationError(f"SUPABASE_URL is not a valid URL: {error}") from error
        self.batch_size = batch_size
        self.timeout = timeout
        self._key = service_role_key  # never in repr, logs or error messages
        self._owns_client = client is None
        # retries=1 retries only a failed connect, when nothing was sent: it cannot duplicate.
        self._client = client or httpx.Client(timeout=timeout, transport=httpx.HTTPTransport(retries=1))

    def __repr__(self) -> str:
        return f"SupabaseBroadcastPublisher(endpoint={self.endpoint!r}, batch_size={self.batch_size})"

    def publish(self, messages: Sequence[RealtimeMessage]) -> int:
        sent = 0
        for start in range(0, len(messages), self.batch_size):
            batch = messages[start : start + self.batch_size]
            try:
                self._post(batch)
            except PicsarisError as error:
                if sent:
                    raise PartialDeliveryError(sent, len(messages), error) from error
                raise
            sent += len(batch)
        if sent:
            logger.info("broadcast %d realtime message(s) to %s", sent, self.endpoint)
        return sent

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _post(self, batch: Sequence[RealtimeMessage]) -> None:
        import httpx

        body = json.dumps({"messages": [message.as_json() for message in batch]}, separators=(",", ":"))
        headers = {
            "apikey": self._key,
            "Authorization": f"Bearer {self._key}",
            "Content-Type": "application/json",
        }
        try:
            response = self._client.post(self.endpoint, content=body.encode(), headers=headers, timeout=self.timeout)
        except httpx.TransportError as error:  # connect refused, DNS, timeouts, dropped connections
            reason = self._redact(f"{type(error).__name__}: {error}")
            raise RetryableError(f"Supabase Realtime broadcast to {self.endpoint} failed: {reason}") from error
        self._check(response)

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        excerpt = self._redact(" ".join(response.text.split()))[:_EXCERPT_CHARS]
        detail = f"Supabase Realtime broadcast answered HTTP {status}" + (f": {excerpt}" if excerpt else "")
        if status in (401, 403):
            raise ConfigurationError(f"{detail} (check SUPABASE_SERVICE_ROLE_KEY: the project's service role key)")
        if status == 404 or 300 <= status < 400:
            raise ConfigurationError(f"{detail} (check SUPABASE_URL: the project URL, https://<ref>.supabase.co)")
        if status in (408, 429) or status >= 500:
            retry_after = response.headers.get("retry-after")
            raise RetryableError(detail + (f" (retry after {retry_after} s)" if retry_after else ""))
        # 400, 413, 422: the server refused these messages; a retry of the same batch will not help.
        raise PicsarisError(f"{detail} (the broadcast was refused)")

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***")


# -- pg_notify on plain PostgreSQL ---------------------------------------------------------------
NOTIFY_PAYLOAD_LIMIT = 8000  # bytes; PostgreSQL's default: a payload must be shorter than this
_CHANNEL = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # an unquoted identifier LISTEN can name


def notify_payload(message: RealtimeMessage) -> str:
    """The JSON a LISTEN-er receives (**contract**): {"topic","event","payload","private"}, compact, ASCII."""
    return json.dumps(message.as_json(), separators=(",", ":"))


class PgNotifyPublisher(RealtimePublisher):
    """Plain PostgreSQL: ``pg_notify(channel, json)`` per message, all of one publish in one
    transaction (listeners get them at commit, in order, or none). PostgreSQL drops a notification
    identical to one already raised in the same transaction; ours differ by topic.

    The notifications go through the repository (``OutboxRepository.notify``) over an engine of the
    publisher's own (``db.repository.unshared``), which close() disposes of."""

    name = "pg_notify"

    def __init__(self, database_url: str, channel: str = "picsaris_realtime") -> None:
        # Imported here: the repository imports this module for its message types.
        from picsaris_pipeline.db.repository import unshared

        try:
            self._repository = unshared(database_url)
        except ConfigurationError as error:
            raise ConfigurationError(f"pg_notify needs a PostgreSQL database URL: {error}") from error
        self._url = self._repository.url_without_password()
        dialect = self._repository.dialect_name
        if dialect != "postgresql":
            self._repository.dispose()
            raise ConfigurationError(
                f"pg_notify needs a PostgreSQL database URL (PICSARIS_DATABASE_URL), got a {dialect} one"
            )
        if not _CHANNEL.fullmatch(channel):
            raise ConfigurationError(
                f"pg_notify channel must be a lower-case identifier of 1-63 characters: {channel!r}"
            )
        self.channel = channel

    def __repr__(self) -> str:
        return f"PgNotifyPublisher({self._url!r}, channel={self.channel!r})"

    def publish(self, messages: Sequence[RealtimeMessage]) -> int:
        payloads: list[str] = []
        oversize: BadInputError | None = None
        for message in messages:
            payload = notify_payload(message)
            size = len(payload.encode())
            if size >= NOTIFY_PAYLOAD_LIMIT:
                oversize = BadInputError(
                    f"realtime message on {message.topic!r} is {size} bytes as a pg_notify payload; "
                    f"PostgreSQL takes fewer than {NOTIFY_PAYLOAD_LIMIT}"
                )
                break
            payloads.append(payload)
        if payloads:
            self._notify(payloads)
        if oversize is not None:
            if payloads:
                raise PartialDeliveryError(len(payloads), len(messages), oversize) from oversize
            raise oversize
        return len(payloads)

    def close(self) -> None:
        self._repository.dispose()

    def _notify(self, payloads: Sequence[str]) -> None:
        self._repository.notify(self.channel, payloads)
        logger.info("notified %d realtime message(s) on %s", len(payloads), self.channel)


# -- choosing one --------------------------------------------------------------------------------
def build_publisher(settings: Settings) -> RealtimePublisher:
    """The publisher PICSARIS_REALTIME names, built once per configuration per process (an
    httpx client and an engine pool are thread-safe and worth reusing)."""
    if settings.realtime == "log":
        return LogPublisher()
    if settings.realtime == "supabase":
        if not settings.supabase_url:
            raise ConfigurationError("PICSARIS_REALTIME=supabase needs SUPABASE_URL (the project URL)")
        if not settings.supabase_service_role_key:
            raise ConfigurationError("PICSARIS_REALTIME=supabase needs SUPABASE_SERVICE_ROLE_KEY")
        return _supabase_publisher(settings.supabase_url, settings.supabase_service_role_key)
    if settings.realtime == "pg_notify":
        return _pg_notify_publisher(settings.database_url)
    raise ConfigurationError(
        f"PICSARIS_REALTIME must be one of {', '.join(REALTIME_PUBLISHERS)}, got {settings.realtime!r}"
    )


@functools.lru_cache(maxsize=8)
def _supabase_publisher(url: str, service_role_key: str) -> SupabaseBroadcastPublisher:
    return SupabaseBroadcastPublisher(url, service_role_key)


@functools.lru_cache(maxsize=8)
def _pg_notify_publisher(database_url: str) -> PgNotifyPublisher:
    return PgNotifyPublisher(database_url)
