"""Embedding-model versions on the embedded default (dlib): code versions, the checks that catch a
mixed state, and a real switch j0 -> j4 -> j0 on the shared photos through `picsaris reembed`
(interrupted by a killed process, then resumed) and through the plain `dagster job backfill` path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from picsaris_pipeline.definitions import code_versions
from picsaris_pipeline.faces.engine import configured_versions
from picsaris_pipeline.orchestration.partitions import REEMBED_PHOTO_JOB, REEMBED_TAG, run_photo_ids
from tests.support.cli_runner import found_by_name, picsaris, shown_matches, sign_up
from tests.support.dagster_processes import _process
from tests.support.db_helpers import writing
from tests.support.environment import REPO_ROOT

BIN = Path(sys.executable).parent
J0, J4 = "dlib-resnet-v1-5pt-j0", "dlib-resnet-v1-5pt-j4"
SELFIES = {  # name -> (selfie, consent)
    "Barack Obama": ("obama_1.jpg", True),
    "Kit Harington": ("kit_harington_2.jpg", True),
    "Alex Lacamoire": ("alex_lacamoire_2.jpg", True),
    "Rose Leslie": ("rose_leslie_1.jpg", False),
    "Joe Biden": ("biden_2.jpg", True),
}
EXPECTED = {
    "Barack Obama": {"obama_2.jpg", "obama_3.jpg", "obama_4.jpg", "group_two_people.jpg", "group_obama_and_biden.jpg"},
    "Kit Harington": {"kit_harington_1.jpg", "kit_harington_3.jpg", "group_kit_with_rose.jpg"},
    # alex_lacamoire_1.png scores 0.480 against his selfie, under the match policy's confident bar
    # (0.5): at most proposed to him, so uploaded below but not expected as a match.
    "Alex Lacamoire": {"alex_lacamoire_3.jpg"},
    "Joe Biden": {"biden_1.jpg", "group_two_people.jpg", "group_obama_and_biden.jpg"},
}
# Everyone's photos, plus the hard ones: the 24-face collage (one face sits near Lin-Manuel
# Miranda), a photo of the guest without consent, a stranger, and a photo without faces.
UPLOADS = sorted(
    set().union(*EXPECTED.values())
    | {"collage_bald_guys.jpg", "rose_leslie_2.jpg", "noface_dog.jpg", "alex_lacamoire_1.png"}
)


# -- code versions ------------------------------------------------------------------------------
def test_a_new_embedding_model_changes_the_embedding_code_versions_but_not_detection():
    j0 = code_versions(configured_versions("dlib", J0), None)
    j4 = code_versions(configured_versions("dlib", J4), None)
    changed = {name for name in j0 if j0[name] != j4[name]}
    assert changed == {"embeddings_stored", "matches_published", "attendee_reference", "attendee_matches"}


def test_a_new_rekognition_face_model_changes_detection_too():
    seven = code_versions(configured_versions("rekognition", "rekognition-7.0"), None)
    eight = code_versions(configured_versions("rekognition", "rekognition-8.0"), None)
    assert seven["faces_detected"] != eight["faces_detected"]  # a new collection: index again
    assert seven["verified_upload"] == eight["verified_upload"]


def test_a_new_threshold_makes_only_matching_stale():
    default = code_versions(configured_versions("dlib", J0), None)
    stricter = code_versions(configured_versions("dlib", J0), 0.6)
    assert {name for name in default if default[name] != stricter[name]} == {"matches_published", "attendee_matches"}
    # The code version names the match policy: the default bar set explicitly is the same policy.
    from picsaris_pipeline.domain.matching import DEFAULT_MIN_SIMILARITY

    assert code_versions(configured_versions("dlib", J0), DEFAULT_MIN_SIMILARITY) == default


# -- checks that catch a mixed state --------------------------------------------------------------
@pytest.fixture
def matched(pipeline, event, shared_photos):
    obama = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    assert pipeline.run_attendee(obama.id).success
    photo = pipeline.upload(event, obama, shared_photos["obama_2.jpg"].path.read_bytes(), "obama_2.jpg")
    assert pipeline.run_photo(photo.id).success
    return pipeline, event, obama, photo


def test_a_match_pairing_two_versions_is_caught(matched):
    from picsaris_pipeline.services import health

    pipeline, event, obama, photo = matched
    assert health.version_mixing(pipeline.repo).passed
    (match,) = pipeline.repo.list_matches(event.id)
    # A bug that wrote a j4 match from j0 vectors: nothing holds the face or selfie under j4.
    pipeline.repo.replace_matches(pipeline.repo.get_photo(photo.id), J4, [(match.face_id, obama.id, 0.9)])
    finding = health.version_mixing(pipeline.repo)
    assert not finding.passed and finding.count == 1 and J4 in finding.examples[0]


def test_malformed_vectors_are_caught(matched):
    from picsaris_pipeline.db import schema as t
    from picsaris_pipeline.services import health

    pipeline, *_ = matched
    assert health.malformed_vectors(pipeline.repo, {J0: 128}).passed
    with writing(pipeline.repo) as conn:
        conn.execute(t.face_vectors.update().values(vector=np.full(128, np.nan, dtype="<f4").tobytes()))
        conn.execute(t.attendee_vectors.update().values(vector=np.ones(64, dtype="<f4").tobytes(), dimension=64))
    finding = health.malformed_vectors(pipeline.repo, {J0: 128})
    assert finding.count == 2
    assert any("NaN" in example for example in finding.examples)
    assert any("dimension 64" in example for example in finding.examples)


def test_a_published_photo_without_its_events_active_version_is_caught(matched):
    from picsaris_pipeline.services import health

    pipeline, event, _, _ = matched
    assert health.active_version_gaps(pipeline.repo, J0).passed
    pipeline.repo.set_active_model_version(event.id, J4)  # cut over without re-embedding
    finding = health.active_version_gaps(pipeline.repo, J0)
    assert not finding.passed and finding.count == 1


def test_pruning_refuses_while_a_re_embedding_is_under_way(matched):
    from picsaris_pipeline.errors import BadInputError
    from picsaris_pipeline.faces.dlib_engine import DlibEngine
    from picsaris_pipeline.services.versions import prune_old_versions

    pipeline, event, _, _ = matched
    with pytest.raises(BadInputError, match="finish the re-embedding"):
        prune_old_versions(pipeline.repo, event.id, DlibEngine.shared(J4))
    assert pipeline.repo.list_matches(event.id)  # nothing was deleted


# -- a real switch on the shared photos -----------------------------------------------------------
def _active(event_id: str) -> str:
    return picsaris("event", "versions", event_id).splitlines()[0].removeprefix("active: ")


@pytest.fixture(scope="module")
def switch(shared_photos, tmp_path_factory):
    """One event processed under j0, then re-embedded under j4 by a `picsaris reembed` that is killed
    half way and run again."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if (name.startswith("PICSARIS_") and name != "PICSARIS_SHARED_FACES") or name == "DAGSTER_HOME":
                patch.delenv(name)
        home = tmp_path_factory.mktemp("versions-home")
        patch.setenv("PICSARIS_HOME", str(home))
        patch.setenv("PICSARIS_FACE_MODEL", J0)  # HOG's j0 -> j4: a new descriptor, the same detector
        event_id = picsaris("event", "create", "Model switch").strip()
        attendees = sign_up(event_id, SELFIES, shared_photos)
        paths = [str(shared_photos[name].path) for name in UPLOADS]
        picsaris("upload", event_id, "--uploader", attendees["Kit Harington"], *paths)
        picsaris("process")
        under_j0 = shown_matches(event_id)

        patch.setenv("PICSARIS_FACE_MODEL", J4)
        before_reembed = shown_matches(event_id)
        status_before = picsaris("event", "versions", event_id)

        # A re-embedding killed half way: a real process, SIGKILLed once a few photos are done.
        from picsaris_pipeline.orchestration.app import App

        repo = App.from_env().repo
        env = {**os.environ, "PICSARIS_HOME": str(home), "PICSARIS_FACE_MODEL": J4}
        process = subprocess.Popen(
            [str(BIN / "picsaris"), "reembed"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 240
        while len(UPLOADS) - len(repo.photos_missing_version(J4, event_id)) < 4:
            assert process.poll() is None, "the re-embedding finished before it could be interrupted"
            assert time.monotonic() < deadline, "the re-embedding made no progress"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait()
        done_before_resume = {p.id for p in repo.list_photos(event_id)} - {
            p.id for p in repo.photos_missing_version(J4, event_id)
        }
        during = shown_matches(event_id)
        active_during = _active(event_id)
        runs_before_resume = {run.run_id for run in App.from_env().instance.get_runs()}
        picsaris("reembed")
        yield {
            "event_id": event_id,
            "attendees": attendees,
            "home": home,
            "under_j0": under_j0,
            "before_reembed": before_reembed,
            "status_before": status_before,
            "during": during,
            "active_during": active_during,
            "done_before_resume": done_before_resume,
            "runs_before_resume": runs_before_resume,
            "patch": patch,
        }


def test_guests_keep_the_old_matches_until_the_event_cuts_over(switch):
    assert switch["before_reembed"] == switch["under_j0"]
    assert f"re-embedding to {J4}: {len(UPLOADS)} photo(s) and 4 attendee(s) left" in switch["status_before"]
    assert switch["active_during"] == J0
    assert switch["during"] == switch["under_j0"]  # the killed re-embedding showed guests nothing new
    assert _active(switch["event_id"]) == J4


def test_matches_under_the_new_version_are_the_expected_people(switch):
    rows = shown_matches(switch["event_id"])
    assert found_by_name(switch["under_j0"]) == EXPECTED
    assert found_by_name(rows) == EXPECTED
    assert {row["model_version"] for row in rows} == {J4}
    assert {row["model_version"] for row in switch["under_j0"]} == {J0}


def test_no_match_pairs_two_versions_and_photos_stayed_published(switch):
    from picsaris_pipeline.orchestration.app import App

    app = App.from_env()
    assert app.repo.version_mixing() == (0, [])
    photos = json.loads(picsaris("photos", switch["event_id"], "--format", "json"))
    assert {row["status"] for row in photos} == {"published"}


def test_the_resumed_re_embedding_did_only_what_the_killed_one_had_not_finished(switch):
    from picsaris_pipeline.orchestration.app import App

    app = App.from_env()
    all_photos = {p.id for p in app.repo.list_photos(switch["event_id"])}
    done_before = switch["done_before_resume"]
    assert 4 <= len(done_before) < len(all_photos)
    resumed = [  # one run per photo, or a batch run over a range of them
        photo_id
        for run in app.instance.get_runs()
        if run.job_name == REEMBED_PHOTO_JOB and run.run_id not in switch["runs_before_resume"]
        for photo_id in run_photo_ids(run, app.instance)
    ]
    assert sorted(resumed) == sorted(all_photos - done_before)  # nothing redone, nothing left out
    assert app.repo.photos_missing_version(J4, switch["event_id"]) == []
    # The photo whose run was killed mid-way has one set of j4 matches, not two.
    rows = shown_matches(switch["event_id"])
    assert len(rows) == len({(row["photo_id"], row["attendee_id"]) for row in rows})


def test_pruning_leaves_only_the_active_version_and_the_same_matches(switch):
    from picsaris_pipeline.orchestration.app import App

    event_id = switch["event_id"]
    before = shown_matches(event_id)
    picsaris("event", "prune", event_id)
    assert set(App.from_env().repo.model_versions_in_use(event_id)) == {J4}
    assert shown_matches(event_id) == before


def test_the_plain_dagster_backfill_switches_back_and_cuts_over(switch, tmp_path):
    """The runbook's commands: `dagster job backfill` per job with the pending partitions, run by the
    daemon; the event cuts over to j0 by itself and finds the same people as the first j0 pass."""
    event_id, patch = switch["event_id"], switch["patch"]
    patch.setenv("PICSARIS_FACE_MODEL", J0)
    env = {**os.environ, "DAGSTER_HOME": str(switch["home"] / "dagster")}
    tags = json.dumps({REEMBED_TAG: J0})
    for job, kind in (("process_attendee", "attendees"), (REEMBED_PHOTO_JOB, "photos")):
        keys = picsaris("reembed", "--event", event_id, "--pending", kind).strip()
        assert keys.count(",") + 1 == (4 if kind == "attendees" else len(UPLOADS))
        command = [str(BIN / "dagster"), "job", "backfill", "-w", "workspace.yaml", "-j", job]
        command += ["--partitions", keys, "--tags", tags, "--noprompt"]
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and "Launched backfill" in result.stdout, result.stdout + result.stderr
    assert _active(event_id) == J4  # queued: nothing changes until the daemon runs them
    with _process([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, tmp_path / "daemon.log"):
        deadline = time.monotonic() + 300
        while _active(event_id) != J0:
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(2)
    rows = shown_matches(event_id)
    assert found_by_name(rows) == EXPECTED and {row["model_version"] for row in rows} == {J0}
    # The same model on the same stored images gives the same similarities as the first pass.
    first = {(r["photo_id"], r["attendee_id"]): r["similarity"] for r in switch["under_j0"]}
    assert {(r["photo_id"], r["attendee_id"]): r["similarity"] for r in rows} == pytest.approx(first, abs=1e-4)
