"""Decoding uploads: real photos from ../shared/faces in every shape phones and editors produce."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from picsaris_pipeline.domain.imaging import MAX_SIDE, decode_photo, encode_jpeg, sha256_hex
from picsaris_pipeline.errors import BadInputError
from tests.support.exif import STORED_AS


@pytest.fixture(scope="module")
def upright(shared_faces_dir) -> Image.Image:
    image = Image.open(shared_faces_dir / "obama_4.jpg").convert("RGB")
    image.thumbnail((480, 480))
    return image


def _bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_jpeg_decodes_to_rgb_with_its_sizes(shared_faces_dir):
    decoded = decode_photo((shared_faces_dir / "obama_1.jpg").read_bytes())
    assert decoded.image.mode == "RGB"
    assert decoded.source_format == "jpeg"
    assert (decoded.original_width, decoded.original_height) == (910, 1137)
    assert decoded.image.size == (910, 1137)


def test_large_photos_are_resized_to_at_most_2400_px(upright):
    big = upright.resize((5000, 3000))
    decoded = decode_photo(_bytes(big, "JPEG", quality=85))
    assert max(decoded.image.size) == MAX_SIDE
    assert decoded.image.size == (2400, 1440)


def test_rgba_png_is_flattened_onto_white(shared_faces_dir):
    decoded = decode_photo((shared_faces_dir / "alex_lacamoire_1.png").read_bytes())
    assert decoded.image.mode == "RGB" and decoded.source_format == "png"


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_exif_orientation_is_applied(upright, orientation):
    stored = upright if STORED_AS[orientation] is None else upright.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_photo(_bytes(stored, "JPEG", quality=95, exif=exif))
    assert decoded.orientation == orientation
    assert decoded.image.size == upright.size
    difference = np.abs(np.asarray(decoded.image, dtype=np.int16) - np.asarray(upright, dtype=np.int16)).mean()
    assert difference < 6, f"orientation {orientation} not undone (mean difference {difference:.1f})"


def test_heic_decodes(upright):
    import pillow_heif

    pillow_heif.register_heif_opener()
    decoded = decode_photo(_bytes(upright, "HEIF", quality=80))
    assert decoded.source_format == "heic"
    assert decoded.image.size == upright.size


def test_webp_decodes(upright):
    decoded = decode_photo(_bytes(upright, "WEBP", quality=80))
    assert decoded.source_format == "webp" and decoded.image.size == upright.size


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "LA", "I;16"])
def test_unusual_modes_become_rgb(upright, mode):
    if mode == "I;16":
        grey = np.asarray(upright.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(grey.astype("<u2"))  # uint16 -> mode I;16
        assert image.mode == "I;16"
        data = _bytes(image, "PNG")
    else:
        data = _bytes(upright.convert(mode), "JPEG" if mode == "CMYK" else "PNG")
    decoded = decode_photo(data)
    assert decoded.image.mode == "RGB"
    # Not blown out to white or crushed to black by a careless conversion.
    assert 30 < np.asarray(decoded.image).mean() < 225


def test_animated_images_use_their_first_frame(upright):
    frames = [upright, upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    data = _bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)
    decoded = decode_photo(data)
    assert decoded.frames == 2 and decoded.image.size == upright.size


def test_empty_file_is_rejected():
    with pytest.raises(BadInputError, match="empty"):
        decode_photo(b"")


def test_random_bytes_are_rejected():
    with pytest.raises(BadInputError, match="not an image"):
        decode_photo(os.urandom(4096))


def test_text_with_an_image_name_is_rejected():
    with pytest.raises(BadInputError, match="not an image"):
        decode_photo(b"<html>this is not a photo</html>")


def test_truncated_jpeg_is_rejected(shared_faces_dir):
    data = (shared_faces_dir / "obama_2.jpg").read_bytes()
    with pytest.raises(BadInputError, match="corrupt or truncated"):
        decode_photo(data[: len(data) // 2])


def test_decompression_bomb_is_rejected_before_decoding():
    bomb = _bytes(Image.new("1", (12_000, 10_000)), "PNG")  # ~15 KB on disk, 120 MP decoded
    assert len(bomb) < 100_000
    with pytest.raises(BadInputError, match="over the 100 MP limit"):
        decode_photo(bomb)


def test_formats_phones_do_not_send_are_rejected(upright):
    with pytest.raises(BadInputError, match="unsupported image format GIF"):
        decode_photo(_bytes(upright, "GIF"))


def test_encoded_jpeg_round_trips(upright):
    assert Image.open(io.BytesIO(encode_jpeg(upright))).size == upright.size


def test_sha256_is_hex_of_the_bytes():
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_huge_bomb_beyond_pillows_own_limit_is_rejected_too():
    bomb = _bytes(Image.new("1", (20_000, 10_000)), "PNG")  # 200 MP: Pillow itself refuses to open it
    with pytest.raises(BadInputError, match="over the 100 MP limit"):
        decode_photo(bomb)
