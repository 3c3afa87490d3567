"""Links to a photo's thumbnail (face boxes, no names) that stop working once the photo is erased.

Dagster's event log is append-only, so it never holds a picture: a materialization
links to the thumbnail instead (`MetadataValue.url`, one click from the partition's metadata).
- In a bucket (R2/S3): a presigned GET URL that expires after PICSARIS_THUMBNAIL_LINK_SECONDS
  (default one hour); once the object is deleted it answers 404 even before then.
- On the embedded default (a local directory): `http://127.0.0.1:PORT/photos/<photo_id>/thumb.jpg`,
  served read-only by `picsaris thumbnails serve` (started by `./dev ui`), PORT being
  PICSARIS_THUMBNAIL_PORT (default 3071). It looks the photo up in the application database on every
  request and answers 404 for a photo that is erased (or never existed).
"""

from __future__ import annotations

import http.server
import re
from collections.abc import Callable

from picsaris_pipeline.db.repository import Repository
from picsaris_pipeline.domain.keys import thumbnail_key
from picsaris_pipeline.errors import NotFoundError
from picsaris_pipeline.settings import DEFAULT_THUMBNAIL_LINK_SECONDS, DEFAULT_THUMBNAIL_PORT, Settings
from picsaris_pipeline.storage import ObjectStore

DEFAULT_PORT = DEFAULT_THUMBNAIL_PORT
DEFAULT_LINK_SECONDS = DEFAULT_THUMBNAIL_LINK_SECONDS
_ROUTE = re.compile(r"^/photos/([0-9A-Za-z]{1,64})/thumb\.jpg$")


def route_port(settings: Settings | None = None) -> int:
    """PICSARIS_THUMBNAIL_PORT, from `settings` (default: read from the environment now)."""
    return (settings or Settings.from_env()).thumbnail_port


def thumbnail_link(store: ObjectStore, event_id: str, photo_id: str, settings: Settings | None = None) -> str:
    """The link a materialization carries to the photo's thumbnail."""
    settings = settings or Settings.from_env()
    if not store.links_open_from_web_pages:  # the embedded default's folder: this module's route
        return f"http://127.0.0.1:{settings.thumbnail_port}/photos/{photo_id}/thumb.jpg"
    return store.link(thumbnail_key(event_id, photo_id), expires_in=settings.thumbnail_link_seconds)


def thumbnail_bytes(repo: Repository, store: ObjectStore, path: str) -> bytes | None:
    """The thumbnail a route path names, or None (404): unknown path, erased photo, no thumbnail."""
    found = _ROUTE.match(path.split("?", 1)[0])
    if found is None:
        return None
    photo = repo.find_photo(found.group(1))
    if photo is None:
        return None
    try:
        return store.get(thumbnail_key(photo.event_id, photo.id))
    except NotFoundError:
        return None


def make_server(
    repo_factory: Callable[[], Repository], store: ObjectStore, port: int, host: str = "127.0.0.1"
) -> http.server.ThreadingHTTPServer:
    """A read-only server of derived thumbnails by photo id (GET and HEAD only)."""

    class ThumbnailHandler(http.server.BaseHTTPRequestHandler):
        def _answer(self, with_body: bool) -> None:
            data = thumbnail_bytes(repo_factory(), store, self.path)
            if data is None:
                self.send_error(404, "no such thumbnail (erased, or never stored)")
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")  # an erased photo must not linger in caches
            self.end_headers()
            if with_body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def log_message(self, format: str, *args: object) -> None:
            pass  # request lines name photo ids only, but nobody needs them on stderr

    return http.server.ThreadingHTTPServer((host, port), ThumbnailHandler)
