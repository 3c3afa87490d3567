"""The object store interface every storage backend implements, and what a phone does with a ticket.

Keys are S3-style strings with "/" separators. They are validated here, once, so the local
directory store and the S3/R2 store accept exactly the same keys and a key can never name a path
outside the local root.
"""

from __future__ import annotations

import abc
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from picsaris_pipeline.errors import BadInputError, PicsarisError, RetryableError

MAX_KEY_BYTES = 1024  # S3's limit on a key's UTF-8 length
MAX_PAGE_SIZE = 1000  # S3 returns at most 1000 keys per ListObjectsV2 page
# SigV4 presigned URLs cannot live longer than 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

# Temp files written next to their target before os.replace; the local store's listing skips them.
TEMP_PREFIX = ".picsaris-tmp-"

# Status codes that mean "come back later" even though they are 4xx.
_RETRYABLE_4XX = frozenset({408, 429})


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime  # timezone-aware UTC
    etag: str | None = None


@dataclass(frozen=True)
class UploadTicket:
    """What a phone needs to PUT bytes directly to the store."""

    key: str
    url: str  # https://... presigned for S3; file:///abs/path for the local store
    method: str  # "PUT"
    headers: dict[str, str]  # headers the client must send (Content-Type)
    expires_at: datetime


def validate_key(key: str) -> str:
    """Return `key` unchanged if every store can hold it safely, else raise BadInputError."""
    if not isinstance(key, str) or not key:
        raise BadInputError(f"object key must be a non-empty string, got {key!r}")
    if key.startswith("/"):
        raise BadInputError(f"object key must be relative, got {key!r}")
    if "\\" in key:
        raise BadInputError(f"object key must use '/' separators, got {key!r}")
    if "//" in key:
        raise BadInputError(f"object key has an empty path segment: {key!r}")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise BadInputError(f"object key has a '.' or '..' segment: {key!r}")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise BadInputError(f"object key contains a control character: {key!r}")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadInputError(f"object key is longer than {MAX_KEY_BYTES} bytes")
    return key


def check_page_size(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise BadInputError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def check_delete_prefix(prefix: str) -> str:
    # An empty prefix would wipe the whole bucket; nothing in the pipeline needs that.
    if not prefix:
        raise BadInputError("delete_prefix needs a non-empty prefix")
    return prefix


def ticket_expiry(expires_in: int) -> datetime:
    if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
        raise BadInputError(f"expires_in must be between 1 and {MAX_PRESIGN_SECONDS} seconds, got {expires_in}")
    return datetime.now(UTC) + timedelta(seconds=expires_in)


class ObjectStore(abc.ABC):
    """Bytes by key. Implementations translate their own errors into picsaris_pipeline.errors."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store `data` under `key`, replacing any previous object (idempotent)."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the object's bytes; NotFoundError if there is none."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Return the object's metadata, or None if there is none."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is fine."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix` (non-empty); return how many."""

    @abc.abstractmethod
    def list(self, prefix: str = "", start_after: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Yield objects in lexicographic key order, keys > start_after, page by page."""

    @abc.abstractmethod
    def presign_put(self, key: str, content_type: str, expires_in: int = 900) -> UploadTicket:
        """Return a ticket a client can use to PUT the object's bytes without our credentials."""

    # Whether link() gives a URL a web page (the Dagster UI) can send a person to; a file:// URL is
    # not one: browsers do not follow it from an http page.
    links_open_from_web_pages: bool = True

    @abc.abstractmethod
    def link(self, key: str, expires_in: int = MAX_PRESIGN_SECONDS) -> str:
        """A URL a person can open to see the object (presigned GET for S3, file:// locally)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the objects live, for logs and the Dagster UI; never includes secrets."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as the target, so os.replace is a rename on one filesystem.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())  # the rename must not land before the bytes do
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _redacted(url: str) -> str:
    # A presigned URL's query string is a bearer credential: keep it out of error messages.
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def put_via_ticket(ticket: UploadTicket, data: bytes, timeout: float = 30) -> None:
    """Do what a phone does with a ticket: PUT `data` to its URL with its headers."""
    scheme = urllib.parse.urlsplit(ticket.url).scheme
    if scheme == "file":
        _put_file(ticket, data)
    elif scheme in ("http", "https"):
        _put_http(ticket, data, timeout)
    else:
        raise BadInputError(f"unsupported upload ticket URL scheme {scheme!r}")


def _put_file(ticket: UploadTicket, data: bytes) -> None:
    parts = urllib.parse.urlsplit(ticket.url)
    if parts.netloc not in ("", "localhost"):
        raise BadInputError(f"file ticket names a remote host: {parts.netloc!r}")
    # An S3 presigned URL stops working when it expires; the local ticket behaves the same.
    if datetime.now(UTC) >= ticket.expires_at:
        raise BadInputError(f"upload ticket for {ticket.key!r} expired at {ticket.expires_at}")
    atomic_write(Path(urllib.request.url2pathname(parts.path)), data)


def _put_http(ticket: UploadTicket, data: bytes, timeout: float) -> None:
    where = _redacted(ticket.url)
    request = urllib.request.Request(ticket.url, data=data, headers=ticket.headers, method=ticket.method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:  # before URLError: HTTPError is a subclass
        with error:
            body = error.read()[:200].decode("utf-8", errors="replace")
        message = f"PUT {where} failed with HTTP {error.code}: {body}"
        if error.code >= 500 or error.code in _RETRYABLE_4XX:
            raise RetryableError(message) from error
        if 400 <= error.code < 500:
            raise BadInputError(message) from error
        raise PicsarisError(message) from error  # e.g. a redirect, which urllib will not follow
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        # Connection refused/reset, DNS failure, timeout, truncated response: all transient.
        raise RetryableError(f"PUT {where} failed: {error}") from error
