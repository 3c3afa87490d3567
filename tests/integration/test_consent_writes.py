"""Face data is written only where consent holds at write time: a withdrawal that lands while the
selfie is in the engine (dlib embedding it in another thread, Rekognition answering IndexFaces over
HTTP) leaves no vector, no engine user or face and no match, on SQLite and on Postgres. A selfie
without consent is deleted from the bucket; consent given back asks for a new one; a selfie that
never arrives ends rejected."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository import Repository, connect
from picsaris_pipeline.domain.model import ReferenceStatus
from picsaris_pipeline.faces.dlib_engine import DlibEngine
from picsaris_pipeline.faces.engine import FaceBox
from picsaris_pipeline.realtime import photo_messages
from picsaris_pipeline.services import health
from picsaris_pipeline.services.attendees import (
    NEW_SELFIE_NEEDED,
    SELFIE_MISSING_AFTER,
    build_reference,
    replace_selfie,
)
from picsaris_pipeline.services.consent import give_consent, withdraw_consent
from picsaris_pipeline.services.intake import register_attendee
from picsaris_pipeline.storage import LocalObjectStore, ObjectStore
from tests.support.db_helpers import count_rows, update_rows
from tests.support.object_stores import moto_server, s3_store_for
from tests.support.publishers import RecordingPublisher


class EngineHeldAtEmbedding(DlibEngine):
    """The real dlib engine, held at the boundary: `embed` computes the vector, says so, and waits for
    the test before handing it back, so the test can withdraw consent in the middle of the call."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded = threading.Event()
        self.go_on = threading.Event()

    def embed(self, image: Any, boxes: Any) -> np.ndarray:
        vectors = super().embed(image, boxes)
        self.embedded.set()
        assert self.go_on.wait(60), "the test never let the engine go on"
        return vectors


class _InThread:
    """Run a call in a thread; `result()` joins it and returns its value or raises its error."""

    def __init__(self, function: Any, *args: Any) -> None:
        self._outcome: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(function, *args), daemon=True)
        self._thread.start()

    def _run(self, function: Any, *args: Any) -> None:
        try:
            self._outcome["value"] = function(*args)
        except BaseException as error:  # handed to the test thread
            self._outcome["error"] = error

    def result(self) -> Any:
        self._thread.join(120)
        assert not self._thread.is_alive(), "the call never finished"
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]


@pytest.fixture
def repo(database_url: str) -> Repository:
    return connect(database_url)


@pytest.fixture
def bucket(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "bucket")


def _sign_up(repo: Repository, store: ObjectStore, selfie: Path, consent: bool = True) -> Any:
    event = repo.create_event("Consent race")
    return register_attendee(repo, store, event.id, "Barack Obama", consent, selfie.read_bytes(), selfie.name)


def test_withdrawing_consent_while_dlib_embeds_the_selfie_stores_nothing(repo, bucket, shared_photos):
    attendee = _sign_up(repo, bucket, shared_photos["obama_1.jpg"].path)
    engine = EngineHeldAtEmbedding()

    building = _InThread(build_reference, repo, bucket, engine, attendee.id)
    assert engine.embedded.wait(60), "the selfie never reached the engine"
    withdraw_consent(repo, DlibEngine.shared(), RecordingPublisher(), attendee.id, 0.45)
    engine.go_on.set()
    built, _, _ = building.result()

    assert built.consent is False and built.reference_status is ReferenceStatus.NO_CONSENT
    assert count_rows(repo, t.attendee_vectors, attendee_id=attendee.id) == 0
    assert health.face_data_without_consent(repo).passed
    assert bucket.head(str(attendee.selfie_key)) is None  # and the selfie image went with it


def test_without_the_race_the_held_engine_builds_the_reference(repo, bucket, shared_photos):
    """The same hold, released without a withdrawal: the vector is stored (the hold changes nothing else)."""
    attendee = _sign_up(repo, bucket, shared_photos["obama_1.jpg"].path)
    engine = EngineHeldAtEmbedding()
    building = _InThread(build_reference, repo, bucket, engine, attendee.id)
    assert engine.embedded.wait(60)
    engine.go_on.set()
    built, details, _ = building.result()
    assert built.reference_status is ReferenceStatus.READY and details["faces_in_selfie"] == 1
    assert count_rows(repo, t.attendee_vectors, attendee_id=attendee.id) == 1


def test_a_vector_written_after_a_withdrawal_is_refused(repo, bucket):
    attendee = repo.add_attendee(repo.create_event("E").id, "Guest", True, None, None)
    repo.set_consent(attendee.id, False)
    assert repo.store_attendee_vector(attendee, "dlib-resnet-v1-5pt-j0", np.ones(128, np.float32)) is False
    assert repo.store_engine_user(attendee, "rekognition-7.0", "c", attendee.id, "face") is False
    assert (
        count_rows(repo, t.attendee_vectors, attendee_id=attendee.id) == 0
        and count_rows(repo, t.engine_users, attendee_id=attendee.id) == 0
    )
    assert repo.get_attendee(attendee.id).reference_status is ReferenceStatus.NO_CONSENT


def test_matches_computed_before_a_withdrawal_are_not_stored(repo):
    """A photo matched against references read before the withdrawal: the write re-reads consent and
    stores none of the rows (nor their announcement), so the caller matches again without them."""
    event = repo.create_event("E")
    withdrawn = repo.add_attendee(event.id, "Withdrawn", True, None, None)
    staying = repo.add_attendee(event.id, "Staying", True, None, None)
    photo = repo.create_photo(event.id, staying.id, "p.jpg", "image/jpeg", "0" * 64, 10, "jpg")
    faces = repo.replace_faces(photo, "hog", [FaceBox(0, 0, 50, 50, 1.0), FaceBox(60, 0, 110, 50, 1.0)])
    rows = [(faces[0].id, withdrawn.id, 0.9), (faces[1].id, staying.id, 0.8)]
    messages = photo_messages(event.id, photo.id, [withdrawn.id, staying.id], "v1")

    repo.set_consent(withdrawn.id, False)
    refused = repo.replace_matches(photo, "v1", rows, messages)

    assert refused == {withdrawn.id}
    assert repo.list_matches(event.id) == []
    assert count_rows(repo, t.realtime_outbox) == 0
    assert repo.replace_matches(photo, "v1", rows[1:], messages[:0]) == set()
    assert [m.attendee_id for m in repo.list_matches(event.id)] == [staying.id]


def test_the_check_flags_face_data_kept_without_consent(repo):
    """What the race used to leave (consent False beside a ready reference and a vector) is flagged."""
    attendee = repo.add_attendee(repo.create_event("E").id, "Guest", True, None, None)
    assert repo.store_attendee_vector(attendee, "dlib-resnet-v1-5pt-j0", np.ones(128, np.float32))
    assert health.face_data_without_consent(repo).passed
    # A writer that skipped the re-check, as before this fix.
    update_rows(repo, t.attendees, t.attendees.c.id == attendee.id, consent=False)
    finding = health.face_data_without_consent(repo)
    assert not finding.passed and finding.count == 1 and attendee.id in finding.examples[0]


# -- Rekognition over HTTP --------------------------------------------------------------------------
@pytest.fixture
def rekognition(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from picsaris_pipeline.faces.rekognition import RekognitionEngine
    from picsaris_pipeline.orchestration.resources import FaceEngineResource
    from tests.support.rekognition_server import RekognitionServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("PICSARIS_REKOGNITION_COLLECTION_PREFIX", f"t{uuid.uuid4().hex[:8]}")
    with RekognitionServer() as server:
        monkeypatch.setenv("PICSARIS_REKOGNITION_ENDPOINT_URL", server.url)
        RekognitionEngine._instances.clear()
        yield server, FaceEngineResource(engine="rekognition").get()
        RekognitionEngine._instances.clear()


def test_withdrawing_consent_while_rekognition_indexes_the_selfie_leaves_nothing_anywhere(
    repo, bucket, shared_photos, rekognition
):
    server, engine = rekognition
    attendee = _sign_up(repo, bucket, shared_photos["obama_1.jpg"].path)
    held = server.state.hold("IndexFaces")  # indexed in the collection, the answer held back

    building = _InThread(build_reference, repo, bucket, engine, attendee.id)
    assert held.reached.wait(60), "IndexFaces was never called"
    withdraw_consent(repo, engine, RecordingPublisher(), attendee.id, 0.80)
    held.release()
    built, _, _ = building.result()

    assert built.consent is False and built.reference_status is ReferenceStatus.NO_CONSENT
    assert count_rows(repo, t.engine_users, attendee_id=attendee.id) == 0
    collection = server.state.collections[engine.collection_id(attendee.event_id)]
    assert attendee.id not in collection.users
    assert not [f for f in collection.faces.values() if f.external_image_id == f"selfie:{attendee.id}"]
    assert server.state.count("DeleteUser") >= 1 and server.state.validation_errors == []
    assert health.face_data_without_consent(repo).passed


# -- the selfie image without consent ---------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "bucket")

    store = s3_store_for(request.getfixturevalue("moto_endpoint"), f"consent-{uuid.uuid4().hex}")
    store.client.create_bucket(Bucket=store.bucket)
    return store


def test_a_selfie_without_consent_is_deleted_once_the_decision_is_recorded(any_store, shared_photos, tmp_path):
    repo = connect(f"sqlite:///{tmp_path / 'app.db'}")
    attendee = _sign_up(repo, any_store, shared_photos["obama_1.jpg"].path, consent=False)
    assert any_store.head(str(attendee.selfie_key)) is not None

    built, _, _ = build_reference(repo, any_store, DlibEngine.shared(), attendee.id)

    assert any_store.head(str(attendee.selfie_key)) is None
    assert built.reference_status is ReferenceStatus.NO_CONSENT
    assert built.reason == "no consent: no face data is kept; the selfie image was deleted from the bucket"
    assert built.selfie_key is None and built.selfie_file_name == "obama_1.jpg"
    again, _, _ = build_reference(repo, any_store, DlibEngine.shared(), attendee.id)  # a re-run: nothing left to do
    assert again.reference_status is ReferenceStatus.NO_CONSENT


def test_consent_given_back_after_the_selfie_was_deleted_asks_for_a_new_one(any_store, shared_photos, tmp_path):
    repo = connect(f"sqlite:///{tmp_path / 'app.db'}")
    attendee = _sign_up(repo, any_store, shared_photos["obama_1.jpg"].path, consent=False)
    build_reference(repo, any_store, DlibEngine.shared(), attendee.id)

    given = give_consent(repo, attendee.id).attendee

    assert given.consent and given.reference_status is ReferenceStatus.REJECTED
    assert given.reason == NEW_SELFIE_NEEDED and "a new selfie is needed" in given.reason
    assert repo.attendees_needing_reference(DlibEngine.shared().model_version) == []  # nothing to wait for
    renewed = replace_selfie(repo, any_store, attendee.id, shared_photos["obama_2.jpg"].path.read_bytes(), "new.jpg")
    assert renewed.reference_status is ReferenceStatus.PENDING and any_store.head(str(renewed.selfie_key))
    built, _, _ = build_reference(repo, any_store, DlibEngine.shared(), attendee.id)
    assert built.reference_status is ReferenceStatus.READY


def test_the_cli_says_a_new_selfie_is_needed_when_consent_comes_back(picsaris_home, shared_photos, monkeypatch):
    from click.testing import CliRunner

    from picsaris_pipeline.cli import main
    from tests.support.cli_runner import picsaris

    monkeypatch.setenv("DAGSTER_HOME", str(picsaris_home / "dagster"))
    event_id = picsaris("event", "create", "Consent back").strip()
    selfie = str(shared_photos["obama_1.jpg"].path)
    attendee_id = picsaris("attendee", "add", event_id, "--name", "Obama", "--selfie", selfie, "--no-consent").strip()
    picsaris("process")
    assert not list((picsaris_home / "bucket").rglob("*selfies*/*"))  # the selfie image is gone
    result = CliRunner().invoke(main, ["attendee", "consent", attendee_id, "--give"], catch_exceptions=False)
    assert result.exit_code == 0 and "a new selfie is needed" in result.stderr


def test_a_withdrawal_deletes_the_selfie_image_and_consent_comes_back_with_a_new_one(
    picsaris_home, shared_photos, monkeypatch
):
    from click.testing import CliRunner

    from picsaris_pipeline.cli import main
    from tests.support.cli_runner import picsaris

    monkeypatch.setenv("DAGSTER_HOME", str(picsaris_home / "dagster"))
    event_id = picsaris("event", "create", "Withdrawn selfie").strip()
    selfie = str(shared_photos["obama_1.jpg"].path)
    attendee_id = picsaris("attendee", "add", event_id, "--name", "Obama", "--selfie", selfie).strip()
    picsaris("process")
    assert list((picsaris_home / "bucket").rglob("*selfies*/*"))
    withdrawn = CliRunner().invoke(main, ["attendee", "consent", attendee_id, "--withdraw"], catch_exceptions=False)
    assert withdrawn.exit_code == 0 and "their selfie image" in withdrawn.stderr
    assert not list((picsaris_home / "bucket").rglob("*selfies*/*"))  # the image went with the consent

    given = CliRunner().invoke(main, ["attendee", "consent", attendee_id, "--give"], catch_exceptions=False)
    assert given.exit_code == 0 and "a new selfie is needed" in given.stderr
    renewed = CliRunner().invoke(
        main, ["attendee", "consent", attendee_id, "--give", "--selfie", selfie], catch_exceptions=False
    )
    assert renewed.exit_code == 0, renewed.output
    picsaris("process")
    listed = json.loads(picsaris("attendee", "list", event_id, "--format", "json"))
    assert {row["attendee_id"]: row["reference_status"] for row in listed} == {attendee_id: "ready"}


# -- a selfie that never arrives --------------------------------------------------------------------
def test_a_selfie_missing_for_longer_than_the_stale_window_ends_rejected(repo, bucket, shared_photos):
    attendee = _sign_up(repo, bucket, shared_photos["obama_1.jpg"].path)
    bucket.delete(str(attendee.selfie_key))  # vanished from the bucket

    waiting, _, _ = build_reference(repo, bucket, DlibEngine.shared(), attendee.id)
    assert waiting.reference_status is ReferenceStatus.PENDING  # just signed up: it may still land

    signed_up = datetime.now(UTC) - SELFIE_MISSING_AFTER - timedelta(minutes=1)
    update_rows(repo, t.attendees, t.attendees.c.id == attendee.id, created_at=signed_up)
    rejected, _, _ = build_reference(repo, bucket, DlibEngine.shared(), attendee.id)

    assert rejected.reference_status is ReferenceStatus.REJECTED
    assert "missing from the bucket 11 minutes after sign-up" in str(rejected.reason)
    assert repo.attendees_needing_reference(DlibEngine.shared().model_version) == []  # no longer waited for


def test_withdrawing_consent_while_rekognition_searches_a_photo_leaves_no_match(
    pipeline, event, shared_photos, monkeypatch
):
    """The photo's matching asks SearchUsers per face with the guest list read before; the guest
    withdraws while the last answer is held: the match write refuses them and the photo is matched
    again without them."""
    from picsaris_pipeline.assets import PHOTO_ASSETS
    from picsaris_pipeline.faces.rekognition import RekognitionEngine
    from picsaris_pipeline.orchestration.resources import FaceEngineResource
    from picsaris_pipeline.services.photos import publish_matches
    from tests.support.rekognition_server import RekognitionServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with RekognitionServer() as server:
        monkeypatch.setenv("PICSARIS_REKOGNITION_ENDPOINT_URL", server.url)
        RekognitionEngine._instances.clear()
        pipeline.resources["face_engine"] = FaceEngineResource(engine="rekognition")
        engine = pipeline.resources["face_engine"].get()
        obama = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
        biden = pipeline.attendee(event, "Joe Biden", shared_photos["biden_2.jpg"].path)
        for attendee in (obama, biden):
            assert pipeline.run_attendee(attendee.id).success
        data = shared_photos["group_two_people.jpg"].path.read_bytes()
        photo = pipeline.upload(event, biden, data, "group_two_people.jpg")
        assert pipeline.run_photo(photo.id, assets=PHOTO_ASSETS[:3]).success  # up to embedded
        # Hold the last face's SearchUsers: every answer was computed with the guest still enrolled.
        faces = pipeline.repo.get_faces(photo.id, engine.detector_version)
        assert len(faces) == 2
        held = server.state.hold("SearchUsers", after=len(faces) - 1)

        matching = _InThread(
            publish_matches,
            pipeline.repo,
            pipeline.store,
            RecordingPublisher(),
            photo.id,
            engine.model_version,
            0.80,
            engine,
        )
        assert held.reached.wait(60), "SearchUsers was never called"
        withdraw_consent(pipeline.repo, engine, RecordingPublisher(), obama.id, 0.80)
        held.release()
        result = matching.result()

        assert {m.attendee_id for m in pipeline.repo.list_matches(event.id)} == {biden.id}
        assert result.details["matched_attendee_ids"] == [biden.id]  # ids only in Dagster's metadata
        assert health.matches_without_consent(pipeline.repo).passed
        assert health.face_data_without_consent(pipeline.repo).passed
        RekognitionEngine._instances.clear()
