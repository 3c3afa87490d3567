"""One read of a dynamic partition set per run, instead of one per range resolution.

Dagster resolves a range run's partition range (for each step's inputs, for its outputs and for
the run's planned-materialization events) by listing every key of the `DynamicPartitionsDefinition`:
a batch run of 16 photos reads the whole `photos` set 64 times, and at 120,000 partitions in the
instance each read costs ~0.35 s of CPU (docs/PERFORMANCE.md, "Cost against the instance's size").
Within one run those reads can share one answer:

- the run's own keys existed when the run was created (Dagster checks), and a key added later goes
  after them in insertion order, so no range of the run changes;
- what this process adds to or deletes from a set while the run goes drops that set's snapshot.

So the instance class (`instance_class` in dagster.yaml) answers `get_dynamic_partitions` from a
snapshot taken at the first read inside `one_read_per_run()`, which the run executors enter around
each run (warm_runs/forkserver.py, orchestration/runner/launching.py and reporting.py), and
`picsaris process` around one pass of runs whose partitions it added first (runner/loop.py).
Outside it (sensors, the UI, the daemon, `picsaris` between passes) every read goes to Dagster's
storage as before.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg

from picsaris_pipeline.orchestration.dagster_internals import InstanceRef

# (id of the instance, partitions definition name) -> its keys, while a run executes.
_snapshots: contextvars.ContextVar[dict[tuple[int, str], Sequence[str]] | None] = contextvars.ContextVar(
    "picsaris_partition_snapshots", default=None
)


@contextmanager
def one_read_per_run() -> Iterator[None]:
    """Inside: each dynamic partition set is read from storage once, at its first read. Nested in
    another, it shares that one's snapshot: `picsaris process` runs the runs of one pass under one
    (their partitions were all added before it starts)."""
    if _snapshots.get() is not None:
        yield
        return
    token = _snapshots.set({})
    try:
        yield
    finally:
        _snapshots.reset(token)


class PicsarisInstance(dg.DagsterInstance):
    """Dagster's instance, reading a dynamic partition set once per run (see the module's text)."""

    # Dagster asks an instance class for its settings (none here) and for its default storages
    # (Dagster's own).
    @classmethod
    def config_schema(cls) -> Mapping[str, Any]:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, Any]:
        return InstanceRef.config_defaults(base_dir)

    def get_dynamic_partitions(self, partitions_def_name: str) -> Sequence[str]:
        snapshots = _snapshots.get()
        if snapshots is None:
            return super().get_dynamic_partitions(partitions_def_name)
        key = (id(self), partitions_def_name)
        keys = snapshots.get(key)
        if keys is None:
            keys = snapshots[key] = tuple(super().get_dynamic_partitions(partitions_def_name))
        return keys

    def add_dynamic_partitions(self, partitions_def_name: str, partition_keys: Sequence[str]) -> None:
        super().add_dynamic_partitions(partitions_def_name, partition_keys)
        self._forget(partitions_def_name)

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        super().delete_dynamic_partition(partitions_def_name, partition_key)
        self._forget(partitions_def_name)

    def _forget(self, partitions_def_name: str) -> None:
        snapshots = _snapshots.get()
        if snapshots is not None:
            snapshots.pop((id(self), partitions_def_name), None)
