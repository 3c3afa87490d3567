"""`picsaris reembed` on the production path: with PICSARIS_DAGSTER_URL set it launches GraphQL asset
backfills on a real dagster-webserver, which a real dagster-daemon runs (embedded SQLite instance,
dlib). Before them, Dagster's own stale-status resolver (what the UI shows) marks the photos'
embeddings and matches stale under the new model and detection fresh."""

from __future__ import annotations

import json
import os
import time

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from picsaris_pipeline.cli import main
from picsaris_pipeline.definitions import build_definitions
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.orchestration.partitions import REEMBED_TAG
from picsaris_pipeline.settings import Settings
from tests.support.cli_runner import found_by_name, picsaris, shown_matches, sign_up
from tests.support.dagster_processes import BIN, _process, dagster_services, log_tails

J0, J4 = "dlib-resnet-v1-5pt-j0", "dlib-resnet-v1-5pt-j4"
SELFIES = {  # name -> (selfie, consent)
    "Barack Obama": ("obama_1.jpg", True),
    "Kit Harington": ("kit_harington_2.jpg", True),
    "Rose Leslie": ("rose_leslie_1.jpg", False),
}
EXPECTED = {
    "Barack Obama": {"obama_2.jpg", "group_two_people.jpg"},
    "Kit Harington": {"kit_harington_1.jpg", "group_kit_with_rose.jpg"},
}
UPLOADS = sorted(set().union(*EXPECTED.values()) | {"noface_dog.jpg"})
PHOTO_ASSETS = ("verified_upload", "faces_detected", "embeddings_stored", "matches_published")


def _active(event_id: str) -> str:
    return picsaris("event", "versions", event_id).splitlines()[0].removeprefix("active: ")


def ui_staleness(instance: dg.DagsterInstance, asset_names: tuple[str, ...], partition: str) -> dict[str, StaleStatus]:
    """What the UI shows for one partition under the definitions the environment configures now."""
    graph = build_definitions(Settings.from_env()).resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    return {name: resolver.get_status(dg.AssetKey(name), partition) for name in asset_names}


def _backfill_runs(instance: dg.DagsterInstance, backfill_ids: list[str]) -> list[dg.DagsterRun]:
    return [r for b in backfill_ids for r in instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": b}))]


def test_reembed_launches_backfills_the_daemon_runs_and_the_event_cuts_over(
    picsaris_home, shared_photos, tmp_path, monkeypatch
):
    # -- the event under j0, processed in this process on the embedded instance --------------------
    monkeypatch.setenv("PICSARIS_FACE_MODEL", J0)  # HOG's j0 -> j4: a new descriptor, the same detector
    event_id = picsaris("event", "create", "Backfill switch").strip()
    attendees = sign_up(event_id, SELFIES, shared_photos)
    photo_ids = picsaris(
        "upload", event_id, "--uploader", attendees["Kit Harington"], *(str(shared_photos[n].path) for n in UPLOADS)
    ).split()
    picsaris("process")
    under_j0 = shown_matches(event_id)
    assert found_by_name(under_j0) == EXPECTED and {row["model_version"] for row in under_j0} == {J0}
    instance = App.from_env().instance
    group_photo = photo_ids[UPLOADS.index("group_two_people.jpg")]
    assert set(ui_staleness(instance, PHOTO_ASSETS, group_photo).values()) == {StaleStatus.FRESH}

    # -- a new embedding model: the UI calls embeddings and matches stale, detection fresh ---------
    monkeypatch.setenv("PICSARIS_FACE_MODEL", J4)
    assert ui_staleness(instance, PHOTO_ASSETS, group_photo) == {
        "verified_upload": StaleStatus.FRESH,
        "faces_detected": StaleStatus.FRESH,
        "embeddings_stored": StaleStatus.STALE,
        "matches_published": StaleStatus.STALE,
    }
    assert ui_staleness(instance, ("attendee_reference",), attendees["Barack Obama"]) == {
        "attendee_reference": StaleStatus.STALE
    }
    assert shown_matches(event_id) == under_j0

    # -- `picsaris reembed` through the webserver; the daemon runs the backfills -------------------
    # The daemon starts once the backfills exist: its backfill loop looks at them on start, then
    # only every 30 s.
    env = {**os.environ, "DAGSTER_HOME": str(picsaris_home / "dagster"), "PICSARIS_FACE_MODEL": J4}
    with dagster_services(env, tmp_path) as port:
        monkeypatch.setenv("PICSARIS_DAGSTER_URL", f"http://127.0.0.1:{port}")
        launched = CliRunner().invoke(main, ["reembed", "--event", event_id], catch_exceptions=False)
        assert launched.exit_code == 0, launched.output
        lines = launched.stdout.splitlines()
        assert [line.split(": ", 1)[1] for line in lines] == ["2 selfie(s)", f"{len(UPLOADS)} photo(s)"]
        backfill_ids = [line.split()[1].rstrip(":") for line in lines]
        backfills = {b.backfill_id: b for b in instance.get_backfills() if b.backfill_id in backfill_ids}
        assert set(backfills) == set(backfill_ids)
        for backfill in backfills.values():
            assert backfill.tags[REEMBED_TAG] == J4 and backfill.tags["picsaris/source"] == "reembed"
        targets = {
            key.to_user_string(): set(subset.get_partition_keys())
            for b in backfills.values()
            for key, subset in b.asset_backfill_data.target_subset.partitions_subsets_by_asset_key.items()
        }
        selfies = {attendees["Barack Obama"], attendees["Kit Harington"]}  # not the guest without consent
        assert targets == {
            "attendee_reference": selfies,
            "attendee_matches": selfies,
            "faces_detected": set(photo_ids),  # a re-embedding re-detects: the detector is part of the version
            "embeddings_stored": set(photo_ids),
            "matches_published": set(photo_ids),
        }
        assert _active(event_id) == J0  # launched, not run: nothing changes without the daemon

        with _process([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, tmp_path / "daemon.log"):
            # While the daemon works: every photo stays published and, until the event cuts over,
            # guests see exactly the j0 matches (also once some photos have their j4 matches).
            deadline = time.monotonic() + 180
            seen_half_done = 0
            while True:
                repo = App.from_env().repo
                statuses = {p.id: p.status.value for p in repo.list_photos(event_id)}
                assert set(statuses.values()) == {"published"}, statuses
                before = _active(event_id)
                left = len(repo.photos_missing_version(J4, event_id))
                shown = shown_matches(event_id)
                if before == _active(event_id) == J0:
                    assert shown == under_j0
                    seen_half_done += 0 < left < len(UPLOADS)
                runs = _backfill_runs(instance, backfill_ids)
                if len(runs) == len(UPLOADS) + 2 and all(r.is_finished for r in runs):
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"the backfills' runs did not finish within 180 s\n{log_tails(tmp_path)}")
                time.sleep(0.5)
        assert all(r.status is dg.DagsterRunStatus.SUCCESS for r in runs), log_tails(tmp_path)
        assert seen_half_done, "never saw the event between its first j4 photo and the cut-over"

    # -- after the cut-over, which the last run made by itself -------------------------------------
    assert _active(event_id) == J4
    rows = shown_matches(event_id)
    assert found_by_name(rows) == EXPECTED
    assert {row["model_version"] for row in rows} == {J4}
    assert App.from_env().repo.version_mixing() == (0, [])
    assert {row["status"] for row in json.loads(picsaris("photos", event_id, "--format", "json"))} == {"published"}
    # The backfills ran one run per partition, tagged, re-embedding only what the new model changes.
    assert all(r.tags[REEMBED_TAG] == J4 for r in runs)
    photo_runs = [r for r in runs if r.tags["dagster/partition"] in photo_ids]
    assert {r.tags["dagster/partition"] for r in photo_runs} == set(photo_ids)
    assert {frozenset(key.to_user_string() for key in r.asset_selection or ()) for r in photo_runs} == {
        frozenset({"faces_detected", "embeddings_stored", "matches_published"})  # re-detected, re-embedded
    }
    # And the UI now calls every step of the photo fresh under j4.
    assert set(ui_staleness(instance, PHOTO_ASSETS, group_photo).values()) == {StaleStatus.FRESH}
