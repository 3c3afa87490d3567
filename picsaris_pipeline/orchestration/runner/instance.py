"""The Dagster instance `picsaris` runs on: $DAGSTER_HOME, else an embedded SQLite one it writes."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from picsaris_pipeline.settings import Settings

# The full event log is in the instance (and the UI); the terminal only needs warnings.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


_INSTANCE_YAML = """\
# Embedded default instance, written by picsaris on first use: SQLite storage under this folder.
# Runs queued by the daemon (./dev ui, backfills) start two at a time: one per core of a laptop.
concurrency:
  runs:
    max_concurrent_runs: 2
run_queue:
  dequeue_interval_seconds: 1
# Runs fork from a worker that has already imported the code location and loaded the face models.
run_launcher:
  module: picsaris_pipeline.warm_runs.launcher
  class: WarmRunLauncher
# One read of the photo partition set per run instead of one per range resolution
# (picsaris_pipeline/orchestration/partition_snapshot.py).
instance_class:
  module: picsaris_pipeline.orchestration.partition_snapshot
  class: PicsarisInstance
# The event log in one SQLite file under this folder (history/event_log.db), not one file per run.
event_log_storage:
  module: picsaris_pipeline.orchestration.embedded_storage
  class: HomeEventLogStorage
# Ticks the daemon purges; an archived event's finished runs are deleted with it.
retention:
  schedule:
    purge_after_days: 30
  sensor:
    purge_after_days:
      skipped: 3
      success: 30
      failure: 30
      started: 30
telemetry:
  enabled: false
"""


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The configured instance: $DAGSTER_HOME if set, else SQLite under $PICSARIS_HOME/dagster."""
    if not os.environ.get("DAGSTER_HOME"):
        home = settings.dagster_home
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text(_INSTANCE_YAML)
        os.environ["DAGSTER_HOME"] = str(home)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()
