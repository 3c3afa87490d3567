"""The photo set: distinct photos composed from ../shared/faces, and the guests' selfies."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .common import FACES


# -- the photo set ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourcePhoto:
    file: str
    person: str
    faces_expected: int

    @property
    def kind(self) -> str:
        if self.faces_expected == 0:
            return "no face"
        return "single" if self.faces_expected == 1 else "group"


@dataclass(frozen=True)
class BenchPhoto:
    path: Path
    source: SourcePhoto
    variant: str
    phash: int


def read_manifest(faces: Path = FACES) -> list[SourcePhoto]:
    if not (faces / "MANIFEST.csv").exists():
        raise SystemExit(f"no photos: {faces}/MANIFEST.csv is missing (set PICSARIS_SHARED_FACES or --shared)")
    with open(faces / "MANIFEST.csv", newline="") as handle:
        return [SourcePhoto(r["file"], r["person"], int(r["faces_expected"])) for r in csv.DictReader(handle)]


def phash(image: Image.Image) -> int:
    """The usual 64-bit perceptual hash (as imagehash.phash: DCT of a 32x32 grey copy, the 8x8 lowest
    frequencies against their median), to check that no two variants look like near-duplicates."""
    from scipy.fft import dctn

    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = dctn(grey, norm="ortho")[:8, :8].flatten()
    bits = low > np.median(low)
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _pad(image: Image.Image, sides: str, fraction: float, colour: tuple[int, int, int]) -> Image.Image:
    """A plain band on the given sides (l, t, r, b): a visibly different picture, every face intact."""
    w, h = image.size
    dx, dy = round(w * fraction), round(h * fraction)
    left, top = dx if "l" in sides else 0, dy if "t" in sides else 0
    out = Image.new("RGB", (w + left + (dx if "r" in sides else 0), h + top + (dy if "b" in sides else 0)), colour)
    out.paste(image, (left, top))
    return out


WHITE, DARK, GREY = (250, 250, 250), (25, 25, 25), (128, 128, 128)
# Candidate variants, in order: mirrored or not, with or without a plain band on some sides. A 1-px
# crop or a re-encoding is ~0-2 bits of 64 from the original in a perceptual hash (a near-duplicate to
# any detector); mirroring or a 25 % band moves it ~20-33 bits (unrelated photos: ~32).
_SIDES = ["", "l", "t", "r", "b", "lt", "rb", "lb", "rt", "lr", "tb", "ltrb"]
_COLOURS = [WHITE, DARK, GREY]
_CANDIDATES: list[tuple[bool, str, float, tuple[int, int, int]]] = [
    (mirror, sides, fraction, _COLOURS[(i + mirror) % 3])
    for fraction in (0.25, 0.45)
    for i, sides in enumerate(_SIDES)
    for mirror in (False, True)
    if sides or fraction == 0.25
]
# Variants of one source are kept at least this far apart (the pipeline's detector flags <= 12).
MIN_VARIANT_DISTANCE = 18


def _variant(image: Image.Image, candidate: tuple[bool, str, float, tuple[int, int, int]]) -> tuple[str, Image.Image]:
    mirror, sides, fraction, colour = candidate
    name = "mirrored" if mirror else "original"
    if mirror:
        image = ImageOps.mirror(image)
    if sides:
        image = _pad(image, sides, fraction, colour)
        name = ("mirrored+" if mirror else "") + f"band-{sides}-{round(fraction * 100)}%"
    return name, image


def _hash_function() -> Callable[[Image.Image], int]:
    """The pipeline's own perceptual hash when it has one, else the same algorithm here."""
    try:
        from picsaris_pipeline.domain.near_duplicates import perceptual_hash
    except ImportError:
        return phash
    return perceptual_hash


def _spread(sources: list[SourcePhoto]) -> list[SourcePhoto]:
    """The manifest lists people together (all of Obama, then all groups...): take it with a stride
    coprime with its length, so any run of consecutive photos mixes people, groups and no-face ones."""
    from math import gcd

    step = next(s for s in (11, 7, 5, 3, 1) if gcd(s, len(sources)) == 1)
    return [sources[(i * step) % len(sources)] for i in range(len(sources))]


def make_photos(count: int, folder: Path, faces: Path = FACES) -> list[BenchPhoto]:
    """count JPEGs from the shared photos, cycling through every source (so any run of them mixes
    single faces, groups and photos without faces). Each repeat of a source is the next candidate
    variant (mirrored, a band on some sides) whose perceptual hash, taken as the pipeline would on the
    decoded upload, is at least MIN_VARIANT_DISTANCE from every earlier variant of that source; plus
    size and JPEG-quality jitter. Every file has different bytes and none is a near-duplicate."""
    from picsaris_pipeline.domain.imaging import decode_photo

    hash_of = _hash_function()
    sources = _spread(read_manifest(faces))
    folder.mkdir(parents=True, exist_ok=True)
    chosen: dict[str, list[int]] = {}
    next_candidate: dict[str, int] = {}
    photos = []
    for i in range(count):
        source = sources[i % len(sources)]
        round_ = i // len(sources)
        with Image.open(faces / source.file) as opened:
            original = ImageOps.exif_transpose(opened).convert("RGB")
        earlier = chosen.setdefault(source.file, [])
        while True:
            k = next_candidate.get(source.file, 0)
            if k >= len(_CANDIDATES):
                raise SystemExit(f"more than {len(_CANDIDATES)} distinct variants of {source.file} asked for")
            next_candidate[source.file] = k + 1
            name, image = _variant(original, _CANDIDATES[k])
            scale = (1.0, 0.97, 0.94)[round_ % 3]  # small size jitter
            if scale != 1.0:
                size = (round(image.width * scale), round(image.height * scale))
                image = image.resize(size, Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90 - round_ % 5)
            fingerprint = hash_of(decode_photo(buffer.getvalue()).image)
            if all(hamming(fingerprint, h) >= MIN_VARIANT_DISTANCE for h in earlier):
                break
        earlier.append(fingerprint)
        path = folder / f"{i:05d}_{Path(source.file).stem}.jpg"
        path.write_bytes(buffer.getvalue())
        photos.append(BenchPhoto(path, source, name, fingerprint))
    return photos


def closest_variants(photos: Sequence[BenchPhoto]) -> int | None:
    """The smallest perceptual-hash distance between two variants of the same source (None: no repeats)."""
    by_source: dict[str, list[int]] = {}
    for photo in photos:
        by_source.setdefault(photo.source.file, []).append(photo.phash)
    distances = [hamming(a, b) for hashes in by_source.values() for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    return min(distances) if distances else None


def photo_mix(photos: Sequence[BenchPhoto]) -> str:
    kinds = [p.source.kind for p in photos]
    faces = sum(p.source.faces_expected for p in photos)
    return (
        f"{kinds.count('single')} single-face, {kinds.count('group')} group, {kinds.count('no face')} without faces "
        f"(~{faces} faces)"
    )


def describe_photos(photos: Sequence[BenchPhoto]) -> str:
    closest = closest_variants(photos)
    distinct = "every source used once" if closest is None else f"closest variants {closest}/64 bits apart (pHash)"
    return f"{len(photos)} photos: {photo_mix(photos)}; {distinct}"
