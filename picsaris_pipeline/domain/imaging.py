"""Image checks and conversions for uploads: no Dagster, no I/O, just bytes in and pixels out.

Every failure is a BadInputError whose message a person can read, because it is stored as the
photo's rejection reason.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from picsaris_pipeline.errors import BadInputError

MAX_SIDE = 2400
# The pixel limit, checked from the header before any pixel is decoded. Phones' full-resolution modes
# stay under it (a 48 MP iPhone HEIC is 8064x6048, a 50 MP Android JPEG 8160x6120), with headroom for
# stitched panoramas; a decompression bomb (a PNG of a few hundred KB declaring hundreds of megapixels)
# and the rare 200 MP "hi-res" mode are refused with a reason. Decoding a PNG, WebP or HEIC at the
# limit takes ~300-400 MB (RGBA); a JPEG is decoded at a reduced scale and takes far less.
MAX_PIXELS = 100_000_000
ACCEPTED_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "HEIF": "heic", "WEBP": "webp"}

_heif_lock = threading.Lock()
_heif_registered = False


def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF once per process (pillow-heif registers a plugin)."""
    global _heif_registered
    with _heif_lock:
        if not _heif_registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_registered = True


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DecodedPhoto:
    image: Image.Image  # RGB, upright, longest side <= max_side
    source_format: str  # jpeg | png | heic | webp
    original_width: int  # as stored, before orientation and resizing
    original_height: int
    orientation: int  # EXIF orientation that was applied (1 = none)
    frames: int  # >1 for animated images; only the first frame is used


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode phones and editors produce to 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grey: scale to 8 bits instead of letting convert() clip everything to white.
        extrema = image.getextrema()
        high = max(1, int(extrema[1])) if isinstance(extrema, tuple) and isinstance(extrema[1], (int, float)) else 255
        image = image.point(lambda value: value * 255 / high).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        # Transparent pixels become white, as a gallery shows them, not black.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def decode_photo(data: bytes, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> DecodedPhoto:
    """Decode an upload, apply its EXIF orientation, convert to RGB and fit it within max_side."""
    if not data:
        raise BadInputError("the file is empty")
    _register_heif()
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below decides; Pillow's warning threshold (89 MP) sits under it.
            # Pillow still raises DecompressionBombError at twice its threshold, handled below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise BadInputError(
                    f"image is {width}x{height} ({width * height / 1e6:.0f} MP), over the "
                    f"{max_pixels / 1e6:.0f} MP limit"
                )
            if image.format not in ACCEPTED_FORMATS:
                raise BadInputError(f"unsupported image format {image.format}; send JPEG, PNG, HEIC or WebP")
            source_format = ACCEPTED_FORMATS[image.format]
            frames = getattr(image, "n_frames", 1)
            orientation = int(image.getexif().get(0x0112, 1) or 1)
            if image.format == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still covers max_side:
                # much faster than decoding a 48 MP photo and shrinking it afterwards.
                image.draft("RGB", (max_side, max_side))
            image.load()
            image = ImageOps.exif_transpose(image) or image
            image = _to_rgb(image)
    except BadInputError:
        raise
    except Image.DecompressionBombError as error:
        # Pillow refuses to even open images over twice its own threshold (~179 MP); say how big.
        declared = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(declared.group(1)) / 1e6:.0f} MP, " if declared else ""
        raise BadInputError(f"image is {size}over the {max_pixels / 1e6:.0f} MP limit") from error
    except UnidentifiedImageError as error:
        raise BadInputError("not an image: unknown format or corrupt data") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise BadInputError(f"image data is corrupt or truncated ({error})") from error
    if max(image.size) > max_side:
        image = image.copy()
        # reducing_gap shrinks by integer factors first, then resamples: near-LANCZOS quality, much faster.
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return DecodedPhoto(image, source_format, width, height, orientation, frames)


# The verified JPEG is the input of detection, embedding and every later re-embedding, so it must not
# lose what the detector needs: on ../shared/faces quality 90 costs one annotated face of a VOC group
# photo (its HOG score falls under the threshold); 92 and 95 keep all of them. 95 leaves a margin.
VERIFIED_JPEG_QUALITY = 95


def encode_jpeg(image: Image.Image, quality: int = VERIFIED_JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=False)
    return buffer.getvalue()


def load_rgb(data: bytes) -> Image.Image:
    """Decode an image we wrote ourselves (a derived JPEG); no limits or orientation needed."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as error:
        raise BadInputError(f"derived image is corrupt ({error})") from error
    return image.convert("RGB") if image.mode != "RGB" else image
