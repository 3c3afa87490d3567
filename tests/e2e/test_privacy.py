"""Privacy (docs/RELIABILITY.md, "Privacy"): nothing personal in Dagster's storage, thumbnails one
click away through links that die with the photo, withdrawal that redraws and forgets, erasure that
survives a broken Dagster store, old instances scrubbed, and guest text escaped wherever markdown or
HTML is written."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
from click.testing import CliRunner

from picsaris_pipeline.cli import main
from picsaris_pipeline.db import schema as t
from picsaris_pipeline.domain.escaping import html_text, markdown_text
from picsaris_pipeline.domain.keys import thumbnail_key
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.orchestration.privacy_scrub import scrub_instance, scrub_serialized
from picsaris_pipeline.services.thumbnail_route import make_server
from tests.support.cli_runner import picsaris
from tests.support.db_helpers import count_rows

HOSTILE = "Eve\n# Heading\n<img src=x onerror=alert(1)> `code` | col | [link](javascript:x) *bold*"


# -- escaping -------------------------------------------------------------------------------------
def test_markdown_text_shows_hostile_text_literally_on_one_line():
    text = markdown_text(HOSTILE)
    assert "\n" not in text
    assert "<img" not in text and "&lt;img src=x onerror=alert\\(1\\)&gt;" in text
    assert "\\# Heading" in text and "\\`code\\`" in text and "\\| col \\|" in text
    assert "\\[link\\]\\(javascript:x\\)" in text and "\\*bold\\*" in text
    assert markdown_text("# title").startswith("\\#") and markdown_text("- item").startswith("\\-")
    assert markdown_text("IMG_0001.jpg") == "IMG\\_0001.jpg"


def test_html_text_escapes_elements_and_both_quotes():
    text = html_text(HOSTILE + " \"double\" 'single'")
    assert "<" not in text and ">" not in text and '"' not in text and "'" not in text
    assert "\n" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def test_the_event_report_escapes_a_hostile_file_name_and_guest_name(picsaris_home, shared_photos, tmp_path):
    event = picsaris("event", "create", "Escaping").strip()
    guest = picsaris(
        "attendee", "add", event, "--name", HOSTILE, "--selfie", str(shared_photos["obama_1.jpg"].path)
    ).strip()
    hostile_file = tmp_path / "x<img src=x onerror=alert(1)>#`|.jpg"
    hostile_file.write_bytes(shared_photos["obama_2.jpg"].path.read_bytes())
    picsaris("upload", event, "--uploader", guest, str(hostile_file))
    picsaris("process")
    page = Path(picsaris("report", event, "--out", str(tmp_path / "report")).strip()).read_text()
    assert "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


# -- thumbnail route ------------------------------------------------------------------------------
def _serve(app: App):
    server = make_server(lambda: app.repo, app.store, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def _dagster_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {label: value.value for label, value in materialization.metadata.items()}


def test_the_thumbnail_is_one_click_from_the_partition_and_gone_once_the_photo_is_erased(
    picsaris_home, shared_photos, monkeypatch
):
    event = picsaris("event", "create", "Route").strip()
    guest = picsaris(
        "attendee", "add", event, "--name", "Barack Obama", "--selfie", str(shared_photos["obama_1.jpg"].path)
    ).strip()
    photo = picsaris("upload", event, "--uploader", guest, str(shared_photos["group_two_people.jpg"].path)).strip()
    app = App.from_env()
    server = _serve(app)
    try:
        monkeypatch.setenv("PICSARIS_THUMBNAIL_PORT", str(server.server_address[1]))
        picsaris("process")
        link = _dagster_metadata(app.instance, "matches_published", photo)["picture"]
        assert link == f"http://127.0.0.1:{server.server_address[1]}/photos/{photo}/thumb.jpg"
        status, body = _get(link)
        assert status == 200 and body == app.store.get(thumbnail_key(event, photo)) and body[:2] == b"\xff\xd8"
        assert _get(f"http://127.0.0.1:{server.server_address[1]}/photos/{photo}/../../picsaris.db")[0] == 404
        picsaris("photo", "delete", photo)
        assert _get(link)[0] == 404
    finally:
        server.shutdown()
        server.server_close()


# -- withdrawal -----------------------------------------------------------------------------------
def _face_vector_count(app: App, face_ids: list[str]) -> int:
    return count_rows(app.repo, t.face_vectors, t.face_vectors.c.face_id.in_(face_ids))


def test_withdrawal_redraws_thumbnails_deletes_the_matched_faces_vectors_and_says_so(picsaris_home, shared_photos):
    event = picsaris("event", "create", "Withdrawal").strip()
    obama = picsaris(
        "attendee", "add", event, "--name", "Barack Obama", "--selfie", str(shared_photos["obama_1.jpg"].path)
    ).strip()
    photos = picsaris(
        "upload", event, "--uploader", obama,
        str(shared_photos["group_two_people.jpg"].path), str(shared_photos["obama_2.jpg"].path),
    ).split()  # fmt: skip
    picsaris("process")
    app = App.from_env()
    matched = app.repo.faces_matched_to(obama)
    assert {photo for _, photo in matched} == set(photos)
    before = {p: hashlib.md5(app.store.get(thumbnail_key(event, p))).hexdigest() for p in photos}

    result = CliRunner().invoke(main, ["attendee", "consent", obama, "--withdraw"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "deleted 2 match(es) in 2 photo(s), 2 face vector(s)" in result.stderr
    assert "redrew 2 thumbnail(s) without their name" in result.stderr
    after = {p: hashlib.md5(app.store.get(thumbnail_key(event, p))).hexdigest() for p in photos}
    assert all(before[p] != after[p] for p in photos)
    assert _face_vector_count(app, [face for face, _ in matched]) == 0
    assert app.repo.list_matches(event) == []


# -- erasure with a broken Dagster store ----------------------------------------------------------
def test_erasure_goes_ahead_when_dagster_storage_is_garbled_and_reports_it(picsaris_home, shared_photos):
    event = picsaris("event", "create", "Broken Dagster").strip()
    guest = picsaris(
        "attendee", "add", event, "--name", "Barack Obama", "--selfie", str(shared_photos["obama_1.jpg"].path)
    ).strip()
    photo = picsaris("upload", event, "--uploader", guest, str(shared_photos["obama_2.jpg"].path)).strip()
    picsaris("process")
    history = picsaris_home / "dagster" / "history"
    for garbled in (history / "runs.db", history / "event_log.db"):  # the embedded default's two
        garbled.write_bytes(b"this is not a database " * 100)

    photo_result = CliRunner().invoke(main, ["photo", "delete", photo], catch_exceptions=False)
    guest_result = CliRunner().invoke(main, ["attendee", "delete", guest], catch_exceptions=False)

    for result in (photo_result, guest_result):
        assert result.exit_code == 1, result.output
        last = result.stderr.strip().splitlines()[-1]  # one line for what was not reached, no traceback
        assert last.startswith("error: not reached: Dagster's storage") and "Traceback" not in result.output
    app = App.from_env()
    assert app.repo.find_photo(photo) is None
    assert [a.id for a in app.repo.list_attendees(event)] == []
    assert list(app.store.list(f"events/{event}/")) == []


# -- scrubbing instances written by older versions ------------------------------------------------
OLD_PREVIEW = "![two.jpg](data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8 a face").decode() + ")"


@dg.asset(
    partitions_def=dg.DynamicPartitionsDefinition(name="photo"),
    check_specs=[dg.AssetCheckSpec("stuck", asset="legacy_published")],
)
def legacy_published() -> dg.MaterializeResult:
    """What matches_published wrote before the rule: a face preview, names, a file name, boxes."""
    return dg.MaterializeResult(
        metadata={
            "status": "published",
            "file_name": "two.jpg",
            "matched": "Barack Obama",
            "preview": dg.MetadataValue.md(OLD_PREVIEW),
            "boxes": dg.MetadataValue.json([[1, 2, 3, 4]]),
            "reason": "same bytes as photo 01ABC (two.jpg)",
            "matches": 1,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="stuck",
                passed=False,
                metadata={"examples": dg.MetadataValue.json(["01ABC (two.jpg): verified since 2026-01-01"])},
            )
        ],
    )


def test_privacy_scrub_removes_what_old_versions_stored_and_a_second_run_finds_nothing(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions("photo", ["P1"])
        assert dg.materialize([legacy_published], instance=instance, partition_key="P1").success
        home = Path(tmp_path)

        def personal_bytes() -> int:
            return sum(
                f.read_bytes().count(needle)
                for f in home.rglob("*.db")
                for needle in (b"Barack Obama", b"two.jpg", b"base64")
            )

        assert personal_bytes() > 0
        dry = scrub_instance(instance, dry_run=True)
        assert dry["event_logs"] >= 2 and dry["asset_keys"] == 1 and dry["asset_check_executions"] == 1
        assert scrub_instance(instance) == dry
        assert sum(scrub_instance(instance).values()) == 0
        assert personal_bytes() == 0
        kept = _dagster_metadata(instance, "legacy_published", "P1")
        assert kept == {"status": "published", "reason": "same bytes as photo 01ABC", "matches": 1}


def test_scrub_leaves_an_event_without_personal_metadata_untouched():
    event = json.dumps({"metadata": {"status": {"__class__": "TextMetadataValue", "text": "published"}}})
    assert scrub_serialized(event) == (event, 0)


def test_the_scrub_command_counts_per_table_and_finds_nothing_on_a_new_instance(picsaris_home):
    picsaris("event", "create", "Scrub")
    for args in (["--dry-run"], []):
        result = CliRunner().invoke(main, ["privacy", "scrub", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == ["event_logs\t0", "asset_keys\t0", "asset_check_executions\t0"]
        assert "0 stored Dagster event(s) holding personal data" in result.stderr
