"""dlib descriptors of the lfw-dev photos, cached under bench/.cache/ (git-ignored) for bench/policy.py.

    nice -n 10 .venv/bin/python bench/lfw_cache.py [--model VERSION] [--workers 1] [--limit N]

Each photo goes the pipeline's way: decode_photo -> verified JPEG -> load_rgb -> DlibEngine.detect ->
DlibEngine.embed, under --model (default: the pipeline's default, yunet-dlib-resnet-v1-5pt-j0; the HOG
version dlib-resnet-v1-5pt-j0 is what the policy was first tuned on). Every detected face is kept
with its box and its quality (size, sharpness, yaw: faces/quality.py); a photo where nothing is
detected is kept with no faces (the pipeline could not match it either).
Photos are taken in an order that makes a partial cache useful: every person's 1st and 2nd photos,
then the 3rd and 4th, then the people with one photo (strangers), then the rest. Lines are appended
to bench/.cache/lfw-dev-<model>.<worker>.jsonl as they are computed, so a stopped build resumes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "lfw-dev"
CACHE = REPO / "bench" / ".cache"


def default_model() -> str:
    from picsaris_pipeline.faces.dlib_engine import DEFAULT_MODEL

    return DEFAULT_MODEL


def manifest(lfw: Path = LFW) -> list[tuple[str, str]]:
    with (lfw / "MANIFEST.csv").open(newline="") as handle:
        return [(row["file"], row["person"]) for row in csv.DictReader(handle)]


def build_order(rows: list[tuple[str, str]]) -> list[str]:
    counts = Counter(person for _, person in rows)
    rank: dict[str, int] = defaultdict(int)
    keyed = []
    for file, person in rows:
        position = rank[person]
        rank[person] += 1
        # A person with one photo is a stranger: after everyone's first four photos.
        tier = 1.5 if counts[person] == 1 else position // 2 if position < 4 else 3 + position / 1000
        tie = hashlib.sha256(file.encode()).hexdigest()  # stable, spread over the alphabet
        keyed.append((tier, tie, file))
    return [file for _, _, file in sorted(keyed)]


def cache_files(model: str) -> list[Path]:
    return sorted(CACHE.glob(f"lfw-dev-{model}.*.jsonl"))


def load(model: str) -> dict[str, list[dict]]:
    """file -> faces ({box, descriptor}) of every cached photo."""
    cached: dict[str, list[dict]] = {}
    for path in cache_files(model):
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short when a build was stopped
            cached[entry["file"]] = entry["faces"]
    return cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1, help="this process's share: --worker of --workers")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="stop after this many photos in the order (0: all)")
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--model", default=None, help="face model version (default: the pipeline's default)")
    args = parser.parse_args()
    model = args.model or default_model()

    from picsaris_pipeline.domain.imaging import decode_photo, encode_jpeg, load_rgb
    from picsaris_pipeline.faces.dlib_engine import DlibEngine

    engine = DlibEngine.shared(model)
    order = build_order(manifest(args.lfw))
    if args.limit:
        order = order[: args.limit]
    mine = [file for n, file in enumerate(order) if n % args.workers == args.worker]
    done = set(load(model))
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"lfw-dev-{model}.{args.worker}.jsonl"
    todo = [file for file in mine if file not in done]
    print(f"worker {args.worker}/{args.workers}: {len(todo)} photos to compute ({len(mine) - len(todo)} cached)")
    started = time.perf_counter()
    with out.open("a") as handle:
        for n, file in enumerate(todo, 1):
            image = load_rgb(encode_jpeg(decode_photo((args.lfw / file).read_bytes()).image))
            boxes = engine.detect(image)
            vectors = engine.embed(image, boxes)
            qualities = engine.quality(image, boxes)
            faces = [
                {
                    "box": [b.left, b.top, b.right, b.bottom, round(b.score, 4)],
                    "descriptor": [round(float(x), 6) for x in v],
                    "quality": [q.size_px, q.sharpness, q.yaw_degrees],
                }
                for b, v, q in zip(boxes, vectors, qualities, strict=True)
            ]
            handle.write(json.dumps({"file": file, "faces": faces}) + "\n")
            handle.flush()
            if n % 200 == 0:
                elapsed = time.perf_counter() - started
                print(f"  {n}/{len(todo)} ({elapsed / n:.2f} s/photo)", flush=True)
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
