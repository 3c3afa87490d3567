"""Work leases: `picsaris process` claims each photo and attendee before running it, so two
processes at once (or a process beside the daemon's sensors) split the work instead of paying for
it twice; the holder renews its leases while it works, and a killed holder's leases run out, after
which the next process takes its work.

A lease is a row in `work_leases` (item, holder, expires_at), claimed with a conditional
insert/update (Repository.claim_lease). Every holder also keeps a lease on itself (kind
`holder`): its heartbeat, which tells a run it left STARTED (orchestration/abandoned_runs.py) from a live one.

On SQLite every process shares one machine (the database is a local file), so a holder whose
process is gone is known dead at once, without waiting for its leases to run out.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.settings import DEFAULT_LEASE_SECONDS as DEFAULT_LEASE_SECONDS
from picsaris_pipeline.settings import Settings

logger = logging.getLogger("picsaris.leases")

PHOTO = "photo"
ATTENDEE = "attendee"
HOLDER = "holder"  # a holder's lease on itself: its heartbeat


def lease_seconds(environ: dict[str, str] | None = None) -> int:
    """PICSARIS_LEASE_SECONDS: how long a lease lasts unless renewed (renewed every third of it),
    so how long a killed process's work waits on another machine before it is taken up again."""
    return Settings.from_env(environ).lease_seconds


def new_holder_id() -> str:
    """host:pid:random, unique per process run (a pid is reused, the random part is not)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def holder_process_gone(holder: str) -> bool:
    """True if `holder` ran on this host and its process no longer exists. False when unsure
    (another host, a pid now used by another process): then only the lease's expiry tells."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname()[:60] or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, under another user
        return False
    return False


def same_machine_only(repo: Repository) -> bool:
    """A SQLite database is a local file: every holder runs on this machine."""
    return repo.is_sqlite


def holder_alive(repo: Repository, holder: str, now: datetime | None = None) -> bool:
    """Whether `holder` still works: its heartbeat lease is running (and, on SQLite, its process
    exists)."""
    if same_machine_only(repo) and holder_process_gone(holder):
        return False
    heartbeat = repo.leases_on(HOLDER, [holder]).get(holder)
    return heartbeat is not None and heartbeat.expires_at > (now or datetime.now(UTC))


@dataclass
class Claimer:
    """One holder's claims on a repository (one per process; worker processes share their
    parent's holder id, whose keeper renews all of them)."""

    repo: Repository
    holder: str
    seconds: int
    # (repo, kind, ids) -> those still needing their run. Another process may finish an item
    # between this one listing it and claiming it (its lease already released): checked after
    # winning the lease, so the item is not run twice.
    still_pending: Callable[[Repository, str, list[str]], set[str]] | None = None
    _dead: set[str] = field(default_factory=set)

    def claim(self, kind: str, item_ids: Sequence[str]) -> list[str]:
        """The items this holder holds now and that still need their run, in the order given; the
        rest are someone else's or done already."""
        won = [item for item in item_ids if self.repo.claim_lease(kind, item, self.holder, self.seconds)]
        if len(won) < len(item_ids) and same_machine_only(self.repo):
            lost = [item for item in item_ids if item not in won]
            if self._expire_dead_holders(kind, lost):
                retaken = {item for item in lost if self.repo.claim_lease(kind, item, self.holder, self.seconds)}
                won = [item for item in item_ids if item in retaken or item in won]
        if self.still_pending is not None and won:
            pending = self.still_pending(self.repo, kind, won)
            if done := [item for item in won if item not in pending]:
                self.release(kind, done)
                won = [item for item in won if item in pending]
        return won

    def _expire_dead_holders(self, kind: str, item_ids: Sequence[str]) -> bool:
        """End the leases of holders whose process is gone (same machine only); True if any."""
        holders = {holder for holder, _ in self.repo.leases_on(kind, item_ids).values()}
        dead = {holder for holder in holders if holder != self.holder and holder_process_gone(holder)}
        for holder in dead - self._dead:
            self.repo.expire_leases(holder)
        self._dead |= dead
        return bool(dead)

    def release(self, kind: str, item_ids: Sequence[str]) -> None:
        self.repo.release_leases(self.holder, kind, item_ids)


class LeaseKeeper:
    """Holds a holder's heartbeat and renews all its leases every third of their length, in a
    thread, until closed; closing releases them all."""

    def __init__(
        self,
        repo: Repository,
        holder: str | None = None,
        seconds: int | None = None,
        still_pending: Callable[[Repository, str, list[str]], set[str]] | None = None,
    ) -> None:
        self.claimer = Claimer(repo, holder or new_holder_id(), seconds or lease_seconds(), still_pending)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="picsaris-lease-keeper", daemon=True)

    @property
    def holder(self) -> str:
        return self.claimer.holder

    @property
    def seconds(self) -> int:
        return self.claimer.seconds

    def __enter__(self) -> LeaseKeeper:
        self.claimer.repo.claim_lease(HOLDER, self.holder, self.holder, self.claimer.seconds)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.claimer.seconds / 3):
            try:
                self.claimer.repo.renew_leases(self.holder, self.claimer.seconds)
            except Exception as error:  # a database blip: the next renewal (well before expiry) tries again
                logger.warning("could not renew the leases of %s: %s", self.holder, error)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.claimer.repo.release_leases(self.holder)


def held_elsewhere(repo: Repository, kind: str, item_ids: Sequence[str]) -> set[str]:
    """The items a live holder has a running lease on: a `picsaris process` is running them, so
    the daemon's sensors leave them alone (a holder that dies lets them go stale, and the sensors'
    stale-photo relaunch or the next process takes them up)."""
    now = datetime.now(UTC)
    running = {
        item: holder for item, (holder, expires_at) in repo.leases_on(kind, item_ids).items() if expires_at > now
    }
    alive = {holder: holder_alive(repo, holder, now) for holder in set(running.values())}
    return {item for item, holder in running.items() if alive[holder]}
