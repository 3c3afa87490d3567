"""Awkward and broken uploads through the real pipeline: intake, the bucket, then the photo's assets
materialized on a Dagster test instance. Every kind is made in the test from the real photos in
../shared/faces. Awkward but legal photos end `published` and matched to the right guest (whose
sign-up selfie is another photo of them); broken ones end `rejected` with a reason a person can read;
no run fails and a batch goes on past a broken photo.
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from picsaris_pipeline.db.schema import faces
from picsaris_pipeline.domain.imaging import MAX_PIXELS, decode_photo, load_rgb
from picsaris_pipeline.domain.keys import verified_image_key
from picsaris_pipeline.domain.model import Attendee, Event, Photo, PhotoStatus
from picsaris_pipeline.errors import BadInputError
from picsaris_pipeline.faces.engine import configured_versions
from picsaris_pipeline.services.intake import complete_upload, request_upload, sha256_of
from picsaris_pipeline.storage import put_via_ticket
from tests.support.db_helpers import count_rows
from tests.support.exif import STORED_AS
from tests.support.image_bytes import image_bytes
from tests.support.pipeline_helpers import Pipeline, metadata

# Each person's sign-up selfie: another photo of them than the one uploaded.
SELFIES = {
    "obama": "obama_1.jpg",
    "biden": "biden_2.jpg",
    "kit_harington": "kit_harington_1.jpg",
    "rose_leslie": "rose_leslie_2.jpg",
    "alex_lacamoire": "alex_lacamoire_3.jpg",
}


def _upright(raw: bytes) -> Image.Image:
    return decode_photo(raw).image


def _grey_16bit(image: Image.Image) -> bytes:
    scaled = np.asarray(image.convert("L"), dtype=np.uint16) * 257  # the full 0..65535 range
    sixteen = Image.fromarray(scaled.astype("<u2"))
    assert sixteen.mode == "I;16"
    return image_bytes(sixteen, "PNG")


def _transparent_border(image: Image.Image) -> bytes:
    """A cut-out: the outer tenth transparent (its pixels black underneath), the middle opaque."""
    alpha = Image.new("L", image.size, 0)
    w, h = image.size
    alpha.paste(255, (w // 10, h // 10, w - w // 10, h - h // 10))
    cutout = Image.composite(image, Image.new("RGB", image.size), alpha)
    cutout.putalpha(alpha)
    return image_bytes(cutout, "PNG")


def _other_frames(image: Image.Image, shared: dict) -> list[Image.Image]:
    """Later frames show a dog, not the guest: only the first frame may count."""
    dog = Image.open(shared["noface_dog.jpg"].path).convert("RGB").resize(image.size)
    return [dog, dog.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]


def _animated(fmt: str) -> Callable[[Image.Image, bytes, dict], bytes]:
    def make(image: Image.Image, _: bytes, shared: dict) -> bytes:
        return image_bytes(image, fmt, save_all=True, append_images=_other_frames(image, shared), duration=200, loop=0)

    return make


@dataclass(frozen=True)
class Legal:
    """An awkward but legal upload: made from `source`, uploaded as `file_name`."""

    source: str
    make: Callable[[Image.Image, bytes, dict], bytes]
    file_name: str
    verified: dict[str, Any] = field(default_factory=dict)  # expected verified_upload metadata
    mode: str | None = None  # the Pillow mode the upload really has, checked before it is sent


LEGAL = {
    "cmyk_jpeg": Legal(
        "obama_2.jpg",
        lambda im, _, __: image_bytes(im.convert("CMYK"), "JPEG", quality=90),
        "print.jpg",
        {"source_format": "jpeg"},
        "CMYK",
    ),
    "grey_16bit_png": Legal(
        "biden_1.jpg", lambda im, _, __: _grey_16bit(im), "scan-16bit.png", {"source_format": "png"}, "I;16"
    ),
    "greyscale_jpeg": Legal(
        "kit_harington_3.jpg", lambda im, _, __: image_bytes(im.convert("L"), "JPEG", quality=90), "bw.jpg", {}, "L"
    ),
    "grey_with_alpha_png": Legal(
        "rose_leslie_1.jpg", lambda im, _, __: image_bytes(im.convert("LA"), "PNG"), "bw.png", {}, "LA"
    ),
    "rgba_png_transparent_border": Legal(
        "alex_lacamoire_2.jpg", lambda im, _, __: _transparent_border(im), "cut.png", {}, "RGBA"
    ),
    "palette_png_256_colours": Legal(
        "obama_4.jpg",
        lambda im, _, __: image_bytes(im.quantize(256), "PNG"),
        "palette.png",
        {"source_format": "png"},
        "P",
    ),
    "animated_webp": Legal(
        "kit_harington_3.jpg", _animated("WEBP"), "live.webp", {"source_format": "webp", "frames": 3}
    ),
    "animated_png_apng": Legal(
        "rose_leslie_1.jpg", _animated("PNG"), "live.png", {"source_format": "png", "frames": 3}
    ),
    "heic": Legal(
        "biden_1.jpg", lambda im, _, __: image_bytes(im, "HEIF", quality=80), "IMG_0001.HEIC", {"source_format": "heic"}
    ),
    "webp": Legal(
        "alex_lacamoire_2.jpg",
        lambda im, _, __: image_bytes(im, "WEBP", quality=80),
        "IMG_0002.webp",
        {"source_format": "webp"},
    ),
    "png_named_jpg": Legal(
        "obama_2.jpg", lambda im, _, __: image_bytes(im, "PNG"), "IMG_0003.jpg", {"source_format": "png"}
    ),
    "jpeg_named_png": Legal("kit_harington_3.jpg", lambda _, raw, __: raw, "IMG_0004.png", {"source_format": "jpeg"}),
    "heic_named_jpg": Legal(
        "rose_leslie_1.jpg",
        lambda im, _, __: image_bytes(im, "HEIF", quality=80),
        "IMG_0005.jpg",
        {"source_format": "heic"},
    ),
}


def _guest(pipeline: Pipeline, event: Event, shared: dict, person: str) -> Attendee:
    """A guest of the event signed up with a selfie of `person`, reference built."""
    name = person.replace("_", " ").title()
    attendee = pipeline.attendee(event, name, shared[SELFIES[person]].path)
    assert pipeline.run_attendee(attendee.id).success
    return attendee


def _processed(pipeline: Pipeline, photo: Photo) -> tuple[Photo, dg.ExecuteInProcessResult]:
    result = pipeline.run_photo(photo.id)
    assert result.success, "a bad photo must never fail its run"
    return pipeline.repo.get_photo(photo.id), result


def _assert_published_and_matched(pipeline: Pipeline, photo: Photo, guest: Attendee, result: Any) -> None:
    assert photo.status is PhotoStatus.PUBLISHED, photo.reason
    assert photo.face_count == 1
    assert [(m.attendee_id, m.photo_id) for m in pipeline.repo.list_matches(photo.event_id)] == [(guest.id, photo.id)]
    assert metadata(result, "matches_published")["matched_attendee_ids"] == [guest.id]


# -- awkward but legal: published and matched -----------------------------------------------------


@pytest.mark.parametrize("kind", sorted(LEGAL))
def test_an_awkward_but_legal_photo_is_published_and_matched_to_its_guest(pipeline, event, shared_photos, kind):
    case = LEGAL[kind]
    raw = shared_photos[case.source].path.read_bytes()
    data = case.make(_upright(raw), raw, shared_photos)
    if case.mode:
        assert Image.open(io.BytesIO(data)).mode == case.mode
    guest = _guest(pipeline, event, shared_photos, shared_photos[case.source].person)
    photo, result = _processed(pipeline, pipeline.upload(event, guest, data, case.file_name))
    _assert_published_and_matched(pipeline, photo, guest, result)
    verified = metadata(result, "verified_upload")
    assert {key: verified.get(key) for key in case.verified} == case.verified
    assert verified["verified_size"] == "{}x{}".format(*_upright(raw).size)


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_a_photo_stored_under_any_exif_orientation_is_turned_upright_found_and_matched(
    pipeline, event, shared_photos, orientation
):
    upright = _upright(shared_photos["rose_leslie_1.jpg"].path.read_bytes())
    transpose = STORED_AS[orientation]
    stored = upright if transpose is None else upright.transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    guest = _guest(pipeline, event, shared_photos, "rose_leslie")
    upload = pipeline.upload(event, guest, image_bytes(stored, "JPEG", quality=92, exif=exif), f"IMG_{orientation}.JPG")
    photo, result = _processed(pipeline, upload)
    _assert_published_and_matched(pipeline, photo, guest, result)
    verified = metadata(result, "verified_upload")
    assert verified["exif_orientation"] == orientation
    assert verified["original_size"] == "{}x{}".format(*stored.size)
    turned = load_rgb(pipeline.store.get(verified_image_key(event.id, photo.id)))
    assert turned.size == upright.size
    difference = np.abs(np.asarray(turned, dtype=np.int16) - np.asarray(upright, dtype=np.int16)).mean()
    assert difference < 6, f"orientation {orientation} not undone (mean difference {difference:.1f})"


# -- broken: rejected with a reason -----------------------------------------------------------------


def _bomb(shared: dict) -> bytes:
    """A PNG of ~150 KB declaring 15000x15000 pixels (225 MP): a real photo dithered to black and
    white in one corner of an empty canvas, which compresses to almost nothing."""
    canvas = Image.new("1", (15_000, 15_000), 1)
    canvas.paste(Image.open(shared["obama_2.jpg"].path).convert("1"), (0, 0))
    data = image_bytes(canvas, "PNG")
    assert len(data) < 300_000
    return data


def _over_the_limit(shared: dict) -> bytes:
    """A real photo blown up to 10240x10240 (105 MP): an honest JPEG (6 MB), just too many pixels."""
    side = 10_240
    assert side * side > MAX_PIXELS
    return image_bytes(Image.open(shared["obama_3.jpg"].path).convert("RGB").resize((side, side)), "JPEG", quality=80)


def _truncated(name: str, keep: float) -> Callable[[dict], bytes]:
    def make(shared: dict) -> bytes:
        raw = shared[name].path.read_bytes()
        return raw[: int(len(raw) * keep)]

    return make


def _animated_gif(shared: dict) -> bytes:
    image = _upright(shared["kit_harington_3.jpg"].path.read_bytes())
    return _animated("GIF")(image, b"", shared)


NOT_AN_IMAGE = r"not an image: unknown format or corrupt data"

# kind -> (bytes made from the shared photos, name uploaded as, the stored reason must match)
BROKEN: dict[str, tuple[Callable[[dict], bytes], str, str]] = {
    "random_bytes_as_jpg": (lambda _: random.Random(7).randbytes(64_000), "IMG_0006.jpg", NOT_AN_IMAGE),
    "text_as_jpg": (lambda _: b"Table 4: Ana, Ben, Chloe\nTable 5: Dev, Eli\n" * 50, "seating.jpg", NOT_AN_IMAGE),
    "html_as_heic": (lambda _: b"<!doctype html><title>Not found</title>" * 20, "IMG_0007.heic", NOT_AN_IMAGE),
    "jpeg_truncated_at_half": (
        _truncated("obama_3.jpg", 0.5),
        "IMG_0008.jpg",
        r"image data is corrupt or truncated \(image file is truncated.*\)",
    ),
    "jpeg_missing_its_last_2pct": (
        _truncated("obama_3.jpg", 0.98),
        "IMG_0009.jpg",
        r"image data is corrupt or truncated \(image file is truncated.*\)",
    ),
    "heic_truncated": (
        lambda shared: image_bytes(_upright(shared["biden_1.jpg"].path.read_bytes()), "HEIF", quality=80)[:40_000],
        "IMG_0010.heic",
        NOT_AN_IMAGE,
    ),
    "decompression_bomb_png": (_bomb, "IMG_0011.png", r"image is 225 MP, over the 100 MP limit"),
    "over_the_pixel_limit": (_over_the_limit, "pano.jpg", r"image is 10240x10240 \(105 MP\), over the 100 MP limit"),
    "animated_gif_named_jpg": (
        _animated_gif,
        "party.jpg",
        r"unsupported image format GIF; send JPEG, PNG, HEIC or WebP",
    ),
}


def _assert_rejected(pipeline: Pipeline, photo: Photo, result: Any, reason: str) -> None:
    assert photo.status is PhotoStatus.REJECTED
    assert re.fullmatch(reason, photo.reason or ""), photo.reason
    assert metadata(result, "verified_upload")["reason"] == photo.reason
    assert all(
        metadata(result, step)["step_skipped"] for step in ("faces_detected", "embeddings_stored", "matches_published")
    )
    assert count_rows(pipeline.repo, faces, photo_id=photo.id) == 0


@pytest.fixture
def uploader(pipeline, event) -> Attendee:
    """A guest whose own face does not matter for rejected uploads (no selfie, no reference)."""
    return pipeline.repo.add_attendee(event.id, "Guest", True, None, None)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_upload_is_rejected_with_a_readable_reason(pipeline, event, uploader, shared_photos, kind):
    make, file_name, reason = BROKEN[kind]
    photo, result = _processed(pipeline, pipeline.upload(event, uploader, make(shared_photos), file_name))
    _assert_rejected(pipeline, photo, result, reason)


def test_an_animated_gif_is_refused_at_intake_under_its_own_name(pipeline, event, uploader, shared_photos):
    data = _animated_gif(shared_photos)
    with pytest.raises(BadInputError, match="content type 'image/gif' not accepted"):
        pipeline.upload(event, uploader, data, "party.gif")


def _bypassing_intake(
    pipeline: Pipeline, event: Event, uploader: Attendee, data: bytes, file_name: str, **declared: Any
) -> Photo:
    """What intake refuses can still reach the bucket (an API port that checks less, a replayed ticket):
    a record as intake would write it, the bytes at its key, status uploaded."""
    photo = pipeline.repo.create_photo(
        event.id,
        uploader.id,
        file_name,
        "image/jpeg",
        declared.get("sha256", sha256_of(data)),
        declared.get("size", len(data)),
        "jpg",
    )
    pipeline.store.put(photo.object_key, data)
    pipeline.repo.update_photo(photo.id, PhotoStatus.UPLOADED)
    return pipeline.repo.get_photo(photo.id)


def test_an_empty_file_is_refused_at_intake_and_rejected_if_it_reaches_the_bucket(pipeline, event, uploader):
    with pytest.raises(BadInputError, match="the file is empty"):
        pipeline.upload(event, uploader, b"", "IMG_0012.jpg")
    photo, result = _processed(pipeline, _bypassing_intake(pipeline, event, uploader, b"", "IMG_0012.jpg"))
    _assert_rejected(pipeline, photo, result, r"the file is empty")


def test_bytes_that_changed_after_the_phone_hashed_them_are_rejected_as_a_sha256_mismatch(
    pipeline, event, uploader, shared_photos
):
    raw = shared_photos["obama_2.jpg"].path.read_bytes()
    corrupted = bytearray(raw)
    corrupted[len(raw) // 2] ^= 0xFF  # one flipped byte, same length: still decodes, still not what was declared
    photo = pipeline.upload(event, uploader, bytes(corrupted), "IMG_0013.jpg", declared_sha=sha256_of(raw))
    photo, result = _processed(pipeline, photo)
    _assert_rejected(
        pipeline,
        photo,
        result,
        re.escape(f"SHA-256 mismatch: declared {sha256_of(raw)[:12]}…, received {sha256_of(bytes(corrupted))[:12]}…"),
    )


def test_an_upload_larger_than_declared_is_rejected_when_the_phone_completes_it(
    pipeline, event, uploader, shared_photos
):
    raw = shared_photos["obama_2.jpg"].path.read_bytes()
    request = request_upload(
        pipeline.repo, pipeline.store, event.id, uploader.id, sha256_of(raw), len(raw), "image/jpeg", "IMG_0014.jpg"
    )
    assert request.ticket is not None
    put_via_ticket(request.ticket, raw + b"\0" * 4096)
    photo = complete_upload(pipeline.repo, pipeline.store, request.photo.id)
    assert photo.status is PhotoStatus.REJECTED
    assert photo.reason == f"uploaded {len(raw) + 4096} bytes, declared {len(raw)}"
    photo, result = _processed(pipeline, photo)  # a run launched anyway (the sensor) changes nothing
    assert photo.status is PhotoStatus.REJECTED and metadata(result, "verified_upload")["step_skipped"] is True


def test_an_object_replaced_by_a_larger_one_after_completion_is_rejected_unread(
    pipeline, event, uploader, shared_photos
):
    raw = shared_photos["obama_2.jpg"].path.read_bytes()
    photo = pipeline.upload(event, uploader, raw, "IMG_0015.jpg")
    bigger = shared_photos["obama_3.jpg"].path.read_bytes()  # a second PUT on the still-valid ticket
    assert len(bigger) > len(raw)
    pipeline.store.put(photo.object_key, bigger)
    photo, result = _processed(pipeline, photo)
    _assert_rejected(
        pipeline, photo, result, re.escape(f"file is {len(bigger)} bytes, more than the {len(raw)} declared")
    )


# -- a batch goes on --------------------------------------------------------------------------------


@pytest.fixture
def home_pipeline(picsaris_home) -> Iterator[Pipeline]:
    """The embedded default under a temp PICSARIS_HOME, so `picsaris process`'s runner and the
    code location's resources see the same database and bucket as the test."""
    from picsaris_pipeline.settings import Settings

    picsaris_home.mkdir(parents=True)
    with dg.instance_for_test() as instance:
        yield Pipeline.build(picsaris_home, instance, database_url=Settings.from_env().database_url)


def test_a_batch_goes_on_past_broken_photos_and_publishes_the_good_ones(home_pipeline, shared_photos):
    from picsaris_pipeline.orchestration.runner import process_pending

    pipeline = home_pipeline
    event = pipeline.event("Batch")
    obama = pipeline.attendee(event, "Barack Obama", shared_photos["obama_1.jpg"].path)
    biden = pipeline.attendee(event, "Joe Biden", shared_photos["biden_2.jpg"].path)
    raw = {name: shared_photos[name].path.read_bytes() for name in ("obama_2.jpg", "biden_1.jpg", "obama_3.jpg")}
    batch = [
        pipeline.upload(event, obama, raw["obama_2.jpg"], "obama_2.jpg"),
        pipeline.upload(event, obama, random.Random(1).randbytes(50_000), "garbage.jpg"),
        pipeline.upload(event, biden, raw["biden_1.jpg"], "biden_1.jpg"),
        pipeline.upload(event, biden, raw["obama_3.jpg"][:20_000], "cut-off.jpg"),
        pipeline.upload(event, biden, shared_photos["group_two_people.jpg"].path.read_bytes(), "two.jpg"),
    ]
    summary = process_pending(
        pipeline.instance, pipeline.repo, pipeline.store, configured_versions("dlib").model_version, event.id
    )
    assert summary.ok, summary.failures
    assert (summary.attendees, summary.photos) == (2, 5)
    after = [pipeline.repo.get_photo(photo.id) for photo in batch]
    assert [p.status for p in after] == [
        PhotoStatus.PUBLISHED,
        PhotoStatus.REJECTED,
        PhotoStatus.PUBLISHED,
        PhotoStatus.REJECTED,
        PhotoStatus.PUBLISHED,
    ]
    assert after[1].reason == "not an image: unknown format or corrupt data"
    assert after[3].reason is not None and after[3].reason.startswith("image data is corrupt or truncated")
    matched = {(m.file_name, m.attendee_name) for m in pipeline.repo.list_matches(event.id)}
    assert matched == {
        ("obama_2.jpg", "Barack Obama"),
        ("biden_1.jpg", "Joe Biden"),
        ("two.jpg", "Barack Obama"),
        ("two.jpg", "Joe Biden"),
    }
