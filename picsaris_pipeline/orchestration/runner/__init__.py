"""`picsaris process`: run pending attendees and photos through the asset graph, in this process,
on the configured Dagster instance (so every run shows in the UI afterwards).

Running in this process loads the face models once for all photos instead of once per run.

The parts, by what changes together: `instance` (which Dagster instance), `loop` (what is pending,
batches, `process_pending` and `reembed_pending`), `claiming` (leases and who runs what),
`launching` (one run in this process), `workers` (the spawned worker processes) and `reporting`
(outcomes, the summary, the events' views, imported references).
"""

from picsaris_pipeline.orchestration.runner.claiming import StillPending
from picsaris_pipeline.orchestration.runner.instance import QUIET_CONSOLE, dagster_instance
from picsaris_pipeline.orchestration.runner.loop import (
    MIN_RUNS_PER_WORKER,
    WAIT_FOR_OTHERS_SECONDS,
    default_batch_size,
    default_workers,
    process_pending,
    reembed_pending,
)
from picsaris_pipeline.orchestration.runner.reporting import ImportedReferences, ProcessSummary, Progress

__all__ = [
    "MIN_RUNS_PER_WORKER",
    "QUIET_CONSOLE",
    "WAIT_FOR_OTHERS_SECONDS",
    "ImportedReferences",
    "ProcessSummary",
    "Progress",
    "StillPending",
    "dagster_instance",
    "default_batch_size",
    "default_workers",
    "process_pending",
    "reembed_pending",
]
