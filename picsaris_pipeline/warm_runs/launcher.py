"""WarmRunLauncher: a Dagster run launcher for one host (the daemon's) that starts this code
location's runs as forks of a warm worker (forkserver.py) instead of fresh interpreters.

Configured in dagster.yaml (the root one and deploy/dagster.yaml):

    run_launcher:
      module: picsaris_pipeline.warm_runs.launcher
      class: WarmRunLauncher
      config:
        warm: true   # false: a fresh `dagster api execute_run` process per run (the default launcher's cost)

Runs of any other code location, or when the warm worker cannot start, get a fresh process, as
with Dagster's default launcher. The worker is restarted when this package's source changes (a
deploy or an edit under `dagster dev`), so a run never executes stale code. Terminate and run
monitoring work from any process on the host through the run's worker pid tag.

One host only: for runs on other machines use dagster-aws's EcsRunLauncher (deploy/dagster.yaml).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from dagster import DagsterRun, DagsterRunStatus, Field, serialize_value

from picsaris_pipeline.orchestration.dagster_internals import (
    CheckRunHealthResult,
    ConfigurableClass,
    ConfigurableClassData,
    InstanceRef,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
    execute_run_args,
)
from picsaris_pipeline.orchestration.partitions import WORKER_HOST_TAG, WORKER_KIND_TAG, WORKER_PID_TAG

logger = logging.getLogger("picsaris.warm_runs")

CODE_LOCATION_MODULE = "picsaris_pipeline.definitions"
PACKAGE_DIR = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 180.0  # imports and model loads on a cold, busy machine


class LaunchError(RuntimeError):
    pass


def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> tuple[int, int]:
    """(newest mtime, file count) of the package's Python files: changes on any edit or deploy."""
    stamps = [path.stat().st_mtime_ns for path in package_dir.rglob("*.py")]
    return (max(stamps, default=0), len(stamps))


class _WarmWorker:
    """The forkserver process and its pipes; one request at a time under a lock."""

    def __init__(self, executable: str, cwd: str | None) -> None:
        self.fingerprint = code_fingerprint()
        self.process = subprocess.Popen(
            [executable, "-m", "picsaris_pipeline.warm_runs.forkserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the worker's and its runs' logs go where the daemon's go
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C in the daemon's terminal must not cancel runs
        )
        self.ready = self._read(READY_TIMEOUT_SECONDS)
        if not self.ready.get("ready"):
            raise LaunchError(f"the warm run worker did not start: {self.ready}")
        logger.info("warm run worker %s ready: %s", self.process.pid, self.ready)

    def _read(self, timeout: float) -> dict[str, Any]:
        stdout: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            code = self.process.poll()
            raise LaunchError(f"no answer from the warm run worker (exit code {code}) within {timeout:.0f} s")
        return json.loads(result[0])

    def fork(self, run_id: str, instance_ref: str) -> int:
        stdin: IO[bytes] = self.process.stdin  # type: ignore[assignment]
        stdin.write((json.dumps({"run_id": run_id, "instance_ref": instance_ref}) + "\n").encode())
        stdin.flush()
        answer = self._read(30)
        if answer.get("run_id") != run_id or "pid" not in answer:
            raise LaunchError(f"the warm run worker could not start run {run_id}: {answer.get('error', answer)}")
        return int(answer["pid"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.stdin and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # the worker exits; runs it forked carry on
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    def __init__(self, warm: bool = True, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self._warm = warm
        self._lock = threading.Lock()
        self._worker: _WarmWorker | None = None
        self._fresh: dict[str, subprocess.Popen[bytes]] = {}
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            "warm": Field(
                bool,
                default_value=True,
                is_required=False,
                description="Fork runs from a warm worker (false: a fresh interpreter per run).",
            )
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> WarmRunLauncher:
        return cls(warm=bool(config_value.get("warm", True)), inst_data=inst_data)

    # -- launching ----------------------------------------------------------------------------
    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:
            raise LaunchError(f"run {run.run_id} has no code origin to execute")
        pointer = origin.repository_origin.code_pointer
        ours = getattr(pointer, "module", None) == CODE_LOCATION_MODULE
        instance_ref = self._instance.get_ref()
        if self._warm and ours:
            try:
                pid = self._launch_warm(
                    run,
                    serialize_value(instance_ref),
                    origin.executable_path,
                    getattr(pointer, "working_directory", None),
                )
                self._record(run, pid, "warm")
                return
            except (LaunchError, OSError) as error:
                # A broken warm worker must not stop the event: this run pays a fresh start instead.
                logger.warning("warm launch of run %s failed, starting a fresh process: %s", run.run_id, error)
                self._instance.report_engine_event(
                    f"Warm run worker unavailable ({error}); starting a fresh process.", run, cls=self.__class__
                )
        self._launch_fresh(run, instance_ref)

    def _launch_warm(self, run: DagsterRun, instance_ref: str, executable: str, cwd: str | None) -> int:
        with self._lock:
            worker = self._worker
            if worker is not None and (not worker.alive() or worker.fingerprint != code_fingerprint()):
                worker.stop()  # dead, or started before the code last changed
                worker = None
            if worker is None:
                worker = self._worker = _WarmWorker(executable, cwd)
            try:
                return worker.fork(run.run_id, instance_ref)
            except (LaunchError, OSError):
                worker.stop()
                self._worker = None
                raise

    def _launch_fresh(self, run: DagsterRun, instance_ref: InstanceRef) -> None:
        origin = run.job_code_origin
        assert origin is not None
        args = execute_run_args(origin, run.run_id, instance_ref)
        # `python -m dagster` of the code location's own interpreter: a bare `dagster` entry point
        # (the origin's default) need not be on the daemon's PATH.
        command = [origin.executable_path, "-m", "dagster", "api", "execute_run", serialize_value(args)]
        process = subprocess.Popen(command, start_new_session=True)
        with self._lock:
            self._fresh = {run_id: p for run_id, p in self._fresh.items() if p.poll() is None}
            self._fresh[run.run_id] = process
        self._record(run, process.pid, "fresh")

    def _record(self, run: DagsterRun, pid: int, kind: str) -> None:
        self._instance.add_run_tags(
            run.run_id, {WORKER_PID_TAG: str(pid), WORKER_KIND_TAG: kind, WORKER_HOST_TAG: socket.gethostname()}
        )

    # -- after the launch ---------------------------------------------------------------------
    def _worker_pid(self, run_id: str) -> int | None:
        run = self._instance.get_run_by_id(run_id)
        if run is None or WORKER_PID_TAG not in run.tags:
            return None
        return int(run.tags[WORKER_PID_TAG])

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        pid = self._worker_pid(run_id)
        if run.status is DagsterRunStatus.STARTING or pid is None:
            # The run has not begun executing (or has no worker yet): a run worker that finds its run
            # CANCELING at start marks it failed, so stop the worker and record the cancellation here.
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            self._instance.report_run_canceled(run, message="Canceled before its worker started executing.")
            return True
        self._instance.report_run_canceling(run)
        try:
            os.kill(pid, signal.SIGINT)  # as Dagster's code server does: the run cancels itself cleanly
        except ProcessLookupError:
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = self._worker_pid(run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run has no worker pid tag yet")
        if _process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone", run_worker_id=str(pid))

    def dispose(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None


def _process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (an exited child not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): existence is all we can tell
    return state != "Z"
