"""One guest flooding the event cannot hold back the others: a real burst through intake with a real
webserver + daemon, under the production run queue (at most 4 runs, one per uploader, batch runs in
at most 2 of them)."""

from __future__ import annotations

import itertools
import os
import time

import dagster as dg
import yaml

from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.orchestration.partitions import BATCH_TAG, UPLOADER_TAG, run_photo_ids
from tests.support.cli_runner import picsaris
from tests.support.dagster_processes import dagster_services
from tests.support.environment import REPO_ROOT

BURST = 10
FLOOD_EXCLUDES = {"obama_1.jpg", "biden_2.jpg", "biden_1.jpg"}  # the selfies and the lone photo


def test_a_single_photo_from_another_guest_overtakes_a_flood(picsaris_home, shared_photos, tmp_path, monkeypatch):
    event = picsaris("event", "create", "Fairness").strip()
    flooder = picsaris("attendee", "add", event, "--name", "Flood", "--selfie", str(shared_photos["obama_1.jpg"].path))
    other = picsaris("attendee", "add", event, "--name", "Other", "--selfie", str(shared_photos["biden_2.jpg"].path))
    flooder, other = flooder.strip(), other.strip()
    picsaris("process")  # references, and the embedded instance

    # The production run queue (deploy/dagster.yaml) on the embedded SQLite storage.
    production = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    home = picsaris_home / "dagster"
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"concurrency": production["concurrency"], "telemetry": {"enabled": False}})
    )
    # Ten different shots (copies of one shot would be near-duplicates, stopped before face work).
    paths = [photo.path for name, photo in sorted(shared_photos.items()) if name not in FLOOD_EXCLUDES][:BURST]
    assert len(paths) == BURST

    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with dagster_services(env, tmp_path, daemon=True) as port:
        monkeypatch.setenv("PICSARIS_DAGSTER_URL", f"http://127.0.0.1:{port}")
        picsaris("upload", event, "--uploader", flooder, *map(str, paths))
        (lone,) = picsaris("upload", event, "--uploader", other, str(shared_photos["biden_1.jpg"].path)).split()
        repo = App.from_env().repo
        deadline = time.monotonic() + 420
        while any(p.status is not PhotoStatus.PUBLISHED for p in repo.list_photos(event)):
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(1)

    instance = dg.DagsterInstance.from_config(str(home))
    runs = [r for r in instance.get_run_records() if r.dagster_run.job_name == "process_photo"]
    batches = [r for r in runs if BATCH_TAG in r.dagster_run.tags]
    by_uploader: dict[str, list] = {}
    for record in runs:
        if BATCH_TAG not in record.dagster_run.tags:
            by_uploader.setdefault(record.dagster_run.tags[UPLOADER_TAG], []).append(record)
    (lone_run,) = by_uploader[other]
    flood = sorted(by_uploader[flooder] + batches, key=lambda r: r.start_time)
    # The flood's photos sent while one of them waited were queued and run in batches: fewer runs
    # than photos, and every flood photo in one of them.
    ran = {pid for record in flood for pid in run_photo_ids(record.dagster_run, instance)}
    assert ran == {p.id for p in repo.list_photos(event) if p.id != lone}
    assert batches and len(flood) < BURST
    # The flood's own runs ran one at a time, and at most two batch runs ran at once ...
    singles = sorted(by_uploader[flooder], key=lambda r: r.start_time)
    for earlier, later in itertools.pairwise(singles):
        assert earlier.end_time <= later.start_time
    spans = [(r.start_time, r.end_time) for r in batches]
    assert max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans) <= 2
    # ... so the lone photo, launched after all ten, found a free slot: it waited in the queue about
    # one dequeue interval and a launch, not for the flood (ten photos, several seconds of runs).
    waited = lone_run.start_time - lone_run.create_timestamp.timestamp()
    assert waited < 15, f"the lone photo's run waited {waited:.1f} s in the queue"
    assert repo.get_photo(lone).status is PhotoStatus.PUBLISHED
