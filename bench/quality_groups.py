"""Group photos: detection recall by face size, false faces, and matching of small faces, HOG vs YuNet
side by side in one run on the same composed photos.

    nice -n 10 .venv/bin/python bench/quality_groups.py [--photos 60] [--guests 40] [--seed 7]

Composes group photos (1600x1200) from ../shared/lfw-dev faces: 3-9 faces each, 16-160 px wide
(log-uniform), guests (enrolled from another photo of theirs) and strangers mixed, on varied
backgrounds (noise, gradients, blocks, the shared no-face photos), some faces blurred or darkened.
LFW deep-funneled faces sit at the centre of their 250 px image, about 100 px wide, so each pasted
face's true box is known without asking any detector. A detection is that face if its centre lies
within half the face's width of the true centre and its width is 0.5-2x the true width.

Prints, per detector: recall by size bucket, false faces per photo, matching of the composed faces
(guest found as themself, as someone else, stranger taken for a guest) with and without the quality
gate, per size bucket; the shared no-face photos (must give 0) and the annotated group boxes of
../shared/faces/group_face_boxes.csv; and the face work's seconds per photo (decode excluded:
detection, quality and descriptors) on the composed photos and on the shared photos.
Targets: faces >= 20 px found >= 97%, at most 1 false face per 50 photos, 0 faces without a face.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import _support as bench
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from picsaris_pipeline.domain.imaging import decode_photo, encode_jpeg, load_rgb
from picsaris_pipeline.domain.matching import DEFAULT_MIN_SIMILARITY, assign_scores, similarities
from picsaris_pipeline.faces import get_engine
from picsaris_pipeline.faces.engine import FaceBox

LFW = bench.FACES.parent / "lfw-dev"
SIZE = (1600, 1200)
LFW_FACE_WIDTH = 100  # px of a deep-funneled LFW face in its 250 px image
BUCKETS = [(16, 20), (20, 24), (24, 32), (32, 64), (64, 161)]
DETECTORS = {"hog": "dlib-resnet-v1-5pt-j0", "yunet": "yunet-dlib-resnet-v1-5pt-j0"}


@dataclass
class Placed:
    person: str
    guest: bool
    cx: float
    cy: float
    width: float
    degraded: str  # "", "blurred" or "dark"


@dataclass
class Composed:
    image: Image.Image
    faces: list[Placed] = field(default_factory=list)


def bucket(width: float) -> str:
    for low, high in BUCKETS:
        if low <= width < high:
            return f"{low}-{high - 1}"
    return "other"


def background(rng: random.Random, nofaces: list[Path]) -> Image.Image:
    kind = rng.choice(["noise", "gradient", "blocks", "photo"])
    w, h = SIZE
    if kind == "photo" and nofaces:
        return load_rgb(rng.choice(nofaces).read_bytes()).resize(SIZE)
    if kind == "noise":
        noise = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
        return Image.fromarray(noise).resize(SIZE, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(3))
    if kind == "gradient":
        a, b = (np.array([rng.randrange(256) for _ in range(3)], dtype=np.float64) for _ in range(2))
        t = np.linspace(0, 1, w)[None, :, None]
        row = (a * (1 - t) + b * t).astype(np.uint8)
        return Image.fromarray(np.repeat(row, h, axis=0))
    image = Image.new("RGB", SIZE, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x, y = rng.randrange(w), rng.randrange(h)
        draw.rectangle(
            (x, y, x + rng.randrange(40, 400), y + rng.randrange(40, 300)),
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    return image


def paste_face(canvas: Image.Image, source: Image.Image, cx: float, cy: float, width: float, degraded: str) -> None:
    scale = width / LFW_FACE_WIDTH
    crop_side = 170  # of the 250 px source: the face and a margin, few neighbours' faces
    crop = source.crop((125 - crop_side // 2, 125 - crop_side // 2, 125 + crop_side // 2, 125 + crop_side // 2))
    side = max(4, round(crop_side * scale))
    crop = crop.resize((side, side), Image.Resampling.LANCZOS)
    if degraded == "blurred":
        crop = crop.filter(ImageFilter.GaussianBlur(max(1.0, width / 16)))
    elif degraded == "dark":
        crop = ImageEnhance.Brightness(crop).enhance(0.35)
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((side * 0.08, side * 0.02, side * 0.92, side * 0.98), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1, side // 20)))
    canvas.paste(crop, (round(cx - side / 2), round(cy - side / 2)), mask)


def compose(count: int, guests: dict[str, list[Path]], strangers: list[tuple[str, Path]], seed: int) -> list[Composed]:
    rng = random.Random(seed)
    # Not the dogs collage: a grid of faces (of dogs) YuNet scores like human ones once enlarged.
    nofaces = [p for p in sorted(bench.FACES.glob("noface_*")) if "faces" not in p.name]
    names = sorted(guests)
    photos = []
    for _ in range(count):
        canvas = background(rng, nofaces)
        placed: list[Placed] = []
        for _attempt in range(60):
            if len(placed) >= rng.randint(3, 9):
                break
            width = math.exp(rng.uniform(math.log(16), math.log(160)))
            half = width * 0.85 * 1.7 / 2
            cx, cy = rng.uniform(half, SIZE[0] - half), rng.uniform(half, SIZE[1] - half)
            if any(math.hypot(cx - p.cx, cy - p.cy) < half + p.width * 0.85 + 4 for p in placed):
                continue
            if rng.random() < 0.6:
                person = rng.choice(names)
                path, guest = rng.choice(guests[person][1:]), True
            else:
                person, path = rng.choice(strangers)
                guest = False
            degraded = rng.choices(["", "blurred", "dark"], [0.7, 0.15, 0.15])[0]
            paste_face(canvas, load_rgb(path.read_bytes()), cx, cy, width, degraded)
            placed.append(Placed(person, guest, cx, cy, width, degraded))
        # Stored as the pipeline stores a verified photo: a JPEG, read back.
        photos.append(Composed(load_rgb(encode_jpeg(canvas)), placed))
    return photos


def which_face(box: FaceBox, faces: list[Placed]) -> int | None:
    bx, by = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    for i, face in enumerate(faces):
        close = math.hypot(bx - face.cx, by - face.cy) <= face.width / 2
        if close and 0.5 <= box.width / face.width <= 2.0:
            return i
    return None


def lfw_people() -> dict[str, list[Path]]:
    people: dict[str, list[Path]] = {}
    with open(LFW / "MANIFEST.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            people.setdefault(row["person"], []).append(LFW / row["file"])
    return people


def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    people = lfw_people()
    several = sorted(p for p, files in people.items() if len(files) >= 2)
    single = sorted(p for p, files in people.items() if len(files) == 1)
    guests = {p: sorted(people[p]) for p in rng.sample(several, args.guests)}
    strangers = [(p, people[p][0]) for p in rng.sample(single, 300)]
    photos = compose(args.photos, guests, strangers, args.seed)
    total = sum(len(p.faces) for p in photos)
    bench.note(f"{len(photos)} composed photos {SIZE[0]}x{SIZE[1]}, {total} faces, {len(guests)} guests")

    for label, version in DETECTORS.items():
        engine = get_engine("dlib", version)
        guest_names = sorted(guests)
        refs = []
        for name in guest_names:
            image = load_rgb(guests[name][0].read_bytes())
            boxes = engine.detect(image)
            refs.append(engine.embed(image, boxes[:1])[0] if boxes else np.full(128, 10.0, dtype=np.float32))
        references = np.asarray(refs, dtype=np.float32)
        found: dict[str, list[int]] = {}
        false_faces = 0
        matching: dict[str, dict[str, int]] = {}
        work = 0.0
        for photo in photos:
            start = time.perf_counter()
            boxes = engine.detect(photo.image)
            qualities = engine.quality(photo.image, boxes) or []
            vectors = engine.embed(photo.image, boxes)
            work += time.perf_counter() - start
            owner = [which_face(b, photo.faces) for b in boxes]
            false_faces += sum(o is None for o in owner)
            hit = {o for o in owner if o is not None}
            for i, face in enumerate(photo.faces):
                found.setdefault(bucket(face.width), [0, 0])
                found[bucket(face.width)][0] += i in hit
                found[bucket(face.width)][1] += 1
            scores = similarities(vectors, references)
            for gated in (False, True):
                s = scores.copy()
                if gated:
                    s[[not q.matchable for q in qualities]] = -np.inf
                assigned = {
                    a.face_index: guest_names[a.attendee_index] for a in assign_scores(s, DEFAULT_MIN_SIMILARITY)
                }
                for j, o in enumerate(owner):
                    if o is None:
                        continue
                    face = photo.faces[o]
                    key = f"{'gated' if gated else 'ungated'} {bucket(face.width)}"
                    row = matching.setdefault(key, {"guests": 0, "right": 0, "wrong": 0, "strangers": 0, "taken": 0})
                    if face.guest:
                        row["guests"] += 1
                        row["right"] += assigned.get(j) == face.person
                        row["wrong"] += j in assigned and assigned[j] != face.person
                    else:
                        row["strangers"] += 1
                        row["taken"] += j in assigned
        print(
            bench.table(
                ["size px", "faces", "found", "recall"],
                [
                    [b, n, k, f"{k / n:.3f}"]
                    for b, (k, n) in sorted(found.items(), key=lambda kv: int(kv[0].split("-")[0]))
                ],
                title=f"{label}: detection recall on composed photos",
            )
        )
        at_least_20 = [found[b] for b in found if int(b.split("-")[0]) >= 20]
        k20, n20 = sum(k for k, _ in at_least_20), sum(n for _, n in at_least_20)
        print(
            f"{label}: faces >= 20 px found {k20}/{n20} = {k20 / n20:.3f}; false faces {false_faces} in {len(photos)} "
            f"photos ({false_faces / len(photos) * 50:.2f} per 50); face work {work / len(photos):.3f} s/photo"
        )
        print(
            bench.table(
                ["gate size px", "guest faces", "as themself", "as another", "stranger faces", "taken for a guest"],
                [
                    [k, r["guests"], r["right"], r["wrong"], r["strangers"], r["taken"]]
                    for k, r in sorted(matching.items())
                ],
                title=f"{label}: matching of the detected composed faces (threshold {DEFAULT_MIN_SIMILARITY:.2f})",
            )
        )
        shared(label, engine)


def shared(label: str, engine: object) -> None:
    from picsaris_pipeline.faces.engine import VectorFaceEngine

    assert isinstance(engine, VectorFaceEngine)
    manifest = bench.read_manifest()
    rows, seconds = [], 0.0
    with open(bench.FACES / "group_face_boxes.csv", newline="") as handle:
        annotated = list(csv.DictReader(handle))
    found_annotated = 0
    for photo in manifest:
        path = bench.FACES / photo.file
        image = load_rgb(encode_jpeg(decode_photo(path.read_bytes()).image))
        start = time.perf_counter()
        boxes = engine.detect(image)
        engine.quality(image, boxes)
        engine.embed(image, boxes)
        seconds += time.perf_counter() - start
        for row in annotated:
            if row["file"] == path.name:
                cx, cy = int(row["left"]) + int(row["width"]) / 2, int(row["top"]) + int(row["height"]) / 2
                found_annotated += any(b.left <= cx <= b.right and b.top <= cy <= b.bottom for b in boxes)
        if photo.faces_expected == 0 or len(boxes) != photo.faces_expected:
            rows.append([path.name, photo.faces_expected, len(boxes)])
    print(
        bench.table(
            ["shared photo", "manifest faces", "found"],
            rows,
            title=f"{label}: shared photos off the manifest or without faces",
        )
    )
    print(
        f"{label}: annotated group boxes found {found_annotated}/{len(annotated)}; "
        f"face work on the {len(manifest)} shared photos {seconds / len(manifest):.3f} s/photo"
    )


def alignment() -> None:
    """dlib's descriptor aligned two ways on YuNet's boxes of the shared single-face photos: by dlib's
    5-point landmarks, or by YuNet's own 5 landmarks mapped onto dlib's layout (eye corners from the
    eye centres, the nose base below the tip). Prints the same-person / different-person distances."""
    from itertools import combinations

    from picsaris_pipeline.faces.dlib_engine import _DlibModels
    from picsaris_pipeline.faces.yunet import YuNetDetector

    models = _DlibModels.get()
    dlib = models.dlib

    def from_yunet(box: FaceBox, points: np.ndarray) -> object:
        left_eye, right_eye, nose = points[0], points[1], points[2]
        distance = float(np.linalg.norm(right_eye - left_eye))
        along = (right_eye - left_eye) / distance
        down = np.array([-along[1], along[0]]) * (1 if along[0] >= 0 else -1)
        half = 0.17 * distance  # measured on obama_1: dlib's eye corners sit about this far from YuNet's centres
        corners = [right_eye + along * half, right_eye - along * half, left_eye - along * half, left_eye + along * half]
        parts = [*corners, nose + down * 0.18 * distance]
        rect = dlib.rectangle(box.left, box.top, box.right, box.bottom)
        return dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in parts])

    singles = [p for p in bench.read_manifest() if p.person and p.faces_expected == 1]
    vectors: dict[str, dict[str, np.ndarray]] = {"dlib 5-point": {}, "YuNet landmarks": {}}
    for photo in singles:
        image = load_rgb(encode_jpeg(decode_photo((bench.FACES / photo.file).read_bytes()).image))
        pixels = np.asarray(image)
        box, points = YuNetDetector().detect(image)[0]
        rect = dlib.rectangle(box.left, box.top, box.right, box.bottom)
        for name, shape in (
            ("dlib 5-point", models.landmarks(pixels, rect)),
            ("YuNet landmarks", from_yunet(box, points)),
        ):
            vectors[name][photo.file] = np.asarray(models.descriptor.compute_face_descriptor(pixels, shape, 0))
    person = {p.file: p.person for p in singles}
    rows = []
    for name, found in vectors.items():
        same, different = [], []
        for a, b in combinations(sorted(found), 2):
            (same if person[a] == person[b] else different).append(float(np.linalg.norm(found[a] - found[b])))
        rows.append([name, f"{max(same):.3f}", f"{min(different):.3f}", f"{min(different) - max(same):.3f}"])
    print(bench.table(["alignment on YuNet boxes", "same person max", "different min", "gap"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--guests", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--alignment-only", action="store_true", help="only compare the two alignments")
    args = parser.parse_args()
    print(bench.git_state(), bench.machine())
    alignment()
    if not args.alignment_only:
        run(args)


if __name__ == "__main__":
    main()
