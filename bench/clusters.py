"""Unknown-face clusters on a lfw-dev event: how pure the clusters are, how complete, and how many of
a late joiner's photos their cluster brings in, side by side with no clustering (the late joiner's
re-match only finds the faces within the matching threshold of the selfie).

The event: --people lfw-dev people with at least --min-photos photos (up to --per-person of them, chosen
with --seed), plus --strangers people seen once. Nobody has signed up, so every face is unmatched.
Late joiners: --joiners of those people, each holding back one photo as their selfie (it is not in
the event). Descriptors come from the project's dlib engine (largest face per image) and are cached
under bench/.cache/ (git-ignored), so a second run takes seconds.

    .venv/bin/python bench/clusters.py            # ~6 min the first time (dlib on ~650 images), seconds after
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from picsaris_pipeline.domain import clustering  # noqa: E402
from picsaris_pipeline.domain.matching import DEFAULT_MAX_DISTANCE, similarities  # noqa: E402

LFW = REPO.parent / "shared" / "lfw-dev"
CACHE = REPO / "bench" / ".cache"
RULES = ("mean", "any")  # clustering.claimable's claim rules


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def choose(args: argparse.Namespace) -> tuple[list[str], list[str], dict[str, str]]:
    """(event files, their people, selfie file per late joiner)."""
    by_person: dict[str, list[str]] = defaultdict(list)
    with (LFW / "MANIFEST.csv").open() as handle:
        for row in csv.DictReader(handle):
            by_person[row["person"]].append(row["file"])
    rng = random.Random(args.seed)
    several = sorted(p for p, files in by_person.items() if len(files) >= args.min_photos)
    several = sorted(rng.sample(several, min(args.people, len(several))))
    once = sorted(p for p, files in by_person.items() if len(files) == 1)
    joiners = set(rng.sample(several, min(args.joiners, len(several))))
    files: list[str] = []
    people: list[str] = []
    selfies: dict[str, str] = {}
    for person in several:
        picked = rng.sample(sorted(by_person[person]), min(args.per_person, len(by_person[person])))
        if person in joiners:
            selfies[person] = picked.pop()
        files += picked
        people += [person] * len(picked)
    for person in rng.sample(once, min(args.strangers, len(once))):
        files.append(by_person[person][0])
        people.append(person)
    return files, people, selfies


def descriptors(paths: list[str]) -> dict[str, np.ndarray]:
    """dlib descriptor of the largest face per file (files without a face are left out), cached."""
    from PIL import Image

    from picsaris_pipeline.faces.dlib_engine import DlibEngine

    engine = DlibEngine.shared()
    CACHE.mkdir(parents=True, exist_ok=True)
    cache_file = CACHE / f"lfw-dev-{engine.model_version}.npz"
    cached: dict[str, np.ndarray] = {}
    if cache_file.exists():
        with np.load(cache_file) as stored:
            cached = {key: stored[key] for key in stored.files}
    missing = [p for p in paths if p not in cached]
    started = time.perf_counter()
    for n, path in enumerate(missing, 1):
        image = Image.open(LFW / path).convert("RGB")
        boxes = engine.detect(image)
        # An empty vector marks "no face found", so the file is not tried again next run.
        cached[path] = engine.embed(image, boxes[:1])[0] if boxes else np.zeros(0, dtype=np.float32)
        if n % 200 == 0:
            note(f"  dlib: {n}/{len(missing)} images, {time.perf_counter() - started:.0f} s")
            np.savez(cache_file, **cached)
    if missing:
        np.savez(cache_file, **cached)
    return {p: cached[p] for p in paths if cached[p].size}


def late_joiner_recall(
    vectors: np.ndarray, people: list[str], labels: np.ndarray, selfies: dict[str, np.ndarray], rule: str
) -> tuple[list[float], list[float], int, int]:
    """Per late joiner: share of their event photos found by re-match only and by re-match plus
    the clusters their selfie claims under `rule`; and the wrong photos (other people's) each way
    brings in, summed over the joiners."""
    min_similarity = 1.0 - DEFAULT_MAX_DISTANCE
    owner = np.asarray(people)
    names = [str(x) for x in labels]
    plain, with_clusters = [], []
    wrong_plain = wrong_clusters = 0
    for person, selfie in selfies.items():
        theirs = owner == person
        if not theirs.any():
            continue
        close = similarities(vectors, selfie[None, :])[:, 0] >= min_similarity
        claimed = clustering.claimable(selfie, vectors, names, min_similarity, rule)
        brought = close | np.isin(np.asarray(names), claimed)
        plain.append(float((close & theirs).sum() / theirs.sum()))
        with_clusters.append(float((brought & theirs).sum() / theirs.sum()))
        wrong_plain += int((close & ~theirs).sum())
        wrong_clusters += int((brought & ~theirs).sum())
    return plain, with_clusters, wrong_plain, wrong_clusters


def incremental(vectors: np.ndarray, max_distance: float, seed: int) -> np.ndarray:
    """Labels from placing the faces one at a time in a random order (what publishing does)."""
    order = np.random.default_rng(seed).permutation(len(vectors))
    labels = np.empty(len(vectors), dtype=object)
    placed: list[int] = []
    next_label = 0
    for index in order:
        label = clustering.place(vectors[index], vectors[placed], [labels[i] for i in placed], max_distance)
        if label is None:
            label = f"c{next_label}"
            next_label += 1
        labels[index] = label
        placed.append(int(index))
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--min-photos", type=int, default=4, help="people with at least this many photos (4)")
    parser.add_argument("--people", type=int, default=100, help="of those, how many are in the event (100)")
    parser.add_argument("--per-person", type=int, default=6, help="photos per person at most (6)")
    parser.add_argument("--strangers", type=int, default=100, help="people seen in one photo only (100)")
    parser.add_argument("--joiners", type=int, default=40, help="simulated late joiners (40)")
    parser.add_argument("--thresholds", default="0.40,0.45,0.50,0.55", help="cluster max distances to compare")
    args = parser.parse_args()
    if not (LFW / "MANIFEST.csv").exists():
        sys.exit(f"lfw-dev not found at {LFW}")

    files, people, selfie_files = choose(args)
    note(f"event: {len(files)} photos of {len(set(people))} people; {len(selfie_files)} late joiners")
    found = descriptors(files + sorted(selfie_files.values()))
    keep = [i for i, f in enumerate(files) if f in found]
    vectors = np.stack([found[files[i]] for i in keep])
    people = [people[i] for i in keep]
    selfies = {p: found[f] for p, f in selfie_files.items() if f in found}
    print(
        f"lfw-dev event: {len(vectors)} unmatched faces of {len(set(people))} people "
        f"({sum(1 for p in set(people) if people.count(p) > 1)} seen more than once), seed {args.seed}; "
        f"{len(selfies)} late joiners; matching threshold distance {DEFAULT_MAX_DISTANCE}"
    )
    header = (
        f"{'cluster max dist':>16} {'clusters':>8} {'purity':>7} {'complete':>8} {'>=3 photos':>10} {'s':>6}"
        + "".join(f" {'recall ' + r:>11} {'vs re-match':>11} {'wrong ' + r:>10}" for r in RULES)
    )
    print(header)
    plain_recall, wrong_plain = 0.0, 0
    for threshold in (float(x) for x in args.thresholds.split(",")):
        started = time.perf_counter()
        labels = clustering.cluster(vectors, threshold)
        seconds = time.perf_counter() - started
        sizes = np.bincount(labels)
        line = (
            f"{threshold:>16.2f} {len(sizes):>8} {clustering.purity(list(labels), people):>7.3f} "
            f"{clustering.completeness(list(labels), people):>8.3f} {int((sizes >= 3).sum()):>10} {seconds:>6.2f}"
        )
        for rule in RULES:
            plain, with_clusters, wrong_plain, wrong_clusters = late_joiner_recall(
                vectors, people, labels, selfies, rule
            )
            plain_recall, recall = float(np.mean(plain)), float(np.mean(with_clusters))
            line += f" {recall:>11.3f} {recall / plain_recall:>10.2f}x {wrong_clusters:>10}"
        print(line)
    print(
        f"{'no clustering':>16} {'':>8} {'':>7} {'':>8} {'':>10} {'':>6}"
        + "".join(f" {plain_recall:>11.3f} {'1.00x':>11} {wrong_plain:>10}" for _ in RULES)
        + "   (late-joiner re-match only)"
    )
    threshold = clustering.DEFAULT_CLUSTER_MAX_DISTANCE
    started = time.perf_counter()
    placed = incremental(vectors, threshold, args.seed)
    print(
        f"incremental placement at {threshold:.2f} (publish order shuffled): purity "
        f"{clustering.purity(list(placed), people):.3f}, completeness "
        f"{clustering.completeness(list(placed), people):.3f}, {len(set(placed))} clusters, "
        f"{time.perf_counter() - started:.1f} s for {len(vectors)} faces"
    )


if __name__ == "__main__":
    main()
