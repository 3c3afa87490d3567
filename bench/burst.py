"""Burst: 100 photos at once from several uploaders through dagster-webserver + dagster-daemon, then
guests who send a single photo each while the burst drains; side by side with the bare face work on
the same 100 photos split across two processes (the best two cores can do).

    .venv/bin/python bench/burst.py [--split 60,25,15] [--singles 3] [--single-gap 5] [options]

Every upload goes through intake with PICSARIS_DAGSTER_URL set (request -> PUT -> complete, which
launches the photo's run on the webserver, or queues it for the batch sensor when its uploader has
another photo waiting; --no-batches: always its own run), each burst uploader in its own thread
sending its photos back to back. The run queue is the repository's deploy/dagster.yaml (at most 4 runs,
1 per uploader, the face_engine pool) on a SQLite instance under a temporary DAGSTER_HOME (--dagster-postgres: the same
file on its own Postgres database). The single-photo guests start right after the last burst upload
completed, one every --single-gap seconds.

Prints the time from the first burst upload until all 100 are published, its ratio to the bare
two-core time (target <= 1.2x), each uploader's waits, each single photo's wait from upload complete
to published (target <= 10 s) with where it went, the most runs seen at once, and the peak RSS of
the run processes (target <= 1 GiB).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import _support as bench


def overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at the same moment."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda p: (p[0], p[1]))
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="60,25,15", help="burst photos per uploader (default 60,25,15: 100)")
    parser.add_argument("--singles", type=int, default=3, help="guests sending one photo after the burst (3)")
    parser.add_argument("--single-gap", type=float, default=5.0, help="seconds between the single photos (5)")
    parser.add_argument("--instance", choices=("production", "embedded"), default="production")
    parser.add_argument(
        "--run-queue",
        default="default",
        help="run_queue settings: 'default', '<seconds>' (dequeue_interval_seconds), '<seconds>+threads' or "
        "'threads' (dequeue_use_threads); add '+fresh' or '+dagster' for a fresh process per run instead of "
        "dagster.yaml's warm forks",
    )
    parser.add_argument(
        "--no-batches",
        action="store_true",
        help="every upload launches its own run (intake never queues a photo for the batch sensor)",
    )
    parser.add_argument("--bare1", action="store_true", help="also time the bare face work on one core")
    parser.add_argument("--app-postgres", action="store_true", help="application database on the local Postgres")
    bench.add_service_options(parser, timeout=1800, drained="the burst")
    args = parser.parse_args()
    bench.FACES = args.shared
    split = [int(n) for n in args.split.split(",") if n]
    queue = bench.RunQueue.parse(args.run_queue)
    total = sum(split)

    print(f"tree: {bench.git_state()}; machine: {bench.machine()}")
    with tempfile.TemporaryDirectory(prefix="picsaris-bench-") as tmp:
        root = Path(tmp)
        photos = bench.make_photos(total + args.singles, root / "photos", args.shared)
        burst, singles = photos[:total], photos[total:]
        # Deal the burst out like cards, so every uploader sends a mix of faces, groups and no-face photos.
        shares = [[p for i, p in enumerate(burst) if i % len(split) == k] for k in range(len(split))]
        for k in range(len(split)):  # then even out to the requested counts
            while len(shares[k]) > split[k]:
                shares[min(range(len(split)), key=lambda j: len(shares[j]) - split[j])].append(shares[k].pop())

        bench.note(f"bare face work on the {total} burst photos, two processes")
        bare2 = bench.bare_parallel([p.path for p in burst], 2)
        bare1 = bench.bare_loop([p.path for p in burst]) if args.bare1 else None

        burst_names = [f"Burst guest {k + 1} ({n} photos)" for k, n in enumerate(split)]
        single_names = [f"Single guest {k + 1}" for k in range(args.singles)]
        with bench.home(root / "home", args.app_postgres, bench.parse_env(args.env)) as h:
            event = bench.sign_up(h, "burst", burst_names + single_names)
            with bench.dagster_services(h, root / "logs", args.instance, args.dagster_postgres, queue) as services:
                from picsaris_pipeline.orchestration.launcher import DagsterLauncher

                app = h.app()
                launcher = DagsterLauncher(services.url)
                by_uploader: dict[str, list[bench.Upload]] = {name: [] for name in burst_names}
                errors: list[BaseException] = []

                def send(name: str, share: list[bench.BenchPhoto]) -> None:
                    try:
                        for photo in share:
                            by_uploader[name].append(
                                bench.upload(
                                    app, launcher, event.id, event.guests[name], photo.path, not args.no_batches
                                )
                            )
                    except BaseException as error:  # reported after the threads joined
                        errors.append(error)

                with bench.RssSampler(services.root_pids) as rss:
                    bench.note(f"burst: {total} photos from {len(split)} uploaders at once")
                    burst_start = time.time()
                    threads = [
                        threading.Thread(target=send, args=(name, share))
                        for name, share in zip(burst_names, shares, strict=True)
                    ]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    if errors:
                        raise SystemExit(f"a burst upload failed: {errors[0]!r}")
                    uploads_done = time.time()
                    bench.note(
                        f"burst uploaded in {uploads_done - burst_start:.1f} s; now {args.singles} single photos"
                    )
                    single_uploads = bench.steady_uploads(
                        app,
                        launcher,
                        event.id,
                        [event.guests[n] for n in single_names],
                        [p.path for p in singles],
                        1 / args.single_gap if args.single_gap > 0 else 1000.0,
                    )
                    everything = [u for ups in by_uploader.values() for u in ups] + single_uploads
                    outcomes = bench.wait_terminal(app, event.id, [u.photo_id for u in everything], args.timeout)
                all_runs = bench.run_times(h.dagster_home, services.env, event.id)
                runs = {r.photo_id: r for r in all_runs}
                run_rss = rss.peak_mib("run")
            if args.keep_logs:
                bench.keep_dir(root / "logs", args.keep_logs)

    burst_uploads = [u for ups in by_uploader.values() for u in ups]
    published = {i: o.at for i, o in outcomes.items() if o.status == "published"}
    not_published = {i: o.status for i, o in outcomes.items() if o.status != "published"}
    drained = max(published[u.photo_id] for u in burst_uploads if u.photo_id in published) - burst_start
    spans = {r.run_id: (r.started, r.ended) for r in all_runs if r.started and r.ended}  # one per run
    intervals = list(spans.values())

    print(f"burst: {total} photos from {len(split)} uploaders ({bench.describe_photos(burst)})")
    print(
        f"instance: {args.instance} run queue (dequeued {queue.label}), "
        f"intake {'one run per photo' if args.no_batches else 'queues bursts for batch runs'}, "
        f"Dagster storage {'Postgres' if args.dagster_postgres else 'SQLite'}, "
        f"app DB {'Postgres' if args.app_postgres else 'SQLite'}"
    )
    rows = [["bare face work, two processes", bare2, total / bare2, "1.00x"]]
    if bare1 is not None:
        rows.append(["bare face work, one core", bare1, total / bare1, f"{bare1 / bare2:.2f}x"])
    rows.append(["burst through webserver + daemon", drained, total / drained, f"{drained / bare2:.2f}x"])
    print()
    print(bench.table(["", "seconds", "photos/s", "vs bare 2-core"], rows, "burst drain (target <= 1.20x bare 2-core)"))

    uploader_rows = []
    for name, ups in by_uploader.items():
        waits = [published[u.photo_id] - u.put_done for u in ups if u.photo_id in published]
        last = max((published[u.photo_id] for u in ups if u.photo_id in published), default=float("nan"))
        s = bench.summary(waits)
        uploader_rows.append([name, f"{len(waits)}/{len(ups)}", s["p50"], s["max"], last - burst_start])
    print()
    print(
        bench.table(
            ["uploader", "published", "wait p50 s", "wait max s", "last published at s"],
            uploader_rows,
            "burst uploaders (wait = upload complete -> published; times from the first burst upload)",
        )
    )

    single_rows = []
    for name, u in zip(single_names, single_uploads, strict=True):
        run = runs.get(u.photo_id)
        pub = published.get(u.photo_id)
        wait = pub - u.put_done if pub else float("nan")
        parts = [float("nan")] * 4
        if run and run.launched and run.started and pub:
            parts = [
                run.created - u.put_done,
                run.launched - run.created,
                run.started - run.launched,
                pub - run.started,
            ]
        single_rows.append([name, u.put_done - burst_start, wait, *parts])
    worst = max((r[2] for r in single_rows if r[2] == r[2]), default=float("nan"))
    print()
    print(
        bench.table(
            ["single guest", "sent at s", "wait s", "launch", "queue", "proc start", "-> published"],
            single_rows,
            f"single photos while the burst drains (worst wait {worst:.2f} s; target <= 10 s)",
        )
    )
    queued = [r.launched - r.created for r in runs.values() if r.launched]
    starts = [r.started - r.launched for r in runs.values() if r.started and r.launched]
    bodies = [r.ended - r.started for r in runs.values() if r.ended and r.started]
    print()
    print(
        f"runs: {len({r.run_id for r in runs.values()})} for {len(runs)} photos; at most {overlap(intervals)} "
        f"running at once; medians: queue {statistics.median(queued) if queued else float('nan'):.2f} s, "
        f"process start {statistics.median(starts) if starts else float('nan'):.2f} s, "
        f"run {statistics.median(bodies) if bodies else float('nan'):.2f} s"
    )
    repeated = sum(1 for count in Counter(r.photo_id for r in all_runs).values() if count > 1)
    if repeated:
        print(f"{repeated} photo(s) ran more than once")
    print(f"peak RSS of a run process: {run_rss[1]:.0f} MiB over {run_rss[0]} run processes (target <= 1024 MiB)")
    print(
        f"burst uploads took {uploads_done - burst_start:.1f} s, each: {bench.upload_phases(burst_uploads)}; "
        f"singles: {bench.upload_phases(single_uploads)}"
    )
    if not_published:
        print(f"not published: {not_published}")


if __name__ == "__main__":
    sys.exit(main())
