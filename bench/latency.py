"""Latency: photos arriving at a steady rate through dagster-webserver + dagster-daemon, timed from
"upload complete" to `published` and to the realtime message, per photo.

    .venv/bin/python bench/latency.py [--photos 30] [--rates 1] [--paths intake,sensor] [options]

Paths (one pass each, in the same run, on the same webserver and daemon; with several --rates or
--run-queues, one intake pass per rate and per run queue, then the sensor pass at the first ones):
  intake  request -> PUT -> complete_upload with PICSARIS_DAGSTER_URL set: completing launches the
          photo's run on the webserver (addDynamicPartition + launchRun), as the upload API does
  sensor  request -> PUT -> complete_upload without a launcher: nobody announces the photo, and the
          daemon's bucket_sensor (every 15 s) finds it and requests its run

"Upload complete" is the moment the PUT returned (the phone then calls complete at once, so the
launch is inside the latency). `published` is the photo row's own updated_at, written with the status,
so polling adds no error. The realtime message: with --app-postgres the pipeline publishes with
PICSARIS_REALTIME=pg_notify and this script LISTENs, recording when each photo's event-gallery
message arrives (what a client would see); on SQLite it is the outbox's `sent_at` (when the log
publisher took the message), which is the same moment minus the network.

Each run's time is split with the instance's own records: launch (upload complete -> run enqueued),
queue (enqueued -> launched by the daemon's run queue), process start (launched -> RUN_START: a new
process imports Dagster and the code location), published (RUN_START -> photo published), and the
run's tail after publishing. Targets at 1 photo/s: p50 <= 2 s, p95 <= 5 s; peak RSS per run <= 1 GiB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import _support as bench


@dataclass
class PassResult:
    name: str
    uploads: list[bench.Upload]
    outcomes: dict[str, bench.Outcome]
    realtime: dict[str, float]
    runs: list[bench.RunTimes]
    run_rss: tuple[int, float]
    arrival_seconds: float


def run_pass(
    name: str,
    path: str,
    h: bench.Home,
    services: bench.DagsterServices,
    event: bench.Event,
    uploaders: list[str],
    photos: list[bench.BenchPhoto],
    warmup: list[bench.BenchPhoto],
    rate: float,
    args: argparse.Namespace,
    listener: bench.NotifyListener | None,
) -> PassResult:
    from picsaris_pipeline.orchestration.launcher import DagsterLauncher

    app = h.app()
    launcher = DagsterLauncher(services.url) if path.startswith("intake") else None
    batches = path != "intake-single"  # intake-single: every photo its own run, as before batch runs
    if warmup:
        bench.note(f"{name}: {len(warmup)} warm-up photo(s), not counted")
        ups = [bench.upload(app, launcher, event.id, uploaders[0], p.path) for p in warmup]
        bench.wait_terminal(app, event.id, [u.photo_id for u in ups], timeout=args.timeout)
    bench.note(f"{name}: {len(photos)} photos at {rate:g}/s from {len(uploaders)} uploaders")
    with bench.RssSampler(services.root_pids) as rss:
        start = time.monotonic()
        uploads = bench.steady_uploads(app, launcher, event.id, uploaders, [p.path for p in photos], rate, batches)
        arrival = time.monotonic() - start
        outcomes = bench.wait_terminal(app, event.id, [u.photo_id for u in uploads], timeout=args.timeout)
        if listener is not None:
            time.sleep(0.5)  # the last notification is on its way
    ids = {u.photo_id for u in uploads}
    realtime = dict(listener.heard) if listener is not None else bench.outbox_sent_at(app, ids)
    runs = [r for r in bench.run_times(h.dagster_home, services.env, event.id) if r.photo_id in ids]
    return PassResult(name, uploads, outcomes, realtime, runs, rss.peak_mib("run"), arrival)


def report(result: PassResult) -> tuple[list, list]:
    published = {u.photo_id: result.outcomes[u.photo_id].at - u.put_done for u in result.uploads if _ok(result, u)}
    to_realtime = [result.realtime[i] - u.put_done for u in result.uploads if (i := u.photo_id) in result.realtime]
    other = [result.outcomes[u.photo_id].status for u in result.uploads if not _ok(result, u)]
    lat = bench.summary(list(published.values()))
    rt = bench.summary(to_realtime)
    runs_by_photo = {r.photo_id: r for r in result.runs}

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def parts(u: bench.Upload) -> list[float] | None:
        run = runs_by_photo.get(u.photo_id)
        if run is None or run.launched is None or run.started is None or u.photo_id not in published:
            return None
        pub = result.outcomes[u.photo_id].at
        return [
            run.created - u.put_done,
            run.launched - run.created,
            run.started - run.launched,
            pub - run.started,
            (run.ended or pub) - pub,
        ]

    split = [p for u in result.uploads if (p := parts(u)) is not None]
    latency_row = [
        result.name,
        f"{len(published)}/{len(result.uploads)}" + (f" ({', '.join(sorted(set(other)))})" if other else ""),
        lat["p50"],
        lat["p95"],
        lat["max"],
        rt["p50"],
        rt["p95"],
        rt["max"],
        f"{result.run_rss[1]:.0f}",
    ]
    split_row = [result.name, len(split), *(median([p[i] for p in split]) for i in range(5))]
    return latency_row, split_row


def slowest(result: PassResult, count: int = 3) -> str:
    """The slowest photos' latency split: where a tail comes from."""
    runs = {r.photo_id: r for r in result.runs}
    waits = sorted(
        ((result.outcomes[u.photo_id].at - u.put_done, u) for u in result.uploads if _ok(result, u)),
        key=lambda item: item[0],
        reverse=True,
    )
    described = []
    for wait, upload in waits[:count]:
        run = runs.get(upload.photo_id)
        if run is None or run.launched is None or run.started is None:
            described.append(f"{wait:.2f} s (run not found)")
            continue
        described.append(
            f"{wait:.2f} s = launch {run.created - upload.put_done:.2f} + queue {run.launched - run.created:.2f}"
            f" + start {run.started - run.launched:.2f} + steps {result.outcomes[upload.photo_id].at - run.started:.2f}"
            f" ({run.photos} photo(s) in its run)"
        )
    return "; ".join(described)


def _ok(result: PassResult, u: bench.Upload) -> bool:
    outcome = result.outcomes.get(u.photo_id)
    return outcome is not None and outcome.status == "published"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=30, help="photos per pass (default 30)")
    parser.add_argument(
        "--rates", default="1", help="arrivals per second, one intake pass each, comma-separated (default 1)"
    )
    parser.add_argument(
        "--paths",
        default="intake,sensor",
        help="comma-separated: intake, intake-single (every photo its own run: intake never queues one for "
        "a batch), sensor",
    )
    parser.add_argument("--uploaders", type=int, default=6, help="guests uploading in turn (default 6)")
    parser.add_argument(
        "--instance",
        choices=("production", "embedded"),
        default="production",
        help="the repository's deploy/dagster.yaml run queue (4 runs, 1 per uploader; default) or the embedded "
        "default's (2 runs)",
    )
    parser.add_argument(
        "--run-queues",
        default="default",
        help="run_queue settings, one intake pass each, comma-separated: 'default' (Dagster's: every 5 s, one "
        "launch after another), '<seconds>' (dequeue_interval_seconds), '+threads' (dequeue_use_threads), e.g. "
        "'default,1,1+threads'; add '+fresh' for a new process per run (WarmRunLauncher warm: false) or "
        "'+dagster' for Dagster's DefaultRunLauncher, e.g. '1+dagster,1'; the daemon restarts between them; "
        "the sensor pass uses the first",
    )
    parser.add_argument("--warmup", type=int, default=1, help="warm-up photos before each pass (not counted)")
    parser.add_argument("--app-postgres", action="store_true", help="app DB on the local Postgres, pg_notify + LISTEN")
    bench.add_service_options(parser, timeout=900, drained="a pass")
    args = parser.parse_args()
    bench.FACES = args.shared
    paths = [p for p in args.paths.split(",") if p]
    if set(paths) - {"intake", "intake-single", "sensor"}:
        parser.error("--paths takes intake, intake-single and/or sensor")
    queues = [bench.RunQueue.parse(v) for v in args.run_queues.split(",") if v]
    rates = [float(v) for v in args.rates.split(",") if v]
    passes = [(p, q, r) for r in rates for q in queues for p in ("intake-single", "intake") if p in paths]
    passes += [("sensor", queues[0], rates[0])] if "sensor" in paths else []

    print(f"tree: {bench.git_state()}; machine: {bench.machine()}")
    with tempfile.TemporaryDirectory(prefix="picsaris-bench-") as tmp:
        root = Path(tmp)
        per_pass = args.photos + args.warmup
        photos = bench.make_photos(per_pass * len(passes), root / "photos", args.shared)
        extra = [f"Uploader {i + 1}" for i in range(max(0, args.uploaders - len(bench.SELFIES)))]
        results = []
        with bench.home(root / "home", args.app_postgres, bench.parse_env(args.env)) as h:
            event = bench.sign_up(h, "latency", extra)
            uploaders = list(event.guests.values())[: args.uploaders]
            with bench.dagster_services(
                h, root / "logs", args.instance, args.dagster_postgres, passes[0][1]
            ) as services:
                listener = bench.NotifyListener(h.env["PICSARIS_DATABASE_URL"]) if args.app_postgres else None
                if listener is not None:
                    listener.__enter__()
                try:
                    for n, (path, queue, rate) in enumerate(passes):
                        if queue != services.queue:
                            bench.note(f"restarting the daemon: run queue {queue.label}")
                            services.restart_daemon(queue)
                        chunk = photos[n * per_pass : (n + 1) * per_pass]
                        name = path + (f" {rate:g}/s" if len(rates) > 1 else "")
                        name += f", queue {queue.label}" if len(queues) > 1 else ""
                        results.append(
                            run_pass(
                                name,
                                path,
                                h,
                                services,
                                event,
                                uploaders,
                                chunk[args.warmup :],
                                chunk[: args.warmup],
                                rate,
                                args,
                                listener,
                            )
                        )
                finally:
                    if listener is not None:
                        listener.__exit__(None, None, None)
            if args.keep_logs:
                bench.keep_dir(root / "logs", args.keep_logs)

    source = "pg_notify heard by LISTEN" if args.app_postgres else "outbox sent_at (log publisher)"
    print(f"photos per pass: {args.photos} at {args.rates}/s ({bench.describe_photos(photos)})")
    print(
        f"instance: {args.instance} run queue, Dagster storage {'Postgres' if args.dagster_postgres else 'SQLite'}, "
        f"app DB {'Postgres' if args.app_postgres else 'SQLite'}; realtime = {source}; run queue "
        f"{queues[0].label}" + (" (intake passes: as named)" if len(queues) > 1 else "")
    )
    rows = [report(r) for r in results]
    print()
    print(
        bench.table(
            ["pass", "published", "p50 s", "p95 s", "max s", "rt p50", "rt p95", "rt max", "RSS/run MiB"],
            [r[0] for r in rows],
            "upload complete -> published, and -> realtime message (targets: p50 <= 2 s, p95 <= 5 s)",
        )
    )
    print()
    print(
        bench.table(
            ["pass", "runs", "launch", "queue", "proc start", "-> published", "run tail"],
            [r[1] for r in rows],
            "where the time went, medians in seconds (upload complete -> enqueued -> launched -> RUN_START "
            "-> published -> run end)",
        )
    )
    for r in results:
        repeated = sum(1 for count in Counter(run.photo_id for run in r.runs).values() if count > 1)
        print(
            f"{r.name}: the {len(r.uploads)} uploads spanned {r.arrival_seconds:.1f} s; {len(r.runs)} runs"
            + (f" ({repeated} photos ran more than once)" if repeated else "")
            + f", {r.run_rss[0]} run processes seen; uploads: {bench.upload_phases(r.uploads)}"
        )
        print(f"{r.name}: slowest {slowest(r)}")


if __name__ == "__main__":
    sys.exit(main())
