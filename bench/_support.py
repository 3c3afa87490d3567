"""What the benchmarks share: the photo set, the bare face work, isolated homes, the Dagster webserver
and daemon, uploads the way a phone makes them, watching photos reach `published`, run breakdowns,
peak RSS of run processes, and the tables they print.

Not part of the package: bench/ scripts import it as `_support` (Python puts the script's folder
first on sys.path). What the tests do the same way (free ports, waiting for the webserver, its
GraphQL API, uploads as a phone makes them, the terminal statuses) comes from tests/support, so the
two cannot drift apart. Only public pipeline interfaces are used (the CLI, intake, the launcher, the
repository, Dagster's instance API), so the benchmarks keep working while the pipeline's internals
change.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
# `python bench/x.py` puts bench/ on sys.path, not the repository: tests.support needs the root.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.dagster_processes import free_port, graphql, wait_until_serving  # noqa: E402
from tests.support.phone_uploads import Outcome, UnexpectedDuplicate, upload_as_a_phone  # noqa: E402
from tests.support.phone_uploads import wait_terminal as wait_terminal_in  # noqa: E402

BIN = Path(sys.executable).parent
FACES = Path(os.environ.get("PICSARIS_SHARED_FACES", REPO.parent / "shared" / "faces"))
PG_ADMIN_DSN = os.environ.get("PICSARIS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

# The named guests who sign up with a selfie before any photo arrives (as in bench/model_switch.py):
# name -> (selfie file, consent). Their other photos are in the upload set, so matching has work.
SELFIES: dict[str, tuple[str, bool]] = {
    "Barack Obama": ("obama_1.jpg", True),
    "Kit Harington": ("kit_harington_2.jpg", True),
    "Alex Lacamoire": ("alex_lacamoire_2.jpg", True),
    "Rose Leslie": ("rose_leslie_1.jpg", False),
    "Tom Cruise": ("tom_cruise_1.jpg", True),
    "Joe Biden": ("biden_2.jpg", True),
}


# -- figures and tables -------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence; nan for an empty one."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(np.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> str:
    """A compact fixed-width table; floats get 2 decimals unless already formatted as strings."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "-" if value != value else f"{value:.2f}"  # nan -> "-"
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = [title] if title else []
    lines.append(
        "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    )
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        lines.append(
            "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True)))
        )
    return "\n".join(lines)


def note(message: str) -> None:
    """Progress to stderr (figures go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def add_service_options(parser: argparse.ArgumentParser, timeout: float, drained: str) -> None:
    """The options of a benchmark that starts the webserver and daemon: Dagster's storage, extra
    environment, the photo folder, how long to wait for the runs to drain, where to keep the logs."""
    parser.add_argument("--dagster-postgres", action="store_true", help="Dagster storage on the local Postgres")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra pipeline environment")
    parser.add_argument("--shared", type=Path, default=FACES, help="the shared photos (MANIFEST.csv)")
    parser.add_argument("--timeout", type=float, default=timeout, help=f"seconds to wait for {drained} to drain")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the webserver/daemon logs here")


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """--env KEY=VALUE options (e.g. a switch that turns near-duplicate detection off)."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env wants KEY=VALUE, got {pair!r}")
        result[key] = value
    return result


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


# -- the bare face work -------------------------------------------------------------------------
def bare_one(engine: Any, path: Path) -> int:
    """Decode, normalise (as verification does), detect and embed one photo: the face work, nothing else."""
    from picsaris_pipeline.domain.imaging import decode_photo, encode_jpeg, load_rgb

    image = load_rgb(encode_jpeg(decode_photo(path.read_bytes()).image))
    return len(engine.embed(image, engine.detect(image)))


def bare_loop(paths: Sequence[Path]) -> float:
    """One core, a plain loop, in this process; the models load inside the timed part (as they would
    in any fresh process), imports do not."""
    from picsaris_pipeline.faces import get_engine

    # PICSARIS_FACE_MODEL as the pipeline reads it, so HOG and YuNet can be compared.
    engine = get_engine("dlib", os.environ.get("PICSARIS_FACE_MODEL") or None)
    start = time.perf_counter()
    for path in paths:
        bare_one(engine, path)
    return time.perf_counter() - start


def _bare_worker(paths: list[Path], work: Any, ready: Any, go: Any, done: Any) -> None:
    from picsaris_pipeline.domain.imaging import decode_photo  # noqa: F401  (imports before the clock starts)
    from picsaris_pipeline.faces import get_engine

    ready.put(os.getpid())
    go.wait()
    engine = get_engine("dlib", os.environ.get("PICSARIS_FACE_MODEL") or None)
    count = 0
    while True:
        index = work.get()
        if index is None:
            break
        bare_one(engine, paths[index])
        count += 1
    done.put((os.getpid(), count, time.perf_counter()))


def bare_parallel(paths: Sequence[Path], workers: int = 2) -> float:
    """The same face work split across `workers` fresh processes pulling from one queue (the best a
    plain program can do on that many cores). Timed from the moment every worker has imported
    everything until the last one finishes; each loads its own models inside that time."""
    ctx = mp.get_context("spawn")
    work, ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Queue(), ctx.Event()
    for i in range(len(paths)):
        work.put(i)
    for _ in range(workers):
        work.put(None)
    processes = [ctx.Process(target=_bare_worker, args=(list(paths), work, ready, go, done)) for _ in range(workers)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=300)
    start = time.perf_counter()
    go.set()
    ends = [done.get(timeout=3600)[2] for _ in processes]
    for process in processes:
        process.join()
    return max(ends) - start


# -- isolated homes and databases ---------------------------------------------------------------
def _pg_admin() -> Any:
    import psycopg2

    connection = psycopg2.connect(PG_ADMIN_DSN)
    connection.autocommit = True
    return connection


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on the machine's Postgres, dropped afterwards; yields its psycopg2 URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _pg_admin()  # not `with admin:`, which would open a transaction CREATE DATABASE refuses
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = _pg_admin()
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.close()


def sqlalchemy_url(pg_url: str) -> str:
    return pg_url.replace("postgresql://", "postgresql+psycopg2://", 1)


@dataclass
class Home:
    """One isolated embedded-default home (PICSARIS_HOME), optionally with the application database on
    Postgres. `env` is for subprocesses; `activate()` points this process's intake at it too."""

    root: Path
    env: dict[str, str]

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    def activate(self) -> None:
        """Make App.from_env() in this process use this home (intake calls made here, as an API does)."""
        for key in [k for k in os.environ if k.startswith("PICSARIS_") or k == "DAGSTER_HOME"]:
            del os.environ[key]
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("PICSARIS_") or k == "DAGSTER_HOME"})

    def app(self) -> Any:
        from picsaris_pipeline.orchestration.app import App

        self.activate()
        return App.from_env()

    def picsaris(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [str(BIN / "picsaris"), *args], env=env or self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise SystemExit(
                f"picsaris {' '.join(args[:3])} ... failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
            )
        return result.stdout

    def picsaris_measured(self, *args: str) -> tuple[str, float, float, int]:
        """(stdout, wall seconds, peak RSS in MiB of the largest process of its tree, processes seen).
        The peak is wait4's ru_maxrss (the process and its reaped children, the largest of them),
        or the sampled VmHWM of a worker if that was larger."""
        with open(self.root / "cmd.out", "w+b") as out, open(self.root / "cmd.err", "w+b") as err:
            start = time.perf_counter()
            process = subprocess.Popen([str(BIN / "picsaris"), *args], env=self.env, stdout=out, stderr=err)
            with RssSampler(lambda: [process.pid], everything_runs=True) as sampler:
                _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(), err.read().decode()
        if process.returncode != 0:
            raise SystemExit(f"picsaris {' '.join(args)} failed ({process.returncode}):\n{stderr[-4000:]}")
        seen, sampled = sampler.peak_mib("run")
        return stdout, elapsed, max(usage.ru_maxrss / 1024, sampled if seen else 0.0), seen


@contextmanager
def home(root: Path, app_postgres: bool = False, extra_env: dict[str, str] | None = None) -> Iterator[Home]:
    root.mkdir(parents=True, exist_ok=True)
    dagster = ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICSARIS_") and k not in dagster}
    env["PICSARIS_HOME"] = str(root)
    with ExitStack() as stack:
        if app_postgres:
            url = stack.enter_context(postgres_database("picsaris_bench_app"))
            env["PICSARIS_DATABASE_URL"] = sqlalchemy_url(url)
            env["PICSARIS_REALTIME"] = "pg_notify"
        env.update(extra_env or {})
        try:
            yield Home(root, env)
        finally:
            from picsaris_pipeline.db.repository import dispose_all

            dispose_all()  # close pooled connections before the database is dropped


@dataclass(frozen=True)
class Event:
    id: str
    guests: dict[str, str]  # name -> attendee id


def sign_up(h: Home, name: str, extra_uploaders: Sequence[str] = ()) -> Event:
    """An event with the named guests (selfies; one without consent), references built by `picsaris
    process` before any photo arrives, and guests who only upload (no selfie). Writes the embedded
    instance's dagster.yaml under the home as a side effect of `picsaris process`."""
    event_id = h.picsaris("event", "create", name).strip()
    guests = {}
    for guest, (selfie, consent) in SELFIES.items():
        flags = [] if consent else ["--no-consent"]
        guests[guest] = h.picsaris(
            "attendee", "add", event_id, "--name", guest, "--selfie", str(FACES / selfie), *flags
        )
        guests[guest] = guests[guest].strip()
    h.picsaris("process")
    if extra_uploaders:
        from picsaris_pipeline.services.intake import register_attendee

        app = h.app()
        for guest in extra_uploaders:
            guests[guest] = register_attendee(app.repo, app.store, event_id, guest, True, None, None).id
    return Event(event_id, guests)


# -- the Dagster webserver and daemon ------------------------------------------------------------
@dataclass(frozen=True)
class RunQueue:
    """The run queue's daemon settings under `run_queue:` (compatible with `concurrency: runs:`):
    how often the daemon looks at the queue (Dagster's default: every 5 s) and whether it launches
    the runs it dequeues in parallel threads (default: one after another; each launch waits for the
    run's new process to import Dagster and load the code location)."""

    interval: int | None = None
    threads: bool = False
    # The run launcher: "warm" (dagster.yaml's WarmRunLauncher, runs forked from a warm worker),
    # "fresh" (the same launcher with warm: false: a new `dagster api execute_run` process per run) or
    # "dagster" (Dagster's DefaultRunLauncher: the code server spawns a process per run).
    launcher: str = "warm"

    @classmethod
    def parse(cls, text: str) -> RunQueue:
        """'default', '1', '1+threads', 'threads', each optionally '+fresh' or '+dagster'."""
        interval: int | None = None
        threads = False
        launcher = "warm"
        for part in text.split("+"):
            if part == "threads":
                threads = True
            elif part in ("warm", "fresh", "dagster"):
                launcher = part
            elif part != "default":
                interval = int(part)
        return cls(interval, threads, launcher)

    @property
    def label(self) -> str:
        text = f"every {self.interval} s" if self.interval is not None else "interval as in dagster.yaml"
        return text + (", threads" if self.threads else "") + f", {self.launcher} runs"


def instance_yaml(kind: str, queue: RunQueue, postgres: bool, embedded: Path) -> str:
    """dagster.yaml for the bench's DAGSTER_HOME.

    embedded: the file `picsaris` wrote there on the embedded default (sign_up runs `picsaris process`
    first), as it is, e.g. two runs at a time. production: the repository's deploy/dagster.yaml (4 runs, 1 per
    uploader, the face_engine pool, run retries). Storage: the bench's own Postgres database with
    postgres=True, else SQLite under DAGSTER_HOME. The run queue settings are added to either."""
    import yaml

    if kind == "production":
        config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
        config.pop("storage", None)
    elif embedded.exists():
        config = yaml.safe_load(embedded.read_text()) or {}
    else:
        config = {"concurrency": {"runs": {"max_concurrent_runs": 2}}, "telemetry": {"enabled": False}}
    if postgres:
        config["storage"] = {"postgres": {"postgres_url": {"env": "DAGSTER_POSTGRES_URL"}}}
    if queue.interval is not None:
        config.setdefault("run_queue", {})["dequeue_interval_seconds"] = queue.interval
    if queue.threads:
        config.setdefault("run_queue", {})["dequeue_use_threads"] = True
    warm_launcher = {"module": "picsaris_pipeline.warm_runs.launcher", "class": "WarmRunLauncher"}
    if queue.launcher == "dagster":
        config.pop("run_launcher", None)
    else:
        config["run_launcher"] = {**warm_launcher, "config": {"warm": queue.launcher == "warm"}}
    return "# written by bench/_support.py\n" + yaml.safe_dump(config, sort_keys=False)


class DagsterServices:
    """dagster-webserver + dagster-daemon on loopback, as tests/support/dagster_processes.py starts them."""

    def __init__(self, h: Home, logs: Path, kind: str = "embedded", dagster_pg_url: str | None = None) -> None:
        self.home = h
        self.logs = logs
        self.kind = kind
        self.dagster_pg_url = dagster_pg_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(h.env, DAGSTER_HOME=str(h.dagster_home))
        if dagster_pg_url:
            self.env["DAGSTER_POSTGRES_URL"] = dagster_pg_url
        self.webserver: subprocess.Popen | None = None
        self.daemon: subprocess.Popen | None = None
        self.queue = RunQueue()
        config = h.dagster_home / "dagster.yaml"
        self.embedded = config.read_text() if config.exists() else None  # as picsaris wrote it
        logs.mkdir(parents=True, exist_ok=True)

    def _spawn(self, command: list[str], log: str) -> subprocess.Popen:
        with open(self.logs / log, "ab") as output:
            return subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )

    def write_config(self, queue: RunQueue) -> None:
        self.queue = queue
        self.home.dagster_home.mkdir(parents=True, exist_ok=True)
        original = self.home.root / "dagster.yaml.written-by-picsaris"
        if self.embedded is not None and not original.exists():
            original.write_text(self.embedded)
        text = instance_yaml(self.kind, queue, self.dagster_pg_url is not None, original)
        (self.home.dagster_home / "dagster.yaml").write_text(text)
        (self.logs / "dagster.yaml").write_text(text)  # kept with the logs, for the record

    def start(self, queue: RunQueue) -> None:
        self.write_config(queue)
        self.webserver = self._spawn(
            [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
            "webserver.log",
        )
        self.start_daemon()
        wait_until_serving(self.webserver, self.port, self.logs / "webserver.log", timeout=240)
        self.wait_daemon_healthy()

    def start_daemon(self) -> None:
        self.daemon = self._spawn([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], "daemon.log")

    def restart_daemon(self, queue: RunQueue) -> None:
        """A new run-queue setting: the daemon reads dagster.yaml when it starts (the webserver only
        enqueues runs)."""
        self._stop(self.daemon)
        self.write_config(queue)
        self.start_daemon()
        time.sleep(1)
        self.wait_daemon_healthy()

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return graphql(self.port, query, variables, timeout=60)

    def wait_daemon_healthy(self, timeout: float = 240) -> None:
        query = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.daemon is not None and self.daemon.poll() is not None:
                raise SystemExit("dagster-daemon exited:\n" + (self.logs / "daemon.log").read_text()[-3000:])
            statuses = self.graphql(query)["instance"]["daemonHealth"]["allDaemonStatuses"]
            if all(s["healthy"] for s in statuses if s["required"]):
                return
            time.sleep(1)
        raise SystemExit("dagster-daemon not healthy within the timeout; see " + str(self.logs / "daemon.log"))

    def root_pids(self) -> list[int]:
        return [p.pid for p in (self.webserver, self.daemon) if p is not None and p.poll() is None]

    @staticmethod
    def _stop(process: subprocess.Popen | None) -> None:
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        self._stop(self.daemon)
        self._stop(self.webserver)

    def __enter__(self) -> DagsterServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def dagster_services(
    h: Home, logs: Path, kind: str, dagster_postgres: bool, queue: RunQueue
) -> Iterator[DagsterServices]:
    with ExitStack() as stack:
        pg = stack.enter_context(postgres_database("picsaris_bench_dagster")) if dagster_postgres else None
        services = stack.enter_context(DagsterServices(h, logs, kind, pg))
        note(f"starting dagster-webserver and dagster-daemon ({kind} instance, run queue {queue.label})")
        started = time.perf_counter()
        services.start(queue)
        note(f"webserver and daemon ready after {time.perf_counter() - started:.1f} s")
        yield services


# -- peak RSS of run processes -------------------------------------------------------------------
def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, cmdline) for every process we can read."""
    table_ = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        table_[int(entry.name)] = (ppid, cmdline)
    return table_


def _hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def classify(cmdline: str, parent_cmdline: str = "") -> str:
    """What a descendant of the webserver or the daemon is. The default run launcher asks the code
    location's gRPC server (`dagster api grpc`) to start each run, which it does in a fresh process
    made by multiprocessing's spawn (`... spawn_main ...`); `dagster api execute_run` is the same
    role for launchers that start a command (WarmRunLauncher with warm: false). WarmRunLauncher's
    runs are forks of its worker, so they carry the worker's command line: a child of the worker is
    a run, the worker itself is not."""
    if "resource_tracker" in cmdline:
        return "other"
    if "warm_runs.forkserver" in cmdline:
        return "run" if "warm_runs.forkserver" in parent_cmdline else "warm worker"
    if "spawn_main" in cmdline or "execute_run" in cmdline or "execute_step" in cmdline:
        return "run"
    if "api grpc" in cmdline or "code-server" in cmdline:
        return "code server"
    return "other"


class RssSampler:
    """Samples /proc every `interval` s for descendants of the given roots and keeps each process's
    peak resident set (VmHWM, the kernel's own high-water mark, so a spike between samples counts)."""

    def __init__(self, roots: Callable[[], list[int]], interval: float = 0.2, everything_runs: bool = False) -> None:
        self.roots = roots
        self.interval = interval
        self.everything_runs = everything_runs  # `picsaris process`: it and its workers all run runs
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (class, VmHWM KiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        procs = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        stack = list(self.roots())
        roots = set(stack)
        while stack:
            pid = stack.pop()
            stack.extend(children.get(pid, []))
            cmdline = procs.get(pid, (0, ""))[1]
            if self.everything_runs:  # Python processes only: not the compute-log tails and their watchers
                python = "python" in cmdline and "watch_orphans" not in cmdline and "resource_tracker" not in cmdline
                kind = "run" if python else "other"
            else:
                parent = procs.get(procs.get(pid, (0, ""))[0], (0, ""))[1]
                kind = "service" if pid in roots else classify(cmdline, parent)
            hwm = _hwm_kib(pid)
            if hwm is not None:
                previous = self.peaks.get(pid, (kind, 0))[1]
                self.peaks[pid] = (kind, max(previous, hwm))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mib(self, kind: str) -> tuple[int, float]:
        """(processes seen, max VmHWM in MiB) of one class."""
        values = [kib for k, kib in self.peaks.values() if k == kind]
        return len(values), (max(values) / 1024 if values else float("nan"))

    def reset(self) -> None:
        self.peaks.clear()


# -- uploads, as a phone makes them ---------------------------------------------------------------
@dataclass
class Upload:
    photo_id: str
    path: Path
    uploader: str
    started: float  # time.time() before request_upload
    requested: float  # request_upload returned (the ticket)
    put_done: float  # the bytes are in the bucket: "upload complete"
    completed: float  # complete_upload (and the launch) returned


def upload(app: Any, launcher: Any, event_id: str, uploader_id: str, path: Path, batches: bool = True) -> Upload:
    """request_upload -> PUT with the ticket -> complete_upload, the way picsaris upload (and the
    upload API) does it; with a launcher, completing launches the photo's run on the webserver (or,
    with `batches`, queues it for the batch sensor when its uploader has another photo waiting). No
    launcher: the photo is `uploaded` and only the bucket sensor (or picsaris process) will run it."""
    try:
        made = upload_as_a_phone(
            app.repo,
            app.store,
            event_id,
            uploader_id,
            path.read_bytes(),
            path.name,
            on_uploaded=launcher.launch_photo if launcher else None,
            on_deferred=launcher.announce_photo if launcher and batches else None,
        )
    except UnexpectedDuplicate as duplicate:
        raise SystemExit(f"{duplicate}: the photo set is not distinct") from None
    return Upload(made.photo.id, path, uploader_id, made.started, made.requested, made.put_done, made.completed)


def upload_phases(uploads: Sequence[Upload]) -> str:
    """Medians of the three calls a phone makes, in milliseconds."""
    if not uploads:
        return "no uploads"
    request = statistics.median((u.requested - u.started) * 1000 for u in uploads)
    put = statistics.median((u.put_done - u.requested) * 1000 for u in uploads)
    complete = statistics.median((u.completed - u.put_done) * 1000 for u in uploads)
    return f"request {request:.0f} ms, PUT {put:.0f} ms, complete (+ launch) {complete:.0f} ms (medians)"


def steady_uploads(
    app: Any,
    launcher: Any,
    event_id: str,
    uploaders: Sequence[str],
    paths: Sequence[Path],
    rate: float,
    batches: bool = True,
) -> list[Upload]:
    """Photos arriving at a steady rate (photos/s), each from the next uploader in turn; every upload
    runs in its own thread from its scheduled moment on, as independent phones would."""
    results: list[Upload | BaseException | None] = [None] * len(paths)

    def one(i: int) -> None:
        try:
            results[i] = upload(app, launcher, event_id, uploaders[i % len(uploaders)], paths[i], batches)
        except BaseException as error:  # reported below, with the photo it belongs to
            results[i] = error

    threads = []
    start = time.monotonic()
    for i in range(len(paths)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=one, args=(i,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    for path, result in zip(paths, results, strict=True):
        if not isinstance(result, Upload):
            raise SystemExit(f"upload of {path.name} failed: {result!r}")
    return [r for r in results if isinstance(r, Upload)]


# -- watching photos reach `published` -----------------------------------------------------------
def wait_terminal(
    app: Any, event_id: str, photo_ids: Iterable[str], timeout: float, poll: float = 0.1
) -> dict[str, Outcome]:
    """Each photo's terminal status and the time the run wrote it (tests/support's wait_terminal),
    with a note of the photos that were still on their way when the timeout passed."""
    wanted = set(photo_ids)
    outcomes = wait_terminal_in(app.repo, event_id, wanted, timeout, poll)
    if missing := sorted(wanted - outcomes.keys()):
        note(f"timed out: {len(missing)} photo(s) not terminal, e.g. {missing[:3]}")
    return outcomes


def outbox_sent_at(app: Any, photo_ids: Iterable[str]) -> dict[str, float]:
    """When the outbox marked each photo's event-gallery message sent (the publisher took it)."""
    import sqlalchemy as sa

    from picsaris_pipeline.db import schema

    outbox = schema.realtime_outbox
    ids = list(photo_ids)
    query = (
        sa.select(outbox.c.photo_id, sa.func.min(outbox.c.sent_at))
        .where(outbox.c.photo_id.in_(ids))
        .where(outbox.c.topic.like("event:%"))
        .where(outbox.c.sent_at.is_not(None))
        .group_by(outbox.c.photo_id)
    )
    with app.repo.engine.connect() as conn:
        rows = conn.execute(query).all()
    result = {}
    for photo_id, sent in rows:
        if isinstance(sent, str):  # SQLite may hand back text for an aggregate
            sent = datetime.fromisoformat(sent)
        if sent.tzinfo is None:
            from datetime import UTC

            sent = sent.replace(tzinfo=UTC)
        result[photo_id] = sent.timestamp()
    return result


class NotifyListener:
    """LISTEN picsaris_realtime on the application database (PICSARIS_REALTIME=pg_notify): the time a
    guest's client would hear each photo's event-gallery message."""

    def __init__(self, dsn: str, channel: str = "picsaris_realtime") -> None:
        self.dsn = dsn.replace("postgresql+psycopg2://", "postgresql://", 1)
        self.channel = channel
        self.heard: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import select

        import psycopg2

        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {self.channel}")
        while not self._stop.is_set():
            if select.select([connection], [], [], 0.2) == ([], [], []):
                continue
            connection.poll()
            now = time.time()
            while connection.notifies:
                message = json.loads(connection.notifies.pop(0).payload)
                if message.get("topic", "").startswith("event:"):
                    self.heard.setdefault(message["payload"]["photo_id"], now)
        connection.close()

    def __enter__(self) -> NotifyListener:
        self._thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- where the time of each run went --------------------------------------------------------------
@dataclass
class RunTimes:
    run_id: str
    photo_id: str
    created: float  # enqueued (launchRun through the webserver, or the sensor's tick)
    launched: float | None  # RUN_STARTING: the daemon took it off the queue and launched it
    started: float | None  # RUN_START: the run's process is up (imports, code location loaded)
    ended: float | None
    status: str
    photos: int = 1  # partitions in the run (a range run counts them all)


def run_times(dagster_home: Path, env: dict[str, str], event_id: str) -> list[RunTimes]:
    """Creation, launch, start and end of the event's photo runs, one row per photo, from the
    instance's own records. A range run (tags dagster/asset_partition_range_start/_end, many photos
    in one run) gives a row to each photo of its range (dynamic partitions keep insertion order)."""
    import dagster as dg

    from picsaris_pipeline.orchestration.partitions import EVENT_TAG, PHOTO_JOB, PHOTO_TAG, run_photo_ids

    for key in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL"):
        if key in env:
            os.environ[key] = env[key]
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records(filters=dg.RunsFilter(tags={EVENT_TAG: event_id}))
        result = []
        for record in records:
            run = record.dagster_run
            if run.job_name != PHOTO_JOB:
                continue
            launched = None
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_STARTING):
                launched = entry.timestamp
            photos = run_photo_ids(run, instance) or [run.tags.get(PHOTO_TAG, "")]
            for photo in photos:
                result.append(
                    RunTimes(
                        run.run_id,
                        photo,
                        record.create_timestamp.timestamp(),
                        launched,
                        record.start_time,
                        record.end_time,
                        run.status.value,
                        photos=len(photos),
                    )
                )
    return result


def git_state() -> str:
    """Commit and dirty state of the tree being measured, for the record."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        return commit + (" + uncommitted changes" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.2f} at start"


def keep_dir(path: Path, keep: Path | None, with_databases: bool = False) -> None:
    """Copy the work directory's logs (and, if asked, its SQLite databases) somewhere that survives
    the temporary directory; never the bucket's images."""
    if keep is not None:
        skipped = ("bucket",) if with_databases else ("bucket", "*.db*")
        shutil.copytree(path, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*skipped))
