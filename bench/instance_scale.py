"""Per-photo cost against the size of the Dagster instance: the same photos through `picsaris process`
on homes whose instance already holds N other photo partitions, side by side in one run.

    .venv/bin/python bench/instance_scale.py [--photos K] [--partitions 1000,120000] [--profile]

Each N gets a fresh embedded-default home: N partitions (26-character ULID-like ids, as earlier
events leave them) are added to the `photos` set first, then K photos composed from ../shared/faces
are uploaded (not timed) and `picsaris process` runs them. Its CPU (user + system of the process and
its reaped children, from wait4) per photo is printed for each N with the ratio to the first N.
Target (issue 16): the largest N within 1.1x of the smallest. With --profile, `picsaris process`
runs once more under cProfile at the largest N (its own run with one worker, so the steps run in
the profiled process; not counted above) and the top 10 functions by cumulative time are printed.
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import _support as bench

CHUNK = 10_000  # partitions added per call: one insert statement per chunk keeps the pre-load quick

# `picsaris process` in this interpreter under cProfile, its stats written to argv[1].
PROFILED_PROCESS = (
    "import cProfile, sys\n"
    "from picsaris_pipeline.cli import main\n"
    "out = sys.argv[1]\n"
    "sys.argv = ['picsaris', 'process']\n"
    "profiler = cProfile.Profile()\n"
    "try:\n"
    "    profiler.runcall(main)\n"
    "except SystemExit:\n"
    "    pass\n"
    "profiler.dump_stats(out)\n"
)


def preload(h: bench.Home, count: int) -> None:
    """Add `count` photo partitions of no photo in the app database, as other events' photos would be."""
    from picsaris_pipeline.domain.ids import new_id
    from picsaris_pipeline.orchestration.partitions import PHOTO_PARTITIONS
    from picsaris_pipeline.orchestration.runner.instance import dagster_instance
    from picsaris_pipeline.settings import Settings

    h.activate()
    instance = dagster_instance(Settings.from_env())
    keys = [new_id() for _ in range(count)]
    for start in range(0, count, CHUNK):
        instance.add_dynamic_partitions(PHOTO_PARTITIONS, keys[start : start + CHUNK])
    instance.dispose()


def cpu_of(command: list[str], env: dict[str, str], log: Path) -> float:
    """CPU seconds (user + system) of `command` and its reaped children."""
    with open(log, "w+b") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            out.seek(0)
            raise SystemExit(f"{' '.join(command[:3])} failed:\n{out.read().decode()[-4000:]}")
    return usage.ru_utime + usage.ru_stime


def one_size(photos: list[bench.BenchPhoto], root: Path, partitions: int, profile: Path | None) -> float:
    """CPU seconds per photo of `picsaris process` on a home pre-loaded with `partitions` partitions."""
    with bench.home(root) as h:
        bench.note(f"N={partitions}: pre-loading the instance")
        preload(h, partitions)
        event = bench.sign_up(h, f"instance scale: {partitions} partitions")
        h.picsaris("upload", event.id, "--uploader", event.guests["Barack Obama"], *(str(p.path) for p in photos))
        bench.note(f"N={partitions}: picsaris process, {len(photos)} photos{' (profiled)' if profile else ''}")
        env = h.env
        if profile:  # one worker: the runs' steps execute in the profiled process
            command = [sys.executable, "-c", PROFILED_PROCESS, str(profile)]
            env = {**h.env, "PICSARIS_WORKERS": "1"}
        else:
            command = [str(bench.BIN / "picsaris"), "process"]
        cpu = cpu_of(command, env, root / "process.log")
    return cpu / len(photos)


def top_lines(stats_file: Path, count: int = 10) -> str:
    """The top `count` of Dagster's own functions by cumulative time (below the CLI's frames, which
    only wrap the whole run), then who calls the read of a whole dynamic partition set, and how often."""
    text = io.StringIO()
    stats = pstats.Stats(str(stats_file), stream=text)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats("dagster/_core", count)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    lines.append("reads of a whole dynamic partition set (instance.get_dynamic_partitions), by first caller outside")
    lines.append("Dagster's partition plumbing (calls, cumulative s):")
    for origin, (calls, seconds) in sorted(_read_origins(stats).items(), key=lambda item: -item[1][1]):
        lines.append(f"  {calls:5d} {seconds:7.2f}  {origin}")
    return "\n".join(lines)


# Frames that only pass a partition read on: the walk up the callers continues through them.
_PLUMBING = ("dagster/_utils/", "instance/instance.py", "definitions/partitions/", "partitions/context.py")


def _read_origins(stats: pstats.Stats) -> dict[str, tuple[int, float]]:
    """Calls to DagsterInstance.get_dynamic_partitions grouped by the first caller up the stack
    that is not plumbing (_PLUMBING), each with the calls and cumulative seconds it accounts for."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  (pstats keeps its table there)
    reads = [f for f in table if f[2] == "get_dynamic_partitions" and "instance/instance.py" in f[0]]
    origins: dict[str, tuple[int, float]] = {}

    def walk(function: Any, depth: int) -> None:
        for caller, (_, calls, _, cumulative) in table[function][4].items():
            if depth < 8 and any(part in caller[0] for part in _PLUMBING) and caller in table:
                walk(caller, depth + 1)
                continue
            name = f"{caller[0].split('site-packages/')[-1]}:{caller[1]}({caller[2]})"
            seen_calls, seen_seconds = origins.get(name, (0, 0.0))
            origins[name] = (seen_calls + calls, seen_seconds + cumulative)

    for read in reads:
        walk(read, 0)
    return origins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=16, help="photos per size (default 16; 16..48 runs in minutes)")
    parser.add_argument("--partitions", default="1000,120000", help="comma-separated instance sizes to compare")
    parser.add_argument("--shared", type=Path, default=bench.FACES, help="the shared photos (MANIFEST.csv)")
    parser.add_argument("--profile", action="store_true", help="profile `picsaris process` at the largest size")
    args = parser.parse_args()
    sizes = [int(n) for n in args.partitions.split(",") if n]
    bench.FACES = args.shared

    print(f"tree: {bench.git_state()}; machine: {bench.machine()}")
    with tempfile.TemporaryDirectory(prefix="picsaris-bench-") as tmp:
        photos = bench.make_photos(args.photos, Path(tmp) / "photos", args.shared)
        profile = Path(tmp) / "process.prof" if args.profile else None
        per_photo = {n: one_size(photos, Path(tmp) / f"n{n}", n, None) for n in sizes}
        if profile:  # a run of its own: cProfile's overhead stays out of the figures above
            one_size(photos, Path(tmp) / "profiled", max(sizes), profile)
        profiled = top_lines(profile) if profile else ""

    print(f"photos: {len(photos)}  ({bench.describe_photos(photos)})")
    first = per_photo[sizes[0]]
    rows = [[f"{n:,}", cpu, f"{cpu / first:.2f}x"] for n, cpu in per_photo.items()]
    title = f"CPU per photo of `picsaris process` by instance size (target: largest within 1.10x of {sizes[0]:,})"
    print(bench.table(["partitions", "CPU s/photo", "vs first"], rows, title))
    if profile:
        print(f"\nprofile of `picsaris process` at {max(sizes):,} partitions (cProfile, CPU of this process only):")
        print(profiled)


if __name__ == "__main__":
    sys.exit(main())
