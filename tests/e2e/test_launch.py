"""Run launch through a real dagster-webserver + dagster-daemon, as the upload API does it: upload
with PICSARIS_DAGSTER_URL set, repeated launches de-duplicated, and an unannounced upload found by
the daemon's bucket sensor."""

import json
import os
import time

import pytest

from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.orchestration.launcher import DagsterLauncher
from picsaris_pipeline.services.intake import sha256_of
from tests.support.cli_runner import picsaris
from tests.support.dagster_processes import dagster_services


def wait_for(condition, timeout: float = 180.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


def test_uploads_launch_runs_through_the_webserver_and_the_sensor_finds_the_rest(
    picsaris_home, shared_photos, tmp_path, monkeypatch
):
    event = picsaris("event", "create", "Launch check").strip()
    selfie = str(shared_photos["obama_1.jpg"].path)
    obama = picsaris("attendee", "add", event, "--name", "Barack Obama", "--selfie", selfie).strip()
    picsaris("process")  # the attendee's reference, and the embedded instance's dagster.yaml

    env = {**os.environ, "DAGSTER_HOME": str(picsaris_home / "dagster")}
    with dagster_services(env, tmp_path, daemon=True) as port:
        monkeypatch.setenv("PICSARIS_DAGSTER_URL", f"http://127.0.0.1:{port}")
        announced = picsaris("upload", event, "--uploader", obama, str(shared_photos["obama_3.jpg"].path)).split()
        # Sign-up with the webserver configured launches the attendee's run too (tagged picsaris/attendee).
        biden = picsaris(
            "attendee", "add", event, "--name", "Joe Biden", "--selfie", str(shared_photos["biden_2.jpg"].path)
        )
        biden = biden.strip()

        app = App.from_env()
        # A phone whose "upload complete" never arrived: record made, bytes in the bucket, no launch.
        data = shared_photos["group_two_people.jpg"].path.read_bytes()
        silent = app.repo.create_photo(event, obama, "silent.jpg", "image/jpeg", sha256_of(data), len(data), "jpg")
        app.store.put(silent.object_key, data)

        def published() -> bool:
            statuses = {p.id: p.status for p in App.from_env().repo.list_photos(event)}
            return all(status is PhotoStatus.PUBLISHED for status in statuses.values())

        wait_for(published, what="both photos to be published (see daemon.log / webserver.log)")
        launcher = DagsterLauncher(f"http://127.0.0.1:{port}")
        again = launcher.launch_photo(app.repo.get_photo(announced[0]))
        assert again.launched is False and again.run_id
        wait_for(
            lambda: App.from_env().repo.get_attendee(biden).reference_status.value == "ready",
            what="the late joiner's reference (launched at sign-up)",
        )
        assert launcher.launch_attendee(app.repo.get_attendee(biden)).launched is False

    rows = json.loads(picsaris("matches", event, "--format", "json"))
    assert sorted((row["attendee_name"], row["file_name"]) for row in rows) == [
        ("Barack Obama", "obama_3.jpg"),
        ("Barack Obama", "silent.jpg"),
        ("Joe Biden", "silent.jpg"),
    ]
