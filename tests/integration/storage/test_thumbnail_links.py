"""Thumbnail links on a bucket (R2/S3, here moto over HTTP): presigned, short-lived, and dead once the
photo's thumbnail is deleted, so Dagster's metadata never holds the picture itself."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest

from picsaris_pipeline.domain.keys import thumbnail_key
from picsaris_pipeline.services.thumbnail_route import DEFAULT_LINK_SECONDS, thumbnail_link
from picsaris_pipeline.storage import LocalObjectStore, S3ObjectStore

EVENT, PHOTO = "01M8VEFTYAN99HN0A7QJDYXDSN", "01M8VEFVA4K9681W73FMSF07TE"


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_a_bucket_thumbnail_link_is_presigned_short_lived_and_dies_with_the_object(
    s3_store: S3ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = thumbnail_key(EVENT, PHOTO)
    s3_store.put(key, b"\xff\xd8 a thumbnail", "image/jpeg")
    link = thumbnail_link(s3_store, EVENT, PHOTO)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert query["X-Amz-Expires"] == [str(DEFAULT_LINK_SECONDS)]
    assert _status(link) == 200
    s3_store.delete(key)
    assert _status(link) == 404
    monkeypatch.setenv("PICSARIS_THUMBNAIL_LINK_SECONDS", "120")
    assert "X-Amz-Expires=120" in thumbnail_link(s3_store, EVENT, PHOTO)


def test_a_local_thumbnail_link_names_the_photo_on_the_route_not_a_file(
    local_store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PICSARIS_THUMBNAIL_PORT", "4123")
    assert thumbnail_link(local_store, EVENT, PHOTO) == f"http://127.0.0.1:4123/photos/{PHOTO}/thumb.jpg"
