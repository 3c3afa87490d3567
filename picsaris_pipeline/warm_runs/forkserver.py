"""The warm run worker: one long-lived process that has already imported Dagster and the code
location and loaded the face models, and forks a child per run.

A run launched the default way starts a fresh interpreter that imports Dagster and the code
location (~1.3-2 s of CPU) and loads the dlib models (~0.8 s) before it does ~0.35 s of face work.
A forked child inherits all of that, copy-on-write, and starts in milliseconds: the same idea as
Immich's long-lived ML service or gunicorn's `--preload`, without a network hop for the pixels.

Protocol, one JSON object per line. Requests on stdin: {"run_id": ..., "instance_ref": ...} (the
serialized InstanceRef). Answers on stdout: {"run_id": ..., "pid": ...} or {"run_id": ..., "error":
...}. The parent stays single-threaded and never opens a database connection, so forking it is
safe; each child builds its own instance from the ref and exits with the run's exit code.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import sys
import threading
import time
from typing import Any

logger = logging.getLogger("picsaris.warm_runs")

READY = "ready"


def preload() -> dict[str, Any]:
    """Everything a photo run would otherwise import or load first. Returns what was warmed, for
    the log line the launcher prints."""
    started = time.perf_counter()
    import dagster  # noqa: F401  (the import itself is what is being paid for here)

    from picsaris_pipeline import definitions
    from picsaris_pipeline.orchestration.dagster_internals import preload_run_worker

    preload_run_worker()
    from picsaris_pipeline.faces.registry import engine_class
    from picsaris_pipeline.settings import Settings

    definitions.defs.get_repository_def()  # builds every asset, job and sensor once
    settings = Settings.from_env()
    warmed: dict[str, Any] = {"engine": settings.face_engine}
    model = engine_class(settings.face_engine).preload(settings)
    if model is not None:
        warmed["model"] = model
    warmed["seconds"] = round(time.perf_counter() - started, 2)
    return warmed


def _run_child(run_id: str, instance_ref_json: str) -> int:
    """In the forked child: execute the run exactly as `dagster api execute_run` does."""
    from dagster import DagsterInstance, deserialize_value

    from picsaris_pipeline.orchestration.dagster_internals import (
        InstanceRef,
        capture_interrupts,
        execute_run_in_this_process,
    )
    from picsaris_pipeline.orchestration.partition_snapshot import one_read_per_run

    with capture_interrupts():  # SIGINT (terminate) becomes Dagster's clean run cancellation
        instance_ref = deserialize_value(instance_ref_json, InstanceRef)
        with DagsterInstance.from_ref(instance_ref) as instance, one_read_per_run():
            return execute_run_in_this_process(run_id, instance)


def _fork_run(request: dict[str, Any]) -> int:
    """Fork a child for one run; returns its pid in the parent (the child never returns)."""
    if threading.active_count() != 1:
        # A lock held by another thread at fork time would stay held forever in the child.
        raise RuntimeError(f"the warm worker has {threading.active_count()} threads; refusing to fork")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.dup2(2, 1)  # stdout is the protocol pipe: the run's prints go to the log with stderr
        os.setpgid(0, 0)  # its own group, so a terminate never reaches the worker or its siblings
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # SIGINT stays ignored (inherited) until the run installs Dagster's interrupt capture.
        code = _run_child(str(request["run_id"]), str(request["instance_ref"]))
    except BaseException:
        logging.getLogger("picsaris.warm_runs").exception("run %s failed in its worker", request.get("run_id"))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(children: dict[int, str]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        run_id = children.pop(pid, "?")
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            logger.warning("run %s: worker %d exited with %d", run_id, pid, code)


def _answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def serve() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s picsaris warm worker %(levelname)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher ends it by closing stdin
    warmed = preload()
    _answer({READY: True, "pid": os.getpid(), **warmed})
    children: dict[int, str] = {}
    stdin = sys.stdin.buffer
    pending = b""
    while True:
        readable, _, _ = select.select([stdin], [], [], 0.2)
        _reap(children)
        if not readable:
            continue
        chunk = os.read(stdin.fileno(), 65536)
        if not chunk:
            break  # the launcher went away or asked us to stop: running children carry on
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if not line.strip():
                continue
            request = json.loads(line)
            try:
                pid = _fork_run(request)
            except Exception as error:  # reported to the launcher, which fails the launch clearly
                _answer({"run_id": request.get("run_id"), "error": f"{type(error).__name__}: {error}"})
                continue
            children[pid] = str(request["run_id"])
            _answer({"run_id": request["run_id"], "pid": pid})
    deadline = time.monotonic() + 5
    while children and time.monotonic() < deadline:  # reap what finishes soon; the rest is orphaned
        _reap(children)
        time.sleep(0.1)


if __name__ == "__main__":
    serve()
