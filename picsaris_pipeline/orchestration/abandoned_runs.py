"""Runs left STARTED by a process that is gone: a killed `picsaris process` (its runs carry its
lease holder id, whose heartbeat lease runs out) or a killed run worker of the daemon (its runs
carry the worker's pid and host). Such a run never ends by itself; it is marked failed with a
message saying why, and its photos, left on their way (not `failed`), are taken up by the next
`picsaris process` or by the sensors' stale-photo relaunch.

Checked when `picsaris process` starts and by the daemon's `abandoned_run_sensor`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from picsaris_pipeline.orchestration.partitions import ABANDONED_TAG, HOLDER_TAG, WORKER_HOST_TAG, WORKER_PID_TAG
from picsaris_pipeline.services.leases import Claimer, holder_alive
from picsaris_pipeline.warm_runs.launcher import _process_alive

RUN = "run"  # lease kind: whoever marks a run failed holds it, so it is reported once


@dataclass(frozen=True)
class AbandonedRun:
    run_id: str
    job_name: str
    reason: str


def _why_abandoned(record: dg.RunRecord, claimer: Claimer, started_before: float) -> str | None:
    """Why this STARTED run can never finish, or None if it may still be running."""
    run = record.dagster_run
    if holder := run.tags.get(HOLDER_TAG):
        if holder != claimer.holder and not holder_alive(claimer.repo, holder):
            return f"the picsaris process that ran it ({holder}) is gone and its lease ran out"
        return None
    pid, host = run.tags.get(WORKER_PID_TAG), run.tags.get(WORKER_HOST_TAG)
    on_this_host = bool(pid and pid.isdigit() and host == socket.gethostname())
    if on_this_host and (record.start_time or 0) < started_before and not _process_alive(int(str(pid))):
        return f"its run worker process {pid} on {host} is gone"
    return None


def fail_abandoned_runs(instance: dg.DagsterInstance, claimer: Claimer, min_age_seconds: float) -> list[AbandonedRun]:
    """Mark every STARTED run whose process is gone failed (a daemon run worker's only once it
    is older than min_age_seconds, so a run still starting up is never touched)."""
    started_before = (datetime.now(UTC) - timedelta(seconds=min_age_seconds)).timestamp()
    found: list[AbandonedRun] = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        reason = _why_abandoned(record, claimer, started_before)
        if reason is None or not claimer.claim(RUN, [run.run_id]):
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status is not dg.DagsterRunStatus.STARTED:
            continue
        instance.add_run_tags(run.run_id, {ABANDONED_TAG: "true"})
        instance.report_run_failed(
            current, message=f"Run abandoned: {reason}. Marked failed by {claimer.holder}; its work is taken up again."
        )
        found.append(AbandonedRun(run.run_id, run.job_name, reason))
    return found
