"""The event report on a small event built straight through the repository and store (no pipeline
run, no face models): two guests, one published photo with two faces and one match, one rejected."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from picsaris_pipeline.cli.report import write_report
from picsaris_pipeline.db.repository import dispose_all
from picsaris_pipeline.domain.ids import new_id
from picsaris_pipeline.domain.keys import verified_image_key
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.errors import NotFoundError
from picsaris_pipeline.faces.engine import FaceBox
from picsaris_pipeline.orchestration.app import App

MATCHED_NAME = "Ada <script>x</script> Lovelace"
OTHER_NAME = "Grace Hopper"
REJECTION = "image data is corrupt or truncated (broken data stream)"


@dataclass(frozen=True)
class Scenario:
    app: App
    event_id: str
    published_id: str
    rejected_id: str


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    # Only PICSARIS_HOME: the database and the store then default to SQLite and a folder under it.
    for name in ("PICSARIS_DATABASE_URL", "PICSARIS_BUCKET", "PICSARIS_S3_ENDPOINT_URL", "PICSARIS_FACE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PICSARIS_HOME", str(tmp_path / "home"))
    yield App.from_env()
    dispose_all()


def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 160)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def scenario(app: App) -> Scenario:
    repo = app.repo
    event = repo.create_event("Launch party")
    ada = repo.add_attendee(event.id, MATCHED_NAME, True, None, None)
    repo.add_attendee(event.id, OTHER_NAME, False, None, None)
    published = repo.create_photo(event.id, ada.id, "party <b>1</b>.jpg", "image/jpeg", "0" * 64, 1000, "jpg")
    rejected = repo.create_photo(event.id, ada.id, "broken.jpg", "image/jpeg", "1" * 64, 1000, "jpg")

    app.store.put(verified_image_key(event.id, published.id), _jpeg(800, 600), "image/jpeg")
    repo.update_photo(published.id, PhotoStatus.PUBLISHED, face_count=2, width=800, height=600)
    faces = repo.replace_faces(
        published,
        app.engine.detector_version,
        [FaceBox(100, 100, 300, 300, 0.99), FaceBox(500, 200, 600, 300, 0.9)],
    )
    repo.replace_matches(published, app.engine.model_version, [(faces[0].id, ada.id, 0.8)])
    repo.update_photo(rejected.id, PhotoStatus.REJECTED, reason=REJECTION)
    return Scenario(app, event.id, published.id, rejected.id)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _figure(page: str, photo_id: str) -> str:
    found = re.search(rf'<figure class="photo" data-photo-id="{photo_id}">(.*?)</figure>', page, re.S)
    assert found, f"no figure for photo {photo_id}"
    return found.group(1)


def test_report_writes_csvs_page_and_thumbnails(scenario: Scenario, tmp_path: Path) -> None:
    index = write_report(scenario.app, scenario.event_id, tmp_path / "out")

    folder = tmp_path / "out" / scenario.event_id
    assert index == folder / "index.html"
    for name in ("photos.csv", "matches.csv", "summary.csv", "index.html"):
        assert (folder / name).is_file(), name

    photos = {row["photo_id"]: row for row in _csv(folder / "photos.csv")}
    assert list(_csv(folder / "photos.csv")[0]) == ["photo_id", "file_name", "status", "reason", "faces", "matches"]
    assert len(photos) == 2
    assert photos[scenario.published_id]["status"] == "published"
    assert photos[scenario.published_id]["faces"] == "2"
    assert photos[scenario.published_id]["matches"] == "1"
    assert photos[scenario.rejected_id]["status"] == "rejected"
    assert photos[scenario.rejected_id]["reason"] == REJECTION

    matches = _csv(folder / "matches.csv")
    assert len(matches) == 1
    assert matches[0]["photo_id"] == scenario.published_id
    assert matches[0]["attendee_name"] == MATCHED_NAME
    assert float(matches[0]["similarity"]) == pytest.approx(0.8)
    assert matches[0]["model_version"] == scenario.app.engine.model_version

    summary_rows = _csv(folder / "summary.csv")
    assert list(summary_rows[0]) == ["metric", "value"]
    summary = {row["metric"]: float(row["value"]) for row in summary_rows}
    assert (summary["published"], summary["rejected"], summary["duplicates"], summary["in_progress"]) == (1, 1, 0, 0)
    assert (summary["photos"], summary["faces"], summary["matches"], summary["unmatched_faces"]) == (2, 2, 1, 1)
    assert (summary["attendees"], summary["attendees_ready"], summary["attendees_without_consent"]) == (2, 0, 1)
    verified = scenario.app.store.head(verified_image_key(scenario.event_id, scenario.published_id))
    assert verified is not None and summary["stored_bytes"] == verified.size

    page = index.read_text(encoding="utf-8")
    assert "<title>Launch party</title>" in page
    assert OTHER_NAME in page
    assert "Ada &lt;script&gt;x&lt;/script&gt; Lovelace" in page
    assert "<script" not in page.lower()
    assert "party &lt;b&gt;1&lt;/b&gt;.jpg" in page and "<b>1</b>" not in page
    assert REJECTION in page
    assert "Unmatched and rejected photos" in page
    assert '<th scope="row">faces</th><td class="value">2</td>' in page
    assert "http://" not in page and "https://" not in page

    published = _figure(page, scenario.published_id)
    assert f'<img src="images/{scenario.published_id}.jpg"' in published
    assert '<svg viewBox="0 0 480 360"' in published
    rects = re.findall(r"<rect [^>]*>", published)
    assert len(rects) == 2
    # Boxes are scaled from the 800x600 verified image to the 480x360 thumbnail (factor 0.6).
    assert 'x="60.0" y="60.0" width="120.0" height="120.0"' in rects[0] and 'stroke="green"' in rects[0]
    assert 'x="300.0" y="120.0" width="60.0" height="60.0"' in rects[1] and 'stroke="orange"' in rects[1]

    rejected = _figure(page, scenario.rejected_id)
    assert "<img" not in rejected and 'class="placeholder"' in rejected and "rejected" in rejected

    with Image.open(folder / "images" / f"{scenario.published_id}.jpg") as thumb:
        assert max(thumb.size) == 480
        assert thumb.size == (480, 360)
    assert not (folder / "images" / f"{scenario.rejected_id}.jpg").exists()


def test_report_drops_thumbnails_of_erased_photos(scenario: Scenario, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_report(scenario.app, scenario.event_id, out)
    thumb = out / scenario.event_id / "images" / f"{scenario.published_id}.jpg"
    assert thumb.is_file()

    scenario.app.repo.delete_photo(scenario.published_id)
    write_report(scenario.app, scenario.event_id, out)
    assert not thumb.exists()


def test_unknown_event_raises_not_found(app: App, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        write_report(app, new_id(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_report_exports_the_summary_tables_as_csv(scenario: Scenario, tmp_path: Path) -> None:
    index = write_report(scenario.app, scenario.event_id, tmp_path / "out")
    for name in ("photos_by_status.csv", "guests.csv", "costs.csv", "summary.csv"):
        assert (index.parent / name).stat().st_size > 0, name
    costs = (index.parent / "costs.csv").read_text().splitlines()
    assert costs[0] == "item,quantity,unit_price_usd,cost_usd,cost_on_rekognition_usd" and costs[-1].startswith(
        "total,"
    )
    assert "<h2>Cost</h2>" in index.read_text()


def test_report_numbers_read_as_people_read_them(scenario: Scenario, tmp_path: Path) -> None:
    folder = write_report(scenario.app, scenario.event_id, tmp_path / "out").parent
    summary = {row["metric"]: row["value"] for row in _csv(folder / "summary.csv")}
    assert (summary["photos"], summary["faces"], summary["faces_per_published_photo"]) == ("2", "2", "2.00")
    assert re.fullmatch(r"\d+\.\d\d", summary["upload_to_published_p50_s"])
    assert all(len(row["similarity"]) <= len("0.123") for row in _csv(folder / "matches.csv"))


def test_report_bills_the_local_engine_nothing_and_shows_what_rekognition_would(
    scenario: Scenario, tmp_path: Path
) -> None:
    index = write_report(scenario.app, scenario.event_id, tmp_path / "out")
    engine = _csv(index.parent / "costs.csv")[0]
    # The published photo, its 2 faces: one IndexFaces and two SearchUsers on Rekognition.
    assert engine == {
        "item": "face_engine_calls",
        "quantity": "3",
        "unit_price_usd": "0",
        "cost_usd": "0",
        "cost_on_rekognition_usd": "0.003",
    }
    page = index.read_text()
    assert "<th>cost on Rekognition</th>" in page
    assert "<tr><th>face_engine_calls</th><td>3</td><td>$0</td><td>$0</td><td>$0.003</td></tr>" in page
    assert "upload complete -&gt; published p95 (s)" in page
