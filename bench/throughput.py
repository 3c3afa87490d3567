"""Throughput: the bare face work against the pipeline, side by side in one run on the same photos, so
the ratios hold on a shared, noisy machine.

    .venv/bin/python bench/throughput.py [--photos N] [--paths bare,bare2,process,daemon] [options]

Photos come from ../shared/faces, cycled through every source (single faces, groups, photos
without faces); each repeat is a visibly different variant (mirrored, a plain band on one side, size
and JPEG-quality jitter), so no upload is a byte duplicate or a near-duplicate of another.

Paths, in this order:
  bare     decode, normalise, detect and embed each photo in a plain loop, one core
  bare2    the same split across two fresh processes pulling from one queue (the two-core best case)
  process  `picsaris process` on the embedded default (uploads done first, not timed)
  daemon   dagster-webserver + dagster-daemon: each photo uploaded through intake with
           PICSARIS_DAGSTER_URL set (its run launched on the webserver, as the upload API does),
           timed from the first upload to the last photo `published`

Prints photos/s for each and the ratios pipeline/bare; the target for `picsaris process` is at most
1.0x the bare one-core time. Peak RSS: of the `picsaris process` process (wait4), and of each run
process the daemon starts (its VmHWM, sampled from /proc).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _support as bench

PATHS = ("bare", "bare2", "process", "daemon")


def process_path(photos: list[bench.BenchPhoto], root: Path, extra_env: dict[str, str], app_pg: bool) -> dict:
    """Upload through intake (not timed), then time `picsaris process` (a separate process, as a user runs it)."""
    with bench.home(root, app_pg, extra_env) as h:
        event = bench.sign_up(h, "throughput: picsaris process")
        h.picsaris("upload", event.id, "--uploader", event.guests["Barack Obama"], *(str(p.path) for p in photos))
        bench.note(f"picsaris process: {len(photos)} photos")
        _, elapsed, rss_mib, processes = h.picsaris_measured("process")
        statuses = _statuses(h, event.id)
    return {"seconds": elapsed, "rss_mib": rss_mib, "statuses": statuses, "processes": processes}


def daemon_path(
    photos: list[bench.BenchPhoto], root: Path, args: argparse.Namespace, extra_env: dict[str, str]
) -> dict:
    from picsaris_pipeline.orchestration.launcher import DagsterLauncher

    with bench.home(root, args.app_postgres, extra_env) as h:
        event = bench.sign_up(h, "throughput: webserver + daemon")
        uploader = event.guests["Barack Obama"]
        with bench.dagster_services(
            h, root / "logs", args.instance, args.dagster_postgres, bench.RunQueue.parse(args.run_queue)
        ) as services:
            app = h.app()
            launcher = DagsterLauncher(services.url)
            with bench.RssSampler(services.root_pids) as rss:
                bench.note(f"webserver + daemon: uploading {len(photos)} photos through intake")
                start = time.time()
                uploads = [bench.upload(app, launcher, event.id, uploader, p.path) for p in photos]
                uploaded = time.time() - start
                outcomes = bench.wait_terminal(app, event.id, [u.photo_id for u in uploads], timeout=args.timeout)
            end = max((o.at for o in outcomes.values()), default=time.time())
            runs = bench.run_times(h.dagster_home, services.env, event.id)
            runs_seen, run_rss = rss.peak_mib("run")
            _, server_rss = rss.peak_mib("code server")
        statuses = _statuses(h, event.id)
    bench.keep_dir(root / "logs", args.keep_logs)
    starts = [r.started - r.launched for r in runs if r.started and r.launched]
    bodies = [r.ended - r.started for r in runs if r.ended and r.started]
    return {
        "seconds": end - start,
        "upload_seconds": uploaded,
        "upload_phases": bench.upload_phases(uploads),
        "rss_mib": run_rss,
        "run_processes": runs_seen,
        "code_server_rss_mib": server_rss,
        "runs": len(runs),
        "run_start_median": statistics.median(starts) if starts else float("nan"),
        "run_body_median": statistics.median(bodies) if bodies else float("nan"),
        "statuses": statuses,
    }


def _x(ratio: float) -> str:
    return "-" if ratio != ratio else f"{ratio:.2f}x"


def _statuses(h: bench.Home, event_id: str) -> dict[str, int]:
    rows = json.loads(h.picsaris("photos", event_id, "--format", "json"))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=34, help="photos per path (default 34: each source once)")
    parser.add_argument("--shared", type=Path, default=bench.FACES, help="the shared photos (MANIFEST.csv)")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {','.join(PATHS)}")
    parser.add_argument(
        "--instance",
        choices=("embedded", "production"),
        default="embedded",
        help="daemon path: the embedded default's run queue (2 at a time; default) or the repository's "
        "deploy/dagster.yaml (4 at a time, 1 per uploader: one uploader here, so one at a time)",
    )
    parser.add_argument(
        "--run-queue",
        default="default",
        help="daemon path: run_queue settings, 'default', '<seconds>' (dequeue_interval_seconds), "
        "'<seconds>+threads' or 'threads' (dequeue_use_threads)",
    )
    parser.add_argument("--app-postgres", action="store_true", help="application database on the local Postgres")
    parser.add_argument(
        "--dagster-postgres", action="store_true", help="Dagster instance storage on the local Postgres"
    )
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra pipeline environment")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the daemon path")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the webserver/daemon logs here")
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    if unknown := set(paths) - set(PATHS):
        parser.error(f"unknown paths {sorted(unknown)}")
    bench.FACES = args.shared
    extra_env = bench.parse_env(args.env)

    print(f"tree: {bench.git_state()}; machine: {bench.machine()}")
    with tempfile.TemporaryDirectory(prefix="picsaris-bench-") as tmp:
        photos = bench.make_photos(args.photos, Path(tmp) / "photos", args.shared)
        files = [p.path for p in photos]
        results: dict[str, dict] = {}
        for path in paths:
            bench.note(f"path {path}")
            if path == "bare":
                results[path] = {"seconds": bench.bare_loop(files)}
            elif path == "bare2":
                results[path] = {"seconds": bench.bare_parallel(files, 2)}
            elif path == "process":
                results[path] = process_path(photos, Path(tmp) / "process", extra_env, args.app_postgres)
            else:
                results[path] = daemon_path(photos, Path(tmp) / "daemon", args, extra_env)

    n = len(photos)
    print(f"photos: {n}  ({bench.describe_photos(photos)})")
    labels = {
        "bare": "bare face work, one core, plain loop:",
        "bare2": "bare face work, two processes:       ",
        "process": "pipeline, picsaris process:          ",
        "daemon": "pipeline, webserver + daemon:        ",
    }
    for path in paths:
        s = results[path]["seconds"]
        print(f"{labels[path]} {s:7.2f} s  {n / s:6.2f} photos/s  {s / n:.3f} s/photo")
    if "bare" in results and "process" in results:
        ratio = results["process"]["seconds"] / results["bare"]["seconds"]
        print(
            f"ratio pipeline/bare: {ratio:.2f}x   peak RSS of the process run: {results['process']['rss_mib']:.0f} MiB"
        )

    rows = []
    for path in paths:
        r = results[path]
        vs1 = r["seconds"] / results["bare"]["seconds"] if "bare" in results else float("nan")
        vs2 = r["seconds"] / results["bare2"]["seconds"] if "bare2" in results else float("nan")
        rss = r.get("rss_mib", float("nan"))
        rows.append([path, r["seconds"], n / r["seconds"], _x(vs1), _x(vs2), "-" if rss != rss else f"{rss:.0f}"])
    print()
    print(
        bench.table(
            ["path", "seconds", "photos/s", "vs bare 1-core", "vs bare 2-core", "peak RSS/run MiB"],
            rows,
            "throughput (same photos, same run; targets: process <= 1.00x bare 1-core, RSS <= 1024 MiB)",
        )
    )
    for path in ("process", "daemon"):
        if path in results:
            print(f"{path} statuses: {results[path]['statuses']}")
    if "process" in results:
        print(f"process: {results['process']['processes']} process(es) in its tree (itself and any workers)")
    if "daemon" in results:
        d = results["daemon"]
        print(
            f"daemon: {d['runs']} runs ({args.instance} run queue, dequeued "
            f"{bench.RunQueue.parse(args.run_queue).label}); uploads and launches took {d['upload_seconds']:.1f} s; "
            f"median run process start (launched -> RUN_START) {d['run_start_median']:.2f} s, median run "
            f"(RUN_START -> end) {d['run_body_median']:.2f} s; {d['run_processes']} run processes sampled, "
            f"code servers peak {d['code_server_rss_mib']:.0f} MiB; uploads: {d['upload_phases']}"
        )


if __name__ == "__main__":
    sys.exit(main())
