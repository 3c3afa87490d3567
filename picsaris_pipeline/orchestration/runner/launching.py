"""One run after another in this process, each claimed first when there are leases."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg

from picsaris_pipeline.orchestration.partition_snapshot import one_read_per_run
from picsaris_pipeline.orchestration.partitions import (
    ATTENDEE_JOB,
)
from picsaris_pipeline.orchestration.runner.claiming import photos_in_other_runs, regrouped
from picsaris_pipeline.orchestration.runner.instance import QUIET_CONSOLE
from picsaris_pipeline.orchestration.runner.reporting import (
    LEFT_TO_OTHERS,
    Outcome,
    WorkItem,
    failed_in_batch,
    failure_message,
)
from picsaris_pipeline.services.leases import ATTENDEE, PHOTO, Claimer


def run_inline(
    instance: dg.DagsterInstance, work: Iterable[WorkItem], common_tags: dict[str, str], claimer: Claimer | None = None
) -> Iterator[Outcome]:
    """Each run of `work` (taken lazily: it may be shared with other processes), in this process.
    With a claimer, only the keys it wins a lease on are run (the rest come back LEFT_TO_OTHERS),
    and each run's leases are released once its outcome is taken."""
    from picsaris_pipeline.definitions import defs

    jobs: dict[str, Any] = {}
    for job_name, keys, tags in work:
        if job_name not in jobs:
            jobs[job_name] = defs.resolve_job_def(job_name)
        runs = [(keys, tags)]
        kind = ATTENDEE if job_name == ATTENDEE_JOB else PHOTO
        if claimer is not None:
            won = claimer.claim(kind, keys)
            if kind == PHOTO and (busy := photos_in_other_runs(instance, won)):
                claimer.release(kind, list(busy))
                won = [key for key in won if key not in busy]
            if len(won) < len(keys):
                yield job_name, tuple(k for k in keys if k not in won), True, LEFT_TO_OTHERS, "", {}
                runs = regrouped(instance, won, tags)
        for run_keys, tags_of_run in runs:
            with one_read_per_run():
                result = jobs[job_name].execute_in_process(
                    partition_key=run_keys[0] if len(run_keys) == 1 else None,
                    instance=instance,
                    raise_on_error=False,
                    run_config=QUIET_CONSOLE,
                    tags={**tags_of_run, **common_tags},  # a batch run's tags carry its range (batched_runs)
                )
            message = "" if result.success else failure_message(result)
            failed = failed_in_batch(result) if result.success and len(run_keys) > 1 else {}
            yield job_name, run_keys, result.success, message, result.run_id, failed
            if claimer is not None:  # after the outcome is recorded (a failed photo is marked failed first)
                claimer.release(kind, run_keys)
