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
(`.venv/bin/python -m tests.test_near_duplicates` prints the table again):

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
itself well under a millisecond (tests/test_near_duplicates.py times it on both).
"""

from __future__ import annotations

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
