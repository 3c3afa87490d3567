"""Matching at event scale: a late joiner against 36,000 stored faces, and one photo's faces against
400 attendees, through the real repository and matching code, on SQLite (and Postgres with --postgres).

    .venv/bin/python bench/matching.py [--faces 36000] [--attendees 400] [--repeats 30] [--postgres]

The vectors are synthetic but shaped like dlib's: per-dimension mean and spread are measured on the
faces of ../shared/faces (each person a point drawn from that distribution, each face of them that
point plus noise sized so two faces of one person are ~0.4 apart, as dlib's same-person distances
are), so the threshold finds a person's faces and nobody else's, as with real descriptors.
Everything is stored through picsaris_pipeline.db.repository (create_photo, replace_faces,
store_face_vectors, store_attendee_vector) on a fresh SQLite file and, with --postgres, a fresh
database on the local Postgres (dropped afterwards).

Timed, each over --repeats calls, p50/p95/max in milliseconds:
  late joiner: db.vector_reads.event_face_vectors (DB read) + matching.candidates (numpy), the search
      part of services.attendees.match_late_joiner (target <= 50 ms for 36,000 faces), alternating call
      by call with the path it took before (repo.event_face_vectors + the float32 norm), whose results
      must be the same; and the whole match_late_joiner, which also re-matches and re-publishes every
      candidate photo
  photo: repo.photo_vectors + repo.event_references (DB read) + matching.assign (numpy) for photos
      of 1, 5 and 24 faces against every attendee's reference; and the whole services.photos.match_photo
      (which also replaces the photo's matches and outbox rows)
Also the peak Python memory of one read of the event's vectors (both ways) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _support as bench
import numpy as np

MODEL = "dlib-resnet-v1-5pt-j0"
DETECTOR = "bench-synthetic"
SAME_PERSON_DISTANCE = 0.4  # typical dlib distance between two photos of one person


@dataclass(frozen=True)
class Shape:
    mean: np.ndarray
    spread: np.ndarray  # per-dimension standard deviation across people
    faces: int  # real faces it was measured on
    between: float  # median distance between the real faces (mostly different people)


def calibrate(count: int) -> Shape:
    """Per-dimension mean and spread of real dlib descriptors from the shared photos."""
    from picsaris_pipeline.domain.imaging import decode_photo, encode_jpeg, load_rgb
    from picsaris_pipeline.faces import get_engine

    engine = get_engine("dlib")
    vectors = []
    for source in bench.read_manifest()[:count]:
        image = load_rgb(encode_jpeg(decode_photo((bench.FACES / source.file).read_bytes()).image))
        vectors.extend(engine.embed(image, engine.detect(image)))
    data = np.asarray(vectors, dtype=np.float64)
    from picsaris_pipeline.domain.matching import similarities

    distances = 1.0 - similarities(data.astype(np.float32), data.astype(np.float32))
    upper = distances[np.triu_indices(len(data), k=1)]
    return Shape(data.mean(axis=0), data.std(axis=0), len(data), float(np.median(upper)))


class People:
    """Synthetic people: a centre each, and faces of them scattered around it like dlib's."""

    def __init__(self, shape: Shape, count: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.spread = shape.spread
        self.centres = shape.mean + shape.spread * rng.standard_normal((count, len(shape.mean)))
        between = float(np.sqrt(2 * np.sum(shape.spread**2)))
        self.noise = SAME_PERSON_DISTANCE / between  # two faces of one person ~0.4 apart

    def faces(self, who: np.ndarray) -> np.ndarray:
        jitter = self.noise * self.spread * self.rng.standard_normal((len(who), len(self.spread)))
        return (self.centres[who] + jitter).astype(np.float32)


@dataclass
class Seeded:
    event_id: str
    attendee_ids: list[str]
    joiner_id: str
    joiner_photos: set[str]
    sample_photos: dict[int, Any]  # faces -> Photo
    seconds: float


def seed(repo: Any, args: argparse.Namespace, people: People, rng: np.random.Generator) -> Seeded:
    """One event: attendees with references, photos with faces and vectors (all `published`), a late
    joiner who appears in some of them, and one photo of each size in --photo-faces."""
    from picsaris_pipeline.domain.model import PhotoStatus
    from picsaris_pipeline.faces.engine import FaceBox

    started = time.perf_counter()
    event = repo.create_event("matching bench", MODEL)
    attendees = [repo.add_attendee(event.id, f"Attendee {i}", True, None, None) for i in range(args.attendees)]
    for i, attendee in enumerate(attendees):
        repo.store_attendee_vector(attendee, MODEL, people.faces(np.array([i]))[0])
    uploader = attendees[0]
    joiner_person = args.people  # the extra person at the end: nobody's attendee yet
    photos = args.faces // args.faces_per_photo
    with_joiner = set(rng.choice(photos, size=min(args.joiner_photos, photos), replace=False).tolist())
    joiner_photos = set()

    def store(who: np.ndarray, n: int) -> Any:
        sha = hashlib.sha256(f"{event.id}/{n}".encode()).hexdigest()
        photo = repo.create_photo(event.id, uploader.id, f"photo_{n:05d}.jpg", "image/jpeg", sha, 1000, "jpg")
        boxes = [FaceBox(60 * k, 0, 60 * k + 50, 50, 1.0) for k in range(len(who))]
        faces = repo.replace_faces(photo, DETECTOR, boxes)
        repo.store_face_vectors(photo, faces, MODEL, people.faces(who))
        repo.update_photo(photo.id, PhotoStatus.PUBLISHED, face_count=len(who))
        return photo

    for n in range(photos):
        who = rng.choice(args.people, size=args.faces_per_photo, replace=False)
        if n in with_joiner:
            who[0] = joiner_person
        photo = store(who, n)
        if n in with_joiner:
            joiner_photos.add(photo.id)
        if n and n % 2000 == 0:
            bench.note(f"  {n}/{photos} photos stored ({time.perf_counter() - started:.0f} s)")
    samples = {}
    for k, size in enumerate(args.photo_faces):
        who = rng.choice(args.attendees, size=min(size, args.attendees), replace=False)
        samples[size] = store(who, photos + k)
    joiner = repo.add_attendee(event.id, "Late joiner", True, None, None)
    repo.store_attendee_vector(joiner, MODEL, people.faces(np.array([joiner_person]))[0])
    return Seeded(
        event.id,
        [a.id for a in attendees],
        joiner.id,
        joiner_photos,
        samples,
        time.perf_counter() - started,
    )


def timed(function: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Milliseconds of each call, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def interleaved(
    current: Callable[[], Any], before: Callable[[], Any], repeats: int
) -> tuple[tuple[list[float], list[float]], Any]:
    """timed() of two ways of doing the same thing, alternating call by call (which one goes first
    too), so that a noisy neighbour weighs on both alike; the last result of `current`."""
    times: tuple[list[float], list[float]] = ([], [])
    result = None
    for n in range(repeats):
        for which in (0, 1) if n % 2 == 0 else (1, 0):
            start = time.perf_counter()
            value = (current, before)[which]()
            times[which].append((time.perf_counter() - start) * 1000)
            if which == 0:
                result = value
    return times, result


def candidates_before(reference: np.ndarray, faces: np.ndarray, owners: Any, min_similarity: float) -> set[str]:
    """matching.candidates as it was before the dot-product form (c3de3ab..66edc34), for the side by side."""
    if faces.size == 0:
        return set()
    distances = np.linalg.norm(faces.astype(np.float32, copy=False) - reference.astype(np.float32), axis=1)
    return {owners[int(i)] for i in np.nonzero(1.0 - distances >= min_similarity - 1e-4)[0]}


def measure(label: str, url: str, args: argparse.Namespace, shape: Shape) -> tuple[list[list[Any]], list[str]]:
    from picsaris_pipeline.db import vector_reads
    from picsaris_pipeline.db.repository import connect
    from picsaris_pipeline.domain.matching import DEFAULT_MIN_SIMILARITY, assign, candidates
    from picsaris_pipeline.realtime import LogPublisher
    from picsaris_pipeline.services.attendees import match_late_joiner
    from picsaris_pipeline.services.photos import match_photo

    rng = np.random.default_rng(args.seed)
    repo = connect(url)
    people = People(shape, args.people + 1, rng)
    bench.note(f"{label}: storing {args.faces} faces and {args.attendees} attendees through the repository")
    seeded = seed(repo, args, people, rng)
    threshold = DEFAULT_MIN_SIMILARITY
    reference = repo.attendee_vector(seeded.joiner_id, MODEL)
    rows: list[list[Any]] = []
    notes = [f"{label}: seeding took {seeded.seconds:.0f} s"]

    def row(name: str, times: list[float], target: str = "") -> None:
        s = bench.summary(times)
        rows.append([f"{label}: {name}", s["p50"], s["p95"], s["max"], target])

    # The late joiner's search: one read of the event's vectors, one matrix product. The path
    # match_late_joiner takes (vector_reads + candidates) and the one it took before
    # (repo.event_face_vectors + the float32 norm below) alternate call by call, so both see the
    # same machine.
    bench.note(f"{label}: late joiner")
    (read, read_before), (owners, vectors) = interleaved(
        lambda: vector_reads.event_face_vectors(repo, seeded.event_id, MODEL),
        lambda: repo.event_face_vectors(seeded.event_id, MODEL),
        args.repeats,
    )
    before_owners, before_vectors = repo.event_face_vectors(seeded.event_id, MODEL)
    if list(owners) != before_owners or not np.array_equal(vectors, before_vectors):
        raise SystemExit(f"{label}: vector_reads and repo.event_face_vectors disagree")
    (numpy_only, numpy_before), found = interleaved(
        lambda: candidates(reference, vectors, owners, threshold),
        lambda: candidates_before(reference, before_vectors, before_owners, threshold),
        args.repeats,
    )
    if found != candidates_before(reference, before_vectors, before_owners, threshold):
        raise SystemExit(f"{label}: candidates differ from the previous computation")

    def search() -> set[str]:  # what match_late_joiner does before re-matching the photos it finds
        owners, vectors = vector_reads.event_face_vectors(repo, seeded.event_id, MODEL)
        return candidates(reference, vectors, owners, threshold)

    def search_before() -> set[str]:
        owners, vectors = repo.event_face_vectors(seeded.event_id, MODEL)
        return candidates_before(reference, vectors, owners, threshold)

    (both, both_before), _ = interleaved(search, search_before, args.repeats)
    row(f"late joiner: DB read ({len(owners)} vectors)", read)
    row("late joiner: numpy candidates", numpy_only)
    row("late joiner: search (read + numpy)", both, "<= 50")
    row("late joiner, before: DB read (repo.event_face_vectors)", read_before)
    row("late joiner, before: numpy candidates (norm)", numpy_before)
    row("late joiner, before: search (read + numpy)", both_before, "<= 50")
    recall = len(found & seeded.joiner_photos) / max(1, len(seeded.joiner_photos))
    notes.append(
        f"{label}: candidates {len(found)} photos, {recall:.0%} of the {len(seeded.joiner_photos)} with the joiner, "
        f"{len(found - seeded.joiner_photos)} others (the same as before)"
    )
    for name, read_once in (
        ("vector_reads.event_face_vectors", lambda: vector_reads.event_face_vectors(repo, seeded.event_id, MODEL)),
        ("repo.event_face_vectors", lambda: repo.event_face_vectors(seeded.event_id, MODEL)),
    ):
        tracemalloc.start()
        read_once()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        notes.append(f"{label}: one {name} read peaks at {peak / 2**20:.0f} MiB of Python memory")
    publisher = LogPublisher()
    whole, matched = timed(
        lambda: match_late_joiner(repo, publisher, seeded.joiner_id, MODEL, threshold), max(3, args.repeats // 5)
    )
    row(f"match_late_joiner whole (re-matches {len(matched)} photos)", whole)

    # One photo against every attendee's reference.
    bench.note(f"{label}: photos against {args.attendees} attendees")
    for size, photo in seeded.sample_photos.items():
        read, _ = timed(
            lambda p=photo: (repo.photo_vectors(p.id, MODEL), repo.event_references(p.event_id, MODEL)), args.repeats
        )
        face_ids, faces = repo.photo_vectors(photo.id, MODEL)
        attendee_ids, references = repo.event_references(photo.event_id, MODEL)
        numpy_times, assignments = timed(lambda f=faces, r=references: assign(f, r, threshold), args.repeats)
        whole, _ = timed(lambda p=photo: match_photo(repo, p, MODEL, threshold), args.repeats)
        row(f"photo of {size} face(s): DB read (faces + {len(attendee_ids)} references)", read)
        row(f"photo of {size} face(s): numpy assign", numpy_times)
        row(f"photo of {size} face(s): match_photo whole", whole)
        notes.append(f"{label}: photo of {size} face(s): {len(assignments)} matched of {len(face_ids)}")
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=36_000, help="stored faces in the event (default 36,000)")
    parser.add_argument("--faces-per-photo", type=int, default=3, help="faces per stored photo (default 3)")
    parser.add_argument("--attendees", type=int, default=400, help="attendees with references (default 400)")
    parser.add_argument("--people", type=int, default=1000, help="distinct people in the photos (default 1000)")
    parser.add_argument("--joiner-photos", type=int, default=36, help="photos the late joiner is in (36)")
    parser.add_argument("--photo-faces", default="1,5,24", help="faces of the photos matched against attendees")
    parser.add_argument("--repeats", type=int, default=30, help="calls per figure (default 30)")
    parser.add_argument("--calibrate", type=int, default=34, help="shared photos to measure dlib's shape on (34)")
    parser.add_argument("--postgres", action="store_true", help="also on a fresh database on the local Postgres")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shared", type=Path, default=bench.FACES, help="the shared photos (MANIFEST.csv)")
    args = parser.parse_args()
    args.photo_faces = [int(n) for n in args.photo_faces.split(",") if n]
    if args.attendees > args.people:
        parser.error("--people must be at least --attendees (attendees are people in the photos)")
    bench.FACES = args.shared

    print(f"tree: {bench.git_state()}; machine: {bench.machine()}")
    bench.note(f"measuring dlib's descriptor shape on {args.calibrate} shared photos")
    shape = calibrate(args.calibrate)
    rows: list[list[Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="picsaris-bench-") as tmp:
        r, n = measure("sqlite", f"sqlite:///{Path(tmp) / 'matching.db'}", args, shape)
        rows += r
        notes += n
        if args.postgres:
            with bench.postgres_database("picsaris_bench_matching") as url:
                r, n = measure("postgres", bench.sqlalchemy_url(url), args, shape)
                rows += r
                notes += n
                from picsaris_pipeline.db.repository import dispose_all

                dispose_all()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    photos = args.faces // args.faces_per_photo
    print(
        f"event: {photos} photos x {args.faces_per_photo} faces = {photos * args.faces_per_photo} stored faces of "
        f"{args.people} people, {args.attendees} attendees with references, a late joiner in {args.joiner_photos} "
        f"photos; vectors shaped on {shape.faces} real dlib faces (median distance {shape.between:.2f})"
    )
    print()
    print(bench.table(["", "p50 ms", "p95 ms", "max ms", "target ms"], rows, f"{args.repeats} calls each"))
    print()
    for line in notes:
        print(line)
    print(f"peak RSS of this process (seeding included): {peak_rss:.0f} MiB (target per run process <= 1024 MiB)")
    for backend in ("sqlite", "postgres"):
        for path in ("late joiner", "late joiner, before"):
            prefix = f"{backend}: {path}: "
            p50 = {r[0][len(prefix) :].split(" (")[0]: r[1] for r in rows if r[0].startswith(prefix)}
            if p50:
                db, np_ = p50["DB read"], p50["numpy candidates"]
                print(
                    f"{path} search split on {backend} (p50): DB read {db:.1f} ms ({db / (db + np_):.0%}), "
                    f"numpy {np_:.1f} ms ({np_ / (db + np_):.0%})"
                )


if __name__ == "__main__":
    sys.exit(main())
