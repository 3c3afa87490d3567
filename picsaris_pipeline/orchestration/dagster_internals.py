"""Every private Dagster name (`dagster._*`) the package rests on, in one place.

Written for Dagster 1.13.27 (DAGSTER_VERSION, the `dagster==` pin in pyproject.toml). Private
modules change without notice between releases: tests/unit/test_dagster_internals.py fails when the
installed Dagster is another version, and checks that each name in INTERNALS still resolves. On an
upgrade, check each use below against the new release's source, then change DAGSTER_VERSION.

Why each is needed (Dagster's public API has no run-launcher interface, nor a way to run a run
in the current process):
- RunLauncher, LaunchRunContext, CheckRunHealthResult, WorkerStatus (dagster._core.launcher.base):
  the interface WarmRunLauncher implements: `launch_run(context)`, and `check_run_worker_health`
  answering run monitoring with the worker's status.
- ConfigurableClass, ConfigurableClassData (dagster._serdes): what lets dagster.yaml's
  `run_launcher: {module, class, config}` build WarmRunLauncher from its config.
- InstanceRef (dagster._core.instance.ref): the serialisable pointer to the instance that a run
  process rebuilds its DagsterInstance from (`DagsterInstance.from_ref`); the launcher sends it to
  the warm worker and to `dagster api execute_run`. Also, for orchestration/partition_snapshot.py,
  the default storages (`InstanceRef.config_defaults`) that dagster.yaml's `instance_class` must
  name as its own: Dagster calls `config_schema()` and `config_defaults(base_dir)` on that class.
- ExecuteRunArgs (dagster._grpc.types): the argument of `dagster api execute_run`, the command
  Dagster's default launcher runs, for runs started in a fresh interpreter.
- _execute_run_command_body (dagster._cli.api): the body of `dagster api execute_run`, which a
  forked child calls so that it runs the run exactly as a fresh run process would.
- capture_interrupts (dagster._utils.interrupts): turns the SIGINT of a terminate into Dagster's
  clean run cancellation in the forked child, as `dagster api execute_run` does.
- dagster._cli.api and dagster._core.execution.api are imported ahead by the warm worker (the
  import is the cost each run would otherwise pay).
- JobPythonOrigin (dagster._core.origin): only the type of a run's code origin, in an annotation.
- AssetCheckEvaluationTargetMaterializationData (dagster._core.definitions.asset_checks): outside
  warm_runs/, for assets/outcomes.py: the materialization a per-photo check evaluation logged in a
  batch run is about; without it the UI's partition list shows the evaluation as outdated.
- StepExecutionContext (dagster._core.execution.context.system), its `_metadata_accumulator`, and
  OpExecutionContext's `_step_execution_context`: outside warm_runs/, for assets/boundary.py:
  per-partition metadata in a batch run. The public `add_asset_metadata(..., partition_key=)`
  re-reads the whole `photos` partition set on every call to check the key is in the run's range
  (most of a batch photo's CPU at 120,000 partitions: docs/PERFORMANCE.md); add_partition_metadata checks
  against the range the step resolved once, then records the metadata exactly as it does.
- SqlEventLogStorage, SqliteEventLogStorage (dagster._core.storage.event_log): outside
  warm_runs/, for orchestration/privacy_scrub.py: the event log's databases (the index and, on
  SQLite, each run's shard), whose rows the scrub rewrites; Dagster has no public API for that.
  For orchestration/retention.py too: `delete_run` empties a deleted run's shard but leaves its
  file (~140 KB each) and its asset check executions (AssetCheckExecutionsTable); it deletes
  dynamic partitions one per transaction (DynamicPartitionsTable: many in one); and freed
  SQLite pages stay in the files until a VACUUM; SqlRunStorage's `connect` reaches the run
  storage's database for that VACUUM.
- ConsolidatedSqliteEventLogStorage (dagster._core.storage.event_log) and create_db_conn_string
  (dagster._core.storage.sqlite): orchestration/embedded_storage.py, the embedded default's event log
  in one SQLite file, found from the instance's home (the class itself needs the folder in
  dagster.yaml).

The run worker's entry points are imported when called, not with this module: the launcher is
loaded by every process that opens the production instance.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster import DagsterInstance
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage, SqlEventLogStorage
from dagster._core.storage.sqlite import create_db_conn_string
from dagster._serdes import ConfigurableClass, ConfigurableClassData

if TYPE_CHECKING:
    from dagster._core.origin import JobPythonOrigin
    from dagster._grpc.types import ExecuteRunArgs

DAGSTER_VERSION = "1.13.27"

# (module, name) of each private name used here, for tests/unit/test_dagster_internals.py.
INTERNALS: tuple[tuple[str, str], ...] = (
    ("dagster._core.launcher.base", "RunLauncher"),
    ("dagster._core.launcher.base", "LaunchRunContext"),
    ("dagster._core.launcher.base", "CheckRunHealthResult"),
    ("dagster._core.launcher.base", "WorkerStatus"),
    ("dagster._serdes", "ConfigurableClass"),
    ("dagster._serdes", "ConfigurableClassData"),
    ("dagster._core.instance.ref", "InstanceRef"),
    ("dagster._grpc.types", "ExecuteRunArgs"),
    ("dagster._cli.api", "_execute_run_command_body"),
    ("dagster._utils.interrupts", "capture_interrupts"),
    ("dagster._cli", "api"),
    ("dagster._core.execution", "api"),
    ("dagster._core.origin", "JobPythonOrigin"),  # only as a type annotation
    ("dagster._core.definitions.asset_checks.asset_check_evaluation", "AssetCheckEvaluationTargetMaterializationData"),
    ("dagster._core.execution.context.system", "StepExecutionContext"),
    ("dagster._core.storage.event_log.sql_event_log", "SqlEventLogStorage"),
    ("dagster._core.storage.event_log.sqlite.sqlite_event_log", "SqliteEventLogStorage"),
    ("dagster._core.storage.event_log.schema", "AssetCheckExecutionsTable"),
    ("dagster._core.storage.event_log.schema", "DynamicPartitionsTable"),
    ("dagster._core.storage.runs.sql_run_storage", "SqlRunStorage"),
    ("dagster._core.storage.event_log", "ConsolidatedSqliteEventLogStorage"),
    ("dagster._core.storage.sqlite", "create_db_conn_string"),
)

__all__ = [
    "DAGSTER_VERSION",
    "INTERNALS",
    "AssetCheckEvaluationTargetMaterializationData",
    "CheckRunHealthResult",
    "ConfigurableClass",
    "ConfigurableClassData",
    "ConsolidatedSqliteEventLogStorage",
    "InstanceRef",
    "LaunchRunContext",
    "RunLauncher",
    "SqlEventLogStorage",
    "WorkerStatus",
    "add_partition_metadata",
    "capture_interrupts",
    "compact_sqlite_storage",
    "delete_dynamic_partitions",
    "event_log_connections",
    "execute_run_args",
    "execute_run_in_this_process",
    "forget_deleted_run",
    "preload_run_worker",
    "sqlite_conn_string",
]


def event_log_connections(instance: DagsterInstance) -> Iterator[AbstractContextManager[Any]]:
    """Every database of the event log storage: the index and, on SQLite, each run's shard."""
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    storage = instance.event_log_storage
    if isinstance(storage, SqliteEventLogStorage):
        yield storage.index_connection()
        for run_id in storage.get_all_run_ids():
            yield storage.run_connection(run_id)
    elif isinstance(storage, SqlEventLogStorage):
        yield storage.index_connection()
    else:
        raise TypeError(f"cannot scrub {type(storage).__name__}: not a SQL event log storage")


def sqlite_conn_string(directory: str, name: str) -> str:
    """The SQLAlchemy URL of SQLite database `name`.db in `directory`, as Dagster's storages build it."""
    return create_db_conn_string(directory, name)


def forget_deleted_run(instance: DagsterInstance, run_id: str) -> None:
    """What `instance.delete_run` leaves of a run: its asset check executions (each holding the
    evaluation event again) and, on SQLite's per-run shards, the run's own file."""
    from pathlib import Path

    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    storage = instance.event_log_storage
    if isinstance(storage, SqlEventLogStorage):
        with storage.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.delete().where(AssetCheckExecutionsTable.c.run_id == run_id))
    if isinstance(storage, SqliteEventLogStorage):
        shard = Path(storage.path_for_shard(run_id))
        for path in (shard, shard.with_name(shard.name + "-wal"), shard.with_name(shard.name + "-shm")):
            path.unlink(missing_ok=True)
        storage._initialized_dbs.discard(run_id)  # a later read of the run builds an empty shard again


def delete_dynamic_partitions(instance: DagsterInstance, name: str, keys: Collection[str]) -> None:
    """`instance.delete_dynamic_partition` for many keys in a few statements: Dagster deletes one
    key per transaction (~25 ms each on SQLite, so ~5 minutes for a 12,000-photo event)."""
    from dagster._core.storage.event_log.schema import DynamicPartitionsTable
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        for key in keys:
            instance.delete_dynamic_partition(name, key)
        return
    ordered = sorted(keys)
    table = DynamicPartitionsTable
    with storage.index_connection() as conn:
        for start in range(0, len(ordered), 500):  # well under SQLite's limit of bound parameters
            chunk = ordered[start : start + 500]
            conn.execute(table.delete().where(table.c.partitions_def_name == name, table.c.partition.in_(chunk)))


def compact_sqlite_storage(instance: DagsterInstance) -> None:
    """VACUUM the run storage's and the event log's (index) SQLite databases, so pages freed by
    deleted runs go back to the disk; nothing on Postgres, whose autovacuum reuses them. A writer
    holding a database (a run, the daemon) makes VACUUM give up: the pages are then reused later."""
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
    from dagster._core.storage.runs.sql_run_storage import SqlRunStorage

    connections: list[AbstractContextManager[Any]] = []
    if isinstance(instance.run_storage, SqlRunStorage):
        connections.append(instance.run_storage.connect())
    if isinstance(instance.event_log_storage, SqlEventLogStorage):
        connections.append(instance.event_log_storage.index_connection())
    for connection in connections:
        with connection as conn:
            if conn.dialect.name != "sqlite":
                continue
            raw = conn.connection.dbapi_connection
            try:
                raw.commit()  # VACUUM cannot run inside the transaction Dagster opened
                raw.execute("VACUUM")
            except sqlite3.OperationalError as error:
                if "locked" not in str(error):  # another writer: its pages are reused later instead
                    raise


def add_partition_metadata(
    context: dg.AssetExecutionContext, targeted: Collection[str], partition_key: str, metadata: Mapping[str, Any]
) -> None:
    """`context.add_asset_metadata(metadata, partition_key=partition_key)` for the step's one asset,
    checked against `targeted` (the run's partition keys, resolved once per step) instead of
    re-resolving the run's range from the whole partition set on each call."""
    if partition_key not in targeted:
        raise dg.DagsterInvariantViolationError(
            f"Attempted to add metadata for partition key '{partition_key}' that is not being targeted."
        )
    step = context.op_execution_context._step_execution_context
    step._metadata_accumulator = step._metadata_accumulator.with_additional_asset_metadata(
        asset_key=context.asset_key, metadata=metadata, partition_key=partition_key
    )


def preload_run_worker() -> None:
    """Import what a run process imports before its first step (`dagster api execute_run`)."""
    from dagster._cli import api  # noqa: F401  (the run worker's entry point)
    from dagster._core.execution import api as execution_api  # noqa: F401


def execute_run_in_this_process(run_id: str, instance: DagsterInstance) -> int:
    """Execute the run as `dagster api execute_run` does; returns its exit code."""
    from dagster._cli.api import _execute_run_command_body

    return _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)


def capture_interrupts() -> AbstractContextManager[None]:
    """SIGINT (a terminate) becomes Dagster's clean run cancellation inside the block."""
    from dagster._utils.interrupts import capture_interrupts as capture

    return capture()


def execute_run_args(origin: JobPythonOrigin, run_id: str, instance_ref: InstanceRef) -> ExecuteRunArgs:
    """The argument of `dagster api execute_run` (serialised onto its command line)."""
    from dagster._grpc.types import ExecuteRunArgs

    return ExecuteRunArgs(job_origin=origin, run_id=run_id, instance_ref=instance_ref)
