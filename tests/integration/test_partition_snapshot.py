"""The instance class reads a dynamic partition set once per run (orchestration/partition_snapshot.py):
Dagster's range resolution otherwise lists the whole `photos` set for every step's inputs and
outputs, which makes a photo's cost grow with the instance (issue 16)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.orchestration.partition_snapshot import PicsarisInstance, one_read_per_run
from picsaris_pipeline.orchestration.partitions import PHOTO_PARTITIONS
from tests.support.cli_runner import picsaris
from tests.support.environment import REPO_ROOT

# The statement SqlEventLogStorage.get_dynamic_partitions sends: every key of a set, in order.
_WHOLE_SET = re.compile(r"FROM dynamic_partitions\s+WHERE dynamic_partitions.partitions_def_name = \S+\s+ORDER BY")


@contextmanager
def whole_set_reads() -> Iterator[list[str]]:
    """The statements reading a whole dynamic partition set, as sent to the database meanwhile."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if _WHOLE_SET.search(statement):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as opened:
        yield opened


def test_the_embedded_and_production_instances_use_the_class(instance) -> None:
    from picsaris_pipeline.orchestration.runner.instance import _INSTANCE_YAML

    assert isinstance(instance, PicsarisInstance)
    assert isinstance(dg.DagsterInstance.from_ref(instance.get_ref()), PicsarisInstance)  # a run process's
    block = "instance_class:\n  module: picsaris_pipeline.orchestration.partition_snapshot\n  class: PicsarisInstance\n"
    assert block in _INSTANCE_YAML and block in (REPO_ROOT / "deploy" / "dagster.yaml").read_text()


def test_inside_a_run_a_set_is_read_once_and_this_process_sees_its_own_changes(instance) -> None:
    other_process = dg.DagsterInstance.from_ref(instance.get_ref())  # the same storage, another reader
    instance.add_dynamic_partitions(PHOTO_PARTITIONS, ["a", "b"])
    with whole_set_reads() as reads, one_read_per_run():
        assert list(instance.get_dynamic_partitions(PHOTO_PARTITIONS)) == ["a", "b"]
        other_process.add_dynamic_partitions(PHOTO_PARTITIONS, ["c"])  # after the run's keys
        assert list(instance.get_dynamic_partitions(PHOTO_PARTITIONS)) == ["a", "b"]
        assert len(reads) == 1
        instance.add_dynamic_partitions(PHOTO_PARTITIONS, ["d"])
        assert list(instance.get_dynamic_partitions(PHOTO_PARTITIONS)) == ["a", "b", "c", "d"]
        instance.delete_dynamic_partition(PHOTO_PARTITIONS, "a")
        assert list(instance.get_dynamic_partitions(PHOTO_PARTITIONS)) == ["b", "c", "d"]
        assert len(reads) == 3  # once more after each change this process made
    # A scope inside another shares its snapshot (a `picsaris process` pass around its runs).
    with whole_set_reads() as reads, one_read_per_run():
        instance.get_dynamic_partitions(PHOTO_PARTITIONS)
        with one_read_per_run():
            other_process.add_dynamic_partitions(PHOTO_PARTITIONS, ["f"])
            assert list(instance.get_dynamic_partitions(PHOTO_PARTITIONS)) == ["b", "c", "d"]
        assert len(reads) == 1
    other_process.delete_dynamic_partition(PHOTO_PARTITIONS, "f")
    # Outside a run, each read goes to storage, as Dagster's own instance does.
    with whole_set_reads() as reads:
        other_process.add_dynamic_partitions(PHOTO_PARTITIONS, ["e"])
        assert list(instance.get_dynamic_partitions(PHOTO_PARTITIONS)) == ["b", "c", "d", "e"]
        assert list(instance.get_dynamic_partitions(PHOTO_PARTITIONS)) == ["b", "c", "d", "e"]
        assert len(reads) == 2


def test_a_batch_run_reads_the_photo_set_a_few_times_not_once_per_step_and_photo(
    picsaris_home, shared_photos, monkeypatch
) -> None:
    from picsaris_pipeline.orchestration.app import App

    monkeypatch.setenv("PICSARIS_WORKERS", "1")  # the runs in this process, where the reads are counted
    event_id = picsaris("event", "create", "One read per run").strip()
    guest = picsaris(
        "attendee", "add", event_id, "--name", "Kit", "--selfie", str(shared_photos["kit_harington_2.jpg"].path)
    )
    picsaris("process")  # the attendee's run
    # Eight photos on one worker make four batch runs of two (orchestration/runner/loop.batched).
    names = ["kit_harington_1.jpg", "kit_harington_3.jpg", "obama_2.jpg", "group_two_people.jpg"]
    names += ["noface_dog.jpg", "rose_leslie_2.jpg", "biden_1.jpg", "obama_3.jpg"]
    photo_ids = picsaris("upload", event_id, "--uploader", guest.strip(), *[str(shared_photos[n].path) for n in names])

    with whole_set_reads() as reads:
        picsaris("process")

    app = App.from_env()
    assert isinstance(app.instance, PicsarisInstance)
    runs = [r for r in app.instance.get_runs() if "picsaris/batch" in r.tags]
    assert [r.tags["picsaris/batch"] for r in runs] == ["2"] * 4
    assert {app.repo.get_photo(p).status for p in photo_ids.split()} == {PhotoStatus.PUBLISHED}
    # One read for the pass (choosing the batches, then the four runs: Dagster alone resolves each
    # run's range once per step for the step's inputs, its outputs and the planned materializations,
    # 64 reads here without the snapshot); then one of the photo set and one of the event set for
    # the event summary and the checks after it.
    assert len(reads) <= 3, len(reads)
