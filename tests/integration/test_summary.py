"""The event summary on SQLite and the machine's PostgreSQL, on an event built by hand through the
repository and a local bucket (no pipeline run, no face models)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from picsaris_pipeline.db import schema as t
from picsaris_pipeline.db.repository import Repository, connect
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.keys import verified_image_key
from picsaris_pipeline.domain.model import PhotoStatus, ReferenceStatus
from picsaris_pipeline.errors import ConfigurationError, NotFoundError
from picsaris_pipeline.faces.engine import FaceBox
from picsaris_pipeline.services.summary import (
    BY_STATUS_SCHEMA,
    COSTS_SCHEMA,
    PER_ATTENDEE_SCHEMA,
    TOTAL_METRICS,
    TOTALS_SCHEMA,
    UnitPrices,
    summarize_event,
    summary_markdown,
)
from picsaris_pipeline.storage import LocalObjectStore
from tests.support.db_helpers import update_rows

MODEL = "dlib-resnet-v1"
OLD_MODEL = "dlib-resnet-v0"
DETECTOR = "hog-1200"
ADA, GRACE, LINUS = "Ada Lovelace", "Grace Hopper", "Linus | Torvalds"
PRICES = UnitPrices()  # the defaults, whatever the environment says


@dataclass(frozen=True)
class Scenario:
    repo: Repository
    store: LocalObjectStore
    event_id: str
    ids: dict[str, str]  # attendee name -> id


def _boxes(n: int) -> list[FaceBox]:
    return [FaceBox(100 * i, 10, 100 * i + 80, 90, 0.9) for i in range(n)]


CREATED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _set_times(repo: Repository, photo_id: str, seconds: float) -> None:
    # Test-only: fix when a photo was requested and published so the percentiles are exact.
    update_rows(
        repo, t.photos, t.photos.c.id == photo_id, created_at=CREATED, updated_at=CREATED + timedelta(seconds=seconds)
    )


def _land(store: LocalObjectStore, key: str, at: datetime) -> None:
    """Date the uploaded object as the bucket would have when the phone's PUT finished."""
    os.utime(store.root / key, (at.timestamp(), at.timestamp()))


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "bucket")


@pytest.fixture
def scenario(database_url: str, store: LocalObjectStore) -> Scenario:
    """Three guests (one without consent); eight photos: two published (3 and 1 faces, 3 matches
    under MODEL plus one under OLD_MODEL), three rejected with two reasons, one duplicate, one failed
    after its face was stored, one still waiting for its upload."""
    repo = connect(database_url)
    event = repo.create_event("Summer gala")
    ada = repo.add_attendee(event.id, ADA, True, "ada.jpg", "jpg")
    grace = repo.add_attendee(event.id, GRACE, True, "grace.png", "png")
    linus = repo.add_attendee(event.id, LINUS, False, None, None)
    repo.set_reference_status(ada.id, ReferenceStatus.READY)
    repo.set_reference_status(grace.id, ReferenceStatus.REJECTED, "no face in the selfie")

    p1, p2, p3, p4, p5, p6, p7, _p8 = (
        repo.create_photo(event.id, ada.id, f"IMG_{i}.jpg", "image/jpeg", f"{i:064x}", 1000, "jpg") for i in range(1, 9)
    )
    repo.update_photo(p1.id, PhotoStatus.PUBLISHED, face_count=3)
    repo.update_photo(p2.id, PhotoStatus.PUBLISHED, face_count=1)
    for rejected, reason in ((p3, "not an image"), (p4, "not an image"), (p5, "too small")):
        repo.update_photo(rejected.id, PhotoStatus.REJECTED, reason=reason)
    repo.update_photo(p6.id, PhotoStatus.DUPLICATE, duplicate_of=p1.id)
    repo.update_photo(p7.id, PhotoStatus.FAILED, reason="engine kept failing")
    # p8 stays pending_upload.

    f1 = repo.replace_faces(p1, DETECTOR, _boxes(3))
    f2 = repo.replace_faces(p2, DETECTOR, _boxes(1))
    repo.replace_faces(p7, DETECTOR, _boxes(1))
    # Published photos have every face embedded, under both versions for the one re-embedded.
    repo.store_face_vectors(p1, f1, MODEL, np.ones((3, 128), dtype=np.float32))
    repo.store_face_vectors(p2, f2, MODEL, np.ones((1, 128), dtype=np.float32))
    repo.store_face_vectors(p1, f1, OLD_MODEL, np.ones((3, 128), dtype=np.float32))
    repo.store_face_vectors(p2, f2, OLD_MODEL, np.ones((1, 128), dtype=np.float32))
    repo.replace_matches(p1, MODEL, [(f1[0].id, ada.id, 0.8), (f1[1].id, grace.id, 0.7)])
    repo.replace_matches(p2, MODEL, [(f2[0].id, ada.id, 0.9)])
    repo.replace_matches(p2, OLD_MODEL, [(f2[0].id, grace.id, 0.6)])
    _set_times(repo, p1.id, 2.0)
    _set_times(repo, p2.id, 10.0)

    store.put(p1.object_key, b"x" * 1000)
    store.put(p2.object_key, b"x" * 500)
    _land(store, p1.object_key, CREATED)
    _land(store, p2.object_key, CREATED)
    store.put(verified_image_key(event.id, p1.id), b"x" * 100)
    assert ada.selfie_key
    store.put(ada.selfie_key, b"x" * 250)
    other = repo.create_event("Other party")
    store.put(f"events/{other.id}/selfies/{new_id()}.jpg", b"x" * 999)  # not this event's bytes
    return Scenario(repo, store, event.id, {ADA: ada.id, GRACE: grace.id, LINUS: linus.id})


def _totals(frame: pl.DataFrame) -> dict[str, float]:
    return dict(zip(frame["metric"].to_list(), frame["value"].to_list(), strict=True))


def test_summary_of_a_small_event(scenario: Scenario) -> None:
    summary = summarize_event(scenario.repo, scenario.store, scenario.event_id, MODEL, PRICES)
    assert (summary.event_id, summary.event_name, summary.model_version) == (scenario.event_id, "Summer gala", MODEL)

    assert summary.by_status.schema == pl.Schema(BY_STATUS_SCHEMA)
    assert summary.by_status.rows() == [
        ("duplicate", "", 1),
        ("failed", "engine kept failing", 1),
        ("pending_upload", "", 1),
        ("published", "", 2),
        ("rejected", "not an image", 2),
        ("rejected", "too small", 1),
    ]

    assert summary.per_attendee.schema == pl.Schema(PER_ATTENDEE_SCHEMA)
    assert summary.per_attendee.rows() == [
        (scenario.ids[ADA], ADA, True, "ready", 2),
        (scenario.ids[GRACE], GRACE, True, "rejected", 1),  # her OLD_MODEL match does not count
        (scenario.ids[LINUS], LINUS, False, "pending", 0),
    ]

    assert summary.totals.schema == pl.Schema(TOTALS_SCHEMA)
    assert summary.totals["metric"].to_list() == list(TOTAL_METRICS)
    totals = _totals(summary.totals)
    assert totals == {
        "photos": 8.0,
        "published": 2.0,
        "rejected": 3.0,
        "duplicates": 1.0,
        "failed": 1.0,
        "in_progress": 1.0,
        "faces": 4.0,  # of published photos; the failed photo's face is not counted
        "faces_per_published_photo": 2.0,
        "matches": 3.0,
        "unmatched_faces": 1.0,
        "attendees": 3.0,
        "attendees_ready": 1.0,
        "attendees_without_consent": 1.0,
        "upload_to_published_p50_s": pytest.approx(6.0),
        "upload_to_published_p95_s": pytest.approx(9.6),
        "stored_bytes": 1850.0,
    }
    assert summary.total("stored_bytes") == 1850.0

    assert summary.costs.schema == pl.Schema(COSTS_SCHEMA)
    costs = {row["item"]: row for row in summary.costs.iter_rows(named=True)}
    assert list(costs) == ["face_engine_calls", "storage_gb_month", "realtime_messages", "total"]
    # IndexFaces: 2 published photos + the failed one that has faces + 2 indexed selfies (ready,
    # rejected); SearchUsers: 4 faces of published photos.
    assert costs["face_engine_calls"]["quantity"] == 9.0
    # MODEL is dlib's: local calls are billed nothing, and priced only as what Rekognition would bill.
    assert (costs["face_engine_calls"]["unit_price_usd"], costs["face_engine_calls"]["cost_usd"]) == (0.0, 0.0)
    assert costs["face_engine_calls"]["cost_on_rekognition_usd"] == pytest.approx(0.009)
    assert costs["storage_gb_month"]["quantity"] == pytest.approx(1.85e-6)
    assert costs["storage_gb_month"]["cost_usd"] == pytest.approx(1.85e-6 * 0.015)
    # 2 published photos on the event topic + 3 matched guests.
    assert costs["realtime_messages"]["quantity"] == 5.0
    assert costs["realtime_messages"]["cost_usd"] == pytest.approx(1.25e-5)
    assert costs["total"]["quantity"] is None and costs["total"]["unit_price_usd"] is None
    assert costs["total"]["cost_usd"] == pytest.approx(1.85e-6 * 0.015 + 1.25e-5)
    assert costs["total"]["cost_on_rekognition_usd"] == pytest.approx(0.009 + 1.85e-6 * 0.015 + 1.25e-5)

    markdown = summary_markdown(summary)
    for header in (
        "## Totals",
        "| metric | value |",
        "## Photos by status and reason",
        "| status | reason | photos |",
        "## Matches per attendee",
        "| attendee id | consent | reference | photos matched |",
        "## Costs (USD)",
        "| item | quantity | unit price (USD) | cost (USD) | cost on Rekognition (USD) |",
    ):
        assert header in markdown, header
    # Guests by id: the markdown is kept in Dagster's event log, so it names nobody.
    assert f"| {scenario.ids[ADA]} | yes | ready | 2 |" in markdown
    assert f"| {scenario.ids[GRACE]} | yes | rejected | 1 |" in markdown
    assert f"| {scenario.ids[LINUS]} | no | pending | 0 |" in markdown
    assert not any(name in markdown for name in (ADA, GRACE, LINUS, "Linus \\| Torvalds"))
    assert "| rejected | not an image | 2 |" in markdown
    assert "| stored_bytes | 1850 |" in markdown
    assert "| upload complete -> published p95 (s) | 9.60 |" in markdown
    assert "| face_engine_calls | 9 | 0 | 0 | 0.009 |" in markdown
    assert "would cost on AWS Rekognition" in markdown


def test_prices_scale_the_costs(scenario: Scenario) -> None:
    prices = UnitPrices(face_engine_call_usd=0.01, storage_gb_month_usd=1000.0, realtime_message_usd=0.0)
    costs = summarize_event(scenario.repo, scenario.store, scenario.event_id, MODEL, prices).costs
    by_item = dict(zip(costs["item"].to_list(), costs["cost_usd"].to_list(), strict=True))
    on_rekognition = dict(zip(costs["item"].to_list(), costs["cost_on_rekognition_usd"].to_list(), strict=True))
    assert (by_item["face_engine_calls"], on_rekognition["face_engine_calls"]) == (0.0, pytest.approx(0.09))
    assert by_item["storage_gb_month"] == pytest.approx(1.85e-3)
    assert by_item["realtime_messages"] == 0.0
    assert by_item["total"] == pytest.approx(1.85e-3)
    assert on_rekognition["total"] == pytest.approx(0.09 + 1.85e-3)


def test_an_event_on_rekognition_is_billed_its_face_engine_calls(scenario: Scenario) -> None:
    costs = summarize_event(scenario.repo, scenario.store, scenario.event_id, "rekognition-7", PRICES).costs
    engine = costs.row(0, named=True)
    # 3 photos with faces stored + 2 indexed selfies; none of the faces is represented under this version.
    assert (engine["item"], engine["quantity"], engine["unit_price_usd"]) == ("face_engine_calls", 5.0, 0.001)
    assert engine["cost_usd"] == pytest.approx(0.005)
    assert costs["cost_usd"].to_list() == costs["cost_on_rekognition_usd"].to_list()


def test_latency_starts_when_the_upload_completes_not_when_it_was_requested(scenario: Scenario) -> None:
    # The phone took 1 s to PUT each photo after asking for its ticket: the guest's wait starts after that.
    for photo in scenario.repo.list_photos(scenario.event_id, [PhotoStatus.PUBLISHED]):
        _land(scenario.store, photo.object_key, CREATED + timedelta(seconds=1))
    totals = _totals(summarize_event(scenario.repo, scenario.store, scenario.event_id, MODEL, PRICES).totals)
    assert (totals["upload_to_published_p50_s"], totals["upload_to_published_p95_s"]) == (5.0, 8.6)


def test_another_model_version_sees_only_its_own_matches(scenario: Scenario) -> None:
    summary = summarize_event(scenario.repo, scenario.store, scenario.event_id, OLD_MODEL, PRICES)
    totals = _totals(summary.totals)
    assert (totals["matches"], totals["unmatched_faces"]) == (1.0, 3.0)
    matched = dict(
        zip(summary.per_attendee["name"].to_list(), summary.per_attendee["photos_matched"].to_list(), strict=True)
    )
    assert matched == {ADA: 0, GRACE: 1, LINUS: 0}


def test_empty_event_has_typed_frames_and_zero_totals(database_url: str, store: LocalObjectStore) -> None:
    repo = connect(database_url)
    event = repo.create_event("Nobody came")
    summary = summarize_event(repo, store, event.id, MODEL, PRICES)

    assert summary.by_status.schema == pl.Schema(BY_STATUS_SCHEMA) and summary.by_status.is_empty()
    assert summary.per_attendee.schema == pl.Schema(PER_ATTENDEE_SCHEMA) and summary.per_attendee.is_empty()
    assert summary.totals.schema == pl.Schema(TOTALS_SCHEMA)
    assert _totals(summary.totals) == dict.fromkeys(TOTAL_METRICS, 0.0)
    assert summary.costs.schema == pl.Schema(COSTS_SCHEMA)
    assert summary.costs["item"].to_list() == ["face_engine_calls", "storage_gb_month", "realtime_messages", "total"]
    assert summary.costs["cost_usd"].to_list() == [0.0, 0.0, 0.0, 0.0]
    assert summary.costs["cost_on_rekognition_usd"].to_list() == [0.0, 0.0, 0.0, 0.0]
    markdown = summary_markdown(summary)
    assert "| metric | value |" in markdown and "(none)" in markdown


def test_unknown_event_is_not_found(database_url: str, store: LocalObjectStore) -> None:
    with pytest.raises(NotFoundError):
        summarize_event(connect(database_url), store, new_id(), MODEL, PRICES)


def test_prices_from_env() -> None:
    assert UnitPrices.from_env({}) == UnitPrices()
    assert UnitPrices.from_env({"PICSARIS_PRICE_ENGINE_CALL_USD": ""}) == UnitPrices()
    prices = UnitPrices.from_env(
        {
            "PICSARIS_PRICE_ENGINE_CALL_USD": "0.002",
            "PICSARIS_PRICE_STORAGE_GB_MONTH_USD": "0",
            "PICSARIS_PRICE_REALTIME_MESSAGE_USD": " 1e-6 ",
        }
    )
    assert prices == UnitPrices(face_engine_call_usd=0.002, storage_gb_month_usd=0.0, realtime_message_usd=1e-6)


@pytest.mark.parametrize("value", ["-0.001", "abc", "nan", "inf"])
def test_prices_from_env_rejects_bad_values(value: str) -> None:
    with pytest.raises(ConfigurationError, match="PICSARIS_PRICE_STORAGE_GB_MONTH_USD"):
        UnitPrices.from_env({"PICSARIS_PRICE_STORAGE_GB_MONTH_USD": value})


def test_prices_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICSARIS_PRICE_REALTIME_MESSAGE_USD", "-1")
    with pytest.raises(ConfigurationError):
        UnitPrices.from_env()
    monkeypatch.setenv("PICSARIS_PRICE_REALTIME_MESSAGE_USD", "0.5")
    assert UnitPrices.from_env().realtime_message_usd == 0.5


def test_event_overviews_count_every_events_photos_by_status_and_attendees(scenario: Scenario) -> None:
    overviews = {event.id: event for event in scenario.repo.event_overviews()}
    gala = overviews[scenario.event_id]
    assert (gala.name, gala.attendees, gala.created_at.tzinfo) == ("Summer gala", 3, UTC)
    assert gala.photos_by_status == {
        "published": 2,
        "rejected": 3,
        "duplicate": 1,
        "failed": 1,
        "pending_upload": 1,
    }
    [other] = [event for event in overviews.values() if event.id != scenario.event_id]
    assert (other.name, other.photos_by_status, other.attendees) == ("Other party", {}, 0)
    assert list(overviews) == sorted(overviews)  # oldest first


def test_figures_people_read_carry_no_float_noise(scenario: Scenario) -> None:
    summary = summarize_event(scenario.repo, scenario.store, scenario.event_id, MODEL, PRICES)
    money = summary.costs["cost_usd"].to_list() + summary.costs["cost_on_rekognition_usd"].to_list()
    assert money and all(round(value, 12) == value for value in money)
    # 0.009 + 1.85e-6 * 0.015 + 5 * 2.5e-6, not 0.009012527749999999
    assert summary.costs["cost_on_rekognition_usd"].to_list()[-1] == 0.00901252775
    assert "| total |  |  | 0.000012528 | 0.009012528 |" in summary_markdown(summary)
    assert all(round(value, 2) == value for value in summary.totals["value"].to_list())
