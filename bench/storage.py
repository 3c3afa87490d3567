"""Storage per photo: Dagster's instance, the app database and the bucket, after `picsaris process`
and after the event is archived, on the embedded default (SQLite everywhere).

    .venv/bin/python bench/storage.py [--photos 48] [--instances before,after]

For each instance configuration a fresh home signs up the bench guests (selfies, references built),
then N photos composed from ../shared/faces are uploaded with `picsaris upload` and run by
`picsaris process`; the event is then archived (`picsaris event archive`: its partitions and its
finished runs leave Dagster). Sizes are the disk blocks of each file and folder (du's count;
SQLite's -wal files included, after a checkpoint) and are printed per photo as the growth over the
home right after sign-up, so the guests' own runs are not charged to the photos. Target
(issue 16): Dagster's storage <= 20 KB a photo.

`--instances` compares instance configurations side by side in one run: `after` is the embedded
default as the repository writes it (orchestration/runner/instance.py), `before` the same without
its event log storage and tick retention (Dagster's default: per-run SQLite event-log shards beside
an index), written into the home's dagster.yaml before the first command. Archiving is this tree's
in both (partitions, finished runs, their check executions and captured logs, then VACUUM). The
CPU per photo of each `picsaris process` (wait4, with its workers) is printed beside the totals:
the event log's writes are part of it.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from collections import Counter
from pathlib import Path

import _support as bench
import yaml
from instance_scale import cpu_of


def before_yaml() -> str:
    """The embedded default's dagster.yaml before the storage work: Dagster's default SQLite event
    log (history/runs/index.db plus one history/runs/<run id>.db per run), no tick retention."""
    from picsaris_pipeline.orchestration.runner.instance import _INSTANCE_YAML

    config = yaml.safe_load(_INSTANCE_YAML)
    for key in ("event_log_storage", "retention"):
        config.pop(key, None)
    return yaml.safe_dump(config)


def _checkpoint(path: Path) -> None:
    """Fold a SQLite file's write-ahead log into it, so the sizes are what the data needs."""
    if path.suffix == ".db" and path.stat().st_size:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def dagster_part(relative: Path) -> str:
    """Which part of Dagster's storage a file of the instance directory belongs to."""
    parts = relative.parts
    name = relative.name.split(".db")[0]
    if parts[0] == "history" and name == "runs" and len(parts) == 2:
        return "runs (history/runs.db)"
    if parts[0] == "history" and len(parts) == 3 and parts[1] == "runs":
        return "event log index" if name == "index" else "per-run event logs"
    if parts[0] == "history":
        return "event log (consolidated)"
    if parts[0] == "schedules":
        return "schedules and ticks"
    if parts[0] == "storage":
        return "compute logs (storage/)"
    return "other"


def sizes(h: bench.Home) -> Counter[str]:
    """Bytes on disk by store (and, for Dagster, by part)."""
    found: Counter[str] = Counter()
    for path in h.root.rglob("*"):
        if path.is_file() and path.suffix == ".db":
            _checkpoint(path)
    for path in h.root.rglob("*"):
        if not path.is_file() and not path.is_dir():
            continue
        relative = path.relative_to(h.root)
        if path.is_dir() and len(relative.parts) == 1:
            continue  # the stores' own folders
        size = path.stat().st_blocks * 512  # on disk: a file's whole blocks
        if relative.parts[0] == "dagster":
            if relative.name == "dagster.yaml":
                continue
            found[f"dagster: {dagster_part(relative.relative_to('dagster'))}"] += size
            found["dagster (total)"] += size
        elif relative.parts[0] == "bucket":
            found["bucket"] += size
        elif relative.name.startswith("picsaris.db"):
            found["app database"] += size
    return found


def one_instance(kind: str, photos: list[bench.BenchPhoto], root: Path) -> tuple[dict[str, Counter[str]], float]:
    """Sizes after sign-up, after `picsaris process` and after archiving, for one configuration, and
    the CPU seconds per photo of that `picsaris process` (the event log's writes are in it)."""
    with bench.home(root / kind) as h:
        if kind == "before":
            h.dagster_home.mkdir(parents=True, exist_ok=True)
            (h.dagster_home / "dagster.yaml").write_text(before_yaml())
        event = bench.sign_up(h, f"storage: {kind}")
        signed_up = sizes(h)
        bench.note(f"{kind}: uploading and processing {len(photos)} photos")
        h.picsaris("upload", event.id, "--uploader", event.guests["Barack Obama"], *(str(p.path) for p in photos))
        cpu = cpu_of([str(bench.BIN / "picsaris"), "process"], h.env, h.root / "process.log")
        processed = sizes(h)
        h.picsaris("event", "archive", event.id)
        archived = sizes(h)
    return {"signed_up": signed_up, "processed": processed, "archived": archived}, cpu / len(photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=48, help="photos in the event (default 48)")
    parser.add_argument("--instances", default="before,after", help="comma-separated: before, after")
    parser.add_argument("--shared", type=Path, default=bench.FACES, help="the shared photos (MANIFEST.csv)")
    args = parser.parse_args()
    kinds = [k for k in args.instances.split(",") if k]
    if unknown := set(kinds) - {"before", "after"}:
        raise SystemExit(f"--instances: unknown {', '.join(sorted(unknown))}")
    bench.FACES = args.shared

    print(f"tree: {bench.git_state()}; machine: {bench.machine()}")
    with tempfile.TemporaryDirectory(prefix="picsaris-bench-") as tmp:
        photos = bench.make_photos(args.photos, Path(tmp) / "photos", args.shared)
        measured = {kind: one_instance(kind, photos, Path(tmp)) for kind in kinds}
    results = {kind: sizes_of for kind, (sizes_of, _) in measured.items()}

    n = len(photos)
    print(f"photos: {n}  ({bench.describe_photos(photos)})")
    rows_keys = sorted({key for r in results.values() for stage in r.values() for key in stage})
    headers = ["store (KB per photo)"]
    for kind in kinds:
        headers += [f"{kind}: processed", f"{kind}: archived"]
    rows = []
    for key in rows_keys:
        row: list[object] = [key]
        for kind in kinds:
            base = results[kind]["signed_up"][key]
            for stage in ("processed", "archived"):
                row.append((results[kind][stage][key] - base) / n / 1024)
        rows.append(row)
    title = "storage growth per photo over the home after sign-up (target: dagster (total) <= 20 KB)"
    print(bench.table(headers, rows, title))
    # Archiving also removes the guests' own runs (sign-up), so a growth below zero is possible:
    # the whole of Dagster's storage at each stage says what is left.
    stages = ("signed_up", "processed", "archived")
    totals = [
        [kind, *(results[kind][stage]["dagster (total)"] / 1024 for stage in stages), measured[kind][1]]
        for kind in kinds
    ]
    print()
    headers = ["instance", "after sign-up KB", "processed KB", "archived KB", "process CPU s/photo"]
    print(bench.table(headers, totals, "Dagster's storage in all"))


if __name__ == "__main__":
    sys.exit(main())
