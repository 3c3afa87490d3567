"""Near-duplicate photos: the same shot shared by two phones (re-encoded, resized, stripped of its
metadata, converted to WebP or HEIC) must not be matched twice. No Dagster, no I/O.

The fingerprint is the classic 64-bit DCT perceptual hash (pHash), computed as `imagehash.phash`
computes it (checked in the tests against its scipy DCT), in a few lines of numpy instead of a
dependency: the image in grey, resized to 32x32 (Lanczos), a 2-D DCT-II, the 8x8 lowest
frequencies, each bit "coefficient above the median of those 64". It is computed on the verified
image (upright, RGB, <= 2400 px), so an EXIF-rotated copy and an upright one hash alike. Two hashes
are compared by Hamming distance; since half the bits are set, distances between unrelated photos
gather around 32.

Measured on the 34 photos of ../shared/faces, each decoded exactly as verify_upload decodes it
(`.venv/bin/python -m tests.integration.test_near_duplicates` prints the table again):

| the same shot, as a second phone sends it                              | max distance (mean) |
|------------------------------------------------------------------------|---------------------|
| JPEG re-encoded at quality 60, 70, 80, 90, 95                          | 2 (0.1)             |
| resized to 25%, 50%, 75% (JPEG 85); a messenger's 1600 px at q70       | 2 (0.1)             |
| metadata stripped (APPn segments cut, pixels untouched); PNG           | 0                   |
| WebP q50 and q80, HEIC q50 and q80; stored rotated with an EXIF tag    | 2 (0.2)             |
| cropped by 1% on each side                                             | 6 (2.5)             |
| cropped by 2% on one corner, or on each side                           | 10 (4.8)            |

| different photos                                                       | min distance        |
|------------------------------------------------------------------------|---------------------|
| all 561 pairs of the 34 (mean 31.3, sd 4.0); closest: alex_lacamoire_1 | 20                  |
| with group_voc_2008_001009, and obama_3 with group_obama_and_biden     |                     |
| the eight VOC group photos among themselves                            | 22                  |
| the same person's other photos (14 pairs; obama_1 / obama_3 closest)   | 26                  |

MAX_DISTANCE = 8. Every re-encoding, resize, format change and metadata strip is caught with a
margin of 6, a 1% crop with a margin of 2, and 2% crops mostly (65 of 68): a screenshot-like crop is
not promised. The closest different photos stay 12 above it. The threshold is kept low because an
event compares every photo with all the others: unrelated photos' distances follow what two
random 32-of-64-bit hashes give (mean 32, sd 4.0, as measured above), under which a pair falls
within 8 with probability 7e-10, i.e. 0.05 expected false pairs among the 72 million pairs of a
12,000-photo event, against 1.6 at 10 and 34 at 12. A false pair costs more than a missed one: a
guest loses a photo instead of seeing the same shot twice. Distances are always even (a median
split sets exactly 32 bits). What no threshold separates: two frames of a burst in which nobody
moved are the same picture to it; the one checked second ends `duplicate`, pointing at the first.

Cost: the hash takes ~18 ms on a 2400 px image. Checking a photo against its event is one indexed
read of the event's hashes as 64-bit integers and a numpy XOR + popcount: against 12,000 photos the
whole check (lock, read, compare, write) takes ~25 ms on SQLite and on Postgres, the comparison
itself well under a millisecond (tests/integration/test_near_duplicates.py times it on both).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

HASH_SIZE = 8  # 8x8 = 64 bits
_HIGHFREQ_FACTOR = 4  # the DCT runs on 32x32 pixels, as imagehash's phash does
MAX_DISTANCE = 8


def _dct_matrix(size: int) -> np.ndarray:
    """Unnormalised DCT-II basis (scipy.fftpack.dct's convention up to a factor of 2 per axis;
    a common scale cannot change which coefficients lie above the median)."""
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    return np.cos(np.pi * (2 * n + 1) * k / (2 * size))


_DCT = _dct_matrix(HASH_SIZE * _HIGHFREQ_FACTOR)
_BIT_WEIGHTS = np.array([1 << (63 - i) for i in range(64)], dtype=np.uint64)


def perceptual_hash(image: Image.Image) -> int:
    """The image's 64-bit pHash as an unsigned integer (first coefficient = most significant bit)."""
    side = HASH_SIZE * _HIGHFREQ_FACTOR
    pixels = np.asarray(image.convert("L").resize((side, side), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T)[:HASH_SIZE, :HASH_SIZE]
    bits = (low > np.median(low)).ravel()
    return int(np.bitwise_or.reduce(_BIT_WEIGHTS[bits])) if bits.any() else 0


def distance(a: int, b: int) -> int:
    """Hamming distance between two hashes."""
    return (a ^ b).bit_count()


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as the signed 64-bit integer SQL BIGINT columns hold."""
    return value - (1 << 64) if value >= 1 << 63 else value


def from_signed(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def distances(value: int, hashes: np.ndarray) -> np.ndarray:
    """Hamming distances from one hash to many (int64 or uint64 array, as stored)."""
    others = np.asarray(hashes).astype(np.int64, copy=False).view(np.uint64)
    return np.bitwise_count(others ^ np.uint64(value)).astype(np.int64)


def closest(value: int, hashes: np.ndarray, max_distance: int = MAX_DISTANCE) -> tuple[int, int] | None:
    """(index, distance) of the nearest hash within max_distance, the first one on a tie; None if
    none is that close."""
    if len(hashes) == 0:
        return None
    found = distances(value, hashes)
    index = int(np.argmin(found))  # argmin returns the first of equal minima
    nearest = int(found[index])
    return (index, nearest) if nearest <= max_distance else None


@dataclass(frozen=True)
class NearDuplicate:
    """The photo an upload nearly duplicates."""

    photo_id: str
    file_name: str
    distance: int

    @property
    def reason(self) -> str:
        return (
            # Ids only (no file name): the reason goes into Dagster's metadata, which is never erased.
            f"near-duplicate of photo {self.photo_id}: the same shot re-encoded, resized or "
            f"stripped of its metadata (perceptual hash distance {self.distance} of 64 bits; up to {MAX_DISTANCE} "
            "means the same shot)"
        )


# -- confirmation: a hash match is a candidate, not proof ------------------------------------------
#
# The 64-bit hash above is a cheap filter over the whole event. Measured on ../shared/lfw-dev (6,989
# photos, 250 px, one face each, centred: the hardest case, since their low frequencies look alike),
# 129 pairs fall within MAX_DISTANCE, most of them photos of two different people. So a candidate
# must be confirmed before a photo is called a duplicate, by:
#   - a finer hash: the same DCT hash at 256 bits (64x64 pixels, the 16x16 lowest frequencies),
#     within FINE_MAX_DISTANCE. On the lfw-dev candidate pairs, photos of different people lie 52 bits
#     apart or more, every re-encoding, resize, darkening, 1% crop and EXIF rotation of the shared
#     photos and of 150 lfw-dev ones within 30 (bench/near_duplicates.py prints it again);
#   - the same shape: aspect ratios within MAX_ASPECT_CHANGE (a crop of 1-2% changes it by < 3%).
# And an image too flat to hash (grey, white, a dark square, a thin strip: the median split of 64
# near-zero coefficients is noise, so all such images share a hash) is never anyone's duplicate.

FINE_HASH_SIZE = 16  # 16x16 = 256 bits, from a 64x64 DCT
FINE_MAX_DISTANCE = 40
MAX_ASPECT_CHANGE = 0.06
FLAT_MAX_STD = 4.0  # grey levels (of 255) on the 32x32 image the hash is computed from
MIN_HASHABLE_SIDE = 32  # px
MAX_HASHABLE_ASPECT = 8.0  # a strip longer than 8:1 is squeezed to 32x32 beyond recognition
SHARPNESS_SIDE = 512  # px: sharpness is measured with the long side brought to this

_FINE_DCT = _dct_matrix(FINE_HASH_SIZE * _HIGHFREQ_FACTOR)
_FINGERPRINT_LAYOUT = struct.Struct("<B32sIIQff")  # version, fine hash, width, height, pixels, sharpness, brightness
_FINGERPRINT_VERSION = 1


@dataclass(frozen=True)
class Fingerprint:
    """What the near-duplicate check knows of one verified image."""

    coarse: int  # the 64-bit perceptual_hash
    fine: bytes  # 256-bit hash, 32 bytes
    width: int  # the verified (upright) image
    height: int
    pixels: int  # of the photo as sent (before the 2400 px limit): "larger" compares these
    sharpness: float  # Laplacian variance over grey variance: contrast-free, so a darkened copy keeps it
    brightness: float  # mean grey level, 0-255
    too_flat: str | None = None  # why the image cannot be hashed meaningfully, None if it can

    def pack(self) -> bytes:
        """The stored form (photos.near_duplicate_fingerprint)."""
        return _FINGERPRINT_LAYOUT.pack(
            _FINGERPRINT_VERSION, self.fine, self.width, self.height, self.pixels, self.sharpness, self.brightness
        )

    @classmethod
    def unpack(cls, coarse: int, data: bytes) -> Fingerprint:
        version, fine, width, height, pixels, sharpness, brightness = _FINGERPRINT_LAYOUT.unpack(data)
        if version != _FINGERPRINT_VERSION:
            raise ValueError(f"unknown near-duplicate fingerprint version {version}")
        return cls(coarse, fine, width, height, pixels, sharpness, brightness)


def _dct_bits(pixels: np.ndarray, basis: np.ndarray, size: int) -> np.ndarray:
    low = (basis @ pixels @ basis.T)[:size, :size]
    return (low > np.median(low)).ravel()


def _sharpness(grey: Image.Image) -> float:
    """Laplacian variance over grey-level variance, on the image brought to SHARPNESS_SIDE: at one
    common scale, so a small copy (enlarged, it looks soft) and a large one reduced compare fairly."""
    scale = SHARPNESS_SIDE / max(grey.size)
    size = (max(3, round(grey.width * scale)), max(3, round(grey.height * scale)))
    pixels = np.asarray(grey.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.float32)
    laplacian = 4 * pixels[1:-1, 1:-1] - pixels[:-2, 1:-1] - pixels[2:, 1:-1] - pixels[1:-1, :-2] - pixels[1:-1, 2:]
    spread = float(pixels.var())
    return float(laplacian.var()) / spread if spread > 1e-6 else 0.0


def flatness(width: int, height: int, grey32: np.ndarray) -> str | None:
    """Why an image is too flat or too thin for its hash to mean anything, or None."""
    if min(width, height) < MIN_HASHABLE_SIDE:
        return f"too small to compare ({width}x{height} px, under {MIN_HASHABLE_SIDE} px on a side)"
    if max(width, height) / min(width, height) > MAX_HASHABLE_ASPECT:
        return f"too thin to compare ({width}x{height} px, longer than {MAX_HASHABLE_ASPECT:.0f}:1)"
    spread = float(grey32.std())
    if spread < FLAT_MAX_STD:
        return f"too flat to compare (grey level spread {spread:.1f} of 255, under {FLAT_MAX_STD:.0f})"
    return None


def fingerprint(image: Image.Image, original_pixels: int | None = None) -> Fingerprint:
    """The image's fingerprint; `coarse` equals perceptual_hash(image). original_pixels: the size of
    the photo as sent, if the image was reduced for verification."""
    grey = image.convert("L")
    side = HASH_SIZE * _HIGHFREQ_FACTOR
    grey32 = np.asarray(grey.resize((side, side), Image.Resampling.LANCZOS), dtype=np.float64)
    bits = _dct_bits(grey32, _DCT, HASH_SIZE)
    coarse = int(np.bitwise_or.reduce(_BIT_WEIGHTS[bits])) if bits.any() else 0
    fine_side = FINE_HASH_SIZE * _HIGHFREQ_FACTOR
    grey64 = np.asarray(grey.resize((fine_side, fine_side), Image.Resampling.LANCZOS), dtype=np.float64)
    fine = np.packbits(_dct_bits(grey64, _FINE_DCT, FINE_HASH_SIZE)).tobytes()
    width, height = image.size
    return Fingerprint(
        coarse=coarse,
        fine=fine,
        width=width,
        height=height,
        pixels=original_pixels or width * height,
        # rounded as stored (float32), so a fingerprint read back equals the one computed
        sharpness=float(np.float32(_sharpness(grey))),
        brightness=float(np.float32(grey32.mean())),
        too_flat=flatness(width, height, grey32),
    )


def fine_distance(a: Fingerprint, b: Fingerprint) -> int:
    return int.from_bytes(a.fine, "big").__xor__(int.from_bytes(b.fine, "big")).bit_count()


def aspect_change(a: Fingerprint, b: Fingerprint) -> float:
    """Relative difference of the two aspect ratios (0 = the same shape)."""
    first, second = a.width / a.height, b.width / b.height
    return abs(first - second) / min(first, second)


def confirmed(new: Fingerprint, kept: Fingerprint) -> bool:
    """Whether a candidate within MAX_DISTANCE is the same shot: the finer hash and the shape agree."""
    if new.too_flat or kept.too_flat:
        return False
    return fine_distance(new, kept) <= FINE_MAX_DISTANCE and aspect_change(new, kept) <= MAX_ASPECT_CHANGE


# A copy must be clearly better to replace the one kept: a re-encoding, a messenger's copy or a
# screenshot of the same shot never is (bench/near_duplicates.py measures both sides).
LARGER_FACTOR = 1.5  # pixels
SHARPER_FACTOR = 1.5  # sharpness
DARKENED_FACTOR = 0.75  # the kept copy's mean grey level at most this fraction of the new one's...
DARKENED_MIN_LEVELS = 16.0  # ...and at least this many levels below it
WASHED_OUT_LEVEL = 200.0  # a copy brighter than this on average is not "better lit"


def better_copy(new: Fingerprint, kept: Fingerprint) -> str | None:
    """Why `new` is clearly better than the copy kept so far ("larger", "sharper", "not darkened"),
    or None. Each rule requires the new copy to be no worse on the other counts."""
    no_smaller = new.pixels >= 0.9 * kept.pixels
    no_darker = new.brightness >= kept.brightness - 8
    # Sharpness at one scale still favours a smaller copy a little (its resampling and re-encoding
    # add edges), so a copy with 1.5x the pixels only has to keep half the kept one's.
    if new.pixels >= LARGER_FACTOR * kept.pixels and new.sharpness >= 0.5 * kept.sharpness and no_darker:
        return "larger"
    if new.sharpness >= SHARPER_FACTOR * kept.sharpness and no_smaller and no_darker:
        return "sharper"
    darkened = (
        kept.brightness <= DARKENED_FACTOR * new.brightness
        and new.brightness - kept.brightness >= DARKENED_MIN_LEVELS
        and new.brightness <= WASHED_OUT_LEVEL
    )
    # Not "no blurrier" here: a darkened copy's noise, relative to its lower contrast, reads as detail.
    if darkened and no_smaller:
        return "not darkened"
    return None


def duplicate_reason(original_id: str, coarse_distance: int, fine: int) -> str:
    """The reason a confirmed near-duplicate shows (ids only: file names are the guests' own)."""
    return (
        f"near-duplicate of photo {original_id}: the same shot re-encoded, resized or stripped of its "
        f"metadata (perceptual hash distance {coarse_distance} of 64 bits, confirmed at {fine} of 256)"
    )


def replaced_reason(better_id: str, why: str) -> str:
    return f"near-duplicate of photo {better_id}, a better copy of the same shot ({why}), which guests now see"


@dataclass(frozen=True)
class Confirmed:
    """A confirmed near-duplicate: photo_id is the other copy of the shot. better is set when the
    new photo is the better copy and replaced photo_id as the one guests see."""

    photo_id: str
    distance: int
    fine_distance: int
    better: str | None = None

    @property
    def reason(self) -> str:
        return duplicate_reason(self.photo_id, self.distance, self.fine_distance)


def judge(new: Fingerprint, candidates: Sequence[tuple[str, Fingerprint]]) -> Confirmed | None:
    """The kept copy `new` is a confirmed near-duplicate of, or None: among candidates within
    MAX_DISTANCE whose finer hash and shape agree, the closest by the finer hash (the first on a
    tie), with whether `new` is the better copy."""
    best: Confirmed | None = None
    kept: Fingerprint | None = None
    for photo_id, other in candidates:
        coarse = distance(new.coarse, other.coarse)
        if coarse > MAX_DISTANCE or not confirmed(new, other):
            continue
        fine = fine_distance(new, other)
        if best is None or fine < best.fine_distance:
            best, kept = Confirmed(photo_id, coarse, fine), other
    if best is None or kept is None:
        return None
    return Confirmed(best.photo_id, best.distance, best.fine_distance, better_copy(new, kept))
