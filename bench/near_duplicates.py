"""Near-duplicates, the 64-bit hash alone (old rule) against the hash confirmed by a finer hash and
the photo's shape (new rule), side by side in one run:

- false duplicates in an event of N distinct lfw-dev photos (one photo per person), and among all
  6,989 (LFW itself holds a few real copies of one shot, listed by name so they can be checked);
- re-encodings of the shared photos and of an lfw-dev sample still caught;
- flat images (grey, white, dark, a thin strip) never anyone's duplicate;
- a better copy arriving second replacing the kept one, and re-encodings never doing so;
- the cost per photo of each.

The event is simulated with the pipeline's own pure functions, in upload order, each photo compared
with every photo kept so far (what Repository.claim_near_duplicate does per photo).

    nice -n 10 .venv/bin/python bench/near_duplicates.py [--distinct 2000] [--sample 150]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from picsaris_pipeline.domain import near_duplicates as nd
from picsaris_pipeline.domain.imaging import decode_photo

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PICSARIS_SHARED", REPO.parent / "shared"))


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    return image.resize(
        (max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.Resampling.LANCZOS
    )


def _cropped(image: Image.Image, fraction: float) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * fraction), round(h * fraction)
    return image.crop((dx, dy, w - dx, h - dy))


def _rotated(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.transpose(Image.Transpose.ROTATE_90).save(buffer, format="JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def _webp(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=60)
    return buffer.getvalue()


def _brightness(factor: float) -> Callable[[Image.Image], bytes]:
    return lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(factor))


def _quality(quality: int) -> Callable[[Image.Image], bytes]:
    return lambda im: _jpeg(im, quality)


def _resized(factor: float) -> Callable[[Image.Image], bytes]:
    return lambda im: _jpeg(_scaled(im, factor))


# The copies promised to be caught, and (after them) crops of 2% measured but not promised.
COPIES: dict[str, Callable[[Image.Image], bytes]] = {
    **{f"jpeg_q{q}": _quality(q) for q in (30, 50, 70, 90)},
    **{f"resized_{round(f * 100)}pct": _resized(f) for f in (0.25, 0.5, 0.75)},
    "cropped_1pct_each_side": lambda im: _jpeg(_cropped(im, 0.01), 90),
    **{f"brightness_x{f}": _brightness(f) for f in (0.4, 0.6, 0.8, 1.2)},
    "stored_rotated_exif_6": _rotated,
    "webp_q60": _webp,
}
MEASURED_ONLY: dict[str, Callable[[Image.Image], bytes]] = {
    "cropped_2pct_each_side": lambda im: _jpeg(_cropped(im, 0.02), 90),
    "brightness_x1.5": _brightness(1.5),
}


def verified(data: bytes) -> tuple[Image.Image, int]:
    decoded = decode_photo(data)
    return decoded.image, decoded.original_width * decoded.original_height


def fingerprint_of(data: bytes) -> nd.Fingerprint:
    return nd.fingerprint(*verified(data))


class Kept:
    """The photos an event keeps so far, with their hashes in one growing array (as the
    repository reads them: one int64 per photo)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, nd.Fingerprint]] = []
        self.hashes = np.zeros(0, dtype=np.int64)

    def add(self, name: str, found: nd.Fingerprint) -> None:
        if len(self.entries) == len(self.hashes):
            self.hashes = np.concatenate([self.hashes, np.zeros(max(64, len(self.hashes)), dtype=np.int64)])
        self.hashes[len(self.entries)] = nd.to_signed(found.coarse)
        self.entries.append((name, found))

    def stored(self) -> np.ndarray:
        return self.hashes[: len(self.entries)]


def old_rule(new: nd.Fingerprint, kept: Kept) -> str | None:
    found = nd.closest(new.coarse, kept.stored())
    return None if found is None else kept.entries[found[0]][0]


def new_rule(new: nd.Fingerprint, kept: Kept) -> str | None:
    if new.too_flat:
        return None
    close = np.nonzero(nd.distances(new.coarse, kept.stored()) <= nd.MAX_DISTANCE)[0]
    verdict = nd.judge(new, [kept.entries[int(i)] for i in close])
    return None if verdict is None else verdict.photo_id


Rule = Callable[[nd.Fingerprint, Kept], str | None]


def event(names: list[str], prints: dict[str, nd.Fingerprint], rule: Rule) -> list[tuple[str, str]]:
    """(duplicate, kept) pairs when the photos arrive in this order; a new rule's flat photos are never kept."""
    kept = Kept()
    found: list[tuple[str, str]] = []
    for name in names:
        original = rule(prints[name], kept)
        if original is None:
            if rule is old_rule or not prints[name].too_flat:
                kept.add(name, prints[name])
        else:
            found.append((name, original))
    return found


def one(name: str, found: nd.Fingerprint) -> Kept:
    kept = Kept()
    kept.add(name, found)
    return kept


# LFW itself holds a few copies of one shot (re-cropped or re-aligned by its makers), one of them
# under two people's names. Each pair below was looked at side by side: they are the same picture,
# so a rule that calls them duplicates is right. Any other pair a rule reports is a false duplicate.
LFW_COPIES = {
    frozenset(pair)
    for pair in [
        ("Andrew_Caldecott_0001.jpg", "Andrew_Gilligan_0001.jpg"),
        ("George_W_Bush_0016.jpg", "George_W_Bush_0039.jpg"),
        ("George_W_Bush_0130.jpg", "George_W_Bush_0206.jpg"),
        ("George_W_Bush_0177.jpg", "George_W_Bush_0194.jpg"),
        ("George_W_Bush_0235.jpg", "George_W_Bush_0261.jpg"),
        ("George_W_Bush_0407.jpg", "George_W_Bush_0409.jpg"),
        ("Julianne_Moore_0001.jpg", "Julianne_Moore_0008.jpg"),
        ("Julie_Gerberding_0004.jpg", "Julie_Gerberding_0006.jpg"),
        ("Leslie_Ann_Woodward_0001.jpg", "Leslie_Ann_Woodward_0002.jpg"),
        ("Renee_Zellweger_0010.jpg", "Renee_Zellweger_0013.jpg"),
        ("Serena_Williams_0002.jpg", "Serena_Williams_0016.jpg"),
        ("Serena_Williams_0029.jpg", "Serena_Williams_0031.jpg"),
    ]
}


def false_ones(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [pair for pair in found if frozenset(pair) not in LFW_COPIES]


def person(name: str) -> str:
    return name.rsplit("_", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distinct", type=int, default=2000, help="photos in the event of distinct photos")
    parser.add_argument("--sample", type=int, default=150, help="lfw-dev photos re-encoded besides the shared ones")
    args = parser.parse_args()
    lfw_dir, faces_dir = SHARED / "lfw-dev", SHARED / "faces"
    if not lfw_dir.is_dir() or not faces_dir.is_dir():
        sys.exit(f"needs {lfw_dir} and {faces_dir}")
    paths = {p.name: p for p in sorted(lfw_dir.rglob("*.jpg"))}
    print(f"lfw-dev: {len(paths)} photos of {len({person(n) for n in paths})} people")

    # -- cost per photo, and every lfw-dev fingerprint -----------------------------------------
    prints: dict[str, nd.Fingerprint] = {}
    cost = {"old": [0.0, 0.0], "new": [0.0, 0.0]}  # [lfw-dev seconds, shared-photo seconds]
    for name, path in paths.items():
        image, pixels = verified(path.read_bytes())
        started = time.perf_counter()
        nd.perceptual_hash(image)
        middle = time.perf_counter()
        prints[name] = nd.fingerprint(image, pixels)
        cost["old"][0] += middle - started
        cost["new"][0] += time.perf_counter() - middle
    shared = sorted(p for p in faces_dir.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    shared_images = [verified(p.read_bytes()) for p in shared]
    for _ in range(3):
        for image, pixels in shared_images:
            started = time.perf_counter()
            nd.perceptual_hash(image)
            middle = time.perf_counter()
            nd.fingerprint(image, pixels)
            cost["old"][1] += middle - started
            cost["new"][1] += time.perf_counter() - middle

    # -- false duplicates ----------------------------------------------------------------------
    first_of_each: dict[str, str] = {}
    for name in paths:
        first_of_each.setdefault(person(name), name)
    distinct = list(first_of_each.values())[: args.distinct]
    random.Random(13).shuffle(distinct)  # upload order
    everyone = list(paths)
    random.Random(13).shuffle(everyone)
    print(
        f"\nfalse duplicates (rule: old = 64-bit hash within {nd.MAX_DISTANCE}; new = also 256-bit hash within "
        f"{nd.FINE_MAX_DISTANCE} and aspect within {nd.MAX_ASPECT_CHANGE:.0%}; flat images never compared)"
    )
    print(f"{'event':52s} {'old rule':>9s} {'new rule':>9s}")
    for label, names in (
        (f"{len(distinct)} distinct photos (one per person)", distinct),
        (f"all {len(everyone)} lfw-dev photos", everyone),
    ):
        old, new = event(names, prints, old_rule), event(names, prints, new_rule)
        old_false, new_false = false_ones(old), false_ones(new)
        print(
            f"{label + ': false duplicates':52s} {len(old_false):9d} {len(new_false):9d}"
            f"   ({len(old_false) / len(names):.2%} vs {len(new_false) / len(names):.2%})"
        )
        cross = [sum(person(a) != person(b) for a, b in found) for found in (old_false, new_false)]
        print(f"{'  of which of another person':52s} {cross[0]:9d} {cross[1]:9d}")
        print(
            f"{'  real copies in LFW (looked at) caught':52s} "
            f"{len(old) - len(old_false):9d} {len(new) - len(new_false):9d}"
        )
        for duplicate, kept in sorted(new_false):
            a, b = prints[duplicate], prints[kept]
            print(
                f"    new rule false duplicate: {duplicate} of {kept}, hash {nd.distance(a.coarse, b.coarse)}/64, "
                f"fine {nd.fine_distance(a, b)}/256"
            )
    old_false = false_ones(event(everyone, prints, old_rule))
    for label, pairs in (
        ("of another person", [p for p in old_false if person(p[0]) != person(p[1])]),
        ("of the same person (another frame)", [p for p in old_false if person(p[0]) == person(p[1])]),
    ):
        fine, closest_a, closest_b = min((nd.fine_distance(prints[a], prints[b]), a, b) for a, b in pairs)
        print(
            f"  the old rule's false duplicates {label}: closest by the finer hash {fine}/256 "
            f"({closest_a}, {closest_b}); FINE_MAX_DISTANCE = {nd.FINE_MAX_DISTANCE}"
        )

    # -- re-encodings still caught -------------------------------------------------------------
    sample = random.Random(5).sample(sorted(paths), args.sample)
    originals = [(p.name, p.read_bytes()) for p in shared] + [(n, paths[n].read_bytes()) for n in sample]
    print(
        f"\nre-encodings caught, of {len(originals)} photos ({len(shared)} shared + {len(sample)} lfw-dev), "
        "the copy arriving second"
    )
    print(f"{'copy':26s} {'old rule':>9s} {'new rule':>9s} {'max fine':>9s}")
    all_new_caught = True
    for label, make in {**COPIES, **MEASURED_ONLY}.items():
        caught_old = caught_new = 0
        worst = 0
        for name, raw in originals:
            image = decode_photo(raw).image
            first = fingerprint_of(raw)
            second = fingerprint_of(make(image))
            caught_old += old_rule(second, one(name, first)) is not None
            caught_new += new_rule(second, one(name, first)) is not None
            worst = max(worst, nd.fine_distance(second, first))
        if label in COPIES:
            all_new_caught &= caught_new == len(originals)
        mark = "" if label in COPIES else "  (measured, not promised)"
        print(f"{label:26s} {caught_old:4d}/{len(originals)} {caught_new:4d}/{len(originals)} {worst:9d}{mark}")
    print(f"every promised copy caught by the new rule: {all_new_caught}")

    # -- flat images ---------------------------------------------------------------------------
    photo = decode_photo((faces_dir / "obama_1.jpg").read_bytes()).image
    rng = np.random.default_rng(3)
    flat = {
        "grey": Image.new("RGB", (1600, 1200), (128, 128, 128)),
        "white": Image.new("RGB", (1600, 1200), (255, 255, 255)),
        "dark square": Image.new("RGB", (1200, 1200), (6, 6, 8)),
        "grey with sensor noise": Image.fromarray(
            np.clip(rng.normal(120, 2, (1200, 1600, 3)), 0, 255).astype(np.uint8)
        ),
        "thin strip of a photo": photo.crop((0, photo.height // 2, photo.width, photo.height // 2 + 20)),
        "black": Image.new("RGB", (1600, 1200), (0, 0, 0)),
    }
    flat_prints = {name: fingerprint_of(_jpeg(image, 90)) for name, image in flat.items()}
    order = list(flat)
    old, new = event(order, flat_prints, old_rule), event(order, flat_prints, new_rule)
    print(
        f"\nflat images ({len(flat)}: {', '.join(order)}): duplicates of each other, old rule {len(old)}, "
        f"new rule {len(new)}"
    )
    for name in order:
        print(f"  {name:24s} {flat_prints[name].too_flat}")

    # -- better copy ---------------------------------------------------------------------------
    worse: dict[str, Callable[[Image.Image], bytes]] = {
        "darkened x0.5": _brightness(0.5),
        "darkened x0.3": _brightness(0.3),
        "resized to 40%": lambda im: _jpeg(_scaled(im, 0.4), 90),
        "blurred (radius 3)": lambda im: _jpeg(im.filter(ImageFilter.GaussianBlur(3)), 90),
    }
    print(f"\nbetter copy arriving second, of the {len(shared)} shared photos: the original after a worse copy")
    for label, make in worse.items():
        replaced = 0
        whys: set[str] = set()
        for image, pixels in shared_images:
            worse_copy = fingerprint_of(make(image))
            verdict = nd.judge(nd.fingerprint(image, pixels), [("kept", worse_copy)])
            if verdict is not None and verdict.better:
                replaced += 1
                whys.add(verdict.better)
        print(f"  kept copy {label:20s} replaced {replaced:3d}/{len(shared)}  ({', '.join(sorted(whys)) or '-'})")
    print("re-encodings arriving second (must never replace the original)")
    for label in ("jpeg_q30", "jpeg_q70", "webp_q60", "resized_50pct", "brightness_x1.2", "cropped_1pct_each_side"):
        replaced = 0
        for image, pixels in shared_images:
            verdict = nd.judge(fingerprint_of(COPIES[label](image)), [("kept", nd.fingerprint(image, pixels))])
            replaced += verdict is not None and verdict.better is not None
        print(f"  {label:24s} replaced {replaced:3d}/{len(shared)}")

    # -- cost ------------------------------------------------------------------------------------
    print("\ncost per photo (hash / fingerprint of the verified image; the event comparison is the same numpy XOR)")
    for label, index, count in (
        ("lfw-dev 250 px", 0, len(paths)),
        ("shared photos, up to 2400 px", 1, 3 * len(shared)),
    ):
        old_ms, new_ms = cost["old"][index] / count * 1000, cost["new"][index] / count * 1000
        print(f"  {label:30s} old {old_ms:6.2f} ms  new {new_ms:6.2f} ms  ratio {new_ms / old_ms:.2f}")


if __name__ == "__main__":
    main()
