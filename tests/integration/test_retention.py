"""Retention: when an event ends, the archive sensor on a real (temporary) Dagster instance with real
runs, and what archiving removes (partitions, the event's finished runs) and keeps (records, other
events' runs, a run that also covered another event's photo)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from picsaris_pipeline.assets.photos import verified_upload
from picsaris_pipeline.db.repository import connect
from picsaris_pipeline.domain.model import PhotoStatus
from picsaris_pipeline.errors import ConfigurationError
from picsaris_pipeline.orchestration.partitions import (
    ATTENDEE_PARTITIONS,
    EVENT_TAG,
    PHOTO_PARTITIONS,
    batch_tags,
    run_tags,
)
from picsaris_pipeline.orchestration.retention import archive_event
from picsaris_pipeline.sensors.quiet import is_idle_reason
from picsaris_pipeline.sensors.retention import ARCHIVING_OFF, event_archive_sensor
from picsaris_pipeline.services.retention import QUIET_PERIOD, due_for_archiving, event_end
from picsaris_pipeline.settings import DEFAULT_ARCHIVE_AFTER, Settings
from tests.support.bucket_sensor import dropped_photo

LONG_AGO = datetime(2020, 6, 20, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", DEFAULT_ARCHIVE_AFTER),
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("off", None),
    ],
)
def test_the_archive_delay_is_a_duration_or_off(raw, expected):
    assert Settings.from_env({"PICSARIS_ARCHIVE_AFTER": raw}).archive_after == expected


@pytest.mark.parametrize("raw", ["30", "a month", "-1d", "3w"])
def test_an_archive_delay_that_is_no_duration_is_refused(raw):
    with pytest.raises(ConfigurationError, match="PICSARIS_ARCHIVE_AFTER"):
        Settings.from_env({"PICSARIS_ARCHIVE_AFTER": raw})


def test_an_event_ends_at_its_end_time_or_a_quiet_period_after_its_last_upload(database_url):
    repo = connect(database_url)
    timed = repo.create_event("Timed", ends_at=LONG_AGO)
    quiet = repo.create_event("Without an end")
    empty = repo.create_event("Nobody uploaded")
    guest = repo.add_attendee(quiet.id, "Guest", True, None, None)
    photo = repo.create_photo(quiet.id, guest.id, "p.jpg", "image/jpeg", "a" * 64, 10, "jpg")
    ends = {event.id: event_end(event, last) for event, last in repo.unarchived_events()}
    assert repo.get_event(timed.id).ends_at == LONG_AGO
    assert ends[timed.id] == LONG_AGO
    assert ends[quiet.id] == repo.get_photo(photo.id).created_at + QUIET_PERIOD
    assert ends[empty.id] == empty.created_at + QUIET_PERIOD
    due_now = {e.id for e in due_for_archiving(repo, timedelta(days=30))}
    assert due_now == {timed.id}
    much_later = datetime.now(UTC) + QUIET_PERIOD + timedelta(days=31)
    assert {e.id for e in due_for_archiving(repo, timedelta(days=30), much_later)} == {timed.id, quiet.id, empty.id}
    assert repo.mark_archived(timed.id) and not repo.mark_archived(timed.id)  # once
    assert timed.id not in {e.id for e in due_for_archiving(repo, timedelta(days=30), much_later)}


def _photo_run(pipeline, photo, tags=None):
    """A real run of the photo's upload check (the undecodable bytes are rejected: the run succeeds)."""
    if not pipeline.instance.has_dynamic_partition(PHOTO_PARTITIONS, photo.id):
        pipeline.instance.add_dynamic_partitions(PHOTO_PARTITIONS, [photo.id])
    result = dg.materialize(
        [verified_upload],
        partition_key=photo.id,
        instance=pipeline.instance,
        resources=pipeline.resources,
        tags=tags or run_tags("cli", event=photo.event_id, uploader=photo.uploader_id, photo=photo.id),
    )
    return result.run_id


def _range_run(pipeline, photos, event_id):
    """A batch run over the partitions from the first photo to the last, tagged with one event."""
    result = dg.materialize(
        [verified_upload],
        instance=pipeline.instance,
        resources=pipeline.resources,
        tags={**batch_tags([p.id for p in photos]), EVENT_TAG: event_id},
    )
    return result.run_id


def _tick(pipeline):
    context = dg.build_sensor_context(instance=pipeline.instance, resources=pipeline.resources)
    return event_archive_sensor(context).skip_message


@pytest.fixture
def two_events(pipeline):
    """An event that ended long ago and one still going, each with photos, an attendee partition and
    real runs; partitions interleaved as concurrent uploads leave them."""
    over = pipeline.repo.create_event("Over", ends_at=LONG_AGO)
    going = pipeline.repo.create_event("Going", ends_at=datetime.now(UTC) + timedelta(days=1))
    guests = {e.id: pipeline.repo.add_attendee(e.id, "Guest", True, None, None) for e in (over, going)}
    photos = {e.id: [] for e in (over, going)}
    for event in (over, going, over, over):
        photos[event.id].append(dropped_photo(pipeline, event, guests[event.id], PhotoStatus.UPLOADED))
    pipeline.instance.add_dynamic_partitions(
        PHOTO_PARTITIONS, [p.id for p in (photos[over.id][0], photos[going.id][0], *photos[over.id][1:])]
    )
    pipeline.instance.add_dynamic_partitions(ATTENDEE_PARTITIONS, [g.id for g in guests.values()])
    runs = {
        "over_single": _photo_run(pipeline, photos[over.id][0]),
        "over_batch": _range_run(pipeline, photos[over.id][1:], over.id),
        # started by hand from the over event's first photo across the other event's: it stays
        "across": _range_run(pipeline, [photos[over.id][0], photos[going.id][0]], over.id),
        "going": _photo_run(pipeline, photos[going.id][0]),
    }
    return over, going, photos, guests, runs


def test_the_sensor_archives_an_event_once_it_is_due_and_keeps_its_records(pipeline, two_events):
    over, going, photos, guests, runs = two_events
    matches_before = pipeline.repo.list_photos(over.id)

    message = _tick(pipeline)

    assert message.startswith(f"archived event {over.id}") and not is_idle_reason(message)
    left = set(pipeline.instance.get_dynamic_partitions(PHOTO_PARTITIONS))
    assert left == {photos[going.id][0].id}
    assert set(pipeline.instance.get_dynamic_partitions(ATTENDEE_PARTITIONS)) == {guests[going.id].id}
    remaining = {r.run_id for r in pipeline.instance.get_runs()}
    assert remaining == {runs["across"], runs["going"]}
    # the deleted runs' event logs went with them
    assert pipeline.instance.all_logs(runs["over_single"]) == []
    assert pipeline.repo.list_photos(over.id) == matches_before  # records stay
    assert pipeline.repo.get_event(over.id).archived_at is not None
    assert pipeline.repo.get_event(going.id).archived_at is None
    assert is_idle_reason(_tick(pipeline))  # archived once: the next tick finds nothing due


def test_archiving_again_removes_what_arrived_since(pipeline, two_events):
    over, _, _, guests, _ = two_events
    first = archive_event(pipeline.repo, pipeline.instance, over.id)
    assert first.recorded and first.runs_deleted == 2 and first.runs_kept == 1
    late = dropped_photo(pipeline, over, guests[over.id], PhotoStatus.UPLOADED)
    late_run = _photo_run(pipeline, late)
    again = archive_event(pipeline.repo, pipeline.instance, over.id)
    assert not again.recorded and (again.partitions, again.runs_deleted) == (1, 1)
    assert pipeline.instance.get_run_by_id(late_run) is None


def test_automatic_archiving_can_be_turned_off(pipeline, two_events, monkeypatch):
    monkeypatch.setenv("PICSARIS_ARCHIVE_AFTER", "off")
    assert _tick(pipeline) == ARCHIVING_OFF
    assert pipeline.repo.get_event(two_events[0].id).archived_at is None


@pytest.mark.parametrize("config", ["dagster.yaml", "deploy/dagster.yaml"])
def test_both_instances_purge_old_ticks(config, tmp_path, monkeypatch):
    import shutil

    from dagster._core.instance.config import dagster_instance_config

    from tests.support.environment import REPO_ROOT

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql://nobody@127.0.0.1:1/none")  # read, never used
    shutil.copy(REPO_ROOT / config, tmp_path / "dagster.yaml")
    retention = dagster_instance_config(str(tmp_path))[0]["retention"]
    assert retention["schedule"] == {"purge_after_days": 30}
    assert retention["sensor"]["purge_after_days"]["skipped"] == 3
    assert {retention["sensor"]["purge_after_days"][k] for k in ("success", "failure", "started")} == {30}


def test_the_embedded_event_log_is_one_file_under_the_home_and_archiving_empties_it(picsaris_home, tmp_path):
    from picsaris_pipeline.orchestration.embedded_storage import HomeEventLogStorage
    from picsaris_pipeline.orchestration.runner.instance import dagster_instance
    from tests.support.pipeline_helpers import Pipeline

    instance = dagster_instance(Settings.from_env())
    assert isinstance(instance.event_log_storage, HomeEventLogStorage)
    assert (picsaris_home / "dagster" / "history" / "event_log.db").is_file()
    pipeline = Pipeline.build(tmp_path, instance)
    event = pipeline.repo.create_event("Over", ends_at=LONG_AGO)
    guest = pipeline.repo.add_attendee(event.id, "Guest", True, None, None)
    run_id = _photo_run(pipeline, dropped_photo(pipeline, event, guest, PhotoStatus.UPLOADED))
    # a worker process rebuilds the instance from its ref and sees the same file
    assert dg.DagsterInstance.from_ref(instance.get_ref()).all_logs(run_id)
    captured = picsaris_home / "dagster" / "storage" / run_id
    assert captured.is_dir()
    assert archive_event(pipeline.repo, instance, event.id).runs_deleted == 1
    assert instance.all_logs(run_id) == [] and instance.get_run_by_id(run_id) is None
    assert not captured.exists()
    assert list((picsaris_home / "dagster" / "history").glob("*-*.db")) == []  # no per-run files


def test_an_archive_out_of_time_leaves_the_event_for_the_next_call(pipeline, two_events):
    over, _, photos, _, runs = two_events
    partial = archive_event(pipeline.repo, pipeline.instance, over.id, budget_seconds=0)
    assert not partial.complete and not partial.recorded and "more to go" in partial.describe()
    assert pipeline.repo.get_event(over.id).archived_at is None
    assert photos[over.id][0].id in pipeline.instance.get_dynamic_partitions(PHOTO_PARTITIONS)
    assert {e.id for e in due_for_archiving(pipeline.repo, DEFAULT_ARCHIVE_AFTER)} == {over.id}
    finished = archive_event(pipeline.repo, pipeline.instance, over.id)
    assert finished.complete and finished.recorded
    assert {r.run_id for r in pipeline.instance.get_runs()} == {runs["across"], runs["going"]}


def test_runs_over_photos_erased_since_go_with_their_event(pipeline, two_events):
    over, _, photos, _, runs = two_events
    erased = photos[over.id][1]  # the batch run's first photo: its record and partition are gone
    pipeline.repo.delete_photo(erased.id)
    pipeline.instance.delete_dynamic_partition(PHOTO_PARTITIONS, erased.id)
    archive = archive_event(pipeline.repo, pipeline.instance, over.id)
    assert (archive.runs_deleted, archive.runs_kept) == (2, 1)
    assert pipeline.instance.get_run_by_id(runs["over_batch"]) is None
