"""The `picsaris` command line end to end on the embedded default (SQLite, local bucket, dlib,
a SQLite Dagster instance), with the real photos of ../shared/faces."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from picsaris_pipeline.cli import main
from picsaris_pipeline.faces.dlib_engine import LOCAL_MODELS
from tests.support.cli_runner import found_by_name, picsaris, sign_up
from tests.support.photo_sets import EXPECTED, LATE_JOINER, SELFIES

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def event_flow(shared_photos, tmp_path_factory):
    """One event through the CLI: sign-ups, uploads, processing, then a late joiner."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("PICSARIS_") or name == "DAGSTER_HOME":
                patch.delenv(name)
        patch.setenv("PICSARIS_HOME", str(tmp_path_factory.mktemp("cli-home")))
        event_id = picsaris("event", "create", "Shared faces").strip()
        attendees = sign_up(event_id, SELFIES, shared_photos)
        held = {selfie for selfie, _ in SELFIES.values()} | {LATE_JOINER[1]}
        uploads = [p.path for name, p in sorted(shared_photos.items()) if name not in held]
        photo_ids = picsaris("upload", event_id, "--uploader", attendees["Kit Harington"], *map(str, uploads)).split()
        picsaris("process")
        before_late_joiner = json.loads(picsaris("matches", event_id, "--format", "json"))
        attendees[LATE_JOINER[0]] = picsaris(
            "attendee", "add", event_id, "--name", LATE_JOINER[0], "--selfie", str(shared_photos[LATE_JOINER[1]].path)
        ).strip()
        picsaris("process", "--event", event_id)
        yield {
            "event_id": event_id,
            "attendees": attendees,
            "uploads": uploads,
            "photo_ids": photo_ids,
            "before_late_joiner": before_late_joiner,
            "patch": patch,
        }


def test_upload_prints_one_photo_id_per_path(event_flow):
    assert len(event_flow["photo_ids"]) == len(event_flow["uploads"]) == 28


def test_every_named_person_is_found_in_their_other_photos_and_nowhere_else(event_flow):
    rows = json.loads(picsaris("matches", event_flow["event_id"], "--format", "json"))
    assert found_by_name(rows) == EXPECTED


def test_candidates_are_only_ever_proposed_to_the_person_in_the_photo(event_flow):
    # Whatever the candidate tier proposes on the shared photos goes to the right guest only, and
    # never to a guest who is already matched in that photo.
    rows = json.loads(picsaris("match", "candidates", event_flow["event_id"], "--format", "json"))
    matches = json.loads(picsaris("matches", event_flow["event_id"], "--format", "json"))
    matched = {(m["photo_id"], m["attendee_id"]) for m in matches}
    names = {attendee_id: name for name, attendee_id in event_flow["attendees"].items()}
    files = dict(zip(event_flow["photo_ids"], [p.name for p in event_flow["uploads"]], strict=True))
    for row in rows:
        assert row["status"] == "proposed" and (row["photo_id"], row["attendee_id"]) not in matched
        person = names[row["attendee_id"]].lower().replace(" ", "_")
        assert files[row["photo_id"]].startswith(person), (names[row["attendee_id"]], files[row["photo_id"]])


def test_matches_carry_similarity_and_model_version(event_flow):
    rows = json.loads(picsaris("matches", event_flow["event_id"], "--format", "json"))
    assert set(rows[0]) == {"photo_id", "file_name", "attendee_id", "attendee_name", "similarity", "model_version"}
    assert all(0.45 <= row["similarity"] <= 1 and row["model_version"] == next(iter(LOCAL_MODELS)) for row in rows)


def test_an_attendee_without_consent_is_never_matched(event_flow):
    rows = json.loads(picsaris("matches", event_flow["event_id"], "--format", "json"))
    assert "Rose Leslie" not in {row["attendee_name"] for row in rows}


def test_a_late_joiner_finds_photos_processed_before_they_signed_up(event_flow):
    assert "Joe Biden" not in found_by_name(event_flow["before_late_joiner"])
    assert (
        found_by_name(json.loads(picsaris("matches", event_flow["event_id"], "--format", "json")))["Joe Biden"]
        == EXPECTED["Joe Biden"]
    )


def test_photos_lists_every_upload_published_with_the_manifest_face_counts(event_flow, shared_photos):
    lines = picsaris("photos", event_flow["event_id"]).splitlines()
    assert lines[0] == "photo_id,file_name,status,reason,faces,matches"
    rows = json.loads(picsaris("photos", event_flow["event_id"], "--format", "json"))
    assert len(rows) == 28 and {row["status"] for row in rows} == {"published"}
    assert {row["file_name"]: row["faces"] for row in rows} == {
        row["file_name"]: shared_photos[row["file_name"]].faces_expected for row in rows
    }


def test_process_ran_the_photos_in_batch_runs_each_photo_with_its_own_materialization(event_flow):
    import dagster as dg

    from picsaris_pipeline.orchestration.partitions import BATCH_TAG, PHOTO_JOB

    with dg.DagsterInstance.from_config(str(Path(os.environ["PICSARIS_HOME"]) / "dagster")) as instance:
        runs = [run for run in instance.get_runs() if run.job_name == PHOTO_JOB]
        photos_per_run = [int(run.tags.get(BATCH_TAG, 1)) for run in runs]
        assert sum(photos_per_run) == 28 and len(runs) < 28 and max(photos_per_run) > 1
        assert all(run.status is dg.DagsterRunStatus.SUCCESS for run in runs)
        for asset in ("verified_upload", "matches_published"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(event_flow["photo_ids"])


def test_processing_again_with_nothing_pending_is_a_quiet_success(event_flow):
    picsaris("process")


def test_models_lists_the_local_versions_default_first(event_flow):
    assert picsaris("models").split() == list(LOCAL_MODELS)


def test_unknown_event_is_a_clear_error(event_flow):
    result = CliRunner().invoke(main, ["photos", "01" + "Z" * 24])
    assert result.exit_code == 2 and "error: no event" in result.output


def test_a_refused_file_does_not_stop_the_rest_of_the_upload(event_flow, shared_photos, tmp_path):
    note = tmp_path / "notes.txt"
    note.write_text("not a photo")
    result = CliRunner().invoke(
        main,
        [
            "upload",
            event_flow["event_id"],
            "--uploader",
            event_flow["attendees"]["Tom Cruise"],
            str(note),
            str(shared_photos["biden_2.jpg"].path),
        ],
    )
    assert result.exit_code == 1
    assert "refused" in result.output and "content type" in result.output
    assert len(result.stdout.split()) == 1  # the good photo still got its id


def test_deleting_a_photo_erases_it_everywhere(event_flow):
    event_id = event_flow["event_id"]
    rows = json.loads(picsaris("matches", event_id, "--format", "json"))
    target = next(row for row in rows if row["file_name"] == "obama_4.jpg")
    picsaris("photo", "delete", target["photo_id"])
    assert target["photo_id"] not in picsaris("photos", event_id)
    assert target["photo_id"] not in picsaris("matches", event_id)
    bucket = Path(os.environ["PICSARIS_HOME"]) / "bucket"
    leftovers = [p for p in bucket.rglob("*") if p.is_file() and target["photo_id"] in str(p)]
    assert leftovers == []  # neither the upload nor its derived images


def test_deleting_an_attendee_erases_their_matches(event_flow):
    event_id, alex = event_flow["event_id"], event_flow["attendees"]["Alex Lacamoire"]
    picsaris("attendee", "delete", alex)
    assert "Alex Lacamoire" not in picsaris("matches", event_id)


def test_the_console_script_runs_the_demo_without_shared_photos(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICSARIS_") and k != "DAGSTER_HOME"}
    env["PICSARIS_HOME"] = str(tmp_path / "demo-home")
    result = subprocess.run(
        [str(BIN / "picsaris"), "demo"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    found = [line for line in lines if "Eileen Collins (" in line]
    assert len(found) == 3, result.stdout
    assert any("06_damaged_upload.jpg" in line and "rejected" in line for line in lines)
    assert any("04_coffee_break.png" in line and "nobody" in line for line in lines)
    assert "3 match(es) in 3 photo(s)." in result.stdout


def test_photos_can_be_filtered_by_status(event_flow):
    rows = json.loads(picsaris("photos", event_flow["event_id"], "--format", "json", "--status", "published"))
    assert rows and {row["status"] for row in rows} == {"published"}
    assert json.loads(picsaris("photos", event_flow["event_id"], "--format", "json", "--status", "failed")) == []


def test_rerun_of_one_uploader_runs_their_photos_again_with_the_same_result(event_flow):
    event_id, kit = event_flow["event_id"], event_flow["attendees"]["Kit Harington"]
    before = sorted(
        (r["photo_id"], r["attendee_id"]) for r in json.loads(picsaris("matches", event_id, "--format", "json"))
    )
    result = CliRunner().invoke(main, ["rerun", "--uploader", kit])
    assert result.exit_code == 0, result.output
    assert "re-running" in result.output
    after = sorted(
        (r["photo_id"], r["attendee_id"]) for r in json.loads(picsaris("matches", event_id, "--format", "json"))
    )
    assert after == before  # idempotent: nothing lost, nothing doubled


def test_rerun_needs_exactly_one_selection(event_flow):
    result = CliRunner().invoke(main, ["rerun"])
    assert result.exit_code == 2 and "give --photo" in result.output


def test_archiving_an_event_removes_its_partitions_and_runs_and_keeps_its_records(event_flow):
    import dagster as dg

    event_id = event_flow["event_id"]
    matches_before = picsaris("matches", event_id)
    from picsaris_pipeline.orchestration.app import App

    app = App.from_env()
    tagged = dg.RunsFilter(tags={"picsaris/event": event_id})
    assert app.instance.get_runs(tagged)
    result = CliRunner().invoke(main, ["event", "archive", event_id])
    assert result.exit_code == 0 and "removed" in result.output and "finished run(s)" in result.output
    photo_ids = {p.id for p in app.repo.list_photos(event_id)}
    assert not photo_ids & set(app.instance.get_dynamic_partitions("photos"))
    assert app.instance.get_runs(tagged) == []
    assert app.repo.get_event(event_id).archived_at is not None
    assert picsaris("matches", event_id) == matches_before


def test_an_event_can_be_created_with_its_end_time(event_flow):
    from datetime import UTC, datetime

    from picsaris_pipeline.orchestration.app import App

    event_id = picsaris("event", "create", "Timed", "--ends-at", "2026-06-20T23:00+02:00").strip()
    assert App.from_env().repo.get_event(event_id).ends_at == datetime(2026, 6, 20, 21, 0, tzinfo=UTC)
    result = CliRunner().invoke(main, ["event", "create", "Bad", "--ends-at", "next saturday"])
    assert result.exit_code == 2 and "ISO 8601" in result.output


def test_event_list_counts_each_events_photos_by_status_and_its_attendees(event_flow):
    event_id = event_flow["event_id"]
    photos = json.loads(picsaris("photos", event_id, "--format", "json"))
    attendees = json.loads(picsaris("attendee", "list", event_id, "--format", "json"))
    [listed] = [row for row in json.loads(picsaris("event", "list", "--format", "json")) if row["event_id"] == event_id]
    statuses = [row["status"] for row in photos]
    assert listed["name"] == "Shared faces" and listed["created_at"].endswith("Z")
    assert (listed["photos"], listed["published"], listed["attendees"]) == (
        len(photos),
        statuses.count("published"),
        len(attendees),
    )
    on_their_way = [s for s in statuses if s not in ("published", "duplicate", "rejected", "failed")]
    assert (listed["rejected"], listed["in_progress"]) == (statuses.count("rejected"), len(on_their_way))
    header = "event_id,name,created_at,photos,published,duplicate,rejected,failed,in_progress,attendees"
    assert picsaris("event", "list", "--format", "csv").splitlines()[0] == header
    table_header, *lines = picsaris("event", "list").splitlines()
    assert table_header.split() == header.split(",")
    [line] = [line for line in lines if line.startswith(event_id)]
    assert "Shared faces" in line and line.endswith(f" {len(attendees)}")


def test_photos_are_found_by_file_name_glob_ignoring_case(event_flow):
    event_id = event_flow["event_id"]
    every = json.loads(picsaris("photos", event_id, "--format", "json"))
    obama = {row["file_name"] for row in every if row["file_name"].startswith("obama_")}
    assert len(obama) >= 2  # the glob picks some of the photos, not all
    rows = json.loads(picsaris("photos", event_id, "--format", "json", "--name", "OBAMA_*"))
    assert {row["file_name"] for row in rows} == obama
    published = json.loads(
        picsaris("photos", event_id, "--format", "json", "--name", "obama_*", "--status", "published")
    )
    assert {row["file_name"] for row in published} <= obama and {row["status"] for row in published} <= {"published"}
    assert picsaris("photos", event_id, "--name", "nothing-like-it*").splitlines() == [
        "photo_id,file_name,status,reason,faces,matches"
    ]


def test_similarities_are_printed_to_three_decimals(event_flow):
    event_id = event_flow["event_id"]
    listed = json.loads(picsaris("matches", event_id, "--format", "json"))
    listed += json.loads(picsaris("match", "candidates", event_id, "--format", "json"))
    assert listed and all(round(row["similarity"], 3) == row["similarity"] for row in listed)
    column = picsaris("matches", event_id).splitlines()[0].split(",").index("similarity")
    assert all(len(line.split(",")[column]) <= len("0.123") for line in picsaris("matches", event_id).splitlines()[1:])


def test_report_prices_local_calls_at_nothing_and_shows_what_rekognition_would_cost(event_flow, tmp_path):
    index = Path(picsaris("report", event_flow["event_id"], "--out", str(tmp_path)).strip())
    with (index.parent / "costs.csv").open() as handle:
        costs = {row["item"]: row for row in csv.DictReader(handle)}
    engine = costs["face_engine_calls"]
    assert engine["quantity"].isdigit() and int(engine["quantity"]) > 0
    assert (engine["unit_price_usd"], engine["cost_usd"]) == ("0", "0")
    assert float(engine["cost_on_rekognition_usd"]) == pytest.approx(int(engine["quantity"]) * 0.001)
    assert float(costs["total"]["cost_on_rekognition_usd"]) > float(costs["total"]["cost_usd"])
    with (index.parent / "summary.csv").open() as handle:
        summary = {row["metric"]: row["value"] for row in csv.DictReader(handle)}
    assert summary["photos"].isdigit() and summary["matches"].isdigit()
    p50, p95 = summary["upload_to_published_p50_s"], summary["upload_to_published_p95_s"]
    assert all(len(value.split(".")[1]) == 2 for value in (p50, p95)) and 0 < float(p50) <= float(p95)
    assert "upload complete -&gt; published p50 (s)" in index.read_text()


def test_event_summary_in_dagster_reports_the_guests_wait_rounded(event_flow):
    import dagster as dg

    with dg.DagsterInstance.from_config(str(Path(os.environ["PICSARIS_HOME"]) / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("event_summary"))
    assert event is not None and event.asset_materialization is not None
    metadata = {key: value.value for key, value in event.asset_materialization.metadata.items()}
    assert "processing_p50_s" not in metadata
    for key in ("upload_to_published_p50_s", "upload_to_published_p95_s"):
        assert round(metadata[key], 2) == metadata[key] > 0
    assert "| upload complete -> published p95 (s) |" in metadata["summary"]
