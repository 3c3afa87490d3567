"""The Dagster webserver and daemon on a home, with the run queue a benchmark asks for."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import BIN, REPO, free_port, graphql, wait_until_serving
from .figures import note
from .homes import Home, postgres_database


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
    return "# written by bench/_support\n" + yaml.safe_dump(config, sort_keys=False)


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
