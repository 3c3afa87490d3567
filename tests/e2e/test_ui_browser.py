"""Ops look at pictures: a real dagster-webserver and a real headless Chromium open a photo
partition's page, follow its thumbnail link and find the photo with the matched guest's box (the
metadata itself names nobody).
The screenshot is kept in test-artifacts/ (or $PICSARIS_TEST_ARTIFACTS)."""

import os
import threading
from pathlib import Path

import pytest

from picsaris_pipeline.app import App
from picsaris_pipeline.thumbnail_route import make_server
from tests.support.browser import browser_page, chromium_path
from tests.support.cli_runner import picsaris
from tests.support.dagster_processes import dagster_services
from tests.support.environment import IN_CI, REPO_ROOT, missing

ARTIFACTS = Path(os.environ.get("PICSARIS_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))

DISMISS_DIALOGS = """
(() => { for (const b of document.querySelectorAll('button')) {
  if (['Skip', 'Dismiss', 'Close'].includes(b.innerText.trim())) b.click(); } return true; })()
"""
THUMBNAIL_LINK = """
(() => { const a = [...document.querySelectorAll('a')].find(a => a.href.includes('/thumb.jpg'));
  return a ? a.href : null; })()
"""
RENDERED_THUMBNAIL = """
(() => { const img = document.querySelector('img');
  return img && img.complete && img.naturalWidth > 0 ? img.naturalWidth : null; })()
"""


@pytest.fixture(scope="module")
def chromium():
    if not chromium_path():
        missing("Debian's chromium is not installed (apt-get install chromium)")


def test_a_photo_partition_page_links_the_photo_with_its_matched_guest(
    chromium, picsaris_home, shared_photos, tmp_path, monkeypatch
):
    event = picsaris("event", "create", "Browser check").strip()
    selfie = str(shared_photos["obama_1.jpg"].path)
    obama = picsaris("attendee", "add", event, "--name", "Barack Obama", "--selfie", selfie).strip()
    photo = picsaris("upload", event, "--uploader", obama, str(shared_photos["group_two_people.jpg"].path)).strip()
    app = App.from_env()
    thumbnails = make_server(lambda: app.repo, app.store, 0)
    threading.Thread(target=thumbnails.serve_forever, daemon=True).start()
    monkeypatch.setenv("PICSARIS_THUMBNAIL_PORT", str(thumbnails.server_address[1]))
    picsaris("process")

    env = {**os.environ, "DAGSTER_HOME": str(picsaris_home / "dagster")}
    try:
        with dagster_services(env, tmp_path) as port, browser_page() as page:
            page.goto(f"http://127.0.0.1:{port}/assets/matches_published?view=partitions&partition={photo}")
            page.wait_for("document.body.innerText.includes('matched_attendee_ids')")
            page.evaluate(DISMISS_DIALOGS)
            assert page.wait_for(f"document.body.innerText.includes('{obama}')")
            assert not page.evaluate("document.body.innerText.includes('Barack Obama')")
            link = page.wait_for(THUMBNAIL_LINK)
            page.goto(link)
            width = page.wait_for(RENDERED_THUMBNAIL)
            shot = page.screenshot(ARTIFACTS / "matches_published_thumbnail.png")
    finally:
        thumbnails.shutdown()
        thumbnails.server_close()
    assert link.endswith(f"/photos/{photo}/thumb.jpg") and width == 320
    assert shot.stat().st_size > 10_000
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
