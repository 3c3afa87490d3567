"""The warm run launcher on a real instance: runs fork from one long-lived worker process (which
has already imported the code location and loaded dlib), succeed as normal runs do, can be
terminated, are watched by run monitoring, and fall back to a fresh process when asked."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.launcher.base import WorkerStatus

from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.faces.dlib_engine import DEFAULT_MODEL
from picsaris_pipeline.orchestration.partitions import PHOTO_JOB, PHOTO_PARTITIONS, PHOTO_TAG
from picsaris_pipeline.warm_runs.launcher import WORKER_KIND_TAG, WORKER_PID_TAG, WarmRunLauncher, code_fingerprint
from tests.support.cli_runner import picsaris

FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _instance(home: Path, warm: bool) -> dg.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        "run_launcher:\n"
        "  module: picsaris_pipeline.warm_runs.launcher\n"
        "  class: WarmRunLauncher\n"
        f"  config:\n    warm: {'true' if warm else 'false'}\n"
        "telemetry:\n  enabled: false\n"
    )
    return dg.DagsterInstance.from_config(str(home))


def _photos(shared_photos, names: list[str]) -> list[str]:
    event_id = picsaris("event", "create", "Warm runs").strip()
    obama = picsaris(
        "attendee", "add", event_id, "--name", "Obama", "--selfie", str(shared_photos["obama_1.jpg"].path)
    ).strip()
    picsaris("process")  # Obama's reference
    output = picsaris("upload", event_id, "--uploader", obama, *[str(shared_photos[n].path) for n in names])
    return output.split()


def _launch(instance: dg.DagsterInstance, photo_id: str) -> dg.DagsterRun:
    """What the daemon does with a queued photo run: create it with its code origin, then launch."""
    from picsaris_pipeline.definitions import defs

    recon = ReconstructableRepository.for_module("picsaris_pipeline.definitions", "defs", working_directory=os.getcwd())
    job = defs.resolve_job_def(PHOTO_JOB)
    instance.add_dynamic_partitions(PHOTO_PARTITIONS, [photo_id])
    run = instance.create_run_for_job(
        job_def=job,
        tags={"dagster/partition": photo_id, PHOTO_TAG: photo_id},
        job_code_origin=recon.get_reconstructable_job(PHOTO_JOB).get_python_origin(),
    )
    return instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]


def _wait(instance: dg.DagsterInstance, run_id: str, timeout: float = 180) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while True:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if run.status in FINISHED:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run.status} after {timeout} s"
        time.sleep(0.1)


def test_runs_fork_from_one_warm_worker_and_publish_their_photos(picsaris_home, shared_photos):
    from picsaris_pipeline.orchestration.app import App

    photo_ids = _photos(shared_photos, ["obama_2.jpg", "group_obama_and_biden.jpg", "noface_dog.jpg"])
    app = App.from_env()
    with _instance(picsaris_home / "warm-dagster", warm=True) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, WarmRunLauncher)
        runs = [_launch(instance, photo_id) for photo_id in photo_ids]  # concurrently, like the daemon
        finished = [_wait(instance, run.run_id) for run in runs]
        assert [run.status for run in finished] == [dg.DagsterRunStatus.SUCCESS] * 3
        assert {run.tags[WORKER_KIND_TAG] for run in finished} == {"warm"}
        pids = {int(run.tags[WORKER_PID_TAG]) for run in finished}
        assert len(pids) == 3 and os.getpid() not in pids  # one child per run
        worker = launcher._worker
        assert worker is not None and worker.alive() and worker.process.pid not in pids
        assert worker.ready["model"] == DEFAULT_MODEL  # loaded once, before any run
        # Each run's events name its forked process, as Dagster's run worker reports it.
        started = instance.get_records_for_run(finished[0].run_id).records
        assert any(f"pid: {finished[0].tags[WORKER_PID_TAG]}" in (r.event_log_entry.message or "") for r in started)
        # A child that has exited is not reported as a live worker.
        assert launcher.check_run_worker_health(finished[0]).status is WorkerStatus.FAILED
    statuses = {photo.id: photo.status for photo in app.repo.list_photos(app.repo.get_photo(photo_ids[0]).event_id)}
    assert all(statuses[photo_id] is PhotoStatus.PUBLISHED for photo_id in photo_ids), statuses
    assert worker.process.poll() is not None  # the instance's disposal stopped the worker


def test_a_running_warm_run_is_reported_alive_and_can_be_terminated(picsaris_home, shared_photos):
    (photo_id,) = _photos(shared_photos, ["collage_bald_guys.jpg"])
    with _instance(picsaris_home / "warm-dagster", warm=True) as instance:
        launcher = instance.run_launcher
        run = _launch(instance, photo_id)
        run = instance.get_run_by_id(run.run_id)
        assert run is not None
        assert launcher.check_run_worker_health(run).status is WorkerStatus.RUNNING
        assert launcher.terminate(run.run_id)
        ended = _wait(instance, run.run_id)
        assert ended.status is dg.DagsterRunStatus.CANCELED
        assert not launcher.terminate(run.run_id)  # already finished: nothing to do


def test_warm_false_starts_a_fresh_process_per_run(picsaris_home, shared_photos):
    (photo_id,) = _photos(shared_photos, ["obama_3.jpg"])
    with _instance(picsaris_home / "fresh-dagster", warm=False) as instance:
        run = _wait(instance, _launch(instance, photo_id).run_id)
        assert run.status is dg.DagsterRunStatus.SUCCESS
        assert run.tags[WORKER_KIND_TAG] == "fresh"
        assert instance.run_launcher._worker is None


def test_the_code_fingerprint_changes_with_any_source_file(tmp_path):
    package = tmp_path / "package"
    (package / "assets").mkdir(parents=True)
    source = package / "assets" / "photos.py"
    source.write_text("A = 1\n")
    before = code_fingerprint(package)
    assert code_fingerprint(package) == before
    stamp = source.stat().st_mtime_ns + 5_000_000_000
    os.utime(source, ns=(stamp, stamp))
    assert code_fingerprint(package) != before  # edited
    edited = code_fingerprint(package)
    (package / "new_module.py").write_text("")
    os.utime(package / "new_module.py", ns=(stamp - 10**10, stamp - 10**10))
    assert code_fingerprint(package) != edited  # a file added, even with an older mtime


@pytest.mark.parametrize("bad", ["yes please", 3])
def test_the_launcher_config_is_validated(tmp_path, bad):
    home = tmp_path / "bad"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f"run_launcher:\n  module: picsaris_pipeline.warm_runs.launcher\n  class: WarmRunLauncher\n"
        f"  config:\n    warm: {bad!r}\n"
    )
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.DagsterInstance.from_config(str(home)).run_launcher  # noqa: B018


def test_the_warm_worker_keeps_opencv_sequential_so_its_children_cannot_inherit_a_held_pool_lock(
    picsaris_home, tmp_path
):
    # OpenCV's thread pool is native threads the fork guard cannot count; a child forked while one
    # held the pool's mutex hung in YuNet's detect. The worker's warm-up must leave OpenCV sequential.
    import subprocess
    import sys

    script = (
        "from picsaris_pipeline.warm_runs.forkserver import preload; import cv2; preload(); print(cv2.getNumThreads())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=os.environ.copy(), timeout=300
    )
    assert result.stdout.strip().splitlines()[-1] == "1"
