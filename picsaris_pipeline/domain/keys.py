"""Object key contract (uploads are stored under these keys, which the bucket sensor parses), built
and parsed in one place.

events/{event_id}/photos/{uploader_id}/{photo_id}.{ext}   guest uploads
events/{event_id}/selfies/{attendee_id}.{ext}             sign-up selfies
events/{event_id}/derived/{photo_id}/...                  images we derive
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from picsaris_pipeline.domain.ids import is_valid_id
from picsaris_pipeline.errors import BadInputError

# Extensions a phone may upload; the bytes are still sniffed on decode, the extension only names the key.
UPLOAD_EXTENSIONS = ("jpg", "jpeg", "png", "heic", "heif", "webp")

_ID = r"[0-9A-HJKMNP-TV-Z]{26}"
_EXT = r"[a-z0-9]{1,5}"
_PHOTO_RE = re.compile(rf"^events/(?P<event>{_ID})/photos/(?P<uploader>{_ID})/(?P<photo>{_ID})\.(?P<ext>{_EXT})$")
_SELFIE_RE = re.compile(rf"^events/(?P<event>{_ID})/selfies/(?P<attendee>{_ID})\.(?P<ext>{_EXT})$")


@dataclass(frozen=True)
class ParsedKey:
    kind: Literal["photo", "selfie"]
    event_id: str
    object_id: str  # photo id or attendee id
    uploader_id: str | None
    ext: str


def _check_ids(*ids: str) -> None:
    for value in ids:
        if not is_valid_id(value):
            raise BadInputError(f"not a valid id: {value!r}")


def normalise_extension(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if ext not in UPLOAD_EXTENSIONS:
        raise BadInputError(f"unsupported file type .{ext}; allowed: {', '.join(UPLOAD_EXTENSIONS)}")
    return ext


def photo_key(event_id: str, uploader_id: str, photo_id: str, ext: str) -> str:
    _check_ids(event_id, uploader_id, photo_id)
    return f"events/{event_id}/photos/{uploader_id}/{photo_id}.{normalise_extension(ext)}"


def selfie_key(event_id: str, attendee_id: str, ext: str) -> str:
    _check_ids(event_id, attendee_id)
    return f"events/{event_id}/selfies/{attendee_id}.{normalise_extension(ext)}"


def derived_prefix(event_id: str, photo_id: str) -> str:
    _check_ids(event_id, photo_id)
    return f"events/{event_id}/derived/{photo_id}/"


def verified_image_key(event_id: str, photo_id: str) -> str:
    """The decoded, upright, resized JPEG every later step reads."""
    return derived_prefix(event_id, photo_id) + "verified.jpg"


def thumbnail_key(event_id: str, photo_id: str) -> str:
    """A small JPEG of the photo with its face boxes, for people (UI links, reports)."""
    return derived_prefix(event_id, photo_id) + "thumb.jpg"


def parse_key(key: str) -> ParsedKey | None:
    """Parse an upload key; None for anything that is not a photo or selfie key of the contract."""
    if match := _PHOTO_RE.match(key):
        return ParsedKey("photo", match["event"], match["photo"], match["uploader"], match["ext"])
    if match := _SELFIE_RE.match(key):
        return ParsedKey("selfie", match["event"], match["attendee"], None, match["ext"])
    return None
