"""Uploads the way a phone makes them, and watching photos reach `published`."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .common import Outcome, UnexpectedDuplicate, upload_as_a_phone, wait_terminal_in
from .figures import note


# -- uploads, as a phone makes them ---------------------------------------------------------------
@dataclass
class Upload:
    photo_id: str
    path: Path
    uploader: str
    started: float  # time.time() before request_upload
    requested: float  # request_upload returned (the ticket)
    put_done: float  # the bytes are in the bucket: "upload complete"
    completed: float  # complete_upload (and the launch) returned


def upload(app: Any, launcher: Any, event_id: str, uploader_id: str, path: Path, batches: bool = True) -> Upload:
    """request_upload -> PUT with the ticket -> complete_upload, the way picsaris upload (and the
    upload API) does it; with a launcher, completing launches the photo's run on the webserver (or,
    with `batches`, queues it for the batch sensor when its uploader has another photo waiting). No
    launcher: the photo is `uploaded` and only the bucket sensor (or picsaris process) will run it."""
    try:
        made = upload_as_a_phone(
            app.repo,
            app.store,
            event_id,
            uploader_id,
            path.read_bytes(),
            path.name,
            on_uploaded=launcher.launch_photo if launcher else None,
            on_deferred=launcher.announce_photo if launcher and batches else None,
        )
    except UnexpectedDuplicate as duplicate:
        raise SystemExit(f"{duplicate}: the photo set is not distinct") from None
    return Upload(made.photo.id, path, uploader_id, made.started, made.requested, made.put_done, made.completed)


def upload_phases(uploads: Sequence[Upload]) -> str:
    """Medians of the three calls a phone makes, in milliseconds."""
    if not uploads:
        return "no uploads"
    request = statistics.median((u.requested - u.started) * 1000 for u in uploads)
    put = statistics.median((u.put_done - u.requested) * 1000 for u in uploads)
    complete = statistics.median((u.completed - u.put_done) * 1000 for u in uploads)
    return f"request {request:.0f} ms, PUT {put:.0f} ms, complete (+ launch) {complete:.0f} ms (medians)"


def steady_uploads(
    app: Any,
    launcher: Any,
    event_id: str,
    uploaders: Sequence[str],
    paths: Sequence[Path],
    rate: float,
    batches: bool = True,
) -> list[Upload]:
    """Photos arriving at a steady rate (photos/s), each from the next uploader in turn; every upload
    runs in its own thread from its scheduled moment on, as independent phones would."""
    results: list[Upload | BaseException | None] = [None] * len(paths)

    def one(i: int) -> None:
        try:
            results[i] = upload(app, launcher, event_id, uploaders[i % len(uploaders)], paths[i], batches)
        except BaseException as error:  # reported below, with the photo it belongs to
            results[i] = error

    threads = []
    start = time.monotonic()
    for i in range(len(paths)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=one, args=(i,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    for path, result in zip(paths, results, strict=True):
        if not isinstance(result, Upload):
            raise SystemExit(f"upload of {path.name} failed: {result!r}")
    return [r for r in results if isinstance(r, Upload)]


# -- watching photos reach `published` -----------------------------------------------------------
def wait_terminal(
    app: Any, event_id: str, photo_ids: Iterable[str], timeout: float, poll: float = 0.1
) -> dict[str, Outcome]:
    """Each photo's terminal status and the time the run wrote it (tests/support's wait_terminal),
    with a note of the photos that were still on their way when the timeout passed."""
    wanted = set(photo_ids)
    outcomes = wait_terminal_in(app.repo, event_id, wanted, timeout, poll)
    if missing := sorted(wanted - outcomes.keys()):
        note(f"timed out: {len(missing)} photo(s) not terminal, e.g. {missing[:3]}")
    return outcomes


def outbox_sent_at(app: Any, photo_ids: Iterable[str]) -> dict[str, float]:
    """When the outbox marked each photo's event-gallery message sent (the publisher took it)."""
    import sqlalchemy as sa

    from picsaris_pipeline.db import schema

    outbox = schema.realtime_outbox
    ids = list(photo_ids)
    query = (
        sa.select(outbox.c.photo_id, sa.func.min(outbox.c.sent_at))
        .where(outbox.c.photo_id.in_(ids))
        .where(outbox.c.topic.like("event:%"))
        .where(outbox.c.sent_at.is_not(None))
        .group_by(outbox.c.photo_id)
    )
    with app.repo.engine.connect() as conn:
        rows = conn.execute(query).all()
    result = {}
    for photo_id, sent in rows:
        if isinstance(sent, str):  # SQLite may hand back text for an aggregate
            sent = datetime.fromisoformat(sent)
        if sent.tzinfo is None:
            from datetime import UTC

            sent = sent.replace(tzinfo=UTC)
        result[photo_id] = sent.timestamp()
    return result


class NotifyListener:
    """LISTEN picsaris_realtime on the application database (PICSARIS_REALTIME=pg_notify): the time a
    guest's client would hear each photo's event-gallery message."""

    def __init__(self, dsn: str, channel: str = "picsaris_realtime") -> None:
        self.dsn = dsn.replace("postgresql+psycopg2://", "postgresql://", 1)
        self.channel = channel
        self.heard: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import select

        import psycopg2

        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {self.channel}")
        while not self._stop.is_set():
            if select.select([connection], [], [], 0.2) == ([], [], []):
                continue
            connection.poll()
            now = time.time()
            while connection.notifies:
                message = json.loads(connection.notifies.pop(0).payload)
                if message.get("topic", "").startswith("event:"):
                    self.heard.setdefault(message["payload"]["photo_id"], now)
        connection.close()

    def __enter__(self) -> NotifyListener:
        self._thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
