"""A Rekognition face-model upgrade end to end through the CLI, against tests/support/rekognition_server.py.

An event is processed while the service creates collections under face model 7.0; then the service
moves on (new collections get 8.0, the existing one keeps 7.0) and PICSARIS_FACE_MODEL becomes
rekognition-8.0. `picsaris reembed` (in process) must create the event's 8.0 collection, index the
photos again from our own stored verified images, enroll the consenting attendees again, keep the
7.0 matches visible until the event is complete under 8.0, resume an interrupted re-embedding
without redoing finished photos, cut over by itself, and `picsaris event prune` must delete the 7.0
collection and rows.
"""

from __future__ import annotations

import base64
import json
from collections import Counter

import pytest
from click.testing import CliRunner, Result
from dagster._core.definitions.data_version import StaleStatus

from picsaris_pipeline.cli import main
from picsaris_pipeline.domain.keys import verified_image_key
from picsaris_pipeline.faces.rekognition import RekognitionEngine
from tests.e2e.test_reembed_webserver import PHOTO_ASSETS, SELFIES, ui_staleness
from tests.support.cli_runner import found_by_name, picsaris, shown_matches, sign_up
from tests.support.rekognition_server import RekognitionServer, cli_on_local_rekognition

OLD, NEW = "rekognition-7.0", "rekognition-8.0"
EXPECTED = {
    "Barack Obama": {"obama_2.jpg", "obama_3.jpg", "group_two_people.jpg"},
    "Kit Harington": {"kit_harington_1.jpg", "kit_harington_3.jpg", "group_kit_with_rose.jpg"},
}
# Everyone's photos, a group photo with a stranger (Biden, not signed up), one with the guest
# without consent, her own photo, and a photo without faces. Uploaded (and so ordered) by name.
UPLOADS = sorted(set().union(*EXPECTED.values()) | {"rose_leslie_2.jpg", "noface_dog.jpg"})
FIRST_BATCH = 5  # `reembed --limit`: the two consenting selfies, then the first three photos


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _versions(event_id: str) -> list[str]:
    return picsaris("event", "versions", event_id).splitlines()


def _index_calls(server: RekognitionServer, start: int = 0) -> list[dict]:
    return [params for name, params in server.state.calls[start:] if name == "IndexFaces"]


def _photo_indexes(server: RekognitionServer, collection: str, start: int = 0) -> list[str]:
    """ExternalImageIds (photo ids) of the photo IndexFaces calls into a collection since call `start`."""
    return [
        params["ExternalImageId"]
        for params in _index_calls(server, start)
        if params["CollectionId"] == collection and not params["ExternalImageId"].startswith("selfie:")
    ]


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    RekognitionEngine._instances.clear()
    with RekognitionServer() as running:
        yield running
    RekognitionEngine._instances.clear()
    assert running.state.validation_errors == [], "requests AWS would refuse"


def test_a_face_model_upgrade_reindexes_into_a_new_collection_and_cuts_over(
    server, shared_photos, picsaris_home, monkeypatch
):
    from picsaris_pipeline.orchestration.app import App

    cli_on_local_rekognition(monkeypatch, server)

    # -- the event under face model 7.0 ---------------------------------------------------------
    event_id = picsaris("event", "create", "Rekognition upgrade").strip()
    old_collection, new_collection = f"picsaris-{event_id}-v7_0", f"picsaris-{event_id}-v8_0"
    attendees = sign_up(event_id, SELFIES, shared_photos)
    photo_ids = picsaris(
        "upload", event_id, "--uploader", attendees["Kit Harington"], *(str(shared_photos[n].path) for n in UPLOADS)
    ).split()
    by_id = dict(zip(photo_ids, UPLOADS, strict=True))
    picsaris("process")
    under_old = shown_matches(event_id)
    assert found_by_name(under_old) == EXPECTED
    assert {row["model_version"] for row in under_old} == {OLD}
    assert server.state.collections[old_collection].face_model_version == "7.0"
    first_pass_bytes = {
        params["ExternalImageId"]: params["Image"]["Bytes"]
        for params in _index_calls(server)
        if not params["ExternalImageId"].startswith("selfie:")
    }
    assert set(first_pass_bytes) == set(photo_ids)

    # -- the service moves on: new collections get 8.0; the deployment is configured for it -------
    server.state.face_model_version = "8.0"
    monkeypatch.setenv("PICSARIS_FACE_MODEL", NEW)
    RekognitionEngine._instances.clear()
    assert shown_matches(event_id) == under_old  # nothing changes for guests by configuring a new model
    versions = _versions(event_id)
    assert versions[:2] == [f"active: {OLD}", f"configured: {NEW}"]
    assert f"re-embedding to {NEW}: {len(UPLOADS)} photo(s) and 2 attendee(s) left" in versions
    assert new_collection not in server.state.collections
    # What the UI shows: a new face model means detecting again too (a new collection to index into).
    assert ui_staleness(App.from_env().instance, PHOTO_ASSETS, photo_ids[0]) == {
        "verified_upload": StaleStatus.FRESH,
        "faces_detected": StaleStatus.STALE,
        "embeddings_stored": StaleStatus.STALE,
        "matches_published": StaleStatus.STALE,
    }

    # -- a first batch, as if the re-embedding had been interrupted there -------------------------
    mark = len(server.state.calls)
    batch = cli("reembed", "--limit", str(FIRST_BATCH))
    assert batch.exit_code == 0, batch.output
    assert "re-embedded 2 attendee(s) and 3 photo(s)" in batch.stderr
    assert f"still shows {OLD}; {len(UPLOADS) - 3} photo(s) and 0 attendee(s) left for {NEW}" in batch.stderr
    assert server.state.collections[new_collection].face_model_version == "8.0"
    assert server.state.collections[old_collection].face_model_version == "7.0"  # untouched
    first_batch = _photo_indexes(server, new_collection, mark)
    assert first_batch == photo_ids[:3]
    # The selfies are enrolled again in the new collection; the guest without consent never is.
    enrolled = [p["UserId"] for n, p in server.state.calls[mark:] if n == "CreateUser"]
    assert sorted(enrolled) == sorted([attendees["Barack Obama"], attendees["Kit Harington"]])
    assert set(server.state.collections[new_collection].users) == set(enrolled)
    selfies_indexed = [
        p["ExternalImageId"] for p in _index_calls(server, mark) if p["ExternalImageId"].startswith("selfie:")
    ]
    assert f"selfie:{attendees['Rose Leslie']}" not in selfies_indexed and len(selfies_indexed) == 2
    assert shown_matches(event_id) == under_old  # half done: guests still see every 7.0 match
    assert _versions(event_id)[0] == f"active: {OLD}"

    # -- the rest, with one photo's run failing half way (access denied on its first search) -----
    mark = len(server.state.calls)
    server.state.fail("SearchUsers", "AccessDeniedException", 1)
    rest = cli("reembed")
    assert rest.exit_code == 1, rest.output
    (failed_line,) = [line for line in rest.stderr.splitlines() if line.startswith("failed: photo ")]
    failed = failed_line.split()[2].rstrip(":")
    assert "AccessDeniedException" in failed_line
    second_batch = _photo_indexes(server, new_collection, mark)
    assert second_batch == photo_ids[3:]  # nothing of the first batch was redone
    app = App.from_env()
    assert app.repo.get_photo(failed).status.value == "published"  # its 7.0 matches stay as they were
    assert app.repo.photo_versions(failed) == [OLD]
    assert shown_matches(event_id) == under_old
    assert _versions(event_id)[0] == f"active: {OLD}"
    assert f"re-embedding to {NEW}: 1 photo(s) and 0 attendee(s) left" in _versions(event_id)

    mark = len(server.state.calls)
    picsaris("reembed")
    assert _photo_indexes(server, new_collection, mark) == [failed]  # only the failed photo again
    # Its half-done faces were removed before indexing again: one face per face in the collection.
    in_collection = Counter(face.external_image_id for face in server.state.collections[new_collection].faces.values())
    faces_expected = {pid: shared_photos[name].faces_expected for pid, name in by_id.items()}
    assert {pid: in_collection.get(pid, 0) for pid in photo_ids} == faces_expected

    # -- after the cut-over ------------------------------------------------------------------------
    versions = _versions(event_id)
    assert versions[0] == f"active: {NEW}" and not any(line.startswith("re-embedding") for line in versions)
    rows = shown_matches(event_id)
    assert found_by_name(rows) == EXPECTED
    assert {row["model_version"] for row in rows} == {NEW}
    assert app.repo.version_mixing() == (0, [])
    assert {row["status"] for row in json.loads(picsaris("photos", event_id, "--format", "json"))} == {"published"}
    # Each photo was indexed exactly once under 8.0 but the one whose run failed, from the same
    # stored verified JPEG as under 7.0 (the upload is not verified again).
    new_indexes = Counter(_photo_indexes(server, new_collection))
    assert new_indexes == Counter({**dict.fromkeys(photo_ids, 1), failed: 2})
    for params in _index_calls(server):
        if params["CollectionId"] == new_collection and not params["ExternalImageId"].startswith("selfie:"):
            photo_id = params["ExternalImageId"]
            stored = app.store.get(verified_image_key(event_id, photo_id))
            assert base64.b64decode(params["Image"]["Bytes"]) == stored
            assert params["Image"]["Bytes"] == first_pass_bytes[photo_id]
    assert set(ui_staleness(app.instance, PHOTO_ASSETS, failed).values()) == {StaleStatus.FRESH}
    # The guest without consent was never enrolled or indexed, under either version.
    rose = attendees["Rose Leslie"]
    assert not [p for n, p in server.state.calls if n == "CreateUser" and p["UserId"] == rose]
    assert not [p for p in _index_calls(server) if p["ExternalImageId"] == f"selfie:{rose}"]
    assert app.repo.engine_users_of(attendees["Rose Leslie"]) == []
    assert app.repo.get_attendee(attendees["Rose Leslie"]).reference_status.value == "no_consent"

    # -- pruning the old version deletes its collection and rows -----------------------------------
    assert set(app.repo.model_versions_in_use(event_id)) == {OLD, NEW}
    picsaris("event", "prune", event_id)
    assert [p["CollectionId"] for n, p in server.state.calls if n == "DeleteCollection"] == [old_collection]
    assert set(server.state.collections) == {new_collection}
    assert set(app.repo.model_versions_in_use(event_id)) == {NEW}
    assert shown_matches(event_id) == rows
    assert all(app.repo.photo_versions(pid) == [NEW] for pid in photo_ids)
