"""Ops look at pictures: a real dagster-webserver and a real headless Chromium open a photo
partition's page, follow its picture link and find the photo with the matched guest's box (the
metadata itself names nobody), then find a rejected upload marked failed in its check's partition list.
The screenshots are kept in test-artifacts/ (or $PICSARIS_TEST_ARTIFACTS)."""

import io
import os
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsaris_pipeline.assets.outcomes import UPLOAD_ACCEPTED
from picsaris_pipeline.domain.thumbnails import MATCHED, THUMB_SIDE, UNMATCHED
from picsaris_pipeline.orchestration.app import App
from picsaris_pipeline.services.thumbnail_route import make_server
from tests.support.browser import browser_page, chromium_path
from tests.support.cli_runner import picsaris
from tests.support.dagster_processes import dagster_services
from tests.support.environment import IN_CI, REPO_ROOT, missing

ARTIFACTS = Path(os.environ.get("PICSARIS_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))

DISMISS_DIALOGS = """
(() => { for (const b of document.querySelectorAll('button')) {
  if (['Skip', 'Dismiss', 'Close'].includes(b.innerText.trim())) b.click(); } return true; })()
"""
PICTURE_LINK = """
(() => { const a = [...document.querySelectorAll('a')].find(a => a.href.includes('/thumb.jpg'));
  return a ? a.href : null; })()
"""
RENDERED_PICTURE = """
(() => { const img = document.querySelector('img');
  return img && img.complete && img.naturalWidth > 0 ? img.naturalWidth : null; })()
"""


def click_text(text: str) -> str:
    """JS clicking the innermost visible element whose text is exactly `text` (a tab, a list row)."""
    return f"""
(() => {{ const hits = [...document.querySelectorAll('body *')].filter(
    e => e.innerText && e.innerText.trim() === {text!r} && e.offsetParent !== null);
  const target = hits[hits.length - 1]; if (target) target.click(); return Boolean(target); }})()
"""


def _pixels_like(picture: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((np.abs(picture - np.array(colour)).sum(axis=2) < 60).sum())


@pytest.fixture(scope="module")
def chromium():
    if not chromium_path():
        missing("Debian's chromium is not installed (apt-get install chromium)")


def test_a_photo_partition_links_its_picture_and_a_rejected_upload_is_marked_in_the_partition_list(
    chromium, picsaris_home, shared_photos, tmp_path, monkeypatch
):
    event = picsaris("event", "create", "Browser check").strip()
    selfie = str(shared_photos["obama_1.jpg"].path)
    obama = picsaris("attendee", "add", event, "--name", "Barack Obama", "--selfie", selfie).strip()
    photo = picsaris("upload", event, "--uploader", obama, str(shared_photos["group_two_people.jpg"].path)).strip()
    broken_file = tmp_path / "broken.jpg"
    broken_file.write_bytes(shared_photos["obama_3.jpg"].path.read_bytes()[:5000])
    broken = picsaris("upload", event, "--uploader", obama, str(broken_file)).strip()
    app = App.from_env()
    pictures = make_server(lambda: app.repo, app.store, 0)
    threading.Thread(target=pictures.serve_forever, daemon=True).start()
    monkeypatch.setenv("PICSARIS_THUMBNAIL_PORT", str(pictures.server_address[1]))
    picsaris("process")

    env = {**os.environ, "DAGSTER_HOME": str(picsaris_home / "dagster")}
    try:
        with dagster_services(env, tmp_path) as port, browser_page() as page:
            page.goto(f"http://127.0.0.1:{port}/assets/matches_published?view=partitions&partition={photo}")
            page.wait_for("document.body.innerText.includes('matched_attendee_ids')")
            page.evaluate(DISMISS_DIALOGS)
            assert page.wait_for(f"document.body.innerText.includes('{obama}')")
            assert not page.evaluate("document.body.innerText.includes('Barack Obama')")
            link = page.wait_for(PICTURE_LINK)
            with urllib.request.urlopen(link, timeout=10) as response:  # what the click shows
                served = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"), dtype=int)
            page.goto(link)
            width = page.wait_for(RENDERED_PICTURE)
            shot = page.screenshot(ARTIFACTS / "matches_published_picture.png")

            page.goto(f"http://127.0.0.1:{port}/assets/verified_upload?view=checks&checkDetail={UPLOAD_ACCEPTED}")
            page.wait_for("document.body.innerText.includes('Execution history')")  # the check's own tabs
            page.evaluate(DISMISS_DIALOGS)
            assert page.wait_for(click_text("Partitions"))
            # The partition list itself: one photo passed, the rejected one failed.
            counted = page.wait_for(
                "document.body.innerText.includes('Failed (1)') && document.body.innerText.includes('Passed (1)')"
            )
            assert page.wait_for(f"document.body.innerText.includes('{broken}')")
            assert page.wait_for(click_text(broken))
            marked = page.wait_for(
                "document.body.innerText.includes('rejected: ') && document.body.innerText.includes('Failed')"
            )
            page.screenshot(ARTIFACTS / "upload_accepted_partitions.png")
    finally:
        pictures.shutdown()
        pictures.server_close()
    assert link.endswith(f"/photos/{photo}/thumb.jpg") and width == THUMB_SIDE == max(served.shape[:2])
    # The guest's box and label in green, the stranger's box in orange.
    assert _pixels_like(served, MATCHED) > 200 and _pixels_like(served, UNMATCHED) > 200
    assert counted and marked and shot.stat().st_size > 10_000
    if IN_CI:
        print(f"screenshot kept at {shot}")


REPORT_STATE = """
(() => {
  const imgs = [...document.querySelectorAll('img')];
  return {
    images: imgs.length,
    loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    boxes: document.querySelectorAll('svg rect').length,
    guests: [...document.querySelectorAll('section.guest h2')].map(h => h.innerText),
  };
})()
"""


def test_the_event_report_opens_in_a_browser_with_every_photo_and_its_boxes(
    chromium, picsaris_home, shared_photos, tmp_path
):
    event = picsaris("event", "create", "Report check").strip()
    kit = picsaris(
        "attendee", "add", event, "--name", "Kit Harington", "--selfie", str(shared_photos["kit_harington_2.jpg"].path)
    ).strip()
    picsaris(
        "attendee", "add", event, "--name", "Rose Leslie", "--selfie", str(shared_photos["rose_leslie_1.jpg"].path)
    )
    picsaris(
        "upload",
        event,
        "--uploader",
        kit,
        *(
            str(shared_photos[name].path)
            for name in ("group_kit_with_rose.jpg", "kit_harington_3.jpg", "noface_giraffe.jpg")
        ),
    )
    picsaris("process")
    index = Path(picsaris("report", event, "--out", str(tmp_path / "report")).strip())

    with browser_page() as page:
        page.goto(index.as_uri())
        page.wait_for("document.readyState === 'complete'")
        state = page.evaluate(REPORT_STATE)
        page.screenshot(ARTIFACTS / "event_report.png")
    assert state["images"] == state["loaded"] >= 3  # every thumbnail shown actually loaded
    assert state["boxes"] >= 4  # kit+rose group (shown under each guest) and kit alone
    assert state["guests"] == ["Guest: Kit Harington", "Guest: Rose Leslie"]
