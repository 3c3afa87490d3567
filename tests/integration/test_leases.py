"""Work leases: two `picsaris process` at once split an event's photos instead of running each
twice; a lease is won by exactly one of many concurrent claimers (SQLite and Postgres); a dead
holder's lease runs out and the next claimer takes the work; a run a killed process left STARTED
is marked failed by the next `picsaris process`, which then finishes its photos."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg

from picsaris_pipeline.db.repository import connect
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.orchestration.partitions import PHOTO_JOB, run_photo_ids
from picsaris_pipeline.services.leases import PHOTO, Claimer, LeaseKeeper, holder_alive, new_holder_id
from tests.support.cli_runner import picsaris
from tests.support.environment import BIN
from tests.support.photo_sets import OBAMA_AND_BIDEN

PHOTOS = [*OBAMA_AND_BIDEN, "tom_cruise_1.jpg"]


# -- the claim itself ---------------------------------------------------------------------------
def test_each_item_is_won_by_exactly_one_of_many_concurrent_claimers(database_url):
    repo = connect(database_url)
    items = [f"photo-{n:02d}" for n in range(40)]
    claimers = 8
    start = threading.Barrier(claimers)
    won: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def claim_all(holder: str) -> None:
        try:
            start.wait()
            won[holder] = [item for item in items if repo.claim_lease(PHOTO, item, holder, 60)]
        except BaseException as error:  # reported below: a thread's exception would be lost
            errors.append(error)

    threads = [threading.Thread(target=claim_all, args=(f"holder-{n}",)) for n in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    winners = Counter(item for holder_items in won.values() for item in holder_items)
    assert winners == Counter({item: 1 for item in items})  # every item once, none twice
    stored = repo.leases_on(PHOTO, items)
    assert {item: holder for holder, holder_items in won.items() for item in holder_items} == {
        item: holder for item, (holder, _) in stored.items()
    }


def test_a_lease_of_a_holder_that_stopped_renewing_runs_out_and_the_next_claimer_takes_it(database_url):
    repo = connect(database_url)
    assert repo.claim_lease(PHOTO, "p1", "dead-holder", 5)
    assert not repo.claim_lease(PHOTO, "p1", "next-holder", 5)  # still running
    assert repo.claim_lease(PHOTO, "p1", "dead-holder", 5)  # its holder may take it again
    later = datetime.now(UTC) + timedelta(seconds=6)
    assert repo.claim_lease(PHOTO, "p1", "next-holder", 5, now=later)
    assert repo.leases_on(PHOTO, ["p1"])["p1"].holder == "next-holder"
    assert repo.renew_leases("dead-holder", 5) == 0  # a holder coming back cannot renew what it lost
    repo.release_leases("dead-holder")  # nor release it
    assert repo.leases_on(PHOTO, ["p1"])["p1"].holder == "next-holder"


def test_a_working_holder_keeps_its_leases_by_renewing_them_and_releases_them_when_done(database_url):
    repo = connect(database_url)
    with LeaseKeeper(repo, seconds=2) as keeper:
        assert keeper.claimer.claim(PHOTO, ["p1", "p2"]) == ["p1", "p2"]
        time.sleep(3)  # longer than the lease: only the renewals keep it
        other = Claimer(repo, new_holder_id(), 2)
        assert other.claim(PHOTO, ["p1", "p2", "p3"]) == ["p3"]
        assert holder_alive(repo, keeper.holder)
    assert other.claim(PHOTO, ["p1", "p2"]) == ["p1", "p2"]
    assert not holder_alive(repo, keeper.holder)


_HOLD_AND_WAIT = """
import sys, time
from picsaris_pipeline.db.repository import connect
from picsaris_pipeline.services.leases import PHOTO, LeaseKeeper
with LeaseKeeper(connect(sys.argv[1]), seconds=int(sys.argv[2])) as keeper:
    assert keeper.claimer.claim(PHOTO, ["p1"]) == ["p1"]
    print(keeper.holder, flush=True)
    time.sleep(600)
"""


def test_the_lease_of_a_killed_holder_process_is_taken_by_the_next_claimer(database_url):
    """Killed with SIGKILL: nothing released. On SQLite (one machine) the holder's process is seen
    to be gone at once; on Postgres (holders on other machines) its lease runs out first."""
    seconds = 4
    holder_process = subprocess.Popen(
        [sys.executable, "-c", _HOLD_AND_WAIT, database_url, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder_process.stdout is not None
    dead_holder = holder_process.stdout.readline().strip()
    holder_process.send_signal(signal.SIGKILL)
    holder_process.wait()
    killed_at = time.monotonic()
    repo = connect(database_url)
    claimer = Claimer(repo, new_holder_id(), seconds)
    if repo.is_sqlite:
        assert claimer.claim(PHOTO, ["p1"]) == ["p1"]
    else:
        assert claimer.claim(PHOTO, ["p1"]) == []  # its lease is still running
        while not claimer.claim(PHOTO, ["p1"]):
            assert time.monotonic() - killed_at < seconds + 5, "the dead holder's lease never ran out"
            time.sleep(0.2)
    assert repo.leases_on(PHOTO, ["p1"])["p1"].holder == claimer.holder
    assert not holder_alive(repo, dead_holder)


# -- picsaris process ---------------------------------------------------------------------------
def _event_with_photos(shared_photos) -> str:
    event_id = picsaris("event", "create", "Leases").strip()
    obama = picsaris("attendee", "add", event_id, "--name", "Obama", "--selfie", str(shared_photos["obama_1.jpg"].path))
    picsaris("attendee", "add", event_id, "--name", "Biden", "--selfie", str(shared_photos["biden_2.jpg"].path))
    picsaris("upload", event_id, "--uploader", obama.strip(), *[str(shared_photos[name].path) for name in PHOTOS])
    return event_id


def _photo_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name=PHOTO_JOB)))


def _materializations_per_partition(instance: dg.DagsterInstance, asset: str) -> Counter[str]:
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records
    return Counter(str(record.partition_key) for record in records)


def test_two_processes_at_once_run_each_photo_once(picsaris_home, shared_photos, monkeypatch):
    from picsaris_pipeline.orchestration.app import App

    event_id = _event_with_photos(shared_photos)
    App.from_env().instance.get_runs(limit=1)  # the instance's SQLite storage exists before both start
    monkeypatch.setenv("PICSARIS_WORKERS", "1")  # two processes on a two-core machine
    processes = [
        subprocess.Popen(
            [str(BIN / "picsaris"), "process"], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()

    app = App.from_env()
    photos = app.repo.list_photos(event_id)
    assert {photo.status for photo in photos} == {PhotoStatus.PUBLISHED}
    instance = app.instance
    runs_per_photo = Counter(photo_id for run in _photo_runs(instance) for photo_id in run_photo_ids(run, instance))
    assert runs_per_photo == Counter({photo.id: 1 for photo in photos})
    for asset in ("verified_upload", "faces_detected", "embeddings_stored", "matches_published"):
        assert _materializations_per_partition(instance, asset) == Counter({photo.id: 1 for photo in photos}), asset
    attendee_runs = Counter(
        run.tags.get("dagster/partition") for run in instance.get_runs(dg.RunsFilter(job_name="process_attendee"))
    )
    assert set(attendee_runs.values()) == {1}
    # The two split the work: what each says it ran adds up to the event, once.
    ran = [re.search(r"processed (\d+) attendee\(s\) and (\d+) photo\(s\)", err.decode()) for _, err in outputs]
    assert all(ran)
    assert sum(int(m.group(1)) for m in ran if m) == 2 and sum(int(m.group(2)) for m in ran if m) == len(PHOTOS)


def test_a_run_left_started_by_a_killed_process_is_marked_failed_and_its_photos_finished(
    picsaris_home, shared_photos, monkeypatch
):
    from picsaris_pipeline.orchestration.app import App

    event_id = _event_with_photos(shared_photos)
    monkeypatch.setenv("PICSARIS_WORKERS", "1")
    app = App.from_env()
    instance = app.instance
    process = subprocess.Popen(
        [str(BIN / "picsaris"), "process"], env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    # Kill once a photo run is under way (some photo past `uploaded`, its run STARTED).
    while True:
        assert process.poll() is None and time.monotonic() < deadline, "processing stopped before the kill"
        started = [run for run in _photo_runs(instance) if run.status is dg.DagsterRunStatus.STARTED]
        moving = [p for p in app.repo.list_photos(event_id) if p.status is PhotoStatus.VERIFIED]
        if started and moving:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    left_started = [run.run_id for run in _photo_runs(instance) if run.status is dg.DagsterRunStatus.STARTED]
    assert left_started, "the run finished before the kill"

    picsaris("process")
    for run_id in left_started:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status is dg.DagsterRunStatus.FAILURE
        failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert len(failures) == 1
        assert failures[0].message.startswith("Run abandoned: the picsaris process that ran it")
    assert {photo.status for photo in app.repo.list_photos(event_id)} == {PhotoStatus.PUBLISHED}
    assert not [run for run in instance.get_runs() if run.status is dg.DagsterRunStatus.STARTED]


# -- the daemon's side ----------------------------------------------------------------------------
def test_the_batch_sensor_leaves_queued_photos_a_live_process_holds_to_it(pipeline, event, shared_photos):
    from picsaris_pipeline.orchestration.partitions import PHOTO_PARTITIONS
    from picsaris_pipeline.sensors.batches import upload_batch_sensor

    guest = pipeline.repo.add_attendee(event.id, "Flooder", True, None, None)

    def announce(photo):
        pipeline.instance.add_dynamic_partitions(PHOTO_PARTITIONS, [photo.id])

    names = ["obama_2.jpg", "obama_4.jpg", "biden_1.jpg"]
    photos = [
        pipeline.upload(
            event, guest, shared_photos[n].path.read_bytes(), n, on_uploaded=lambda p: None, on_deferred=announce
        )
        for n in names
    ]
    queued = [photo.id for photo in photos[1:]]  # the first launched its own run; the rest wait for a batch
    with LeaseKeeper(pipeline.repo) as process:  # a `picsaris process` running the first queued photo
        assert process.claimer.claim(PHOTO, queued[:1]) == queued[:1]
        context = dg.build_sensor_context(instance=pipeline.instance, resources=pipeline.resources)
        result = upload_batch_sensor(context)
    requested = [
        photo_id for request in result.run_requests for photo_id in _request_photo_ids(request, pipeline.instance)
    ]
    assert requested == queued[1:]


def _request_photo_ids(request: dg.RunRequest, instance: dg.DagsterInstance) -> list[str]:
    from picsaris_pipeline.orchestration.partitions import PHOTO_PARTITIONS, RANGE_END_TAG, RANGE_START_TAG

    if request.partition_key:
        return [request.partition_key]
    order = instance.get_dynamic_partitions(PHOTO_PARTITIONS)
    return list(order[order.index(request.tags[RANGE_START_TAG]) : order.index(request.tags[RANGE_END_TAG]) + 1])


_RUN_WORKER = """
import os, socket, sys
from picsaris_pipeline.definitions import defs
from picsaris_pipeline.orchestration.runner import QUIET_CONSOLE, dagster_instance
from picsaris_pipeline.settings import Settings
from picsaris_pipeline.warm_runs.launcher import WORKER_HOST_TAG, WORKER_PID_TAG
# What WarmRunLauncher's forked run worker does: one run, tagged with its pid and host.
defs.resolve_job_def("process_photo").execute_in_process(
    partition_key=sys.argv[1],
    instance=dagster_instance(Settings.from_env()),
    run_config=QUIET_CONSOLE,
    tags={WORKER_PID_TAG: str(os.getpid()), WORKER_HOST_TAG: socket.gethostname(), "picsaris/photo": sys.argv[1]},
)
"""


def test_a_run_left_started_by_a_killed_run_worker_is_marked_failed_by_the_sensor(
    picsaris_home, shared_photos, monkeypatch
):
    from picsaris_pipeline.orchestration.app import App
    from picsaris_pipeline.orchestration.partitions import PHOTO_PARTITIONS
    from picsaris_pipeline.orchestration.resources import DatabaseResource
    from picsaris_pipeline.sensors.abandoned import abandoned_run_sensor
    from picsaris_pipeline.sensors.failures import photo_failure_sensor

    event_id = picsaris("event", "create", "Worker").strip()
    obama = picsaris("attendee", "add", event_id, "--name", "Obama", "--selfie", str(shared_photos["obama_1.jpg"].path))
    photo_id = picsaris("upload", event_id, "--uploader", obama.strip(), str(shared_photos["obama_2.jpg"].path)).strip()
    app = App.from_env()
    instance = app.instance
    instance.add_dynamic_partitions(PHOTO_PARTITIONS, [photo_id])
    monkeypatch.setenv("PICSARIS_LEASE_SECONDS", "2")  # how old a run must be before its worker is checked
    worker = subprocess.Popen([sys.executable, "-c", _RUN_WORKER, photo_id], env=dict(os.environ))
    deadline = time.monotonic() + 300
    while not [run for run in _photo_runs(instance) if run.status is dg.DagsterRunStatus.STARTED]:
        assert worker.poll() is None and time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    (run,) = _photo_runs(instance)
    assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.STARTED

    def tick():
        context = dg.build_sensor_context(instance=instance, resources={"database": DatabaseResource()})
        return abandoned_run_sensor(context)

    time.sleep(2.5)  # older than the threshold
    assert "marked 1 abandoned run(s) failed" in str(tick().skip_message)
    failed = instance.get_run_by_id(run.run_id)
    assert failed.status is dg.DagsterRunStatus.FAILURE
    (failure,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    pid = run.tags["picsaris/run_worker_pid"]
    assert failure.message.startswith(f"Run abandoned: its run worker process {pid} on ")
    assert tick().skip_message == "no abandoned runs"  # reported once

    # The failure sensor leaves its photo on its way (not `failed`), so the next process finishes it.
    failure_context = dg.build_run_status_sensor_context(
        sensor_name="photo_failure_sensor",
        dagster_instance=instance,
        dagster_run=failed,
        dagster_event=failure.dagster_event,
        resources={"database": DatabaseResource()},
    ).for_run_failure()
    assert "abandoned" in str(photo_failure_sensor(failure_context).skip_message)
    assert app.repo.get_photo(photo_id).status is not PhotoStatus.FAILED
    picsaris("process")
    assert app.repo.get_photo(photo_id).status is PhotoStatus.PUBLISHED


def test_the_bucket_sensor_leaves_uploads_a_live_process_holds_to_it(pipeline, event):
    from picsaris_pipeline.sensors.bucket import bucket_sensor

    guest = pipeline.repo.add_attendee(event.id, "Guest", True, None, None)
    jpeg = b"\xff\xd8 not decoded by the sensor"
    photos = []
    for _ in range(3):  # bytes in the bucket, upload never announced: the bucket sensor's to find
        photo = pipeline.repo.create_photo(event.id, guest.id, "p.jpg", "image/jpeg", "a" * 64, len(jpeg), "jpg")
        pipeline.store.put(photo.object_key, jpeg)
        photos.append(photo)
    with LeaseKeeper(pipeline.repo) as process:
        assert process.claimer.claim(PHOTO, [photos[0].id]) == [photos[0].id]
        context = dg.build_sensor_context(instance=pipeline.instance, resources=pipeline.resources)
        result = bucket_sensor(context)
    assert sorted(request.partition_key for request in result.run_requests) == sorted(p.id for p in photos[1:])
