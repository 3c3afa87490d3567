"""Faults injected for real: a run process killed mid-photo, the application's Postgres stopped in
the middle of a run and started again, and its connections dropped between steps. The final state
is exactly what a run without the fault leaves: no duplicated faces, vectors, matches or messages."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from picsaris_pipeline.assets import PHOTO_ASSETS
from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.faces.dlib_engine import DEFAULT_MODEL
from tests.support.cli_runner import picsaris
from tests.support.db_helpers import reading, update_rows
from tests.support.environment import BIN, IN_CI, fresh_database
from tests.support.photo_sets import OBAMA_AND_BIDEN

PHOTOS = OBAMA_AND_BIDEN


def _state(repo: Repository, event_id: str) -> dict[str, object]:
    """Everything a photo's run writes, in a comparable form (ids of rows made anew are left out)."""
    with reading(repo) as conn:
        faces = conn.execute(
            sa.select(t.photos.c.file_name, t.faces.c.face_index, t.faces.c.left, t.faces.c.top)
            .join(t.photos, t.photos.c.id == t.faces.c.photo_id)
            .where(t.faces.c.event_id == event_id)
        ).all()
        vectors = conn.execute(
            sa.select(t.face_vectors.c.face_id, t.face_vectors.c.model_version).where(
                t.face_vectors.c.event_id == event_id
            )
        ).all()
        matches = conn.execute(
            sa.select(t.photos.c.file_name, t.attendees.c.name, t.matches.c.model_version)
            .join(t.photos, t.photos.c.id == t.matches.c.photo_id)
            .join(t.attendees, t.attendees.c.id == t.matches.c.attendee_id)
            .where(t.matches.c.event_id == event_id)
        ).all()
        messages = conn.execute(
            sa.select(t.realtime_outbox.c.photo_id, t.realtime_outbox.c.topic, t.realtime_outbox.c.sent_at).where(
                t.realtime_outbox.c.event_id == event_id
            )
        ).all()
        statuses = conn.execute(
            sa.select(t.photos.c.file_name, t.photos.c.status, t.photos.c.face_count).where(
                t.photos.c.event_id == event_id
            )
        ).all()
    return {
        "faces": sorted(faces),
        "faces_unique": len(faces) == len({(f[0], f[1]) for f in faces}),
        "vectors": len(vectors),
        "vectors_unique": len(vectors) == len(set(vectors)),
        "matches": sorted(matches),
        "messages": len(messages),
        "messages_unique": len(messages) == len({(m[0], m[1]) for m in messages}),
        "messages_unsent": sum(1 for m in messages if m[2] is None),
        "statuses": sorted(statuses),
    }


def _event(run_cli, shared_photos) -> tuple[str, str]:
    event_id = run_cli("event", "create", "Faults").strip()
    obama = run_cli("attendee", "add", event_id, "--name", "Obama", "--selfie", str(shared_photos["obama_1.jpg"].path))
    run_cli("attendee", "add", event_id, "--name", "Biden", "--selfie", str(shared_photos["biden_2.jpg"].path))
    return event_id, obama.strip()


def test_a_run_process_killed_mid_photo_leaves_nothing_doubled_after_the_rerun(picsaris_home, shared_photos):
    from picsaris_pipeline.orchestration.app import App

    event_id, obama = _event(picsaris, shared_photos)
    picsaris("upload", event_id, "--uploader", obama, *[str(shared_photos[name].path) for name in PHOTOS])
    process = subprocess.Popen(
        [str(BIN / "picsaris"), "process"], env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    repo = App.from_env().repo
    deadline = time.monotonic() + 240
    # Kill once two photos are published and the third is on its way (any of its steps).
    while len(repo.list_photos(event_id, [PhotoStatus.PUBLISHED])) < 2:
        assert process.poll() is None and time.monotonic() < deadline, "processing stopped before the kill"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted = [p for p in repo.list_photos(event_id) if p.status is not PhotoStatus.PUBLISHED]
    assert interrupted, "everything was published before the kill"

    picsaris("process")  # the re-run: photos left mid-way are taken up again from their status
    after_fault = _state(repo, event_id)

    for photo in repo.list_photos(event_id):  # the reference: every photo run once more, cleanly
        repo.reset_for_rerun([photo.id])
    picsaris("process")
    clean = _state(repo, event_id)
    assert after_fault["faces_unique"] and after_fault["vectors_unique"] and after_fault["messages_unique"]
    assert after_fault["messages_unsent"] == 0
    assert after_fault == clean
    assert {status for _, status, _ in after_fault["statuses"]} == {"published"}  # type: ignore[union-attr]


def test_process_sends_what_a_run_killed_between_publishing_and_delivery_left_queued(picsaris_home, shared_photos):
    """The window the kill above can hit: the photo is published, its messages are committed but
    never sent. No daemon runs the outbox sensor on the embedded default, so `picsaris process`
    drains the outbox itself."""
    from picsaris_pipeline.orchestration.app import App

    event_id, obama = _event(picsaris, shared_photos)
    picsaris("upload", event_id, "--uploader", obama, str(shared_photos["obama_2.jpg"].path))
    picsaris("process")
    repo = App.from_env().repo
    # The state a SIGKILL right after the status update leaves.
    queued = update_rows(repo, t.realtime_outbox, t.realtime_outbox.c.event_id == event_id, sent_at=None)
    assert queued >= 2  # the photo's topic and Obama's private topic

    from click.testing import CliRunner

    from picsaris_pipeline.cli import main

    result = CliRunner().invoke(main, ["process"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"delivered {queued} queued realtime message(s)" in result.output
    assert _state(repo, event_id)["messages_unsent"] == 0


def _pg_ctl(action: str) -> None:
    """Stop or start the machine's cluster (a no-op if it is already in that state)."""
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", sorted(os.listdir("/etc/postgresql"))[-1], "main"]
    running = subprocess.run([*command, "status"], capture_output=True, timeout=60).returncode == 0
    if running == (action == "start"):
        return
    subprocess.run([*command, action], check=True, capture_output=True, timeout=120)


@pytest.fixture
def restartable_postgres(postgres_server):
    """The machine's Postgres, which this test may stop and start (it must be a local cluster)."""
    if not Path("/etc/postgresql").is_dir() or os.geteuid() != 0:
        if IN_CI:
            pytest.fail("the fault tests need to restart the machine's PostgreSQL (pg_ctlcluster, as root)")
        pytest.skip("cannot restart PostgreSQL here (no local cluster or not root)")
    yield postgres_server
    _pg_ctl("start")  # whatever happened, leave it running


def _pipeline_on(url: str, tmp_path: Path, instance, shared_photos):
    from tests.support.pipeline_helpers import Pipeline

    pipeline = Pipeline.build(tmp_path, instance, database_url=url)
    event = pipeline.event()
    obama = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    assert pipeline.run_attendee(obama.id).success
    photo = pipeline.upload(event, obama, shared_photos["group_two_people.jpg"].path.read_bytes(), "group.jpg")
    return pipeline, event, photo


def test_postgres_restarted_in_the_middle_of_a_run_is_waited_out(restartable_postgres, tmp_path, shared_photos):
    import dagster as dg

    with (
        fresh_database(restartable_postgres, "picsaris_fault") as url,
        dg.instance_for_test() as instance,
    ):
        pipeline, event, photo = _pipeline_on(url, tmp_path, instance, shared_photos)
        assert pipeline.run_photo(photo.id, PHOTO_ASSETS[:1]).success  # verified
        _pg_ctl("stop")  # the database goes away between two steps of the photo's run ...
        outcome: dict[str, object] = {}
        worker = threading.Thread(target=lambda: outcome.update(result=pipeline.run_photo(photo.id)))
        worker.start()
        time.sleep(1.0)
        _pg_ctl("start")  # ... and comes back while the step waits for its retry
        worker.join(timeout=120)
        result = outcome["result"]
        assert result.success  # type: ignore[attr-defined]
        retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # type: ignore[attr-defined]
        assert retried, "the fault never reached the run"
        after_fault = _state(pipeline.repo, event.id)
        pipeline.repo.reset_for_rerun([photo.id])
        assert pipeline.run_photo(photo.id).success
        assert _state(pipeline.repo, event.id) == after_fault
        assert after_fault["matches"] == [("group.jpg", "Barack Obama", DEFAULT_MODEL)]


def test_connections_dropped_between_steps_change_nothing(restartable_postgres, tmp_path, shared_photos):
    import dagster as dg

    with (
        fresh_database(restartable_postgres, "picsaris_drop") as url,
        dg.instance_for_test() as instance,
    ):
        pipeline, event, photo = _pipeline_on(url, tmp_path, instance, shared_photos)
        database = url.rsplit("/", 1)[1]
        admin = sa.create_engine(restartable_postgres, isolation_level="AUTOCOMMIT")
        assert pipeline.run_photo(photo.id, PHOTO_ASSETS[:2]).success  # verified, faces detected
        with admin.connect() as conn:  # a proxy restart, a network blip: every connection of the app is cut
            dropped = conn.execute(
                sa.text("select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = :db"),
                {"db": database},
            ).scalar_one()
        admin.dispose()
        assert dropped >= 1
        assert pipeline.run_photo(photo.id).success
        after_fault = _state(pipeline.repo, event.id)
        pipeline.repo.reset_for_rerun([photo.id])
        assert pipeline.run_photo(photo.id).success
        assert _state(pipeline.repo, event.id) == after_fault
