"""Finding uploads in the bucket that nobody announced (the sensor's logic, without Dagster).

Why not dagster-aws's `get_objects`: it lists the whole prefix every tick and tracks only the
newest last-modified time, so objects written in the same second as the cursor, or listed late,
are missed. Here the cursor is a position in a rolling, paginated scan of the key space: every key
is seen once per pass whatever its timestamp, and whether a key still needs a run is decided by
the database record and the set of existing partitions, not by the cursor. Repeats are harmless:
the sensor's run keys make Dagster launch each photo once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.keys import parse_key
from picsaris_pipeline.domain.model import Attendee, Photo, PhotoStatus, ReferenceStatus
from picsaris_pipeline.storage import ObjectStore

logger = logging.getLogger("picsaris.discovery")

SCAN_PREFIX = "events/"
# A photo that has a partition but has not moved for this long lost its run (a launch that failed
# after the partition was added, a run that never started): request it again, once per window.
STALE_AFTER = timedelta(minutes=10)
# '~' sorts after every character of our ids and of '/', so starting after "<prefix>~" skips the
# whole derived-image subtree of one photo event in a single listing call.
_SKIP_SUFFIX = "~"


@dataclass(frozen=True)
class ScanCursor:
    after: str = ""  # the last key handled; "" starts a new pass at the beginning
    passes: int = 0  # completed passes over the whole bucket

    def serialize(self) -> str:
        return json.dumps({"after": self.after, "passes": self.passes})

    @classmethod
    def parse(cls, raw: str | None) -> ScanCursor:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(str(data.get("after", "")), int(data.get("passes", 0)))
        except (ValueError, TypeError, AttributeError):
            logger.warning("unreadable sensor cursor %r; starting a new pass", raw)
            return cls()


@dataclass
class ScanResult:
    photo_ids: list[str] = field(default_factory=list)  # new: no partition yet
    stale_photo_ids: list[str] = field(default_factory=list)  # partition exists, no progress for STALE_AFTER
    attendee_ids: list[str] = field(default_factory=list)
    stale_attendee_ids: list[str] = field(default_factory=list)  # pending, partition exists, no progress
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    keys_seen: int = 0
    cursor: ScanCursor = field(default_factory=ScanCursor)


def _listing(store: ObjectStore, start_after: str, page_size: int) -> Iterable[str]:
    """Keys under SCAN_PREFIX after start_after, skipping each event's derived/ subtree."""
    after = max(start_after, SCAN_PREFIX)
    while True:
        restarted = False
        for info in store.list(SCAN_PREFIX, start_after=after, page_size=page_size):
            parts = info.key.split("/")
            if len(parts) > 3 and parts[2] == "derived":
                after = "/".join(parts[:3]) + "/" + _SKIP_SUFFIX
                restarted = True
                break
            yield info.key
        if not restarted:
            return


def scan_bucket(
    store: ObjectStore,
    repo: Repository,
    cursor: ScanCursor,
    photo_partitions: set[str],
    attendee_partitions: set[str],
    max_runs: int = 200,
    max_keys: int = 20_000,
    page_size: int = 1000,
    now: datetime | None = None,
) -> ScanResult:
    """One tick: continue the rolling scan from the cursor; return photos and attendees to run.

    At most max_runs are returned (a burst larger than that continues next tick from where this
    one stopped) and at most max_keys are listed, so a tick stays bounded on a huge bucket. Records
    are read one query per page of keys, not one per key."""
    result = ScanResult()
    stale_before = (now or datetime.now(UTC)) - STALE_AFTER
    last = cursor.after
    listing = iter(_listing(store, cursor.after, page_size))
    while True:
        page = list(islice(listing, page_size))
        if not page:
            result.cursor = ScanCursor("", cursor.passes + 1)  # reached the end: next tick starts a new pass
            break
        records = _Records.load(repo, page)
        stopped = False
        for key in page:
            result.keys_seen += 1
            last = key
            decision = _classify(records, key, photo_partitions, attendee_partitions, stale_before)
            if decision is not None:
                kind, value = decision
                if kind == "photo":
                    result.photo_ids.append(value)
                elif kind == "stale":
                    result.stale_photo_ids.append(value)
                elif kind == "attendee":
                    result.attendee_ids.append(value)
                elif kind == "stale_attendee":
                    result.stale_attendee_ids.append(value)
                else:
                    result.ignored.append((key, value))
            requested = len(result.photo_ids) + len(result.stale_photo_ids)
            requested += len(result.attendee_ids) + len(result.stale_attendee_ids)
            if requested >= max_runs or result.keys_seen >= max_keys:
                stopped = True
                break
        if stopped:
            result.cursor = ScanCursor(last, cursor.passes)
            break
    for key, why in result.ignored:
        logger.warning("ignoring bucket object %s: %s", key, why)
    return result


@dataclass(frozen=True)
class _Records:
    """The intake records of one page of keys, read in two queries."""

    photos: dict[str, Photo]
    attendees: dict[str, Attendee]

    @classmethod
    def load(cls, repo: Repository, keys: list[str]) -> _Records:
        parsed = [p for p in (parse_key(key) for key in keys) if p is not None]
        photo_ids = [p.object_id for p in parsed if p.kind == "photo"]
        attendee_ids = [p.object_id for p in parsed if p.kind != "photo"]
        return cls(repo.photos_by_ids(photo_ids), repo.attendees_by_ids(attendee_ids))


def _classify(
    records: _Records, key: str, photo_partitions: set[str], attendee_partitions: set[str], stale_before: datetime
) -> tuple[str, str] | None:
    """('photo' | 'stale' | 'attendee', id) to run, ('ignored', why) to report, None to pass over."""
    parsed = parse_key(key)
    if parsed is None:
        return ("ignored", "key does not follow the upload contract")
    if parsed.kind == "photo":
        photo = records.photos.get(parsed.object_id)
        if photo is None:
            return ("ignored", "no record made by intake for this object")
        if photo.object_key != key or photo.event_id != parsed.event_id or photo.uploader_id != parsed.uploader_id:
            return ("ignored", "key does not match the photo record made by intake")
        if not (photo.status is PhotoStatus.PENDING_UPLOAD or photo.status.needs_processing):
            return None
        if photo.id not in photo_partitions:
            return ("photo", photo.id)
        return ("stale", photo.id) if photo.updated_at < stale_before else None
    attendee = records.attendees.get(parsed.object_id)
    if attendee is None:
        return ("ignored", "no record made by intake for this object")
    if attendee.selfie_key != key:
        return ("ignored", "key does not match the attendee's selfie record")
    if attendee.reference_status is not ReferenceStatus.PENDING or not attendee.consent:
        return None
    if attendee.id not in attendee_partitions:
        return ("attendee", attendee.id)
    # Pending with a partition: its run is on its way, or it lost it (or consent was given back).
    moved = attendee.updated_at or attendee.created_at
    return ("stale_attendee", attendee.id) if moved < stale_before else None
