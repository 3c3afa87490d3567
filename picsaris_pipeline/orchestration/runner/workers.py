"""The work shared with spawned worker processes, each keeping its face models loaded."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import dagster as dg

from picsaris_pipeline.db.repository import connect
from picsaris_pipeline.orchestration.partition_snapshot import one_read_per_run
from picsaris_pipeline.orchestration.runner.claiming import next_runs
from picsaris_pipeline.orchestration.runner.instance import dagster_instance
from picsaris_pipeline.orchestration.runner.launching import run_inline
from picsaris_pipeline.orchestration.runner.reporting import (
    Outcome,
    Work,
)
from picsaris_pipeline.services.leases import Claimer
from picsaris_pipeline.settings import Settings


def run_in_workers(
    instance: dg.DagsterInstance,
    work: Work,
    common_tags: dict[str, str],
    count: int,
    exits: ExitStack | None,
    claimer: Claimer | None = None,
) -> Iterator[Outcome]:
    """The work shared by this process and `count - 1` spawned ones; outcomes as they finish. This
    process has imported Dagster and the code location already, so it starts on the first run at
    once while the others boot (~2-3 s of imports and model loads each)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a process holding DB and thread state
    outcomes = context.Queue()
    next_index = context.Value("q", 0)
    # Workers claim under this process's holder id, whose keeper renews their leases too.
    lease = (
        None
        if claimer is None
        else (claimer.repo.url_with_password(), claimer.holder, claimer.seconds, claimer.still_pending)
    )
    processes = [
        context.Process(target=_worker, args=(work, next_index, common_tags, outcomes, lease), daemon=True)
        for _ in range(count - 1)
    ]
    for process in processes:
        process.start()
    pending = {key for _, keys, _ in work for key in keys}  # per key: a batch may come back in parts
    finished = False
    try:
        for outcome in run_inline(instance, next_runs(work, next_index), common_tags, claimer):
            pending.difference_update(outcome[1])
            yield outcome
            yield from _reported(outcomes, pending, processes, wait=False)
        yield from _reported(outcomes, pending, processes, wait=True)
        finished = True
    finally:
        if finished and exits is not None:
            # Every run has reported: nothing waits on the workers' interpreter shutdown (~0.5 s).
            exits.callback(_reap, processes)
        else:
            _reap(processes)
    for job_name, keys, _ in work:  # a worker that died (killed, out of memory) leaves its run undone
        if undone := tuple(key for key in keys if key in pending):
            yield job_name, undone, False, "its worker process exited before finishing it", "", {}


def _reported(outcomes: Any, pending: set[str], processes: list[Any], wait: bool) -> Iterator[Outcome]:
    """Outcomes the worker processes have reported: those already queued, or with `wait` every one
    until nothing is pending or every worker is gone."""
    while pending:
        workers_gone = all(not process.is_alive() for process in processes)
        try:
            item = outcomes.get(timeout=0.5 if workers_gone else 5) if wait else outcomes.get_nowait()
        except queue.Empty:
            if not wait or workers_gone:  # (and nothing left in the queue: the rest will never come)
                return
            continue
        if item[0] == "crashed":
            raise RuntimeError(f"a worker process failed: {item[1]}")
        pending.difference_update(item[1])
        yield item


def _reap(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()


def _worker(
    work: Work, next_index: Any, common_tags: dict[str, str], outcomes: Any, lease: tuple[str, str, int, Any] | None
) -> None:
    try:
        instance = dagster_instance(Settings.from_env())
        claimer = None if lease is None else Claimer(connect(lease[0]), lease[1], lease[2], lease[3])
        # The parent added every run's partitions before starting this worker: its runs can share
        # one read of each partition set, as the parent's do (orchestration/partition_snapshot.py).
        with one_read_per_run():
            for outcome in run_inline(instance, next_runs(work, next_index), common_tags, claimer):
                outcomes.put(outcome)
    except BaseException as error:  # reported to the parent, which stops with it
        outcomes.put(("crashed", f"{type(error).__name__}: {error}", False, "", "", {}))
        raise
