"""The production path end to end: real dagster-webserver and dagster-daemon processes on loopback
with the repository's dagster.yaml (Dagster's storage on a fresh Postgres database), the application
database on another fresh Postgres database and the bucket on moto's S3 server.

Guests sign up (the daemon's bucket sensor runs their selfies), upload through intake with
PICSARIS_DAGSTER_URL set (each upload launches its photo's run through the webserver's GraphQL API),
and two photos reach the bucket without a launch: one whose "upload complete" never came, one
completed while the webserver was unreachable. The sensor must find both; every photo must end
published with exactly the expected matches; the runs must be in Dagster's Postgres run storage with
their uploader tag, and one uploader's runs must never have overlapped (the run queue's
per-uploader limit).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import boto3
import dagster as dg
import pytest
from dagster_postgres import PostgresRunStorage
from moto.server import ThreadedMotoServer

from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.orchestration.partitions import (
    ATTENDEE_JOB,
    BATCH_TAG,
    EVENT_TAG,
    PHOTO_JOB,
    PHOTO_TAG,
    UPLOADER_TAG,
    run_photo_ids,
)
from picsaris_pipeline.services.intake import sha256_of
from tests.support.cli_runner import picsaris
from tests.support.dagster_processes import (
    dagster_postgres_url,
    dagster_services,
    free_port,
    log_tails,
    production_dagster_home,
)
from tests.support.environment import fresh_database

BUCKET = "picsaris-e2e"
FACE_ENGINE_POOL = "face_engine"  # the pool of the steps that call the face engine
SIGN_UPS = {"Barack Obama": "obama_1.jpg", "Joe Biden": "biden_2.jpg"}
ANNOUNCED = {  # uploader -> photos uploaded through intake while the webserver is up
    "Barack Obama": ["obama_3.jpg", "biden_1.jpg"],
    "Joe Biden": ["group_obama_and_biden.jpg"],
}
NEVER_COMPLETED = ("Joe Biden", "group_two_people.jpg")  # bytes in the bucket, record pending_upload
LAUNCH_FAILED = ("Joe Biden", "obama_4.jpg")  # completed, but the webserver was unreachable
EXPECTED_MATCHES = {
    ("Barack Obama", "obama_3.jpg"),
    ("Barack Obama", "obama_4.jpg"),
    ("Barack Obama", "group_two_people.jpg"),
    ("Barack Obama", "group_obama_and_biden.jpg"),
    ("Joe Biden", "biden_1.jpg"),
    ("Joe Biden", "group_two_people.jpg"),
    ("Joe Biden", "group_obama_and_biden.jpg"),
}
TIMEOUT_SECONDS = 600
IN_PROGRESS = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
}


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    # Port 0: the OS picks a free port. moto cannot create buckets in region "auto", so the bucket is
    # made in us-east-1; the application then reaches it as it reaches R2 (region "auto").
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def production_env(
    picsaris_home: Path, postgres_server: str, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """This process's environment set up as production, returned for the Dagster processes too."""
    with (
        fresh_database(postgres_server, "picsaris_e2e_dagster") as dagster_db,
        fresh_database(postgres_server, "picsaris_e2e_app") as app_db,
    ):
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        production = {
            "DAGSTER_HOME": str(production_dagster_home(tmp_path / "dagster_home")),
            "DAGSTER_POSTGRES_URL": dagster_postgres_url(dagster_db),
            "PICSARIS_DATABASE_URL": app_db,
            "PICSARIS_BUCKET": BUCKET,
            "PICSARIS_S3_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        for name, value in production.items():
            monkeypatch.setenv(name, value)
        # Create Dagster's tables once, here, rather than have the webserver and the daemon race to.
        with dg.DagsterInstance.get() as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
        yield dict(os.environ)


@contextmanager
def logs_shown_on_failure(logs: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(log_tails(logs))  # pytest shows a failing test's output
        raise


def _photo_statuses(event_id: str) -> dict[str, str]:
    return {row["file_name"]: row["status"] for row in json.loads(picsaris("photos", event_id, "--format", "json"))}


def _wait_until_settled(
    instance: dg.DagsterInstance, event_id: str, expected_files: set[str], attendee_ids: set[str]
) -> Sequence[dg.RunRecord]:
    """Until every photo is published, every attendee's run succeeded and no run of the event is
    queued or running; fails fast on a failed run or a photo that ended failed or rejected."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        statuses = _photo_statuses(event_id)
        records = instance.get_run_records(filters=dg.RunsFilter(tags={EVENT_TAG: event_id}))
        failed = [r.dagster_run for r in records if r.dagster_run.status is dg.DagsterRunStatus.FAILURE]
        assert not failed, f"runs failed: {[(run.job_name, run.run_id, run.tags) for run in failed]}"
        bad = {name: status for name, status in statuses.items() if status in ("failed", "rejected", "duplicate")}
        assert not bad, f"photos did not make it: {bad}"
        busy = [r for r in records if r.dagster_run.status in IN_PROGRESS]
        referenced = {
            r.dagster_run.tags["dagster/partition"]
            for r in records
            if r.dagster_run.job_name == ATTENDEE_JOB and r.dagster_run.status is dg.DagsterRunStatus.SUCCESS
        }
        published = set(statuses) == expected_files and set(statuses.values()) == {"published"}
        if published and referenced == attendee_ids and not busy:
            return records
        if time.monotonic() > deadline:
            pytest.fail(f"not settled within {TIMEOUT_SECONDS} s: photos {statuses}, {len(busy)} run(s) in progress")
        time.sleep(2)


def test_uploads_and_unannounced_photos_are_all_published_with_their_matches_on_postgres_and_s3(
    production_env, shared_photos, tmp_path, monkeypatch
):
    event_id = picsaris("event", "create", "Production path").strip()
    attendees = {
        name: picsaris("attendee", "add", event_id, "--name", name, "--selfie", str(shared_photos[selfie].path)).strip()
        for name, selfie in SIGN_UPS.items()
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    photo_ids: dict[str, str] = {}  # file name -> photo id
    with logs_shown_on_failure(logs), dg.DagsterInstance.get() as instance:
        with dagster_services(production_env, logs, daemon=True) as port:
            monkeypatch.setenv("PICSARIS_DAGSTER_URL", f"http://127.0.0.1:{port}")
            for uploader, files in ANNOUNCED.items():
                paths = [str(shared_photos[name].path) for name in files]
                printed = picsaris("upload", event_id, "--uploader", attendees[uploader], *paths).split()
                photo_ids.update(zip(files, printed, strict=True))

            # A phone whose "upload complete" never arrived: the record intake made, bytes in the bucket.
            app = App.from_env()
            uploader, name = NEVER_COMPLETED
            data = shared_photos[name].path.read_bytes()
            silent = app.repo.create_photo(
                event_id, attendees[uploader], name, "image/jpeg", sha256_of(data), len(data), "jpg"
            )
            app.store.put(silent.object_key, data)
            photo_ids[name] = silent.id

            # An upload completed while the webserver was unreachable: stored and marked uploaded, no run.
            monkeypatch.setenv("PICSARIS_DAGSTER_URL", f"http://127.0.0.1:{free_port()}")
            uploader, name = LAUNCH_FAILED
            path = str(shared_photos[name].path)
            photo_ids[name] = picsaris("upload", event_id, "--uploader", attendees[uploader], path).strip()

            records = _wait_until_settled(instance, event_id, set(photo_ids), set(attendees.values()))

        matches = json.loads(picsaris("matches", event_id, "--format", "json"))
        assert {(row["attendee_name"], row["file_name"]) for row in matches} == EXPECTED_MATCHES
        assert len(matches) == len(EXPECTED_MATCHES)

        # Every run is in Dagster's Postgres run storage. A photo has its own run, tagged with its
        # uploader, unless intake queued it behind another of its uploader's photos: then it ran in a
        # batch run (a range of photo partitions) that the batch sensor requested.
        assert isinstance(instance.run_storage, PostgresRunStorage)
        photos = {photo.id: photo for photo in app.repo.list_photos(event_id)}
        photo_runs = [r for r in records if r.dagster_run.job_name == PHOTO_JOB]
        single_runs = [r for r in photo_runs if BATCH_TAG not in r.dagster_run.tags]
        ran_in = {r.dagster_run.run_id: run_photo_ids(r.dagster_run, instance) for r in photo_runs}
        assert {pid for ids in ran_in.values() for pid in ids} == set(photo_ids.values())
        for run in (r.dagster_run for r in photo_runs):
            assert run.status is dg.DagsterRunStatus.SUCCESS
            # Forked from the daemon's warm worker (dagster.yaml's WarmRunLauncher), not started afresh.
            assert run.tags["picsaris/run_worker"] == "warm", run.tags
            if BATCH_TAG in run.tags:
                assert run.tags["picsaris/source"] == "batch"
                assert run.tags[BATCH_TAG] == str(len(ran_in[run.run_id])) and len(ran_in[run.run_id]) > 1
            else:
                assert run.tags["dagster/partition"] == run.tags[PHOTO_TAG]
                assert run.tags[UPLOADER_TAG] == photos[run.tags[PHOTO_TAG]].uploader_id
        launched_by: dict[str, set[str]] = defaultdict(set)  # source -> photo ids
        for run in (r.dagster_run for r in photo_runs):
            launched_by[run.tags["picsaris/source"]].update(ran_in[run.run_id])
        announced = {photo_ids[name] for files in ANNOUNCED.values() for name in files}
        assert photo_ids[NEVER_COMPLETED[1]] in launched_by["sensor"]
        # The photo whose launch failed was found by the bucket sensor, or, if intake had queued it
        # behind its uploader's other photo (its partition add failed too), run by the batch sensor.
        assert photo_ids[LAUNCH_FAILED[1]] in launched_by["sensor"] | launched_by["batch"]
        # Intake launched the announced photos' runs through the webserver, or queued them for the
        # batch sensor. The one exception is a sensor tick listing a photo's bytes in the instant
        # before intake added its partition.
        assert launched_by["intake"], "no run was launched through the webserver"
        assert announced - launched_by["intake"] - launched_by["batch"] <= launched_by["sensor"]

        # The selfies were found by the sensor, which ran each attendee's reference.
        attendee_runs = [r.dagster_run for r in records if r.dagster_run.job_name == ATTENDEE_JOB]
        assert {run.tags["dagster/partition"] for run in attendee_runs} == set(attendees.values())
        assert all(run.status is dg.DagsterRunStatus.SUCCESS for run in attendee_runs)

        # The face-engine steps' pool got its limit from dagster.yaml's default when the runs first
        # claimed a slot in it, and every slot was given back.
        face_engine = instance.event_log_storage.get_concurrency_info(FACE_ENGINE_POOL)
        assert face_engine.slot_count == 2
        assert not face_engine.claimed_slots and not face_engine.pending_steps

        # One run per uploader at a time: each uploader's runs follow one another.
        by_uploader: dict[str, list[dg.RunRecord]] = defaultdict(list)
        for record in single_runs:
            by_uploader[record.dagster_run.tags[UPLOADER_TAG]].append(record)
        for uploader_runs in by_uploader.values():
            spans = sorted((r.start_time or 0.0, r.end_time or 0.0) for r in uploader_runs)
            for (_, previous_end), (next_start, _) in itertools.pairwise(spans):
                assert next_start >= previous_end, f"runs of one uploader overlapped: {spans}"
